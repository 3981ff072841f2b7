"""Entry point for the maintainer scripts.

    python3 -m mailsetup.maintainer readback    (from config, before asking)
    python3 -m mailsetup.maintainer configure   (from postinst configure)
    python3 -m mailsetup.maintainer check QUESTION VALUE [QUESTION=VALUE...]
                                                (from config, after each answer)

All but check are started by a /bin/sh script that sourced confmodule. Exit
status 1 with one line on stderr means an answer was refused or the apply
failed; in both cases the files are as they were.

check talks no debconf and changes nothing: exit 0 when VALUE is a good
answer to QUESTION (such as mailsetup/hostname), 1 with why not on stdout (one
line, the "expected ..." text) when it is refused, 2 when it cannot tell
(usage, an unknown question). The QUESTION=VALUE pairs are the other answers
it depends on: mailsetup/mailer_type for mailsetup/relayhost,
mailsetup/admin_user for mailsetup/aliases.
"""

import os
import sys

from mailsetup.core import apply as core

from mailsetup.core import report
from mailsetup.core.components.postfix_main import PostfixMain
from mailsetup.i18n import _
from mailsetup.core.settings import CoreSettings, valid_on_its_own
from mailsetup.state import StateDir
from mailsetup.errors import ApplyFailed, MailsetupError
from mailsetup.system import System
from mailsetup.validate import InvalidAnswer


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


# The questions debian/mailsetup.config fills from the machine when they are empty.
MACHINE_DEFAULTS = ("hostname", "mail_domain")


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
    from_system = core.answers_from_system(system)
    seen = {q: questions.seen(q) for q in set(from_system) | set(MACHINE_DEFAULTS)}
    changes = readback_changes(from_system, applied and applied["answers"], seen, valid=valid_on_its_own)
    current = {q: questions.get(f"mailsetup/{q}") for q in MACHINE_DEFAULTS if q not in changes}
    for question in stale_defaults(current, applied, seen):
        changes[question] = ""
    for question, answer in changes.items():
        questions.set(question, answer)


def ask_until_valid(questions, settings_from_answers):
    """settings_from_answers() reads the answers and returns them as settings; a refused
    answer is asked again where someone can answer, else its InvalidAnswer is raised."""
    while True:
        try:
            return settings_from_answers()
        except InvalidAnswer as invalid:
            if not questions.ask_again(invalid):
                raise


def check_answer(question, value, others, system):
    """Refuse value as the answer to question ("owner/name") with InvalidAnswer, as
    the postinst would. others: the answers it depends on ("owner/name" -> text).
    Only reads the system. KeyError for a question it does not know."""
    from mailsetup import validate
    from mailsetup.filter import settings as filter_settings
    from mailsetup.imap import settings as imap_settings
    alone = {
        "mailsetup/mail_domain": validate.mail_domain,
        "mailsetup/hostname": validate.hostname,
        "mailsetup/mailer_type": validate.mailer_type,
        "mailsetup/other_destinations": validate.other_destinations,
        "mailsetup/mynetworks": validate.mynetworks,
        "mailsetup/message_size_limit": validate.message_size_limit,
        "mailsetup/admin_user": validate.admin_user,
        "mailsetup/inet_protocols": validate.inet_protocols,
        "mailsetup/recipient_delimiter": validate.recipient_delimiter,
        "mailsetup-imap/tls_cert": imap_settings.tls_cert,
        "mailsetup-imap/tls_key": imap_settings.tls_key,
        "mailsetup-filter/greylisting": lambda v: filter_settings.boolean("greylisting", v),
        "mailsetup-filter/dnsbl_zones": filter_settings.dnsbl_zones,
    }
    if question in alone:
        alone[question](value)
    elif question == "mailsetup/relayhost":
        validate.relayhost(value, others.get("mailsetup/mailer_type", "").strip())
    elif question == "mailsetup/aliases":
        validate.aliases(value, admin=others.get("mailsetup/admin_user", "").strip().lower(),
                         is_local_name=system.is_local_name)
    elif question == "mailsetup-imap/domains":
        # The server's own name as the postinst sees it: the one applied last.
        applied = StateDir(system.state_dir).applied()
        hostname = (applied["answers"].get("hostname") if applied else None) or others.get("mailsetup/hostname", "")
        imap_settings.domains(value, core_hostname=hostname.strip().lower().rstrip("."))
    elif question == "mailsetup-filter/antivirus":
        filter_settings.antivirus(value, clamd_installed=os.path.exists(system.clamd_path))
    else:
        raise KeyError(question)


def check(args, system):
    """The check command; returns its exit status."""
    if len(args) < 2 or any("=" not in arg for arg in args[2:]):
        print(_("usage: {command}").format(
            command="python3 -m mailsetup.maintainer check QUESTION VALUE [QUESTION=VALUE...]"), file=sys.stderr)
        return 2
    question, value = args[0], args[1]
    others = dict(arg.split("=", 1) for arg in args[2:])
    try:
        check_answer(question, value, others, system)
    except InvalidAnswer as invalid:
        print(" ".join(invalid.expected.splitlines()))
        return 1
    except KeyError:
        print(_("mailsetup: no such question: {question}").format(question=question), file=sys.stderr)
        return 2
    except Exception as err:  # cannot tell: the postinst checks again
        print(f"mailsetup: {err}", file=sys.stderr)
        return 2
    return 0


def applied_core_settings(system):
    """The core settings applied last time; refused when the core was never configured."""
    settings = core.applied_settings(system)
    if settings is None:
        raise ApplyFailed(_("mailsetup is not configured yet: run dpkg --configure mailsetup first"))
    return settings


def configure(questions, system):
    settings = ask_until_valid(questions, lambda: CoreSettings.from_answers(questions.answers(), system.is_local_name))
    outcome = core.apply(settings, system)
    from mailsetup.debconf_io import postfix_answers
    state = StateDir(system.state_dir)
    questions.sync_postfix(postfix_answers(settings, system.virtual_domains()), state.record_debconf_originals)
    print(report.render(settings, outcome, system.virtual_domains()), file=sys.stderr)


# mailsetup-imap -------------------------------------------------------------

def imap_readback(questions, system):
    """Domains added or removed with the mailsetup command, and a certificate
    changed in main.cf by hand, become the answers before asking."""
    from mailsetup.imap import apply as imap_core
    from mailsetup.imap.settings import OWNER as IMAP
    from mailsetup.imap.mailboxes import system as mailbox_system
    applied = mailbox_system.imap_state(system).applied()
    from_system = {q: [("system", a)] for q, a in imap_core.answers_from_system(system).items()}
    seen = {q: questions.seen(q, owner=IMAP) for q in from_system}
    for question, answer in readback_changes(from_system, applied and applied["answers"], seen).items():
        questions.set(question, answer, owner=IMAP)


def imap_configure(questions, system):
    from mailsetup.imap import apply as imap_core
    from mailsetup.imap import report as imap_report
    from mailsetup.debconf_io import postfix_answers
    from mailsetup.imap.settings import IMAP_QUESTIONS, OWNER as IMAP, ImapSettings
    core_settings = applied_core_settings(system)
    settings = ask_until_valid(questions, lambda: ImapSettings.from_answers(
        questions.answers(IMAP, IMAP_QUESTIONS), core_settings.hostname))
    outcome = imap_core.apply(settings, system)
    # postfix/destinations without the mailbox domains, as main.cf now has it.
    questions.sync_postfix(postfix_answers(core_settings, system.virtual_domains()),
                           StateDir(system.state_dir).record_debconf_originals)
    print(imap_report.render(settings, outcome, core_settings.hostname), file=sys.stderr)


# mailsetup-filter -----------------------------------------------------------

def filter_configure(questions, system):
    from mailsetup.filter import apply as filter_core
    from mailsetup.filter import report as filter_report
    from mailsetup.filter.settings import FILTER_QUESTIONS, OWNER as FILTER, FilterSettings
    core_settings = applied_core_settings(system)
    settings = ask_until_valid(questions, lambda: FilterSettings.from_answers(
        questions.answers(FILTER, FILTER_QUESTIONS), clamd_installed=os.path.exists(system.clamd_path)))
    outcome = filter_core.apply(settings, core_settings, system)
    print(filter_report.render(settings, outcome), file=sys.stderr)


def reapply_core(questions, system):
    """From mailsetup-imap's postrm: mydestination takes its domains back."""
    from mailsetup.imap.mailboxes import system as mailbox_system
    mailbox_system.reapply_core(system)


COMMANDS = {
    "readback": readback,
    "configure": configure,
    "imap-readback": imap_readback,
    "imap-configure": imap_configure,
    "reapply-core": reapply_core,
    "filter-configure": filter_configure,
}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["check"]:
        return check(argv[1:], System())
    if len(argv) != 1 or argv[0] not in COMMANDS:
        print(_("usage: {command}").format(command="python3 -m mailsetup.maintainer " + "|".join(list(COMMANDS) + ["check"])),
              file=sys.stderr)
        return 2
    system = System()
    try:
        if argv[0] == "reapply-core":
            questions = None  # no debconf: run from a postrm after the package's questions are gone
        else:
            from mailsetup.debconf_io import Questions
            questions = Questions()
        COMMANDS[argv[0]](questions, system)
    except MailsetupError as err:
        print(f"mailsetup: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        # Failed before anything was changed (reading the system): still one line.
        print(f"mailsetup: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
