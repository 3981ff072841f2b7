"""The mailsetup package's maintainer commands (readback, configure) and the check
of its answers; started through mailsetup.maintainer.

Also what mailsetup-imap's and mailsetup-filter's commands take from the core:
the settings applied last, readback_changes() and Postfix's own answers.
"""

import sys

from mailsetup import validate
from mailsetup.core import apply as core_apply
from mailsetup.core import report
from mailsetup.core.components.postfix_main import PostfixMain, mydestination
from mailsetup.core.settings import CORE_QUESTIONS, OWNER, CoreSettings, valid_on_its_own
from mailsetup.debconf_io import ask_until_valid
from mailsetup.errors import ApplyFailed
from mailsetup.i18n import _
from mailsetup.state import StateDir

# Postfix's own select values, as in its templates (the choice text is the value).
POSTFIX_MAILER_TYPE = {
    "internet": "Internet Site",
    "smarthost": "Internet with smarthost",
    "satellite": "Satellite system",
    "local": "Local only",
}

# The questions debian/mailsetup.config fills from the machine when they are empty.
MACHINE_DEFAULTS = ("hostname", "mail_domain")

# The core's questions whose answer is checked on its own (relayhost and aliases
# depend on other answers: check_answer).
CHECKS = {
    "mailsetup/mail_domain": validate.mail_domain,
    "mailsetup/hostname": validate.hostname,
    "mailsetup/mailer_type": validate.mailer_type,
    "mailsetup/other_destinations": validate.other_destinations,
    "mailsetup/mynetworks": validate.mynetworks,
    "mailsetup/message_size_limit": validate.message_size_limit,
    "mailsetup/admin_user": validate.admin_user,
    "mailsetup/inet_protocols": validate.inet_protocols,
    "mailsetup/recipient_delimiter": validate.recipient_delimiter,
}


def postfix_answers(settings, virtual_domains=()):
    """What postfix/* must hold so that reconfiguring Postfix reproduces our settings."""
    return {
        "postfix/main_mailer_type": POSTFIX_MAILER_TYPE[settings.mailer_type],
        "postfix/mailname": settings.mail_domain,
        "postfix/destinations": mydestination(settings, virtual_domains),
        "postfix/relayhost": settings.relayhost,
        "postfix/mynetworks": " ".join(settings.mynetworks),
        "postfix/protocols": settings.inet_protocols,
        "postfix/recipient_delim": settings.recipient_delimiter,
    }


def readback_changes(from_system, applied, seen, valid=None):
    """Which questions to set from the system before asking.

    from_system: question -> [(source, answer), ...] as the system reflects it;
    applied: question -> answer we applied last time (None: never applied);
    seen: question -> whether the question is marked seen (e.g. preseeded);
    valid(question, answer): whether a value found before the first apply may be taken.

    A system value that differs from what we applied is a hand edit: it wins.
    One that equals it leaves the question alone (it may hold a new preseed).
    Before the first apply, only unseen questions take main.cf's explicit
    values; /etc/mailname holds a host name by Debian convention, not the domain.
    A main.cf value that is no valid answer (Postfix's postinst writes myhostname = vm
    on a host without a domain name) is left out then: the machine's default stays.
    """
    changes = {}
    for question, candidates in from_system.items():
        if applied is not None:
            edited = [answer for _source, answer in candidates if answer != applied.get(question)]
            if edited:
                changes[question] = edited[0]
        elif not seen.get(question, False):
            from_main_cf = [answer for source, answer in candidates if source == PostfixMain.name]
            if from_main_cf and from_main_cf[0] and (valid is None or valid(question, from_main_cf[0])):
                changes[question] = from_main_cf[0]
    return changes


def stale_defaults(current, applied, seen):
    """The questions to empty so that the config script fills in the machine's default:
    before the first apply, unseen ones holding what can never be a valid answer (such as
    "vm", taken from main.cf by an earlier version)."""
    if applied is not None:
        return []
    return [q for q in MACHINE_DEFAULTS
            if current.get(q) and not seen.get(q, False) and not valid_on_its_own(q, current[q])]


def readback(questions, system):
    applied = StateDir(system.state_dir).applied()
    from_system = core_apply.answers_from_system(system)
    seen = {q: questions.seen(q) for q in set(from_system) | set(MACHINE_DEFAULTS)}
    changes = readback_changes(from_system, applied and applied["answers"], seen, valid=valid_on_its_own)
    current = {q: questions.get(f"mailsetup/{q}") for q in MACHINE_DEFAULTS if q not in changes}
    for question in stale_defaults(current, applied, seen):
        changes[question] = ""
    for question, answer in changes.items():
        questions.set(question, answer)


def check_answer(question, value, others, system):
    """Refuse value as the answer to one of the core's questions ("mailsetup/name") with
    InvalidAnswer; others: the answers it depends on. KeyError for a question it does not know."""
    if question in CHECKS:
        CHECKS[question](value)
    elif question == "mailsetup/relayhost":
        validate.relayhost(value, others.get("mailsetup/mailer_type", "").strip())
    elif question == "mailsetup/aliases":
        validate.aliases(value, admin=others.get("mailsetup/admin_user", "").strip().lower(),
                         is_local_name=system.is_local_name)
    else:
        raise KeyError(question)


def applied_core_settings(system):
    """The core settings applied last time; refused when the core was never configured."""
    settings = core_apply.applied_settings(system)
    if settings is None:
        raise ApplyFailed(_("mailsetup is not configured yet: run dpkg --configure mailsetup first"))
    return settings


def sync_postfix(questions, system, settings):
    """postfix/* as main.cf now has it (mydestination without the mailbox domains)."""
    questions.sync_others(postfix_answers(settings, system.virtual_domains()),
                          StateDir(system.state_dir).record_debconf_originals)


def configure(questions, system):
    settings = ask_until_valid(questions, lambda: CoreSettings.from_answers(
        questions.answers(OWNER, CORE_QUESTIONS), system.is_local_name))
    outcome = core_apply.apply(settings, system)
    sync_postfix(questions, system, settings)
    print(report.render(settings, outcome, system.virtual_domains()), file=sys.stderr)
