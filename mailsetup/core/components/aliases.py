"""Our alias table /etc/mailsetup/aliases: root, postmaster and the extra aliases.

It is a table of its own, listed first in alias_maps, so /etc/aliases is never
edited and a purge only has to drop the table from alias_maps.

A local target is written with the host name (root: alice@mail.example.org).
Bare, Postfix would make it alice@$myorigin, the mail domain, which becomes a
mailbox domain with mailsetup-imap, where alice has no mailbox; the host name
is always delivered here (mailsetup-imap refuses it as a mailbox domain).
"""

import os

from mailsetup.fileutil import read_bytes, write_atomic
from mailsetup.postfix_tools import DATABASE_SUFFIX, parse_aliases, postalias_line

HEADER = (
    "# Aliases managed by mailsetup (see aliases(5)).\n"
    "# Change them with: dpkg-reconfigure mailsetup\n"
    "# Hand edits here are read back into the questions and kept.\n"
)


def qualified(target, hostname):
    """A local name as name@hostname; a mail address as it is."""
    return target if "@" in target else f"{target}@{hostname}"


def render(settings):
    def line(name, targets):
        return f"{name}: {', '.join(qualified(t, settings.hostname) for t in targets)}\n"
    lines = [line("postmaster", ["root"]), line("root", [settings.admin_user])]
    lines += [line(name, targets) for name, targets in settings.aliases]
    return (HEADER + "".join(lines)).encode()


# The one aliases(5) reader (System.system_alias_names reads /etc/aliases with it too).
parse = parse_aliases


def local_name(target, host_names):
    """name@HOST as the bare name when HOST is one of host_names, else the target as it is."""
    name, at, host = target.rpartition("@")
    return name if at and name and host.lower().rstrip(".") in host_names else target


def host_names(table, myhostname):
    """The names render() may have qualified local targets with: myhostname, localhost,
    and the host of our own "postmaster: root@HOST" line (myhostname before a hand edit)."""
    names = {myhostname.lower(), "localhost"}
    for target in table.get("postmaster", []):
        name, at, host = target.rpartition("@")
        if at and name == "root":
            names.add(host.lower().rstrip("."))
    return names


class Aliases:
    name = "aliases"

    def __init__(self, system):
        self.system = system
        self.path = system.aliases_path

    def files(self):
        return [self.path] + [self.path + suffix for suffix in sorted(set(DATABASE_SUFFIX.values()))]

    def read_current(self):
        effective = self.system.postconf().effective(["default_database_type", "myhostname"])
        database_type = effective["default_database_type"]
        return {
            "text": read_bytes(self.path),
            "database_type": database_type,
            "myhostname": effective["myhostname"],
            "built": os.path.exists(self.path + DATABASE_SUFFIX.get(database_type, ".db")),
        }

    def plan(self, settings, current):
        """{"text": new content or None, "build": map type} or None when all is in place."""
        wanted = render(settings)
        text = wanted if wanted != current["text"] else None
        if text is None and current["built"]:
            return None
        return {"text": text, "build": current["database_type"]}

    def record_originals(self, state, plan, current):
        pass  # the whole table is ours: purge removes it

    def apply(self, plan):
        if not plan:
            return
        if plan["text"] is not None:
            write_atomic(self.path, plan["text"])
        self.system.run(postalias_line(f"{plan['build']}:{self.path}", self.system.postfix_config_dir))

    @staticmethod
    def answers_from_system(current):
        if current["text"] is None:
            return {}
        # Local targets read back as the bare names the questions take.
        table = parse(current["text"])
        hosts = host_names(table, current["myhostname"])
        table = {name: [local_name(t, hosts) for t in targets] for name, targets in table.items()}
        answers = {}
        if table.get("root"):
            answers["admin_user"] = table["root"][0]
        extra = [(name, targets) for name, targets in table.items()
                 if name not in ("root", "postmaster") and targets]
        answers["aliases"] = ", ".join(f"{name}: {' '.join(targets)}" for name, targets in extra)
        return answers
