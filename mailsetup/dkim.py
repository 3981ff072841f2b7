"""DKIM keys of the mail domains (mailsetup-filter): one 2048-bit key per domain.

Made with rspamd's own tool (`rspamadm dkim_keygen`), kept in our own
directory (a purge of rspamd deletes /var/lib/rspamd), readable by root and
the _rspamd group only. For DOMAIN with the selector SELECTOR:

    DKIM_DIR/DOMAIN.SELECTOR.key   the private key (root:_rspamd 0640), as rspamd's
                                   dkim_signing path "$domain.$selector.key" names it
    DKIM_DIR/DOMAIN.SELECTOR.txt   the TXT record to publish, as rspamadm printed it

In a group of servers sharing a PostgreSQL directory (mailsetup-imap), one key
per domain signs for every server, so that the one published record verifies
all their mail: the first server with a key for the domain puts it into the
group's directory, every other one takes it from there (group: an object with
shared_dkim_key and share_dkim_key, mailsetup/imap/mailboxes/pgsql_store.py;
the trust model is in doc/directory.md).
"""

import grp
import os
import re
import subprocess

from mailsetup.i18n import _
from mailsetup.errors import CommandFailed

SELECTOR = "mail"
KEY_BITS = 2048
RSPAMD_GROUP = "_rspamd"


def key_path(system, domain, selector=SELECTOR):
    return os.path.join(system.dkim_dir, f"{domain}.{selector}.key")


def record_path(system, domain, selector=SELECTOR):
    return os.path.join(system.dkim_dir, f"{domain}.{selector}.txt")


def key_files(system, domain, selector=SELECTOR):
    """The files ensure_key makes for domain: the private key and the record."""
    return [key_path(system, domain, selector), record_path(system, domain, selector)]


def public_key(system, domain, selector=SELECTOR):
    """The base64 public key (the p= value) of domain's key, or None without a key."""
    try:
        with open(record_path(system, domain, selector), encoding="ascii") as f:
            text = f.read()
    except FileNotFoundError:
        return None
    return parse_public_key(text)


def parse_public_key(text):
    """The p= value of a DKIM TXT record as rspamadm prints it (several quoted strings)."""
    joined = "".join(re.findall(r'"([^"]*)"', text)) or text
    match = re.search(r"\bp=([A-Za-z0-9+/=]+)", joined.replace(" ", ""))
    return match.group(1) if match else None


def txt_value(public, key_type="rsa"):
    """The DKIM record's value: what goes into TXT at SELECTOR._domainkey.DOMAIN."""
    return f"v=DKIM1; k={key_type}; p={public}"


def ensure_key(system, domain, selector=SELECTOR, group=None):
    """Create domain's key if it has none; True when one was made (or, in a group,
    taken from it). Existing keys are never replaced by new ones, since they are
    published in the DNS; in a group, the group's key replaces this server's."""
    if group is None:
        return _ensure_local_key(system, domain, selector)
    shared = group.shared_dkim_key(domain, selector)
    made = False
    if shared is None:
        made = _ensure_local_key(system, domain, selector)
        shared = group.share_dkim_key(domain, selector, *_read_key(system, domain, selector))
    if _read_key(system, domain, selector) == shared:
        return made
    _write_key(system, domain, selector, *shared)
    return True


def _read_key(system, domain, selector):
    try:
        with open(key_path(system, domain, selector), encoding="ascii") as k, \
                open(record_path(system, domain, selector), encoding="ascii") as r:
            return k.read(), r.read()
    except FileNotFoundError:
        return None


def _write_key(system, domain, selector, private_key, record):
    key, txt = key_path(system, domain, selector), record_path(system, domain, selector)
    os.makedirs(system.dkim_dir, mode=0o750, exist_ok=True)
    for path, text in ((key + ".new", private_key), (txt + ".new", record)):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(text)
    _protect(system, key + ".new")
    os.chmod(txt + ".new", 0o644)
    os.replace(key + ".new", key)
    os.replace(txt + ".new", txt)


def _ensure_local_key(system, domain, selector):
    key, record = key_path(system, domain, selector), record_path(system, domain, selector)
    if os.path.exists(key) and os.path.exists(record):
        return False
    os.makedirs(system.dkim_dir, mode=0o750, exist_ok=True)
    tmp_key, tmp_record = key + ".new", record + ".new"
    argv = ["rspamadm", "dkim_keygen", "-b", str(KEY_BITS), "-s", selector, "-d", domain, "-k", tmp_key]
    try:
        # stdout only: it is the record; warnings on stderr must not end up in it.
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise CommandFailed(_("{command} failed: {output}").format(
                command=" ".join(argv), output=(proc.stderr or proc.stdout).strip()))
        with open(tmp_record, "w", encoding="ascii") as f:
            f.write(proc.stdout)
        if parse_public_key(proc.stdout) is None:
            raise CommandFailed(_("rspamadm dkim_keygen printed no DKIM record: {output}").format(
                output=proc.stdout.strip()))
        _protect(system, tmp_key)
        os.chmod(tmp_record, 0o644)
        os.replace(tmp_key, key)
        os.replace(tmp_record, record)
    finally:
        for leftover in (tmp_key, tmp_record):
            if os.path.exists(leftover):
                os.unlink(leftover)
    return True


def _protect(system, path):
    """root:_rspamd 0640: rspamd's workers (group _rspamd) must read it, nobody else.
    (rspamadm makes it 0640 on bookworm but 0600 on trixie.)"""
    os.chmod(path, 0o640)
    if system.run_services:
        os.chown(path, 0, grp.getgrnam(RSPAMD_GROUP).gr_gid)
    try:
        os.chown(system.dkim_dir, 0, grp.getgrnam(RSPAMD_GROUP).gr_gid)
    except (KeyError, PermissionError):
        pass
