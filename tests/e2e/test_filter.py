"""End-to-end: mailsetup-filter (rspamd milter, DKIM, greylisting, HELO
checks, DNS blocklists, SPF/DMARC) as its users meet it.

One test bed per release (class scope).  The packages are downloaded first
(host network, the host's resolv.conf), then the bed's /etc/resolv.conf
points at a dnsmasq inside the bed (127.0.0.1:53, `local=/#/`: it answers
everything itself, NXDOMAIN for anything not listed, and never forwards), and
everything is installed and run in the bed's private network namespace.
Nothing tries to reach an address outside the bed: servers listen on
loopback, clients connect to 127.0.0.1, every name is answered by dnsmasq.

The test bed is a Debian booted with systemd (testbed.BootedTestbed): the
packages start Postfix, the key-value store (redis-server on bookworm,
valkey-server on trixie) and rspamd themselves.  The test starts
only what is its own: dnsmasq, and clamd for the antivirus test (with a
one-signature database clamav-daemon's unit would not start; freshclam's
units are masked: they have no network to update from).

"Outside" SMTP clients (Debian's python3 on the host, smtplib, run in the
bed's network namespace) bind extra addresses put on the bed's lo
(203.0.113.0/24): Postfix then sees a client outside mynetworks (127.0.0.0/8
[::1]/128), and rspamd one that is not local (loopback always is).  Their
names (PTR and A) come from dnsmasq:

    203.0.113.5  mail.client.test    clean client; client.test has SPF ip4:203.0.113.5 -all
    203.0.113.2  listed.client.test  listed in bl.test (2.113.0.203.bl.test -> 127.0.0.2)
    forged.test                      SPF ip4:192.0.2.1 -all, DMARC p=reject

Greylisting: the bed shortens the delay from rspamd's 5 minutes to
GREYLIST_DELAY seconds in /etc/rspamd/override.d/greylist.conf, the
administrator's place for local changes, which mailsetup-filter leaves alone
(a reconfigure must keep it: checked).

Access lists (`mailsetup access`): 203.0.113.9 is denied, 203.0.113.7 and
the sender domain friend.test are allowed (so they skip greylisting), and
the blocklisted 203.0.113.2 is allowed at the end (so it skips the list).

The tests of a class run in file order and build on each other (state dict +
require()); each asserts one thing a user notices.
"""

import email
import email.policy
import json
import mailbox
import os
import re
import time

import pytest

from .steps import json_client, require, retry_on_apt_lock, rewritten_by_reconfigure, token
from .testbed import APT

DOMAIN = "example.test"
HOSTNAME = "mail.example.test"
ADMIN = "admin"
SELECTOR = "mail"
BLOCKLIST = "bl.test"

CORE_ANSWERS = [
    "mailsetup mailsetup/mail_domain string " + DOMAIN,
    "mailsetup mailsetup/hostname string " + HOSTNAME,
    "mailsetup mailsetup/admin_user string " + ADMIN,
]
FILTER_ANSWERS = [
    "mailsetup-filter mailsetup-filter/greylisting boolean true",
    "mailsetup-filter mailsetup-filter/dnsbl_zones string " + BLOCKLIST,
]
# clamav-daemon: its unit starts only with the official databases, and
# freshclam (masked in the bed) cannot fetch them; the test writes a
# one-signature database and starts clamd itself.
TOOLS = ("dnsmasq-base", "python3-dkim", "python3-dnspython", "clamav-daemon")

CLEAN_IP, CLEAN_NAME = "203.0.113.5", "mail.client.test"
LISTED_IP = "203.0.113.2"
DENIED_IP, DENIED_NAME = "203.0.113.9", "mail.denied.test"
ALLOWED_IP, ALLOWED_NAME = "203.0.113.7", "mail.allowed.test"
OUTSIDE_IPS = (CLEAN_IP, LISTED_IP, DENIED_IP, ALLOWED_IP)
GREYLIST_DELAY = 8
GREYLIST_OVERRIDE = "/etc/rspamd/override.d/greylist.conf"
ADMIN_OPTIONS = "# the administrator's own\ndns {\n  timeout = 2s;\n}\n"

DKIM_DIR = "/var/lib/mailsetup-filter/dkim"
KEY = "%s/%s.%s.key" % (DKIM_DIR, DOMAIN, SELECTOR)
RECORD = "%s/%s.%s.txt" % (DKIM_DIR, DOMAIN, SELECTOR)
LOCAL_D = "/etc/rspamd/local.d"
LOCAL_FILES = tuple("%s/%s" % (LOCAL_D, n) for n in (
    "actions.conf", "antivirus.conf", "classifier-bayes.conf", "dkim_signing.conf", "worker-proxy.inc", "dmarc.conf",
    "greylist.conf", "multimap.conf", "options.inc",
    "redis.conf", "mailsetup-allow-ip.map", "mailsetup-allow-from-domain.map", "mailsetup-allow-from-address.map"))
ACCESS_TABLES = ("/etc/mailsetup/filter/client-access.cidr", "/etc/mailsetup/filter/sender-access")
WATCHED = ("/etc/postfix/main.cf",) + LOCAL_FILES + ACCESS_TABLES + (KEY, RECORD, GREYLIST_OVERRIDE)

MILTER_DIR = "/var/spool/postfix/rspamd"
MILTER_SOCKET = MILTER_DIR + "/milter.sock"
DNSMASQ_PID = "/run/mailsetup-tests-dnsmasq.pid"
DNSMASQ_CONF = "/etc/mailsetup-tests/dnsmasq.conf"
RSPAMD_LOG = "/var/log/rspamd/rspamd.log"

EICAR = r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
# md5:size:name of the 68-byte EICAR file (doc/rspamd-facts.md, ClamAV)
EICAR_HDB = "44d88612fea8a8f36de82e1278abb02f:68:Eicar-Test-Signature-Local\n"
CLAMD_SOCKET = "/run/clamav/clamd.ctl"
# rspamd's "add header" test pattern, off unless enabled (test beds only:
# it would let anyone pick the action).  The option's name changed in 3.8.
GTUBE_ADD_HEADER = "YJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
TEST_PATTERNS = {"bookworm": "enable_test_patterns = true;\n", "trixie": 'gtube_patterns = "all";\n'}
OPTIONS_OVERRIDE = "/etc/rspamd/override.d/options.inc"
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

# Bounded waits (polled, never slept through).
RSPAMD_READY_TIMEOUT = 120   # first start: rspamd compiles its regexps
RELOAD_TIMEOUT = 60
DELIVERY_TIMEOUT = 30

# dnsmasq on 127.0.0.1:53 answering everything itself (the records follow)
DNSMASQ_BASE = """\
port=53
listen-address=127.0.0.1
bind-interfaces
no-resolv
no-hosts
no-poll
log-queries
log-facility=/var/log/dnsmasq.log
# everything not defined here: NXDOMAIN, never forwarded
local=/#/
"""
DNSMASQ_CONFIG = DNSMASQ_BASE + """\
mx-host=example.test,mail.example.test,10
host-record=mail.example.test,127.0.0.1
txt-record=example.test,"v=spf1 ip4:127.0.0.1 -all"
txt-record=_dmarc.example.test,"v=DMARC1; p=reject"
mx-host=forged.test,mx.forged.test,10
host-record=mx.forged.test,127.0.0.9
txt-record=forged.test,"v=spf1 ip4:192.0.2.1 -all"
txt-record=_dmarc.forged.test,"v=DMARC1; p=reject"
mx-host=client.test,mail.client.test,10
host-record=mail.client.test,203.0.113.5
txt-record=client.test,"v=spf1 ip4:203.0.113.5 -all"
host-record=listed.client.test,203.0.113.2
host-record=mail.denied.test,203.0.113.9
host-record=mail.allowed.test,203.0.113.7
address=/2.113.0.203.bl.test/127.0.0.2
txt-record=2.113.0.203.bl.test,"listed in bl.test"
"""


# ---------------------------------------------------------------------------
# The SMTP client: Debian's python3 on the host, in the bed's network
# namespace.  One JSON request on stdin, one JSON answer on stdout.
# ---------------------------------------------------------------------------

CLIENT = r'''
import json, smtplib, socket, sys, time
from email.message import EmailMessage
from email.utils import formatdate

p = json.load(sys.stdin)

def text(value):
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)

def op_wait_port():
    end = time.time() + p["timeout"]
    while True:
        try:
            socket.create_connection(("127.0.0.1", p["port"]), 2).close()
            return {"open": True}
        except OSError as err:
            if time.time() > end:
                return {"open": False, "error": str(err)}
            time.sleep(0.2)

def message():
    m = EmailMessage()
    m["From"] = p.get("header_from", p["from"])
    m["To"] = ", ".join(p["to"])
    m["Subject"] = p["subject"]
    m["Date"] = formatdate(localtime=False)
    m["Message-ID"] = "<%s@%s>" % (p["subject"], p["from"].partition("@")[2] or "client.test")
    m.set_content(p["body"])
    if p.get("attachment"):
        m.add_attachment(p["attachment"].encode(), maintype="application", subtype="octet-stream",
                         filename=p.get("filename", "eicar.com"))
    return m.as_bytes()

def op_send():
    """One SMTP session to 127.0.0.1:25 from p["source"]; ends at the first refusal.
    stage: the command that got the last reply (connect, helo, mail, rcpt, data)."""
    out = {"stage": "connect", "accepted": False}
    # local_hostname given: smtplib would otherwise look up the host's own name
    s = smtplib.SMTP(local_hostname=p["helo"], timeout=120, source_address=(p["source"], 0))
    try:
        code, msg = s.connect("127.0.0.1", 25)
        if code == 220:
            out["stage"] = "helo"
            code, msg = s.ehlo(p["helo"])
        if code == 250:
            out["stage"] = "mail"
            code, msg = s.mail(p["from"])
        if code == 250:
            out["stage"] = "rcpt"
            for rcpt in p["to"]:
                code, msg = s.rcpt(rcpt)
                if code not in (250, 251):
                    break
        if code in (250, 251):
            out["stage"] = "data"
            out["message_id"] = "<%s@%s>" % (p["subject"], p["from"].partition("@")[2] or "client.test")
            code, msg = s.data(message())
            out["accepted"] = code == 250
    except smtplib.SMTPResponseException as err:
        code, msg = err.smtp_code, err.smtp_error
    except smtplib.SMTPServerDisconnected as err:
        code, msg = None, "disconnected: %s" % err
    finally:
        try:
            s.quit()
        except Exception:
            s.close()
    out.update(code=code, text=text(msg))
    return out

print(json.dumps(globals()["op_" + p["op"]]()))
'''


def client(bed, op, **params):
    return json_client(bed, CLIENT, op, params, lambda: diagnostics(bed))


def send(bed, source, helo, sender, recipients, subject=None, body=None, **kw):
    """One SMTP session to port 25 from `source`; the client's JSON answer."""
    subject = subject or token("filter")
    body = body if body is not None else "test message %s\nwith a body of its own.\n" % subject
    res = client(bed, "send", source=source, helo=helo, to=list(recipients), subject=subject,
                 body=body, **{"from": sender}, **kw)
    res["subject"] = subject
    return res


def send_clean(bed, sender, subject=None):
    """A clean message from mail.client.test (proper PTR, SPF pass), fresh body."""
    return send(bed, CLEAN_IP, CLEAN_NAME, sender, ["%s@%s" % (ADMIN, DOMAIN)], subject)


def refused(res, stage, code, enhanced):
    """Assert that the session ended at `stage` with `code` and the enhanced status."""
    got = (res["stage"], res.get("code"), (res.get("text") or "").split(" ", 1)[0])
    return got == (stage, code, enhanced)


# ---------------------------------------------------------------------------
# Helpers in the bed
# ---------------------------------------------------------------------------

def key_value_store(bed):
    """The Redis server rspamd uses: valkey-server where Debian has it (trixie:
    rspamd recommends it first, and mailsetup-filter takes it), else redis-server."""
    return "valkey-server" if bed.exists("/usr/bin/valkey-server") else "redis-server"


def rspamd_log_tail(bed, lines=15):
    try:
        with open(bed.path(RSPAMD_LOG), errors="replace") as f:
            tail = f.read().splitlines()[-lines:]
    except OSError:
        return ""
    return "--- rspamd.log (tail) ---\n" + "\n".join(line[:600] for line in tail)


def diagnostics(bed):
    return bed.diagnostics() + "\n" + rspamd_log_tail(bed)


def wait_until(what, check, bed, timeout=DELIVERY_TIMEOUT, interval=0.2):
    end = time.time() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.time() > end:
            raise AssertionError("%s: not after %d s\n%s" % (what, timeout, diagnostics(bed)))
        time.sleep(interval)


def mbox_messages(bed, user):
    """[(raw bytes, message)] of /var/mail/USER."""
    path = bed.path("/var/mail/" + user)
    if not os.path.exists(path):
        return []
    box = mailbox.mbox(path, create=False)
    try:
        found = []
        for key in box.keys():
            raw = box.get_bytes(key)
            found.append((raw, email.message_from_bytes(raw, policy=email.policy.compat32)))
        return found
    finally:
        box.close()


def wait_in_mbox(bed, user, subject):
    def look():
        return [raw for raw, m in mbox_messages(bed, user) if (m["Subject"] or "").strip() == subject]
    return wait_until("message %s in /var/mail/%s" % (subject, user), look, bed)[0]


def processes(bed):
    """{pid: title} of the bed's processes (its own /proc)."""
    out = bed.run("for d in /proc/[0-9]*; do t=$(tr '\\0' ' ' <$d/cmdline 2>/dev/null) && "
                  "[ -n \"$t\" ] && echo \"${d#/proc/} $t\"; done; true").stdout
    found = {}
    for line in out.splitlines():
        pid, _, title = line.partition(" ")
        found[int(pid)] = title.strip()
    return found


def milter_answers(bed):
    """rspamd's proxy accepts a connection on its unix socket (asked from inside
    the bed: the socket's path seen from the host could pass the 108-byte limit)."""
    return bed.run("python3 -c 'import socket; s = socket.socket(socket.AF_UNIX); s.settimeout(2); "
                   "s.connect(\"%s\")'" % MILTER_SOCKET, check=False).returncode == 0


def rspamd_workers(bed):
    """pids of rspamd's proxy (milter) and normal (scanner) worker processes."""
    return {pid for pid, title in processes(bed).items()
            if title.startswith("rspamd: ") and ("rspamd_proxy process" in title or "normal process" in title)}


def bayes_learned(bed):
    """How many messages the BAYES_SPAM statistics learned (rspamc stat)."""
    out = bed.run("rspamc -h 127.0.0.1:11334 -t 30 stat").stdout
    found = re.search(r"Statfile: BAYES_SPAM\b.*?learned: (\d+)", out, re.S)
    assert found, "no BAYES_SPAM statistics in rspamc stat:\n" + out
    return int(found.group(1))


def installed(res):
    if res.returncode != 0:
        pytest.fail("apt-get install mailsetup-filter failed (exit %d):\n%s\n%s"
                    % (res.returncode, res.stdout[-4000:], res.stderr[-4000:]), pytrace=False)


def apt_ok(res):
    assert res.returncode == 0, "%s: exit %d\n--- stdout ---\n%s\n--- stderr ---\n%s" % (
        res.cmd, res.returncode, res.stdout[-4000:], res.stderr[-4000:])


def apt_private(bed, args):
    """apt-get in the private network namespace (everything is downloaded already)."""
    return retry_on_apt_lock(lambda: bed.run(APT + " " + args, check=False))


# ---------------------------------------------------------------------------
# Setting up the bed: downloads, DNS, install, daemons
# ---------------------------------------------------------------------------

def download_everything(bed):
    """All .debs the class needs, on the host network with the host's resolver:
    after this, nothing needs the network any more."""
    pkgs = " ".join(("mailsetup", "mailsetup-filter") + TOOLS)
    apt_ok(retry_on_apt_lock(lambda: bed.run(APT + " install --download-only " + pkgs,
                                             net="host", check=False)))


def use_local_resolver(bed):
    """From now on every name lookup in the bed goes to 127.0.0.1:53 (dnsmasq)."""
    bed.run("cat >/etc/resolv.conf", input="nameserver 127.0.0.1\n")


def start_dns(bed, config=DNSMASQ_CONFIG, probe=(CLEAN_NAME, CLEAN_IP)):
    """dnsmasq with `config`; returns once the bed's resolver gives probe's name its address."""
    bed.run("mkdir -p /etc/mailsetup-tests && cat >%s" % DNSMASQ_CONF, input=config)
    bed.run("dnsmasq -C %s --pid-file=%s" % (DNSMASQ_CONF, DNSMASQ_PID))
    # through the bed's resolver (resolv.conf -> dnsmasq)
    wait_until("dnsmasq answers", lambda: bed.run(
        "python3 -c 'import socket; print(socket.gethostbyname(\"%s\"))'" % probe[0],
        check=False).stdout.strip() == probe[1], bed, timeout=20)


def restart_dns(bed, config):
    """dnsmasq reads its configuration only at start."""
    bed.run("pid=$(cat %s) && kill $pid && i=0 && while kill -0 $pid 2>/dev/null && [ $i -lt 100 ]; "
            "do sleep 0.1; i=$((i+1)); done" % DNSMASQ_PID)
    start_dns(bed, config)


def rspamd_scans(bed):
    """rspamd's milter socket answers and its scanner works (the first scans
    may wait for the regexp compilation): GTUBE gets "reject"."""
    wait_until("rspamd's milter socket answers", lambda: milter_answers(bed), bed, timeout=RSPAMD_READY_TIMEOUT)
    bed.run("cat >/root/gtube.eml", input="From: x@client.test\nTo: root@%s\nSubject: ready?\n\n%s\n"
            % (DOMAIN, GTUBE))
    wait_until("rspamd scans (GTUBE -> reject)", lambda: "Action: reject" in bed.run(
        "rspamc -h 127.0.0.1:11333 -t 30 /root/gtube.eml", check=False).stdout,
        bed, timeout=RSPAMD_READY_TIMEOUT, interval=1)


def reload_rspamd_as_the_admin(bed):
    """After a change in override.d, as an administrator would."""
    workers = rspamd_workers(bed)
    bed.systemctl("reload rspamd")
    wait_until("rspamd reloaded (new proxy and normal workers)",
               lambda: len(rspamd_workers(bed) - workers) >= 2, bed, timeout=RELOAD_TIMEOUT)


def no_query_left_the_bed(bed):
    """The network rule: dnsmasq answered every lookup itself."""
    if bed.exists("/var/log/dnsmasq.log"):
        forwarded = [line for line in bed.read_file("/var/log/dnsmasq.log").splitlines() if " forwarded " in line]
        assert not forwarded, "dnsmasq forwarded queries:\n" + "\n".join(forwarded[:10])


# ---------------------------------------------------------------------------
# The tests
# ---------------------------------------------------------------------------

class TestFilter:

    @pytest.fixture(scope="class")
    def bed(self, new_booted_bed):
        bed = new_booted_bed()
        try:
            download_everything(bed)
            use_local_resolver(bed)
            # freshclam has no network to update from (trixie also runs it once at boot)
            bed.systemctl("mask clamav-freshclam.service clamav-freshclam-once.service "
                          "clamav-freshclam-once.timer")
            # The core first, to know main.cf as it was before mailsetup-filter
            # (its purge must give it back); the test tools with it.
            bed.preseed(CORE_ANSWERS)
            # rspamd before mailsetup-filter, with a local.d file of the
            # administrator's (purge must give it back byte for byte)
            apt_ok(apt_private(bed, "install mailsetup rspamd " + " ".join(TOOLS)))
            bed.run("cat >{0}/options.inc && chgrp _rspamd {0}/options.inc && chmod 640 {0}/options.inc"
                    .format(LOCAL_D), input=ADMIN_OPTIONS)
            start_dns(bed)
            bed.main_before = bed.postconf_n()
            bed.preseed(FILTER_ANSWERS)
            bed.install_result = apt_private(bed, "install mailsetup-filter")
            if bed.install_result.returncode == 0:
                bed.run("mkdir -p /etc/rspamd/override.d && cat >%s" % GREYLIST_OVERRIDE,
                        input="timeout = %ds;\n" % GREYLIST_DELAY)
                bed.run("cat >%s" % OPTIONS_OVERRIDE, input=TEST_PATTERNS[bed.suite])
                for ip in OUTSIDE_IPS:
                    bed.run_host_in_netns(["ip", "addr", "add", ip + "/32", "dev", "lo"])
                reload_rspamd_as_the_admin(bed)
                rspamd_scans(bed)
            yield bed
        finally:
            no_query_left_the_bed(bed)

    @pytest.fixture(scope="class")
    def state(self, bed):
        return {}

    # -- install ----------------------------------------------------------

    def test_install_reports_the_filter_set_up(self, bed, state):
        installed(bed.install_result)
        report = bed.install_result.stdout + bed.install_result.stderr
        assert "mailsetup-filter: the spam and forgery filter is set up." in report, report[-3000:]
        assert re.search(r"Signed with DKIM:\s+%s\b" % re.escape(DOMAIN), report), report[-3000:]
        assert re.search(r"Greylisting:\s+on\b", report), report[-3000:]
        assert re.search(r"DNS blocklists:\s+%s\b" % re.escape(BLOCKLIST), report), report[-3000:]
        state["installed"] = True

    def test_dkim_key_is_readable_by_rspamd_only(self, bed, state):
        require(state, "installed")
        owner = bed.run("stat -c '%%U:%%G %%a' %s" % KEY).stdout.strip()
        assert owner == "root:_rspamd 640", "%s is %s, want root:_rspamd 640" % (KEY, owner)
        # and rspamd's workers (user _rspamd) can read it
        res = bed.run("setpriv --reuid=_rspamd --regid=_rspamd --init-groups head -c 40 %s" % KEY,
                      check=False)
        assert res.returncode == 0 and "PRIVATE KEY" in res.stdout, res.stderr
        res = bed.run("setpriv --reuid=nobody --regid=nogroup --clear-groups cat %s" % KEY, check=False)
        assert res.returncode != 0, "user nobody can read the DKIM key"

    def test_main_cf_has_milter_helo_checks_and_blocklist(self, bed, state):
        require(state, "installed")
        cf = bed.postconf_n()
        assert cf.get("smtpd_milters") == "unix:rspamd/milter.sock", cf.get("smtpd_milters")
        owner = bed.run("stat -c '%%U:%%G %%a' %s" % MILTER_DIR).stdout.strip()
        assert owner == "_rspamd:postfix 750", "%s is %s" % (MILTER_DIR, owner)
        assert cf.get("non_smtpd_milters") == "$smtpd_milters", cf.get("non_smtpd_milters")
        assert cf.get("smtpd_helo_required") == "yes"
        helo = cf.get("smtpd_helo_restrictions", "")
        assert "reject_invalid_helo_hostname" in helo and "reject_non_fqdn_helo_hostname" in helo, helo
        clients = cf.get("smtpd_client_restrictions", "")
        assert "reject_rbl_client %s" % BLOCKLIST in clients, clients
        assert bed.run("postfix check", check=False).returncode == 0

    def test_rspamd_takes_the_configuration_without_complaint(self, bed, state):
        """rspamadm configtest says "syntax OK" even for a rule it disables
        (doc/rspamd-facts.md): look at what it says about our files too."""
        require(state, "installed")
        res = bed.run("rspamadm configtest -c /etc/rspamd/rspamd.conf", check=False)
        assert res.returncode == 0, res.stdout + res.stderr
        said = (res.stdout + res.stderr).splitlines()
        bad = [line for line in said if re.search(r"invalid|\bDISABLED\b|cannot parse", line)]
        assert not bad, "rspamadm configtest complains:\n" + "\n".join(bad)
        state["rspamd"] = True

    def test_bayes_learns_into_redis(self, bed, state):
        """A message taught with rspamc learn_spam is counted in the Bayes
        statistics (kept in our Redis)."""
        require(state, "rspamd")
        subject = token("learn")
        words = " ".join("offer%d cheap%d pills%d" % (i, i, i) for i in range(30))
        bed.run("cat >/root/learn.eml", input="From: seller@client.test\nTo: %s@%s\nSubject: %s\n"
                "Message-ID: <%s@client.test>\n\nBuy now. %s\n" % (ADMIN, DOMAIN, subject, subject, words))
        before = bayes_learned(bed)
        res = bed.run("rspamc -h 127.0.0.1:11334 -t 30 learn_spam /root/learn.eml", check=False)
        assert res.returncode == 0, res.stdout + res.stderr
        assert "success = true;" in res.stdout, res.stdout
        # rspamd reads the counts back from Redis every few seconds
        wait_until("BAYES_SPAM learned %d (rspamc stat)" % (before + 1),
                   lambda: bayes_learned(bed) == before + 1, bed, timeout=RELOAD_TIMEOUT, interval=1)

    # -- incoming mail -----------------------------------------------------

    def test_gtube_is_refused_at_data(self, bed, state):
        require(state, "installed")
        res = send(bed, CLEAN_IP, CLEAN_NAME, "bob@client.test", ["root@" + DOMAIN],
                   body="This is spam.\n%s\n" % GTUBE)
        assert refused(res, "data", 554, "5.7.1"), "%r\n%s" % (res, diagnostics(bed))

    def test_non_fqdn_helo_is_refused(self, bed, state):
        require(state, "installed")
        res = send(bed, CLEAN_IP, "foo", "bob@client.test", ["%s@%s" % (ADMIN, DOMAIN)])
        assert refused(res, "rcpt", 504, "5.5.2"), res
        assert "Helo command rejected" in res["text"], res

    def test_invalid_helo_is_refused(self, bed, state):
        require(state, "installed")
        res = send(bed, CLEAN_IP, "bad_host!", "bob@client.test", ["%s@%s" % (ADMIN, DOMAIN)])
        assert refused(res, "rcpt", 501, "5.5.2"), res
        assert "Helo command rejected" in res["text"], res

    def test_unknown_sender_is_greylisted_at_first(self, bed, state):
        require(state, "installed")
        res = send_clean(bed, "bob@client.test")
        assert refused(res, "data", 451, "4.7.1"), "%r\n%s" % (res, diagnostics(bed))
        state["greylisted"] = (res["subject"], time.time())

    def test_greylisted_sender_is_accepted_when_it_retries_after_the_delay(self, bed, state):
        require(state, "greylisted")
        subject, first = state["greylisted"]
        res = send_clean(bed, "bob@client.test", subject)   # the same message again, at once
        assert refused(res, "data", 451, "4.7.1"), "retry within the delay: %r" % res
        time.sleep(max(0, first + GREYLIST_DELAY + 1 - time.time()))
        res = send_clean(bed, "bob@client.test", subject)
        assert res["accepted"], "retry after %d s: %r\n%s" % (GREYLIST_DELAY, res, diagnostics(bed))
        wait_in_mbox(bed, ADMIN, subject)

    def test_probable_spam_is_delivered_marked_x_spam(self, bed, state):
        """Between the add-header and the reject scores: delivered, with the
        header that mailsetup-imap's Sieve script files into Junk."""
        require(state, "installed")
        res = send(bed, CLEAN_IP, CLEAN_NAME, "bob@client.test", ["%s@%s" % (ADMIN, DOMAIN)],
                   body="Probably spam.\n%s\n" % GTUBE_ADD_HEADER)
        if refused(res, "data", 451, "4.7.1"):   # greylisted first: the sender's server retries
            time.sleep(GREYLIST_DELAY + 1)
            res = send(bed, CLEAN_IP, CLEAN_NAME, "bob@client.test", ["%s@%s" % (ADMIN, DOMAIN)],
                       res["subject"], body="Probably spam.\n%s\n" % GTUBE_ADD_HEADER)
        assert res["accepted"], "%r\n%s" % (res, diagnostics(bed))
        msg = email.message_from_bytes(wait_in_mbox(bed, ADMIN, res["subject"]), policy=email.policy.compat32)
        assert msg.get_all("X-Spam") == ["Yes"], msg.items()

    def test_client_in_the_blocklist_is_refused_at_rcpt(self, bed, state):
        require(state, "installed")
        res = send(bed, LISTED_IP, "listed.client.test", "eve@client.test", ["%s@%s" % (ADMIN, DOMAIN)])
        assert refused(res, "rcpt", 554, "5.7.1"), res
        assert BLOCKLIST in res["text"], res

    def test_forged_sender_with_dmarc_reject_is_refused(self, bed, state):
        require(state, "installed")
        res = send(bed, CLEAN_IP, CLEAN_NAME, "bob@forged.test", ["%s@%s" % (ADMIN, DOMAIN)])
        assert refused(res, "data", 554, "5.7.1"), "%r\n%s" % (res, diagnostics(bed))

    # -- access lists ------------------------------------------------------

    def test_access_deny_and_allow_are_confirmed(self, bed, state):
        require(state, "installed")
        workers = rspamd_workers(bed)
        res = bed.run("mailsetup access deny %s spammer.test && mailsetup access allow %s friend.test"
                      % (DENIED_IP, ALLOWED_IP), check=False)
        assert res.returncode == 0, res.stdout + res.stderr
        assert res.stdout.splitlines() == [
            "%s: denied (client IP)" % DENIED_IP, "spammer.test: denied (sender domain)",
            "%s: allowed (client IP)" % ALLOWED_IP, "friend.test: allowed (sender domain)"], res.stdout
        # The command HUPs rspamd: its new workers have the new maps.
        wait_until("rspamd reloaded (new proxy and normal workers)",
                   lambda: len(rspamd_workers(bed) - workers) >= 2, bed, timeout=RELOAD_TIMEOUT)
        wait_until("rspamd's milter socket answers", lambda: milter_answers(bed), bed, timeout=RELOAD_TIMEOUT)
        listed = json.loads(bed.run("mailsetup access list --json").stdout)
        assert {(e["action"], e["entry"]) for e in listed} == {
            ("deny", DENIED_IP), ("deny", "spammer.test"), ("allow", ALLOWED_IP), ("allow", "friend.test")}
        state["access"] = True

    def test_denied_client_is_refused_at_rcpt(self, bed, state):
        require(state, "access")
        res = send(bed, DENIED_IP, DENIED_NAME, "x@denied.test", ["%s@%s" % (ADMIN, DOMAIN)])
        assert refused(res, "rcpt", 554, "5.7.1"), res
        assert "Client host rejected: Access denied by the administrator" in res["text"], res

    def test_denied_sender_domain_is_refused_at_rcpt(self, bed, state):
        require(state, "access")
        res = send(bed, CLEAN_IP, CLEAN_NAME, "x@spammer.test", ["%s@%s" % (ADMIN, DOMAIN)])
        assert refused(res, "rcpt", 554, "5.7.1"), res
        assert "Sender address rejected: Sender blocked by the administrator" in res["text"], res

    def test_allowed_client_skips_greylisting(self, bed, state):
        require(state, "access")
        res = send(bed, ALLOWED_IP, ALLOWED_NAME, "someone@allowed.test", ["%s@%s" % (ADMIN, DOMAIN)])
        assert res["accepted"], "first attempt of an allowed client: %r\n%s" % (res, diagnostics(bed))
        wait_in_mbox(bed, ADMIN, res["subject"])

    def test_allowed_sender_domain_skips_greylisting(self, bed, state):
        require(state, "access")
        res = send_clean(bed, "pal@friend.test")
        assert res["accepted"], "first attempt of an allowed sender: %r\n%s" % (res, diagnostics(bed))
        # while a sender from another domain, same client, is still greylisted
        res = send_clean(bed, "pal@other.test")
        assert refused(res, "data", 451, "4.7.1"), res

    def test_allowed_client_skips_the_blocklist(self, bed, state):
        require(state, "access")
        res = bed.run("mailsetup access allow %s" % LISTED_IP, check=False)
        assert res.returncode == 0, res.stdout + res.stderr
        res = send(bed, LISTED_IP, "listed.client.test", "eve@client.test", ["%s@%s" % (ADMIN, DOMAIN)])
        assert res["stage"] == "data", "an allowed client is still refused by the blocklist: %r" % res

    def test_a_wrong_access_entry_is_refused_and_changes_nothing(self, bed, state):
        require(state, "access")
        before = {p: bed.read_file(p) for p in ACCESS_TABLES}
        res = bed.run("mailsetup access deny 198.51.100.1 198.51.100.7/24", check=False)
        assert res.returncode == 1
        assert res.stderr.strip() == ('mailsetup: "198.51.100.7/24" is not a network address: '
                                      'did you mean 198.51.100.0/24?'), res.stderr
        assert {p: bed.read_file(p) for p in ACCESS_TABLES} == before

    # -- mailsetup dns --check against the bed's DNS -----------------------

    def test_dns_check_says_the_dkim_record_is_missing(self, bed, state):
        require(state, "installed")
        res = bed.run("mailsetup dns --check --json %s" % DOMAIN, check=False)
        assert res.returncode == 1, "exit %d with the DKIM record unpublished\n%s" % (res.returncode, res.stdout)
        status = {(c["name"], c["type"]): c["status"] for c in json.loads(res.stdout)["check"]}
        dkim_name = "%s._domainkey.%s." % (SELECTOR, DOMAIN)
        assert status[(dkim_name, "TXT")] == "missing", status
        assert status[(DOMAIN + ".", "MX")] == "ok", status   # dnsmasq: mx-host=example.test,...
        human = bed.run("mailsetup dns --check %s" % DOMAIN, check=False).stdout
        assert re.search(r"^MISSING\s+%s TXT$" % re.escape(dkim_name), human, re.M), human
        state["dns_records"] = json.loads(bed.run("mailsetup dns --json %s" % DOMAIN).stdout)

    def test_dns_check_passes_once_the_printed_records_are_published(self, bed, state):
        require(state, "dns_records")
        published = []
        for record in state["dns_records"]["domains"][0]["records"]:
            name = record["name"].rstrip(".")
            if record["type"] == "TXT":
                value = record["value"]
                parts = ",".join('"%s"' % value[i:i + 250] for i in range(0, len(value), 250))
                published.append("txt-record=%s,%s" % (name, parts))
        # the server's TLSA record (DANE), as dnsmasq takes a record type it has no name for: 52
        for record in state["dns_records"]["tlsa"]:
            usage, selector, matching, digest = record["value"].split(None, 3)
            published.append("dns-rr=%s,52,%02x%02x%02x%s" % (record["name"].rstrip("."), int(usage), int(selector),
                                                              int(matching), digest.replace(" ", "")))
        # the server's A/AAAA: the documentation addresses on the bed's lo count as public
        addresses = state["dns_records"]["addresses"]
        # (host-record takes one IPv4 and one IPv6 address; address= may repeat)
        published += ["address=/%s/%s" % (HOSTNAME, a) for a in addresses]
        # the zone as printed replaces the bed's own SPF, DMARC and address records
        replaced = ("txt-record=example.test,", "txt-record=_dmarc.example.test,",
                    "host-record=%s," % HOSTNAME) if addresses else (
                    "txt-record=example.test,", "txt-record=_dmarc.example.test,")
        config = "".join(line + "\n" for line in DNSMASQ_CONFIG.splitlines() if not line.startswith(replaced))
        restart_dns(bed, config + "\n".join(published) + "\n")
        res = bed.run("mailsetup dns --check %s" % DOMAIN, check=False)
        assert res.returncode == 0, res.stdout + res.stderr
        lines = [line for line in res.stdout.splitlines() if line.split()[:1] != ["ok"]]
        assert len(lines) == 1 and "; 0 problems" in lines[0], res.stdout

    # -- outgoing mail -----------------------------------------------------

    def test_local_mail_is_signed_with_a_valid_dkim_signature(self, bed, state):
        require(state, "installed")
        sender = "%s@%s" % (ADMIN, DOMAIN)
        res = send(bed, "127.0.0.1", HOSTNAME, sender, [sender], body="signed body\nsecond line\n")
        assert res["accepted"], "%r\n%s" % (res, diagnostics(bed))
        got = dkim_verified(bed, wait_in_mbox(bed, ADMIN, res["subject"]))
        assert got["asked"] == ["%s._domainkey.%s" % (SELECTOR, DOMAIN)], got

    # -- ClamAV ------------------------------------------------------------

    def test_antivirus_on_refuses_a_virus(self, bed, state):
        require(state, "access")   # pal@friend.test is not greylisted
        bed.run("cat >/var/lib/clamav/eicar.hdb && chown clamav:clamav /var/lib/clamav/eicar.hdb && "
                "mkdir -p /run/clamav && chown clamav:clamav /run/clamav && clamd", input=EICAR_HDB)
        assert not bed.failed_units(), bed.diagnostics()
        wait_until("clamd's socket", lambda: bed.exists(CLAMD_SOCKET), bed, timeout=60)
        workers = rspamd_workers(bed)
        bed.preseed(["mailsetup-filter mailsetup-filter/antivirus boolean true"])
        res = bed.dpkg_reconfigure("mailsetup-filter")
        assert re.search(r"Virus scan:\s+ClamAV\b", res.stderr), res.stderr[-3000:]
        wait_until("rspamd reloaded (new proxy and normal workers)",
                   lambda: len(rspamd_workers(bed) - workers) >= 2, bed, timeout=RELOAD_TIMEOUT)
        wait_until("rspamd's milter socket answers", lambda: milter_answers(bed), bed, timeout=RELOAD_TIMEOUT)
        res = send(bed, CLEAN_IP, CLEAN_NAME, "pal@friend.test", ["%s@%s" % (ADMIN, DOMAIN)],
                   body="Here is the file.\n", attachment=EICAR)
        assert refused(res, "data", 554, "5.7.1"), "%r\n%s" % (res, diagnostics(bed))
        assert "virus found" in res["text"] and "Eicar-Test-Signature-Local" in res["text"], res
        # and a clean attachment from the same sender passes
        res = send(bed, CLEAN_IP, CLEAN_NAME, "pal@friend.test", ["%s@%s" % (ADMIN, DOMAIN)],
                   body="Here is the file.\n", attachment="just some text, no virus", filename="notes.txt")
        assert res["accepted"], "%r\n%s" % (res, diagnostics(bed))

    # -- dpkg-reconfigure --------------------------------------------------

    def test_reconfigure_with_the_same_answers_changes_nothing(self, bed, state):
        """Also: the access lists and the administrator's override.d stay as they are."""
        require(state, "installed")
        changed = rewritten_by_reconfigure(bed, "mailsetup-filter", WATCHED)
        assert not changed, "rewritten although nothing changed: %s" % changed

    def test_reconfigure_without_greylisting_accepts_a_new_sender_at_once(self, bed, state):
        require(state, "installed")
        workers = rspamd_workers(bed)
        bed.preseed(["mailsetup-filter mailsetup-filter/greylisting boolean false"])
        res = bed.dpkg_reconfigure("mailsetup-filter")
        assert re.search(r"Greylisting:\s+off\b", res.stderr), res.stderr[-3000:]
        assert "enabled = false;" in bed.read_file(LOCAL_D + "/greylist.conf").splitlines()
        # The product HUPs the running rspamd: wait for its new workers.
        wait_until("rspamd reloaded (new proxy and normal workers)",
                   lambda: len(rspamd_workers(bed) - workers) >= 2, bed, timeout=RELOAD_TIMEOUT)
        wait_until("rspamd's milter socket answers", lambda: milter_answers(bed), bed, timeout=RELOAD_TIMEOUT)
        res = send_clean(bed, "carol@client.test")
        assert res["accepted"], "%r\n%s" % (res, diagnostics(bed))
        wait_in_mbox(bed, ADMIN, res["subject"])
        state["scanned_id"] = res["message_id"]

    # -- purge -------------------------------------------------------------

    def test_purge_succeeds(self, bed, state):
        require(state, "installed")
        apt_ok(apt_private(bed, "purge mailsetup-filter"))
        state["purged"] = True

    def test_purge_restores_main_cf(self, bed, state):
        require(state, "purged")
        now = bed.postconf_n()
        differ = {k: {"before": bed.main_before.get(k), "after purge": now.get(k)}
                  for k in set(now) | set(bed.main_before) if now.get(k) != bed.main_before.get(k)}
        assert not differ, "main.cf not as before mailsetup-filter (None = not set): %r" % differ

    def test_purge_removes_the_rspamd_files_the_access_lists_and_the_keys(self, bed, state):
        require(state, "purged")
        ours = [p for p in LOCAL_FILES if p != LOCAL_D + "/options.inc"]
        left = [p for p in ours + list(ACCESS_TABLES) + ["/etc/mailsetup/filter", KEY, RECORD, DKIM_DIR, MILTER_DIR]
                if bed.exists(p)]
        assert not left, "left after purge: %s" % left

    def test_purge_puts_back_the_administrators_rspamd_file(self, bed, state):
        require(state, "purged")
        assert bed.read_file(LOCAL_D + "/options.inc") == ADMIN_OPTIONS
        assert bed.run("stat -c '%%a %%U:%%G' %s/options.inc" % LOCAL_D).stdout.strip() == "640 root:_rspamd"

    def test_purge_leaves_the_other_packages_intact(self, bed, state):
        require(state, "purged")
        broken = bed.dpkg_verify("rspamd", "postfix", key_value_store(bed))
        assert not broken, "not as shipped: %r" % broken
        assert not bed.failed_units(), bed.diagnostics()

    def test_after_purge_postfix_delivers_without_the_milter(self, bed, state):
        require(state, "purged")
        # rspamd still runs (mailsetup-filter's purge leaves the package): the
        # message must not reach it.  A refused HELO check would end the
        # session before DATA, so "foo" also shows the HELO checks are gone.
        require(state, "scanned_id")
        assert rspamd_workers(bed), "rspamd is not running any more: this test would show nothing"
        res = send(bed, CLEAN_IP, "foo", "bob@client.test", ["%s@%s" % (ADMIN, DOMAIN)])
        assert res["accepted"], "%r\n%s" % (res, diagnostics(bed))
        wait_in_mbox(bed, ADMIN, res["subject"])
        with open(bed.path(RSPAMD_LOG), errors="replace") as f:
            log = f.read()
        # rspamd logs the Message-ID of what it scans (the one before the purge is there)
        assert state["scanned_id"] in log, "rspamd's log has no Message-IDs: this check shows nothing"
        scanned = [line for line in log.splitlines() if res["message_id"] in line]
        assert not scanned, "rspamd still scanned the message:\n" + "\n".join(scanned)


def dkim_verified(bed, raw, script=None):
    """Assert that the delivered message `raw` carries one DKIM signature of
    DOMAIN with SELECTOR, that it verifies against mailsetup-filter's record and
    that a tampered copy does not (VERIFY, or `script` for another body); the
    verifier's answer."""
    sigs = email.message_from_bytes(raw, policy=email.policy.compat32).get_all("DKIM-Signature") or []
    assert len(sigs) == 1, "DKIM-Signature headers: %r\n%s" % (sigs, raw.decode(errors="replace")[:3000])
    tags = dict(t.strip().split("=", 1) for t in re.sub(r"\s+", "", sigs[0]).split(";") if "=" in t)
    assert (tags.get("d"), tags.get("s")) == (DOMAIN, SELECTOR), tags
    with open(bed.path("/root/signed.eml"), "wb") as f:
        f.write(raw)
    res = bed.run("python3 - /root/signed.eml %s" % RECORD, input=script or VERIFY, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    got = json.loads(res.stdout)
    assert got["valid"], "the DKIM signature does not verify: %r" % got
    assert not got["tampered_valid"], "a changed body still verifies: the check checks nothing"
    return got


# Runs in the bed (python3-dkim): verify the delivered message against the
# public key from mailsetup-filter's record file, served by dnsfunc.
VERIFY = r'''
import json, re, sys
import dkim
path, record = sys.argv[1], sys.argv[2]
raw = open(path, "rb").read()
value = "".join(re.findall(r'"([^"]*)"', open(record).read())).encode()
asked = []
def dnsfunc(name, timeout=5):
    name = name.decode() if isinstance(name, bytes) else name
    asked.append(name.rstrip("."))
    return value if name.rstrip(".") == "mail._domainkey.example.test" else None
valid = bool(dkim.verify(raw, dnsfunc=dnsfunc))
tampered = raw.replace(b"signed body", b"changed body")
assert tampered != raw
tampered_valid = bool(dkim.verify(tampered, dnsfunc=dnsfunc))
print(json.dumps({"valid": valid, "tampered_valid": tampered_valid, "asked": asked[:1],
                  "record": value.decode()[:60]}))
'''
