"""End-to-end: a group of mail servers sharing one PostgreSQL mailbox directory.

Three booted containers on one private network (lan.py, 198.51.100.0/24):
PostgreSQL in `db`, mail servers A (mx1) and B (mx2), both installed with
mailsetup-imap preseeded to the PostgreSQL directory. What the users notice:
a mailbox added on A logs in on B (IMAP and POP3 proxied to A, submission
authenticated on B itself), mail sent to it through B is stored on A exactly
once, `mailsetup` on either server changes the one directory, and while
PostgreSQL is down mail is deferred (4xx), never bounced, and none of 200
messages sent through A and B across a minute's outage is lost.
"""

import concurrent.futures
import glob
import json
import shlex
import time

import pytest

from .lan import Lan
from .test_filter import RECORD, VERIFY, dkim_verified
from .steps import require, retry_on_apt_lock, token
from .test_imap import (ALICE, ALICE_PW, BOB, BOB_PW, DOMAIN, apt_ok, client, count_subject, inbound,
                        maildir_messages, mailsetup, mailsetup_ok, submit, wait_in_mailbox, wait_mail_ports,
                        wait_until)

DB_IP, A_IP, B_IP = "198.51.100.10", "198.51.100.11", "198.51.100.12"
PG_PASSWORD = "group-db-secret-7"
CAROL, CAROL_PW = "carol@" + DOMAIN, "carol-secret-333"
OUTAGE = 60  # seconds without PostgreSQL
MESSAGES = 100  # per server, across the outage

# Sends messages on port 25 of the bed it runs in, each again after a 4xx (as a
# sending MTA does), never after a 5xx: {"accepted": n, "deferred": n, "refused": [...]}.
PERSISTENT_SENDER = r"""
import json, smtplib, socket, sys, time
p = json.load(sys.stdin)
out = {"accepted": 0, "deferred": 0, "refused": []}
for i in range(p["count"]):
    subject = "%s-%03d" % (p["prefix"], i)
    body = "From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n\r\nmessage %d\r\n" % (p["from"], p["to"], subject, i)
    while True:
        try:
            with smtplib.SMTP("127.0.0.1", 25, timeout=30, source_address=("127.0.0.2", 0)) as s:
                s.sendmail(p["from"], [p["to"]], body)
            out["accepted"] += 1
            break
        except smtplib.SMTPRecipientsRefused as e:
            code = list(e.recipients.values())[0][0]
        except smtplib.SMTPResponseException as e:
            code = e.smtp_code
        except (OSError, smtplib.SMTPException):
            code = 421
        if code >= 500:
            out["refused"].append([subject, code])
            break
        out["deferred"] += 1
        time.sleep(2)
    time.sleep(p.get("pause", 0))
print(json.dumps(out))
"""


def core_answers(hostname):
    return ["mailsetup mailsetup/mail_domain string " + DOMAIN,
            "mailsetup mailsetup/hostname string " + hostname,
            "mailsetup mailsetup/admin_user string admin"]


def group_answers(address):
    return ["mailsetup-imap mailsetup-imap/domains string " + DOMAIN,
            "mailsetup-imap mailsetup-imap/directory select postgresql",
            "mailsetup-imap mailsetup-imap/pg_hosts string " + DB_IP,
            "mailsetup-imap mailsetup-imap/pg_password password " + PG_PASSWORD,
            "mailsetup-imap mailsetup-imap/server_address string " + address]


def psql(db, sql, database="mailsetup"):
    return db.run("runuser -u postgres -- psql -v ON_ERROR_STOP=1 -qAt -d %s -c %s" % (database, shlex.quote(sql)))


def set_up_postgresql(db):
    """Debian's PostgreSQL (TLS on, with ssl-cert's certificate), reachable from the
    group's network only, with the database and its owner the admin would make."""
    apt_ok(retry_on_apt_lock(lambda: db.apt_install("postgresql", check=False)))
    version = db.run("ls /etc/postgresql").stdout.split()[0]
    conf = "/etc/postgresql/%s/main" % version
    db.run("echo \"listen_addresses = '*'\" > %s/conf.d/mailsetup-test.conf" % conf)
    db.run("echo 'hostssl mailsetup mailsetup 198.51.100.0/24 scram-sha-256' >> %s/pg_hba.conf" % conf)
    db.run("invoke-rc.d postgresql restart")
    psql(db, "CREATE ROLE mailsetup LOGIN PASSWORD '%s'" % PG_PASSWORD, database="postgres")
    psql(db, "CREATE DATABASE mailsetup OWNER mailsetup", database="postgres")


def install_member(bed, hostname, address):
    bed.preseed(core_answers(hostname) + group_answers(address))
    return retry_on_apt_lock(lambda: bed.apt_install("mailsetup", "mailsetup-imap", "mailsetup-filter",
                                                     check=False))


def raw_message(bed, addr, subject):
    """The bytes of the message `subject` in addr's INBOX (new/ or cur/)."""
    local, _, domain = addr.partition("@")
    for path in glob.glob(bed.path("/var/vmail/%s/%s/Maildir/*/*" % (domain, local))):
        with open(path, "rb") as f:
            raw = f.read()
        if ("Subject: %s" % subject).encode() in raw:
            return raw
    raise AssertionError("no message %s for %s" % (subject, addr))


def stored_on(bed, addr, subject):
    return count_subject(maildir_messages(bed, addr), subject)


def flush(*beds):
    """Postfix retries deferred mail on its own (queue_run_delay, minutes); the test does not wait."""
    for bed in beds:
        bed.run("postqueue -f", check=False)


class TestGroup:

    @pytest.fixture(scope="class")
    def group(self, new_booted_bed):
        lan = Lan()
        try:
            db = new_booted_bed(hostname="db", domain=DOMAIN)
            a = new_booted_bed(hostname="mx1", domain=DOMAIN)
            b = new_booted_bed(hostname="mx2", domain=DOMAIN)
            for bed, address in ((db, DB_IP), (a, A_IP), (b, B_IP)):
                lan.join(bed, address)
            set_up_postgresql(db)
            yield db, a, b
        finally:
            lan.close()

    @pytest.fixture(scope="class")
    def state(self):
        return {}

    def test_the_first_server_sets_up_the_shared_directory(self, group, state):
        db, a, _b = group
        apt_ok(install_member(a, "mx1." + DOMAIN, A_IP))
        wait_mail_ports(a)
        status = mailsetup_ok(a, "status").stdout
        assert "PostgreSQL" in status and "answering" in status, status
        # the tables are in PostgreSQL, and the password is in no file but root's, Postfix's and Dovecot's
        assert psql(db, "SELECT name FROM domains").stdout.split() == [DOMAIN]
        assert PG_PASSWORD not in a.run("debconf-show mailsetup-imap").stdout
        mailsetup_ok(a, "mailbox add %s" % ALICE, input=ALICE_PW + "\n")
        assert psql(db, "SELECT home_server FROM mailboxes WHERE address = '%s'" % ALICE).stdout.strip() == A_IP
        state["a"] = True

    def test_the_second_server_joins_and_sees_the_mailboxes(self, group, state):
        require(state, "a")
        _db, a, b = group
        apt_ok(install_member(b, "mx2." + DOMAIN, B_IP))
        wait_mail_ports(b)
        assert ALICE in mailsetup_ok(b, "mailbox list").stdout
        # a mailbox added on B is B's, and A sees it at once
        mailsetup_ok(b, "mailbox add %s" % BOB, input=BOB_PW + "\n")
        assert BOB in mailsetup_ok(a, "mailbox list").stdout
        state["b"] = True

    def test_a_mailbox_of_a_logs_in_on_b(self, group, state):
        require(state, "b")
        _db, a, b = group
        subject = token("group-stored-on-a")
        inbound(a, [ALICE], subject)
        wait_in_mailbox(a, ALICE, subject)
        # B passes the login on to A: the mail stored on A is what B shows
        seen = client(b, "imap", mode="ssl", user=ALICE, password=ALICE_PW)
        assert seen.get("selected") and subject in seen["subjects"], seen
        assert client(b, "imap", mode="ssl", user=ALICE, password="wrong-password-1")["login"] is False
        pop = client(b, "pop3", mode="ssl", user=ALICE, password=ALICE_PW)
        assert subject in pop.get("subjects", []), pop

    def test_mail_through_b_is_stored_on_the_home_server_once(self, group, state):
        require(state, "b")
        _db, a, b = group
        subject = token("group-via-b")
        inbound(b, [ALICE, BOB], subject)
        wait_in_mailbox(a, ALICE, subject)
        wait_in_mailbox(b, BOB, subject)
        time.sleep(2)  # a second copy would come right after the first
        assert stored_on(a, ALICE, subject) == 1
        assert stored_on(b, ALICE, subject) == 0 and stored_on(a, BOB, subject) == 0

    def test_alice_submits_on_b(self, group, state):
        require(state, "b")
        _db, a, b = group
        subject = token("group-submitted-on-b")
        res = submit(b, ALICE, ALICE_PW, ALICE, [BOB, ALICE], subject)
        assert res["accepted"], res
        wait_in_mailbox(b, BOB, subject)
        wait_in_mailbox(a, ALICE, subject)

    def test_mail_signed_on_b_verifies_against_the_key_a_published(self, group, state):
        require(state, "b")
        _db, a, b = group
        published = a.read_file(RECORD)
        assert b.read_file(RECORD) == published, "B signs with a key of its own"
        subject = token("group-signed-on-b")
        assert submit(b, ALICE, ALICE_PW, ALICE, [BOB], subject)["accepted"]
        wait_in_mailbox(b, BOB, subject)
        apt_ok(retry_on_apt_lock(lambda: a.apt_install("python3-dkim", check=False)))
        # verified on A, with A's record file: what the DNS publishes
        dkim_verified(a, raw_message(b, BOB, subject),
                      script=VERIFY.replace('b"signed body"', 'b"test message"').replace(
                          'b"changed body"', 'b"tampered message"'))

    def test_with_postgresql_down_mail_waits_and_nothing_is_lost(self, group, state):
        require(state, "b")
        db, a, b = group
        prefix = token("group-outage")
        jobs = {}
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            for bed, recipient in ((a, BOB), (b, ALICE)):  # each to the other server's mailbox
                params = {"count": MESSAGES, "prefix": "%s-%s" % (prefix, bed.hostname), "to": recipient,
                          "from": "someone@example.org", "pause": 0.5}
                jobs[bed] = pool.submit(bed.run_host_in_netns, ["/usr/bin/python3", "-c", PERSISTENT_SENDER],
                                        input=json.dumps(params), timeout=900)
            time.sleep(10)
            db.run("invoke-rc.d postgresql stop")
            try:
                time.sleep(5)
                # the command refuses with one line and changes nothing
                res = mailsetup(a, "mailbox add %s" % CAROL, input=CAROL_PW + "\n")
                assert res.returncode != 0 and len(res.stderr.strip().splitlines()) == 1, res
                assert "PostgreSQL" in res.stderr and "does not answer" in res.stderr, res.stderr
                status = mailsetup(a, "status")
                assert "NOT answering" in status.stdout and status.returncode != 0, status.stdout
                # mail from the internet is deferred, never bounced
                refused = client(b, "send", port=25, mode="plain", to=[ALICE], subject=token("outage"),
                                 **{"from": "someone@example.org"})
                assert not refused["accepted"] and str(refused.get("code", "4")).startswith("4"), refused
                time.sleep(OUTAGE - 5)
            finally:
                db.run("invoke-rc.d postgresql start")
            results = {bed: json.loads(job.result().stdout) for bed, job in jobs.items()}
        for bed, result in results.items():
            assert result["accepted"] == MESSAGES and not result["refused"], (bed.hostname, result)
        assert any(r["deferred"] for r in results.values()), "the outage deferred nothing: %s" % results
        flush(a, b)
        for bed, home, recipient in ((a, b, BOB), (b, a, ALICE)):
            name = "%s-%s" % (prefix, bed.hostname)

            def count(home=home, recipient=recipient, name=name):
                subjects = [m["Subject"] for m in maildir_messages(home, recipient)]
                return [s for s in subjects if s and s.startswith(name)]
            wait_until("%d messages through %s" % (MESSAGES, bed.hostname),
                       lambda: len(count()) >= MESSAGES and count(), home, timeout=120)
            got = count()
            assert len(got) == len(set(got)) == MESSAGES, "lost or doubled: %d, %d distinct" % (
                len(got), len(set(got)))
        # back without a manual step: the command works again
        mailsetup_ok(a, "mailbox add %s" % CAROL, input=CAROL_PW + "\n")
        assert CAROL in mailsetup_ok(b, "mailbox list").stdout

    def test_no_unit_failed(self, group, state):
        for bed in group:
            assert not bed.failed_units(), bed.diagnostics()
