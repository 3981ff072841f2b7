"""Rspamd for mailsetup-filter: our files in /etc/rspamd/local.d.

Everything rspamd ships under /etc/rspamd is a dpkg conffile, never edited;
files in local.d are merged into the stock configuration and owned by nobody,
so they are ours alone (purge removes them). doc/rspamd-facts.md has the
reasons for each setting.
"""

import os

from mailsetup.fileutil import read_bytes, write_atomic

# Our files in local.d (see local_files).
FILE_NAMES = ("actions.conf", "dkim_signing.conf", "dmarc.conf", "greylist.conf", "options.inc", "redis.conf")
HEADER = "# Written by mailsetup-filter; change it with dpkg-reconfigure mailsetup-filter.\n"
RSPAMD_PID = "/run/rspamd/rspamd.pid"


def _list(items):
    return "[" + ", ".join(f'"{i}"' for i in items) + "]"


def local_files(settings, mynetworks, dkim_dir):
    """file name in local.d -> content."""
    files = {
        # Postfix's trusted networks are local for rspamd too: no SPF, DMARC or
        # greylisting for them, and their mail is DKIM-signed (sign_local).
        "options.inc": f"local_addrs = {_list(mynetworks)};\n",
        "redis.conf": 'servers = "127.0.0.1";\n',
        # Greylisting every unknown sender needs a greylist threshold below any score;
        # rspamd otherwise greylists by score only.
        "actions.conf": "reject = 15;\nadd_header = 6;\ngreylist = %s;\n" % ("-10" if settings.greylisting else "4"),
        "greylist.conf": ("enabled = true;\ngreylist_min_score = -1000;\n" if settings.greylisting
                          else "enabled = false;\n"),
        # Honour a domain's DMARC policy (by default p=reject only adds 2 points).
        "dmarc.conf": 'actions {\n  reject = "reject";\n  quarantine = "add header";\n}\n',
        "dkim_signing.conf": (
            f'path = "{dkim_dir}/$domain.$selector.key";\n'
            'selector = "mail";\n'
            "sign_authenticated = true;\n"
            "sign_local = true;\n"
            "sign_inbound = false;\n"
            "allow_username_mismatch = true;\n"
            'use_domain = "header";\n'),
    }
    return {name: (HEADER + text).encode() for name, text in files.items()}


class RspamdConfig:
    name = "rspamd"

    def __init__(self, system, mynetworks):
        self.system = system
        self.mynetworks = mynetworks

    def path(self, name):
        return os.path.join(self.system.rspamd_local_dir, name)

    def files(self):
        return [self.path(name) for name in FILE_NAMES]

    def read_current(self):
        return {path: read_bytes(path) for path in self.files()}

    def plan(self, settings, current):
        wanted = {self.path(n): data for n, data in
                  local_files(settings, self.mynetworks, self.system.dkim_dir).items()}
        return {p: data for p, data in wanted.items() if current[p] != data}

    def record_originals(self, state, plan, current):
        for path in plan:
            state.record_file_original("rspamd-" + os.path.basename(path), current[path])

    def apply(self, plan):
        for path, data in plan.items():
            write_atomic(path, data)

    def check(self):
        """rspamadm parses the whole configuration before rspamd is reloaded."""
        self.system.run(["rspamadm", "configtest"])


def running():
    try:
        with open(RSPAMD_PID, encoding="ascii") as f:
            pid = int(f.read().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None
