"""Certificates: what one says (names, issuer, serial, expiry, the key's digest)
and the one a running server presents.

Read with the `openssl` command line (postfix depends on ssl-cert, which
depends on openssl): one `openssl x509` per certificate. The parsing
(parse_x509_text, spki_sha256_of_pem, tlsa_value) is pure; read_der() and
read_file() run openssl; fetch_der() connects to a server, does the TLS
handshake without checking the certificate (STARTTLS first for SMTP) and gives
the certificate it presented, in DER.

The digest of the SubjectPublicKeyInfo (SHA-256) is what a DANE-EE TLSA record
"3 1 1" publishes (RFC 7671): it stays the same across renewals that keep the
key (certbot --reuse-key).
"""

import base64
import datetime
import hashlib
import re
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass

from mailsetup.errors import MailsetupError
from mailsetup.i18n import _

TIMEOUT = 2.0  # seconds for a whole connection: `mailsetup status` must stay fast
TLSA_USAGE, TLSA_SELECTOR, TLSA_MATCHING = 3, 1, 1  # DANE-EE, SubjectPublicKeyInfo, SHA-256
# Below this many days left a certificate is a warning in `mailsetup status`.
WARN_DAYS = 14
# How the handshake starts on a port.
IMPLICIT, SMTP_STARTTLS = "tls", "smtp-starttls"
X509_FIELDS = ["-noout", "-subject", "-issuer", "-serial", "-enddate", "-ext", "subjectAltName", "-pubkey",
               "-nameopt", "sep_multiline,utf8,esc_ctrl"]
MONTHS = {m: i + 1 for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"))}
PEM_PUBLIC_KEY = re.compile(r"-----BEGIN PUBLIC KEY-----(.*?)-----END PUBLIC KEY-----", re.S)


class CertError(MailsetupError):
    """A certificate that could not be read or fetched; str() is one line."""


@dataclass(frozen=True)
class Certificate:
    subject: tuple      # ((short name, value), ...) as openssl lists them, such as (("CN", "mail.example.org"),)
    issuer: tuple       # the same for the issuer
    sans: tuple         # the DNS names of subjectAltName, in order
    serial: str         # hexadecimal, upper case, as openssl prints it
    not_after: datetime.datetime  # in UTC (aware)
    spki_sha256: str    # hexadecimal, lower case: the TLSA 3 1 1 digest

    @property
    def common_name(self):
        return name_part(self.subject, "CN")

    @property
    def issuer_name(self):
        """The issuer's CN, else its O, else all of it ("" when empty)."""
        return (name_part(self.issuer, "CN") or name_part(self.issuer, "O")
                or ", ".join(f"{k}={v}" for k, v in self.issuer))

    def days_left(self, now=None):
        """Whole days until notAfter (negative: expired that many days ago)."""
        now = now or datetime.datetime.now(datetime.timezone.utc)
        return (self.not_after - now) // datetime.timedelta(days=1)

    def expiring(self, now=None, days=WARN_DAYS):
        """Expired, or expiring in less than days days."""
        return self.days_left(now) < days

    def to_json(self, now=None):
        return {"subject_cn": self.common_name, "subject": dn_text(self.subject), "sans": list(self.sans),
                "issuer": dn_text(self.issuer), "issuer_name": self.issuer_name, "serial": self.serial,
                "not_after": self.not_after.strftime("%Y-%m-%dT%H:%M:%SZ"), "days_left": self.days_left(now),
                "spki_sha256": self.spki_sha256}


def name_part(dn, key):
    """The first value of key (such as "CN") in a name as Certificate holds it, or None."""
    return next((v for k, v in dn if k == key), None)


def dn_text(dn):
    return ", ".join(f"{k}={v}" for k, v in dn)


# ------------------------------------------------------------------ pure: openssl's text

def parse_date(text):
    """openssl's date ("Mar  1 12:00:00 2027 GMT") as an aware datetime in UTC."""
    fields = text.split()
    try:
        month, day, clock, year = MONTHS[fields[0]], int(fields[1]), fields[2], int(fields[3])
        hour, minute, second = (int(x) for x in clock.split(":"))
        return datetime.datetime(year, month, day, hour, minute, second, tzinfo=datetime.timezone.utc)
    except (KeyError, IndexError, ValueError):
        raise CertError(_("openssl printed a date that could not be read: {text}").format(text=text)) from None


def spki_sha256_of_pem(pem):
    """The SHA-256 (hex) of the SubjectPublicKeyInfo in a PEM "PUBLIC KEY" block, as
    `openssl pkey -pubin -outform DER | sha256sum` gives it; None without a block."""
    found = PEM_PUBLIC_KEY.search(pem)
    if not found:
        return None
    return hashlib.sha256(base64.b64decode("".join(found.group(1).split()))).hexdigest()


def parse_x509_text(text):
    """A Certificate from what `openssl x509` prints with X509_FIELDS."""
    subject, issuer, sans, fields = [], [], [], {}
    section = None
    for line in text.splitlines():
        if line.startswith("-----BEGIN"):
            break
        if line.startswith((" ", "\t")):
            value = line.strip()
            if section in ("subject", "issuer") and "=" in value:
                key, _sep, part = value.partition("=")
                (subject if section == "subject" else issuer).append((key.strip(), part.strip()))
            elif section == "san":
                sans += [n.strip()[4:] for n in value.split(",") if n.strip().startswith("DNS:")]
            continue
        if line.startswith("X509v3 Subject Alternative Name"):
            section = "san"
            continue
        key, _sep, value = line.partition("=")
        section = key.strip()
        fields[section] = value.strip()
    spki = spki_sha256_of_pem(text)
    if "notAfter" not in fields or spki is None:
        raise CertError(_("openssl did not print the expiry date and the public key of the certificate"))
    return Certificate(subject=tuple(subject), issuer=tuple(issuer), sans=tuple(sans),
                       serial=fields.get("serial", "").upper(), not_after=parse_date(fields["notAfter"]),
                       spki_sha256=spki)


def tlsa_value(certificate):
    """The value of its TLSA record "3 1 1" (DANE-EE, the public key, SHA-256)."""
    return f"{TLSA_USAGE} {TLSA_SELECTOR} {TLSA_MATCHING} {certificate.spki_sha256}"


# ------------------------------------------------------------------ openssl

def _x509(argv, data=None):
    try:
        proc = subprocess.run(["openssl", "x509"] + argv + X509_FIELDS, input=data, capture_output=True,
                              check=False, timeout=10)
    except FileNotFoundError:
        raise CertError(_("openssl not found: the certificate cannot be read (apt install openssl)")) from None
    except subprocess.TimeoutExpired:
        raise CertError(_("openssl took too long to read the certificate")) from None
    if proc.returncode != 0:
        lines = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        # Translators: {error} is openssl's message (in English).
        raise CertError(_("openssl could not read the certificate: {error}").format(
            error=lines[0] if lines else proc.returncode))
    return parse_x509_text(proc.stdout.decode("utf-8", "replace"))


def read_der(der):
    """The Certificate of a certificate in DER (as getpeercert(binary_form=True) gives it)."""
    return _x509(["-inform", "DER"], der)


def read_file(path):
    """The Certificate of the first certificate in a PEM file (a key or a chain may be in it too,
    as in Postfix's smtpd_tls_cert_file). CertError when it is missing or unreadable."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        # Translators: {error} is the reason from the system (in English), such as "Permission denied".
        raise CertError(_("the certificate {path} could not be read: {error}").format(
            path=path, error=err.strerror or err)) from None
    return _x509(["-inform", "PEM"], data)


# ------------------------------------------------------------------ the network

class _Deadline:
    def __init__(self, timeout):
        self.end = time.monotonic() + timeout

    def left(self):
        left = self.end - time.monotonic()
        if left <= 0:
            raise socket.timeout("timed out")
        return left


def _smtp_reply(sock, deadline):
    """(code, [lines]) of one SMTP reply, read a byte at a time (nothing read past it:
    the TLS handshake follows)."""
    lines, line = [], b""
    while True:
        sock.settimeout(deadline.left())
        byte = sock.recv(1)
        if not byte:
            raise ConnectionError("connection closed")
        line += byte
        if len(line) > 2048:
            raise ConnectionError("reply line too long")
        if byte == b"\n":
            text = line.decode("ascii", "replace").rstrip("\r\n")
            lines.append(text)
            line = b""
            if len(text) < 4 or text[3] != "-":
                return text[:3], lines


def _starttls(sock, deadline):
    code, _lines = _smtp_reply(sock, deadline)
    if code != "220":
        raise ConnectionError(f"greeting {code}")
    sock.sendall(b"EHLO localhost\r\n")
    code, lines = _smtp_reply(sock, deadline)
    if code != "250":
        raise ConnectionError(f"EHLO answered {code}")
    if not any(line[4:].strip().upper().split()[:1] == ["STARTTLS"] for line in lines):
        raise ConnectionError("no STARTTLS offered")
    sock.sendall(b"STARTTLS\r\n")
    code, _lines = _smtp_reply(sock, deadline)
    if code != "220":
        raise ConnectionError(f"STARTTLS answered {code}")


def fetch_der(host, port, mode=IMPLICIT, server_name=None, timeout=TIMEOUT):
    """The certificate host:port presents, in DER, without checking it (the point is to see
    it). mode: IMPLICIT (TLS from the start) or SMTP_STARTTLS; server_name: the name sent
    (SNI), such as the host name. CertError, in one line, when it cannot be had."""
    deadline = _Deadline(timeout)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=deadline.left()) as raw:
            if mode == SMTP_STARTTLS:
                _starttls(raw, deadline)
            raw.settimeout(deadline.left())
            with context.wrap_socket(raw, server_hostname=server_name or None) as tls:
                der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError, ValueError) as err:
        # Translators: {error} is the reason (in English), such as "Connection refused" or "timed out".
        raise CertError(_("no certificate from {host}:{port}: {error}").format(
            host=host, port=port, error=getattr(err, "strerror", None) or str(err) or type(err).__name__)) from None
    if not der:
        raise CertError(_("no certificate from {host}:{port}: {error}").format(
            host=host, port=port, error="none presented"))
    return der


def fetch(host, port, mode=IMPLICIT, server_name=None, timeout=TIMEOUT):
    """The Certificate host:port presents (fetch_der, then read_der)."""
    return read_der(fetch_der(host, port, mode, server_name, timeout))
