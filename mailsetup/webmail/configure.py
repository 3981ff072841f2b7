"""mailsetup-webmail's maintainer command (webmail-configure)
and the check of its answers; started through mailsetup.maintainer."""

import sys

from mailsetup.core.configure import applied_core_settings
from mailsetup.debconf_io import ask_until_valid
from mailsetup.webmail import apply as webmail_apply
from mailsetup.webmail import report
from mailsetup.webmail import settings as webmail_settings
from mailsetup.webmail.components import roundcube
from mailsetup.webmail.settings import OWNER, WEBMAIL_QUESTIONS, WebmailSettings

# mailsetup-webmail's questions whose answer is checked on its own.
CHECKS = {
    # Empty: the default (the server's name, the system's language).
    "mailsetup-webmail/site": lambda value: value.strip() and webmail_settings.site(value),
    "mailsetup-webmail/language": lambda value: value.strip() and webmail_settings.language(
        value, webmail_settings.installed_languages()),
}


def check_answer(question, value, others, system):
    """Refuse value as the answer to one of mailsetup-webmail's questions with InvalidAnswer.
    KeyError for a question it does not know."""
    CHECKS[question](value)


def roundcube_answers(settings):
    """What roundcube/* must hold so that dpkg-reconfigure roundcube-core writes
    what we use (its config.inc.php is read before ours) and enables no other web server."""
    return {
        "roundcube/hosts": roundcube.IMAP,
        "roundcube/language": settings.language,
        "roundcube/reconfigure-webserver": "",
        "roundcube/restart-webserver": "false",
    }


def configure(questions, system):
    core_settings = applied_core_settings(system)
    languages = webmail_settings.installed_languages()
    settings = ask_until_valid(questions, lambda: WebmailSettings.from_answers(
        questions.answers(OWNER, WEBMAIL_QUESTIONS), languages, core_settings.hostname))
    outcome = webmail_apply.apply(settings, core_settings, system)
    questions.sync_others(roundcube_answers(settings), webmail_apply.webmail_state(system).record_debconf_originals)
    print(report.render(settings, outcome), file=sys.stderr)
