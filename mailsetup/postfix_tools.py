"""Postfix's own tools, with `-c CONFIG_DIR` added in one place.

- command_line(): the argv of any Postfix command (postmap, postalias, ...);
  run() runs one and raises the caller's error class when it is missing or fails.
- Postconf: read and change main.cf and master.cf through postconf(1). Keys
  and values are checked before they reach the command line, so a bad value
  can never add a line or a second parameter to main.cf.
- parse_master(): `postconf -M` lines as MasterEntry fields.
- parse_aliases(): an aliases(5) file (the text postalias builds a table from).
"""

import re
import subprocess
from dataclasses import dataclass

from mailsetup.errors import MailsetupError
from mailsetup.i18n import _

_KEY = re.compile(r"^[a-z][a-z0-9_]*$")

# The file postmap and postalias build beside a table, by table type.
DATABASE_SUFFIX = {"hash": ".db", "btree": ".db", "lmdb": ".lmdb", "cdb": ".cdb"}


class PostconfError(MailsetupError):
    """postconf refused a key or value, or failed."""


def check_key(key):
    if not _KEY.match(key):
        raise PostconfError(_("not a Postfix parameter name: {key}").format(key=repr(key)))


def check_value(key, value):
    if any(c in value for c in "\r\n\0"):
        raise PostconfError(_("value for {key} contains a line break").format(key=key))


def command_line(command, config_dir, *args):
    """The argv of a Postfix command: with `-c config_dir` unless config_dir is None
    (Postfix's own default, /etc/postfix)."""
    argv = [command]
    if config_dir:
        argv += ["-c", config_dir]
    return argv + list(args)


def postmap_line(spec, config_dir=None, command="postmap"):
    """postmap building the table spec (such as hash:/etc/mailsetup/virtual/domains)."""
    return command_line(command, config_dir, spec)


def postalias_line(spec, config_dir=None, command="postalias"):
    """postalias building the alias table spec (such as hash:/etc/aliases)."""
    return command_line(command, config_dir, spec)


def postqueue_list_line(config_dir=None, command="postqueue"):
    """postqueue listing the queue as JSON, one object a message (postqueue(1) -j)."""
    return command_line(command, config_dir, "-j")


def run(argv, error=PostconfError):
    """Run a Postfix command and return its CompletedProcess (output captured as text).

    A missing command or a failure raises error(message), so each caller keeps
    its own error class; the message says what failed and what it printed
    (its stderr, or its stdout when stderr is empty)."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise error(_("{command} not found: is postfix installed?").format(command=argv[0])) from None
    if proc.returncode != 0:
        # Translators: {command} is a command line, {output} what it printed.
        raise error(_("{command} failed: {output}").format(
            command=" ".join(argv), output=(proc.stderr or proc.stdout).strip()))
    return proc


@dataclass(frozen=True)
class MasterEntry:
    """One master.cf service, its fields as master(5) names them ("-" where the default applies)."""
    service: str
    type: str
    private: str
    unpriv: str
    chroot: str
    wakeup: str
    maxproc: str
    command: str   # the program's name (smtpd, local, pipe, ...)
    args: tuple = ()   # the rest of its command line, -o options included


def parse_master(lines):
    """MasterEntry for each `postconf -M` line (one service a line); lines with
    fewer than the eight fields are passed over."""
    entries = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 8:
            entries.append(MasterEntry(*fields[:8], args=tuple(fields[8:])))
    return entries


def parse_aliases(data):
    """name -> [targets] from an aliases(5) file (bytes), names in lower case.

    As Postfix reads it: blank lines and lines whose first non-blank character
    is # are ignored, a line that starts with a blank continues the entry
    before it (and is ignored before the first entry), a line without a colon
    is no entry."""
    table = {}
    last = None
    for line in data.decode("utf-8", errors="replace").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0] in " \t":
            if last:
                table[last] += [t.strip() for t in line.split(",") if t.strip()]
            continue
        name, sep, rest = line.partition(":")
        if sep:
            last = name.strip().lower()
            table[last] = [t.strip() for t in rest.split(",") if t.strip()]
    return table


class Postconf:
    def __init__(self, config_dir=None, command="postconf"):
        self.config_dir = config_dir
        self.command = command

    def _run(self, *args):
        return run(command_line(self.command, self.config_dir, *args), PostconfError).stdout

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

    def master_entries(self):
        """Every master.cf service, in master.cf's order (MasterEntry)."""
        return parse_master(self._run("-M").splitlines())

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
