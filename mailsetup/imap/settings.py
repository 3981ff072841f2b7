"""The mailboxes settings: one field per debconf question of mailsetup-imap."""

import ipaddress
import os
import re
import urllib.parse
from dataclasses import dataclass, field, replace

from mailsetup import validate
from mailsetup.i18n import _
from mailsetup.names import domain_problem, is_dot_atom_local
from mailsetup.validate import InvalidAnswer

OWNER = "mailsetup-imap"
# Question names (without the owner prefix), in the order they are asked.
IMAP_QUESTIONS = ("domains", "tls_source", "tls_cert", "tls_key", "acme_server", "acme_email",
                  "directory", "pg_hosts", "pg_database", "pg_user", "pg_password", "server_address")

SNAKEOIL_CERT = "/etc/ssl/certs/ssl-cert-snakeoil.pem"
SNAKEOIL_KEY = "/etc/ssl/private/ssl-cert-snakeoil.key"
# Where the certificate comes from: ssl-cert's self-signed one, files of the
# admin's own, or an ACME CA through certbot (components/acme.py).
TLS_SOURCES = ("snakeoil", "files", "acme")
LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
# certbot's lineage of ours: /etc/letsencrypt/live/NAME/ always links to the newest files.
ACME_CERT_NAME = "mailsetup"
ACME_LIVE_DIR = f"/etc/letsencrypt/live/{ACME_CERT_NAME}"
ACME_CERT = f"{ACME_LIVE_DIR}/fullchain.pem"
ACME_KEY = f"{ACME_LIVE_DIR}/privkey.pem"


# Where the mailbox directory is: a SQLite file of this server, or a PostgreSQL
# database shared by a group of servers (mailboxes/pgsql_store.py).
DIRECTORIES = ("sqlite", "postgresql")
_SQL_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# Written into Dovecot's configuration and libpq connect strings: nothing they would
# read as a quote, an escape, a variable (%, $) or a comment (#).
_PG_PASSWORD = re.compile(r"^[A-Za-z0-9._~+/=@!^*:?,-]+$")


def _refuse(question, value, expected):
    raise InvalidAnswer(question, value, expected, owner=OWNER)


def domains(value, *, core_hostname):
    """Domains with mailboxes: DNS names, never the server's own name (its mail stays local)."""
    expected = _("expected domain names such as {example}, separated by spaces or commas").format(
        example="example.org")

    def own_name(name):
        if name in (core_hostname, "localhost") or name.startswith("localhost."):
            return _("{name} is the server's own name: its mail (root, postmaster) stays with the system accounts"
                     ).format(name=name)
        return None

    return validate.domain_list("domains", value, expected, OWNER, name_problem=own_name)


def _pem_file(question, value, marker, expected):
    try:
        path = validate.plain_text(question, value, expected)
    except InvalidAnswer as err:
        _refuse(question, value, err.expected)
    if not path.startswith("/"):
        _refuse(question, value, validate.also(expected, _("it must be an absolute path")))
    try:
        with open(path, "rb") as f:
            head = f.read(65536)
    except OSError as err:
        _refuse(question, value, validate.also(expected, _("it cannot be read ({error})").format(
            error=err.strerror or err)))
    if b"-----BEGIN " not in head or marker not in head:
        _refuse(question, value, validate.also(expected, _("it holds no PEM {what}").format(
            what=marker.decode().lower())))
    return os.path.normpath(path)


def tls_cert(value):
    return _pem_file("tls_cert", value, b"CERTIFICATE",
                     _("expected the path of a PEM certificate (with its chain) such as {example}").format(
                         example=SNAKEOIL_CERT))


def tls_key(value):
    return _pem_file("tls_key", value, b"PRIVATE KEY",
                     _("expected the path of the PEM private key of the certificate, such as {example}").format(
                         example=SNAKEOIL_KEY))


def tls_source(value):
    try:
        return validate.choice("tls_source", value, TLS_SOURCES)
    except InvalidAnswer as err:
        _refuse("tls_source", value, err.expected)


def acme_server(value):
    """The ACME directory URL (RFC 8555 requires https); whether it answers is checked
    when the certificate is requested (components/acme.py: directory_problem)."""
    expected = _("expected the https address of an ACME directory such as {example}").format(example=LETS_ENCRYPT)
    try:
        text = validate.plain_text("acme_server", value, expected)
    except InvalidAnswer as err:
        _refuse("acme_server", value, err.expected)
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port  # a ValueError for one that is no number
    except ValueError:
        _refuse("acme_server", value, expected)
    if parts.scheme != "https" or not parts.hostname or " " in text or port == 0:
        _refuse("acme_server", value, expected)
    host = parts.hostname.rstrip(".")
    if host != "localhost" and domain_problem(host, 1) and not _is_ip(host):
        _refuse("acme_server", value, expected)
    return text


def _is_ip(text):
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def acme_email(value):
    """The CA's contact for expiry warnings; empty: an account without one."""
    expected = _("expected a mail address such as {example}, or nothing").format(example="postmaster@example.org")
    text = value.strip().lower()
    if not text:
        return ""
    local, at, domain = text.rpartition("@")
    if not at or not is_dot_atom_local(local) or domain_problem(domain.rstrip(".").lower(), 2):
        _refuse("acme_email", value, expected)
    return f"{local}@{domain.rstrip('.')}"


def directory(value):
    try:
        return validate.choice("directory", value, DIRECTORIES)
    except InvalidAnswer as err:
        _refuse("directory", value, err.expected)


def pg_hosts(value):
    """One or more PostgreSQL servers: names or IP addresses, tried in turn."""
    expected = _("expected the names or IP addresses of PostgreSQL servers such as {example}, "
                 "separated by spaces").format(example="db1.example.org 198.51.100.5")
    hosts = value.replace(",", " ").split()
    if not hosts:
        _refuse("pg_hosts", value, expected)
    found = []
    for host in hosts:
        host = host.lower().rstrip(".")
        if not _is_ip(host) and domain_problem(host, 1):
            _refuse("pg_hosts", value, expected)
        if host not in found:
            found.append(host)
    return tuple(found)


def _sql_name(question, value):
    text = value.strip()
    if not _SQL_NAME.match(text):
        _refuse(question, value, _("expected a PostgreSQL name of lower-case letters, digits and _ "
                                   "(at most 63), such as {example}").format(example="mailsetup"))
    return text


def pg_database(value):
    return _sql_name("pg_database", value)


def pg_user(value):
    return _sql_name("pg_user", value)


def pg_password(value):
    # The value itself is never shown: it is a password.
    if not _PG_PASSWORD.match(value or ""):
        raise InvalidAnswer("pg_password", "********" if value else "", _(
            "expected the password of the PostgreSQL user: letters, digits and {characters}").format(
                characters="- . _ ~ + / = @ ! ^ * : ? ,"), owner=OWNER)
    return value


def server_address(value):
    """This server's address for the others of the group: where they deliver and proxy to."""
    expected = _("expected an IP address of this server on the mail servers' network, such as {example}").format(
        example="198.51.100.11")
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        _refuse("server_address", value, expected)
    if address.is_loopback or address.is_unspecified or address.is_multicast:
        _refuse("server_address", value, expected)
    return str(address)


@dataclass(frozen=True)
class ImapSettings:
    domains: tuple
    tls_cert: str
    tls_key: str
    tls_source: str = "files"
    acme_server: str = ""
    acme_email: str = ""
    directory: str = "sqlite"
    pg_hosts: tuple = ()
    pg_database: str = ""
    pg_user: str = ""
    pg_password: str = field(default="", repr=False)
    server_address: str = ""

    @classmethod
    def from_answers(cls, answers, core_hostname):
        """Validate the answers (question -> text); the first bad one raises InvalidAnswer.

        tls_cert and tls_key are the files in use: ssl-cert's with snakeoil,
        certbot's live links with acme (made when the certificate is obtained),
        the answers only with files."""
        found = domains(answers.get("domains", ""), core_hostname=core_hostname)
        source = tls_source(answers.get("tls_source") or "files")
        if source == "snakeoil":
            # ssl-cert's (a dependency): made when it is installed
            settings = cls(found, SNAKEOIL_CERT, SNAKEOIL_KEY, source)
        elif source == "acme":
            settings = cls(found, ACME_CERT, ACME_KEY, source, acme_server(answers.get("acme_server", "")),
                           acme_email(answers.get("acme_email", "")))
        else:
            settings = cls(found, tls_cert(answers.get("tls_cert", "")), tls_key(answers.get("tls_key", "")), source)
        if directory(answers.get("directory") or "sqlite") == "sqlite":
            return settings
        return replace(settings, directory="postgresql", pg_hosts=pg_hosts(answers.get("pg_hosts", "")),
                       pg_database=pg_database(answers.get("pg_database", "")),
                       pg_user=pg_user(answers.get("pg_user", "")),
                       pg_password=pg_password(answers.get("pg_password", "")),
                       server_address=server_address(answers.get("server_address", "")))

    def to_answers(self):
        """The answers as applied, for the state directory: never the password."""
        answers = {"domains": " ".join(self.domains), "tls_source": self.tls_source,
                   "tls_cert": self.tls_cert, "tls_key": self.tls_key, "directory": self.directory}
        if self.tls_source == "acme":
            answers.update(acme_server=self.acme_server, acme_email=self.acme_email)
        if self.directory == "postgresql":
            answers.update(pg_hosts=" ".join(self.pg_hosts), pg_database=self.pg_database,
                           pg_user=self.pg_user, server_address=self.server_address)
        return answers
