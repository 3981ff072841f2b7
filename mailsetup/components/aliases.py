"""Our alias table /etc/mailsetup/aliases: root, postmaster and the extra aliases.

It is a table of its own, listed first in alias_maps, so /etc/aliases is never
edited and a purge only has to drop the table from alias_maps.
"""

import os

from mailsetup.fileutil import read_bytes, write_atomic

HEADER = (
    "# Aliases managed by mailsetup (see aliases(5)).\n"
    "# Change them with: dpkg-reconfigure mailsetup\n"
    "# Hand edits here are read back into the questions and kept.\n"
)

# The file postalias builds beside the table, by map type.
DATABASE_SUFFIX = {"hash": ".db", "btree": ".db", "lmdb": ".lmdb", "cdb": ".cdb"}


def render(settings):
    lines = ["postmaster: root\n", f"root: {settings.admin_user}\n"]
    lines += [f"{name}: {', '.join(targets)}\n" for name, targets in settings.aliases]
    return (HEADER + "".join(lines)).encode()


def parse(data):
    """name -> [targets] from an aliases(5) file (continuation lines included)."""
    table = {}
    last = None
    for line in data.decode("utf-8", errors="replace").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0] in " \t" and last:
            table[last] += [t.strip() for t in line.split(",") if t.strip()]
            continue
        name, sep, rest = line.partition(":")
        if sep:
            last = name.strip().lower()
            table[last] = [t.strip() for t in rest.split(",") if t.strip()]
    return table


class Aliases:
    name = "aliases"

    def __init__(self, system):
        self.system = system
        self.path = system.aliases_path

    def files(self):
        return [self.path] + [self.path + suffix for suffix in sorted(set(DATABASE_SUFFIX.values()))]

    def read_current(self):
        database_type = self.system.postconf().effective(["default_database_type"])["default_database_type"]
        return {
            "text": read_bytes(self.path),
            "database_type": database_type,
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
        argv = ["postalias"]
        if self.system.postfix_config_dir:
            argv += ["-c", self.system.postfix_config_dir]
        self.system.run(argv + [f"{plan['build']}:{self.path}"])

    @staticmethod
    def answers_from_system(current):
        if current["text"] is None:
            return {}
        table = parse(current["text"])
        answers = {}
        if table.get("root"):
            answers["admin_user"] = table["root"][0]
        extra = [(name, targets) for name, targets in table.items()
                 if name not in ("root", "postmaster") and targets]
        answers["aliases"] = ", ".join(f"{name}: {' '.join(targets)}" for name, targets in extra)
        return answers
