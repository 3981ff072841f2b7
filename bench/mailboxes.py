#!/usr/bin/python3
"""Benchmark of the mailbox commands (issues 4 and 14): `mailsetup import` of N
mailboxes, then `mailsetup mailbox add` and `mailsetup alias add` with N already
there, and Postfix's lookups per second in the mailbox table, for the SQLite
directory (this release), the file directory (up to 0.3.0) and the PostgreSQL
directory of a group of servers, same run.

    /usr/bin/python3 bench/mailboxes.py [N ...]        (default: 100 1000 10000)

PostgreSQL: a throw-away cluster of Debian's postgresql package (initdb, as the
user postgres) in a temporary directory, on 127.0.0.1:5432 with TLS (a
self-signed certificate made with openssl), as the group's servers reach
theirs; skipped, with the reason, when the package is missing
(apt install postgresql postfix-pgsql python3-psycopg2) or the port is taken.

Lookups: `postmap -q -` with N keys on stdin (half of them mailboxes, half
unknown) in one process, so that the table driver is measured, not the start of a
process; Postfix's daemons go through proxymap for SQLite, which adds a local
socket round trip per lookup not measured here.

The commands run in-process through mailsetup.cli.main, as /usr/bin/mailsetup
runs them, on a fresh root in a temporary directory with a scratch Postfix
configuration for postmap -c (the real postmap builds every map). Not
measured: the core reapply after the import's domain row (mydestination, a
postconf run and a Postfix reload, once per domain change, whatever N is) and
Python's start (~0.1 s per command). Passwords are hashed with a fast test hasher
(unsalted SHA512, never for real use) so that the store's own cost is measured;
the cost of real hashing (doveadm pw) is measured separately per password when
doveadm is installed. Targets: import of 10,000 under 10 s; one add at 10,000
under 0.5 s.
"""

import base64
import contextlib
import glob
import hashlib
import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from mailsetup import cli  # noqa: E402
from mailsetup.imap.cli import Tools  # noqa: E402
from mailsetup.imap.mailboxes.hashing import DoveadmHasher  # noqa: E402
from mailsetup.imap.mailboxes import store as store_module  # noqa: E402
from mailsetup.imap.mailboxes.sqlite_store import SqliteStore  # noqa: E402
from mailsetup.imap.mailboxes import pgsql_store  # noqa: E402
from mailsetup.imap.mailboxes.store import FileStore  # noqa: E402
from mailsetup.state import StateDir  # noqa: E402
from mailsetup.system import System  # noqa: E402

MAIN_CF = "/usr/share/postfix/main.cf.debian"


def fast_hasher(plaintext):
    return "{SHA512.b64}" + base64.b64encode(hashlib.sha512(plaintext.encode()).digest()).decode()


PG_PASSWORD = "bench-secret"


class ThrowAwayPostgres:
    """A PostgreSQL cluster in a temporary directory, started and stopped by the bench."""

    def __init__(self):
        initdb = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        self.problem = None
        if not initdb:
            self.problem = "no PostgreSQL here (apt install postgresql postfix-pgsql python3-psycopg2)"
            return
        if not glob.glob("/usr/lib/postfix/postfix-pgsql.so"):
            self.problem = "no pgsql tables for Postfix here (apt install postfix-pgsql)"
            return
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", pgsql_store.PORT)) == 0:
                self.problem = f"port {pgsql_store.PORT} is taken"
                return
        self.bin = os.path.dirname(initdb[-1])
        self.dir = tempfile.mkdtemp(prefix="mailsetup-bench-pg-")
        os.chmod(self.dir, 0o755)
        data = os.path.join(self.dir, "data")
        pwfile = os.path.join(self.dir, "pw")
        with open(pwfile, "w") as f:
            f.write(PG_PASSWORD + "\n")
        shutil.chown(self.dir, "postgres", "postgres")
        shutil.chown(pwfile, "postgres", "postgres")
        self._as_postgres(os.path.join(self.bin, "initdb"), "-D", data, "-U", "mailsetup", "--pwfile", pwfile,
                          "-A", "scram-sha-256")
        self._as_postgres("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                          "-subj", "/CN=127.0.0.1", "-keyout", os.path.join(data, "server.key"),
                          "-out", os.path.join(data, "server.crt"))
        with open(os.path.join(data, "postgresql.conf"), "a") as f:
            f.write(f"listen_addresses = '127.0.0.1'\nport = {pgsql_store.PORT}\nssl = on\n"
                    f"unix_socket_directories = '{self.dir}'\n")
        self._as_postgres(os.path.join(self.bin, "pg_ctl"), "-D", data, "-w", "-l", os.path.join(self.dir, "log"),
                          "start")
        self.data = data

    @staticmethod
    def _as_postgres(*argv):
        subprocess.run(["runuser", "-u", "postgres", "--"] + list(argv), check=True, capture_output=True, cwd="/",
                       stdin=subprocess.DEVNULL, timeout=120)

    def new_database(self, name):
        self._as_postgres("env", f"PGPASSWORD={PG_PASSWORD}", os.path.join(self.bin, "createdb"), "-h", self.dir,
                          "-U", "mailsetup", name)

    def stop(self):
        if self.problem is None:
            self._as_postgres(os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-w", "-m", "fast", "stop")
            shutil.rmtree(self.dir)


def make_root(base, backend, postgres=None):
    confdir = os.path.join(base, "postfix")
    os.makedirs(confdir)
    main_cf = os.path.join(confdir, "main.cf")
    with open(MAIN_CF) as src, open(main_cf, "w") as dst:
        dst.write(src.read() + "myhostname = bench.example.net\n")
    old = time.time() - 60  # Postfix waits ~2 s while main.cf is brand new
    os.utime(main_cf, (old, old))
    etc = os.path.join(base, "etc-mailsetup")
    if backend == "files":
        return confdir, FileStore(etc, postfix_config_dir=confdir, users_group=None)
    if backend == "pgsql":
        database = "bench" + os.path.basename(base).rsplit("-", 1)[-1].lower()
        postgres.new_database(database)
        store = pgsql_store.PgsqlStore(etc, os.path.join(base, "directory"), ("127.0.0.1",), database, "mailsetup",
                                       PG_PASSWORD, "198.51.100.11")
        store.install(postfix_group="root")
    else:
        store = SqliteStore(os.path.join(base, "directory"), etc, users_group=None)
        store.install()
    for name in ("domains", "mailboxes", "aliases", "senders"):  # Postfix waits on brand new table files too
        os.utime(store.map_path(name), (old, old))
    return confdir, store


def write_csv(path, n):
    with open(path, "w") as f:
        f.write("type,address,value,quota\ndomain,example.org,,\n")
        for i in range(n):
            f.write(f"mailbox,user{i}@example.org,password-{i:06d},1G\n")
        for i in range(0, n, 10):  # one alias per ten mailboxes
            f.write(f"alias,alias{i}@example.org,user{i}@example.org,\n")


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def command(tools, *argv, stdin=""):
    """Run one mailsetup command in-process; its output is dropped, a failure stops the bench."""
    old_stdin, sys.stdin = sys.stdin, io.StringIO(stdin)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            rc = cli.main(list(argv), tools=tools)
    finally:
        sys.stdin = old_stdin
    if rc != 0:
        raise SystemExit(f"mailsetup {' '.join(argv)} exited {rc}")


def lookups_per_second(confdir, store, n):
    """Postfix's lookups in the mailbox table, N keys in one postmap process."""
    keys = "".join(f"user{i}@example.org\n" if i % 2 else f"nobody{i}@example.org\n" for i in range(n))
    spec = store.map_spec("mailboxes").removeprefix("proxy:")
    start = time.perf_counter()
    proc = subprocess.run(["postmap", "-c", confdir, "-q", "-", spec], input=keys, capture_output=True,
                          text=True)
    seconds = time.perf_counter() - start
    found = len(proc.stdout.splitlines())
    if found != n // 2:
        raise SystemExit(f"postmap -q - {spec}: found {found} of {n // 2} mailboxes: {proc.stderr.strip()}")
    return n / seconds


def bench(n, backend, postgres=None):
    base = tempfile.mkdtemp(prefix="mailsetup-bench-")
    try:
        confdir, store = make_root(base, backend, postgres)
        system = System(postfix_config_dir=confdir, etc_dir=os.path.join(base, "etc-mailsetup"),
                        state_dir=os.path.join(base, "state"), imap_state_dir=os.path.join(base, "imap-state"),
                        vmail_dir=os.path.join(base, "vmail"), run_services=False)
        StateDir(system.imap_state_dir).save_applied({"answers": {}})  # as after mailsetup-imap's configure
        tools = Tools(system, store=store, hasher=fast_hasher, reapply=lambda system: None)
        csv_path = os.path.join(base, "import.csv")
        write_csv(csv_path, n)
        t_import, _ = timed(lambda: command(tools, "import", csv_path))
        t_mailbox, _ = timed(lambda: command(tools, "mailbox", "add", "--quota", "1G", "new@example.org",
                                             stdin="new-password\n"))
        # The same without waiting for Dovecot's once-a-second look at its users file
        # (mailsetup.mailboxes.store.WAIT_FOR_DOVECOT): the command's own work.
        store_module.WAIT_FOR_DOVECOT = False
        try:
            t_work, _ = timed(lambda: command(tools, "mailbox", "add", "--quota", "1G", "new2@example.org",
                                              stdin="new-password\n"))
        finally:
            store_module.WAIT_FOR_DOVECOT = True
        t_alias, _ = timed(lambda: command(tools, "alias", "add", "newalias@example.org", "new@example.org",
                                           "user0@example.org"))
        t_noop, _ = timed(lambda: command(tools, "domain", "list"))
        rate = lookups_per_second(confdir, store, n)
        return t_import, t_mailbox, t_work, t_alias, t_noop, rate
    finally:
        shutil.rmtree(base)


def main():
    sizes = [int(a) for a in sys.argv[1:]] or [100, 1000, 10000]
    print(f"{'backend':>8} {'mailboxes':>10} {'import s':>9} {'per row ms':>10} {'add mailbox s':>13} "
          f"{'its work s':>10} {'add alias s':>11} {'list s':>8} {'lookups/s':>10}")
    postgres = ThrowAwayPostgres()
    backends = ("sqlite", "files") + (("pgsql",) if postgres.problem is None else ())
    try:
        for n in sizes:
            for backend in backends:
                t_import, t_mailbox, t_work, t_alias, t_noop, rate = bench(n, backend, postgres)
                rows = n + 1 + (n + 9) // 10
                print(f"{backend:>8} {n:>10} {t_import:>9.3f} {1000 * t_import / rows:>10.3f} "
                      f"{t_mailbox:>13.3f} {t_work:>10.3f} {t_alias:>11.3f} {t_noop:>8.3f} {rate:>10.0f}")
    finally:
        postgres.stop()
    if postgres.problem:
        print(f"PostgreSQL not measured: {postgres.problem}")
    hasher = DoveadmHasher()
    if hasher.available():
        for scheme in ("ARGON2ID", "SHA512-CRYPT"):
            h = DoveadmHasher(scheme)
            t, _ = timed(lambda: [h(f"password-{i}") for i in range(5)])
            print(f"doveadm pw -s {scheme}: {t / 5:.3f} s per password "
                  f"(10,000 passwords: ~{t / 5 * 10000 / (os.cpu_count() or 1):.0f} s on {os.cpu_count()} CPUs)")
    else:
        print("doveadm is not installed here: real hashing not measured "
              "(doc/dovecot-facts.md: ARGON2ID ~170 ms, SHA512-CRYPT ~15 ms per password)")


if __name__ == "__main__":
    main()
