"""End-to-end: certificates from an ACME CA (mailsetup-imap's tls_source acme),
in one Debian booted with systemd per release.

The CA is Debian's pebble (RFC 8555 test server), run inside the bed on
loopback; its own HTTPS certificate comes from a test CA that the bed trusts
the way an internal CA is trusted (/usr/local/share/ca-certificates). dnsmasq
in the bed resolves the server's names to 127.0.0.1, where pebble checks the
HTTP-01 answers: nothing leaves the machine.

What is checked is what a user notices: with the acme choice preseeded, the
install gets a certificate for the server's name and the webmail's names;
25 (STARTTLS), 465, 587, 993, 995 and 443 present it, valid for pebble's root;
`mailsetup dns` prints the TLSA record of the key they present; a renewal
(what certbot's timer runs, forced) is presented on every port without a
manual step and with the same key; a CA that cannot be reached is refused in
one line and the services keep the certificate; back to snakeoil works;
testssl.sh finds only TLS 1.2/1.3 and no NULL, anonymous, export, low, 3DES
or CBC ciphers on any port; purge removes our hook and keeps the certificate.
"""

import json
import re

import pytest

from .test_filter import apt_ok, apt_private, start_dns, DNSMASQ_BASE
from .test_imap import CORE_ANSWERS, DOMAIN, HOSTNAME, wait_until
from .test_webmail import apt_private_download

PACKAGES = ("mailsetup", "mailsetup-imap", "mailsetup-webmail")
TOOLS = ("dnsmasq-base", "pebble", "openssl", "ca-certificates", "testssl.sh", "python3", "certbot")
CLIENT_NAMES = ["autoconfig." + DOMAIN, "autodiscover." + DOMAIN, "mta-sts." + DOMAIN]
DNSMASQ_CONFIG = DNSMASQ_BASE + "".join("host-record=%s,127.0.0.1\n" % name
                                        for name in [HOSTNAME] + CLIENT_NAMES)
ACME_URL = "https://localhost:14000/dir"
WRONG_URL = "https://localhost:14999/dir"
PEBBLE_CONFIG = {"pebble": {
    "listenAddress": "127.0.0.1:14000", "managementListenAddress": "127.0.0.1:15000",
    "certificate": "/etc/pebble/cert.pem", "privateKey": "/etc/pebble/key.pem",
    # pebble checks HTTP-01 answers on port 80 (its default, 5002, is for its own tests)
    "httpPort": 80, "tlsPort": 443, "ocspResponderURL": "", "externalAccountBindingRequired": False}}
ROOT = "/root/pebble-root.pem"
ACME_ANSWERS = CORE_ANSWERS + [
    "mailsetup-imap mailsetup-imap/domains string " + DOMAIN,
    "mailsetup-imap mailsetup-imap/tls_source select acme",
    "mailsetup-imap mailsetup-imap/acme_server string " + ACME_URL,
    "mailsetup-imap mailsetup-imap/acme_email string postmaster@" + DOMAIN,
]
# port -> openssl s_client's -starttls, or None for TLS from the start
PORTS = {25: "smtp", 465: None, 587: "smtp", 993: None, 995: None, 443: None}
LIVE = "/etc/letsencrypt/live/mailsetup"
HOOK = "/etc/letsencrypt/renewal-hooks/deploy/mailsetup"


PEBBLE_UNIT = """[Unit]
Description=pebble, the test ACME CA of mailsetup's tests
[Service]
Environment=PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0
ExecStart=/usr/bin/pebble -config /etc/pebble/config.json -dnsserver 127.0.0.1:53
"""


def start_pebble(bed):
    # A unit file, not systemd-run: a stopped transient unit can stay loaded for a while
    # and refuse the next systemd-run of the same name (CI saw it even after reset-failed).
    if not bed.exists("/etc/systemd/system/pebble.service"):
        bed.run("cat >/etc/systemd/system/pebble.service", input=PEBBLE_UNIT)
        bed.run("systemctl daemon-reload")
    bed.run("systemctl start pebble.service")
    wait_until("pebble answers", lambda: bed.run(
        "python3 -c 'import urllib.request; urllib.request.urlopen(\"%s\", timeout=5)'" % ACME_URL,
        check=False).returncode == 0, bed, timeout=30)


def prepare(bed):
    apt_ok(apt_private_download(bed, PACKAGES + TOOLS))
    apt_ok(apt_private(bed, "install " + " ".join(t for t in TOOLS if t != "certbot")))
    bed.run("cat >/etc/resolv.conf", input="nameserver 127.0.0.1\n")
    start_dns(bed, DNSMASQ_CONFIG, probe=("autoconfig." + DOMAIN, "127.0.0.1"))
    # The test CA of pebble's own address, trusted as an internal CA is.
    bed.run("mkdir -p /etc/pebble && cd /etc/pebble && "
            "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 "
            "-keyout ca.key -out ca.pem -subj '/CN=mailsetup test CA for pebble' "
            # the extensions Python 3.13's strict verification wants of a CA and a server
            "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null && "
            "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout key.pem -out req.csr "
            "-subj /CN=localhost 2>/dev/null && "
            "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\nauthorityKeyIdentifier=keyid\\n"
            "keyUsage=critical,digitalSignature\\nextendedKeyUsage=serverAuth\\n' >ext.cnf && "
            "openssl x509 -req -in req.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 "
            "-extfile ext.cnf -out cert.pem 2>/dev/null && "
            "cp ca.pem /usr/local/share/ca-certificates/mailsetup-test-pebble.crt && "
            "update-ca-certificates >/dev/null")
    bed.run("cat >/etc/pebble/config.json", input=json.dumps(PEBBLE_CONFIG))
    start_pebble(bed)
    bed.preseed(ACME_ANSWERS)


def presented(bed, port, root=ROOT):
    """What the port presents: {"serial", "spki" (sha256 hex), "verified", "names"}."""
    starttls = PORTS[port]
    res = bed.run("openssl s_client -connect 127.0.0.1:%d %s -servername %s -CAfile %s -verify_hostname %s "
                  "-showcerts </dev/null 2>&1" % (port, "-starttls " + starttls if starttls else "", HOSTNAME,
                                                  root, HOSTNAME), check=False, timeout=60)
    out = res.stdout
    first = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", out, re.S)
    assert first, "port %d presented no certificate:\n%s" % (port, out[-2000:])
    pem = first.group(0) + "\n"
    info = bed.run("openssl x509 -noout -serial -ext subjectAltName", input=pem).stdout
    spki = bed.run("openssl x509 -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum",
                   input=pem).stdout.split()[0]
    return {"serial": re.search(r"serial=(\w+)", info).group(1), "spki": spki,
            "verified": "Verify return code: 0 (ok)" in out,
            "names": sorted(re.findall(r"DNS:([\w.-]+)", info))}


def all_presented(bed):
    return {port: presented(bed, port) for port in PORTS}


def fetch_root(bed):
    bed.run("python3 -c 'import urllib.request, sys; "
            "sys.stdout.write(urllib.request.urlopen(\"https://localhost:15000/roots/0\").read().decode())' >%s"
            % ROOT)


def file_serial(bed, path):
    return bed.run("openssl x509 -noout -serial -in %s" % path).stdout.strip().split("=")[1]


def failed(bed):
    """Failed units other than the test's own pebble (stopped on purpose)."""
    return [u for u in bed.failed_units() if not u.startswith("pebble")]


class TestAcme:

    @pytest.fixture(scope="class")
    def bed(self, new_booted_bed):
        bed = new_booted_bed(hostname="mail", domain=DOMAIN)
        prepare(bed)
        yield bed

    @pytest.fixture(scope="class")
    def state(self):
        return {}

    def require(self, state, step="installed"):
        if not state.get(step):
            pytest.fail("an earlier step failed (%s); see its test" % step, pytrace=False)

    def test_install_obtains_a_certificate_for_every_name(self, bed, state):
        res = apt_private(bed, "install " + " ".join(PACKAGES))
        apt_ok(res)
        report = res.stdout + res.stderr
        assert "from the ACME CA %s" % ACME_URL in report, report[-3000:]
        assert bed.exists(LIVE + "/fullchain.pem") and bed.exists(HOOK), bed.diagnostics()
        fetch_root(bed)
        got = presented(bed, 25)
        # the webmail's names came with its site (through its HTTP-01 answers, webroot)
        assert got["names"] == sorted([HOSTNAME] + CLIENT_NAMES), got
        renewal = bed.read_file("/etc/letsencrypt/renewal/mailsetup.conf")
        assert re.search(r"^authenticator = webroot$", renewal, re.M), renewal
        assert bed.is_active("certbot.timer"), "certbot's timer does not run: nothing would renew"
        assert failed(bed) == [], bed.diagnostics()
        state["installed"] = True

    def test_every_port_presents_it_valid_for_the_cas_root(self, bed, state):
        self.require(state)
        seen = all_presented(bed)
        serial = file_serial(bed, LIVE + "/cert.pem")
        for port, got in seen.items():
            assert got["verified"] and got["serial"] == serial, (port, got, serial)
        state["serial"], state["spki"] = serial, seen[25]["spki"]
        # and `mailsetup status` says so, port by port: pebble's intermediate signed it
        status = bed.run("mailsetup status", check=False)
        assert status.returncode == 0, status.stdout + status.stderr
        for port in PORTS:
            line = re.search(r"^  %d \(.*$" % port, status.stdout, re.M)
            assert line and "issued by Pebble Intermediate CA" in line.group(0) and "days)" in line.group(0), \
                (port, status.stdout)

    def test_dns_prints_the_tlsa_record_of_the_presented_key(self, bed, state):
        self.require(state, "serial")
        out = bed.run("mailsetup dns").stdout
        found = re.search(r"_25\._tcp\.%s\.?\s.*TLSA\s+3\s+1\s+1\s+([0-9a-fA-F]{64})" % re.escape(HOSTNAME), out)
        assert found, out
        assert found.group(1).lower() == state["spki"], (found.group(1), state["spki"])

    def test_a_renewal_is_presented_everywhere_with_the_same_key(self, bed, state):
        self.require(state, "serial")
        # what certbot.timer runs, with the renewal forced
        bed.run("certbot renew --force-renewal --no-random-sleep-on-renew -q")
        renewed = file_serial(bed, LIVE + "/cert.pem")
        assert renewed != state["serial"]
        wait_until("every port presents the renewed certificate", lambda: all(
            got["serial"] == renewed for got in all_presented(bed).values()), bed, timeout=60)
        assert all(got["spki"] == state["spki"] for got in all_presented(bed).values()), \
            "the key changed: the TLSA record would no longer match"
        assert failed(bed) == [], bed.diagnostics()
        state["serial"] = renewed

    def test_a_ca_that_cannot_be_reached_is_refused_and_nothing_changes(self, bed, state):
        self.require(state, "serial")
        bed.run("systemctl stop pebble")
        main_cf = bed.read_file("/etc/postfix/main.cf")
        bed.preseed(["mailsetup-imap mailsetup-imap/acme_server string " + WRONG_URL])
        res = bed.dpkg_reconfigure("mailsetup-imap", check=False)
        assert res.returncode != 0, res.stdout + res.stderr
        lines = [line for line in res.stderr.splitlines() if WRONG_URL in line]
        assert len(lines) == 1 and "cannot be used" in lines[0], res.stderr[-3000:]
        assert bed.read_file("/etc/postfix/main.cf") == main_cf
        for port, got in all_presented(bed).items():
            assert got["serial"] == state["serial"], (port, got)
        bed.preseed(["mailsetup-imap mailsetup-imap/acme_server string " + ACME_URL])
        start_pebble(bed)
        fetch_root(bed)  # pebble makes a new root at each start
        assert failed(bed) == [], bed.diagnostics()

    def test_testssl_finds_only_the_profile_on_every_port(self, bed, state):
        self.require(state)
        ports = dict(PORTS)
        ports.update({143: "imap", 110: "pop3"})
        script = "\n".join(
            "(testssl --quiet --color 0 --warnings off --protocols --std %s --jsonfile /root/testssl-%d.json "
            "127.0.0.1:%d >/root/testssl-%d.log 2>&1 || true) &" % (
                "--starttls " + how if how else "", port, port, port) for port, how in ports.items()) + "\nwait"
        bed.run(script, timeout=900)
        bad = {}
        for port in ports:
            assert bed.exists("/root/testssl-%d.json" % port), bed.read_file("/root/testssl-%d.log" % port)[-3000:]
            findings = json.loads(bed.read_file("/root/testssl-%d.json" % port))
            by_id = {f["id"]: f["finding"] for f in findings}
            assert "TLS1_2" in by_id, (port, bed.read_file("/root/testssl-%d.log" % port)[-3000:])
            # testssl's categories: the obsolete CBC suites are AVERAGE (3.0, bookworm) or
            # OBSOLETED (3.2, trixie); 3.2 also has STRONG_NOFS (no forward secrecy). Only the
            # strong forward-secret ones may be offered.
            cbc = [key for key in ("cipherlist_AVERAGE", "cipherlist_OBSOLETED") if key in by_id]
            assert cbc and "cipherlist_aNULL" in by_id, (port, sorted(by_id))
            for name in ("SSLv2", "SSLv3", "TLS1", "TLS1_1") + tuple(
                    key for key in by_id if key.startswith("cipherlist_")
                    and key not in ("cipherlist_STRONG", "cipherlist_STRONG_FS")):
                if not by_id.get(name, "").startswith("not offered"):
                    bad.setdefault(port, []).append((name, by_id.get(name)))
        assert bad == {}, bad

    def test_back_to_snakeoil(self, bed, state):
        self.require(state)
        bed.preseed(["mailsetup-imap mailsetup-imap/tls_source select snakeoil"])
        bed.dpkg_reconfigure("mailsetup-imap")
        snakeoil = file_serial(bed, "/etc/ssl/certs/ssl-cert-snakeoil.pem")
        root = "/etc/ssl/certs/ssl-cert-snakeoil.pem"
        for port in PORTS:
            got = presented(bed, port, root=root)
            assert got["serial"] == snakeoil, (port, got)
        assert not bed.exists(HOOK)
        assert failed(bed) == [], bed.diagnostics()
        # and to acme again: the certificate is there already, and taken at once
        bed.preseed(["mailsetup-imap mailsetup-imap/tls_source select acme"])
        bed.dpkg_reconfigure("mailsetup-imap")
        assert presented(bed, 993)["serial"] == file_serial(bed, LIVE + "/cert.pem")
        assert bed.exists(HOOK)

    def test_purge_removes_our_hook_and_keeps_the_certificate(self, bed, state):
        self.require(state)
        apt_ok(apt_private(bed, "purge " + " ".join(reversed(PACKAGES))))
        assert not bed.exists(HOOK)
        assert bed.exists(LIVE + "/fullchain.pem"), "the admin's certificate went with the purge"
        assert "letsencrypt" not in bed.run("postconf -n").stdout
        assert failed(bed) == [], bed.diagnostics()


class TestAcmeStandalone:
    """Without the webmail, certbot answers the CA on port 80 itself; the mail ports present
    the certificate. One release: the same certbot code as above, only another authenticator."""

    @pytest.fixture(scope="class")
    def bed(self, new_booted_bed, suite):
        if suite != "bookworm":
            pytest.skip("the standalone authenticator is checked on bookworm; TestAcme covers both releases")
        bed = new_booted_bed(hostname="mail", domain=DOMAIN)
        prepare(bed)
        yield bed

    def test_mailboxes_alone_get_a_certificate_through_port_80(self, bed):
        apt_ok(apt_private(bed, "install mailsetup-imap"))
        fetch_root(bed)
        renewal = bed.read_file("/etc/letsencrypt/renewal/mailsetup.conf")
        assert re.search(r"^authenticator = standalone$", renewal, re.M), renewal
        serial = file_serial(bed, LIVE + "/cert.pem")
        for port in (25, 465, 587, 993, 995):
            got = presented(bed, port)
            assert got["verified"] and got["serial"] == serial and got["names"] == [HOSTNAME], (port, got)
        assert failed(bed) == [], bed.diagnostics()
