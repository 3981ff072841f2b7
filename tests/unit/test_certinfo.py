"""mailsetup/certinfo.py and the certificates of `mailsetup status`: certificates made
with openssl in a temporary directory, presented by tiny TLS servers on 127.0.0.1
(Python's ssl module, real handshakes: TLS from the start, or SMTP with STARTTLS)."""

import datetime
import io
import socket
import ssl
import subprocess
import threading

import pytest

from mailsetup import certinfo
from mailsetup.cli import status as cli_status


def make_certificate(directory, name, days, cn, sans):
    """(certificate path, key path) of a self-signed P-256 certificate valid for days days."""
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-days", str(days), "-subj", f"/CN={cn}/O=Example Mail",
                    "-addext", "subjectAltName=" + ",".join(f"DNS:{n}" for n in sans),
                    "-nodes", "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return str(cert), str(key)


def openssl_spki_sha256(cert):
    """The digest as openssl computes it: x509 -pubkey, pkey -pubin -outform DER, sha256."""
    pem = subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-pubkey"], check=True, capture_output=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pem, check=True,
                         capture_output=True).stdout
    dgst = subprocess.run(["openssl", "dgst", "-sha256", "-r"], input=der, check=True, capture_output=True).stdout
    return dgst.split()[0].decode()


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    top = tmp_path_factory.mktemp("certs")
    return {"long": make_certificate(top, "long", 90, "mail.example.org", ["mail.example.org", "example.org"]),
            "short": make_certificate(top, "short", 5, "imap.example.org", ["imap.example.org"])}


class TlsServer:
    """Accepts connections on 127.0.0.1 in a thread and presents cert; smtp: an SMTP greeting and
    EHLO first, TLS after STARTTLS (starttls=False: the EHLO answer does not offer it);
    silent: accepts and never answers."""

    def __init__(self, cert, key, smtp=False, starttls=True, silent=False):
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.smtp, self.starttls, self.silent = smtp, starttls, silent
        self.names = []  # the SNI names the clients sent
        self.context.sni_callback = lambda sock, name, context: self.names.append(name)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                conn, _addr = self.listener.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    self.talk(conn)
                except (OSError, ssl.SSLError):
                    pass

    def talk(self, conn):
        if self.silent:
            while conn.recv(100):  # reads the client's hello, answers nothing
                pass
            return
        if self.smtp:
            reader = conn.makefile("rb")
            conn.sendall(b"220 mail.example.org ESMTP test\r\n")
            reader.readline()
            conn.sendall(b"250-mail.example.org\r\n250-PIPELINING\r\n"
                         + (b"250-STARTTLS\r\n" if self.starttls else b"") + b"250 8BITMIME\r\n")
            if reader.readline().strip().upper() != b"STARTTLS":
                conn.sendall(b"502 no\r\n")
                return
            conn.sendall(b"220 go ahead\r\n")
        with self.context.wrap_socket(conn, server_side=True) as tls:
            tls.recv(1)  # until the client closes

    def close(self):
        self.listener.close()


@pytest.fixture
def servers():
    started = []

    def start(*args, **kwargs):
        server = TlsServer(*args, **kwargs)
        started.append(server)
        return server
    yield start
    for server in started:
        server.close()


# ------------------------------------------------------------------ reading certificates

def test_read_file(certs):
    cert = certinfo.read_file(certs["long"][0])
    assert cert.common_name == "mail.example.org"
    assert cert.sans == ("mail.example.org", "example.org")
    assert cert.issuer_name == "mail.example.org"  # self-signed
    assert cert.subject == (("CN", "mail.example.org"), ("O", "Example Mail"))
    assert 88 <= cert.days_left() <= 90 and not cert.expiring()
    assert cert.spki_sha256 == openssl_spki_sha256(certs["long"][0])
    assert certinfo.tlsa_value(cert) == "3 1 1 " + openssl_spki_sha256(certs["long"][0])
    serial = subprocess.run(["openssl", "x509", "-in", certs["long"][0], "-noout", "-serial"], check=True,
                            capture_output=True, text=True).stdout.strip().split("=")[1]
    assert cert.serial == serial.upper()


def test_read_file_with_the_key_first(certs, tmp_path):
    """Postfix's smtpd_tls_cert_file may hold the key and the chain too."""
    cert, key = certs["short"]
    both = tmp_path / "both.pem"
    both.write_text(open(key).read() + open(cert).read() + open(certs["long"][0]).read())
    assert certinfo.read_file(str(both)).common_name == "imap.example.org"


def test_read_errors(tmp_path):
    with pytest.raises(certinfo.CertError, match=r"^the certificate .*/nothing.pem could not be read: "
                                                 r"No such file or directory$"):
        certinfo.read_file(str(tmp_path / "nothing.pem"))
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    with pytest.raises(certinfo.CertError) as err:
        certinfo.read_file(str(tmp_path / "junk.pem"))
    assert str(err.value).startswith("openssl could not read the certificate: ") and "\n" not in str(err.value)


def test_parse_openssl_text():
    text = ("subject=\n    CN=mail.example.org\nissuer=\n    C=US\n    O=Let's Encrypt\n    CN=R11\n"
            "serial=04A1\nnotAfter=Mar  1 12:00:00 2027 GMT\nX509v3 Subject Alternative Name: \n"
            "    DNS:mail.example.org, IP Address:192.0.2.1, DNS:example.org\n"
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    cert = certinfo.parse_x509_text(text)
    assert cert.issuer_name == "R11" and cert.common_name == "mail.example.org"
    assert cert.sans == ("mail.example.org", "example.org")
    assert cert.not_after == datetime.datetime(2027, 3, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
    now = datetime.datetime(2027, 2, 15, 12, 0, 1, tzinfo=datetime.timezone.utc)
    assert cert.days_left(now) == 13 and cert.expiring(now)
    assert cert.days_left(now - datetime.timedelta(days=1)) == 14
    assert not cert.expiring(now - datetime.timedelta(days=1))
    assert cert.days_left(datetime.datetime(2027, 3, 3, tzinfo=datetime.timezone.utc)) == -2
    assert cert.to_json(now)["not_after"] == "2027-03-01T12:00:00Z"
    with pytest.raises(certinfo.CertError, match="expiry date and the public key"):
        certinfo.parse_x509_text("subject=\n    CN=x\n")


# ------------------------------------------------------------------ the network

def test_fetch_implicit_tls_and_starttls(certs, servers):
    implicit = servers(*certs["long"])
    smtp = servers(*certs["short"], smtp=True)
    cert = certinfo.fetch("127.0.0.1", implicit.port, server_name="mail.example.org")
    assert cert == certinfo.read_file(certs["long"][0])
    assert implicit.names == ["mail.example.org"]
    der = certinfo.fetch_der("127.0.0.1", smtp.port, certinfo.SMTP_STARTTLS)
    assert certinfo.read_der(der).common_name == "imap.example.org"
    assert ssl.DER_cert_to_PEM_cert(der).split() == open(certs["short"][0]).read().split()


def test_fetch_failures_are_one_line(certs, servers):
    no_starttls = servers(*certs["long"], smtp=True, starttls=False)
    with pytest.raises(certinfo.CertError, match=r"^no certificate from 127.0.0.1:\d+: no STARTTLS offered$"):
        certinfo.fetch("127.0.0.1", no_starttls.port, certinfo.SMTP_STARTTLS)
    free = socket.create_server(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    with pytest.raises(certinfo.CertError, match=rf"^no certificate from 127.0.0.1:{port}: Connection refused$"):
        certinfo.fetch("127.0.0.1", port)


def test_a_silent_server_times_out_quickly(certs, servers):
    silent = servers(*certs["long"], silent=True)
    for mode in (certinfo.IMPLICIT, certinfo.SMTP_STARTTLS):
        start = datetime.datetime.now()
        with pytest.raises(certinfo.CertError, match="timed out"):
            certinfo.fetch("127.0.0.1", silent.port, mode, timeout=0.5)
        assert datetime.datetime.now() - start < datetime.timedelta(seconds=2)


# ------------------------------------------------------------------ mailsetup status

def status_of(servers_by_port, ports):
    """tls_certificates for ports, the well-known port numbers mapped to the test servers."""
    def fetch(port, mode, server_name):
        return certinfo.fetch("127.0.0.1", servers_by_port[port].port, mode, server_name)
    return cli_status.tls_certificates(ports, "mail.example.org", fetch=fetch)


def test_status_shows_the_certificate_of_each_tls_port(certs, servers):
    smtp = servers(*certs["long"], smtp=True)
    imaps = servers(*certs["long"])
    entries = status_of({25: smtp, 993: imaps}, [25, 80, 110, 143, 993])
    assert [e["port"] for e in entries] == [25, 993]  # 80, 110 and 143 present no certificate of their own
    assert entries[0]["subject_cn"] == "mail.example.org" and entries[0]["expiring"] is False
    assert entries[0]["spki_sha256"] == openssl_spki_sha256(certs["long"][0])
    assert smtp.names == ["mail.example.org"]
    out = io.StringIO()
    status = {"configured": False, "main_cf": "/etc/postfix/main.cf", "ports": [25, 993], "certificates": entries}
    cli_status.print_status(status, out)
    days = entries[0]["days_left"]
    date = entries[0]["not_after"][:10]
    assert (f"Certificates on the TLS ports:\n"
            f"  25 (SMTP, STARTTLS): CN=mail.example.org (also example.org), issued by mail.example.org, "
            f"expires {date} ({days} days)\n"
            f"  993 (IMAPS, TLS): CN=mail.example.org (also example.org), issued by mail.example.org, "
            f"expires {date} ({days} days)\n") in out.getvalue()
    assert "different certificates" not in out.getvalue()
    assert cli_status.healthy(dict(status, configured=True, postfix_running=True))


def test_status_warns_of_a_certificate_expiring_in_under_14_days(certs, servers):
    entries = status_of({465: servers(*certs["long"]), 995: servers(*certs["short"])}, [465, 995])
    assert [e["expiring"] for e in entries] == [False, True]
    assert entries[1]["days_left"] in (4, 5)
    line = cli_status.certificate_line(entries[1])
    assert line == (f"  995 (POP3S, TLS): WARNING: CN=imap.example.org, issued by imap.example.org, "
                    f"expires {entries[1]['not_after'][:10]} ({entries[1]['days_left']} days): renew it")
    out = io.StringIO()
    cli_status.print_certificates(entries, out)
    assert out.getvalue().endswith("  (the ports present 2 different certificates)\n")
    assert not cli_status.healthy({"configured": True, "postfix_running": True, "certificates": entries})


def test_status_expired_and_unreachable_lines():
    expired = {"port": 443, "protocol": "HTTPS, TLS", "subject_cn": "mail.example.org", "sans": [],
               "subject": "CN=mail.example.org", "issuer_name": "R11", "not_after": "2026-01-02T00:00:00Z",
               "days_left": -3, "expiring": True, "serial": "01", "spki_sha256": "ab", "error": None}
    assert cli_status.certificate_line(expired) == (
        "  443 (HTTPS, TLS): WARNING: CN=mail.example.org, issued by R11, EXPIRED 2026-01-02 (3 days ago): "
        "renew it")
    refused = {"port": 587, "protocol": "submission, STARTTLS",
               "error": "no certificate from 127.0.0.1:587: Connection refused"}
    assert cli_status.certificate_line(refused) == (
        "  587 (submission, STARTTLS): no certificate from 127.0.0.1:587: Connection refused")
    # no certificate is shown, but is no problem of its own (TLS off, or another address)
    assert cli_status.healthy({"configured": True, "postfix_running": True, "certificates": [refused]})


def test_status_json_has_the_certificates(certs, servers, monkeypatch):
    imaps = servers(*certs["long"])
    monkeypatch.setattr(cli_status, "listening_ports", lambda: [993])
    monkeypatch.setattr(cli_status, "sections", lambda: [])
    monkeypatch.setattr(cli_status, "certificate_on",
                        lambda port, mode, name: certinfo.fetch("127.0.0.1", imaps.port, mode, name))

    class NoPostfix:
        main_cf_path = "/nonexistent/main.cf"

        def postfix_installed(self):
            return False
    status = cli_status.collect_status(NoPostfix())
    [entry] = status["certificates"]
    assert entry["port"] == 993 and entry["sans"] == ["mail.example.org", "example.org"]
    assert set(entry) >= {"subject_cn", "issuer", "serial", "not_after", "days_left", "spki_sha256", "expiring"}
    assert imaps.names == [None]  # no host name known without main.cf: no SNI
