"""The mailboxes settings: one field per debconf question of mailsetup-imap."""

import os
from dataclasses import dataclass

from mailsetup import validate
from mailsetup.i18n import _
from mailsetup.validate import InvalidAnswer

OWNER = "mailsetup-imap"
# Question names (without the owner prefix), in the order they are asked.
IMAP_QUESTIONS = ("domains", "tls_cert", "tls_key")

SNAKEOIL_CERT = "/etc/ssl/certs/ssl-cert-snakeoil.pem"
SNAKEOIL_KEY = "/etc/ssl/private/ssl-cert-snakeoil.key"


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


@dataclass(frozen=True)
class ImapSettings:
    domains: tuple
    tls_cert: str
    tls_key: str

    @classmethod
    def from_answers(cls, answers, core_hostname):
        """Validate the answers (question -> text); the first bad one raises InvalidAnswer."""
        return cls(
            domains=domains(answers.get("domains", ""), core_hostname=core_hostname),
            tls_cert=tls_cert(answers.get("tls_cert", "")),
            tls_key=tls_key(answers.get("tls_key", "")),
        )

    def to_answers(self):
        return {"domains": " ".join(self.domains), "tls_cert": self.tls_cert, "tls_key": self.tls_key}
