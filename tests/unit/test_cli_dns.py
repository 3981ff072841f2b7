"""`mailsetup dns`: the records built for given inputs (pure), and the command
against a scratch Postfix configuration (the `scratch` fixture: myhostname
old.example.net, so mydomain is example.net), a DKIM record file in
rspamadm's format, a mailbox domains map and a certificate made with openssl
as smtpd_tls_cert_file; the host's addresses are given, not read from the
kernel. --check runs against a stand-in resolver, and a stand-in Postfix
presenting the certificate on port 25 (the real handshake is test_certinfo.py's).
"""

import dataclasses
import datetime
import json
import os
import re
import subprocess
import time

import pytest

from mailsetup import certinfo, i18n

from mailsetup import cli

from mailsetup.dns import cli as cli_dns
from mailsetup.client_services import MailService
from mailsetup.dns.cli import (Record, client_records, domain_records, host_records, split_addresses, txt_strings,
                               zone_lines)
from mailsetup.cli.common import Tools

from test_certinfo import TlsServer, make_certificate, openssl_spki_sha256
from test_i18n import UK_PO

# A 2048-bit RSA public key is 392 base64 characters: the record does not fit one string.
KEY = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA" + "x" * 336 + "IDAQAB"
DKIM_VALUE = "v=DKIM1; k=rsa; p=" + KEY


def rspamadm_record(key=KEY, split=200):
    """A record file as `rspamadm dkim_keygen -s mail -d DOMAIN` prints it."""
    return ('mail._domainkey IN TXT ( "v=DKIM1; k=rsa; "\n'
            f'\t"p={key[:split]}"\n'
            f'\t"{key[split:]}"\n'
            ') ;\n')


# ------------------------------------------------------------------ pure: the records

def test_records_of_a_domain():
    records = domain_records("example.org", "mail.example.org", KEY)
    assert [(r.name, r.type, r.value) for r in records] == [
        ("example.org.", "MX", "10 mail.example.org."),
        ("example.org.", "TXT", "v=spf1 mx -all"),
        ("mail._domainkey.example.org.", "TXT", DKIM_VALUE),
        ("_dmarc.example.org.", "TXT", "v=DMARC1; p=quarantine; rua=mailto:postmaster@example.org"),
    ]
    assert records[0].purpose == "mail for example.org is delivered to mail.example.org"
    assert all(r.purpose and "\n" not in r.purpose for r in records)


def test_records_without_dkim_key_and_with_mta_sts():
    records = domain_records("example.net", "mail.example.org.", None, policy_id="202611270930")
    assert [(r.name, r.type, r.value) for r in records] == [
        ("example.net.", "MX", "10 mail.example.org."),
        ("example.net.", "TXT", "v=spf1 mx -all"),
        ("_dmarc.example.net.", "TXT", "v=DMARC1; p=quarantine; rua=mailto:postmaster@example.net"),
        ("_mta-sts.example.net.", "TXT", "v=STSv1; id=202611270930"),
        ("_smtp._tls.example.net.", "TXT", "v=TLSRPTv1; rua=mailto:postmaster@example.net"),
    ]


def test_mta_sts_policy_and_id():
    assert cli_dns.mta_sts_policy("mail.example.org") == (
        "version: STSv1\nmode: testing\nmx: mail.example.org\nmax_age: 86400\n")
    assert cli_dns.mta_sts_url("example.org") == "https://mta-sts.example.org/.well-known/mta-sts.txt"
    now = datetime.datetime(2026, 11, 27, 9, 30, tzinfo=datetime.timezone.utc)
    assert cli_dns.mta_sts_id(now) == "202611270930"


HOST = "mail.example.net"
SERVICES = [
    MailService("imap", HOST, 993, "SSL"), MailService("imap", HOST, 143, "STARTTLS"),
    MailService("pop3", HOST, 995, "SSL"), MailService("pop3", HOST, 110, "STARTTLS"),
    MailService("smtp", HOST, 465, "SSL"), MailService("smtp", HOST, 587, "STARTTLS"),
]


def test_client_records_for_every_service():
    records = client_records("Example.org", HOST, SERVICES, web=True)
    assert [(r.name, r.type, r.value) for r in records] == [
        ("_imaps._tcp.example.org.", "SRV", "0 1 993 mail.example.net."),
        ("_imap._tcp.example.org.", "SRV", "0 1 143 mail.example.net."),
        ("_pop3s._tcp.example.org.", "SRV", "0 1 995 mail.example.net."),
        ("_pop3._tcp.example.org.", "SRV", "0 1 110 mail.example.net."),
        ("_submissions._tcp.example.org.", "SRV", "0 1 465 mail.example.net."),
        ("_submission._tcp.example.org.", "SRV", "0 1 587 mail.example.net."),
        ("_autodiscover._tcp.example.org.", "SRV", "0 1 443 mail.example.net."),
        ("autoconfig.example.org.", "CNAME", "mail.example.net."),
        ("autodiscover.example.org.", "CNAME", "mail.example.net."),
    ]
    assert records[0].purpose == ("mail programs setting up an address of Example.org find IMAP over TLS at "
                                  "mail.example.net, port 993")
    assert all(r.purpose and "\n" not in r.purpose for r in records)


def test_client_records_of_services_not_offered_and_without_the_webmail():
    offered = [s for s in SERVICES if s.kind == "imap" or s.port == 2525] + [
        MailService("smtp", HOST, 2525, "STARTTLS"), MailService("smtp", HOST, 587, "STARTTLS")]
    records = client_records("example.org", HOST, offered, web=False, mta_sts=True)
    assert [(r.name, r.value) for r in records] == [
        ("_imaps._tcp.example.org.", "0 1 993 mail.example.net."),
        ("_imap._tcp.example.org.", "0 1 143 mail.example.net."),
        ("_pop3s._tcp.example.org.", "0 0 0 ."),
        ("_pop3._tcp.example.org.", "0 0 0 ."),
        ("_submissions._tcp.example.org.", "0 0 0 ."),
        ("_submission._tcp.example.org.", "0 1 2525 mail.example.net."),   # the first one given is preferred
        ("_submission._tcp.example.org.", "10 1 587 mail.example.net."),
    ]
    assert records[2].purpose == "this server offers no POP3 over TLS: the record tells mail programs not to try it"
    # no mailboxes: no records for mail programs; the MTA-STS name only where the webmail serves the policy
    assert client_records("example.org", HOST, [], web=False, mta_sts=True) == []
    assert [(r.name, r.type, r.value) for r in client_records("example.org", HOST, [], web=True, mta_sts=True)] == [
        ("mta-sts.example.org.", "CNAME", "mail.example.net.")]
    assert [r.name for r in client_records("example.org", HOST, SERVICES, web=True, mta_sts=True)][-1] == (
        "mta-sts.example.org.")


def test_tlsa_record():
    cert = certinfo.Certificate(subject=(("CN", "mail.example.org"),), issuer=(), sans=(), serial="01",
                                not_after=datetime.datetime(2027, 3, 1, tzinfo=datetime.timezone.utc),
                                spki_sha256="ab" * 32)
    [record] = cli_dns.tlsa_records("Mail.Example.org.", cert)
    assert (record.name, record.type, record.value) == ("_25._tcp.mail.example.org.", "TLSA", "3 1 1 " + "ab" * 32)
    assert record.purpose.startswith("DANE: when the zone is DNSSEC-signed, other mail servers check the key of ")
    assert "certbot --reuse-key" in record.purpose and "wait for the TTL" in record.purpose
    assert cli_dns.tlsa_records("mail.example.org", None) == []


def test_host_records_ipv4_first():
    records = host_records("mail.example.org", ["2001:db8::25", "203.0.113.5"])
    assert [(r.name, r.type, r.value) for r in records] == [
        ("mail.example.org.", "A", "203.0.113.5"), ("mail.example.org.", "AAAA", "2001:db8::25")]
    assert records[0].purpose == "the mail server mail.example.org has the address 203.0.113.5"


def test_txt_strings_at_most_255_characters():
    assert txt_strings("v=spf1 mx -all") == ["v=spf1 mx -all"]
    parts = txt_strings(DKIM_VALUE)
    assert [len(p) for p in parts] == [255, len(DKIM_VALUE) - 255]
    assert "".join(parts) == DKIM_VALUE
    assert [len(p) for p in txt_strings("a" * 600)] == [255, 255, 90]
    assert txt_strings("a" * 510) == ["a" * 255] * 2
    assert txt_strings("") == [""]


def test_zone_lines():
    mx = Record("example.org.", "MX", "10 mail.example.org.", "")
    assert zone_lines(mx, 14) == ["example.org.   IN MX    10 mail.example.org."]
    spf = Record("example.org.", "TXT", "v=spf1 mx -all", "")
    assert zone_lines(spf, 12) == ['example.org. IN TXT   "v=spf1 mx -all"']
    dkim = Record("mail._domainkey.example.org.", "TXT", DKIM_VALUE, "")
    lines = zone_lines(dkim, 28)
    assert len(lines) == 2
    assert lines[0].startswith('mail._domainkey.example.org. IN TXT   ( "v=DKIM1; k=rsa; p=MIIB')
    assert lines[1].endswith('IDAQAB" )') and lines[1].lstrip().startswith('"')
    strings = re.findall(r'"([^"]*)"', "\n".join(lines))
    assert "".join(strings) == DKIM_VALUE and max(len(s) for s in strings) == 255
    quoted = Record("x.", "TXT", 'a"b\\c', "")
    assert zone_lines(quoted, 2) == ['x. IN TXT   "a\\"b\\\\c"']


IP_JSON = json.dumps([
    {"ifname": "eth0", "addr_info": [
        {"family": "inet", "local": "95.216.10.25", "prefixlen": 24, "scope": "global"},
        {"family": "inet", "local": "192.168.1.5", "prefixlen": 24, "scope": "global"},
        {"family": "inet6", "local": "2a01:4f8::25", "prefixlen": 64, "scope": "global"},
        {"family": "inet6", "local": "2a01:4f8::abcd", "prefixlen": 64, "scope": "global", "temporary": True},
        {"family": "inet6", "local": "2a01:4f8::dead", "prefixlen": 64, "scope": "global", "deprecated": True},
        {"family": "inet6", "local": "fd00::2", "prefixlen": 64, "scope": "global"},
        {"family": "inet6", "local": "fe80::1", "prefixlen": 64, "scope": "link"},
        {},
    ]},
    {"ifname": "eth1", "addr_info": [{"family": "inet", "local": "95.216.10.25", "scope": "global"},
                                     {"family": "inet", "local": "100.64.0.7", "scope": "global"}]},
])


def test_addresses_from_iproute2():
    assert split_addresses(IP_JSON) == (["95.216.10.25", "2a01:4f8::25"],
                                        ["192.168.1.5", "fd00::2", "100.64.0.7"])
    assert split_addresses("") == ([], [])
    assert split_addresses("not json") == ([], [])


def test_documentation_addresses_are_not_called_private():
    """192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 and 2001:db8::/32 stand for public
    addresses in examples and test beds (Python's is_private says otherwise)."""
    ip_json = json.dumps([{"ifname": "veth0", "addr_info": [
        {"family": "inet6" if ":" in address else "inet", "local": address, "scope": "global"}
        for address in ("192.0.2.1", "198.51.100.7", "203.0.113.5", "2001:db8::25", "10.0.0.1", "198.18.0.1")]}])
    assert split_addresses(ip_json) == (["192.0.2.1", "198.51.100.7", "203.0.113.5", "2001:db8::25"],
                                        ["10.0.0.1", "198.18.0.1"])


# ------------------------------------------------------------------ the command

class DnsEnv:
    def __init__(self, system, tmp_path, capsys, monkeypatch):
        self.system = system
        self.tmp = tmp_path
        self.capsys = capsys
        self.monkeypatch = monkeypatch
        self.addresses(["203.0.113.5", "2a01:4f8::25"])
        self.services([], web=False)

    def addresses(self, public, private=()):
        self.monkeypatch.setattr(cli_dns, "kernel_addresses", lambda: (list(public), list(private)))

    def services(self, offered, web=True):
        """What the server offers mail programs (none: no client records), and whether
        mailsetup-webmail serves the autoconfiguration; the host's own readings are not used."""
        self.monkeypatch.setattr(cli_dns.client_services, "services_on", lambda system: list(offered))
        self.monkeypatch.setattr(cli_dns, "webmail_present", lambda: web)

    def main_cf(self, text):
        path = self.system.main_cf_path
        with open(path, "a") as f:
            f.write(text)
        os.utime(path, (time.time() - 60, time.time() - 60))

    def run(self, *argv):
        code = cli.main(list(argv), tools=Tools(self.system))
        out, err = self.capsys.readouterr()
        return code, out, err

    def ok(self, *argv):
        code, out, err = self.run(*argv)
        assert (code, err) == (0, ""), (argv, code, out, err)
        return out

    def refused(self, *argv):
        code, out, err = self.run(*argv)
        assert code == cli.EXIT_PROBLEM, (argv, out, err)
        assert out == ""
        assert err.startswith("mailsetup: ") and err.endswith("\n") and err.count("\n") == 1, err
        return err[len("mailsetup: "):-1]


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    """Two self-signed certificates (the TLSA record does not care who signed): "old" and "new" keys."""
    top = tmp_path_factory.mktemp("certs")
    return {name: make_certificate(top, name, 90, "mail.example.net", ["mail.example.net"])
            for name in ("old", "new")}


@pytest.fixture
def dns_env(scratch, tmp_path, capsys, monkeypatch, certificates):
    """The scratch Postfix (mail.example.net, mail domain example.net), a DKIM key for example.net,
    the mailbox domains example.org and example.net, the public addresses 203.0.113.5 and 2a01:4f8::25,
    the certificate "old" as smtpd_tls_cert_file, which Postfix presents on port 25 (env.served)."""
    system = dataclasses.replace(scratch, dkim_dir=str(tmp_path / "dkim"))
    os.makedirs(system.dkim_dir)
    with open(os.path.join(system.dkim_dir, "example.net.mail.txt"), "w") as f:
        f.write(rspamadm_record())
    os.makedirs(os.path.dirname(system.virtual_domains_map))
    with open(system.virtual_domains_map, "w") as f:
        f.write("# generated by mailsetup from directory.json\nexample.org\tOK\nexample.net\tOK\n")
    env = DnsEnv(system, tmp_path, capsys, monkeypatch)
    env.cert_file = certificates["old"][0]
    env.key = openssl_spki_sha256(env.cert_file)
    env.served = env.cert_file
    monkeypatch.setattr(cli_dns, "served_certificate", lambda host: certinfo.read_file(env.served))
    # and the mtime 60 s back: Postfix waits while it is young
    env.main_cf(f"myhostname = mail.example.net\nsmtpd_tls_cert_file = {env.cert_file}\n")
    return env


EXPECTED_TEXT = """\
; DNS records for the mail of mail.example.net: names are absolute, the TTL is the zone's default.
; the reverse DNS (PTR) of 203.0.113.5, 2a01:4f8::25 should name mail.example.net; it is set by whoever \
provides the address, not in your zone

; the mail server mail.example.net has the address 203.0.113.5
mail.example.net.            IN A     203.0.113.5
; the mail server mail.example.net has the address 2a01:4f8::25
mail.example.net.            IN AAAA  2a01:4f8::25
; DANE: when the zone is DNSSEC-signed, other mail servers check the key of mail.example.net against this \
record; the key is kept when the certificate is renewed (certbot --reuse-key for ACME certificates), so the \
record stays valid; if the key ever changes, publish the new record next to the old one first and wait for the \
TTL before the switch
_25._tcp.mail.example.net.   IN TLSA  3 1 1 {key}

; mail for example.net is delivered to mail.example.net
example.net.                 IN MX    10 mail.example.net.
; SPF: only the servers named by the MX records may send mail from example.net
example.net.                 IN TXT   "v=spf1 mx -all"
; DKIM: the public key that checks the signatures of mail from example.net
mail._domainkey.example.net. IN TXT   ( "{first}"
                                        "{second}" )
; DMARC: mail from example.net that fails SPF and DKIM goes to spam; reports go to postmaster@example.net
_dmarc.example.net.          IN TXT   "v=DMARC1; p=quarantine; rua=mailto:postmaster@example.net"

; mail for example.org is delivered to mail.example.net
example.org.                 IN MX    10 mail.example.net.
; SPF: only the servers named by the MX records may send mail from example.org
example.org.                 IN TXT   "v=spf1 mx -all"
; no DKIM record for example.org: its key is missing ({dkim_dir}/example.org.mail.txt); dpkg-reconfigure \
mailsetup-filter makes it
; DMARC: mail from example.org that fails SPF and DKIM goes to spam; reports go to postmaster@example.org
_dmarc.example.org.          IN TXT   "v=DMARC1; p=quarantine; rua=mailto:postmaster@example.org"
"""


def test_zone_file_for_every_mail_domain(dns_env):
    out = dns_env.ok("dns")
    assert out == EXPECTED_TEXT.format(first=DKIM_VALUE[:255], second=DKIM_VALUE[255:],
                                       dkim_dir=dns_env.system.dkim_dir, key=dns_env.key)


def test_json(dns_env):
    data = json.loads(dns_env.ok("dns", "--json"))
    assert data["host"] == "mail.example.net"
    assert data["addresses"] == ["203.0.113.5", "2a01:4f8::25"]
    assert [(r["name"], r["type"], r["value"]) for r in data["tlsa"]] == [
        ("_25._tcp.mail.example.net.", "TLSA", f"3 1 1 {dns_env.key}")]
    assert data["certificate_file"] == dns_env.cert_file
    assert [d["domain"] for d in data["domains"]] == ["example.net", "example.org"]
    net, org = data["domains"]
    assert net["records"][2] == {
        "name": "mail._domainkey.example.net.", "type": "TXT", "value": DKIM_VALUE,  # unsplit
        "purpose": "DKIM: the public key that checks the signatures of mail from example.net"}
    assert [(r["name"], r["type"]) for r in org["records"]] == [
        ("example.org.", "MX"), ("example.org.", "TXT"), ("_dmarc.example.org.", "TXT")]
    assert org["records"][0]["value"] == "10 mail.example.net."
    assert "mta_sts" not in net
    assert data["notes"][0].startswith("the reverse DNS (PTR) of 203.0.113.5, 2a01:4f8::25 should name ")
    assert data["notes"][1].startswith("no DKIM record for example.org: its key is missing")
    assert len(data["notes"]) == 2


def test_one_domain_and_unknown_domains(dns_env):
    out = dns_env.ok("dns", "Example.ORG.")
    assert re.search(r"\nexample\.org\. +IN MX    10 mail\.example\.net\.\n", out), out
    assert not re.search(r"^(_dmarc\.|mail\._domainkey\.)?example\.net\.", out, re.M), out
    assert re.search(r"\nmail\.example\.net\. +IN A     203\.0\.113\.5\n", out), out  # the host's records stay
    assert [d["domain"] for d in json.loads(dns_env.ok("dns", "example.org", "--json"))["domains"]] == [
        "example.org"]
    assert dns_env.refused("dns", "example.com") == (
        "example.com: not a mail domain of this server (example.net, example.org)")
    assert dns_env.refused("dns", "mail.example.net").startswith("mail.example.net: not a mail domain")


def test_usage_errors(dns_env):
    code, out, err = dns_env.run("dns", "example.org", "example.net")
    assert (code, out) == (cli.EXIT_USAGE, "") and "unrecognized arguments" in err
    assert dns_env.run("dns", "--zone")[0] == cli.EXIT_USAGE


def test_without_mailsetup_imap_and_filter(scratch, tmp_path, capsys, monkeypatch):
    """Only the core's mail domain; no DKIM directory at all: DKIM signing needs mailsetup-filter."""
    system = dataclasses.replace(scratch, dkim_dir=str(tmp_path / "no-dkim"))
    env = DnsEnv(system, tmp_path, capsys, monkeypatch)
    env.main_cf("")
    data = json.loads(env.ok("dns", "--json"))
    assert [d["domain"] for d in data["domains"]] == ["example.net"]
    assert data["host"] == "old.example.net"
    assert "no DKIM record for example.net: signing mail with DKIM needs mailsetup-filter" in data["notes"]
    out = env.ok("dns")
    assert "; no DKIM record for example.net: signing mail with DKIM needs mailsetup-filter\n" in out
    assert "_domainkey" not in out


def test_localdomain_is_skipped(dns_env):
    dns_env.main_cf("mydomain = localdomain\n")
    assert [d["domain"] for d in json.loads(dns_env.ok("dns", "--json"))["domains"]] == [
        "example.org", "example.net"]
    os.unlink(dns_env.system.virtual_domains_map)
    assert dns_env.refused("dns") == (
        "this server has no mail domain whose records could be published (its mail domain is localdomain)")
    assert dns_env.refused("dns", "localdomain").startswith("this server has no mail domain")


def test_no_public_address(dns_env):
    dns_env.addresses([], ["192.168.1.5", "fd00::2"])
    out = dns_env.ok("dns")
    assert " IN A " not in out and " IN AAAA " not in out and "reverse DNS" not in out
    note = ("no public address of mail.example.net found: add its A record (IPv4) and AAAA record (IPv6) by hand, "
            "with the address the Internet reaches it at (a server behind NAT does not know it) (this server has "
            "only private addresses: 192.168.1.5, fd00::2)")
    assert f"\n; {note}\n" in out
    data = json.loads(dns_env.ok("dns", "--json"))
    assert data["addresses"] == [] and note in data["notes"]


def test_notes_for_relayhost_and_loopback_only(dns_env):
    dns_env.main_cf("relayhost = [smtp.example.com]:587\ninet_interfaces = loopback-only\n")
    notes = json.loads(dns_env.ok("dns", "--json"))["notes"]
    assert ("Postfix sends mail out through [smtp.example.com]:587: add what its operator publishes for SPF "
            "(such as include:...) before -all, or mail from these domains may be refused") in notes
    assert ("Postfix does not take mail from the network (inet_interfaces = loopback-only): the MX records "
            "only work once it does") in notes
    assert "\n; Postfix sends mail out through [smtp.example.com]:587: " in dns_env.ok("dns")


def test_mta_sts(dns_env):
    out = dns_env.ok("dns", "example.net", "--mta-sts")
    assert re.search(r'\n_mta-sts\.example\.net\. +IN TXT   "v=STSv1; id=\d{12}"\n', out), out
    assert ('\n_smtp._tls.example.net.      IN TXT   "v=TLSRPTv1; rua=mailto:postmaster@example.net"\n') in out
    assert out.endswith(
        "; MTA-STS: a web server with a valid certificate for mta-sts.example.net must serve this policy at "
        "https://mta-sts.example.net/.well-known/mta-sts.txt:\n"
        ";   version: STSv1\n;   mode: testing\n;   mx: mail.example.net\n;   max_age: 86400\n")
    data = json.loads(dns_env.ok("dns", "example.net", "--mta-sts", "--json"))
    assert data["domains"][0]["mta_sts"] == {
        "url": "https://mta-sts.example.net/.well-known/mta-sts.txt",
        "policy": "version: STSv1\nmode: testing\nmx: mail.example.net\nmax_age: 86400\n"}
    assert [r["type"] for r in data["domains"][0]["records"]][-2:] == ["TXT", "TXT"]


def test_records_for_mail_programs(dns_env):
    dns_env.services(SERVICES, web=True)
    out = dns_env.ok("dns", "example.org", "--mta-sts")
    for line in ("_imaps._tcp.example.org.        IN SRV   0 1 993 mail.example.net.",
                 "_submission._tcp.example.org.   IN SRV   0 1 587 mail.example.net.",
                 "_autodiscover._tcp.example.org. IN SRV   0 1 443 mail.example.net.",
                 "autoconfig.example.org.         IN CNAME mail.example.net.",
                 "mta-sts.example.org.            IN CNAME mail.example.net."):
        assert f"\n{line}\n" in out, out
    assert ("; Thunderbird fetches its settings for example.org from https://autoconfig.example.org/mail/"
            "config-v1.1.xml (the web server's certificate must be valid for that name)\n") in out
    assert out.endswith("; MTA-STS: the policy this server serves at https://mta-sts.example.org/.well-known/"
                        "mta-sts.txt:\n;   version: STSv1\n;   mode: testing\n;   mx: mail.example.net\n"
                        ";   max_age: 86400\n")
    data = json.loads(dns_env.ok("dns", "--json"))
    assert data["services"][0] == {"kind": "imap", "host": "mail.example.net", "port": 993, "socket": "SSL"}
    assert [s["port"] for s in data["services"]] == [993, 143, 995, 110, 465, 587]
    for domain in data["domains"]:
        srv = {r["name"]: r["value"] for r in domain["records"] if r["type"] == "SRV"}
        assert srv[f"_pop3s._tcp.{domain['domain']}."] == "0 1 995 mail.example.net."
        assert [r["name"] for r in domain["records"] if r["type"] == "CNAME"] == [
            f"autoconfig.{domain['domain']}.", f"autodiscover.{domain['domain']}."]


def test_services_read_through_client_services(dns_env, monkeypatch):
    """collect() asks client_services (not a copy of its reading) what the server offers."""
    asked = []
    monkeypatch.setattr(cli_dns.client_services, "services_on", lambda system: asked.append(system) or SERVICES[:1])
    records = json.loads(dns_env.ok("dns", "example.net", "--json"))["domains"][0]["records"]
    assert asked == [dns_env.system]
    assert [r["value"] for r in records if r["type"] == "SRV"] == ["0 1 993 mail.example.net."] + ["0 0 0 ."] * 5


def test_postfix_not_configured(dns_env):
    os.unlink(dns_env.system.main_cf_path)
    assert dns_env.refused("dns") == (
        f"Postfix is not configured: {dns_env.system.main_cf_path} does not exist.")


def test_unreadable_dkim_key(dns_env, monkeypatch):
    def denied(system, domain, selector="mail"):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(cli_dns.dkim, "public_key", denied)
    notes = json.loads(dns_env.ok("dns", "example.net", "--json"))["notes"]
    assert (f"the DKIM key of example.net could not be read ({dns_env.system.dkim_dir}/example.net.mail.txt): "
            "run as root") in notes


# ------------------------------------------------------------------ --check

def test_check_needs_dnspython(dns_env, monkeypatch):
    monkeypatch.setattr(cli_dns, "dnspython_lookup", lambda: None)
    assert dns_env.refused("dns", "--check") == (
        "--check needs python3-dnspython, which is not installed (apt install python3-dnspython)")


class FakeResolver:
    def __init__(self, zone):
        self.zone = zone

    def __call__(self, name, rtype):
        found = self.zone.get((name, rtype), [])
        if isinstance(found, Exception):
            raise found
        return found


def published(dkim=DKIM_VALUE):
    return {
        ("mail.example.net.", "A"): ["203.0.113.5"],
        ("mail.example.net.", "AAAA"): ["2a01:4f8:0::25"],
        ("example.net.", "MX"): ["10 mail.example.net."],
        ("example.net.", "TXT"): ["google-site-verification=abc", "v=spf1 mx -all"],
        ("mail._domainkey.example.net.", "TXT"): [dkim],
        ("_dmarc.example.net.", "TXT"): ["v=DMARC1;p=quarantine; rua=mailto:postmaster@example.net;"],
        ("_25._tcp.mail.example.net.", "TLSA"): [f"3 1 1 {KEYS['old'].upper()}"],
    }


@pytest.fixture(autouse=True)
def keys(certificates):
    """KEYS: the TLSA digests of the certificates "old" and "new"."""
    KEYS.update({name: openssl_spki_sha256(paths[0]) for name, paths in certificates.items()})


KEYS = {}


def test_check_all_published(dns_env, monkeypatch):
    monkeypatch.setattr(cli_dns, "dnspython_lookup", lambda: FakeResolver(published()))
    out = dns_env.ok("dns", "example.net", "--check")
    assert out == ("ok         mail.example.net. A\n"
                   "ok         mail.example.net. AAAA\n"
                   "ok         _25._tcp.mail.example.net. TLSA\n"
                   "ok         example.net. MX\n"
                   "ok         example.net. TXT\n"
                   "ok         mail._domainkey.example.net. TXT\n"
                   "ok         _dmarc.example.net. TXT\n"
                   f"ok         127.0.0.1:25 presents the key of {dns_env.cert_file}\n"
                   "7 of 7 records published as printed; 0 problems\n")


def test_check_problems(dns_env, monkeypatch):
    zone = published(dkim="v=DKIM1; k=rsa; p=OLDKEY")
    zone[("_dmarc.example.net.", "TXT")] = ["v=DMARC1; p=reject"]  # the administrator's choice: not a problem
    del zone[("example.net.", "MX")]
    zone[("mail.example.net.", "AAAA")] = LookupError("timed out")
    monkeypatch.setattr(cli_dns, "dnspython_lookup", lambda: FakeResolver(zone))
    code, out, err = dns_env.run("dns", "example.net", "--check")
    assert (code, err) == (cli.EXIT_PROBLEM, "")
    assert out == ("ok         mail.example.net. A\n"
                   "FAILED     mail.example.net. AAAA  (lookup failed: timed out)\n"
                   "ok         _25._tcp.mail.example.net. TLSA\n"
                   "MISSING    example.net. MX\n"
                   "ok         example.net. TXT\n"
                   'different  mail._domainkey.example.net. TXT  (published: "v=DKIM1; k=rsa; p=OLDKEY")\n'
                   'different  _dmarc.example.net. TXT  (published: "v=DMARC1; p=reject")\n'
                   f"ok         127.0.0.1:25 presents the key of {dns_env.cert_file}\n"
                   "3 of 7 records published as printed; 3 problems\n")
    code, out, _err = dns_env.run("dns", "example.net", "--check", "--json")
    assert code == cli.EXIT_PROBLEM
    check = json.loads(out)["check"]
    assert [c["status"] for c in check] == ["ok", "failed", "ok", "missing", "ok", "different", "different"]
    assert check[1]["error"] == "timed out" and check[3]["published"] == []
    assert check[4]["published"] == ["v=spf1 mx -all"]  # only the SPF record of the TXT records


def test_check_srv_and_cname(dns_env, monkeypatch):
    dns_env.services([s for s in SERVICES if s.kind != "pop3"], web=True)
    zone = published()
    zone.update({
        ("_imaps._tcp.example.net.", "SRV"): ["5 10 993 MAIL.example.net."],   # priority and weight are free
        ("_imap._tcp.example.net.", "SRV"): ["0 1 143 other.example.net."],    # another host: wrong
        ("_pop3s._tcp.example.net.", "SRV"): ["0 0 0 ."],
        ("_pop3._tcp.example.net.", "SRV"): ["0 1 110 mail.example.net."],     # says POP3 is there: wrong
        ("_submissions._tcp.example.net.", "SRV"): ["0 1 465 mail.example.net."],
        ("_autodiscover._tcp.example.net.", "SRV"): ["0 1 443 mail.example.net."],
        ("autoconfig.example.net.", "CNAME"): ["MAIL.example.net."],
        ("autodiscover.example.net.", "CNAME"): ["www.example.net."],          # the administrator's web server
    })
    monkeypatch.setattr(cli_dns, "dnspython_lookup", lambda: FakeResolver(zone))
    code, out, err = dns_env.run("dns", "example.net", "--check")
    assert (code, err) == (cli.EXIT_PROBLEM, "")
    assert out.splitlines()[7:] == [
        "ok         _imaps._tcp.example.net. SRV",
        'different  _imap._tcp.example.net. SRV  (published: "0 1 143 other.example.net.")',
        "ok         _pop3s._tcp.example.net. SRV",
        'different  _pop3._tcp.example.net. SRV  (published: "0 1 110 mail.example.net.")',
        "ok         _submissions._tcp.example.net. SRV",
        "MISSING    _submission._tcp.example.net. SRV",
        "ok         _autodiscover._tcp.example.net. SRV",
        "ok         autoconfig.example.net. CNAME",
        'different  autodiscover.example.net. CNAME  (published: "www.example.net.")',
        f"ok         127.0.0.1:25 presents the key of {dns_env.cert_file}",
        "12 of 16 records published as printed; 3 problems",
    ]


def test_check_tlsa(dns_env, monkeypatch):
    """Any published 3 1 1 record of the key is enough (old and new side by side during a change of key);
    none of it: missing; only others: different, a problem (servers checking DANE would refuse)."""
    zone = published()
    name = ("_25._tcp.mail.example.net.", "TLSA")
    zone[name] = [f"3 1 1 {KEYS['new']}", f"3 1 1 {KEYS['old'][:32]} {KEYS['old'][32:]}"]
    monkeypatch.setattr(cli_dns, "dnspython_lookup", lambda: FakeResolver(zone))
    assert "\nok         _25._tcp.mail.example.net. TLSA\n" in dns_env.ok("dns", "example.net", "--check")
    zone[name] = [f"3 1 1 {KEYS['new']}", f"3 0 1 {KEYS['old']}"]
    code, out, _err = dns_env.run("dns", "example.net", "--check")
    assert code == cli.EXIT_PROBLEM
    assert (f'\ndifferent  _25._tcp.mail.example.net. TLSA  (published: "3 1 1 {KEYS["new"]}" '
            f'"3 0 1 {KEYS["old"]}")\n') in out
    assert out.endswith("6 of 7 records published as printed; 1 problem\n")
    del zone[name]
    code, out, _err = dns_env.run("dns", "example.net", "--check")
    assert code == cli.EXIT_PROBLEM and "\nMISSING    _25._tcp.mail.example.net. TLSA\n" in out


def test_check_the_key_postfix_presents(dns_env, monkeypatch, certificates):
    """The file's key changed without a reload of Postfix: the record printed is the file's, Postfix presents
    the old key: a problem. Postfix not reachable: said, no problem of its own."""
    monkeypatch.setattr(cli_dns, "dnspython_lookup", lambda: FakeResolver(published()))
    dns_env.served = certificates["new"][0]
    code, out, _err = dns_env.run("dns", "example.net", "--check")
    assert code == cli.EXIT_PROBLEM
    assert (f"\ndifferent  127.0.0.1:25 presents another key than {dns_env.cert_file}: the file was changed and "
            "Postfix not reloaded (postfix reload)\n7 of 7 records published as printed; 1 problem\n") in out
    code, out, _err = dns_env.run("dns", "example.net", "--check", "--json")
    served = json.loads(out)["served_key"]
    assert served == {"port": 25, "status": "different", "file": dns_env.cert_file, "file_key": KEYS["old"],
                      "served_key": KEYS["new"], "error": None}

    def refused(host):
        raise certinfo.CertError("no certificate from 127.0.0.1:25: Connection refused")
    monkeypatch.setattr(cli_dns, "served_certificate", refused)
    out = dns_env.ok("dns", "example.net", "--check")
    assert ("\nunknown    127.0.0.1:25: the key Postfix presents is not known (no certificate from 127.0.0.1:25: "
            "Connection refused)\n") in out


def test_served_certificate_is_asked_with_starttls(certificates, monkeypatch):
    """served_certificate() itself, against a real SMTP server with STARTTLS on a free port."""
    server = TlsServer(*certificates["old"], smtp=True)
    try:
        monkeypatch.setattr(cli_dns, "SMTP_PORT", server.port)
        assert cli_dns.served_certificate("mail.example.net").spki_sha256 == KEYS["old"]
        assert server.names == ["mail.example.net"]
    finally:
        server.close()


def test_no_tlsa_record_without_a_certificate(dns_env, tmp_path):
    dns_env.main_cf(f"smtpd_tls_cert_file = {tmp_path}/missing.pem\n")
    out = dns_env.ok("dns")
    assert " IN TLSA " not in out
    assert (f"\n; no TLSA record for mail.example.net: the certificate {tmp_path}/missing.pem could not be read: "
            "No such file or directory\n") in out
    dns_env.main_cf("smtpd_tls_cert_file =\n")
    data = json.loads(dns_env.ok("dns", "--json"))
    assert data["tlsa"] == [] and data["certificate_file"] is None
    assert ("no TLSA record for mail.example.net: Postfix has no certificate (smtpd_tls_cert_file is empty)"
            in data["notes"])
    dns_env.monkeypatch.setattr(cli_dns, "dnspython_lookup", lambda: FakeResolver(published()))
    checked = dns_env.run("dns", "--check")[1]  # no file: no key to compare, no TLSA to look up
    assert "127.0.0.1:25" not in checked and " TLSA\n" not in checked


# ------------------------------------------------------------------ in Ukrainian

@pytest.fixture
def ukrainian(monkeypatch, tmp_path_factory):
    top = tmp_path_factory.mktemp("locale")
    (top / "uk" / "LC_MESSAGES").mkdir(parents=True)
    subprocess.run(["msgfmt", "--check", "-o", str(top / "uk" / "LC_MESSAGES" / "mailsetup.mo"), UK_PO],
                   check=True)
    monkeypatch.setenv(i18n.LOCALEDIR_ENV, str(top))
    monkeypatch.setenv("LANGUAGE", "uk")
    i18n.reset()


def test_in_ukrainian(dns_env, ukrainian):
    out = dns_env.ok("dns", "--mta-sts")
    comments = [line for line in out.splitlines() if line.startswith(";") and not line.startswith(";   ")]
    assert comments
    for line in comments:
        assert re.search("[а-яіїєґ]", line), f"English left in: {line}"
    assert "; пошту для example.org доставляють на mail.example.net\n" in out
    assert "example.org.                 IN MX    10 mail.example.net.\n" in out  # records stay as they are
    assert dns_env.refused("dns", "example.com") == (
        "example.com: не поштовий домен цього сервера (example.net, example.org)")
    data = json.loads(dns_env.ok("dns", "--json"))
    assert set(data) == {"host", "addresses", "tlsa", "certificate_file", "domains", "services",
                         "notes"}  # keys stay English


def test_check_the_mta_sts_policy_served(dns_env, monkeypatch):
    """With --mta-sts, the policy senders fetch is compared with ours (mode and MX hosts;
    max_age is the administrator's); one that cannot be fetched is a problem."""
    monkeypatch.setattr(cli_dns, "dnspython_lookup", lambda: FakeResolver(published()))
    plan = {"domains": [{"domain": "example.net", "mta_sts": {
        "url": "https://mta-sts.example.net/.well-known/mta-sts.txt",
        "policy": "version: STSv1\nmode: testing\nmx: mail.example.net\nmax_age: 86400\n"}}]}
    same = "version: STSv1\r\nmode: testing\r\nmx: MAIL.example.net.\r\nmax_age: 604800\r\n"
    assert [p["status"] for p in cli_dns.check_policies(plan, fetch=lambda url: same)] == ["ok"]
    other = cli_dns.check_policies(plan, fetch=lambda url: same.replace("testing", "enforce"))
    assert other[0]["status"] == "different" and "enforce" in other[0]["error"]

    def unreachable(url):
        raise OSError("certificate verify failed")

    failed = cli_dns.check_policies(plan, fetch=unreachable)
    assert failed[0]["status"] == "failed" and "certificate verify failed" in failed[0]["error"]
    assert not cli_dns.healthy([], None, failed)
    assert cli_dns.check_policies({"domains": [{"domain": "example.net"}]}) == []
