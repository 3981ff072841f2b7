"""End-to-end: mailsetup-webmail with the whole stack (mailsetup, mailsetup-imap,
mailsetup-filter) in one Debian booted with systemd, used the way people do:
in a browser (headless Chromium, tests/e2e/browser.py) and with mail programs
that set themselves up from the server's autoconfiguration.

One container per release; the stack is installed in one `apt-get install`,
with the webmail in Ukrainian (preseeded). The browser and the clients run on
the host (Debian's chromium, chromium-driver, python3-selenium, python3) inside
the container's network namespace, where every name resolves to 127.0.0.1.

What is checked is what a person notices: plain HTTP only redirects; a wrong
password is refused in Ukrainian; alice reads mail sent to her over SMTP and
sends to bob, who gets it over IMAP; a vacation reply goes out exactly once; a
filter files mail from one sender into a folder; "mark as junk" in the webmail
and a move into Junk in an IMAP client teach rspamd; a password changed in the
webmail is the one IMAP takes; the autoconfiguration answers name the server's
real ports and a login made from them works; purge gives nginx its default site
back. A screenshot of the inbox stays with the test logs.
"""

import json
import os
import re
import time
import shlex
import xml.etree.ElementTree as ET

import pytest

from .steps import retry_on_apt_lock, token
from .test_filter import TEST_PATTERNS, apt_ok, apt_private, bayes_learned, start_dns
from .test_filter import send as send_smtp
from .test_imap import (CORE_ANSWERS, DOMAIN, HOSTNAME, client, submit, wait_in_mailbox,
                        wait_until)
from .test_stack import ALICE, ALICE_PW, BOB, BOB_PW, DNSMASQ_CONFIG, OUTSIDE_IP, OUTSIDE_NAME, OUTSIDER, \
    from_outside, set_up_users
from .test_stack import healthy as stack_healthy
from .testbed import APT, HOST_PYTHON

HERE = os.path.dirname(os.path.abspath(__file__))
BROWSER = os.path.join(HERE, "browser.py")
PACKAGES = ("mailsetup", "mailsetup-imap", "mailsetup-filter", "mailsetup-webmail")
TOOLS = ("dnsmasq-base", "python3")  # python3: the DNS probe, before the packages bring it
URL = "https://%s/webmail/" % HOSTNAME
WEBMAIL_ANSWERS = ["mailsetup-webmail mailsetup-webmail/language string uk_UA"]
ALICE_NEW_PW = "alice-Changed-3"
# The sender alice's filter files into a folder (carol, OUTSIDER, sends everything else).
CLIENT = "dave@client.test"
# Dovecot's line for a login over 127.0.0.1 (Roundcube's, with our settings; Debian's
# "localhost:143" comes from ::1).
LOOPBACK_LOGIN = r"imap-login: Log(?:in|ged in): user=<%s>.*rip=127\.0\.0\.1"
# rspamd's Bayes learns only messages with enough words in them.
WORDY = ("This message has enough ordinary words in it for the statistical filter to learn "
         "from it, as a person would write about a meeting next week and the agenda for it.\n")


# ---------------------------------------------------------------------------
# The bed and the people
# ---------------------------------------------------------------------------

def prepare(bed):
    apt_ok(apt_private_download(bed, PACKAGES + TOOLS))
    apt_ok(apt_private(bed, "install " + " ".join(TOOLS)))
    bed.run("cat >/etc/resolv.conf", input="nameserver 127.0.0.1\n")
    bed.run("mkdir -p /etc/rspamd/override.d && cat >/etc/rspamd/override.d/options.inc",
            input=TEST_PATTERNS[bed.suite])
    bed.preseed(CORE_ANSWERS + WEBMAIL_ANSWERS)
    start_dns(bed, DNSMASQ_CONFIG, probe=(OUTSIDE_NAME, OUTSIDE_IP))
    bed.run_host_in_netns(["ip", "addr", "add", OUTSIDE_IP + "/32", "dev", "lo"])


def apt_private_download(bed, packages):
    return retry_on_apt_lock(lambda: bed.run(APT + " install --download-only " + " ".join(packages),
                                             net="host", check=False))


def browse(bed, action, user=ALICE, password=ALICE_PW, **params):
    """One visit of the webmail in a fresh headless Chromium; the JSON answer of browser.py."""
    params.update(action=action, base=URL, user=user, password=password,
                  profile="/tmp/mailsetup-chromium-%s" % token("p"),
                  failure_screenshot=os.path.join(bed.logs, "browser-%s-failed.png" % action))
    res = bed.run_host_in_netns([HOST_PYTHON, BROWSER], input=json.dumps(params), check=False, timeout=180)
    assert res.returncode == 0, "browser.py %s failed (exit %d):\n%s\n%s" % (
        action, res.returncode, res.stderr[-3000:], bed.diagnostics())
    answer = json.loads(res.stdout)
    assert "error" not in answer, "in the browser (%s): %r\n%s" % (action, answer, bed.diagnostics())
    return answer


HTTP_CLIENT = r'''
import http.client, json, socket, ssl, sys
p = json.load(sys.stdin)
out = {}
if p["op"] == "http":
    c = http.client.HTTPConnection("127.0.0.1", 80, timeout=20)
    c.request("GET", p["path"], headers={"Host": p["host"]})
    r = c.getresponse()
    out = {"status": r.status, "location": r.getheader("Location"), "body": r.read().decode(errors="replace")}
elif p["op"] == "https":
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    c = http.client.HTTPSConnection("127.0.0.1", 443, timeout=20, context=ctx)
    c.request(p.get("method", "GET"), p["path"], body=p.get("body"),
              headers={"Host": p["host"], "Content-Type": "text/xml"})
    r = c.getresponse()
    out = {"status": r.status, "headers": dict(r.getheaders()), "body": r.read().decode(errors="replace")}
elif p["op"] == "tls":
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = getattr(ssl.TLSVersion, p["min"])
    ctx.maximum_version = getattr(ssl.TLSVersion, p["max"])
    try:
        ctx.set_ciphers("ALL:@SECLEVEL=0")
        with socket.create_connection(("127.0.0.1", p["port"]), timeout=20) as s:
            with ctx.wrap_socket(s, server_hostname=p["host"]) as t:
                out = {"handshake": True, "version": t.version()}
    except (ssl.SSLError, OSError) as err:
        out = {"handshake": False, "error": str(err)}
print(json.dumps(out))
'''


def web(bed, op, **params):
    params["op"] = op
    res = bed.run_host_in_netns([HOST_PYTHON, "-c", HTTP_CLIENT], input=json.dumps(params), check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout)


def healthy(bed):
    """The stack healthy as test_stack checks it, nginx too, and the webmail in the status."""
    stack_healthy(bed)
    assert bed.is_active("nginx"), bed.diagnostics()
    res = bed.run("mailsetup status", check=False)
    assert res.returncode == 0 and "Webmail: %s" % URL in res.stdout, res.stdout + res.stderr
    return res.stdout


def journal_count(bed, pattern):
    return len(re.findall(pattern, bed.journal("-u dovecot")))


def imap(bed, op, user, password, **params):
    return client(bed, op, mode="ssl", user=user, password=password, **params)


IMAP_MOVE = r'''
import imaplib, json, ssl, sys
p = json.load(sys.stdin)
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
c = imaplib.IMAP4_SSL("127.0.0.1", 993, ssl_context=ctx, timeout=30)
c.login(p["user"], p["password"])
out = {}
if p["op"] == "create":
    out["create"] = c.create(p["folder"])[0]
    out["subscribe"] = c.subscribe(p["folder"])[0]
else:
    c.select(p["source"])
    typ, data = c.search(None, "SUBJECT", '"%s"' % p["subject"])
    nums = data[0].split()
    out["found"] = len(nums)
    if nums:
        out["move"] = c.copy(nums[0], p["target"])[0]
        c.store(nums[0], "+FLAGS", "\\Deleted")
        c.expunge()
c.logout()
print(json.dumps(out))
'''


def imap_do(bed, op, **params):
    params["op"] = op
    res = bed.run_host_in_netns([HOST_PYTHON, "-c", IMAP_MOVE], input=json.dumps(params), check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout)


def learned(bed, kind):
    """How many messages rspamd's BAYES_SPAM or BAYES_HAM statistics learned."""
    if kind == "spam":
        return bayes_learned(bed)
    out = bed.run("rspamc -h 127.0.0.1:11334 -t 30 stat").stdout
    found = re.search(r"Statfile: BAYES_HAM\b.*?learned: (\d+)", out, re.S)
    assert found, out
    return int(found.group(1))


# ---------------------------------------------------------------------------
# The tests
# ---------------------------------------------------------------------------

class TestWebmail:

    @pytest.fixture(scope="class")
    def bed(self, new_booted_bed):
        bed = new_booted_bed(hostname="mail", domain=DOMAIN)
        prepare(bed)
        yield bed

    @pytest.fixture(scope="class")
    def state(self):
        return {}

    def require(self, state):
        if not state.get("installed"):
            pytest.fail("the install failed; see its test", pytrace=False)

    def test_install_sets_up_the_webmail_and_says_where(self, bed, state):
        res = apt_private(bed, "install " + " ".join(PACKAGES))
        apt_ok(res)
        # the report: the address to open, what to type into a mail program
        report = res.stdout + res.stderr
        assert URL in report, report[-3000:]
        assert "993" in report and "465" in report, report[-3000:]
        assert not re.search(r"^Inst apache2", res.stdout, re.M) and not bed.exists("/usr/sbin/apache2"), \
            "apache2 came along with the webmail"
        set_up_users(bed)
        healthy(bed)
        state["installed"] = True

    def test_plain_http_only_redirects_to_https(self, bed, state):
        self.require(state)
        for path in ("/", "/webmail/", "/webmail/?_task=login", "/.well-known/autoconfig/mail/config-v1.1.xml",
                     "/autodiscover/autodiscover.xml", "/.well-known/mta-sts.txt", "/index.html"):
            got = web(bed, "http", host=HOSTNAME, path=path)
            assert got["status"] == 301 and got["location"] == "https://%s%s" % (HOSTNAME, path), (path, got)
            assert "roundcube" not in got["body"].lower() and "nginx" not in got["body"].lower() or \
                "301" in got["body"], got
        # by address too: no page of nginx's default site
        got = web(bed, "http", host="127.0.0.1", path="/")
        assert got["status"] == 301, got

    def test_https_is_tls_1_2_or_later_with_hsts(self, bed, state):
        self.require(state)
        got = web(bed, "https", host=HOSTNAME, path="/webmail/")
        assert got["status"] == 200 and "Roundcube" in got["body"], got["status"]
        assert got["headers"].get("Strict-Transport-Security", "").startswith("max-age="), got["headers"]
        assert web(bed, "tls", host=HOSTNAME, port=443, min="TLSv1_2", max="TLSv1_2")["handshake"]
        for old in ("TLSv1", "TLSv1_1"):
            got = web(bed, "tls", host=HOSTNAME, port=443, min=old, max=old)
            assert not got["handshake"], (old, got)
        # the des_key Debian's roundcube-core made for this machine, not the sample's
        config = bed.read_file("/etc/roundcube/config.inc.php")
        key = re.search(r"\$config\['des_key'\] = '([^']*)';", config).group(1)
        assert key and key != "rcmail-!24ByteDESkey*Str"

    def test_a_wrong_password_is_refused_in_ukrainian(self, bed, state):
        self.require(state)
        got = browse(bed, "login", password="not-" + ALICE_PW)
        assert not got["ok"], got
        translation = bed.read_file("/usr/share/roundcube/program/localization/uk_UA/messages.inc")
        expected = re.search(r"\$messages\['loginfailed'\]\s*=\s*'([^']*)';", translation).group(1)
        assert expected in got["message"] and got["lang"] == "uk", got

    def test_alice_reads_mail_from_outside_and_sends_to_bob(self, bed, state):
        self.require(state)
        subject = token("to-alice")
        res = from_outside(bed, [ALICE], subject=subject)
        assert res["accepted"], res
        wait_in_mailbox(bed, ALICE, subject)
        logins_before = journal_count(bed, LOOPBACK_LOGIN % re.escape(ALICE))
        got = browse(bed, "inbox", wait_for=subject, screenshot=os.path.join(bed.logs, "inbox.png"))
        assert got["ok"] and subject in got["subjects"], got
        assert os.path.getsize(os.path.join(bed.logs, "inbox.png")) > 0
        # Roundcube logged in over IMAPS on loopback (127.0.0.1:993, our settings over Debian's)
        assert journal_count(bed, LOOPBACK_LOGIN % re.escape(ALICE)) > logins_before, bed.journal("-u dovecot")[-3000:]
        subject = token("alice-to-bob")
        got = browse(bed, "send", to=BOB, subject=subject, body="Hello Bob, from the webmail.")
        assert got.get("sent"), got
        wait_in_mailbox(bed, BOB, subject)
        seen = imap(bed, "imap", BOB, BOB_PW)
        assert seen["login"] and subject in seen["subjects"], seen

    def test_a_vacation_reply_goes_out_exactly_once(self, bed, state):
        self.require(state)
        got = browse(bed, "vacation", subject="Away this week", body="I read my mail next Monday.")
        assert got["ok"], got
        replies = r"sent vacation response to <%s>" % re.escape(OUTSIDER)
        before = journal_count(bed, replies)
        for n in range(2):
            subject = token("while-away")
            assert from_outside(bed, [ALICE], subject=subject)["accepted"]
            wait_in_mailbox(bed, ALICE, subject)
        wait_until("a vacation reply to %s" % OUTSIDER, lambda: journal_count(bed, replies) > before, bed)
        time.sleep(2)
        assert journal_count(bed, replies) == before + 1, bed.journal("-u dovecot")[-3000:]

    def test_a_filter_files_mail_from_one_sender_into_a_folder(self, bed, state):
        self.require(state)
        assert imap_do(bed, "create", user=ALICE, password=ALICE_PW, folder="Clients")["create"] == "OK"
        got = browse(bed, "filter", name="clients", folder="Clients", **{"from": CLIENT})
        assert got["ok"] and "Clients" in got["folders"], got
        subject = token("from-dave")
        assert send_smtp(bed, OUTSIDE_IP, OUTSIDE_NAME, CLIENT, [ALICE], subject=subject)["accepted"]
        wait_until("%s in Clients" % subject, lambda: subject in imap(
            bed, "imap", ALICE, ALICE_PW, folder="Clients").get("subjects", []), bed)
        assert subject not in imap(bed, "imap", ALICE, ALICE_PW)["subjects"]

    def test_junk_teaches_rspamd_from_the_webmail_and_from_an_imap_client(self, bed, state):
        self.require(state)
        spam_before = learned(bed, "spam")
        subject = token("junk-webmail")
        assert from_outside(bed, [ALICE], subject=subject, body=WORDY + "Buy cheap watches now.\n")["accepted"]
        wait_in_mailbox(bed, ALICE, subject)
        got = browse(bed, "junk", subject=subject)
        assert got.get("found") and got.get("enabled"), got
        # Roundcube then shows the next message: the folder says where it went
        wait_until("%s in Junk" % subject, lambda: subject in imap(
            bed, "imap", ALICE, ALICE_PW, folder="Junk").get("subjects", []), bed)
        wait_until("rspamd learned the junk", lambda: learned(bed, "spam") > spam_before, bed, timeout=60)
        # an IMAP client: into Junk (spam), and one out of Junk again (ham)
        spam_before = learned(bed, "spam")
        subject = token("junk-imap")
        assert from_outside(bed, [ALICE], subject=subject, body=WORDY + "Cheap loans for everyone.\n")["accepted"]
        wait_in_mailbox(bed, ALICE, subject)
        assert imap_do(bed, "move", user=ALICE, password=ALICE_PW, source="INBOX", target="Junk",
                       subject=subject)["found"] == 1
        wait_until("rspamd learned the move into Junk", lambda: learned(bed, "spam") > spam_before, bed, timeout=60)
        ham_before = learned(bed, "ham")
        assert imap_do(bed, "move", user=ALICE, password=ALICE_PW, source="Junk", target="INBOX",
                       subject=subject)["found"] == 1
        wait_until("rspamd learned the move out of Junk", lambda: learned(bed, "ham") > ham_before, bed, timeout=60)

    def test_clients_set_themselves_up_from_the_autoconfiguration(self, bed, state):
        self.require(state)
        for host, path in ((HOSTNAME, "/.well-known/autoconfig/mail/config-v1.1.xml"),
                           ("autoconfig." + DOMAIN, "/mail/config-v1.1.xml")):
            got = web(bed, "https", host=host, path=path + "?emailaddress=" + ALICE)
            assert got["status"] == 200, (host, got)
            servers = thunderbird_servers(got["body"])
            assert ("imap", HOSTNAME, 993, "SSL") in servers and ("smtp", HOSTNAME, 465, "SSL") in servers, servers
            for kind, server, port, socket_type in servers:
                assert_login_works(bed, kind, port, socket_type)
        request = ("<?xml version=\"1.0\"?><Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/"
                   "outlook/requestschema/2006\"><Request><EMailAddress>%s</EMailAddress><AcceptableResponseSchema>"
                   "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
                   "</AcceptableResponseSchema></Request></Autodiscover>" % ALICE)
        got = web(bed, "https", host="autodiscover." + DOMAIN, path="/autodiscover/autodiscover.xml", method="POST",
                  body=request)
        assert got["status"] == 200, got
        protocols = outlook_protocols(got["body"])
        assert protocols, got["body"]
        for kind, server, port, ssl_on, login in protocols:
            assert server == HOSTNAME and login == ALICE, protocols
            assert_login_works(bed, kind, port, "SSL" if ssl_on else "STARTTLS")
        assert "mode:" in web(bed, "https", host="mta-sts." + DOMAIN, path="/.well-known/mta-sts.txt")["body"]

    def test_a_password_changed_in_the_webmail_is_the_one_imap_takes(self, bed, state):
        self.require(state)
        got = browse(bed, "password", new_password=ALICE_NEW_PW)
        assert got["ok"], got
        wait_until("the new password works", lambda: imap(bed, "imap", ALICE, ALICE_NEW_PW)["login"], bed)
        assert not imap(bed, "imap", ALICE, ALICE_PW)["login"]
        assert browse(bed, "login", password=ALICE_NEW_PW)["ok"]
        # no password on disk in clear, and the web server cannot write the directory
        found = bed.run("grep -rlF %s /var/lib/mailsetup-imap /etc/mailsetup" % shlex.quote(ALICE_NEW_PW),
                        check=False)
        assert found.returncode == 1, "the new password in clear in %s" % found.stdout
        for db in ("directory.sqlite", "passwords.sqlite"):
            res = bed.run("runuser -u www-data -- sh -c 'echo x >> /var/lib/mailsetup-imap/directory/%s'" % db,
                          check=False)
            assert res.returncode != 0, "www-data can write " + db

    def test_everything_is_healthy_after_use(self, bed, state):
        self.require(state)
        status = healthy(bed)
        assert "nginx" in status and "fpm" in status.lower(), status
        journal = bed.journal("-u nginx -u 'php*-fpm'")
        assert not re.search(r"\[(emerg|alert|crit)\]", journal), journal[-3000:]

    def test_purge_gives_nginx_its_default_site_back(self, bed, state):
        self.require(state)
        apt_ok(apt_private(bed, "purge mailsetup-webmail"))
        assert bed.run("readlink /etc/nginx/sites-enabled/default").stdout.strip() == \
            "/etc/nginx/sites-available/default"
        for path in ("/etc/nginx/sites-enabled/mailsetup-webmail", "/etc/nginx/sites-available/mailsetup-webmail",
                     "/etc/mailsetup/webmail", "/var/lib/mailsetup-webmail"):
            assert not bed.exists(path), path
        assert bed.is_active("nginx") and not bed.failed_units(), bed.diagnostics()
        got = web(bed, "http", host="127.0.0.1", path="/")
        assert got["status"] == 200 and "nginx" in got["body"].lower(), got
        out = bed.run("debconf-show roundcube-core").stdout
        assert "ssl://127.0.0.1:993" not in out, out


def thunderbird_servers(text):
    """(kind, host, port, socketType) of every server in a config-v1.1.xml."""
    root = ET.fromstring(text)
    found = []
    for element in root.iter():
        if element.tag in ("incomingServer", "outgoingServer"):
            found.append((element.get("type"), element.findtext("hostname"), int(element.findtext("port")),
                          element.findtext("socketType")))
            assert element.findtext("username") == "%EMAILADDRESS%", ET.tostring(element)
    return found


def outlook_protocols(text):
    """(kind, server, port, ssl on, login name) of every Protocol in an autodiscover answer."""
    root = ET.fromstring(text)
    found = []
    for element in root.iter():
        if element.tag.endswith("}Protocol"):
            def field(name):
                for child in element:
                    if child.tag.endswith("}" + name):
                        return (child.text or "").strip()
                return None
            found.append((field("Type").lower(), field("Server"), int(field("Port")), field("SSL") == "on",
                          field("LoginName")))
    return found


def assert_login_works(bed, kind, port, socket_type):
    """A login with alice's address and password as the autoconfiguration says."""
    password = ALICE_PW
    if kind == "imap":
        got = client(bed, "imap", mode="ssl" if socket_type == "SSL" else "starttls", port=port, user=ALICE,
                     password=password)
        assert got["login"], (kind, port, socket_type, got)
    elif kind == "pop3":
        got = client(bed, "pop3", mode="ssl" if socket_type == "SSL" else "stls", port=port, user=ALICE,
                     password=password)
        assert got["login"], (kind, port, socket_type, got)
    else:
        got = submit(bed, ALICE, password, ALICE, [BOB], token("autoconfig-%d" % port), port=port,
                     mode="ssl" if socket_type == "SSL" else "starttls")
        assert got["accepted"], (kind, port, socket_type, got)
