"""The filter settings: one field per debconf question of mailsetup-filter."""

from dataclasses import dataclass

from mailsetup import validate
from mailsetup.i18n import _
from mailsetup.validate import InvalidAnswer

OWNER = "mailsetup-filter"
# Question names (without the owner prefix), in the order they are asked.
FILTER_QUESTIONS = ("greylisting", "dnsbl_zones", "antivirus")


def _refuse(question, value, expected):
    raise InvalidAnswer(question, value, expected, owner=OWNER)


def boolean(question, value):
    text = value.strip().lower()
    if text not in ("true", "false"):
        _refuse(question, value, _("expected true or false"))
    return text == "true"


def dnsbl_zones(value):
    """DNS blocklist zones (may be empty): DNS names such as zen.spamhaus.org."""
    expected = _("expected DNS blocklist zones such as {example}, separated by spaces or commas (or nothing)").format(
        example="zen.spamhaus.org")
    return validate.domain_list("dnsbl_zones", value, expected, OWNER)


def antivirus(value, clamd_installed):
    wanted = boolean("antivirus", value)
    if wanted and not clamd_installed:
        _refuse("antivirus", value, _("expected false while clamav-daemon is not installed "
                                      "(install it first: apt install clamav-daemon)"))
    return wanted


@dataclass(frozen=True)
class FilterSettings:
    greylisting: bool
    dnsbl_zones: tuple
    antivirus: bool = False

    @classmethod
    def from_answers(cls, answers, clamd_installed=True):
        """Validate the answers (question -> text); the first bad one raises InvalidAnswer.

        clamd_installed: whether ClamAV's daemon is there to scan with."""
        return cls(
            greylisting=boolean("greylisting", answers.get("greylisting", "")),
            dnsbl_zones=dnsbl_zones(answers.get("dnsbl_zones", "")),
            # absent from what 0.2.0 recorded: it had no virus scan
            antivirus=antivirus(answers.get("antivirus", "false"), clamd_installed),
        )

    def to_answers(self):
        return {"greylisting": "true" if self.greylisting else "false", "dnsbl_zones": " ".join(self.dnsbl_zones),
                "antivirus": "true" if self.antivirus else "false"}
