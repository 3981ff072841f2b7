"""Where the mailboxes meet the machine: the store as configured, Dovecot's
version and the Maildirs (the core follows the domains through mailsetup/reapply.py).

Used by mailsetup-imap's maintainer helper and by the `mailsetup` command.
"""

import os
import re
import shutil
import subprocess

from mailsetup.i18n import _
from mailsetup.imap.mailboxes.model import MailboxError
from mailsetup.imap.mailboxes.store import FileStore
from mailsetup.state import StateDir

# Postfix map type of the generated tables: hash needs no extra package on
# bookworm or trixie and is as fast as lmdb/cdb at 10,000 entries (doc/dovecot-facts.md).
MAP_TYPE = "hash"


def dovecot_version(command="dovecot"):
    """"2.3" or "2.4", from `dovecot --version`; the configuration syntax differs."""
    try:
        out = subprocess.run([command, "--version"], capture_output=True, text=True, check=False).stdout
    except FileNotFoundError:
        raise MailboxError(_("{command} not found: install mailsetup-imap").format(command=command)) from None
    match = re.match(r"\s*(\d+)\.(\d+)", out)
    if not match:
        raise MailboxError(_("{command} --version printed no version: {output}").format(
            command=command, output=out.strip()))
    major, minor = int(match.group(1)), int(match.group(2))
    return "2.3" if (major, minor) < (2, 4) else "2.4"


def imap_state(system):
    return StateDir(system.imap_state_dir)


def configured(system):
    """Whether mailsetup-imap has been configured (its first apply finished)."""
    return imap_state(system).applied() is not None


def open_store(system, version=None):
    """The mailbox store as mailsetup-imap set it up."""
    return FileStore(root=system.etc_dir, postfix_config_dir=system.postfix_config_dir, map_type=MAP_TYPE,
                     dovecot_version=version or dovecot_version())


def require_configured(system):
    if not configured(system):
        raise MailboxError(_("mailboxes are not set up: install mailsetup-imap first (apt install mailsetup-imap)"))
    return open_store(system)


def maildir_of(system, addr):
    """The home directory of a mailbox, as Dovecot's mail_home makes it."""
    local, _at, domain = addr.partition("@")
    return os.path.join(system.vmail_dir, domain, local)


def remove_mail(system, addr):
    """Delete a mailbox's stored mail (mailbox del --purge-mail)."""
    path = maildir_of(system, addr)
    if os.path.isdir(path):
        shutil.rmtree(path)
        return True
    return False
