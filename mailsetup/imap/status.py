"""mailsetup-imap's section of `mailsetup status` (see cli/status.py): whether
Dovecot runs, which mailbox directory is live and whether it answers, and how
many mail domains and mailboxes there are."""

import os
import sqlite3

from mailsetup import services
from mailsetup.fileutil import read_bytes
from mailsetup.i18n import _
from mailsetup.imap.mailboxes import system as mailbox_system
from mailsetup.imap.mailboxes.model import MailboxError
from mailsetup.imap.mailboxes.store import FileStore

DOVECOT = "dovecot"


def dovecot_running(system):
    return services.of(system).running(DOVECOT)


def count_mailboxes(system):
    """(backend, domains, mailboxes, error) when mailsetup-imap is set up, else Nones.

    Read from what anyone may read: the SQLite directory without the passwords, or
    the file store's generated maps (directory.json is root's only)."""
    if not mailbox_system.configured(system):
        return None, None, None, None
    if mailbox_system.live_backend(system) == "files":
        mailboxes_map = FileStore(root=system.etc_dir).map_path("mailboxes")
        lines = (read_bytes(mailboxes_map) or b"").decode("utf-8", "replace").splitlines()
        mailboxes = sum(1 for line in lines if line.strip() and not line.startswith("#"))
        return "files", len(system.virtual_domains()), mailboxes, None
    if mailbox_system.live_backend(system) == "pgsql":
        if not os.access(mailbox_system.pgsql_settings_path(system), os.R_OK):
            return "pgsql", None, None, None  # the connection settings are root's: not asked
        try:
            return "pgsql", *mailbox_system.pgsql_store(system).counts(), None
        except MailboxError as e:
            return "pgsql", None, None, str(e)
    store = mailbox_system.sqlite_store(system)
    try:
        domains, mailboxes = store.counts()
    except sqlite3.Error as e:
        return "sqlite", None, None, f"{store.directory_db}: {e}"
    return "sqlite", domains, mailboxes, None


def running(system):
    return {"dovecot_running": dovecot_running(system)}


def collect(system, postfix_configured):
    """The counts; they do not need Postfix."""
    backend, domains, mailboxes, error = count_mailboxes(system)
    return {"directory": backend, "directory_error": error, "domains": domains, "mailboxes": mailboxes,
            "directory_path": system.directory_db_dir}


def print_running(status, out):
    # Dovecot only matters once mailsetup-imap set up mailboxes; say it runs whenever it does.
    if status.get("domains") is not None or status.get("dovecot_running"):
        print(_("Dovecot: running") if status.get("dovecot_running") else _("Dovecot: NOT running"), file=out)


def print_details(status, out):
    if status.get("directory") == "sqlite":
        if status.get("directory_error"):
            # Translators: {error} is SQLite's own message (in English).
            print(_("Mailbox directory: SQLite, NOT answering: {error}").format(error=status["directory_error"]),
                  file=out)
        else:
            print(_("Mailbox directory: SQLite in {path}, answering").format(path=status["directory_path"]),
                  file=out)
    elif status.get("directory") == "pgsql":
        if status.get("directory_error"):
            print(_("Mailbox directory: PostgreSQL, NOT answering: {error}").format(error=status["directory_error"]),
                  file=out)
        elif status.get("domains") is None:
            print(_("Mailbox directory: PostgreSQL, shared by a group of servers (run as root to see "
                    "whether it answers)"), file=out)
        else:
            print(_("Mailbox directory: PostgreSQL, shared by a group of servers, answering"), file=out)
    elif status.get("directory") == "files":
        print(_("Mailbox directory: files (/etc/mailsetup/directory.json); "
                "dpkg-reconfigure mailsetup-imap moves it into SQLite"), file=out)
    if status.get("domains") is not None:
        print(_("Mail domains: {domains}, mailboxes: {mailboxes}").format(
            domains=status["domains"], mailboxes=status["mailboxes"]), file=out)


def healthy(status):
    """Mailboxes set up: Dovecot must run too, and the directory answer."""
    if status.get("directory_error"):
        return False
    return status.get("domains") is None or bool(status.get("dovecot_running"))
