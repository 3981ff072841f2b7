"""The filter settings: one field per debconf question of mailsetup-filter."""

from dataclasses import dataclass

from mailsetup import validate
from mailsetup.i18n import _
from mailsetup.validate import InvalidAnswer

OWNER = "mailsetup-filter"
# Question names (without the owner prefix), in the order they are asked.
FILTER_QUESTIONS = ("greylisting", "dnsbl_zones")


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


@dataclass(frozen=True)
class FilterSettings:
    greylisting: bool
    dnsbl_zones: tuple

    @classmethod
    def from_answers(cls, answers):
        """Validate the answers (question -> text); the first bad one raises InvalidAnswer."""
        return cls(
            greylisting=boolean("greylisting", answers.get("greylisting", "")),
            dnsbl_zones=dnsbl_zones(answers.get("dnsbl_zones", "")),
        )

    def to_answers(self):
        return {"greylisting": "true" if self.greylisting else "false", "dnsbl_zones": " ".join(self.dnsbl_zones)}
