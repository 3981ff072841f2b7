"""mailsetup-imap's maintainer commands (imap-readback, imap-configure) and the
check of its answers; started through mailsetup.maintainer."""

import sys

from mailsetup import validate
from mailsetup.core.configure import applied_core_settings, readback_changes, sync_postfix
from mailsetup.debconf_io import ask_until_valid
from mailsetup.imap import apply as imap_apply
from mailsetup.imap import report
from mailsetup.imap import settings as imap_settings
from mailsetup.imap.components import acme
from mailsetup.imap.mailboxes import system as mailbox_system
from mailsetup.imap.settings import IMAP_QUESTIONS, OWNER, ImapSettings
from mailsetup.errors import ApplyFailed
from mailsetup.i18n import _
from mailsetup.state import StateDir
from mailsetup.validate import InvalidAnswer


def acme_server(value):
    """At the dialog, an ACME directory that does not answer is refused at once
    (the postinst refuses it too, when certbot would be run)."""
    url = imap_settings.acme_server(value)
    problem = acme.directory_problem(url)
    if problem:
        raise InvalidAnswer("acme_server", value, validate.also(
            _("expected the https address of an ACME directory that answers"), problem), owner=OWNER)
    return url


# mailsetup-imap's questions whose answer is checked on its own (domains: check_answer).
CHECKS = {
    "mailsetup-imap/tls_source": imap_settings.tls_source,
    "mailsetup-imap/tls_cert": imap_settings.tls_cert,
    "mailsetup-imap/tls_key": imap_settings.tls_key,
    "mailsetup-imap/acme_server": acme_server,
    "mailsetup-imap/acme_email": imap_settings.acme_email,
    "mailsetup-imap/directory": imap_settings.directory,
    "mailsetup-imap/pg_hosts": imap_settings.pg_hosts,
    "mailsetup-imap/pg_database": imap_settings.pg_database,
    "mailsetup-imap/pg_user": imap_settings.pg_user,
    "mailsetup-imap/server_address": imap_settings.server_address,
    # Not called by the config script for this one (a command line would show the password).
    "mailsetup-imap/pg_password": imap_settings.pg_password,
}


def readback(questions, system):
    """Domains added or removed with the mailsetup command, and a certificate
    changed in main.cf by hand, become the answers before asking."""
    applied = mailbox_system.imap_state(system).applied()
    from_system = {q: [("system", a)] for q, a in imap_apply.answers_from_system(system).items()}
    seen = {q: questions.seen(q, owner=OWNER) for q in from_system}
    for question, answer in readback_changes(from_system, applied and applied["answers"], seen).items():
        questions.set(question, answer, owner=OWNER)


def check_answer(question, value, others, system):
    """Refuse value as the answer to one of mailsetup-imap's questions with InvalidAnswer;
    others: the answers it depends on. KeyError for a question it does not know."""
    if question in CHECKS:
        CHECKS[question](value)
    elif question == "mailsetup-imap/domains":
        # The server's own name as the postinst sees it: the one applied last.
        applied = StateDir(system.state_dir).applied()
        hostname = (applied["answers"].get("hostname") if applied else None) or others.get("mailsetup/hostname", "")
        imap_settings.domains(value, core_hostname=hostname.strip().lower().rstrip("."))
    else:
        raise KeyError(question)


def apply_asking_again(questions, settings_from_answers, apply):
    """(settings, outcome) of the first apply that works. When the ACME CA refused (or
    could not be reached), the source of the certificate is asked again where someone
    can answer (snakeoil now, acme again once DNS or port 80 is fixed); else ApplyFailed."""
    while True:
        settings = ask_until_valid(questions, settings_from_answers)
        try:
            return settings, apply(settings)
        except ApplyFailed as err:
            if not isinstance(err.__cause__, acme.AcmeRefused):
                raise
            invalid = InvalidAnswer("tls_source", settings.tls_source, str(err.__cause__), owner=OWNER)
            if not questions.ask_again(invalid):
                raise


def configure(questions, system):
    core_settings = applied_core_settings(system)
    settings, outcome = apply_asking_again(
        questions,
        lambda: ImapSettings.from_answers(questions.answers(OWNER, IMAP_QUESTIONS), core_settings.hostname),
        lambda settings: imap_apply.apply(settings, system, core_settings=core_settings))
    # postfix/destinations without the mailbox domains, as main.cf now has it.
    sync_postfix(questions, system, core_settings)
    print(report.render(settings, outcome, core_settings.hostname), file=sys.stderr)
