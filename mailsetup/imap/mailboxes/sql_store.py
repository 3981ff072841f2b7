"""What the two SQL backends of the mailbox store share: the schema, the rows
that describe a Directory, and load/commit (sqlite_store.py: one server,
pgsql_store.py: a group of servers sharing one PostgreSQL directory).

    meta(key, value)                      schema version, generation (bumped by every commit)
    domains(name)
    mailboxes(address, domain, local, quota_bytes, quota, home_server)
    aliases(address, position, target)    an alias's targets in order; @domain is a catch-all
    lists(address), list_members(address, position, member)
    postfix_aliases(address, destinations)   virtual_alias_maps, derived (store.alias_rows)
    postfix_senders(address, logins)         smtpd_sender_login_maps, derived (store.sender_rows)
    passwords(address, password)          Dovecot's passdb (SQLite: a database file of its own)

Only the mailsetup command writes; it loads the whole Directory, changes it
in memory (model.py checks every change) and commits the difference in one
transaction: rows that went are deleted, rows that came are inserted. A
commit refuses when another run committed since the load (the generation,
read under the write lock), so two runs, on one server or on two, never
overwrite each other. Postfix and Dovecot query on every lookup, so a change
is seen the moment its commit returns.

The queries (QUERIES, and components/dovecot.py's) are plain SQL that SQLite
and PostgreSQL both run. A subclass gives the connection (_connect, yielding
a Connection), the name of the passwords table, how a write transaction
begins, and the DB-API error class.
"""

import contextlib

from mailsetup.i18n import _
from mailsetup.imap.mailboxes.model import Directory, Mailbox, MailboxError, format_quota
from mailsetup.imap.mailboxes.store import Store, alias_rows, sender_rows

SCHEMA_VERSION = 1

# {bigint}: SQLite's INTEGER holds 64 bits, PostgreSQL's only 32 (a 2G quota needs more).
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS domains (name TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS mailboxes (
    address TEXT PRIMARY KEY,
    domain TEXT NOT NULL,
    local TEXT NOT NULL,
    quota_bytes {bigint} NOT NULL DEFAULT 0,
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
PASSWORDS_SCHEMA = "CREATE TABLE IF NOT EXISTS {table} (address TEXT PRIMARY KEY, password TEXT NOT NULL);"

# Postfix's lookups (proxy:sqlite: / proxy:pgsql: tables); %s is the key, quoted by Postfix.
QUERIES = {
    "domains": "SELECT 'OK' FROM domains WHERE name = '%s'",
    "mailboxes": "SELECT domain || '/' || local || '/' FROM mailboxes WHERE address = '%s'",
    "aliases": "SELECT destinations FROM postfix_aliases WHERE address = '%s'",
    "senders": "SELECT logins FROM postfix_senders WHERE address = '%s'",
}

# table -> (columns, the key columns), in the order a commit writes them;
# "passwords" is the subclass's passwords_table.
TABLES = {
    "domains": (("name",), 1),
    "mailboxes": (("address", "domain", "local", "quota_bytes", "quota", "home_server"), 1),
    "passwords": (("address", "password"), 1),
    "aliases": (("address", "position", "target"), 2),
    "lists": (("address",), 1),
    "list_members": (("address", "position", "member"), 2),
    "postfix_aliases": (("address", "destinations"), 1),
    "postfix_senders": (("address", "logins"), 1),
}


def rows_of(directory, home=""):
    """table -> the set of rows that describe directory; home: the home server of
    the mailboxes that have none yet (new ones)."""
    mailboxes = directory.mailboxes.items()
    return {
        "domains": {(d,) for d in directory.domains},
        "mailboxes": {(a, a.partition("@")[2], a.partition("@")[0], m.quota_bytes,
                       format_quota(m.quota_bytes) if m.quota_bytes else None, m.home or home)
                      for a, m in mailboxes},
        "passwords": {(a, m.password_hash) for a, m in mailboxes},
        "aliases": {(k, i, t) for k, targets in directory.aliases.items() for i, t in enumerate(targets)},
        "lists": {(k,) for k in directory.lists},
        "list_members": {(k, i, m) for k, members in directory.lists.items() for i, m in enumerate(members)},
        "postfix_aliases": set(alias_rows(directory)),
        "postfix_senders": set(sender_rows(directory)),
    }


class SqlStore(Store):
    passwords_table = "passwords"
    home = ""          # the home server of new mailboxes
    database_error = Exception  # the DB-API module's Error

    @property
    def location(self):
        """What the error lines name: the database file, or the servers."""
        raise NotImplementedError

    @contextlib.contextmanager
    def _connect(self):
        raise NotImplementedError

    def _begin_write(self, db):
        """Start a transaction that holds the write lock before anything is read."""
        raise NotImplementedError

    def _create_schema(self, db, bigint):
        for statement in (SCHEMA.format(bigint=bigint)
                          + PASSWORDS_SCHEMA.format(table=self.passwords_table)).split(";"):
            if statement.strip():
                db.execute(statement)
        if db.generation() is None:
            db.execute("INSERT INTO meta (key, value) VALUES ('schema', ?), ('generation', '0')",
                       (str(SCHEMA_VERSION),))

    # -- load / commit

    def load(self):
        with self._connect() as db:
            db.begin_read()  # one consistent read of every table
            directory = self._read(db)
            directory.origin = db.generation()
            db.execute("COMMIT")
        return directory

    def _read(self, db):
        passwords = dict(db.rows(f"SELECT address, password FROM {self.passwords_table}"))
        mailboxes = {a: Mailbox(passwords.get(a, ""), q, home)
                     for a, q, home in db.rows("SELECT address, quota_bytes, home_server FROM mailboxes")}
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
            self._begin_write(db)
            try:
                if directory.origin != db.generation():
                    raise MailboxError(_("{path}: changed by another run meanwhile; nothing was changed, "
                                         "try again").format(path=self.location))
                directory.check()
                changed = self._write(db, rows_of(directory, self.home))
                if changed:
                    db.execute("UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) "
                               "WHERE key = 'generation'")
                generation = db.generation()
                db.execute("COMMIT")
            except self.database_error as e:
                db.rollback()
                raise MailboxError(_("{path}: cannot be written ({error}); nothing was changed").format(
                    path=self.location, error=one_line(e))) from None
            except BaseException:
                db.rollback()
                raise
        directory.origin = generation
        return changed

    def _write(self, db, wanted):
        """Make every table hold wanted's rows; the tables that changed."""
        changed = []
        for table, (columns, keys) in TABLES.items():
            name = self.passwords_table if table == "passwords" else table
            have = set(db.rows(f"SELECT {', '.join(columns)} FROM {name}"))
            gone, new = have - wanted[table], wanted[table] - have
            if not gone and not new:
                continue
            where = " AND ".join(f"{c} = ?" for c in columns[:keys])
            db.executemany(f"DELETE FROM {name} WHERE {where}", [row[:keys] for row in gone])
            db.executemany(f"INSERT INTO {name} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                           sorted(new, key=repr))
            changed.append(name)
        return changed


def one_line(error):
    return " ".join(str(error).split())


class Connection:
    """A DB-API connection with the few calls the stores make; SQL is written with
    ? placeholders, turned into the driver's (paramstyle "format": %s)."""

    def __init__(self, conn, error, paramstyle="qmark"):
        self.conn = conn
        self.error = error
        self.format = paramstyle == "format"
        self.cursor = conn.cursor()

    def _sql(self, sql):
        return sql.replace("?", "%s") if self.format else sql

    def execute(self, sql, args=()):
        self.cursor.execute(self._sql(sql), args)
        return self.cursor

    def executemany(self, sql, rows):
        if rows:
            self.cursor.executemany(self._sql(sql), rows)

    def rows(self, sql):
        self.cursor.execute(sql)
        return [tuple(row) for row in self.cursor.fetchall()]

    def begin_read(self):
        self.execute("BEGIN")

    def rollback(self):
        try:
            self.execute("ROLLBACK")
        except self.error:  # the connection itself is gone: nothing was committed
            pass

    def generation(self):
        self.cursor.execute("SELECT value FROM meta WHERE key = 'generation'")
        row = self.cursor.fetchone()
        return int(row[0]) if row else None
