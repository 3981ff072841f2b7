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
import time

from mailsetup.errors import CommandFailed

POSTFIX = "postfix"
# How long Postfix's master may take to go away after a stop, or to come up after a start.
POSTFIX_SETTLE_TIMEOUT = 30


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
        true), else its own command (a master started by hand in a chroot).

        Under systemd the master belongs to postfix@-.service, which stops only as part
        of postfix.service (PartOf=): `systemctl stop postfix` returns once postfix.service
        is down, while the instance may still be stopping. A start in that window can be
        lost (seen in CI: nothing listened on port 25 afterwards), so wait for the master
        to be gone, as `postfix status` sees it."""
        if booted_with_systemd():
            return self.stop(POSTFIX) and self._postfix_settles(running=False)
        return self._ok(["postfix", "stop"])

    def start_postfix(self):
        """Start Postfix after stop_postfix; true once its master runs."""
        if booted_with_systemd():
            return self.start(POSTFIX) and self._postfix_settles(running=True)
        return self._ok(["postfix", "start"])

    def _postfix_settles(self, running, timeout=POSTFIX_SETTLE_TIMEOUT):
        end = time.monotonic() + timeout
        while self.running(POSTFIX) != running:
            if time.monotonic() > end:
                return False
            time.sleep(0.2)
        return True


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
