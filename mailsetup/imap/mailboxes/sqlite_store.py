"""The SQLite backend of the mailbox store: the embedded default, for one server.

Two database files under the store's directory (/var/lib/mailsetup-imap/directory),
with the schema of sql_store.py:

    directory.sqlite   0644: what Postfix (through proxymap, as the postfix user) and
                       Dovecot's userdb read; no secrets, like the hash maps before it
    passwords.sqlite   0640 root:dovecot: passwords(address, password), Dovecot's passdb

A commit writes both in one SQLite transaction (the passwords file is ATTACHed;
SQLite commits attached databases atomically in its default rollback-journal
mode, which is why WAL is never turned on): readers see the old directory or
the new one, never half. Store.transaction takes a lock so that two runs take
turns instead of one refusing.
"""

import contextlib
import grp
import os
import sqlite3

from mailsetup.fileutil import write_if_changed
from mailsetup.i18n import _
from mailsetup.imap.mailboxes.model import MailboxError
from mailsetup.imap.mailboxes.sql_store import QUERIES, SqlStore, Connection

DIRECTORY_DB = "directory.sqlite"
PASSWORDS_DB = "passwords.sqlite"


class SqliteStore(SqlStore):
    backend = "sqlite"
    passwords_table = "secret.passwords"
    database_error = sqlite3.Error

    def __init__(self, root, etc_dir, users_group="dovecot"):
        """root: the databases' directory; etc_dir: /etc/mailsetup, under which
        Postfix's table files (sqlite/) and Dovecot 2.3's args files (dovecot/) go."""
        self.root = root
        self.etc_dir = etc_dir
        self.users_group = users_group
        self.last_changed = []

    @property
    def config_dir(self):
        return os.path.join(self.etc_dir, "sqlite")

    # -- paths

    @property
    def directory_db(self):
        return os.path.join(self.root, DIRECTORY_DB)

    @property
    def location(self):
        return self.directory_db

    @property
    def passwords_db(self):
        return os.path.join(self.root, PASSWORDS_DB)

    @property
    def lock_path(self):
        return os.path.join(self.root, ".lock")

    def map_path(self, name):
        """name: domains, mailboxes, aliases, senders."""
        return os.path.join(self.config_dir, f"{name}.cf")

    def map_spec(self, name):
        """What main.cf names. Through proxymap: Debian runs smtpd, cleanup and
        trivial-rewrite chrooted in /var/spool/postfix, where the file is not."""
        return f"proxy:sqlite:{self.map_path(name)}"

    def exists(self):
        return os.path.exists(self.directory_db) and os.path.exists(self.passwords_db)

    # -- setting up

    def install(self):
        """Create the databases (empty) and Postfix's table files unless they are there
        and right; the files that changed ([] when none)."""
        changed = []
        os.makedirs(self.root, exist_ok=True)
        os.chmod(self.root, 0o755)
        for path, mode in ((self.directory_db, 0o644), (self.passwords_db, 0o640)):
            if not os.path.exists(path):
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode))
                changed.append(path)
            os.chmod(path, mode)
        self._chgrp(self.passwords_db)
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            self._create_schema(db, "INTEGER")
            db.execute("COMMIT")
        for name, query in QUERIES.items():
            text = (f"# Written by mailsetup-imap: Postfix's {name} lookup in the mailbox directory.\n"
                    f"dbpath = {self.directory_db}\nquery = {query}\n")
            if write_if_changed(self.map_path(name), text.encode(), 0o644):
                changed.append(self.map_path(name))
        return changed

    def _chgrp(self, path):
        if not self.users_group:
            return
        try:
            gid = grp.getgrnam(self.users_group).gr_gid
        except KeyError:
            return  # Dovecot not installed yet: root only, 0640
        os.chown(path, -1, gid)

    @contextlib.contextmanager
    def _connect(self):
        if not self.exists():
            raise MailboxError(_("{path}: the mailbox directory is missing; "
                                 "run dpkg-reconfigure mailsetup-imap").format(path=self.directory_db))
        try:
            conn = sqlite3.connect(self.directory_db, isolation_level=None, timeout=30)
        except sqlite3.Error as e:
            raise self._unreadable(e) from None
        try:
            conn.execute("ATTACH DATABASE ? AS secret", (self.passwords_db,))
            yield Connection(conn, sqlite3.Error)
        except sqlite3.Error as e:
            raise self._unreadable(e) from None
        finally:
            conn.close()

    def _begin_write(self, db):
        db.execute("BEGIN IMMEDIATE")  # the write lock, before reading what is there

    def _unreadable(self, error):
        return MailboxError(_("{path}: cannot be read ({error}); restore it from a backup").format(
            path=self.directory_db, error=error))

    # -- reading without the passwords (anyone may: `mailsetup status`)

    def counts(self):
        """(domains, mailboxes), read from directory.sqlite alone."""
        conn = sqlite3.connect(f"file:{self.directory_db}?mode=ro", uri=True)
        try:
            return tuple(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                         for table in ("domains", "mailboxes"))
        finally:
            conn.close()
