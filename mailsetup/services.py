"""Services: whether they run, and starting, reloading and restarting them.

The one place product code does so. Through invoke-rc.d, which honours
policy-rc.d and asks systemd where it runs (rspamd's and dovecot's units
reload on HUP or doveadm reload); Postfix through its own `postfix` command
(`postfix status` is true only while its master runs, whatever the unit
says). No pid files, no signals.

of(system) gives the services of a System: with run_services off (unit
tests against scratch directories) nothing is started and nothing runs.
Tests that need services replace of() with a fake of their own.
"""

import os

from mailsetup.errors import CommandFailed

POSTFIX = "postfix"


class InvokeRcD:
    def __init__(self, system):
        self.system = system

    def _ok(self, argv):
        try:
            return self.system.run(argv, check=False).returncode == 0
        except CommandFailed:  # the command is not installed
            return False

    def running(self, name):
        """True while the service runs; without an init system (a chroot) only what was started by hand."""
        if name == POSTFIX:
            return self._ok(["postfix", "status"])
        return self._ok(["invoke-rc.d", "--quiet", name, "status"])

    def start(self, name):
        return self._ok(["invoke-rc.d", name, "start"])

    def reload(self, name):
        if name == POSTFIX:
            return self._ok(["postfix", "reload"])
        return self._ok(["invoke-rc.d", name, "reload"])

    def restart(self, name):
        return self._ok(["invoke-rc.d", name, "restart"])

    def stop(self, name):
        return self._ok(["invoke-rc.d", name, "stop"])

    def stop_postfix(self):
        """Stop Postfix for a restart: its unit under systemd (so the unit's state stays
        true), else its own command (a master started by hand in a chroot)."""
        if booted_with_systemd():
            return self.stop(POSTFIX)
        return self._ok(["postfix", "stop"])

    def start_postfix(self):
        if booted_with_systemd():
            return self.start(POSTFIX)
        return self._ok(["postfix", "start"])


class Inert:
    """run_services off: nothing runs and nothing can be started."""

    def running(self, name):
        return False

    def start(self, name):
        return False

    reload = restart = stop = start

    def stop_postfix(self):
        return False

    start_postfix = stop_postfix


def booted_with_systemd():
    return os.path.isdir("/run/systemd/system")


def of(system):
    return InvokeRcD(system) if system.run_services else Inert()
