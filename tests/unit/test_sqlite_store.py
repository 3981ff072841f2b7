"""The SQLite mailbox store: what Postfix finds through its sqlite tables (postmap -q,
the real Postfix with postfix-sqlite), what Dovecot's queries return, all-or-nothing
commits, concurrent runs, and the file modes that keep the hashes from Postfix."""

import os
import sqlite3
import subprocess

import pytest

from mailsetup.imap.components import dovecot
from mailsetup.imap.mailboxes import model
from mailsetup.imap.mailboxes.model import Directory, MailboxError
from mailsetup.imap.mailboxes.sqlite_store import SqliteStore
from mailsetup.imap.mailboxes.store import FileStore

from test_mailbox_store import _age, fast_hasher, populated


@pytest.fixture
def store(scratch, tmp_path):
    _age(scratch)
    s = SqliteStore(str(tmp_path / "db"), str(tmp_path / "etc"), users_group=None)
    s.postfix_config_dir = scratch.postfix_config_dir
    s.install()
    return s


def q(store, name, key):
    """postmap -q on the table without proxy: (no proxymap here): what Postfix finds, or None."""
    spec = store.map_spec(name).removeprefix("proxy:")
    proc = subprocess.run(["postmap", "-c", store.postfix_config_dir, "-q", key, spec],
                          capture_output=True, text=True)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.stdout.strip() if proc.returncode == 0 else None


def sql(path, query, *args):
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return conn.execute(query, args).fetchall()


def test_postfix_finds_what_the_file_store_gave(store):
    populated(store)
    assert q(store, "domains", "example.org") == "OK"
    assert q(store, "domains", "example.com") is None
    assert q(store, "mailboxes", "alice@example.org") == "example.org/alice/"
    assert q(store, "mailboxes", "info@example.org") is None
    assert q(store, "aliases", "info@example.org") == "alice@example.org, bob@example.org"
    assert q(store, "aliases", "carol@example.net") == "carol@example.net"  # not swallowed by the catch-all
    assert q(store, "aliases", "@example.net") == "carol@example.net"
    assert q(store, "aliases", "team@example.org") == "alice@example.org, carol@example.net, ext@elsewhere.test"
    assert q(store, "aliases", "postmaster@example.org") == "postmaster@localhost"
    assert q(store, "senders", "sales@example.org") == "alice@example.org, bob@example.org"
    assert q(store, "senders", "team@example.org") is None
    # a quote in the key is Postfix's to escape: no SQL of the sender's runs
    assert q(store, "aliases", "x'or'1'='1@example.org") is None


def test_the_same_directory_as_the_file_store(store, scratch, tmp_path):
    files = FileStore(str(tmp_path / "files"), postfix_config_dir=scratch.postfix_config_dir, users_group=None)
    populated(files)
    populated(store)
    assert store.load() == files.load()
    for name in ("domains", "mailboxes", "aliases", "senders"):
        text = open(files.map_path(name)).read().splitlines()[1:]
        for line in text:
            key, value = line.split("\t")
            assert q(store, name, key) == value, (name, key)


def test_dovecot_queries_give_the_password_and_the_quota(store):
    populated(store)
    passdb, userdb = dovecot.SQL_QUERIES["password"], dovecot.SQL_QUERIES["user"]

    def run(path, query, user):  # Dovecot's %u as SQL literal, as Dovecot quotes it
        return sql(path, query.replace("%u", user))

    assert run(store.passwords_db, passdb, "alice@example.org") == [
        ("alice@example.org", fast_hasher("alice-password"))]
    assert run(store.passwords_db, passdb, "nobody@example.org") == []
    assert run(store.directory_db, userdb["2.3"], "alice@example.org") == [("alice@example.org", "*:storage=2G")]
    assert run(store.directory_db, userdb["2.3"], "bob@example.org") == [("bob@example.org", None)]  # no limit
    assert run(store.directory_db, userdb["2.4"], "carol@example.net") == [("carol@example.net", "500M")]
    assert sorted(sql(store.directory_db, dovecot.SQL_QUERIES["iterate"])) == [
        ("alice@example.org",), ("bob@example.org",), ("carol@example.net",)]


def test_the_hashes_are_not_where_postfix_reads(store):
    populated(store)
    assert os.stat(store.directory_db).st_mode & 0o777 == 0o644
    assert os.stat(store.passwords_db).st_mode & 0o777 == 0o640
    with open(store.directory_db, "rb") as f:
        assert b"SHA512" not in f.read()
    for name in ("domains", "mailboxes", "aliases", "senders"):
        assert store.passwords_db not in open(store.map_path(name)).read()


def test_changes_and_deletes(store):
    populated(store)
    with store.transaction() as d:
        d.del_alias("sales@example.org")
        d.del_list("team@example.org")
        d.set_quota("carol@example.net", 0)
        d.set_password("alice@example.org", fast_hasher("new-password"))
    assert q(store, "aliases", "team@example.org") is None
    assert q(store, "senders", "sales@example.org") is None
    assert sql(store.directory_db, "SELECT quota FROM mailboxes WHERE address = 'carol@example.net'") == [(None,)]
    assert store.load().mailboxes["alice@example.org"].password_hash == fast_hasher("new-password")
    with store.transaction() as d:
        d.del_domain("example.net", force=True)
    assert q(store, "domains", "example.net") is None
    assert q(store, "mailboxes", "carol@example.net") is None
    assert sql(store.passwords_db, "SELECT count(*) FROM passwords WHERE address LIKE 'carol%'") == [(0,)]


def test_an_empty_list_and_the_order_of_targets_come_back(store):
    with store.transaction() as d:
        d.add_domain("example.org")
        d.add_list("empty@example.org")
        d.add_alias("fwd@example.org", "z@elsewhere.test a@elsewhere.test m@elsewhere.test")
    loaded = store.load()
    assert loaded.lists == {"empty@example.org": []}
    assert loaded.aliases["fwd@example.org"] == ["z@elsewhere.test", "a@elsewhere.test", "m@elsewhere.test"]
    assert q(store, "aliases", "empty@example.org") is None


def test_nothing_changed_writes_nothing(store):
    populated(store)
    generation = store.load().origin
    assert store.commit(store.load()) == []
    assert store.load().origin == generation
    with pytest.raises(MailboxError, match="already exists"):
        with store.transaction() as d:
            d.add_mailbox("alice@example.org", fast_hasher("alice-password"))
    assert store.load().origin == generation


@pytest.mark.parametrize("change", [
    lambda d: d.add_alias("a@example.org", "ghost@example.org"),
    lambda d: (d.add_alias("a@example.org", "b@example.org"), d.add_alias("b@example.org", "a@example.org")),
])
def test_a_refused_commit_changes_nothing(store, change):
    populated(store)
    before = store.load()
    with pytest.raises(MailboxError):
        with store.transaction() as d:
            change(d)
    assert store.load() == before and store.load().origin == before.origin


def test_a_failure_halfway_rolls_back_both_files(store, monkeypatch):
    populated(store)
    before = store.load()
    from mailsetup.imap.mailboxes import sql_store

    def broken(directory, home=""):
        rows = real(directory, home)
        rows["postfix_senders"] = {("x@example.org", None)}  # NOT NULL: fails after the passwords were written
        return rows

    real = sql_store.rows_of
    monkeypatch.setattr(sql_store, "rows_of", broken)
    with pytest.raises(MailboxError, match="cannot be written .*NOT NULL.*nothing was changed"):
        with store.transaction() as d:
            d.add_mailbox("dave@example.org", fast_hasher("dave-password"))
    monkeypatch.setattr(sql_store, "rows_of", real)
    assert store.load() == before
    assert sql(store.passwords_db, "SELECT count(*) FROM passwords WHERE address = 'dave@example.org'") == [(0,)]


def test_concurrent_change_is_refused(store):
    populated(store)
    first, second = store.load(), store.load()
    first.add_domain("one.example")
    store.commit(first)
    second.add_domain("two.example")
    with pytest.raises(MailboxError, match="changed by another run"):
        store.commit(second)
    assert store.load().domains == {"example.org", "example.net", "one.example"}


def test_install_twice_keeps_the_data(store):
    populated(store)
    before = store.load()
    assert store.install() == []
    assert store.load() == before


def test_counts_need_no_passwords(store):
    populated(store)
    os.chmod(store.passwords_db, 0)
    assert store.counts() == (2, 3)


def test_a_missing_database_is_one_line(tmp_path):
    store = SqliteStore(str(tmp_path / "nothing"), str(tmp_path / "etc"))
    with pytest.raises(MailboxError, match="missing; run dpkg-reconfigure mailsetup-imap"):
        store.load()


def test_a_fresh_directory_commits_onto_an_empty_store(store):
    directory = Directory(["example.org"], {"a@example.org": model.Mailbox(fast_hasher("a-password"))})
    directory.origin = store.load().origin
    assert store.commit(directory)
    assert q(store, "mailboxes", "a@example.org") == "example.org/a/"
