"""The SQLite backend of the mailbox store: the embedded default.

Two database files under the store's directory (/var/lib/mailsetup-imap/directory):

    directory.sqlite   0644: what Postfix (through proxymap, as the postfix user) and
                       Dovecot's userdb read; no secrets, like the hash maps before it
        meta(key, value)                      schema version, generation (bumped by every commit)
        domains(name)
        mailboxes(address, domain, local, quota_bytes, quota, home_server)
        aliases(address, position, target)    an alias's targets in order; @domain is a catch-all
        lists(address), list_members(address, position, member)
        postfix_aliases(address, destinations)   virtual_alias_maps, derived (store.alias_rows)
        postfix_senders(address, logins)         smtpd_sender_login_maps, derived (store.sender_rows)
    passwords.sqlite   0640 root:dovecot: passwords(address, password), Dovecot's passdb

A commit writes both in one SQLite transaction (the passwords file is ATTACHed;
SQLite commits attached databases atomically in its default rollback-journal
mode, which is why WAL is never turned on): readers see the old directory or
the new one, never half. Postfix and Dovecot query on every lookup, so a new
mailbox receives mail the moment its commit returns; nothing needs a reload
and nothing needs to wait for a reader to notice a file.

The queries (QUERIES, and components/dovecot.py's) are plain SQL that
PostgreSQL runs as well. Only the mailsetup command writes; it loads the whole
Directory, changes it in memory (model.py checks every change) and commits the
difference: rows that went are deleted, rows that came are inserted. A commit
refuses when another run committed since the load (the generation), so two
runs never overwrite each other; Store.transaction takes a lock so that they
take turns instead.
"""

import contextlib
import grp
import os
import sqlite3

from mailsetup.fileutil import write_if_changed
from mailsetup.i18n import _
from mailsetup.imap.mailboxes.model import Directory, Mailbox, MailboxError, format_quota
from mailsetup.imap.mailboxes.store import Store, alias_rows, sender_rows

SCHEMA_VERSION = 1
DIRECTORY_DB = "directory.sqlite"
PASSWORDS_DB = "passwords.sqlite"

DIRECTORY_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS domains (name TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS mailboxes (
    address TEXT PRIMARY KEY,
    domain TEXT NOT NULL,
    local TEXT NOT NULL,
    quota_bytes INTEGER NOT NULL DEFAULT 0,
    quota TEXT,                          -- as Dovecot reads it ("2G"), NULL for no limit
    home_server TEXT NOT NULL DEFAULT '' -- '' for this server
);
CREATE TABLE IF NOT EXISTS aliases (
    address TEXT NOT NULL, position INTEGER NOT NULL, target TEXT NOT NULL,
    PRIMARY KEY (address, position));
CREATE TABLE IF NOT EXISTS lists (address TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS list_members (
    address TEXT NOT NULL, position INTEGER NOT NULL, member TEXT NOT NULL,
    PRIMARY KEY (address, position));
CREATE TABLE IF NOT EXISTS postfix_aliases (address TEXT PRIMARY KEY, destinations TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS postfix_senders (address TEXT PRIMARY KEY, logins TEXT NOT NULL);
"""
PASSWORDS_SCHEMA = "CREATE TABLE IF NOT EXISTS {db}passwords (address TEXT PRIMARY KEY, password TEXT NOT NULL);"

# Postfix's lookups (proxy:sqlite: tables, see map_spec); %s is the key, quoted by Postfix.
QUERIES = {
    "domains": "SELECT 'OK' FROM domains WHERE name = '%s'",
    "mailboxes": "SELECT domain || '/' || local || '/' FROM mailboxes WHERE address = '%s'",
    "aliases": "SELECT destinations FROM postfix_aliases WHERE address = '%s'",
    "senders": "SELECT logins FROM postfix_senders WHERE address = '%s'",
}

# table -> (columns, the key columns), in the order a commit writes them
TABLES = {
    "domains": (("name",), 1),
    "mailboxes": (("address", "domain", "local", "quota_bytes", "quota", "home_server"), 1),
    "secret.passwords": (("address", "password"), 1),
    "aliases": (("address", "position", "target"), 2),
    "lists": (("address",), 1),
    "list_members": (("address", "position", "member"), 2),
    "postfix_aliases": (("address", "destinations"), 1),
    "postfix_senders": (("address", "logins"), 1),
}


def rows_of(directory):
    """table -> the set of rows that describe directory."""
    mailboxes = directory.mailboxes.items()
    return {
        "domains": {(d,) for d in directory.domains},
        "mailboxes": {(a, a.partition("@")[2], a.partition("@")[0], m.quota_bytes,
                       format_quota(m.quota_bytes) if m.quota_bytes else None, "") for a, m in mailboxes},
        "secret.passwords": {(a, m.password_hash) for a, m in mailboxes},
        "aliases": {(k, i, t) for k, targets in directory.aliases.items() for i, t in enumerate(targets)},
        "lists": {(k,) for k in directory.lists},
        "list_members": {(k, i, m) for k, members in directory.lists.items() for i, m in enumerate(members)},
        "postfix_aliases": set(alias_rows(directory)),
        "postfix_senders": set(sender_rows(directory)),
    }


class SqliteStore(Store):
    backend = "sqlite"

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
            db.executescript_in_transaction(DIRECTORY_SCHEMA + PASSWORDS_SCHEMA.format(db="secret."))
            if db.generation() is None:
                db.execute("INSERT INTO meta (key, value) VALUES ('schema', ?), ('generation', '0')",
                           (str(SCHEMA_VERSION),))
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
            yield _Connection(conn)
        except sqlite3.Error as e:
            raise self._unreadable(e) from None
        finally:
            conn.close()

    def _unreadable(self, error):
        return MailboxError(_("{path}: cannot be read ({error}); restore it from a backup").format(
            path=self.directory_db, error=error))

    # -- load / commit

    def load(self):
        with self._connect() as db:
            db.execute("BEGIN")  # one consistent read of every table
            directory = self._read(db)
            directory.origin = db.generation()
            db.execute("COMMIT")
        return directory

    @staticmethod
    def _read(db):
        passwords = dict(db.rows("SELECT address, password FROM secret.passwords"))
        mailboxes = {a: Mailbox(passwords.get(a, ""), q)
                     for a, q in db.rows("SELECT address, quota_bytes FROM mailboxes")}
        aliases, lists = {}, {}
        for key, target in db.rows("SELECT address, target FROM aliases ORDER BY address, position"):
            aliases.setdefault(key, []).append(target)
        for (key,) in db.rows("SELECT address FROM lists"):
            lists[key] = []
        for key, member in db.rows("SELECT address, member FROM list_members ORDER BY address, position"):
            lists.setdefault(key, []).append(member)
        domains = [d for (d,) in db.rows("SELECT name FROM domains")]
        return Directory(domains, mailboxes, aliases, lists)

    def commit(self, directory):
        with self.locked(), self._connect() as db:
            db.execute("BEGIN IMMEDIATE")  # the write lock, before reading what is there
            try:
                if directory.origin != db.generation():
                    raise MailboxError(_("{path}: changed by another run meanwhile; nothing was changed, "
                                         "try again").format(path=self.directory_db))
                directory.check()
                changed = self._write(db, rows_of(directory))
                if changed:
                    db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
                generation = db.generation()
                db.execute("COMMIT")
            except sqlite3.Error as e:
                db.execute("ROLLBACK")
                raise MailboxError(_("{path}: cannot be written ({error}); nothing was changed").format(
                    path=self.directory_db, error=e)) from None
            except BaseException:
                db.execute("ROLLBACK")
                raise
        directory.origin = generation
        return changed

    @staticmethod
    def _write(db, wanted):
        """Make every table hold wanted's rows; the tables that changed."""
        changed = []
        for table, (columns, keys) in TABLES.items():
            have = set(db.rows(f"SELECT {', '.join(columns)} FROM {table}"))
            gone, new = have - wanted[table], wanted[table] - have
            if not gone and not new:
                continue
            where = " AND ".join(f"{c} = ?" for c in columns[:keys])
            db.executemany(f"DELETE FROM {table} WHERE {where}", [row[:keys] for row in gone])
            db.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                           sorted(new, key=repr))
            changed.append(table)
        return changed

    # -- reading without the passwords (anyone may: `mailsetup status`)

    def counts(self):
        """(domains, mailboxes), read from directory.sqlite alone."""
        conn = sqlite3.connect(f"file:{self.directory_db}?mode=ro", uri=True)
        try:
            return tuple(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                         for table in ("domains", "mailboxes"))
        finally:
            conn.close()


class _Connection:
    """sqlite3 with the few calls the store makes."""

    def __init__(self, conn):
        self.conn = conn

    def execute(self, sql, args=()):
        return self.conn.execute(sql, args)

    def executemany(self, sql, rows):
        if rows:
            self.conn.executemany(sql, rows)

    def executescript_in_transaction(self, script):
        # executescript() would COMMIT first; the statements one by one stay in the transaction.
        for statement in script.split(";"):
            if statement.strip():
                self.conn.execute(statement)

    def rows(self, sql):
        return self.conn.execute(sql).fetchall()

    def generation(self):
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return int(row[0]) if row else None
