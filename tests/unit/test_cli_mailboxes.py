"""The mailsetup command's domain, mailbox, alias, list and import commands, and
what `mailsetup status` says about them: output, exit codes, and which files
change (none, when a change is refused).

The store is a FileStore in tmp_path with a stand-in postmap (it copies the
text to the .db: enough for the store, which only needs the file), passwords
are hashed with test_mailbox_store's fast hasher, and the core (mydestination)
is a recorder, so no root, Postfix or Dovecot is needed.
"""

import dataclasses
import io
import json
import os
import sqlite3
import subprocess
import time

import pytest

from mailsetup import i18n

from mailsetup import cli
from mailsetup.cli import status as cli_status
from mailsetup.errors import ApplyFailed
from mailsetup.filter import health

from mailsetup.imap import cli as cli_mailboxes
from mailsetup.imap.mailboxes.sqlite_store import SqliteStore
from mailsetup.imap.mailboxes.store import FileStore
from mailsetup.state import StateDir
from mailsetup.system import System

from test_i18n import UK_PO
from test_mailbox_store import fast_hasher

PASSWORD = "correct horse battery"


class Env:
    def __init__(self, tmp_path, capsys, monkeypatch, backend="sqlite"):
        self.tmp = tmp_path
        self.capsys = capsys
        self.monkeypatch = monkeypatch
        self.system = System(etc_dir=str(tmp_path / "etc-mailsetup"), state_dir=str(tmp_path / "state"),
                             imap_state_dir=str(tmp_path / "imap-state"), vmail_dir=str(tmp_path / "vmail"),
                             run_services=False)
        postmap = tmp_path / "fake-postmap"
        postmap.write_text('#!/bin/sh\nfor arg; do last=$arg; done\nfile=${last#*:}\ncp "$file" "$file.db"\n')
        postmap.chmod(0o755)
        if backend == "files":
            self.store = FileStore(self.system.etc_dir, postmap=str(postmap), users_group=None)
        else:
            self.store = SqliteStore(self.system.directory_db_dir, self.system.etc_dir, users_group=None)
            self.store.install()
        self.core_runs = []
        self.core_error = None

    def configure(self):
        """As mailsetup-imap's configuration leaves it (the file store has its directory.json then)."""
        StateDir(self.system.imap_state_dir).save_applied({"answers": {}})
        if self.store.backend == "files":
            self.store.commit(self.store.load())
        return self

    def reapply(self, system):
        assert system is self.system
        self.core_runs.append(sorted(self.store.load().domains))
        if self.core_error:
            raise self.core_error

    def run(self, *argv, stdin=""):
        """(exit code, stdout, stderr) of `mailsetup ARGV` with stdin as standard input."""
        self.stdin = io.StringIO(stdin)
        self.monkeypatch.setattr("sys.stdin", self.stdin)
        tools = cli_mailboxes.Tools(self.system, store=self.store, hasher=fast_hasher, reapply=self.reapply)
        code = cli.main(list(argv), tools=tools)
        out, err = self.capsys.readouterr()
        return code, out, err

    def ok(self, *argv, stdin=""):
        code, out, err = self.run(*argv, stdin=stdin)
        assert (code, err) == (0, ""), (argv, code, out, err)
        return out

    def refused(self, *argv, stdin=""):
        """Run a change that must be refused: exit 1, one line on stderr, no file changed."""
        before = files(self.tmp)
        code, out, err = self.run(*argv, stdin=stdin)
        assert code == cli.EXIT_PROBLEM, (argv, out, err)
        assert out == ""
        assert err.startswith("mailsetup: ") and err.endswith("\n") and err.count("\n") == 1, err
        assert files(self.tmp) == before
        return err[len("mailsetup: "):-1]

    def users(self):
        """Dovecot's view of the mailboxes, as the file store's passwd-file has it."""
        if self.store.backend == "files":
            with open(self.store.users_path) as f:
                return f.read()
        with sqlite3.connect(self.store.passwords_db) as conn:
            conn.execute("ATTACH DATABASE ? AS d", (self.store.directory_db,))
            rows = conn.execute("SELECT p.address, p.password, m.quota FROM passwords p "
                                "JOIN d.mailboxes m USING (address) ORDER BY p.address").fetchall()
        return "".join(f"{a}:{h}::::::" + (f"userdb_quota_rule=*:storage={q}" if q else "") + "\n"
                       for a, h, q in rows)

    def map_text(self, name):
        """A Postfix table as key<TAB>value lines (the file store's map, or the SQLite rows)."""
        if self.store.backend == "files":
            with open(self.store.map_path(name)) as f:
                return f.read()
        query = {"domains": "SELECT name, 'OK' FROM domains",
                 "aliases": "SELECT address, destinations FROM postfix_aliases"}[name]
        with sqlite3.connect(self.store.directory_db) as conn:
            return "".join(f"{k}\t{v}\n" for k, v in conn.execute(query + " ORDER BY 1"))

    def stored_bytes(self):
        """Everything the store keeps, as bytes (to look for a plaintext password)."""
        paths = ([self.store.json_path] if self.store.backend == "files"
                 else [self.store.directory_db, self.store.passwords_db])
        return b"".join(open(p, "rb").read() for p in paths)

    def directory(self):
        return self.store.load()

    def populate(self):
        self.ok("domain", "add", "example.org")
        self.ok("mailbox", "add", "alice@example.org", "--quota", "2G", stdin="alice-password\n")
        self.ok("mailbox", "add", "bob@example.org", stdin="bob-password\n")
        return self


def files(top):
    """Every file under top (but the lock) with its content and mtime; an SQLite
    database as its rows (a change put back leaves other bytes and a new generation)."""
    found = {}
    for dirpath, _dirs, names in os.walk(top):
        for name in names:
            path = os.path.join(dirpath, name)
            if name == ".lock":
                continue
            if name.endswith(".sqlite"):
                with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
                    found[path] = ([line for line in conn.iterdump() if "'generation'" not in line], None)
                continue
            with open(path, "rb") as f:
                found[path] = (f.read(), os.stat(path).st_mtime_ns)
    return found


@pytest.fixture(params=["sqlite", "files"])
def env(request, tmp_path, capsys, monkeypatch):
    """The mailsetup command on each store: SQLite (the default) and files (0.3.0's, until migrated)."""
    return Env(tmp_path, capsys, monkeypatch, request.param).configure()


# ------------------------------------------------------------------ domains

def test_domain_add_list_del(env):
    assert env.ok("domain", "add", "Example.ORG") == "domain example.org added\n"
    assert env.core_runs == [["example.org"]]  # mydestination follows the domains
    env.ok("domain", "add", "example.net")
    assert json.loads(env.ok("domain", "list", "--json")) == [
        {"domain": "example.net", "mailboxes": 0, "aliases": 0, "lists": 0},
        {"domain": "example.org", "mailboxes": 0, "aliases": 0, "lists": 0}]
    assert env.ok("domain", "del", "example.net") == "domain example.net deleted\n"
    assert env.core_runs[-1] == ["example.org"]
    assert env.ok("domain", "list") == "example.org  0 mailbox(es), 0 alias(es), 0 list(s)\n"
    assert "example.org\tOK" in env.map_text("domains")


def test_domain_twice_is_refused_without_touching_the_core(env):
    env.ok("domain", "add", "example.org")
    assert env.refused("domain", "add", "example.org") == "example.org: this domain already exists"
    assert env.refused("domain", "del", "example.com") == "example.com: no such domain"
    assert env.refused("domain", "add", "not a domain").startswith('"not a domain": ')
    assert len(env.core_runs) == 1


def test_the_servers_own_name_is_refused_as_a_mailbox_domain(env, scratch):
    # Its mail (root, cron) must stay with the system accounts: mydestination keeps it.
    main_cf = os.path.join(scratch.postfix_config_dir, "main.cf")
    os.utime(main_cf, (time.time() - 60, time.time() - 60))  # Postfix commands wait while main.cf is young
    env.system = dataclasses.replace(env.system, postfix_config_dir=scratch.postfix_config_dir)
    problem = env.refused("domain", "add", "old.example.net")
    assert "old.example.net is the server's own name" in problem
    assert env.core_runs == []


def test_domain_del_refused_while_it_has_mailboxes_unless_forced(env):
    env.populate()
    env.ok("alias", "add", "info@example.org", "alice@example.org")
    assert env.refused("domain", "del", "example.org") == (
        "example.org: the domain still has 2 mailbox(es), 1 alias(es) and 0 list(s) (delete them first, or force)")
    out = env.ok("domain", "del", "example.org", "--force")
    assert out.startswith("domain example.org deleted with 2 mailbox(es), 1 alias(es) and 0 list(s); ")
    assert env.directory().mailboxes == {}
    assert env.users() == ""
    assert env.core_runs[-1] == []
    env.ok("domain", "add", "example.net")
    env.ok("list", "add", "team@example.net", "ext@elsewhere.test")
    assert env.ok("domain", "del", "example.net", "--force") == (
        "domain example.net deleted with 0 alias(es) and 1 list(s)\n")


def test_failed_core_undoes_the_domain_change(env):
    env.ok("domain", "add", "example.org")
    before = files(env.tmp)
    env.core_error = ApplyFailed("postfix check failed: fatal: bad main.cf")
    code, out, err = env.run("domain", "add", "example.net")
    assert code == 1 and out == ""
    assert err == ("mailsetup: the Postfix settings could not follow the change of domains, so nothing was "
                   "changed: postfix check failed: fatal: bad main.cf\n")
    assert env.directory().domains == {"example.org"}
    assert {p: c for p, (c, _m) in files(env.tmp).items()} == {p: c for p, (c, _m) in before.items()}


def test_only_domain_changes_touch_the_core(env):
    env.populate()
    runs = len(env.core_runs)
    env.ok("alias", "add", "info@example.org", "alice@example.org")
    env.ok("list", "add", "team@example.org", "alice@example.org")
    env.ok("mailbox", "quota", "bob@example.org", "1G")
    env.ok("mailbox", "passwd", "bob@example.org", stdin="new-bob-password\n")
    env.ok("mailbox", "del", "bob@example.org")
    assert len(env.core_runs) == runs


# ------------------------------------------------------------------ mailboxes

def test_mailbox_add_reads_the_password_from_stdin(env):
    env.ok("domain", "add", "example.org")
    out = env.ok("mailbox", "add", "Alice@Example.org", "--quota", "2G", stdin=PASSWORD + "\n")
    assert out == "mailbox alice@example.org added (quota: 2G)\n"
    assert env.users() == f"alice@example.org:{fast_hasher(PASSWORD)}::::::userdb_quota_rule=*:storage=2G\n"
    assert PASSWORD.encode() not in env.stored_bytes()
    assert env.ok("mailbox", "list") == "alice@example.org  2G\n"


def test_no_password_option(env):
    env.ok("domain", "add", "example.org")
    code, _out, err = env.run("mailbox", "add", "alice@example.org", "--password", PASSWORD)
    assert code == cli.EXIT_USAGE and "--password" in err
    assert env.users() == ""


@pytest.mark.parametrize("stdin,message", [
    ("", "no password on standard input"),
    ("short\n", "the password is too short: at least 8 characters"),
])
def test_missing_or_bad_password_changes_nothing(env, stdin, message):
    env.ok("domain", "add", "example.org")
    assert message in env.refused("mailbox", "add", "alice@example.org", stdin=stdin)


def test_password_typed_twice_at_a_terminal(env, monkeypatch):
    env.ok("domain", "add", "example.org")
    answers = []
    monkeypatch.setattr(cli_mailboxes.getpass, "getpass", lambda prompt: answers.pop(0))

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    def run_at_terminal(*argv):
        monkeypatch.setattr(cli_mailboxes.sys, "stdin", Terminal())
        tools = cli_mailboxes.Tools(env.system, store=env.store, hasher=fast_hasher, reapply=env.reapply)
        code = cli.main(list(argv), tools=tools)
        return (code,) + tuple(env.capsys.readouterr())

    before = files(env.tmp)
    answers[:] = [PASSWORD, PASSWORD + "x"]
    assert run_at_terminal("mailbox", "add", "alice@example.org") == (
        1, "", "mailsetup: the passwords do not match; nothing was changed\n")
    assert files(env.tmp) == before
    answers[:] = [PASSWORD, PASSWORD]
    assert run_at_terminal("mailbox", "add", "alice@example.org")[0] == 0
    assert fast_hasher(PASSWORD) in env.users()


def test_bad_address_is_refused_before_the_password_is_read(env):
    env.ok("domain", "add", "example.org")
    message = env.refused("mailbox", "add", "alice smith@example.org", stdin=PASSWORD + "\n")
    assert message.startswith('"alice smith@example.org": ')
    assert env.stdin.read() == PASSWORD + "\n"  # not consumed


def test_unknown_domain(env):
    env.ok("domain", "add", "example.org")
    assert env.refused("mailbox", "add", "alice@example.com", stdin=PASSWORD + "\n") == (
        "alice@example.com: unknown domain example.com (add it first: mailsetup domain add example.com)")
    assert env.refused("mailbox", "list", "example.com") == "example.com: no such domain"


def test_duplicate_mailbox(env):
    env.populate()
    assert env.refused("mailbox", "add", "alice@example.org", stdin=PASSWORD + "\n") == (
        "alice@example.org: a mailbox with this address already exists")
    env.ok("alias", "add", "info@example.org", "alice@example.org")
    assert env.refused("mailbox", "add", "info@example.org", stdin=PASSWORD + "\n") == (
        "info@example.org: an alias with this address already exists")


def test_passwd_and_quota(env):
    env.populate()
    assert env.ok("mailbox", "passwd", "bob@example.org", stdin="new-bob-password\n") == (
        "password of bob@example.org changed\n")
    assert f"bob@example.org:{fast_hasher('new-bob-password')}::::::\n" in env.users()
    assert env.ok("mailbox", "quota", "bob@example.org", "500M") == "quota of bob@example.org: 500M\n"
    assert env.ok("mailbox", "quota", "alice@example.org", "0") == "quota of alice@example.org: no limit\n"
    assert json.loads(env.ok("mailbox", "list", "example.org", "--json")) == [
        {"address": "alice@example.org", "quota_bytes": 0, "quota": "0"},
        {"address": "bob@example.org", "quota_bytes": 500 << 20, "quota": "500M"}]
    assert env.refused("mailbox", "quota", "bob@example.org", "12") == "12: give a unit: 12M"
    assert env.refused("mailbox", "passwd", "carol@example.org", stdin=PASSWORD + "\n") == (
        "carol@example.org: no such mailbox")


def test_del_keeps_the_mail_unless_purged(env):
    env.populate()
    maildir = env.tmp / "vmail" / "example.org" / "alice" / "Maildir" / "new"
    maildir.mkdir(parents=True)
    (maildir / "1.msg").write_text("Subject: hello\n\nhi\n")
    out = env.ok("mailbox", "del", "alice@example.org")
    assert out == (f"mailbox alice@example.org deleted; its mail stays in {env.tmp}/vmail/example.org/alice "
                   "(--purge-mail deletes it)\n")
    assert (maildir / "1.msg").exists()
    assert "alice@" not in env.users()

    # a new mailbox of the same address gets the old mail, and is told so
    code, out, err = env.run("mailbox", "add", "alice@example.org", stdin=PASSWORD + "\n")
    assert code == 0 and "still holds the mail of an earlier mailbox" in err
    assert env.ok("mailbox", "del", "alice@example.org", "--purge-mail") == (
        "mailbox alice@example.org and its mail deleted\n")
    assert not (env.tmp / "vmail" / "example.org" / "alice").exists()
    assert env.refused("mailbox", "del", "alice@example.org", "--purge-mail") == "alice@example.org: no such mailbox"


def test_del_refused_while_an_alias_delivers_to_it(env):
    env.populate()
    env.ok("alias", "add", "info@example.org", "alice@example.org", "bob@example.org")
    assert env.refused("mailbox", "del", "alice@example.org") == (
        "alice@example.org: still a target of info@example.org (remove it there first, or force)")
    env.ok("mailbox", "del", "alice@example.org", "--force")
    assert env.directory().aliases == {"info@example.org": ["bob@example.org"]}


# ------------------------------------------------------------------ aliases and lists

def test_aliases_and_catch_all(env):
    env.populate()
    assert env.ok("alias", "add", "Info@example.org", "alice@example.org,bob@example.org", "friend@elsewhere.test") == (
        "alias info@example.org added: alice@example.org, bob@example.org, friend@elsewhere.test\n")
    assert env.ok("alias", "add", "@example.org", "alice@example.org") == (
        "catch-all of example.org added: alice@example.org\n")
    assert json.loads(env.ok("alias", "list", "--json")) == [
        {"address": "@example.org", "catch_all": True, "targets": ["alice@example.org"]},
        {"address": "info@example.org", "catch_all": False,
         "targets": ["alice@example.org", "bob@example.org", "friend@elsewhere.test"]}]
    table = env.map_text("aliases")
    assert "@example.org\talice@example.org\n" in table
    assert "info@example.org\talice@example.org, bob@example.org, friend@elsewhere.test\n" in table
    assert env.ok("alias", "del", "@example.org") == "catch-all of example.org deleted\n"
    assert env.ok("alias", "list") == (
        "info@example.org -> alice@example.org, bob@example.org, friend@elsewhere.test\n")


@pytest.mark.parametrize("argv,message", [
    (("alias", "add", "info@example.org", "alice@example.org"), "info@example.org: an alias with this address"),
    (("alias", "add", "alice@example.org", "bob@example.org"), "a mailbox has this address"),
    (("alias", "add", "x@example.org", "ghost@example.org"),
     "x@example.org: ghost@example.org is in managed domain example.org but is no mailbox, alias or list there"),
    (("alias", "add", "x@example.com", "alice@example.org"), "x@example.com: unknown domain example.com"),
    (("alias", "add", "x@example.org", "not-an-address"), "not-an-address: expected a mail address"),
    (("alias", "del", "nobody@example.org"), "nobody@example.org: no such alias"),
])
def test_bad_aliases_change_nothing(env, argv, message):
    env.populate()
    env.ok("alias", "add", "info@example.org", "alice@example.org")
    assert message in env.refused(*argv)


def test_alias_loop_is_refused(env):
    env.populate()
    env.ok("list", "add", "team@example.org")
    env.ok("alias", "add", "all@example.org", "team@example.org")
    assert env.refused("list", "subscribe", "team@example.org", "all@example.org") == (
        "all@example.org: alias loop: all@example.org -> team@example.org -> all@example.org")
    env.ok("alias", "add", "a@example.org", "alice@example.org")
    assert "cannot deliver to itself" in env.refused("alias", "add", "b@example.org", "b@example.org")


def test_lists(env):
    env.populate()
    assert env.ok("list", "add", "team@example.org", "alice@example.org", "ext@elsewhere.test") == (
        "list team@example.org added with 2 members\n")
    assert env.ok("list", "add", "solo@example.org", "bob@example.org") == "list solo@example.org added with 1 member\n"
    assert env.ok("list", "subscribe", "team@example.org", "bob@example.org", "Bob@example.org") == (
        "subscribed to team@example.org: bob@example.org\n")
    assert env.refused("list", "subscribe", "team@example.org", "bob@example.org") == (
        "bob@example.org: already a member of team@example.org")
    assert env.ok("list", "unsubscribe", "team@example.org", "ext@elsewhere.test") == (
        "unsubscribed from team@example.org: ext@elsewhere.test\n")
    assert env.refused("list", "unsubscribe", "team@example.org", "ext@elsewhere.test") == (
        "ext@elsewhere.test: not a member of team@example.org")
    assert json.loads(env.ok("list", "members", "team@example.org", "--json")) == {
        "list": "team@example.org", "members": ["alice@example.org", "bob@example.org"]}
    assert env.ok("list", "members", "team@example.org") == "alice@example.org\nbob@example.org\n"
    assert env.ok("list", "members") == (
        "solo@example.org: bob@example.org\nteam@example.org: alice@example.org, bob@example.org\n")
    assert "team@example.org\talice@example.org, bob@example.org\n" in env.map_text("aliases")
    assert env.refused("list", "members", "nolist@example.org") == "nolist@example.org: no such list"
    assert env.ok("list", "del", "team@example.org") == "list team@example.org deleted\n"
    assert env.refused("list", "del", "team@example.org") == "team@example.org: no such list"


# ------------------------------------------------------------------ import

GOOD_CSV = """type,address,value,quota
domain,example.org,,
mailbox,alice@example.org,alice-password,2G
mailbox,bob@example.org,bob-password,
alias,info@example.org,alice@example.org bob@example.org,
list,team@example.org,alice@example.org;bob@example.org,
"""


def test_import(env):
    path = env.tmp / "users.csv"
    path.write_text(GOOD_CSV)
    assert env.ok("import", str(path)) == (
        f"{path}: imported 1 domain(s), 2 mailbox(es), 1 alias(es) and 1 list(s)\n")
    assert env.core_runs == [["example.org"]]
    assert fast_hasher("alice-password") in env.users()
    assert env.directory().lists == {"team@example.org": ["alice@example.org", "bob@example.org"]}
    # the same file again: everything in it exists already
    assert env.refused("import", str(path)) == (
        f"{path} line 2: example.org: this domain already exists")


def test_import_bad_row_names_its_line_and_changes_nothing(env):
    env.populate()
    path = env.tmp / "bad.csv"
    path.write_text("type,address,value,quota\n"
                    "mailbox,carol@example.org,carol-password,\n"
                    "# a comment\n"
                    "mailbox,dave@example.com,dave-password,\n"
                    "mailbox,erin@example.org,erin-password,\n")
    assert env.refused("import", str(path)) == (
        f"{path} line 4: dave@example.com: unknown domain example.com (add it first: mailsetup domain add example.com)")
    assert "carol" not in env.users()
    assert env.refused("import", str(env.tmp / "missing.csv")).startswith(f"{env.tmp}/missing.csv: cannot be read")


# ------------------------------------------------------------------ without mailsetup-imap, usage

def test_not_configured(tmp_path, capsys, monkeypatch):
    env = Env(tmp_path, capsys, monkeypatch)
    assert env.refused("domain", "add", "example.org") == (
        "mailboxes are not set up: install mailsetup-imap first (apt install mailsetup-imap)")
    assert env.refused("mailbox", "list").startswith("mailboxes are not set up")
    assert env.core_runs == []


@pytest.mark.parametrize("argv", [["mailbox"], ["mailbox", "frob"], ["alias", "add", "info@example.org"],
                                  ["domain", "list", "--bogus"], ["list", "subscribe", "team@example.org"]])
def test_usage_errors(env, argv):
    code, out, err = env.run(*argv)
    assert code == cli.EXIT_USAGE and out == "" and "usage: mailsetup" in err


def test_help():
    text = cli.build_parser().format_help()
    for command in ("domain", "mailbox", "alias", "list", "import"):
        assert command in text
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["mailbox", "add", "--help"])


# ------------------------------------------------------------------ in Ukrainian

@pytest.fixture
def ukrainian(monkeypatch, tmp_path_factory):
    top = tmp_path_factory.mktemp("locale")
    (top / "uk" / "LC_MESSAGES").mkdir(parents=True)
    subprocess.run(["msgfmt", "--check", "-o", str(top / "uk" / "LC_MESSAGES" / "mailsetup.mo"), UK_PO],
                   check=True)
    monkeypatch.setenv(i18n.LOCALEDIR_ENV, str(top))
    monkeypatch.setenv("LANGUAGE", "uk")
    i18n.reset()


def test_messages_in_ukrainian(env, ukrainian):
    assert env.ok("domain", "add", "example.org") == "домен example.org додано\n"
    assert env.ok("mailbox", "add", "alice@example.org", stdin=PASSWORD + "\n") == (
        "поштову скриньку alice@example.org додано (квота: без обмеження)\n")
    assert env.refused("mailbox", "add", "alice@example.com", stdin=PASSWORD + "\n") == (
        "alice@example.com: невідомий домен example.com (спершу додайте його: mailsetup domain add example.com)")
    assert env.refused("mailbox", "add", "bob@example.org", stdin="").startswith(
        "на стандартному вводі немає пароля")
    assert env.ok("list", "add", "team@example.org", "alice@example.org", "x@elsewhere.test") == (
        "список розсилки team@example.org створено, 2 учасники\n")
    assert env.ok("domain", "list") == (
        "example.org  поштових скриньок: 1, псевдонімів: 0, списків розсилки: 1\n")
    assert json.loads(env.ok("domain", "list", "--json"))[0]["mailboxes"] == 1  # keys stay English
    help_text = cli.build_parser().format_help()
    assert "додати, видалити чи змінити поштові скриньки" in help_text
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["mailbox", "add", "--help"])
    text = env.capsys.readouterr().out
    assert text.startswith("використання: mailsetup mailbox add")
    assert "аргументи:" in text and "параметри:" in text and "адреса, наприклад alice@example.org" in text
    for english in ("positional arguments", "the address", "options:"):
        assert english not in text


# ------------------------------------------------------------------ status

TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0019 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0
   2: 0100007F:008F 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0 100 0 0 10 0
"""
TCP6 = """  sl  local_address                         remote_address                        st tx_queue rx_queue
   0: 00000000000000000000000000000000:024B 00000000000000000000000000000000:0000 0A 00000000:00000000
   1: 00000000000000000000000000000000:03E1 00000000000000000000000000000000:0000 0A 00000000:00000000
"""


# Lists the messages of the file `queue` beside it, as `postqueue -j` does; fails as when Postfix is down
# without it. Its arguments go to `args`.
FAKE_POSTQUEUE = """#!/bin/sh
here=$(dirname "$0")
echo "$@" >"$here/args"
[ -f "$here/queue" ] || { echo "postqueue: fatal: Queue report unavailable - mail system is down" >&2; exit 69; }
cat "$here/queue"
"""
QUEUED = ('{"queue_name": "active", "queue_id": "4Xq1", "recipients": [{"address": "a@example.org"}]}\n'
          '{"queue_name": "deferred", "queue_id": "4Xq2", "recipients": [{"address": "b@example.net"}]}\n')


@pytest.fixture
def status_env(env, scratch, tmp_path, monkeypatch, fake_services):
    """A configured Postfix (scratch) with mailboxes, Postfix running, ports 25, 587 and 993 listening;
    a postqueue that lists status_env.queue_file (two messages; absent: it fails)."""
    bindir = tmp_path / "postqueue-bin"
    bindir.mkdir()
    (bindir / "postqueue").write_text(FAKE_POSTQUEUE)
    (bindir / "postqueue").chmod(0o755)
    (bindir / "queue").write_text(QUEUED)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    env.queue_file = bindir / "queue"
    main_cf = os.path.join(scratch.postfix_config_dir, "main.cf")
    os.utime(main_cf, (time.time() - 60, time.time() - 60))  # Postfix commands wait while main.cf is young
    env.system = dataclasses.replace(scratch, imap_state_dir=env.system.imap_state_dir,
                                     vmail_dir=env.system.vmail_dir, etc_dir=env.system.etc_dir,
                                     filter_state_dir=str(tmp_path / "filter-state"))
    (tmp_path / "tcp").write_text(TCP)
    (tmp_path / "tcp6").write_text(TCP6)
    monkeypatch.setattr(cli_status, "PROC_NET_TCP", (str(tmp_path / "tcp"), str(tmp_path / "tcp6"), "/nonexistent"))

    def no_certificate(port, mode, server_name):  # the ports are made up: nothing to connect to
        raise cli_status.certinfo.CertError(f"no certificate from 127.0.0.1:{port}: Connection refused")
    monkeypatch.setattr(cli_status, "certificate_on", no_certificate)
    fake_services.up.add("postfix")
    env.services = fake_services
    return env


@pytest.fixture
def dovecot(status_env):
    """Dovecot runs (as the services say)."""
    status_env.services.up.add("dovecot")


def test_status_json(status_env, dovecot):
    status_env.populate()
    code, out, _err = status_env.run("status", "--json")
    status = json.loads(out)
    assert status["dovecot_running"] is True
    assert status["ports"] == [25, 587, 993]
    assert (status["domains"], status["mailboxes"]) == (1, 2)
    assert code == 0
    text = status_env.ok("status")
    assert "Dovecot: running\n" in text
    assert "Listening mail ports: 25, 587, 993\n" in text
    assert "Mail domains: 1, mailboxes: 2\n" in text


def test_status_dovecot_down(status_env, tmp_path):
    status_env.populate()
    code, out, _err = status_env.run("status", "--json")
    assert json.loads(out)["dovecot_running"] is False
    assert code == cli.EXIT_PROBLEM  # mailboxes need Dovecot
    assert "Dovecot: NOT running\n" in status_env.run("status")[1]


def test_status_without_mailboxes(status_env, tmp_path):
    os.unlink(os.path.join(status_env.system.imap_state_dir, "applied.json"))
    code, out, _err = status_env.run("status", "--json")
    status = json.loads(out)
    assert (status["domains"], status["mailboxes"], status["dovecot_running"]) == (None, None, False)
    assert code == 0
    text = status_env.run("status")[1]
    assert "Dovecot" not in text and "Mail domains" not in text
    assert "Listening mail ports: 25, 587, 993\n" in text


def test_status_without_postfix(env, tmp_path, monkeypatch):
    env.system.postfix_config_dir = str(tmp_path / "no-postfix")
    monkeypatch.setattr(cli_status, "PROC_NET_TCP", ("/nonexistent",))
    code, out, _err = env.run("status", "--json")
    status = json.loads(out)
    assert code == cli.EXIT_PROBLEM
    assert status["configured"] is False
    assert (status["ports"], status["domains"], status["mailboxes"]) == ([], 0, 0)
    text = env.run("status")[1]
    assert text.startswith("Postfix is not configured: ")
    assert "Listening mail ports: (none)\n" in text and "Mail domains: 0, mailboxes: 0\n" in text


def test_status_counts_the_queue_with_postqueue(status_env):
    code, out, _err = status_env.run("status", "--json")
    assert json.loads(out)["queue"] == 2
    assert (status_env.queue_file.parent / "args").read_text() == f"-c {status_env.system.postfix_config_dir} -j\n"
    assert "Messages in the queue: 2\n" in status_env.run("status")[1]
    status_env.queue_file.write_text("")
    assert "Messages in the queue: 0\n" in status_env.run("status")[1]


def test_status_queue_unknown_while_postfix_is_down(status_env):
    status_env.services.up.discard("postfix")
    code, out, _err = status_env.run("status", "--json")
    assert json.loads(out)["queue"] is None and code == cli.EXIT_PROBLEM
    assert not (status_env.queue_file.parent / "args").exists()  # not even asked
    text = status_env.run("status")[1]
    assert "Messages in the queue: unknown\n" in text and "Messages in the queue: 0" not in text


def test_status_queue_unknown_when_postqueue_fails_or_is_missing(status_env, monkeypatch):
    status_env.queue_file.unlink()  # postqueue: fatal: ... mail system is down (exit 69)
    code, out, _err = status_env.run("status", "--json")
    assert json.loads(out)["queue"] is None
    assert "Messages in the queue: unknown\n" in status_env.run("status")[1]
    status_env.queue_file.write_text("postqueue: warning: not JSON\n")
    assert cli_status.queue_size(status_env.system) is None

    def missing(*args, **kwargs):
        raise FileNotFoundError(2, "No such file or directory", "postqueue")
    monkeypatch.setattr(cli_status.subprocess, "run", missing)
    assert cli_status.queue_size(status_env.system) is None


def test_status_in_ukrainian_says_the_queue_is_unknown(status_env, ukrainian):
    status_env.services.up.discard("postfix")
    assert "Листів у черзі: невідомо\n" in status_env.run("status")[1]


# --- mailsetup-filter in the status ------------------------------------------

@pytest.fixture
def filter_status_env(status_env, monkeypatch):
    """status_env with mailsetup-filter set up and rspamd running; the milter check answers
    status_env.milter (None: reachable)."""
    from mailsetup.filter import apply as filter_core
    filter_core.filter_state(status_env.system).save_applied({"answers": {}})
    status_env.services.up.update({"rspamd", "dovecot"})
    status_env.milter = None
    monkeypatch.setattr(health, "milter_path", lambda system: "/var/spool/postfix/rspamd/milter.sock")
    monkeypatch.setattr(health, "milter_problem", lambda path: status_env.milter)
    return status_env


@pytest.mark.requires_root
def test_status_with_a_working_filter(filter_status_env):
    code, out, _err = filter_status_env.run("status", "--json")
    status = json.loads(out)
    assert (status["filter_configured"], status["rspamd_running"], status["milter_reachable"]) == (True, True, True)
    assert status["milter_socket"] == "/var/spool/postfix/rspamd/milter.sock" and status["milter_problem"] is None
    assert code == 0
    assert "Filter (rspamd): running, milter reachable\n" in filter_status_env.ok("status")


def test_status_with_rspamd_down_fails(filter_status_env):
    filter_status_env.services.up.discard("rspamd")
    code, out, _err = filter_status_env.run("status", "--json")
    assert json.loads(out)["rspamd_running"] is False
    assert code == cli.EXIT_PROBLEM   # Postfix defers all mail while the filter is down
    assert "Filter (rspamd): NOT running\n" in filter_status_env.run("status")[1]


@pytest.mark.requires_root
def test_status_with_an_unreachable_milter_fails_and_says_why(filter_status_env):
    filter_status_env.milter = ("Milter socket /var/spool/postfix/rspamd/milter.sock: "
                                "Postfix cannot connect (Permission denied)")
    code, out, _err = filter_status_env.run("status", "--json")
    status = json.loads(out)
    assert (status["milter_reachable"], status["milter_problem"]) == (False, filter_status_env.milter)
    assert code == cli.EXIT_PROBLEM
    text = filter_status_env.run("status")[1]
    assert ("Filter (rspamd): running, milter NOT reachable\nMilter socket /var/spool/postfix/rspamd/milter.sock: "
            "Postfix cannot connect (Permission denied)\n") in text


def test_status_without_the_filter_says_nothing_of_it(status_env):
    code, out, _err = status_env.run("status", "--json")
    assert json.loads(out)["filter_configured"] is False and "rspamd_running" not in json.loads(out)
    assert "Filter" not in status_env.run("status")[1]


def test_status_as_a_user_who_cannot_enter_the_socket_directory(filter_status_env, monkeypatch):
    monkeypatch.setattr(health, "milter_checkable", lambda path: False)
    filter_status_env.milter = "never asked"
    code, out, _err = filter_status_env.run("status", "--json")
    status = json.loads(out)
    assert (status["milter_reachable"], status["milter_problem"]) == (None, None)
    assert code == 0
    assert "Filter (rspamd): running (only root can check its milter socket)\n" in filter_status_env.run("status")[1]
