"""postfix_tools: Postfix command lines with -c, their errors, and the
master.cf and aliases(5) readings."""

import pytest

from mailsetup import postfix_tools
from mailsetup.imap.mailboxes.model import MailboxError
from mailsetup.postfix_tools import (MasterEntry, PostconfError, command_line, parse_aliases, parse_master,
                                     postalias_line, postmap_line)


def test_command_lines_add_the_config_dir_only_when_one_is_given():
    assert postmap_line("hash:/etc/mailsetup/virtual/domains") == ["postmap", "hash:/etc/mailsetup/virtual/domains"]
    assert postmap_line("hash:/x", "/tmp/pf", command="/tmp/fake") == ["/tmp/fake", "-c", "/tmp/pf", "hash:/x"]
    assert postalias_line("hash:/etc/aliases", "/tmp/pf") == ["postalias", "-c", "/tmp/pf", "hash:/etc/aliases"]
    assert command_line("postconf", None, "-n", "myhostname") == ["postconf", "-n", "myhostname"]


def test_run_raises_the_callers_error_for_a_missing_command():
    with pytest.raises(MailboxError) as err:
        postfix_tools.run(["/nonexistent/postmap", "hash:/x"], MailboxError)
    assert str(err.value) == "/nonexistent/postmap not found: is postfix installed?"


def test_run_says_the_command_line_and_what_it_printed(tmp_path):
    fake = tmp_path / "postmap"
    fake.write_text("#!/bin/sh\necho 'postmap: fatal: disk full' >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(PostconfError) as err:
        postfix_tools.run(postmap_line("hash:/x", "/pf", command=str(fake)))
    assert str(err.value) == f"{fake} -c /pf hash:/x failed: postmap: fatal: disk full"
    fake.write_text("#!/bin/sh\necho 'only on stdout'\nexit 1\n")
    with pytest.raises(MailboxError, match="failed: only on stdout$"):
        postfix_tools.run([str(fake)], MailboxError)


def test_run_returns_the_completed_process(tmp_path):
    fake = tmp_path / "postconf"
    fake.write_text("#!/bin/sh\necho \"myhostname = $3\"\n")
    fake.chmod(0o755)
    assert postfix_tools.run(command_line(str(fake), "/pf", "mail.example.org")).stdout == \
        "myhostname = mail.example.org\n"


def test_parse_master_names_the_fields():
    entries = parse_master([
        "smtp       inet  n       -       y       -       -       smtpd",
        "relay      unix  -       -       y       -       -       smtp -o syslog_name=postfix/$service_name",
        "",
        "broken unix -",
    ])
    assert entries == [
        MasterEntry("smtp", "inet", "n", "-", "y", "-", "-", "smtpd"),
        MasterEntry("relay", "unix", "-", "-", "y", "-", "-", "smtp", ("-o", "syslog_name=postfix/$service_name")),
    ]
    assert entries[1].command == "smtp" and entries[1].type == "unix"


def test_parse_aliases_reads_continuations_and_skips_comments():
    text = (b"  stray: before any entry\n"
            b"# a comment\n"
            b"Root: alice,\n"
            b"\tbob@example.org\n"
            b"   # an indented comment\n"
            b"\n"
            b"no colon here\n"
            b"postmaster:root\n"
            b"empty:\n")
    assert parse_aliases(text) == {"root": ["alice", "bob@example.org"], "postmaster": ["root"], "empty": []}


def test_system_alias_names_are_the_names_of_etc_aliases(tmp_path):
    from mailsetup.system import System
    aliases = tmp_path / "aliases"
    system = System(system_aliases_path=str(aliases))
    assert system.system_alias_names() == set()
    aliases.write_bytes(b"# See man 5 aliases\nPostmaster:    root\nwww: webmaster,\n  alice\n")
    assert system.system_alias_names() == {"postmaster", "www"}
