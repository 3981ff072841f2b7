"""End-to-end: mailsetup-imap as its users meet it.

`apt install mailsetup-imap` (preseeded) in a fresh Debian booted with
systemd (a systemd-nspawn container, testbed.BootedTestbed): the packages
start, reload and restart Postfix and Dovecot themselves, then real clients
(Debian's python3: smtplib, imaplib, poplib) talk to them over loopback
inside the container's network namespace.

Clients connect from 127.0.0.2, never 127.0.0.1: Dovecot treats a
connection whose local and remote addresses are equal as secure and would
allow a plaintext login before STARTTLS from 127.0.0.1 (doc/dovecot-facts.md,
"Loopback counts as secure").  Logins meant to fail come from other
addresses (127.0.0.3 and up), so that Dovecot's per-address delay after a
failed login cannot slow the other tests down.

Deliveries (Postfix -> Dovecot LMTP -> Maildir) are awaited by polling the
Maildirs with a bound, never with fixed sleeps.  "Exactly once" is counted
by the unique Subject of each test message after the queue has no message
in flight any more.

Each class shares one test bed per release for its consecutive steps (tests
run in file order); each test asserts one thing a user would notice.
"""

import email
import email.policy
import json
import mailbox
import os
import re
import shlex
import time

import pytest

from .steps import json_client, require, retry_on_apt_lock, rewritten_by_reconfigure, token

DOMAIN = "example.test"
HOSTNAME = "mail.example.test"
ADMIN = "admin"

CORE_ANSWERS = [
    "mailsetup mailsetup/mail_domain string " + DOMAIN,
    "mailsetup mailsetup/hostname string " + HOSTNAME,
    "mailsetup mailsetup/admin_user string " + ADMIN,
]
IMAP_ANSWERS = ["mailsetup-imap mailsetup-imap/domains string " + DOMAIN]

ALICE, ALICE_PW = "alice@example.test", "alice-secret-1"
BOB, BOB_PW = "bob@example.test", "bob-secret-22"
BOB_QUOTA = "20K"
OUTSIDER = "someone@example.org"       # sender of mail from "the internet" (port 25)
EXTERNAL = "friend@elsewhere.example"  # a forward target outside; the bed has no route out

DROPINS = ("/etc/dovecot/conf.d/05-mailsetup-auth.conf", "/etc/dovecot/conf.d/99-mailsetup.conf")
SIEVE_DIR = "/etc/mailsetup/sieve"
SIEVE_FILES = (SIEVE_DIR + "/spam-to-junk.sieve", SIEVE_DIR + "/spam-to-junk.svbin")
VMAIL = "/var/vmail"
PORTS = (25, 110, 143, 465, 587, 993, 995)
DELIVERY_TIMEOUT = 30


# ---------------------------------------------------------------------------
# The client: Debian's python3 on the host, run inside the bed's network
# namespace.  One JSON request on stdin, one JSON answer on stdout.
# ---------------------------------------------------------------------------

CLIENT = r'''
import imaplib, json, poplib, smtplib, socket, ssl, sys, time
from base64 import b64encode
from email import message_from_bytes
from email.message import EmailMessage

p = json.load(sys.stdin)
HOST = "127.0.0.1"
SOURCE = (p.get("source", "127.0.0.2"), 0)

# Every client library connects through socket.create_connection: give them
# all the source address (imaplib and poplib have no parameter for it).
_connect = socket.create_connection
def create_connection(address, timeout=socket._GLOBAL_DEFAULT_TIMEOUT, source_address=None, **kw):
    return _connect(address, timeout, source_address or SOURCE, **kw)
socket.create_connection = create_connection

CTX = ssl.create_default_context()   # the snakeoil certificate: no verification
CTX.check_hostname = False
CTX.verify_mode = ssl.CERT_NONE

def text(value):
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)

def message():
    m = EmailMessage()
    m["From"] = p["from"]
    m["To"] = ", ".join(p["to"])
    m["Subject"] = p["subject"]
    m["Message-ID"] = "<%s@client.test>" % p["subject"]
    for name, value in p.get("headers", {}).items():
        m[name] = value
    body = "test message %s\n" % p["subject"]
    pad = p.get("size", 0)
    if pad:
        body += ("x" * 75 + "\n") * (pad // 76 + 1)
    m.set_content(body)
    return m.as_bytes()

class session:
    """with session(connection, "quit") as c: ... closes it however the block ends."""
    def __init__(self, conn, close):
        self.conn, self.close = conn, close
    def __enter__(self):
        return self.conn
    def __exit__(self, *exc):
        try:
            getattr(self.conn, self.close)()
        except Exception:
            pass

def op_wait_ports():
    end = time.time() + p.get("timeout", 30)
    missing = list(p["ports"])
    while missing and time.time() < end:
        for port in list(missing):
            try:
                _connect((HOST, port), 2).close()
                missing.remove(port)
            except OSError:
                pass
        if missing:
            time.sleep(0.2)
    return {"missing": missing}

def op_send():
    """One SMTP session; ends at the first refusal.  stage: where it ended."""
    out = {"stage": "connect", "accepted": False}
    if p["mode"] == "ssl":
        conn = smtplib.SMTP_SSL(HOST, p["port"], timeout=30, context=CTX)
    else:
        conn = smtplib.SMTP(HOST, p["port"], timeout=30)
    with session(conn, "quit") as s:
        s.ehlo("client.test")
        if p["mode"] == "starttls":
            out["stage"] = "starttls"
            code, msg = s.starttls(context=CTX)
            s.ehlo("client.test")
        if p.get("user"):
            out["stage"] = "auth"
            # AUTH PLAIN only: login() would try LOGIN after a failed PLAIN
            s.user, s.password = p["user"], p["password"]
            try:
                code, msg = s.auth("PLAIN", s.auth_plain)
            except smtplib.SMTPAuthenticationError as err:
                code, msg = err.smtp_code, err.smtp_error
            if code != 235:
                out.update(code=code, text=text(msg))
                return out
        out["stage"] = "mail"
        code, msg = s.mail(p["from"])
        if code == 250:
            out["stage"] = "rcpt"
            for rcpt in p["to"]:
                code, msg = s.rcpt(rcpt)
                if code not in (250, 251):
                    break
            else:
                out["stage"] = "data"
                code, msg = s.data(message())
                out["accepted"] = code == 250
        out.update(code=code, text=text(msg))
        return out

def op_smtp_auth_before_tls():
    with session(smtplib.SMTP(HOST, p["port"], timeout=30), "quit") as s:
        s.ehlo("client.test")
        out = {"starttls_offered": s.has_extn("starttls"), "auth_offered": s.has_extn("auth")}
        cred = b64encode(("\0%s\0%s" % (p["user"], p["password"])).encode()).decode()
        code, msg = s.docmd("AUTH", "PLAIN " + cred)
        out.update(code=code, text=text(msg))
        return out

def imap_connect():
    if p["mode"] == "ssl":
        return imaplib.IMAP4_SSL(HOST, p.get("port", 993), ssl_context=CTX, timeout=30)
    return imaplib.IMAP4(HOST, p.get("port", 143), timeout=30)

def op_imap():
    """Log in (after STARTTLS on 143) and list the subjects in a folder (INBOX)."""
    with session(imap_connect(), "logout") as c:
        if p["mode"] == "starttls":
            c.starttls(ssl_context=CTX)
        try:
            c.login(p["user"], p["password"])
        except imaplib.IMAP4.error as err:
            return {"login": False, "text": str(err)}
        typ, data = c.select(p.get("folder", "INBOX"), readonly=True)
        if typ != "OK":
            return {"login": True, "selected": False, "text": text(data[0])}
        subjects = []
        typ, data = c.search(None, "ALL")
        for num in data[0].split():
            typ, parts = c.fetch(num, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            subjects.append(str(message_from_bytes(parts[0][1])["Subject"]))
        return {"login": True, "selected": True, "subjects": subjects}

def op_imap_folders():
    """The LIST and LSUB lines of a mailbox (flags, delimiter, name)."""
    with session(imap_connect(), "logout") as c:
        c.login(p["user"], p["password"])
        typ, listed = c.list()
        typ, subscribed = c.lsub()
        return {"list": [text(x) for x in listed if x], "lsub": [text(x) for x in subscribed if x]}

def op_imap_quota():
    """The STORAGE line of GETQUOTAROOT INBOX (used and limit in KiB)."""
    with session(imap_connect(), "logout") as c:
        c.login(p["user"], p["password"])
        typ, data = c.getquotaroot("INBOX")
        lines = [text(x) for part in data for x in part]
        return {"lines": lines}

def op_imap_login_before_tls():
    with session(imap_connect(), "logout") as c:
        out = {"capabilities": [text(x) for x in c.capabilities]}
        try:
            typ, data = c.login(p["user"], p["password"])
            out.update(login=True, text=text(data[0]))
        except imaplib.IMAP4.error as err:
            out.update(login=False, text=str(err))
        return out

def pop3_connect():
    if p["mode"] == "ssl":
        return poplib.POP3_SSL(HOST, p.get("port", 995), context=CTX, timeout=30)
    return poplib.POP3(HOST, p.get("port", 110), timeout=30)

def op_pop3():
    """Log in (after STLS on 110) and list the subjects."""
    with session(pop3_connect(), "quit") as c:
        if p["mode"] == "stls":
            c.stls(context=CTX)
        try:
            c.user(p["user"])
            c.pass_(p["password"])
        except poplib.error_proto as err:
            return {"login": False, "text": text(err.args[0])}
        count, size = c.stat()
        subjects = []
        for i in range(1, count + 1):
            resp, lines, octets = c.top(i, 0)
            subjects.append(str(message_from_bytes(b"\r\n".join(lines))["Subject"]))
        return {"login": True, "subjects": subjects}

def op_pop3_login_before_tls():
    with session(pop3_connect(), "quit") as c:
        out = {"capabilities": sorted(c.capa())}
        try:
            c.user(p["user"])
            resp = c.pass_(p["password"])
            out.update(login=True, text=text(resp))
        except poplib.error_proto as err:
            out.update(login=False, text=text(err.args[0]))
        return out

print(json.dumps(globals()["op_" + p["op"]]()))
'''


def client(bed, op, **params):
    """Run one client operation in the bed's network; its JSON answer."""
    return json_client(bed, CLIENT, op, params, bed.diagnostics, timeout=120)


def submit(bed, user, password, sender, recipients, subject, port=587, mode="starttls", **kw):
    """Send as a logged-in user on 587 (STARTTLS) or 465 (mode="ssl")."""
    return client(bed, "send", port=port, mode=mode, user=user, password=password,
                  to=list(recipients), subject=subject, **{"from": sender}, **kw)


def inbound(bed, recipients, subject, sender=OUTSIDER, **kw):
    """Mail from the internet: port 25, no login.  Must be accepted."""
    res = client(bed, "send", port=25, mode="plain", to=list(recipients), subject=subject,
                 **{"from": sender}, **kw)
    assert res["accepted"], "port 25 refused mail to %s: %r\n%s" % (
        recipients, res, bed.diagnostics())
    return res


# ---------------------------------------------------------------------------
# Mail on disk
# ---------------------------------------------------------------------------

def maildir_of(addr):
    local, _, dom = addr.partition("@")
    return "%s/%s/%s/Maildir" % (VMAIL, dom, local)


def maildir_messages(bed, addr, folder=None):
    """The messages in the INBOX (or another folder) of a mailbox, as email.message objects."""
    found = []
    top = maildir_of(addr) + ("/." + folder if folder else "")
    for sub in ("new", "cur"):
        d = bed.path(top + "/" + sub)
        try:
            names = sorted(os.listdir(d))
        except FileNotFoundError:
            continue
        for name in names:
            try:
                with open(os.path.join(d, name), "rb") as f:
                    found.append(email.message_from_binary_file(f, policy=email.policy.compat32))
            except FileNotFoundError:  # moved from new/ to cur/ meanwhile
                continue
    return found


def mbox_messages(bed, user):
    path = bed.path("/var/mail/" + user)
    if not os.path.exists(path):
        return []
    return list(mailbox.mbox(path, create=False))


def count_subject(messages, subject):
    return sum(1 for m in messages if (m["Subject"] or "").strip() == subject)


def wait_until(what, check, bed, timeout=DELIVERY_TIMEOUT):
    end = time.time() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.time() > end:
            raise AssertionError("%s: not after %d s\n%s" % (what, timeout, bed.diagnostics()))
        time.sleep(0.2)


def wait_in_mailbox(bed, addr, subject, timeout=DELIVERY_TIMEOUT):
    wait_until("message %s in the Maildir of %s" % (subject, addr),
               lambda: count_subject(maildir_messages(bed, addr), subject), bed, timeout)


def wait_in_mbox(bed, user, subject, timeout=DELIVERY_TIMEOUT):
    wait_until("message %s in /var/mail/%s" % (subject, user),
               lambda: count_subject(mbox_messages(bed, user), subject), bed, timeout)


def queue(bed):
    out = bed.run("postqueue -j", check=False).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def wait_queue_settled(bed, timeout=DELIVERY_TIMEOUT):
    """Until no message is in flight (deferred ones wait for a retry and are left aside)."""
    wait_until("queue without messages in flight",
               lambda: not [e for e in queue(bed) if e["queue_name"] != "deferred"], bed, timeout)


def dsns_about(bed, addr, subject):
    """Delivery status notifications in addr's INBOX about the message `subject`."""
    found = []
    for m in maildir_messages(bed, addr):
        if m.get_content_type() != "multipart/report":
            continue
        if subject in m.as_string():
            found.append(m)
    return found


# ---------------------------------------------------------------------------
# The test bed
# ---------------------------------------------------------------------------

def mailsetup(bed, args, input=None):
    """`mailsetup ARGS` in the bed (not checked: the tests look at the exit status)."""
    return bed.run("mailsetup " + args, check=False, input=input)


def mailsetup_ok(bed, args, input=None):
    res = mailsetup(bed, args, input=input)
    assert res.returncode == 0, "mailsetup %s: exit %d\n%s%s" % (
        args, res.returncode, res.stdout, res.stderr)
    return res


def add_mailbox(bed, addr, password, quota=None, wait=True):
    """`mailbox add`; then (wait=True) until Dovecot knows the mailbox.

    Dovecot asks the SQLite directory on every lookup, so a new mailbox is
    known at once (test_mail_to_a_new_mailbox_is_delivered does not wait);
    the others check that before going on, so that a failure shows here."""
    args = "mailbox add %s" % shlex.quote(addr)
    if quota:
        args += " --quota %s" % shlex.quote(quota)
    res = mailsetup_ok(bed, args, input=password + "\n")
    if wait:
        wait_dovecot_knows(bed, addr)
    return res


def wait_dovecot_knows(bed, addr):
    wait_until("Dovecot knows %s" % addr,
               lambda: bed.run("doveadm user %s >/dev/null" % shlex.quote(addr),
                               check=False).returncode == 0, bed, timeout=10)


def wait_mail_ports(bed):
    """Every mail port answers: the packages started Postfix and Dovecot."""
    missing = client(bed, "wait_ports", ports=list(PORTS))["missing"]
    assert not missing, "nothing listens on %s\n%s" % (missing, bed.diagnostics())
    assert not bed.failed_units(), bed.diagnostics()


def install_imap(bed):
    bed.preseed(CORE_ANSWERS + IMAP_ANSWERS)
    return retry_on_apt_lock(lambda: bed.apt_install("mailsetup-imap", check=False))


def apt_ok(res):
    assert res.returncode == 0, "%s: exit %d\n--- stdout ---\n%s\n--- stderr ---\n%s" % (
        res.cmd, res.returncode, res.stdout[-4000:], res.stderr[-4000:])


def files_under(bed, directory):
    """{path: bytes} of every file below `directory` in the root."""
    top = bed.path(directory)
    found = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in filenames:
            full = os.path.join(dirpath, name)
            with open(full, "rb") as f:
                found[os.path.relpath(full, top)] = f.read()
    return found


def installed(res):
    if res.returncode != 0:
        pytest.fail("apt-get install mailsetup-imap failed (exit %d):\n%s\n%s"
                    % (res.returncode, res.stdout[-4000:], res.stderr[-4000:]), pytrace=False)


# ---------------------------------------------------------------------------
# Mailboxes: submission, reading, refusals, aliases, lists, quota, deletion
# ---------------------------------------------------------------------------

class TestMailboxes:

    @pytest.fixture(scope="class")
    def bed(self, new_booted_bed):
        bed = new_booted_bed()
        bed.install_result = install_imap(bed)
        if bed.install_result.returncode == 0:
            wait_mail_ports(bed)
        return bed

    @pytest.fixture(scope="class")
    def state(self, bed):
        return {}

    def test_install_succeeds_and_every_mail_port_answers(self, bed):
        installed(bed.install_result)
        # wait_mail_ports waited for 25, 110, 143, 465, 587, 993 and 995
        res = bed.run("doveconf -n >/dev/null", check=False)
        assert res.returncode == 0, res.stderr

    def test_two_mailboxes_are_created(self, bed, state):
        installed(bed.install_result)
        add_mailbox(bed, ALICE, ALICE_PW)
        add_mailbox(bed, BOB, BOB_PW, quota=BOB_QUOTA)
        listed = json.loads(mailsetup_ok(bed, "mailbox list --json").stdout)
        got = {row["address"]: row["quota"] for row in listed}
        assert got == {ALICE: "0", BOB: BOB_QUOTA}
        state["mailboxes"] = True

    def test_alice_sends_to_bob_over_587_with_starttls(self, bed, state):
        require(state, "mailboxes")
        subject = token("587")
        res = submit(bed, ALICE, ALICE_PW, ALICE, [BOB], subject)
        assert res["accepted"], res
        wait_in_mailbox(bed, BOB, subject)
        state["to_bob"] = subject

    def test_bob_sends_to_alice_over_465_with_implicit_tls(self, bed, state):
        require(state, "mailboxes")
        subject = token("465")
        res = submit(bed, BOB, BOB_PW, BOB, [ALICE], subject, port=465, mode="ssl")
        assert res["accepted"], res
        wait_in_mailbox(bed, ALICE, subject)

    def test_bob_reads_it_over_imaps(self, bed, state):
        require(state, "to_bob")
        res = client(bed, "imap", mode="ssl", user=BOB, password=BOB_PW)
        assert res["login"], res
        assert state["to_bob"] in res["subjects"]

    def test_bob_reads_it_over_imap_with_starttls(self, bed, state):
        require(state, "to_bob")
        res = client(bed, "imap", mode="starttls", user=BOB, password=BOB_PW)
        assert res["login"], res
        assert state["to_bob"] in res["subjects"]

    def test_bob_reads_it_over_pop3_with_stls(self, bed, state):
        require(state, "to_bob")
        res = client(bed, "pop3", mode="stls", user=BOB, password=BOB_PW)
        assert res["login"], res
        assert state["to_bob"] in res["subjects"]

    def test_bob_reads_it_over_pop3s(self, bed, state):
        require(state, "to_bob")
        res = client(bed, "pop3", mode="ssl", user=BOB, password=BOB_PW)
        assert res["login"], res
        assert state["to_bob"] in res["subjects"]

    # -- mail marked as spam (by mailsetup-filter) goes to Junk -----------

    def test_mail_marked_as_spam_lands_in_junk_and_other_mail_in_inbox(self, bed, state):
        """rspamd (mailsetup-filter, not installed here) adds `X-Spam: Yes`;
        the header comes from the client instead, which is the same to Dovecot."""
        require(state, "mailboxes")
        spam, ham = token("spam"), token("ham")
        inbound(bed, [ALICE], spam, headers={"X-Spam": "Yes"})
        inbound(bed, [ALICE], ham)
        wait_until("message %s in alice's Junk folder" % spam,
                   lambda: count_subject(maildir_messages(bed, ALICE, "Junk"), spam), bed)
        wait_in_mailbox(bed, ALICE, ham)
        wait_queue_settled(bed)
        junk = client(bed, "imap", mode="ssl", user=ALICE, password=ALICE_PW, folder="Junk")
        inbox = client(bed, "imap", mode="ssl", user=ALICE, password=ALICE_PW)
        assert junk["login"] and junk["selected"], junk
        assert spam in junk["subjects"] and ham not in junk["subjects"], junk
        assert ham in inbox["subjects"] and spam not in inbox["subjects"], inbox
        # Dovecot used the binary compiled at install time: it would log an
        # error for a binary it had to compile again and could not save.
        errors = [line.strip() for line in bed.log_text().splitlines()
                  if "sieve" in line.lower() and ("error" in line.lower() or "warning" in line.lower())]
        assert not errors, "\n".join(errors)

    def test_junk_is_a_subscribed_special_use_folder(self, bed, state):
        """Also in a mailbox that never got spam (bob's): mail clients show it as Junk."""
        require(state, "mailboxes")
        res = client(bed, "imap_folders", mode="ssl", user=BOB, password=BOB_PW)
        junk = [line for line in res["list"] if line.endswith(" Junk") or line.endswith(' "Junk"')]
        assert junk and "\\Junk" in junk[0], res
        assert [line for line in res["lsub"] if line.endswith(" Junk") or line.endswith(' "Junk"')], res

    # -- refusals ---------------------------------------------------------

    def test_wrong_password_is_refused_everywhere(self, bed, state):
        require(state, "mailboxes")
        wrong = "not-" + BOB_PW
        subject = token("wrongpw")
        # one source address each: Dovecot delays every further failure from the same one
        smtp = submit(bed, BOB, wrong, BOB, [ALICE], subject, source="127.0.0.3")
        imap = client(bed, "imap", mode="ssl", user=BOB, password=wrong, source="127.0.0.5")
        pop3 = client(bed, "pop3", mode="ssl", user=BOB, password=wrong, source="127.0.0.6")
        assert (smtp["stage"], smtp.get("code")) == ("auth", 535), smtp
        assert not imap["login"] and "AUTHENTICATIONFAILED" in imap["text"], imap
        assert not pop3["login"] and pop3["text"].startswith("-ERR"), pop3

    def test_auth_before_starttls_is_refused_on_587(self, bed, state):
        require(state, "mailboxes")
        res = client(bed, "smtp_auth_before_tls", port=587, user=ALICE, password=ALICE_PW)
        assert res["starttls_offered"], res
        assert not res["auth_offered"], "AUTH offered before STARTTLS: %r" % res
        assert res["code"] == 530, res

    def test_imap_login_before_starttls_is_refused(self, bed, state):
        require(state, "mailboxes")
        res = client(bed, "imap_login_before_tls", mode="plain", user=BOB, password=BOB_PW)
        assert "LOGINDISABLED" in res["capabilities"], res
        assert not res["login"], "IMAP LOGIN accepted without TLS: %r" % res
        assert "PRIVACYREQUIRED" in res["text"], res

    def test_pop3_user_pass_before_stls_is_refused(self, bed, state):
        require(state, "mailboxes")
        res = client(bed, "pop3_login_before_tls", mode="plain", user=BOB, password=BOB_PW)
        assert not res["login"], "POP3 USER/PASS accepted without TLS: %r" % res
        assert res["text"].startswith("-ERR"), res

    def test_alice_cannot_send_as_bob(self, bed, state):
        require(state, "mailboxes")
        subject = token("spoof")
        res = submit(bed, ALICE, ALICE_PW, BOB, [ALICE], subject)
        assert (res["stage"], res.get("code")) == ("rcpt", 553), res
        assert "not owned by user " + ALICE in res["text"], res

    # -- where mail for an address goes ------------------------------------

    def test_alias_reaches_each_target_once(self, bed, state):
        require(state, "mailboxes")
        mailsetup_ok(bed, "alias add info@%s %s %s" % (DOMAIN, ALICE, BOB))
        subject = token("alias")
        inbound(bed, ["info@" + DOMAIN], subject)
        wait_in_mailbox(bed, ALICE, subject)
        wait_in_mailbox(bed, BOB, subject)
        wait_queue_settled(bed)
        counts = {a: count_subject(maildir_messages(bed, a), subject) for a in (ALICE, BOB)}
        assert counts == {ALICE: 1, BOB: 1}

    def test_catch_all_gets_unknown_addresses_only(self, bed, state):
        require(state, "mailboxes")
        mailsetup_ok(bed, "alias add @%s %s" % (DOMAIN, ALICE))
        unknown, known = token("catchall"), token("notcaught")
        inbound(bed, ["nobody-%s@%s" % (unknown[-6:], DOMAIN)], unknown)
        inbound(bed, [BOB], known)
        wait_in_mailbox(bed, ALICE, unknown)
        wait_in_mailbox(bed, BOB, known)
        wait_queue_settled(bed)
        counts = {(a, s): count_subject(maildir_messages(bed, a), s)
                  for a in (ALICE, BOB) for s in (unknown, known)}
        assert counts == {(ALICE, unknown): 1, (BOB, unknown): 0,
                          (ALICE, known): 0, (BOB, known): 1}

    def test_forward_reaches_local_account_once_and_queues_external_copy(self, bed, state):
        require(state, "mailboxes")
        local = "%s@%s" % (ADMIN, HOSTNAME)   # a Unix account: /var/mail/admin
        mailsetup_ok(bed, "alias add fwd@%s %s %s" % (DOMAIN, local, EXTERNAL))
        subject = token("forward")
        inbound(bed, ["fwd@" + DOMAIN], subject)
        wait_in_mbox(bed, ADMIN, subject)

        # The bed has no route out: the copy for the external address waits
        # in the queue, addressed to it (and is logged as a relay attempt).
        def queued_external():
            for entry in queue(bed):
                if entry["queue_name"] != "deferred":
                    continue
                if EXTERNAL not in [r["address"] for r in entry["recipients"]]:
                    continue
                text = bed.run("postcat -hq %s" % entry["queue_id"], check=False).stdout
                if subject in text:
                    return entry
            return None
        entry = wait_until("deferred copy for %s in the queue" % EXTERNAL, queued_external, bed)
        assert [r["address"] for r in entry["recipients"]] == [EXTERNAL], entry
        logged = [line for line in bed.log_text().splitlines()
                  if entry["queue_id"] in line and "to=<%s>" % EXTERNAL in line]
        assert logged, "no delivery attempt to %s logged for %s" % (EXTERNAL, entry["queue_id"])
        wait_queue_settled(bed)
        assert count_subject(mbox_messages(bed, ADMIN), subject) == 1
        bed.run("postsuper -d %s" % entry["queue_id"])

    def test_list_reaches_each_member_once(self, bed, state):
        require(state, "mailboxes")
        team = "team@" + DOMAIN
        local = "%s@%s" % (ADMIN, HOSTNAME)
        mailsetup_ok(bed, "list add %s %s" % (team, ALICE))
        mailsetup_ok(bed, "list subscribe %s %s" % (team, BOB))
        mailsetup_ok(bed, "list subscribe %s %s" % (team, local))
        members = mailsetup_ok(bed, "list members %s" % team).stdout.split()
        assert sorted(members) == sorted([ALICE, BOB, local])
        subject = token("list")
        inbound(bed, [team], subject)
        wait_in_mailbox(bed, ALICE, subject)
        wait_in_mailbox(bed, BOB, subject)
        wait_in_mbox(bed, ADMIN, subject)
        wait_queue_settled(bed)
        counts = {a: count_subject(maildir_messages(bed, a), subject) for a in (ALICE, BOB)}
        counts[local] = count_subject(mbox_messages(bed, ADMIN), subject)
        assert counts == {ALICE: 1, BOB: 1, local: 1}

    def test_one_message_to_alias_list_and_member_arrives_once(self, bed, state):
        require(state, "mailboxes")
        # info@ (alias: alice, bob) and team@ (list: alice, bob, admin) from the tests above
        subject = token("overlap")
        inbound(bed, ["info@" + DOMAIN, "team@" + DOMAIN, ALICE], subject)
        wait_in_mailbox(bed, ALICE, subject)
        wait_in_mailbox(bed, BOB, subject)
        wait_in_mbox(bed, ADMIN, subject)
        wait_queue_settled(bed)
        counts = {a: count_subject(maildir_messages(bed, a), subject) for a in (ALICE, BOB)}
        counts[ADMIN] = count_subject(mbox_messages(bed, ADMIN), subject)
        assert counts == {ALICE: 1, BOB: 1, ADMIN: 1}

    # -- quota ------------------------------------------------------------

    def test_mail_over_quota_bounces_to_the_sender(self, bed, state):
        require(state, "mailboxes")
        # bob's quota is 20K.  Dovecot 2.3 lets the last message exceed it by
        # 10% of the limit, 2.4 by 10M (doc/dovecot-facts.md): a 40K message
        # bounces at once on 2.3, on 2.4 the one after it.  Send until one
        # bounces; by the third at the latest the mailbox is over quota on both.
        size = 40 * 1024
        sent, bounced = [], None
        for _ in range(3):
            subject = token("quota")
            res = submit(bed, ALICE, ALICE_PW, ALICE, [BOB], subject, size=size)
            assert res["accepted"], res
            sent.append(subject)
            wait_until("message %s delivered to bob or bounced to alice" % subject,
                       lambda: (count_subject(maildir_messages(bed, BOB), subject)
                                or dsns_about(bed, ALICE, subject)), bed)
            if dsns_about(bed, ALICE, subject):
                bounced = subject
                break
        assert bounced, "3 messages of 40K each reached bob's 20K mailbox, none bounced"
        dsn = dsns_about(bed, ALICE, bounced)[0].as_string()
        assert "Status: 5.2.2" in dsn, dsn[:3000]
        assert count_subject(maildir_messages(bed, BOB), bounced) == 0
        delivered = [s for s in sent if count_subject(maildir_messages(bed, BOB), s)]
        assert len(delivered) <= 1, "bob's 20K mailbox took %d messages of 40K" % len(delivered)
        state["quota_delivered"] = len(delivered)

    # -- deleting mailboxes -----------------------------------------------

    def test_mailbox_del_keeps_the_mail(self, bed, state):
        require(state, "mailboxes")
        carol, password = "carol@" + DOMAIN, "carol-secret-3"
        add_mailbox(bed, carol, password)
        subject = token("carol")
        inbound(bed, [carol], subject)
        wait_in_mailbox(bed, carol, subject)
        mailsetup_ok(bed, "mailbox del " + carol)
        listed = [r["address"] for r in json.loads(mailsetup_ok(bed, "mailbox list --json").stdout)]
        assert carol not in listed
        assert count_subject(maildir_messages(bed, carol), subject) == 1, (
            "the mail of the deleted mailbox is gone from " + maildir_of(carol))
        # A login under way while the mailbox was deleted may still pass; the
        # next ones must not.
        # (From 127.0.0.4: a refused login delays the next ones from there.)
        end = time.time() + 5
        while True:
            login = client(bed, "imap", mode="ssl", user=carol, password=password,
                           source="127.0.0.4")
            if not login["login"] or time.time() > end:
                break
            time.sleep(0.3)
        assert not login["login"], "the deleted mailbox can still log in: %r" % login

    def test_mailbox_del_purge_mail_removes_it(self, bed, state):
        require(state, "mailboxes")
        dave = "dave@" + DOMAIN
        add_mailbox(bed, dave, "dave-secret-4")
        subject = token("dave")
        inbound(bed, [dave], subject)
        wait_in_mailbox(bed, dave, subject)
        mailsetup_ok(bed, "mailbox del --purge-mail " + dave)
        home = "%s/%s/dave" % (VMAIL, DOMAIN)
        assert not bed.exists(home), "%s still exists after --purge-mail" % home
        assert bed.exists(maildir_of(ALICE)), "--purge-mail of dave touched alice's mail"

    # -- changes take effect at once --------------------------------------

    def test_mail_to_a_new_mailbox_is_delivered(self, bed, state):
        """Mail sent right after `mailbox add` must reach the new mailbox,
        also on a busy server (logins and deliveries ask Dovecot every
        moment; a loop of `doveadm user` stands in for them)."""
        require(state, "mailboxes")
        bed.run("touch /run/busy; (while [ -e /run/busy ]; do doveadm user %s >/dev/null 2>&1; "
                "sleep 0.1; done) >/dev/null 2>&1 &" % ALICE)
        sent = {}
        try:
            for i in range(4):
                addr = "new%d@%s" % (i, DOMAIN)
                add_mailbox(bed, addr, "new-secret-%d" % i, wait=False)
                sent[addr] = token("new")
                inbound(bed, [addr], sent[addr])
            wait_queue_settled(bed)
        finally:
            bed.run("rm -f /run/busy")
        missing = {a: s for a, s in sent.items() if not count_subject(maildir_messages(bed, a), s)}
        if missing:
            why = [line.strip() for line in bed.log_text().splitlines()
                   if any("to=<%s>" % a in line for a in missing)]
            pytest.fail("mail sent right after `mailbox add` did not reach %d of %d new mailboxes:\n%s"
                        % (len(missing), len(sent), "\n".join(why)), pytrace=False)

    def test_quota_change_right_after_another_takes_effect(self, bed, state):
        """Two changes within one second, with a login between them (as a
        script that sets a quota, checks it and sets it again does): the
        second must take effect."""
        require(state, "mailboxes")
        addr, password = "quota@" + DOMAIN, "quota-secret-8"
        add_mailbox(bed, addr, password, quota="10M")
        want = [str(40 * 1024)]  # KiB
        for attempt in range(3):
            # start just after a second begins, so that the three steps fit in one
            time.sleep(1.05 - time.time() % 1)
            res = bed.run("date +%%s; mailsetup mailbox quota %s 30M >/dev/null; "
                          "doveadm user %s >/dev/null; mailsetup mailbox quota %s 40M >/dev/null; date +%%s"
                          % (addr, addr, addr))
            first, last = res.stdout.split()
            listed = {r["address"]: r["quota"]
                      for r in json.loads(mailsetup_ok(bed, "mailbox list --json").stdout)}
            assert listed[addr] == "40M"
            # Whatever caches there are may take a moment; 5 s is plenty.
            end = time.time() + 5
            while True:
                lines = client(bed, "imap_quota", mode="ssl", user=addr, password=password)["lines"]
                limits = re.findall(r"STORAGE \d+ (\d+)", " ".join(lines))
                if limits == want or time.time() > end:
                    break
                time.sleep(0.5)
            assert limits == want, (
                "IMAP GETQUOTAROOT still shows %s KiB after `mailbox quota %s 40M`: %r"
                % (limits, addr, lines))
            if first == last:
                break   # the two changes did fall into one second
            # else: try again to make the two changes within one second (slow
            # runs, or a mailsetup that itself spaces the changes out)


# ---------------------------------------------------------------------------
# The package: CSV import, dpkg-reconfigure, purge
# ---------------------------------------------------------------------------

GOOD_CSV = """\
type,address,value,quota
domain,second.test,,
mailbox,erin@second.test,erin-secret-5,1M
alias,sales@second.test,erin@second.test,
"""

# (file content, line number of the bad row)
BAD_CSVS = {
    "bad quota": ("""\
type,address,value,quota
mailbox,frank@example.test,frank-secret-6,
mailbox,gina@example.test,gina-secret-77,lots
alias,help@example.test,frank@example.test,
""", 3),
    "alias to a mailbox that does not exist": ("""\
type,address,value,quota
domain,third.test,,
mailbox,frank@example.test,frank-secret-6,
list,staff@example.test,frank@example.test,
alias,help@example.test,nobody@example.test,
""", 5),
}

# question -> a value that must be refused (the rest of the answers stay good)
BAD_PRESEEDS = {
    "the server's own name as a mailbox domain": ("domains", HOSTNAME),
    "a domain without a dot": ("domains", "example"),
    "a certificate that does not exist": ("tls_cert", "/etc/ssl/certs/missing.pem"),
    "a certificate given as the key": ("tls_key", "/etc/ssl/certs/ssl-cert-snakeoil.pem"),
}
# Short descriptions of the questions, as in debian/mailsetup-imap.templates.
IMAP_LABELS = {"domains": "Mail domains with mailboxes", "tls_cert": "TLS certificate file",
               "tls_key": "TLS private key file"}
GOOD_IMAP_ANSWERS = [
    "mailsetup-imap mailsetup-imap/domains string %s second.test" % DOMAIN,
    # the certificate files are read (and checked) only with files
    "mailsetup-imap mailsetup-imap/tls_source select files",
    "mailsetup-imap mailsetup-imap/tls_cert string /etc/ssl/certs/ssl-cert-snakeoil.pem",
    "mailsetup-imap mailsetup-imap/tls_key string /etc/ssl/private/ssl-cert-snakeoil.key",
]
# The mailbox directory (SQLite) and the tables Postfix reads it through.
DIRECTORY_FILES = ("/var/lib/mailsetup-imap/directory/directory.sqlite",
                   "/var/lib/mailsetup-imap/directory/passwords.sqlite") + tuple(
    "/etc/mailsetup/sqlite/%s.cf" % name for name in ("domains", "mailboxes", "aliases", "senders"))
WATCHED = ("/etc/postfix/main.cf", "/etc/postfix/master.cf") + DROPINS + SIEVE_FILES + DIRECTORY_FILES


class TestPackage:

    @pytest.fixture(scope="class")
    def bed(self, new_booted_bed):
        bed = new_booted_bed()
        # The core first, to know main.cf and master.cf as they were before
        # mailsetup-imap (its purge must give them back).
        bed.preseed(CORE_ANSWERS)
        apt_ok(retry_on_apt_lock(lambda: bed.apt_install("mailsetup", check=False)))
        bed.main_before = bed.postconf_n()
        bed.master_before = bed.run("postconf -M; postconf -P").stdout
        bed.install_result = install_imap(bed)
        if bed.install_result.returncode == 0:
            wait_mail_ports(bed)
        return bed

    @pytest.fixture(scope="class")
    def state(self, bed):
        return {}

    def test_mail_domain_leaves_mydestination(self, bed, state):
        installed(bed.install_result)
        before = [d.strip() for d in bed.main_before["mydestination"].split(",")]
        now = [d.strip() for d in bed.postconf("mydestination").split(",")]
        assert DOMAIN in before, "the core did not deliver %s locally: %r" % (DOMAIN, before)
        assert DOMAIN not in now, now
        assert HOSTNAME in now and "localhost" in now, now

    def test_import_creates_working_mailboxes(self, bed, state):
        installed(bed.install_result)
        bed.run("umask 077; cat >/root/good.csv", input=GOOD_CSV)
        mailsetup_ok(bed, "import /root/good.csv")
        wait_dovecot_knows(bed, "erin@second.test")
        subject = token("import")
        inbound(bed, ["sales@second.test"], subject)
        wait_in_mailbox(bed, "erin@second.test", subject)
        res = client(bed, "imap", mode="ssl", user="erin@second.test", password="erin-secret-5")
        assert res["login"] and subject in res["subjects"], res
        state["erin_mail"] = subject

    @pytest.mark.parametrize("case", sorted(BAD_CSVS))
    def test_bad_csv_row_changes_nothing(self, bed, state, case):
        installed(bed.install_result)
        text, line = BAD_CSVS[case]
        bed.run("umask 077; cat >/root/bad.csv", input=text)
        before = files_under(bed, "/etc/mailsetup")
        res = mailsetup(bed, "import /root/bad.csv")
        after = files_under(bed, "/etc/mailsetup")
        assert res.returncode == 1, (res.returncode, res.stdout, res.stderr)
        lines = res.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("mailsetup: "), res.stderr
        assert "line %d:" % line in lines[0], lines[0]
        changed = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
        assert not changed, "changed by the refused import: %s" % changed
        listed = [r["address"] for r in json.loads(mailsetup_ok(bed, "mailbox list --json").stdout)]
        assert "frank@example.test" not in listed

    def test_reconfigure_with_same_answers_changes_nothing(self, bed, state):
        installed(bed.install_result)
        changed = rewritten_by_reconfigure(bed, "mailsetup-imap", WATCHED)
        assert not changed, "rewritten although nothing changed: %s" % changed
        # the domain added by the import is now one of the answers
        shown = bed.debconf_show("mailsetup-imap")
        assert "second.test" in shown, shown

    @pytest.mark.parametrize("case", sorted(BAD_PRESEEDS))
    def test_bad_preseed_is_refused_with_one_line_and_changes_nothing(self, bed, state, case):
        installed(bed.install_result)
        question, value = BAD_PRESEEDS[case]
        before = {p: bed.file_state(p) for p in WATCHED}
        # the certificate files are read only when they are the certificate's source
        source = ["mailsetup-imap mailsetup-imap/tls_source select files"] if question.startswith("tls_") else []
        bed.preseed(source + ["mailsetup-imap mailsetup-imap/%s string %s" % (question, value)])
        try:
            res = bed.dpkg_reconfigure("mailsetup-imap", check=False)
        finally:
            bed.preseed(GOOD_IMAP_ANSWERS)
        assert res.returncode != 0, "the bad answer %r was applied:\n%s" % (value, res.stderr[-2000:])
        lines = [line for line in res.stderr.splitlines() if line.startswith("mailsetup: ")]
        assert len(lines) == 1 and lines[0].startswith(
            'mailsetup: mailsetup-imap/%s ("%s"): "%s" is not valid: expected '
            % (question, IMAP_LABELS[question], value)), res.stderr[-2000:]
        after = {p: bed.file_state(p) for p in WATCHED}
        assert [p for p in WATCHED if before[p] != after[p]] == []

    # -- purge ------------------------------------------------------------

    def test_purge_succeeds(self, bed, state):
        installed(bed.install_result)
        apt_ok(retry_on_apt_lock(lambda: bed.apt_purge("mailsetup-imap", check=False)))
        state["purged"] = True

    def test_purge_removes_the_dovecot_dropins(self, bed, state):
        require(state, "purged")
        left = [p for p in DROPINS if bed.exists(p)]
        assert not left, "left after purge: %s" % left
        res = bed.run("doveconf -n >/dev/null", check=False)
        assert res.returncode == 0, "Dovecot's configuration is broken after purge: " + res.stderr

    def test_purge_removes_the_sieve_script(self, bed, state):
        require(state, "purged")
        left = [p for p in SIEVE_FILES + (SIEVE_DIR,) if bed.exists(p)]
        assert not left, "left after purge: %s" % left

    def test_purge_restores_main_cf_and_master_cf(self, bed, state):
        require(state, "purged")
        now = bed.postconf_n()
        differ = {k: {"before": bed.main_before.get(k), "after purge": now.get(k)}
                  for k in set(now) | set(bed.main_before) if now.get(k) != bed.main_before.get(k)}
        assert not differ, "main.cf not as before mailsetup-imap (None = not set): %r" % differ
        assert bed.run("postconf -M; postconf -P").stdout == bed.master_before

    def test_purge_keeps_the_mail(self, bed, state):
        require(state, "purged")
        require(state, "erin_mail")
        assert count_subject(maildir_messages(bed, "erin@second.test"), state["erin_mail"]) == 1

    def test_after_purge_the_domain_is_local_again(self, bed, state):
        require(state, "purged")
        subject = token("local-again")
        inbound(bed, ["%s@%s" % (ADMIN, DOMAIN)], subject)
        wait_in_mbox(bed, ADMIN, subject)
