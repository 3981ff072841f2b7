"""Where the mailboxes meet the machine: the store as configured, Dovecot's
version, the Maildirs, and the core settings that depend on the domains.

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


def reapply_core(system):
    """Apply the core answers recorded last time again, so that mydestination
    follows the virtual domains (a domain is local or virtual, never both).

    Returns the core Outcome, or None when the core was never configured."""
    from mailsetup.core import apply as core  # imported late: core imports the components
    settings = core.applied_settings(system)
    if settings is None:
        return None
    outcome = core.apply(settings, system)
    sign_new_domains(system, settings)
    return outcome


def sign_new_domains(system, core_settings):
    """With mailsetup-filter, a new mail domain gets its DKIM key at once (and rspamd, which
    signs only domains with a key, is told); see `mailsetup dns` for the record to publish."""
    from mailsetup.filter import apply as filter_core  # imported late: only with mailsetup-filter configured
    if system.run_services and filter_core.configured(system):
        if filter_core.ensure_keys(system, filter_core.mail_domains(system, core_settings)):
            filter_core.reload_rspamd(system)
