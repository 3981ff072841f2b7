"""End-to-end: an outsider at port 25.

The test bed's Postfix (configured by mailsetup as an internet site for
example.test, mynetworks loopback only) is reached from a second network
namespace over a veth pair (192.0.2.2 -> 192.0.2.1, see outside.py), i.e. by
a client that is not in mynetworks.  From there: mail for our domain is
accepted and delivered; mail for any other destination is refused with a 5xx
at RCPT time, whatever the address trick, and nothing is queued or relayed.
Then mailsetup is reconfigured to a satellite (loopback only): the running
Postfix is restarted by mailsetup and the outside cannot connect at all, while
127.0.0.1:25 still answers inside.
"""

import re

import pytest

from .outside import OUTSIDE_IP, SERVER_IP, SERVER_IP6, OutsideHost
from .test_install import preseed_lines
from .testbed import HOST_PYTHON
from .steps import token

ANSWERS = {
    "mail_domain": ("string", "example.test"),
    "hostname": ("string", "mail.example.test"),
    "mailer_type": ("select", "internet"),
    "relayhost": ("string", ""),
    "admin_user": ("string", "alice"),
    "aliases": ("string", ""),
    "other_destinations": ("string", ""),
    "mynetworks": ("string", "127.0.0.0/8 [::1]/128"),
    "inet_protocols": ("select", "ipv4"),
}

SENDER = "MAIL FROM:<mallory@outside.test>"

# (id, MAIL FROM line, RCPT TO line).  Every one must be refused with a 5xx at
# RCPT time: the destination is not ours (or not an address at all), and the
# client is not in mynetworks.  All but the empty recipient must be refused by
# the relay restriction itself (554 5.7.1 Relay access denied), which shows
# that Postfix's resolver saw through the trick to the foreign destination;
# with the outsider in mynetworks every one of them gets 250 (checked by hand).
# What the resolver makes of each:
RELAY_TRICKS = [
    ("plain-foreign", SENDER, "RCPT TO:<someone@foreign.test>"),
    ("null-sender", "MAIL FROM:<>", "RCPT TO:<someone@foreign.test>"),
    ("upper-case", SENDER, "RCPT TO:<SOMEONE@FOREIGN.TEST>"),
    ("no-brackets", SENDER, "RCPT TO:someone@foreign.test"),
    ("space-before-bracket", SENDER, "RCPT TO: <someone@foreign.test>"),
    ("double-brackets", SENDER, "RCPT TO:<<someone@foreign.test>>"),
    ("trailing-dot", SENDER, "RCPT TO:<someone@foreign.test.>"),
    ("lookalike-domain", SENDER, "RCPT TO:<someone@example.test.foreign.test>"),
    # allow_percent_hack=yes (default): user%foreign@ours resolves to user@foreign
    ("percent-hack", SENDER, "RCPT TO:<someone%foreign.test@example.test>"),
    ("percent-hack-no-domain", SENDER, "RCPT TO:<someone%foreign.test>"),
    # swap_bangpath=yes (default): foreign!user@ours resolves to user@foreign
    ("bang-path", SENDER, "RCPT TO:<foreign.test!someone@example.test>"),
    # RFC 821 source routes: Postfix strips the route, leaving user@foreign
    ("source-route", SENDER, "RCPT TO:<@example.test:someone@foreign.test>"),
    ("source-route-two-hops", SENDER,
     "RCPT TO:<@example.test,@mail.example.test:someone@foreign.test>"),
    ("double-at", SENDER, "RCPT TO:<someone@foreign.test@example.test>"),
    # resolve_dequoted_address=yes (default): the resolver looks inside quotes
    ("quoted-local-part", SENDER, 'RCPT TO:<"someone@foreign.test"@example.test>'),
    ("quoted-whole-address", SENDER, 'RCPT TO:<"someone@foreign.test">'),
    ("address-literal", SENDER, "RCPT TO:<someone@[192.0.2.99]>"),
    ("ipv6-address-literal", SENDER, "RCPT TO:<someone@[IPv6:2001:db8::99]>"),
    ("empty-recipient", SENDER, "RCPT TO:<>"),
]


def message(subject):
    return ("From: mallory@outside.test\r\nTo: someone@example.test\r\n"
            "Subject: %s\r\n\r\nfrom outside %s\r\n" % (subject, subject))


def codes(session):
    return [code for code, _ in session["replies"]]


def master_pid(bed):
    try:
        return int(bed.read_file("/var/spool/postfix/pid/master.pid").split()[0])
    except (OSError, ValueError, IndexError):
        return None


def loopback_answers(bed):
    """The SMTP greeting code from 127.0.0.1:25 inside the test bed, or an error."""
    code = ("import smtplib\n"
            "try:\n"
            "    s=smtplib.SMTP(timeout=10); c,_=s.connect('127.0.0.1',25); s.quit(); print(c)\n"
            "except OSError as e:\n"
            "    print(type(e).__name__)\n")
    return bed.run_host_in_netns([HOST_PYTHON, "-c", code]).stdout.strip()


class TestOutsider:

    @pytest.fixture(scope="class")
    def bed(self, new_booted_bed):
        bed = new_booted_bed()
        bed.preseed(preseed_lines(ANSWERS))
        bed.apt_install("mailsetup")
        bed.wait_port(25)
        return bed

    @pytest.fixture(scope="class")
    def outside(self, bed):
        host = OutsideHost(bed)
        try:
            yield host
        finally:
            host.close()

    # -- the setting ------------------------------------------------------

    def test_outsider_is_not_in_mynetworks(self, bed, outside):
        assert bed.postconf("mynetworks") == "127.0.0.0/8 [::1]/128"
        assert bed.postconf("inet_interfaces") == "all"
        session = outside.smtp([("cmd", "EHLO client.outside.test")])
        assert session.get("greeting", [0])[0] == 220, session
        assert codes(session) == [250], session
        log = bed.log_text()
        assert re.search(r"connect from \S*\[%s\]" % re.escape(OUTSIDE_IP), log), (
            "the server did not see a client at %s:\n%s" % (OUTSIDE_IP, bed.diagnostics()))

    # -- our domain -------------------------------------------------------

    @pytest.mark.parametrize("mail_from, rcpt", [
        (SENDER, "alice@example.test"),
        (SENDER, "root@example.test"),
        ("MAIL FROM:<>", "alice@example.test"),   # bounces must be accepted too
    ], ids=["alice", "root", "alice-null-sender"])
    def test_mail_for_our_domain_is_accepted_and_delivered(self, bed, outside, mail_from, rcpt):
        tag = token("outsider")
        session = outside.smtp([("cmd", "EHLO client.outside.test"), ("cmd", mail_from),
                                ("cmd", "RCPT TO:<%s>" % rcpt), ("data", message(tag))])
        assert "error" not in session, session
        assert codes(session) == [250, 250, 250, 250], session
        bed.wait_for_mail("alice", tag)

    def test_unknown_local_user_is_refused(self, bed, outside):
        session = outside.smtp([("cmd", "EHLO client.outside.test"), ("cmd", SENDER),
                                ("cmd", "RCPT TO:<nosuchuser@example.test>")])
        assert codes(session)[:2] == [250, 250], session
        assert 500 <= codes(session)[2] < 600, session

    # -- no open relay ----------------------------------------------------

    @pytest.mark.parametrize("mail_from, rcpt_to", [t[1:] for t in RELAY_TRICKS],
                             ids=[t[0] for t in RELAY_TRICKS])
    def test_foreign_recipient_is_refused_with_5xx(self, bed, outside, mail_from, rcpt_to):
        session = outside.smtp([("cmd", "EHLO client.outside.test"), ("cmd", mail_from),
                                ("cmd", rcpt_to), ("cmd", "RSET")])
        assert "error" not in session, session
        assert codes(session)[:2] == [250, 250], session
        code, text = session["replies"][2]
        assert 500 <= code < 600, "%s -> %d %s (expected a 5xx refusal)" % (rcpt_to, code, text)
        if rcpt_to == "RCPT TO:<>":
            assert (code, text) == (501, "5.1.3 Bad recipient address syntax"), session
        else:
            assert code == 554 and "Relay access denied" in text, session

    def test_nothing_was_queued_or_relayed(self, bed, outside):
        queue = bed.run("postqueue -p").stdout
        assert "Mail queue is empty" in queue, queue
        log = bed.log_text()
        assert not re.search(r"postfix/smtp\[", log), (
            "Postfix's SMTP client ran (a relay attempt):\n%s" % bed.diagnostics())
        not_local = [line for line in log.splitlines()
                     if "status=" in line and "relay=local" not in line]
        assert not not_local, "deliveries other than local ones:\n%s" % "\n".join(not_local)
        assert "foreign.test" not in bed.mailbox("alice")
        # The refusals came from the outsider, at RCPT time.
        assert re.search(r"NOQUEUE: reject: RCPT from \S*\[%s\]: 554 5\.7\.1 "
                         r"<someone@foreign\.test>: Relay access denied" % re.escape(OUTSIDE_IP),
                         log), bed.diagnostics()

    def test_no_ipv6_listener_with_inet_protocols_ipv4(self, bed, outside):
        assert bed.postconf("inet_protocols") == "ipv4"
        assert outside.connect(SERVER_IP6) == "refused"
        assert outside.connect(SERVER_IP) == "connected"

    # -- loopback only ----------------------------------------------------

    def test_satellite_restarts_postfix_and_shuts_the_outside_out(self, bed, outside):
        assert bed.postfix_status()
        before = master_pid(bed)
        bed.preseed(preseed_lines(ANSWERS, mailer_type=("select", "satellite"),
                                  relayhost=("string", "[relay.example.test]")))
        bed.dpkg_reconfigure("mailsetup")
        assert bed.postconf("inet_interfaces") == "loopback-only"
        assert bed.postconf("relayhost") == "[relay.example.test]"
        assert bed.postfix_status(), "Postfix is not running after the reconfigure"
        after = master_pid(bed)
        assert before and after and before != after, (
            "Postfix was not restarted (master pid %s -> %s)" % (before, after))
        assert outside.connect(SERVER_IP) == "refused"
        assert outside.connect(SERVER_IP6) == "refused"
        assert loopback_answers(bed) == "220"
