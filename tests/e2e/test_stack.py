"""End-to-end: the whole stack (mailsetup, mailsetup-imap, mailsetup-filter)
in one Debian booted with systemd, as a user installs it.

Each class boots a fresh container (testbed.BootedTestbed) per release and
installs the three packages with their defaults for the mailbox domain (the
core's own mail domain, the case where root's mail used to bounce): one class
one package after the other (core, imap, filter), one class all three in one
`apt-get install`.  The packages start and reload every service themselves;
the test only starts its own DNS server (dnsmasq, answering everything,
forwarding nothing).

The same checks run after the install, after `systemctl restart` of every
service and after the container is shut down and booted again:

  * mail to root, postmaster and abuse (SMTP from outside, and `sendmail root`
    on the server) reaches the admin's Unix mailbox exactly once;
  * a mailbox receives mail from outside, reads it over IMAPS and POP3S and
    submits on 587 (STARTTLS) and 465 (TLS);
  * GTUBE from outside is refused at DATA; probable spam lands in Junk;
  * submitted mail is DKIM-signed and the signature verifies;
  * `systemctl --failed` lists nothing and `mailsetup status` says healthy.

The outside client is 198.51.100.5 (a documentation address on the
container's loopback, outside mynetworks), on the access allow list so that
greylisting does not delay it; spam checks still apply to it.
"""

import email
import os
import time

import pytest

from .steps import retry_on_apt_lock, token
from .test_filter import (DNSMASQ_BASE, GTUBE, GTUBE_ADD_HEADER, TEST_PATTERNS, VERIFY,
                          apt_ok, apt_private, dkim_verified, key_value_store, no_query_left_the_bed,
                          start_dns)
from .test_filter import send as send_smtp
from .test_imap import (ADMIN, CORE_ANSWERS, DOMAIN, client, count_subject, maildir_messages,
                        mbox_messages, submit, wait_in_mailbox, wait_mail_ports, wait_queue_settled,
                        wait_until)
from .testbed import APT

# mailsetup-imap and mailsetup-filter keep their defaults (the core's domain
# gets mailboxes; greylisting on).
PACKAGES = ("mailsetup", "mailsetup-imap", "mailsetup-filter")
TOOLS = ("dnsmasq-base", "python3-dkim")
# and the key-value store (key_value_store(): redis-server or valkey-server)
SERVICES = ("postfix", "dovecot", "rspamd")
# How long a just started rspamd may take to bind its milter socket (as the filter's postinst waits).
MILTER_WAIT = 30

ALICE, ALICE_PW = "alice@" + DOMAIN, "alice-Secret-1"
BOB, BOB_PW = "bob@" + DOMAIN, "bob-Secret-22"
OUTSIDE_IP, OUTSIDE_NAME = "198.51.100.5", "mail.client.test"
OUTSIDER = "carol@client.test"

DNSMASQ_CONFIG = DNSMASQ_BASE + """\
mx-host=example.test,mail.example.test,10
host-record=mail.example.test,127.0.0.1
mx-host=client.test,mail.client.test,10
host-record=mail.client.test,198.51.100.5
txt-record=client.test,"v=spf1 ip4:198.51.100.5 -all"
"""


# ---------------------------------------------------------------------------
# The bed
# ---------------------------------------------------------------------------

def prepare(bed):
    """Download everything, then give the container its own DNS server and
    the outside client's address; from then on nothing leaves the container."""
    apt_ok(retry_on_apt_lock(lambda: bed.run(
        APT + " install --download-only " + " ".join(PACKAGES + TOOLS), net="host", check=False)))
    apt_ok(apt_private(bed, "install " + " ".join(TOOLS)))
    bed.run("cat >/etc/resolv.conf", input="nameserver 127.0.0.1\n")
    # rspamd's test patterns (GTUBE for "add header"): the admin's override.d
    bed.run("mkdir -p /etc/rspamd/override.d && cat >/etc/rspamd/override.d/options.inc",
            input=TEST_PATTERNS[bed.suite])
    bed.preseed(CORE_ANSWERS)
    after_boot(bed)


def after_boot(bed):
    """What the test itself runs in the container (lost at a shutdown): its
    DNS server and the outside client's address."""
    start_dns(bed, DNSMASQ_CONFIG, probe=(OUTSIDE_NAME, OUTSIDE_IP))
    bed.run_host_in_netns(["ip", "addr", "add", OUTSIDE_IP + "/32", "dev", "lo"])


def set_up_users(bed):
    for addr, password in ((ALICE, ALICE_PW), (BOB, BOB_PW)):
        res = bed.run("mailsetup mailbox add %s" % addr, input=password + "\n", check=False)
        assert res.returncode == 0, res.stdout + res.stderr
    res = bed.run("mailsetup access allow %s" % OUTSIDE_IP, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    for addr in (ALICE, BOB):
        wait_until("Dovecot knows %s" % addr, lambda: bed.run(
            "doveadm user %s >/dev/null" % addr, check=False).returncode == 0, bed, timeout=10)


def healthy(bed):
    """No failed unit, every service of the stack active, every mail port open,
    `mailsetup status` exit 0."""
    assert not bed.failed_units(), "failed units: %s\n%s" % (bed.failed_units(), bed.diagnostics())
    inactive = [s for s in SERVICES + (key_value_store(bed),) if not bed.is_active(s)]
    assert not inactive, "not active: %s\n%s" % (inactive, bed.diagnostics())
    # bookworm's postfix.service only runs /bin/true (its postfix@- runs the master)
    assert bed.postfix_status(), "no Postfix master runs\n" + bed.diagnostics()
    wait_mail_ports(bed)
    # rspamd is "active" as soon as its main process runs; its proxy worker binds
    # the milter socket a moment later (seconds on a loaded machine), and until
    # then `mailsetup status` rightly says the milter is not reachable.
    end = time.time() + MILTER_WAIT
    while True:
        res = bed.run("mailsetup status", check=False)
        if res.returncode == 0 or time.time() > end:
            break
        time.sleep(0.5)
    assert res.returncode == 0, "mailsetup status says unhealthy:\n%s%s" % (res.stdout, res.stderr)


# ---------------------------------------------------------------------------
# What a user notices
# ---------------------------------------------------------------------------

def from_outside(bed, recipients, body=None, subject=None):
    return send_smtp(bed, OUTSIDE_IP, OUTSIDE_NAME, OUTSIDER, recipients, subject=subject, body=body)


def root_mail_reaches_the_admin(bed):
    """root@, postmaster@ and abuse@ the mail domain from outside, and
    `sendmail root` on the server: each in /var/mail/ADMIN exactly once."""
    sent = []
    for local in ("root", "postmaster", "abuse"):
        res = from_outside(bed, ["%s@%s" % (local, DOMAIN)])
        assert res["accepted"], "mail to %s@%s refused: %r\n%s" % (local, DOMAIN, res, bed.diagnostics())
        sent.append(res["subject"])
    subject = token("sendmail-root")
    bed.run("/usr/sbin/sendmail -t", input="To: root\nSubject: %s\n\nfrom cron, say\n" % subject)
    sent.append(subject)
    for s in sent:
        wait_until("%s in /var/mail/%s" % (s, ADMIN),
                   lambda: count_subject(mbox_messages(bed, ADMIN), s), bed)
    wait_queue_settled(bed)
    counts = {s: count_subject(mbox_messages(bed, ADMIN), s) for s in sent}
    assert set(counts.values()) == {1}, "not exactly once: %r" % counts


def mailbox_receives_reads_and_sends(bed):
    subject = token("inbound")
    res = from_outside(bed, [ALICE], subject=subject)
    assert res["accepted"], "%r\n%s" % (res, bed.diagnostics())
    wait_in_mailbox(bed, ALICE, subject)
    imap = client(bed, "imap", mode="ssl", user=ALICE, password=ALICE_PW)
    assert imap["login"] and subject in imap["subjects"], imap
    pop = client(bed, "pop3", mode="ssl", user=ALICE, password=ALICE_PW)
    assert pop["login"] and subject in pop["subjects"], pop
    for port, mode in ((587, "starttls"), (465, "ssl")):
        subject = token("submit-%d" % port)
        res = submit(bed, ALICE, ALICE_PW, ALICE, [BOB], subject, port=port, mode=mode)
        assert res["accepted"], "submission on %d: %r\n%s" % (port, res, bed.diagnostics())
        wait_in_mailbox(bed, BOB, subject)


def spam_is_refused_or_filed_into_junk(bed):
    res = from_outside(bed, [ALICE], body="This is spam.\n%s\n" % GTUBE)
    got = (res["stage"], res.get("code"))
    assert got == ("data", 554), "GTUBE not refused at DATA: %r\n%s" % (res, bed.diagnostics())
    res = from_outside(bed, [ALICE], body="Probably spam.\n%s\n" % GTUBE_ADD_HEADER)
    assert res["accepted"], "%r\n%s" % (res, bed.diagnostics())
    wait_until("probable spam %s in Junk" % res["subject"], lambda: count_subject(
        maildir_messages(bed, ALICE, "Junk"), res["subject"]), bed)
    assert not count_subject(maildir_messages(bed, ALICE), res["subject"]), "also in INBOX"


# The submitted body is "test message SUBJECT": the tampered copy changes it.
VERIFY_SUBMITTED = VERIFY.replace('b"signed body", b"changed body"', 'b"test message", b"changed message"')
assert VERIFY_SUBMITTED != VERIFY


def raw_in_maildir(bed, addr, subject):
    """The bytes of the message `subject` in addr's INBOX, as delivered."""
    top = bed.path("/var/vmail/%s/%s/Maildir" % (addr.partition("@")[2], addr.partition("@")[0]))
    for sub in ("new", "cur"):
        for name in sorted(os.listdir(os.path.join(top, sub))):
            with open(os.path.join(top, sub, name), "rb") as f:
                raw = f.read()
            if (email.message_from_bytes(raw)["Subject"] or "").strip() == subject:
                return raw
    raise AssertionError("no message %s in %s" % (subject, top))


def submitted_mail_is_signed(bed):
    subject = token("signed")
    res = submit(bed, ALICE, ALICE_PW, ALICE, [BOB], subject)
    assert res["accepted"], "%r\n%s" % (res, bed.diagnostics())
    wait_in_mailbox(bed, BOB, subject)
    dkim_verified(bed, raw_in_maildir(bed, BOB, subject), VERIFY_SUBMITTED)


def everything_works(bed):
    healthy(bed)
    root_mail_reaches_the_admin(bed)
    mailbox_receives_reads_and_sends(bed)
    spam_is_refused_or_filed_into_junk(bed)
    submitted_mail_is_signed(bed)
    healthy(bed)


# ---------------------------------------------------------------------------
# The tests
# ---------------------------------------------------------------------------

class TestStackOneAfterTheOther:
    """mailsetup, then mailsetup-imap, then mailsetup-filter, each its own apt run."""

    @pytest.fixture(scope="class")
    def bed(self, new_booted_bed):
        bed = new_booted_bed()
        prepare(bed)
        yield bed
        no_query_left_the_bed(bed)

    @pytest.fixture(scope="class")
    def state(self, bed):
        return {}

    def install(self, bed):
        for pkg in PACKAGES:
            apt_ok(apt_private(bed, "install " + pkg))
            if pkg == "mailsetup":
                # before any mailbox domain: root's mail is local
                assert not bed.failed_units(), bed.diagnostics()
                subject = token("before-imap")
                bed.run("/usr/sbin/sendmail -t", input="To: root\nSubject: %s\n\nx\n" % subject)
                wait_until("%s in /var/mail/%s" % (subject, ADMIN),
                           lambda: count_subject(mbox_messages(bed, ADMIN), subject), bed)

    def test_install_starts_every_service(self, bed, state):
        self.install(bed)
        set_up_users(bed)
        healthy(bed)
        state["installed"] = True

    def test_everything_works_after_the_install(self, bed, state):
        self.require(state)
        everything_works(bed)

    def test_everything_works_after_every_service_is_restarted(self, bed, state):
        self.require(state)
        bed.systemctl("restart " + " ".join(SERVICES + (key_value_store(bed),)))
        everything_works(bed)

    def test_everything_works_after_a_reboot(self, bed, state):
        self.require(state)
        bed.shutdown()
        bed.boot()
        after_boot(bed)
        everything_works(bed)

    @staticmethod
    def require(state):
        if not state.get("installed"):
            pytest.fail("the install failed; see its test", pytrace=False)


class TestStackInOneAptRun(TestStackOneAfterTheOther):
    """All three packages in one `apt-get install`."""

    def install(self, bed):
        apt_ok(apt_private(bed, "install " + " ".join(PACKAGES)))
