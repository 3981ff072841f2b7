"""The certificate from an ACME CA on its own: brought to the names the sites
have now (mailsetup-webmail calls apply_certificate once its site serves the
CA's checks), without the rest of mailsetup-imap's apply, whose reapply of
the core would lead back to the webmail.
"""

from dataclasses import dataclass, field

from mailsetup import postfix_service, services
from mailsetup.i18n import _
from mailsetup.imap.components.acme import AcmeCertificate
from mailsetup.imap.mailboxes import system as mailbox_system
from mailsetup.imap.settings import ACME_LIVE_DIR, SNAKEOIL_CERT, ImapSettings
from mailsetup.transaction import Transaction

DOVECOT = "dovecot"


def tls_source_of(cert_path):
    """Which tls_source answer a certificate path in main.cf stands for."""
    if cert_path == SNAKEOIL_CERT:
        return "snakeoil"
    if cert_path.startswith(ACME_LIVE_DIR + "/"):
        return "acme"
    return "files"


@dataclass
class Reloads:
    """What a new certificate meant for the services that read it."""
    changed: list = field(default_factory=list)
    postfix: str = "unchanged"
    dovecot: str = "unchanged"


def reload_certificate_readers(system, outcome):
    """A new certificate at the same path: Postfix and Dovecot (and nginx, when it
    runs: the webmail's site) read it again. outcome: Reloads or imap's Outcome."""
    outcome.postfix = postfix_service.apply_changes(system)
    service = services.of(system)
    for name in (DOVECOT, "nginx"):
        if service.running(name):
            state = "reloaded" if service.reload(name) else "reload failed"
            if name == DOVECOT:
                outcome.dovecot = state


def apply_certificate(system, core_settings, names):
    """The certificate from an ACME CA brought to names (the server's first), and the
    services reloaded when a new one came: Reloads, or None without the acme choice.
    ApplyFailed keeps the certificate in use."""
    state = mailbox_system.imap_state(system)
    applied = state.applied()
    if not applied or applied["answers"].get("tls_source") != "acme":
        return None
    # Called from within mailsetup-imap's own apply (which records its answers
    # last) when it leaves acme: main.cf tells.
    in_use = system.postconf().explicit(["smtpd_tls_cert_file"])["smtpd_tls_cert_file"]
    if tls_source_of(in_use) != "acme":
        return None
    settings = ImapSettings.from_answers(applied["answers"], core_settings.hostname)
    transaction = Transaction(system, state)
    transaction.add(AcmeCertificate(system, names), settings)
    outcome = Reloads(changed=transaction.changed)
    todo = transaction.todo

    def reload():
        if todo and system.run_services:
            reload_certificate_readers(system, outcome)

    # Translators: {error} says why (often certbot's words, in English).
    transaction.run(applied["answers"], _("requesting the certificate failed, the previous one stays in use: "
                                          "{error}"), reload)
    return outcome
