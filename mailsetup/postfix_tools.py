"""A small wrapper around postconf(1): read and change main.cf through Postfix's own tool.

Keys and values are checked before they reach the command line, so a bad value
can never add a line or a second parameter to main.cf.
"""

import re
import subprocess

from mailsetup.errors import MailsetupError
from mailsetup.i18n import _

_KEY = re.compile(r"^[a-z][a-z0-9_]*$")


class PostconfError(MailsetupError):
    """postconf refused a key or value, or failed."""


def check_key(key):
    if not _KEY.match(key):
        raise PostconfError(_("not a Postfix parameter name: {key}").format(key=repr(key)))


def check_value(key, value):
    if any(c in value for c in "\r\n\0"):
        raise PostconfError(_("value for {key} contains a line break").format(key=key))


class Postconf:
    def __init__(self, config_dir=None, command="postconf"):
        self.config_dir = config_dir
        self.command = command

    def _run(self, *args):
        argv = [self.command]
        if self.config_dir:
            argv += ["-c", self.config_dir]
        argv += list(args)
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        except FileNotFoundError:
            raise PostconfError(_("{command} not found: is postfix installed?").format(command=self.command)) from None
        if proc.returncode != 0:
            # Translators: {command} is a command line, {output} what it printed.
            raise PostconfError(_("{command} failed: {output}").format(command=" ".join(argv),
                                                                      output=proc.stderr.strip()))
        return proc.stdout

    @staticmethod
    def _parse(output):
        values = {}
        for line in output.splitlines():
            key, sep, value = line.partition(" = ")
            if not sep and line.endswith(" ="):
                key, value = line[:-2], ""
            values[key.strip()] = value
        return values

    def effective(self, keys):
        """The values Postfix uses (explicit or default) for keys."""
        for key in keys:
            check_key(key)
        return self._parse(self._run(*keys)) if keys else {}

    def explicit(self, keys):
        """key -> value as set in main.cf, or None where main.cf does not set it."""
        for key in keys:
            check_key(key)
        found = self._parse(self._run("-n", *keys)) if keys else {}
        return {key: found.get(key) for key in keys}

    def change(self, values):
        """Set keys to values; a value None removes the key from main.cf."""
        to_set = {k: v for k, v in values.items() if v is not None}
        to_remove = [k for k, v in values.items() if v is None]
        for key, value in to_set.items():
            check_key(key)
            check_value(key, value)
        for key in to_remove:
            check_key(key)
        if to_set:
            self._run("-e", *(f"{k} = {v}" for k, v in to_set.items()))
        if to_remove:
            self._run("-X", *to_remove)

    # -- master.cf services, named "name/type" (such as submission/inet) ------

    def master_entry(self, service):
        """The service's master.cf entry on one line, -o options included; "" when absent."""
        return " ".join(self._run("-M", service).split())

    def master_options(self, service):
        """The service's -o options as ["key=value", ...] (postconf -P sorts them by name)."""
        options = []
        for line in self._run("-P", service).splitlines():
            name, sep, value = line.partition(" = ")
            if not sep and line.endswith(" ="):
                name, value = line[:-2], ""
            options.append(f"{name.split('/', 2)[-1]}={value}")
        return options

    def set_master(self, service, entry, options):
        """Replace the service's entry and set its -o options (postconf -M drops them)."""
        for key, value in options:
            check_key(key)
            check_value(key, value)
        check_value(service, entry)
        self._run("-M", f"{service}={entry}")
        if options:
            self._run("-P", *(f"{service}/{k}={v}" for k, v in options))
