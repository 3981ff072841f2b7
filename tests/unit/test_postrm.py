"""The purge scripts in a scratch root: /etc and /var/lib rewritten under tmp_path,
the Postfix tools and invoke-rc.d replaced by stubs that log their calls.

Debian Policy 10.7.3: a removed (not purged) package keeps its configuration, so
purging one of the packages removes only its own files under /etc/mailsetup."""

import os
import re
import subprocess

import pytest

DEBIAN = os.path.join(os.path.dirname(__file__), "..", "..", "debian")
STUBS = ("postconf", "postfix", "newaliases", "invoke-rc.d", "doveadm", "python3")

# Files each package leaves under /etc/mailsetup and /var/lib.
CORE_FILES = ("etc/mailsetup/aliases", "etc/mailsetup/aliases.db", "var/lib/mailsetup/applied.json",
              "var/lib/mailsetup/postfix-originals", "var/lib/mailsetup/mailname.absent")
IMAP_FILES = ("etc/mailsetup/directory.json", "etc/mailsetup/dovecot/users", "etc/mailsetup/virtual/domains",
              "etc/mailsetup/virtual/domains.db", "etc/mailsetup/sieve/spam-to-junk.sieve",
              "etc/mailsetup/sieve/spam-to-junk.svbin", "etc/mailsetup/sieve/report-spam.sieve",
              "etc/mailsetup/sieve/report-spam.svbin", "etc/mailsetup/sieve/report-ham.sieve",
              "etc/mailsetup/sieve/report-ham.svbin",
              "var/lib/mailsetup-imap/applied.json", "var/lib/mailsetup-imap/directory/directory.sqlite",
              "var/lib/mailsetup-imap/directory/passwords.sqlite", "etc/mailsetup/sqlite/mailboxes.cf",
              "etc/mailsetup/directory.json.migrated")
FILTER_FILES = ("etc/mailsetup/filter/client-access.cidr", "etc/mailsetup/filter/sender-access")


@pytest.fixture
def root(tmp_path):
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    log = tmp_path / "calls"
    for name in STUBS:
        # Each call is logged with whether main.cf existed at the time.
        (stubs / name).write_text(
            "#!/bin/sh\n"
            f'if [ -e "{tmp_path}/etc/postfix/main.cf" ]; then cf=main.cf; else cf=no-main.cf; fi\n'
            f'echo "{name} $* ($cf)" >> "{log}"\n'
            f'[ "{name} $1" != "postfix status" ] || [ -e "{tmp_path}/running" ]\n')
        (stubs / name).chmod(0o755)
    return tmp_path


def make(root, *paths):
    for path in paths:
        os.makedirs(os.path.dirname(root / path), exist_ok=True)
        (root / path).write_text("x\n")


def purge(root, package):
    text = open(os.path.join(DEBIAN, f"{package}.postrm")).read()
    # One pass: a root under /var/tmp must not be rewritten again.
    text = re.sub(r"(?<![\w/.-])/(etc|var|run)/", lambda m: f"{root}{m.group(0)}", text)
    text = text.replace("/usr/share/debconf/confmodule", f"{root}/no-debconf")
    script = root / f"{package}.postrm"
    script.write_text(text)
    env = {"PATH": f"{root}/stubs:/usr/bin", "LC_ALL": "C"}
    proc = subprocess.run(["sh", str(script), "purge"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr


def calls(root):
    path = root / "calls"
    return path.read_text().splitlines() if path.exists() else []


def exists(root, paths):
    return [p for p in paths if os.path.exists(root / p)]


def test_core_purge_keeps_the_files_of_removed_imap_and_filter(root):
    make(root, "etc/postfix/main.cf", *CORE_FILES, *IMAP_FILES, *FILTER_FILES)
    purge(root, "mailsetup")
    assert exists(root, CORE_FILES) == []
    assert exists(root, IMAP_FILES + FILTER_FILES) == list(IMAP_FILES + FILTER_FILES)


def test_core_purge_alone_leaves_no_directory(root):
    make(root, "etc/postfix/main.cf", *CORE_FILES)
    purge(root, "mailsetup")
    assert not os.path.exists(root / "etc/mailsetup")
    assert not os.path.exists(root / "var/lib/mailsetup")


@pytest.mark.parametrize("order", [("mailsetup", "mailsetup-imap", "mailsetup-filter"),
                                   ("mailsetup-filter", "mailsetup-imap", "mailsetup"),
                                   ("mailsetup-imap", "mailsetup", "mailsetup-filter")])
def test_purging_all_three_in_any_order_leaves_no_directory(root, order):
    make(root, *CORE_FILES, *IMAP_FILES, *FILTER_FILES)
    for package in order:
        purge(root, package)
    assert not os.path.exists(root / "etc/mailsetup")
    assert not os.path.exists(root / "var/lib/mailsetup")
    assert not os.path.exists(root / "var/lib/mailsetup-imap")


def test_imap_purge_keeps_the_core_table_and_the_filter_lists(root):
    make(root, *CORE_FILES, *IMAP_FILES, *FILTER_FILES)
    purge(root, "mailsetup-imap")
    assert exists(root, IMAP_FILES) == []
    assert exists(root, CORE_FILES + FILTER_FILES) == list(CORE_FILES + FILTER_FILES)


def test_a_main_cf_we_created_goes_after_postfix_is_stopped(root):
    # Postfix was installed as "No configuration": mailsetup created main.cf and
    # /etc/aliases (trixie), and started Postfix.
    make(root, "etc/postfix/main.cf", "etc/aliases", "etc/aliases.db", *CORE_FILES,
         "var/lib/mailsetup/main.cf.absent", "var/lib/mailsetup/aliases.absent",
         "var/lib/mailsetup/aliases.db.absent", "running")
    purge(root, "mailsetup")
    assert exists(root, ("etc/postfix/main.cf", "etc/aliases", "etc/aliases.db")) == []
    assert "invoke-rc.d postfix stop (main.cf)" in calls(root)
    # Nothing is restored into (or reloaded from) the main.cf that goes.
    assert not [c for c in calls(root) if c.startswith(("postconf", "postfix reload", "newaliases"))]


def test_an_aliases_file_that_was_there_stays(root):
    make(root, "etc/postfix/main.cf", "etc/aliases", "etc/aliases.db", *CORE_FILES,
         "var/lib/mailsetup/main.cf.absent")
    purge(root, "mailsetup")
    assert exists(root, ("etc/aliases", "etc/aliases.db")) == ["etc/aliases", "etc/aliases.db"]


def test_a_running_postfix_with_its_own_main_cf_is_reloaded_not_stopped(root):
    make(root, "etc/postfix/main.cf", *CORE_FILES, "running")
    purge(root, "mailsetup")
    assert os.path.exists(root / "etc/postfix/main.cf")
    assert "postfix reload (main.cf)" in calls(root)
    assert not [c for c in calls(root) if c.startswith("invoke-rc.d postfix stop")]


def test_a_stopped_postfix_with_its_own_main_cf_stays_stopped(root):
    make(root, "etc/postfix/main.cf", *CORE_FILES)
    purge(root, "mailsetup")
    assert not [c for c in calls(root) if c.startswith(("invoke-rc.d", "postfix reload", "postfix start"))]
