"""The PostgreSQL backend of the mailbox store: one directory shared by a group
of mail servers (doc/directory.md).

The schema and the queries are sql_store.py's, in one database on one or more
PostgreSQL servers (tried in turn; they must be one database, for example a
primary and its standby). Every server of the group reads it directly:
Postfix through proxy:pgsql: tables, Dovecot with its pgsql driver, the
mailsetup command with psycopg2. Each mailbox has a home server, the address
at which the other servers reach the one that stores its mail: a mailbox
added on a server gets that server's address.

Connection settings are the debconf answers as mailsetup-imap applied them,
kept in files of its own under /etc/mailsetup/pgsql (the mailsetup command reads
the system, never debconf):

    directory.conf   0600 root            hosts, dbname, user, password, server (this one's address)
    NAME.cf          0640 root:postfix    Postfix's lookups (hosts as postgresql:// URIs)
    domains          0644                 the domains, as last seen here (for the core: system.py)

Traffic to PostgreSQL is TLS (sslmode=require; the server's certificate is not
verified: Debian's PostgreSQL has a self-signed one), and its pg_hba.conf
should admit only the group's servers.

A write transaction first locks the generation row (SELECT ... FOR UPDATE), so
two servers' commits take turns and the second refuses if the first changed
anything since it loaded. When PostgreSQL does not answer, every call refuses
with one line and nothing changes; Postfix then answers 4xx (the sender
retries) and Dovecot refuses logins temporarily.
"""

import contextlib
import grp
import os
import urllib.parse

from mailsetup.fileutil import write_if_changed
from mailsetup.i18n import _
from mailsetup.imap.mailboxes.model import MailboxError
from mailsetup.imap.mailboxes.sql_store import QUERIES, SqlStore, Connection, one_line

PORT = 5432
CONNECT_TIMEOUT = 5  # seconds per host; a command waits no longer than this for each
SETTINGS_FILE = "directory.conf"
DOMAINS_FILE = "domains"
# The keys of directory.conf, in the order they are written.
SETTINGS_KEYS = ("hosts", "dbname", "user", "password", "server")


# The group's DKIM keys (doc/directory.md): the first server that signs for a domain
# puts its key here, every other one signs with that key (mailsetup/dkim.py).
DKIM_SCHEMA = """CREATE TABLE IF NOT EXISTS dkim_keys (
    domain TEXT NOT NULL, selector TEXT NOT NULL, private_key TEXT NOT NULL, record TEXT NOT NULL,
    PRIMARY KEY (domain, selector))"""


def _driver():
    try:
        import psycopg2
    except ImportError:
        raise MailboxError(_("the PostgreSQL directory needs python3-psycopg2: apt install python3-psycopg2")
                           ) from None
    return psycopg2


def transport_query(server):
    """Postfix's transport_maps lookup: a mailbox stored on another server of the
    group is handed to that server's Dovecot LMTP (port 24, listening only on its
    group address); one stored here gets no answer, so virtual_transport delivers it."""
    return ("SELECT 'lmtp:inet:[' || home_server || ']:24' FROM mailboxes "
            f"WHERE address = '%s' AND home_server <> '{server}'")


class PgsqlStore(SqlStore):
    backend = "pgsql"

    def __init__(self, etc_dir, lock_dir, hosts, dbname, user, password, server):
        """etc_dir: /etc/mailsetup (the settings and Postfix's tables go into pgsql/);
        lock_dir: where this server's runs take turns; server: this server's address
        in the group, the home of the mailboxes added here."""
        self.etc_dir = etc_dir
        self.lock_dir = lock_dir
        self.hosts = tuple(hosts)
        self.dbname = dbname
        self.user = user
        self.password = password
        self.server = server
        self.home = server
        self.last_changed = []
        self.database_error = _driver().Error

    @classmethod
    def from_settings_file(cls, etc_dir, lock_dir):
        path = os.path.join(etc_dir, "pgsql", SETTINGS_FILE)
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except OSError as e:
            raise MailboxError(_("{path}: cannot be read ({error}); run dpkg-reconfigure mailsetup-imap").format(
                path=path, error=e.strerror)) from None
        values = {}
        for line in lines:
            key, sep, value = line.partition("=")
            if sep and not line.startswith("#"):
                values[key.strip()] = value.strip()
        if any(key not in values for key in SETTINGS_KEYS):
            raise MailboxError(_("{path}: incomplete; run dpkg-reconfigure mailsetup-imap").format(path=path))
        return cls(etc_dir, lock_dir, values["hosts"].split(), values["dbname"], values["user"],
                   values["password"], values["server"])

    @property
    def config_dir(self):
        return os.path.join(self.etc_dir, "pgsql")

    @property
    def settings_path(self):
        return os.path.join(self.config_dir, SETTINGS_FILE)

    @property
    def domains_path(self):
        return os.path.join(self.config_dir, DOMAINS_FILE)

    @property
    def location(self):
        return _("the PostgreSQL directory {dbname} on {hosts}").format(
            dbname=self.dbname, hosts=", ".join(self.hosts))

    @property
    def lock_path(self):
        return os.path.join(self.lock_dir, ".lock")

    def map_path(self, name):
        """name: domains, mailboxes, aliases, senders, transport."""
        return os.path.join(self.config_dir, f"{name}.cf")

    def map_spec(self, name):
        return f"proxy:pgsql:{self.map_path(name)}"

    def uris(self):
        """Postfix's hosts: one postgresql:// URI per server, TLS required."""
        quote = urllib.parse.quote
        return [f"postgresql://{quote(self.user, safe='')}:{quote(self.password, safe='')}@{_uri_host(h)}:{PORT}/"
                f"{quote(self.dbname, safe='')}?sslmode=require&connect_timeout={CONNECT_TIMEOUT}"
                for h in self.hosts]

    def libpq_parameters(self):
        """(keyword, value) of libpq for every server but the host (Dovecot's connections)."""
        return [("port", PORT), ("dbname", self.dbname), ("user", self.user), ("password", self.password),
                ("sslmode", "require"), ("connect_timeout", CONNECT_TIMEOUT)]

    def dovecot_connect(self):
        """Dovecot 2.3's connect string: a host= per server (tried in turn), libpq's other keywords."""
        return " ".join([f"host={h}" for h in self.hosts] + [f"{k}={v}" for k, v in self.libpq_parameters()])

    # -- setting up

    def install(self, postfix_group="postfix"):
        """The tables (created if missing; the database and its owner are the admin's) and
        the files of this server; the files that changed. Refuses with one line when
        PostgreSQL cannot be reached."""
        os.makedirs(self.config_dir, exist_ok=True)
        os.makedirs(self.lock_dir, exist_ok=True)
        with self._connect() as db:
            db.execute("BEGIN")
            self._create_schema(db, "BIGINT")
            db.execute(DKIM_SCHEMA)
            db.execute("COMMIT")
        changed = []
        queries = dict(QUERIES, transport=transport_query(self.server))
        for name, query in queries.items():
            text = (f"# Written by mailsetup-imap: Postfix's {name} lookup in the mailbox directory.\n"
                    f"hosts = {' '.join(self.uris())}\n"
                    # Postfix 3.7 wants them beside the URIs too
                    f"dbname = {self.dbname}\nuser = {self.user}\npassword = {self.password}\n"
                    f"query = {query}\n")
            if write_if_changed(self.map_path(name), text.encode(), 0o640):
                changed.append(self.map_path(name))
            _chgrp(self.map_path(name), postfix_group)
        return changed

    def save_settings(self):
        """Make this store the live one (system.live_backend): written after Postfix and
        Dovecot were pointed at it. Whether the file changed."""
        settings = "".join(f"{key} = {value}\n" for key, value in zip(
            SETTINGS_KEYS, (" ".join(self.hosts), self.dbname, self.user, self.password, self.server)))
        return write_if_changed(self.settings_path,
                                ("# Written by mailsetup-imap from its debconf answers.\n" + settings).encode(), 0o600)

    @contextlib.contextmanager
    def _connect(self):
        psycopg2 = _driver()
        try:
            conn = psycopg2.connect(host=",".join(self.hosts), port=",".join([str(PORT)] * len(self.hosts)),
                                    dbname=self.dbname, user=self.user, password=self.password,
                                    sslmode="require", connect_timeout=CONNECT_TIMEOUT,
                                    target_session_attrs="read-write", application_name="mailsetup")
        except psycopg2.Error as e:
            raise MailboxError(_("{location}: does not answer ({error}); nothing was changed").format(
                location=self.location, error=one_line(e))) from None
        conn.autocommit = True  # the transactions are the explicit BEGIN ... COMMIT
        try:
            yield Connection(conn, psycopg2.Error, paramstyle="format")
        except psycopg2.Error as e:
            raise MailboxError(_("{location}: {error}; nothing was changed").format(
                location=self.location, error=one_line(e))) from None
        finally:
            conn.close()

    def _begin_write(self, db):
        db.execute("BEGIN")
        db.execute("SELECT value FROM meta WHERE key = 'generation' FOR UPDATE")

    def load(self):
        directory = super().load()
        self._remember_domains(directory.domains)
        return directory

    def commit(self, directory):
        changed = super().commit(directory)
        self._remember_domains(directory.domains)
        return changed

    def _remember_domains(self, domains):
        """The domains as this server last saw them, for the core (mailsetup/system.py)."""
        try:
            write_if_changed(self.domains_path, "".join(f"{d}\n" for d in sorted(domains)).encode(), 0o644)
        except OSError:
            pass  # a user who may not write it (mailsetup status): the core reads the older list

    # -- the group's DKIM keys

    def shared_dkim_key(self, domain, selector):
        """(private key, record) of domain in the group, or None."""
        with self._connect() as db:
            db.execute("SELECT private_key, record FROM dkim_keys WHERE domain = ? AND selector = ?",
                       (domain, selector))
            row = db.cursor.fetchone()
        return tuple(row) if row else None

    def share_dkim_key(self, domain, selector, private_key, record):
        """Offer this server's key for domain; the group's key, which is this one unless
        another server's came first."""
        with self._connect() as db:
            db.execute("INSERT INTO dkim_keys (domain, selector, private_key, record) VALUES (?, ?, ?, ?) "
                       "ON CONFLICT (domain, selector) DO NOTHING", (domain, selector, private_key, record))
        return self.shared_dkim_key(domain, selector)

    def counts(self):
        """(domains, mailboxes)."""
        with self._connect() as db:
            return tuple(db.rows(f"SELECT count(*) FROM {table}")[0][0] for table in ("domains", "mailboxes"))


def _uri_host(host):
    return f"[{host}]" if ":" in host else host


def _chgrp(path, group):
    try:
        os.chown(path, -1, grp.getgrnam(group).gr_gid)
    except KeyError:
        pass  # no postfix group (scratch tests): root only, 0640
