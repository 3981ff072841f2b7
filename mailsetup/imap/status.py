"""mailsetup-imap's section of `mailsetup status` (see cli/status.py): whether
Dovecot runs, and how many mail domains and mailboxes there are."""

from mailsetup import services
from mailsetup.fileutil import read_bytes
from mailsetup.i18n import _
from mailsetup.imap.mailboxes import system as mailbox_system
from mailsetup.imap.mailboxes.store import FileStore

DOVECOT = "dovecot"


def dovecot_running(system):
    return services.of(system).running(DOVECOT)


def count_mailboxes(system):
    """(domains, mailboxes) when mailsetup-imap is set up, else (None, None).

    Counted in the generated maps, which anyone may read (directory.json is root's only)."""
    if not mailbox_system.configured(system):
        return None, None
    mailboxes_map = FileStore(root=system.etc_dir).map_path("mailboxes")
    lines = (read_bytes(mailboxes_map) or b"").decode("utf-8", "replace").splitlines()
    mailboxes = sum(1 for line in lines if line.strip() and not line.startswith("#"))
    return len(system.virtual_domains()), mailboxes


def running(system):
    return {"dovecot_running": dovecot_running(system)}


def collect(system, postfix_configured):
    """The counts; they do not need Postfix."""
    domains, mailboxes = count_mailboxes(system)
    return {"domains": domains, "mailboxes": mailboxes}


def print_running(status, out):
    # Dovecot only matters once mailsetup-imap set up mailboxes; say it runs whenever it does.
    if status.get("domains") is not None or status.get("dovecot_running"):
        print(_("Dovecot: running") if status.get("dovecot_running") else _("Dovecot: NOT running"), file=out)


def print_details(status, out):
    if status.get("domains") is not None:
        print(_("Mail domains: {domains}, mailboxes: {mailboxes}").format(
            domains=status["domains"], mailboxes=status["mailboxes"]), file=out)


def healthy(status):
    """Mailboxes set up: Dovecot must run too."""
    return status.get("domains") is None or bool(status.get("dovecot_running"))
