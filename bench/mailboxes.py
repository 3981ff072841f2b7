#!/usr/bin/python3
"""Benchmark of the mailbox commands (issue 4): `mailsetup import` of N mailboxes,
then `mailsetup mailbox add` and `mailsetup alias add` with N already there.

    /usr/bin/python3 bench/mailboxes.py [N ...]        (default: 100 1000 10000)

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
import hashlib
import io
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from mailsetup import cli  # noqa: E402
from mailsetup.imap.cli import Tools  # noqa: E402
from mailsetup.imap.mailboxes.hashing import DoveadmHasher  # noqa: E402
from mailsetup.imap.mailboxes import store as store_module  # noqa: E402
from mailsetup.imap.mailboxes.store import FileStore  # noqa: E402
from mailsetup.state import StateDir  # noqa: E402
from mailsetup.system import System  # noqa: E402

MAIN_CF = "/usr/share/postfix/main.cf.debian"


def fast_hasher(plaintext):
    return "{SHA512.b64}" + base64.b64encode(hashlib.sha512(plaintext.encode()).digest()).decode()


def make_root(base):
    confdir = os.path.join(base, "postfix")
    os.makedirs(confdir)
    main_cf = os.path.join(confdir, "main.cf")
    with open(MAIN_CF) as src, open(main_cf, "w") as dst:
        dst.write(src.read() + "myhostname = bench.example.net\n")
    old = time.time() - 60  # Postfix waits ~2 s while main.cf is brand new
    os.utime(main_cf, (old, old))
    return FileStore(os.path.join(base, "etc-mailsetup"), postfix_config_dir=confdir, users_group=None)


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


def bench(n):
    base = tempfile.mkdtemp(prefix="mailsetup-bench-")
    try:
        store = make_root(base)
        system = System(postfix_config_dir=store.postfix_config_dir, etc_dir=store.root,
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
        size = os.path.getsize(store.json_path)
        return t_import, t_mailbox, t_work, t_alias, t_noop, size
    finally:
        shutil.rmtree(base)


def main():
    sizes = [int(a) for a in sys.argv[1:]] or [100, 1000, 10000]
    print(f"{'mailboxes':>10} {'import s':>9} {'per row ms':>10} {'add mailbox s':>13} {'its work s':>10} "
          f"{'add alias s':>11} {'list s':>8} {'json KB':>8}")
    for n in sizes:
        t_import, t_mailbox, t_work, t_alias, t_noop, size = bench(n)
        rows = n + 1 + (n + 9) // 10
        print(f"{n:>10} {t_import:>9.3f} {1000 * t_import / rows:>10.3f} {t_mailbox:>13.3f} {t_work:>10.3f} "
              f"{t_alias:>11.3f} {t_noop:>8.3f} {size // 1024:>8}")
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
