"""mailsetup-filter's maintainer command (filter-configure) and the check of its
answers; started through mailsetup.maintainer."""

import os
import sys

from mailsetup.core.configure import applied_core_settings
from mailsetup.debconf_io import ask_until_valid
from mailsetup.filter import apply as filter_apply
from mailsetup.filter import report
from mailsetup.filter import settings as filter_settings
from mailsetup.filter.settings import FILTER_QUESTIONS, OWNER, FilterSettings

# mailsetup-filter's questions whose answer is checked on its own (antivirus: check_answer).
CHECKS = {
    "mailsetup-filter/greylisting": lambda value: filter_settings.boolean("greylisting", value),
    "mailsetup-filter/dnsbl_zones": filter_settings.dnsbl_zones,
}


def check_answer(question, value, others, system):
    """Refuse value as the answer to one of mailsetup-filter's questions with InvalidAnswer.
    KeyError for a question it does not know."""
    if question in CHECKS:
        CHECKS[question](value)
    elif question == "mailsetup-filter/antivirus":
        filter_settings.antivirus(value, clamd_installed=os.path.exists(system.clamd_path))
    else:
        raise KeyError(question)


def configure(questions, system):
    core_settings = applied_core_settings(system)
    settings = ask_until_valid(questions, lambda: FilterSettings.from_answers(
        questions.answers(OWNER, FILTER_QUESTIONS), clamd_installed=os.path.exists(system.clamd_path)))
    outcome = filter_apply.apply(settings, core_settings, system)
    print(report.render(settings, outcome), file=sys.stderr)
