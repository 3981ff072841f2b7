"""Client autoconfiguration: what the server offers (mailsetup/client_services.py, read from
sample `postconf -M` and `doveconf -h protocols` outputs and from a scratch Postfix), and the
files mailsetup-webmail serves (mailsetup/webmail/autoconfig.py), parsed back."""

import dataclasses
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

from mailsetup import client_services
from mailsetup.client_services import MailService, dovecot_protocols, read_services, submission_services
from mailsetup.dns import cli as cli_dns
from mailsetup.webmail import autoconfig
from mailsetup.webmail.autoconfig import autodiscover_php, mta_sts_policy, thunderbird_config

HOST = "mail.example.net"

# `postconf -M` on Debian 12 after mailsetup-imap (as postconf prints it: one line a service,
# -o options on the line, a braced value without its blanks around =).
POSTCONF_M = """\
smtp       inet  n       -       y       -       -       smtpd
submission inet  n       -       y       -       -       smtpd -o syslog_name=postfix/submission \
-o smtpd_tls_security_level=encrypt -o smtpd_sasl_auth_enable=yes
submissions inet n       -       y       -       -       smtpd -o syslog_name=postfix/submissions \
-o smtpd_tls_wrappermode=yes -o smtpd_sasl_auth_enable=yes
pickup     unix  n       -       y       60      1       pickup
smtp       unix  -       -       y       -       -       smtp
127.0.0.1:10025 inet n   -       n       -       -       smtpd -o smtpd_sasl_auth_enable=yes
"""

FULL = [
    MailService("imap", HOST, 993, "SSL"), MailService("imap", HOST, 143, "STARTTLS"),
    MailService("pop3", HOST, 995, "SSL"), MailService("pop3", HOST, 110, "STARTTLS"),
    MailService("smtp", HOST, 465, "SSL"), MailService("smtp", HOST, 587, "STARTTLS"),
]


# ------------------------------------------------------------------ reading the settings

def test_services_from_sample_outputs():
    assert read_services(HOST, POSTCONF_M, "imap pop3 lmtp\n") == FULL


def test_ssl_before_starttls_whatever_the_master_cf_order():
    master = "\n".join(reversed(POSTCONF_M.splitlines()))
    assert read_services(HOST, master, "lmtp pop3 imap") == FULL


def test_only_what_dovecot_serves():
    assert [(s.kind, s.port) for s in read_services(HOST, POSTCONF_M, "imap lmtp")] == [
        ("imap", 993), ("imap", 143), ("smtp", 465), ("smtp", 587)]
    # Dovecot 2.3's protocols.d adds names after an empty $protocols: a leading blank
    assert [s.kind for s in read_services(HOST, "", " pop3\n")] == ["pop3", "pop3"]
    assert read_services(HOST, "", "") == []
    assert read_services(HOST, "", "lmtp") == []


def test_doveconf_output():
    assert dovecot_protocols("imap pop3 lmtp\n") == ["imap", "pop3", "lmtp"]
    assert dovecot_protocols("doveconf: Warning: something is obsolete\nimap lmtp\n") == ["imap", "lmtp"]
    assert dovecot_protocols(None) == ["imap", "pop3"]  # mailsetup-imap's, when doveconf cannot run
    assert dovecot_protocols("") == []


def test_submission_services_read_from_master_cf():
    assert submission_services(POSTCONF_M.splitlines()) == [(587, "STARTTLS"), (465, "SSL")]
    lines = [
        "smtps      inet  n       -       y       -       -       smtpd -o smtpd_tls_wrappermode=yes",
        # a number is the port; the braced form is how postconf prints a value with blanks
        "2525       inet  n       -       y       -       -       smtpd -o {smtpd_client_restrictions="
        "permit_sasl_authenticated, reject} -o smtpd_sasl_auth_enable=yes",
        "25         inet  n       -       y       -       -       smtpd -o smtpd_sasl_auth_enable=yes",
        "587        inet  n       -       y       -       -       smtpd",
        "[::1]:465  inet  n       -       y       -       -       smtpd -o smtpd_tls_wrappermode=yes",
        "localhost:submission inet n - y - - smtpd",
        "10026      inet  n       -       y       -       -       smtpd",  # a content filter's return
        "submission unix  -       -       y       -       -       smtpd",
        "192.0.2.1:submissions inet n - y - - smtpd -o { smtpd_tls_wrappermode = yes }",
        "# submission inet n - y - - smtpd",
    ]
    assert submission_services(lines) == [(465, "SSL"), (2525, "STARTTLS"), (587, "STARTTLS")]


def test_no_submission_in_debians_master_cf(scratch):
    """Debian's master.cf (the scratch copy of this host's) has submission and submissions
    commented out: postconf -M lists only smtp on port 25, which is no submission port."""
    master = subprocess.run(["postconf", "-c", scratch.postfix_config_dir, "-M"], capture_output=True,
                            text=True, check=True).stdout
    if re.search(r"^(submissions?|smtps) ", master, re.M):
        pytest.skip("this host's master.cf enables submission")
    assert re.search(r"^smtp +inet ", master, re.M)
    assert submission_services(master.splitlines()) == []


def scratch_master(scratch, text):
    with open(os.path.join(scratch.postfix_config_dir, "master.cf"), "a") as f:
        f.write(text)


def test_services_on_a_scratch_postfix(scratch, tmp_path, monkeypatch):
    """The real postconf reads master.cf; doveconf's answer is given (no Dovecot on the host)."""
    scratch_master(scratch, "submission inet n - y - - smtpd\n  -o smtpd_tls_security_level=encrypt\n"
                            "submissions inet n - y - - smtpd\n  -o smtpd_tls_wrappermode=yes\n")
    with open(scratch.main_cf_path, "a") as f:
        f.write("myhostname = Mail.Example.NET\n")
    calls = []

    def run(argv, check=True):
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0, "imap pop3 lmtp\n")
    monkeypatch.setattr(scratch, "run", run)
    assert client_services.services_on(scratch) == FULL
    assert calls == [["doveconf", "-h", "protocols"]]


def test_without_doveconf(scratch, tmp_path, monkeypatch):
    """No doveconf: mailsetup-imap's protocols if it has set Dovecot up (its state directory), else none."""
    from mailsetup.errors import CommandFailed

    def missing(argv, check=True):
        raise CommandFailed("doveconf not found")
    system = dataclasses.replace(scratch, imap_state_dir=str(tmp_path / "imap-state"))
    monkeypatch.setattr(system, "run", missing)
    assert client_services.services_on(system) == []
    os.makedirs(system.imap_state_dir)
    assert [(s.kind, s.port) for s in client_services.services_on(system)] == [
        ("imap", 993), ("imap", 143), ("pop3", 995), ("pop3", 110)]

    def failing(argv, check=True):
        return subprocess.CompletedProcess(argv, 89, "doveconf: Fatal: Error in configuration file\n")
    monkeypatch.setattr(system, "run", failing)
    assert [s.kind for s in client_services.services_on(system)] == ["imap", "imap", "pop3", "pop3"]


def test_services_on_without_postfix(tmp_path):
    from mailsetup.system import System
    assert client_services.services_on(System(postfix_config_dir=str(tmp_path / "none"))) == []


# ------------------------------------------------------------------ Thunderbird

def servers(root, tag):
    return [(s.get("type"), s.findtext("hostname"), int(s.findtext("port")), s.findtext("socketType"),
             s.findtext("username"), s.findtext("authentication"))
            for s in root.iter(tag)]


def test_thunderbird_config_lists_every_server_and_domain():
    data = thunderbird_config(["example.net", "Example.ORG."], FULL, "Example & Co <mail>")
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n')
    root = ET.fromstring(data)
    assert (root.tag, root.get("version")) == ("clientConfig", "1.1")
    [provider] = root.findall("emailProvider")
    assert provider.get("id") == "example.net"
    assert [d.text for d in provider.findall("domain")] == ["example.net", "example.org"]
    assert provider.findtext("displayName") == "Example & Co <mail>"  # escaped, and read back whole
    incoming = [(s.kind, s.host, s.port, s.socket, "%EMAILADDRESS%", "password-cleartext")
                for s in FULL if s.kind != "smtp"]
    outgoing = [(s.kind, s.host, s.port, s.socket, "%EMAILADDRESS%", "password-cleartext")
                for s in FULL if s.kind == "smtp"]
    assert servers(provider, "incomingServer") == incoming
    assert servers(provider, "outgoingServer") == outgoing
    # every server of the file is one of those offered, first SSL
    assert [s[3] for s in servers(provider, "incomingServer")] == ["SSL", "STARTTLS", "SSL", "STARTTLS"]


def test_thunderbird_config_only_what_is_offered():
    offered = [s for s in FULL if s.kind == "imap" or (s.kind == "smtp" and s.port == 587)]
    root = ET.fromstring(thunderbird_config(["example.net"], offered, "Mail"))
    assert [(s[0], s[2]) for s in servers(root, "incomingServer")] == [("imap", 993), ("imap", 143)]
    assert [(s[0], s[2], s[3]) for s in servers(root, "outgoingServer")] == [("smtp", 587, "STARTTLS")]


def test_thunderbird_config_refuses_what_it_cannot_write():
    with pytest.raises(ValueError):
        thunderbird_config([], FULL, "Mail")
    with pytest.raises(ValueError):
        thunderbird_config(["example.net"], [MailService("imap", HOST, 993, "plain")], "Mail")
    with pytest.raises(ValueError):
        thunderbird_config(["example.net"], [MailService("imap", "mail.example.net\n<x>", 993, "SSL")], "Mail")
    with pytest.raises(ValueError):
        thunderbird_config(["example.net"], [MailService("imap", HOST, 0, "SSL")], "Mail")


# ------------------------------------------------------------------ Outlook

def test_autodiscover_php_holds_the_settings():
    text = autodiscover_php(FULL).decode()
    assert text.startswith("<?php\n") and "?>\n" not in text.replace("?>', \"\\n\";", "")
    assert "header('Content-Type: application/xml; charset=utf-8');" in text
    rows = re.findall(r"^    \['(\w+)', '([^']+)', '(\d+)', '(on|off)', '(SSL|TLS)'\],$", text, re.M)
    assert rows == [("IMAP", HOST, "993", "on", "SSL"), ("POP3", HOST, "995", "on", "SSL"),
                    ("SMTP", HOST, "465", "on", "SSL")]
    assert "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006" in text
    assert "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a" in text
    starttls = autodiscover_php([s for s in FULL if s.socket == "STARTTLS"]).decode()
    assert re.findall(r"^    \[.*\],$", starttls, re.M) == [
        f"    ['IMAP', '{HOST}', '143', 'off', 'TLS'],", f"    ['POP3', '{HOST}', '110', 'off', 'TLS'],",
        f"    ['SMTP', '{HOST}', '587', 'off', 'TLS'],"]


def test_autodiscover_php_escapes_for_xml_and_php():
    assert autoconfig.php_string("a'b\\c") == "'a\\'b\\\\c'"
    assert autoconfig.xml_text("<a & 'b'>") == "&lt;a &amp; &apos;b&apos;&gt;"
    assert autoconfig.php_string(autoconfig.xml_text("x'&")) == "'x&apos;&amp;'"


def test_autodiscover_php_echoes_the_request_only_checked_and_escaped():
    text = autodiscover_php(FULL).decode()
    # the request body goes into one regex match, never into the output
    assert text.count("$request") == 2
    assert "$_" not in text  # no superglobal ($_POST, $_GET, $_SERVER) is read
    uses = re.findall(r".*\$address\b.*", text)
    assert uses[0].strip().startswith("$address = html_entity_decode($found[1], ENT_XML1 | ENT_QUOTES")
    assert all("preg_match" in u or "strlen" in u or "strpos" in u or "htmlspecialchars" in u for u in uses[1:]), uses
    assert "        $login = htmlspecialchars($address, ENT_XML1 | ENT_QUOTES, 'UTF-8');" in text
    echoes = [line for line in text.splitlines() if line.lstrip().startswith("echo")]
    assert echoes and all("$request" not in e and "$found" not in e and "$_" not in e for e in echoes)
    assert "echo '        <LoginName>', $login, '</LoginName>', \"\\n\";" in text


ADDRESS = re.compile(autoconfig.ADDRESS_PATTERN.strip("/").replace(r"\A", "^").replace(r"\z", r"\Z")
                     .replace(r"\/", "/"))


@pytest.mark.parametrize("address, ok", [
    ("alice@example.net", True), ("o'brien+x&y@mail.example.org", True), ("a.b@xn--p1ai.example", True),
    ("<script>@example.net", False), ('alice@example.net"><x', False), ("alice@@example.net", False),
    ("alice@example", False), (".alice@example.net", False), ("alice@-example.net", False),
    ("alice example@example.net", False), ("alice@example.net\n", False),
])
def test_address_pattern(address, ok):
    """The PCRE the script uses, read by Python's re (the same syntax for this pattern)."""
    assert bool(ADDRESS.match(address)) is ok


PHP = shutil.which("php")


@pytest.mark.skipif(PHP is None, reason="php-cli is not installed")
def test_autodiscover_php_runs(tmp_path):
    """php -l, then the script with a request on stdin (php://input is empty for the CLI)."""
    script = tmp_path / "autodiscover.php"
    script.write_bytes(autodiscover_php(FULL))
    subprocess.run([PHP, "-n", "-l", str(script)], check=True, capture_output=True)
    cli_script = tmp_path / "cli.php"
    cli_script.write_text(script.read_text().replace("php://input", "php://stdin"))
    ns = "{http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a}"
    for address, login in (("alice@example.net", "alice@example.net"), ("o'b&c@example.net", "o'b&c@example.net"),
                           ("<x>@example.net", None), ("", None)):
        request = ('<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http://schemas.microsoft.com/'
                   'exchange/autodiscover/outlook/requestschema/2006"><Request><EMailAddress>'
                   + address.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
                   + "</EMailAddress></Request></Autodiscover>")
        out = subprocess.run([PHP, "-n", str(cli_script)], input=request, capture_output=True, text=True, check=True)
        root = ET.fromstring(out.stdout)
        protocols = [(p.findtext(ns + "Type"), p.findtext(ns + "Server"), p.findtext(ns + "Port"),
                      p.findtext(ns + "SSL"), p.findtext(ns + "LoginName")) for p in root.iter(ns + "Protocol")]
        want = [(t, HOST, p, "on", login) for t, p in (("IMAP", "993"), ("POP3", "995"), ("SMTP", "465"))]
        assert protocols == want, (address, out.stdout)


# ------------------------------------------------------------------ MTA-STS

def test_mta_sts_policy_shared_with_mailsetup_dns():
    assert autoconfig.mta_sts_policy is cli_dns.mta_sts_policy
    assert mta_sts_policy([HOST]) == "version: STSv1\nmode: testing\nmx: mail.example.net\nmax_age: 86400\n"
    assert mta_sts_policy(["MX1.example.net.", "mx2.example.net", "mx1.example.net"], "enforce", 604800) == (
        "version: STSv1\nmode: enforce\nmx: mx1.example.net\nmx: mx2.example.net\nmax_age: 604800\n")
    assert mta_sts_policy(HOST) == mta_sts_policy([HOST])
    for bad in ({"mode": "strict"}, {"max_age": -1}, {"max_age": 31557601}, {"max_age": "86400"}):
        with pytest.raises(ValueError):
            mta_sts_policy([HOST], **bad)
    with pytest.raises(ValueError):
        mta_sts_policy([])
