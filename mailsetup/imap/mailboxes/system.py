"""Where the mailboxes meet the machine: the store as configured, Dovecot's
version and the Maildirs (the core follows the domains through mailsetup/reapply.py).

Which store is live: the file store (directory.json and the hash maps, every
release up to 0.3.0) while its directory.json is in /etc/mailsetup; the
PostgreSQL store of a group while /etc/mailsetup/pgsql/directory.conf is
there; the SQLite store otherwise. mailsetup-imap's configure moves a file
store into SQLite (migrate_to_sqlite) and, once Postfix and Dovecot read
SQLite, retires the file store (retire_file_store). With the PostgreSQL
directory chosen, it brings the SQLite directory into PostgreSQL when that
has no mailboxes yet (the first server of a group), and back when the
choice goes back to SQLite (adopt).

Used by mailsetup-imap's maintainer helper and by the `mailsetup` command.
"""

import os
import re
import shutil
import subprocess

from mailsetup.i18n import _
from mailsetup.imap.mailboxes.model import MailboxError
from mailsetup.imap.mailboxes.pgsql_store import SETTINGS_FILE, PgsqlStore
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


def pgsql_settings_path(system):
    return os.path.join(system.etc_dir, "pgsql", SETTINGS_FILE)


def pgsql_store(system, settings=None):
    """The PostgreSQL store of the answers in settings, or, without them, as last applied."""
    if settings is None:
        return PgsqlStore.from_settings_file(system.etc_dir, system.directory_db_dir)
    return PgsqlStore(system.etc_dir, system.directory_db_dir, settings.pg_hosts, settings.pg_database,
                      settings.pg_user, settings.pg_password, settings.server_address)


def live_backend(system):
    """"files", "pgsql" or "sqlite": which store Postfix and Dovecot read now (see the module docstring)."""
    if os.path.exists(os.path.join(system.etc_dir, "directory.json")):
        return "files"
    return "pgsql" if os.path.exists(pgsql_settings_path(system)) else "sqlite"


def open_store(system, version=None):
    """The mailbox store that Postfix and Dovecot read now."""
    backend = live_backend(system)
    if backend == "files":
        return file_store(system, version)
    return pgsql_store(system) if backend == "pgsql" else sqlite_store(system)


def adopt(target, source, replace=False):
    """Bring source's directory into target unless target already has mailboxes (a
    server joining a group finds them there); refuses when both have mailboxes
    and they differ, since one side's would no longer be seen. replace: target is
    an old copy that nobody reads (this server's SQLite directory while it was in
    a group), made the same as source whatever it holds. Homes are kept (new ones
    get target's server)."""
    wanted = source.load()
    with target.locked():
        have = target.load()
        if replace:
            have.mailboxes = {}
        elif have.mailboxes and wanted.mailboxes and set(have.mailboxes) != set(wanted.mailboxes):
            raise MailboxError(_("{target} and {source} both hold mailboxes, and not the same ones; "
                                 "nothing was changed").format(
                target=target.location, source=source.location))
        if have.mailboxes or have == wanted:
            return False
        wanted.origin = have.origin
        if isinstance(target, SqliteStore):
            for mailbox in wanted.mailboxes.values():
                mailbox.home = ""  # one server: every mailbox is here
        target.commit(wanted)
    return True


def leaving_pgsql(system, settings):
    return settings.directory == "sqlite" and live_backend(system) == "pgsql"


def retire_pgsql(system):
    """After the switch back to SQLite: the PostgreSQL settings and tables of this server go
    (the database and its other servers stay as they are)."""
    directory = os.path.dirname(pgsql_settings_path(system))
    if os.path.isdir(directory):
        shutil.rmtree(directory)
        return True
    return False


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
