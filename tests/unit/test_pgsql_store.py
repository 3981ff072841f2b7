"""The PostgreSQL directory of a group, as far as it needs no database server
(the booted tests/e2e/test_group.py runs it against Debian's PostgreSQL): the
answers that choose it, the files it writes for Postfix and Dovecot, the
queries that route mail and logins to a mailbox's home server, and the
refusals of the store when nothing answers."""

import os
import stat
import subprocess

import pytest

from mailsetup.imap.components import dovecot
from mailsetup.imap.mailboxes import pgsql_store
from mailsetup.imap.mailboxes.model import MailboxError
from mailsetup.imap.mailboxes.pgsql_store import PgsqlStore
from mailsetup.imap.settings import ImapSettings
from mailsetup.validate import InvalidAnswer

SERVER = "198.51.100.11"
GROUP_ANSWERS = {"domains": "example.org", "tls_source": "snakeoil", "directory": "postgresql",
                 "pg_hosts": "198.51.100.10 db2.example.org", "pg_database": "mailsetup", "pg_user": "mailsetup",
                 "pg_password": "s3cret/+x-y", "server_address": SERVER}


@pytest.fixture
def store(tmp_path):
    return PgsqlStore(str(tmp_path / "etc"), str(tmp_path / "state"), ("198.51.100.10", "db2.example.org"),
                      "mailsetup", "mailsetup", "s3cret/+x-y", SERVER)


def test_the_answers_choose_the_group_directory():
    settings = ImapSettings.from_answers(GROUP_ANSWERS, "mail.example.org")
    assert settings.directory == "postgresql"
    assert settings.pg_hosts == ("198.51.100.10", "db2.example.org")
    assert settings.server_address == SERVER
    # the state directory keeps the answers, never the password
    assert "pg_password" not in settings.to_answers() and "s3cret" not in repr(settings)


def test_sqlite_needs_none_of_the_group_answers():
    settings = ImapSettings.from_answers({"domains": "example.org", "tls_source": "snakeoil"}, "mail.example.org")
    assert settings.directory == "sqlite" and settings.pg_hosts == ()


@pytest.mark.parametrize("question, value, expected", [
    ("directory", "mysql", "expected one of sqlite, postgresql"),
    ("pg_hosts", "", "names or IP addresses of PostgreSQL servers"),
    ("pg_hosts", "db_1.example.org", "names or IP addresses of PostgreSQL servers"),
    ("pg_database", "mail-setup", "PostgreSQL name"),
    ("pg_user", "Robert'); DROP TABLE", "PostgreSQL name"),
    ("server_address", "127.0.0.1", "IP address of this server"),
    ("server_address", "mx1.example.org", "IP address of this server"),
])
def test_a_bad_group_answer_is_refused_in_one_line(question, value, expected):
    answers = dict(GROUP_ANSWERS, **{question: value})
    with pytest.raises(InvalidAnswer) as err:
        ImapSettings.from_answers(answers, "mail.example.org")
    line = str(err.value)
    assert line.startswith("mailsetup-imap/%s" % question) and expected in line and "\n" not in line


@pytest.mark.parametrize("password", ["", "with space", "quote'd", 'dq"x', "back\\slash", "per%cent",
                                      "hash#x", "$HOME", "пароль-кирилицею"])
def test_a_bad_password_is_refused_without_being_shown(password):
    with pytest.raises(InvalidAnswer) as err:
        ImapSettings.from_answers(dict(GROUP_ANSWERS, pg_password=password), "mail.example.org")
    assert "mailsetup-imap/pg_password" in str(err.value)
    assert password.strip() == "" or password not in str(err.value)


def test_postfix_reaches_every_server_over_tls(store):
    uris = store.uris()
    assert uris == [
        "postgresql://mailsetup:s3cret%2F%2Bx-y@198.51.100.10:5432/mailsetup?sslmode=require&connect_timeout=5",
        "postgresql://mailsetup:s3cret%2F%2Bx-y@db2.example.org:5432/mailsetup?sslmode=require&connect_timeout=5"]


def test_nothing_is_written_when_postgresql_does_not_answer(store, monkeypatch):
    monkeypatch.setattr(PgsqlStore, "_connect", _no_server)
    with pytest.raises(MailboxError):
        store.install()  # nothing answers: no file written
    assert not os.path.exists(store.map_path("domains"))


def _no_server(self):
    raise MailboxError("%s: does not answer" % self.location)


def test_the_settings_file_is_root_only_and_reads_back(store):
    assert store.save_settings()
    assert stat.S_IMODE(os.stat(store.settings_path).st_mode) == 0o600
    again = PgsqlStore.from_settings_file(store.etc_dir, store.lock_dir)
    assert (again.hosts, again.dbname, again.user, again.password, again.server) == (
        store.hosts, store.dbname, store.user, store.password, store.server)
    assert not store.save_settings()  # unchanged: not written again


def test_a_missing_settings_file_is_one_line(tmp_path):
    with pytest.raises(MailboxError, match="directory.conf: cannot be read .* dpkg-reconfigure mailsetup-imap"):
        PgsqlStore.from_settings_file(str(tmp_path), str(tmp_path))


def test_an_unreachable_server_is_refused_in_one_line(tmp_path):
    # the real libpq against a port where nothing listens (loopback only: the network rule)
    store = PgsqlStore(str(tmp_path), str(tmp_path), ("127.0.0.1",), "mailsetup", "mailsetup", "x", SERVER)
    if subprocess.run(["sh", "-c", "exec 3<>/dev/tcp/127.0.0.1/5432"], capture_output=True).returncode == 0:
        pytest.skip("a PostgreSQL listens on this machine")
    with pytest.raises(MailboxError) as err:
        store.load()
    line = str(err.value)
    assert line.startswith("the PostgreSQL directory mailsetup on 127.0.0.1: does not answer")
    assert "nothing was changed" in line and "\n" not in line


def test_mail_for_a_mailbox_elsewhere_goes_to_its_home_servers_lmtp():
    query = pgsql_store.transport_query(SERVER)
    assert "'lmtp:inet:[' || home_server || ']:24'" in query
    assert f"home_server <> '{SERVER}'" in query  # this server's own: virtual_transport


@pytest.mark.parametrize("version", ["2.3", "2.4"])
def test_logins_for_a_mailbox_elsewhere_are_passed_on(version):
    query = dovecot.sql_query(version, "password", SERVER)
    assert f"m.home_server NOT IN ('', '{SERVER}')" in query
    assert " END AS proxy" in query and " END AS host" in query and "'any-cert'" in query
    # one stored here: every proxy column NULL, so Dovecot logs in here
    assert query.count("CASE WHEN") == len(dovecot.PROXY_COLUMNS)


def test_the_group_config_listens_for_lmtp_on_the_group_address_only():
    settings = ImapSettings.from_answers(GROUP_ANSWERS, "mail.example.org")
    for version in ("2.3", "2.4"):
        text = dovecot.group_conf(version, settings)
        assert f"= {SERVER}\n" in text and "port = 24" in text
    assert dovecot.group_conf("2.3", ImapSettings.from_answers(
        {"domains": "example.org", "tls_source": "snakeoil"}, "mail.example.org")) == ""


# -- joining and leaving a group (mailbox_system.adopt), with real SQLite stores on both sides

def _sqlite(tmp_path, name):
    from mailsetup.imap.mailboxes.sqlite_store import SqliteStore
    store = SqliteStore(str(tmp_path / name), str(tmp_path / f"{name}-etc"), users_group=None)
    store.install()
    return store


def test_the_first_server_brings_its_mailboxes_into_the_group(tmp_path):
    from mailsetup.imap.mailboxes import system as mailbox_system
    from test_mailbox_store import populated
    own, group = populated(_sqlite(tmp_path, "own")), _sqlite(tmp_path, "group")
    assert mailbox_system.adopt(group, own)
    assert group.load() == own.load()


def test_a_server_joining_a_group_with_mailboxes_takes_the_groups(tmp_path):
    from mailsetup.imap.mailboxes import system as mailbox_system
    from test_mailbox_store import populated
    own, group = _sqlite(tmp_path, "own"), populated(_sqlite(tmp_path, "group"))
    with own.transaction() as d:
        d.add_domain("example.org")  # the domains answer of the joining server
    before = group.load()
    assert not mailbox_system.adopt(group, own)
    assert group.load() == before


def test_two_different_sets_of_mailboxes_are_refused_and_nothing_changes(tmp_path):
    from mailsetup.imap.mailboxes import system as mailbox_system
    from test_mailbox_store import fast_hasher, populated
    own, group = _sqlite(tmp_path, "own"), populated(_sqlite(tmp_path, "group"))
    with own.transaction() as d:
        d.add_domain("example.org")
        d.add_mailbox("zed@example.org", fast_hasher("zed-password"))
    before_own, before_group = own.load(), group.load()
    with pytest.raises(MailboxError, match="both hold mailboxes, and not the same ones; nothing was changed"):
        mailbox_system.adopt(group, own)
    assert (own.load(), group.load()) == (before_own, before_group)


def test_leaving_the_group_replaces_the_old_sqlite_copy(tmp_path):
    from mailsetup.imap.mailboxes import system as mailbox_system
    from test_mailbox_store import fast_hasher, populated
    stale, group = populated(_sqlite(tmp_path, "stale")), populated(_sqlite(tmp_path, "group"))
    with group.transaction() as d:
        d.add_mailbox("dave@example.org", fast_hasher("dave-password"))  # added on another server meanwhile
    mailbox_system.adopt(stale, group, replace=True)
    assert stale.load() == group.load()
