"""Rspamd for mailsetup-filter: our files in /etc/rspamd/local.d.

Everything rspamd ships under /etc/rspamd is a dpkg conffile, never edited;
files in local.d are merged into the stock configuration and owned by no
package; an admin's own are recorded before we first write them and put back
at purge, the ones we created are removed. doc/rspamd-facts.md has the
reasons for each setting.
"""

import os
import shutil

from mailsetup.filter import access
from mailsetup.fileutil import read_bytes, write_atomic

# Our files in local.d (see local_files); the access lists' maps are written by
# components/access_maps.py.
FILE_NAMES = ("actions.conf", "antivirus.conf", "classifier-bayes.conf", "dkim_signing.conf", "worker-proxy.inc",
              "dmarc.conf", "greylist.conf", "multimap.conf", "options.inc", "redis.conf")
# multimap symbols of the allow lists (kind -> symbol, envelope-sender filter)
ALLOW_SYMBOLS = {access.IP: ("MAILSETUP_ALLOW_IP", None),
                 access.DOMAIN: ("MAILSETUP_ALLOW_FROM_DOMAIN", "email:domain"),
                 access.ADDRESS: ("MAILSETUP_ALLOW_FROM_ADDRESS", "email:addr")}
HEADER = "# Written by mailsetup-filter; change it with dpkg-reconfigure mailsetup-filter.\n"
RESOLV_CONF = "/etc/resolv.conf"
# rspamd will not start without a DNS server ("cannot parse resolv.conf"); where
# resolv.conf names none (a closed network) it gets this one: nothing may answer
# there, so DNS checks fail (SPF, DNSBLs), but mail is filtered and signed.
FALLBACK_NAMESERVER = "127.0.0.1:53"


def _list(items):
    return "[" + ", ".join(f'"{i}"' for i in items) + "]"


def _multimap(local_dir):
    """One rule per allow list: a small bonus, and (greylist.conf) no greylisting."""
    rules = []
    for kind, (symbol, sender_filter) in ALLOW_SYMBOLS.items():
        rule = [f'  type = "{"ip" if sender_filter is None else "from"}";']
        if sender_filter:
            rule.append(f'  filter = "{sender_filter}";')
        rule += [f'  map = "{os.path.join(local_dir, access.RSPAMD_MAPS[kind])}";',
                 f'  description = "{kind} in the mailsetup allow list";',
                 "  score = -2.0;"]
        rules.append(symbol + " {\n" + "\n".join(rule) + "\n}\n")
    return "".join(rules)


def _greylist(settings, local_dir):
    if not settings.greylisting:
        return "enabled = false;\n"
    symbols = ", ".join(f'"{symbol}"' for symbol, _filter in ALLOW_SYMBOLS.values())
    return ("enabled = true;\n"
            "greylist_min_score = -1000;\n"
            f'whitelisted_ip = "{os.path.join(local_dir, access.RSPAMD_MAPS[access.IP])}";\n'
            f"whitelist_symbols = [{symbols}];\n")


# The milter socket, relative to Postfix's queue directory.  A unix socket
# instead of the stock TCP localhost:11332: about three times the messages a
# second (bench/filter.py; a TCP milter round trip costs ~40 ms here).
MILTER_DIR = "rspamd"
MILTER_SOCKET = f"{MILTER_DIR}/milter.sock"

# clamav-daemon's socket (stock clamd.conf: LocalSocket, mode 666).
CLAMD_SOCKET = "/run/clamav/clamd.ctl"


def _antivirus(settings):
    if not settings.antivirus:
        return "# Virus scanning is off (mailsetup-filter/antivirus).\n"
    # A virus is refused at the end of DATA; if clamd is down, mail is not held.
    return ("clamav {\n"
            '  type = "clamav";\n'
            f'  servers = "{CLAMD_SOCKET}";\n'
            '  symbol = "CLAM_VIRUS";\n'
            '  action = "reject";\n'
            "  message = '${SCANNER}: virus found: \"${VIRUS}\"';\n"
            "  scan_mime_parts = true;\n"
            "  scan_text_mime = true;\n"
            "  scan_image_mime = false;\n"
            "}\n")


def has_nameserver(resolv_conf=RESOLV_CONF):
    """Whether resolv.conf names a DNS server, as rspamd needs one to start."""
    try:
        with open(resolv_conf, encoding="utf-8", errors="replace") as f:
            return any(line.split()[:1] == ["nameserver"] and len(line.split()) > 1 for line in f)
    except OSError:
        return False


def _options(mynetworks, nameserver):
    # Postfix's trusted networks are local for rspamd too: no SPF, DMARC or
    # greylisting for them, and their mail is DKIM-signed (sign_local).
    text = f"local_addrs = {_list(mynetworks)};\n"
    if not nameserver:
        text += ("# /etc/resolv.conf names no DNS server; the next configure follows it again once it does.\n"
                 f'dns {{\n  nameserver = ["{FALLBACK_NAMESERVER}"];\n}}\n')
    return text


def local_files(settings, mynetworks, dkim_dir, local_dir, queue_directory="/var/spool/postfix",
                nameserver=True):
    """file name in local.d -> content. nameserver: whether resolv.conf names a DNS server."""
    files = {
        # Replaces the stock bind_socket (localhost:11332); changing it needs a restart.
        # rspamd (as _rspamd under systemd) cannot give the socket to group postfix
        # (its chown fails, only logged), so the socket is 0666: safe, as its directory
        # (_rspamd:postfix 0750, make_socket_dir) lets only rspamd and Postfix reach it.
        "worker-proxy.inc": f'bind_socket = "{queue_directory}/{MILTER_SOCKET} mode=0666 owner=_rspamd";\n',
        "options.inc": _options(mynetworks, nameserver),
        "redis.conf": 'servers = "127.0.0.1";\n',
        "antivirus.conf": _antivirus(settings),
        # Bayes keeps its statistics in Redis (stock backend, redis.conf above);
        # it learns by itself from clear spam (reject) and clear ham, and from
        # `rspamc learn_spam` / `learn_ham`.
        "classifier-bayes.conf": "autolearn = true;\n",
        # Greylisting every unknown sender needs a greylist threshold below any score;
        # rspamd otherwise greylists by score only.
        "actions.conf": "reject = 15;\nadd_header = 6;\ngreylist = %s;\n" % ("-10" if settings.greylisting else "4"),
        "greylist.conf": _greylist(settings, local_dir),
        # The access lists' allowed clients and senders (mailsetup access allow).
        "multimap.conf": _multimap(local_dir),
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

    def __init__(self, system, mynetworks, resolv_conf=None):
        self.system = system
        self.mynetworks = mynetworks
        self.resolv_conf = resolv_conf or RESOLV_CONF

    def path(self, name):
        return os.path.join(self.system.rspamd_local_dir, name)

    def files(self):
        return [self.path(name) for name in FILE_NAMES]

    def read_current(self):
        return {path: read_bytes(path) for path in self.files()}

    def queue_directory(self):
        return self.system.postconf().effective(["queue_directory"])["queue_directory"]

    def plan(self, settings, current):
        wanted = {self.path(n): data for n, data in
                  local_files(settings, self.mynetworks, self.system.dkim_dir, self.system.rspamd_local_dir,
                              self.queue_directory(), has_nameserver(self.resolv_conf)).items()}
        return {p: data for p, data in wanted.items() if current[p] != data}

    def needs_restart(self, plan):
        """rspamd binds its sockets at start; a HUP does not move the milter socket."""
        return self.path("worker-proxy.inc") in plan

    def make_socket_dir(self):
        """The milter socket's directory: rspamd creates the socket, Postfix (group) uses it."""
        path = os.path.join(self.queue_directory(), MILTER_DIR)
        os.makedirs(path, mode=0o750, exist_ok=True)
        shutil.chown(path, "_rspamd", "postfix")
        os.chmod(path, 0o750)
        return path

    def record_originals(self, state, plan, current):
        """Once per file, before our first write: a copy with its mode and owner
        (rspamd-NAME.orig), or rspamd-NAME.absent; postrm purge puts them back."""
        for path in plan:
            content = current[path]
            # Ours already (the state was lost): nothing of the admin's to keep.
            if content is not None and content.startswith(HEADER.encode()):
                content = None
            state.record_file_original("rspamd-" + os.path.basename(path), content, like=path)

    def apply(self, plan):
        for path, data in plan.items():
            write_atomic(path, data)

    def check(self):
        """rspamadm parses the whole configuration before rspamd is reloaded."""
        self.system.run(["rspamadm", "configtest"])
