"""Where the mailboxes meet the machine: the store as configured, Dovecot's
version and the Maildirs (the core follows the domains through mailsetup/reapply.py).

Which store is live: the file store (directory.json and the hash maps, every
release up to 0.3.0) while its directory.json is in /etc/mailsetup, the SQLite
store otherwise. mailsetup-imap's configure moves a file store into SQLite
(migrate_to_sqlite) and, once Postfix and Dovecot read SQLite, retires the
file store (retire_file_store): from then on SQLite is live.

Used by mailsetup-imap's maintainer helper and by the `mailsetup` command.
"""

import os
import re
import shutil
import subprocess

from mailsetup.i18n import _
from mailsetup.imap.mailboxes.model import MailboxError
from mailsetup.imap.mailboxes.sqlite_store import SqliteStore
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


def file_store(system, version=None):
    return FileStore(root=system.etc_dir, postfix_config_dir=system.postfix_config_dir, map_type=MAP_TYPE,
                     dovecot_version=version or dovecot_version())


def sqlite_store(system):
    return SqliteStore(root=system.directory_db_dir, etc_dir=system.etc_dir)


def live_backend(system):
    """"files" or "sqlite": which store Postfix and Dovecot read now (see the module docstring)."""
    return "files" if os.path.exists(os.path.join(system.etc_dir, "directory.json")) else "sqlite"


def open_store(system, version=None):
    """The mailbox store that Postfix and Dovecot read now."""
    if live_backend(system) == "files":
        return file_store(system, version)
    return sqlite_store(system)


def migrate_to_sqlite(system, version):
    """The SQLite store, created empty or filled from the file store if that is
    still live (all of it: the SQLite tables are made to hold exactly what
    directory.json holds, whatever an earlier, failed migration left there), and
    checked to read back the same. The file store stays as it was."""
    target = sqlite_store(system)
    target.install()
    files = file_store(system, version)
    if not os.path.exists(files.json_path):
        return target
    directory = files.load()
    with target.locked():
        directory.origin = target.load().origin
        target.commit(directory)
        if target.load() != directory:
            raise MailboxError(_("{path}: the mailbox directory read back from SQLite differs from "
                                 "{json}; the mailboxes stay where they were").format(
                path=target.directory_db, json=files.json_path))
    return target


def retire_file_store(system):
    """After the switch to SQLite: directory.json is kept (as directory.json.migrated,
    root's only) for the admin, the maps and the users file it generated go."""
    files = FileStore(root=system.etc_dir)
    if not os.path.exists(files.json_path):
        return False
    for name in ("domains", "mailboxes", "aliases", "senders"):
        for path in (files.map_path(name), files.map_path(name) + files.suffix):
            if os.path.exists(path):
                os.unlink(path)
    if os.path.exists(files.users_path):
        os.unlink(files.users_path)
    os.replace(files.json_path, files.json_path + ".migrated")
    return True


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
