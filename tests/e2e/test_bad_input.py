"""End-to-end: bad preseeded answers, broadly.

One test bed for the whole table: mailsetup installed with good answers and
Postfix running.  For every bad value (every question; empty, too long, shell
metacharacters, line breaks, non-ASCII, IDN without punycode, CIDR out of
range, relayhost with a scheme, alias loops, ...) the value is preseeded,
`dpkg-reconfigure -f noninteractive mailsetup` must fail with exactly one
clear line naming the question, the value and what is expected, and no file
mailsetup may touch changes, byte for byte.
"""

import hashlib
import os
import uuid

import pytest

from .test_install import ANSWERS as INSTALL_ANSWERS

# Short descriptions of the questions, as in debian/mailsetup.templates.
LABELS = {
    "mail_domain": "Mail domain",
    "hostname": "Host name of the mail server",
    "mailer_type": "Mail server type",
    "relayhost": "Relay host for outgoing mail",
    "other_destinations": "Other domains to receive mail for",
    "mynetworks": "Networks allowed to send mail through this server",
    "message_size_limit": "Maximum message size in MiB",
    "admin_user": "Administrator account",
    "aliases": "Additional mail aliases",
    "inet_protocols": "Internet protocols to use",
    "recipient_delimiter": "Address extension separator",
}

GOOD = dict(INSTALL_ANSWERS)
GOOD.update({
    "relayhost": ("string", ""),
    "aliases": ("string", "webmaster: alice, sales: alice"),
})

# Watched files (besides every file under /etc/mailsetup and /var/lib/mailsetup).
WATCHED = ("/etc/postfix/main.cf", "/etc/aliases", "/etc/aliases.db", "/etc/mailname",
           "/etc/passwd", "/etc/group")
WATCHED_DIRS = ("/etc/mailsetup", "/var/lib/mailsetup")

LONG = 1200  # characters: over the 1000 an answer may have

# (question, value).  A "\n" in a value is the two characters backslash and
# n: debconf-set-selections cannot carry a line break itself (a trailing
# backslash joins lines), but debconf's database turns a stored "\n" into a
# real line break when it is read back, so this is how a preseed file puts
# one into an answer.  Values must not end in a backslash (line joining) and
# leading blanks would be eaten by debconf-set-selections.
BAD = [
    # mail_domain
    ("mail_domain", ""),
    ("mail_domain", "localhost"),
    ("mail_domain", "exa mple.org"),
    ("mail_domain", "приклад.укр"),
    ("mail_domain", "exämple.org"),
    ("mail_domain", "-bad.example.org"),
    ("mail_domain", "example.123"),
    ("mail_domain", "a" * 64 + ".org"),
    ("mail_domain", "x" * LONG + ".org"),
    ("mail_domain", "example.org; rm -rf /"),
    ("mail_domain", "$(reboot).example.org"),
    ("mail_domain", "`id`.example.org"),
    ("mail_domain", "example.org|mail"),
    ("mail_domain", r"example.org\nmydestination = evil.org"),
    # hostname
    ("hostname", ""),
    ("hostname", "bad_host!"),
    ("hostname", "mail"),
    ("hostname", "mail..example.org"),
    ("hostname", "mail.example.org;rm -rf /"),
    ("hostname", "mail.$(reboot).org"),
    ("hostname", "пошта.приклад.укр"),
    ("hostname", "h" * LONG + ".example.org"),
    ("hostname", r"mail.example.test\nmynetworks = 0.0.0.0/0"),
    # mailer_type (a select: debconf-set-selections stores any text)
    ("mailer_type", ""),
    ("mailer_type", "Internet Site"),
    ("mailer_type", "INTERNET"),
    ("mailer_type", "internet; rm -rf /"),
    # relayhost, preseeded together with mailer_type smarthost
    ("relayhost", ""),
    ("relayhost", "smtp://relay.example.org"),
    ("relayhost", "[relay.example.org]:0"),
    ("relayhost", "[relay.example.org]:99999"),
    ("relayhost", "relay.example.org:port"),
    ("relayhost", "[300.1.1.1]"),
    ("relayhost", "relay example org"),
    ("relayhost", "relay.example.org;reboot"),
    ("relayhost", "$(reboot)"),
    ("relayhost", "релей.приклад.укр"),
    ("relayhost", r"relay.example.org\nrelayhost = evil.org"),
    # other_destinations
    ("other_destinations", "example.net, bad_domain"),
    ("other_destinations", "example.net; rm -rf /"),
    ("other_destinations", "приклад.укр"),
    ("other_destinations", "`id`"),
    ("other_destinations", "d" * LONG),
    ("other_destinations", r"example.net\nrelayhost = evil.org"),
    # mynetworks
    ("mynetworks", ""),
    ("mynetworks", "0.0.0.0/0"),
    ("mynetworks", "127.0.0.0/8 192.168.1.1/24"),
    ("mynetworks", "10.0.0.0/33"),
    ("mynetworks", "[::1]/129"),
    ("mynetworks", "::1/128"),
    ("mynetworks", "127.0.0.0/8|evil"),
    ("mynetworks", "localhost"),
    ("mynetworks", "127.0.0.0/8 " * 120),
    # message_size_limit
    ("message_size_limit", ""),
    ("message_size_limit", "0"),
    ("message_size_limit", "2048"),
    ("message_size_limit", "-5"),
    ("message_size_limit", "25MB"),
    ("message_size_limit", "٣"),
    ("message_size_limit", "25; reboot"),
    # admin_user
    ("admin_user", ""),
    ("admin_user", "root"),
    ("admin_user", "Alice"),
    ("admin_user", "alice; rm -rf /"),
    ("admin_user", "$(id)"),
    ("admin_user", "олена"),
    ("admin_user", "a" * 40),
    # aliases
    ("aliases", "a: b, b: a"),
    ("aliases", "webmaster: nosuchuser"),
    ("aliases", "root: bob"),
    ("aliases", "postmaster: alice"),
    ("aliases", "webmaster alice"),
    ("aliases", "webmaster: |/bin/sh"),
    ("aliases", "webmaster: :include:/etc/passwd"),
    ("aliases", "webmaster: $(id)"),
    ("aliases", "alice: webmaster"),
    ("aliases", "webmaster: alice, webmaster: alice"),
    ("aliases", "вебмайстер: alice"),
    ("aliases", "webmaster: bob@приклад.укр"),
    ("aliases", r"webmaster: alice\nsales: alice"),
    ("aliases", "w: alice, " * 110),
    # inet_protocols (a select)
    ("inet_protocols", ""),
    ("inet_protocols", "ipv5"),
    ("inet_protocols", "IPv4"),
    ("inet_protocols", "all; reboot"),
    # recipient_delimiter
    ("recipient_delimiter", "a"),
    ("recipient_delimiter", "+;"),
    ("recipient_delimiter", "$"),
    ("recipient_delimiter", "++++++"),
    ("recipient_delimiter", "·"),
    ("recipient_delimiter", r"+\n-"),
]

QUESTIONS = ("mail_domain", "hostname", "mailer_type", "relayhost", "other_destinations",
             "mynetworks", "message_size_limit", "admin_user", "aliases", "inet_protocols",
             "recipient_delimiter")


def test_the_table_covers_every_question():
    # Not an end-to-end check, a check of the table itself (runs without a test bed).
    assert len(BAD) >= 50
    assert sorted({q for q, _ in BAD}) == sorted(QUESTIONS)
    assert all(not v.endswith("\\") and v == v.lstrip() for _, v in BAD)


def case_id(case):
    question, value = case
    shown = value.encode("unicode_escape").decode("ascii")
    return "%s=%s" % (question, shown[:30] + ("...%d" % len(value) if len(shown) > 30 else ""))


def preseed_lines(answers):
    return ["mailsetup mailsetup/%s %s %s" % (q, t, v) for q, (t, v) in answers.items()]


def recognisable(value):
    """A part of the value the error line must show: its start.  A line break
    (debconf made the two characters backslash n into one) must be shown
    escaped, as those two characters again."""
    return value[:40]


class TestBadInput:

    @pytest.fixture(scope="class")
    def bed(self, new_booted_bed):
        bed = new_booted_bed()
        bed.preseed(preseed_lines(GOOD))
        bed.apt_install("mailsetup")
        bed.wait_port(25)
        return bed

    @staticmethod
    def snapshot(bed):
        paths = list(WATCHED)
        for top in WATCHED_DIRS:
            for dirpath, _dirs, files in os.walk(bed.path(top)):
                paths += ["/" + os.path.relpath(os.path.join(dirpath, f), bed.root) for f in files]
        state = {}
        for path in sorted(set(paths)):
            full = bed.path(path)
            if os.path.lexists(full):
                with open(full, "rb") as f:
                    state[path] = hashlib.sha256(f.read()).hexdigest()
            else:
                state[path] = None
        return state

    @pytest.fixture(scope="class")
    def baseline(self, bed):
        # A good reconfigure first: it must succeed, and it settles every
        # file, so that anything that changes later was changed by a refused run.
        bed.dpkg_reconfigure("mailsetup")
        snap = self.snapshot(bed)
        for path in ("/etc/postfix/main.cf", "/etc/mailname", "/etc/mailsetup/aliases",
                     "/var/lib/mailsetup/applied.json"):
            assert snap.get(path), "%s is missing after a good install" % path
        return snap

    @pytest.mark.parametrize("case", BAD, ids=[case_id(c) for c in BAD])
    def test_bad_answer_is_refused_with_one_clear_line(self, bed, baseline, case):
        question, value = case
        answers = dict(GOOD)
        if question == "relayhost":
            answers["mailer_type"] = ("select", "smarthost")
        kind = answers[question][0]
        answers[question] = (kind, value)
        # The good answers and the bad one in one go: each case stands alone.
        bed.preseed(preseed_lines(answers))
        res = bed.dpkg_reconfigure("mailsetup", check=False)
        after = self.snapshot(bed)

        assert res.returncode != 0, "dpkg-reconfigure accepted %s=%r:\n%s" % (
            question, value, res.stderr[-2000:])
        assert "Traceback" not in res.stderr, res.stderr[-3000:]
        ours = [line for line in res.stderr.splitlines() if line.startswith("mailsetup: mailsetup/")]
        assert len(ours) == 1, "expected one error line, got:\n%s" % res.stderr[-3000:]
        line = ours[0]
        # the key, then the question as the dialog shows it (its short description)
        assert line.startswith('mailsetup: mailsetup/%s ("%s"): ' % (question, LABELS[question])), line
        assert recognisable(value) in line, "value %r not shown in: %s" % (value, line)
        assert "expected" in line, line
        changed = [p for p in baseline if baseline[p] != after.get(p)]
        changed += [p for p in after if p not in baseline]
        assert not changed, "changed by the refused run: %s" % changed

    def test_good_answers_still_apply_and_mail_is_delivered(self, bed, baseline):
        # After the whole table: the good answers reconfigure cleanly and
        # change nothing, and mail for root still reaches the admin.
        bed.preseed(preseed_lines(GOOD))
        res = bed.dpkg_reconfigure("mailsetup")
        assert "Changed:            nothing" in res.stderr, res.stderr[-2000:]
        assert self.snapshot(bed) == baseline
        mark = "mailsetup-bad-input-" + uuid.uuid4().hex[:12]
        bed.smtp_send("someone@example.org", "root@example.test", mark, subject=mark)
        bed.wait_for_mail("alice", mark)
