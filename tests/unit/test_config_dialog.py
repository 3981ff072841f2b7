"""The config scripts' dialog (debian/*.config): question by question, each
answer checked right after it is given (python3 -m mailsetup.maintainer check),
a refused one explained and asked again, Go Back to the previous question.

The scripts run under /bin/sh with tests/unit/fake_confmodule.sh in place of
debconf's confmodule: a person who types the given lines.
"""

import os
import subprocess

import pytest

from mailsetup import maintainer
from mailsetup.system import System
from mailsetup.validate import InvalidAnswer

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FAKE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake_confmodule.sh")

# Everything typed for an Internet site (no relay host question).
GOOD = [
    ("mailsetup/mail_domain", "example.test"),
    ("mailsetup/hostname", "mail.example.test"),
    ("mailsetup/mailer_type", "internet"),
    ("mailsetup/other_destinations", ""),
    ("mailsetup/mynetworks", "127.0.0.0/8 [::1]/128"),
    ("mailsetup/message_size_limit", "25"),
    ("mailsetup/admin_user", "alice"),
    ("mailsetup/aliases", "webmaster: alice"),
    ("mailsetup/inet_protocols", "all"),
    ("mailsetup/recipient_delimiter", "+"),
]


def run_config(tmp_path, package, typed, hidden=(), preset=None, helper=True):
    """Run debian/PACKAGE.config as a person typing `typed` ((question, answer), in
    order); it must end well with everything typed used. Returns (log lines, answers)."""
    fake = tmp_path / "fake"
    (fake / "db").mkdir(parents=True)
    (fake / "typed").write_text("".join(f"{q} {a}\n" if a else f"{q}\n" for q, a in typed))
    (fake / "hidden").write_text("".join(f"{q}\n" for q in hidden))
    for question, value in (preset or {}).items():
        (fake / "db" / question.replace("/", "_")).write_text(value)
    with open(os.path.join(TOP, "debian", f"{package}.config")) as f:
        script = f.read().replace("/usr/share/debconf/confmodule", FAKE)
    assert FAKE in script
    (tmp_path / "config").write_text(script)
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "FAKE_DIR": str(fake), "HOME": str(tmp_path)}
    if helper:
        env["PYTHONPATH"] = TOP  # the helper installed; without it, not unpacked yet
    proc = subprocess.run(["/bin/sh", str(tmp_path / "config")], cwd=str(tmp_path), env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    log = (fake / "log").read_text().splitlines() if (fake / "log").exists() else []
    answers = {p.name.replace("_", "/", 1): p.read_text() for p in (fake / "db").iterdir()}
    left = (fake / "typed").read_text()
    assert proc.returncode == 0, proc.stderr
    assert left == "", f"not asked: {left}"
    return log, answers


def asked(log):
    return [line.split(" ", 1)[1] for line in log if line.startswith("ask ")]


def test_every_question_in_order_once(tmp_path):
    log, answers = run_config(tmp_path, "mailsetup", GOOD)
    assert asked(log) == [q for q, _ in GOOD]
    assert "note" not in log
    assert answers["mailsetup/hostname"] == "mail.example.test"


def test_a_bad_host_name_is_refused_before_the_next_question(tmp_path):
    typed = list(GOOD)
    typed[1:2] = [("mailsetup/hostname", "bad_host!"), ("mailsetup/hostname", "mail.example.test")]
    log, answers = run_config(tmp_path, "mailsetup", typed)
    start = log.index("ask mailsetup/hostname")
    explained = log[start + 1:log.index("note")]
    assert log[log.index("note") + 1:log.index("note") + 3] == [
        "ask mailsetup/hostname", "ask mailsetup/mailer_type"]
    assert "subst mailsetup/invalid_answer question mailsetup/hostname" in explained
    assert "subst mailsetup/invalid_answer value bad_host!" in explained
    problem = [line for line in explained if line.startswith("subst mailsetup/invalid_answer problem ")]
    assert problem == ['subst mailsetup/invalid_answer problem expected a fully qualified host name such as '
                       'mail.example.org; "bad_host!" is not a valid label (letters, digits and inner hyphens, '
                       '1-63 characters)']
    assert asked(log) == [q for q, _ in typed]
    assert answers["mailsetup/hostname"] == "mail.example.test"


def test_go_back_from_a_refused_answer_leaves_it_for_the_previous_question(tmp_path):
    typed = list(GOOD)
    typed[1:2] = [("mailsetup/hostname", "bad_host!"), ("mailsetup/hostname", "<back>"),
                  ("mailsetup/mail_domain", "example.org"), ("mailsetup/hostname", "mail.example.org")]
    log, answers = run_config(tmp_path, "mailsetup", typed)
    assert asked(log)[:6] == ["mailsetup/mail_domain", "mailsetup/hostname", "mailsetup/hostname",
                              "mailsetup/mail_domain", "mailsetup/hostname", "mailsetup/mailer_type"]
    assert log.count("note") == 1
    assert answers["mailsetup/mail_domain"] == "example.org"
    assert answers["mailsetup/hostname"] == "mail.example.org"


def test_go_back_skips_a_question_not_asked(tmp_path):
    # Internet site: no relay host question between the type and the other domains.
    typed = GOOD[:3] + [("mailsetup/other_destinations", "<back>"), ("mailsetup/mailer_type", "internet")] + GOOD[3:]
    log, _answers = run_config(tmp_path, "mailsetup", typed)
    assert asked(log)[2:6] == ["mailsetup/mailer_type", "mailsetup/other_destinations",
                               "mailsetup/mailer_type", "mailsetup/other_destinations"]


def test_smarthost_needs_a_relay_host(tmp_path):
    typed = GOOD[:2] + [("mailsetup/mailer_type", "smarthost"), ("mailsetup/relayhost", ""),
                        ("mailsetup/relayhost", "[smtp.example.net]:587")] + GOOD[3:]
    log, answers = run_config(tmp_path, "mailsetup", typed)
    assert asked(log)[2:5] == ["mailsetup/mailer_type", "mailsetup/relayhost", "mailsetup/relayhost"]
    assert any("a smarthost setup needs one" in line for line in log), log
    assert answers["mailsetup/relayhost"] == "[smtp.example.net]:587"


def test_aliases_are_checked_against_the_admin_account_just_given(tmp_path):
    typed = GOOD[:8] + [("mailsetup/aliases", "alice: webmaster"), ("mailsetup/aliases", "")] + GOOD[8:]
    typed = [t for t in typed if t != ("mailsetup/aliases", "webmaster: alice")]
    log, _answers = run_config(tmp_path, "mailsetup", typed)
    assert any("alice is the admin account itself" in line for line in log), log
    assert asked(log).count("mailsetup/aliases") == 2


def test_answers_not_shown_are_left_to_the_postinst(tmp_path):
    # Preseeded and seen (or noninteractive): not shown, so not checked here.
    typed = [t for t in GOOD if t[0] != "mailsetup/hostname"]
    log, answers = run_config(tmp_path, "mailsetup", typed, hidden=["mailsetup/hostname"],
                              preset={"mailsetup/hostname": "bad_host!"})
    assert "note" not in log and not any(line.startswith("subst") for line in log)
    assert answers["mailsetup/hostname"] == "bad_host!"


def test_noninteractive_shows_nothing_and_checks_nothing(tmp_path):
    hidden = [q for q, _ in GOOD] + ["mailsetup/relayhost", "mailsetup/invalid_answer"]
    log, answers = run_config(tmp_path, "mailsetup", [], hidden=hidden,
                              preset={"mailsetup/hostname": "bad_host!", "mailsetup/mail_domain": "x"})
    assert log == []
    assert answers["mailsetup/hostname"] == "bad_host!"


def test_noninteractive_never_calls_go(tmp_path):
    """A GO runs debconf's hidden elements of skipped questions, which replace a
    preseeded select value that is no choice by the default (seen in a booted
    bed: inet_protocols "" became "all" and was applied): the postinst must get
    the bad value to refuse it."""
    hidden = [q for q, _ in GOOD] + ["mailsetup/relayhost", "mailsetup/invalid_answer"]
    for package in ("mailsetup", "mailsetup-imap", "mailsetup-filter"):
        run_config(tmp_path / package, package, [], hidden=hidden + [
            "mailsetup-imap/domains", "mailsetup-imap/tls_source", "mailsetup-imap/tls_cert",
            "mailsetup-imap/tls_key", "mailsetup-imap/acme_server", "mailsetup-imap/acme_email",
            "mailsetup-imap/directory",
            "mailsetup-filter/greylisting", "mailsetup-filter/dnsbl_zones", "mailsetup-filter/antivirus"])
        assert not (tmp_path / package / "fake" / "gos").exists(), package


def test_without_the_helper_unpacked_nothing_is_checked(tmp_path):
    typed = list(GOOD)
    typed[1] = ("mailsetup/hostname", "bad_host!")
    log, answers = run_config(tmp_path, "mailsetup", typed, helper=False)
    assert "note" not in log
    assert asked(log) == [q for q, _ in typed]
    assert answers["mailsetup/hostname"] == "bad_host!"


def test_imap_answers_checked_when_given(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    key.write_text("-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n")
    typed = [("mailsetup-imap/domains", "localhost"), ("mailsetup-imap/domains", "example.test"),
             ("mailsetup-imap/tls_source", "files"), ("mailsetup-imap/tls_cert", "<back>"),
             ("mailsetup-imap/tls_source", "<back>"), ("mailsetup-imap/domains", "example.org"),
             ("mailsetup-imap/tls_source", "files"),
             ("mailsetup-imap/tls_cert", str(key)), ("mailsetup-imap/tls_cert", str(cert)),
             ("mailsetup-imap/tls_key", "relative.key"), ("mailsetup-imap/tls_key", str(key)),
             ("mailsetup-imap/directory", "sqlite")]
    log, answers = run_config(tmp_path, "mailsetup-imap", typed)
    assert asked(log) == [q for q, _ in typed]
    assert log.count("note") == 3
    assert any("it holds no PEM certificate" in line for line in log), log
    assert any("it must be an absolute path" in line for line in log), log
    assert answers["mailsetup-imap/domains"] == "example.org"
    assert answers["mailsetup-imap/tls_key"] == str(key)


def test_imap_acme_asks_for_the_ca_not_the_files(tmp_path):
    """With acme the CA's address is asked (and one that does not answer refused at
    once), never the certificate files; back to snakeoil asks nothing more."""
    typed = [("mailsetup-imap/domains", "example.org"), ("mailsetup-imap/tls_source", "acme"),
             ("mailsetup-imap/acme_server", "http://ca.example.org/directory"),
             ("mailsetup-imap/acme_server", "https://127.0.0.1:1/directory"),
             ("mailsetup-imap/acme_server", "<back>"), ("mailsetup-imap/tls_source", "snakeoil"),
             ("mailsetup-imap/directory", "sqlite")]
    log, answers = run_config(tmp_path, "mailsetup-imap", typed)
    assert asked(log) == [q for q, _ in typed]
    assert log.count("note") == 2
    assert any("cannot be reached" in line for line in log), log
    assert answers["mailsetup-imap/tls_source"] == "snakeoil"


def test_imap_old_certificate_answer_means_files(tmp_path):
    """An earlier release's (or a preseed's) own certificate keeps being used."""
    log, answers = run_config(tmp_path, "mailsetup-imap", [], hidden=[
        "mailsetup-imap/domains", "mailsetup-imap/tls_source", "mailsetup-imap/tls_cert", "mailsetup-imap/tls_key",
        "mailsetup-imap/directory"],
        preset={"mailsetup-imap/tls_cert": "/etc/ssl/mine.pem", "mailsetup-imap/domains": "example.org"})
    assert answers["mailsetup-imap/tls_source"] == "files"


def test_imap_group_directory_asks_for_the_database_and_checks_it(tmp_path):
    """PostgreSQL asks where the database is and this server's address, each checked when
    given; the password is asked but never handed to the check (a command line is public)."""
    typed = [("mailsetup-imap/domains", "example.org"), ("mailsetup-imap/tls_source", "snakeoil"),
             ("mailsetup-imap/directory", "postgresql"), ("mailsetup-imap/pg_hosts", "db_1!"),
             ("mailsetup-imap/pg_hosts", "198.51.100.10"), ("mailsetup-imap/pg_database", "mailsetup"),
             ("mailsetup-imap/pg_user", "mailsetup"), ("mailsetup-imap/pg_password", "quote'd"),
             ("mailsetup-imap/server_address", "127.0.0.1"), ("mailsetup-imap/server_address", "198.51.100.11")]
    log, answers = run_config(tmp_path, "mailsetup-imap", typed)
    assert asked(log) == [q for q, _ in typed]
    assert log.count("note") == 2  # the host and the address; the password only at the postinst
    assert not any("quote'd" in line for line in log if "note" in line), log
    assert answers["mailsetup-imap/server_address"] == "198.51.100.11"


def test_filter_blocklist_checked_when_given(tmp_path):
    typed = [("mailsetup-filter/greylisting", "true"), ("mailsetup-filter/dnsbl_zones", "bad zone!"),
             ("mailsetup-filter/dnsbl_zones", "zen.spamhaus.org"), ("mailsetup-filter/antivirus", "false")]
    log, answers = run_config(tmp_path, "mailsetup-filter", typed)
    assert asked(log) == [q for q, _ in typed]
    assert log.count("note") == 1
    assert answers["mailsetup-filter/dnsbl_zones"] == "zen.spamhaus.org"


# --- the check command ----------------------------------------------------

def check(capsys, *args, system=None):
    status = maintainer.check(list(args), system or System())
    out, err = capsys.readouterr()
    return status, out, err


def test_check_accepts_a_good_answer(capsys):
    assert check(capsys, "mailsetup/hostname", "mail.example.org") == (0, "", "")


def test_check_refuses_with_the_explanation_on_one_line(capsys):
    status, out, err = check(capsys, "mailsetup/message_size_limit", "0")
    assert status == 1 and err == ""
    assert out == "expected a whole number of MiB from 1 to 2047, such as 25\n"


def test_check_relayhost_depends_on_the_mailer_type(capsys):
    assert check(capsys, "mailsetup/relayhost", "", "mailsetup/mailer_type=satellite")[0] == 1
    assert check(capsys, "mailsetup/relayhost", "", "mailsetup/mailer_type=local")[0] == 0


def test_check_cannot_tell_an_unknown_question_or_bad_usage(capsys):
    assert check(capsys, "mailsetup/nonesuch", "x")[0] == 2
    assert check(capsys, "mailsetup/hostname")[0] == 2
    assert check(capsys, "mailsetup/relayhost", "", "mailer_type")[0] == 2


def test_check_imap_domains_refuse_the_applied_host_name(capsys, scratch):
    from mailsetup.core import apply as core
    from mailsetup.core.settings import CoreSettings
    from test_validate import GOOD_ANSWERS, known
    settings = CoreSettings.from_answers(GOOD_ANSWERS, known)
    core.apply(settings, scratch)  # with aliases to bob, unknown to scratch: not this answer's fault
    status, out, _err = check(capsys, "mailsetup-imap/domains", "mail.example.org", system=scratch)
    assert status == 1 and "server's own name" in out
    assert check(capsys, "mailsetup-imap/domains", "example.org", system=scratch)[0] == 0


def every_question():
    from mailsetup.filter.settings import FILTER_QUESTIONS
    from mailsetup.imap.settings import IMAP_QUESTIONS
    from mailsetup.core.settings import CORE_QUESTIONS
    return ([f"mailsetup/{q}" for q in CORE_QUESTIONS] + [f"mailsetup-imap/{q}" for q in IMAP_QUESTIONS]
            + [f"mailsetup-filter/{q}" for q in FILTER_QUESTIONS])


@pytest.mark.parametrize("question", every_question())
def test_check_knows_every_question(question):
    try:
        maintainer.check_answer(question, "", {}, System())
    except InvalidAnswer as invalid:
        assert f"{invalid.owner}/{invalid.question}" == question


def test_check_refuses_what_the_postinst_refuses():
    from mailsetup.core.settings import CoreSettings
    from test_validate import BAD, GOOD_ANSWERS, known

    class Known(System):
        def is_local_name(self, name):
            return known(name)

    for question, value in BAD:
        answers = dict(GOOD_ANSWERS, **{question: value})
        with pytest.raises(InvalidAnswer) as from_postinst:
            CoreSettings.from_answers(answers, known)
        with pytest.raises(InvalidAnswer) as from_check:
            maintainer.check_answer(f"mailsetup/{question}", value,
                                    {"mailsetup/mailer_type": answers["mailer_type"],
                                     "mailsetup/admin_user": answers["admin_user"]}, Known())
        assert str(from_check.value) == str(from_postinst.value)
