"""The core settings: one field per debconf question of the mailsetup package."""

from dataclasses import dataclass

from mailsetup import validate

# The package whose debconf questions these are.
OWNER = "mailsetup"

# Question names (without the "mailsetup/" owner prefix), in the order they are asked.
CORE_QUESTIONS = (
    "mail_domain",
    "hostname",
    "mailer_type",
    "relayhost",
    "other_destinations",
    "mynetworks",
    "message_size_limit",
    "admin_user",
    "aliases",
    "inet_protocols",
    "recipient_delimiter",
)


# The questions whose answer can be checked on its own (relayhost, admin_user and
# aliases depend on other answers).
_CHECKS = {
    "mail_domain": validate.mail_domain,
    "hostname": validate.hostname,
    "mailer_type": validate.mailer_type,
    "other_destinations": validate.other_destinations,
    "mynetworks": validate.mynetworks,
    "message_size_limit": validate.message_size_limit,
    "inet_protocols": validate.inet_protocols,
    "recipient_delimiter": validate.recipient_delimiter,
}


def valid_on_its_own(question, answer):
    """False when answer can never be a valid answer to question; True when it is,
    or when that depends on the other answers."""
    check = _CHECKS.get(question)
    if check is None:
        return True
    try:
        check(answer)
    except validate.InvalidAnswer:
        return False
    return True


@dataclass(frozen=True)
class CoreSettings:
    mail_domain: str
    hostname: str
    mailer_type: str
    relayhost: str
    other_destinations: tuple
    mynetworks: tuple
    message_size_limit: int  # MiB
    admin_user: str
    aliases: tuple  # ((name, (target, ...)), ...)
    inet_protocols: str
    recipient_delimiter: str

    @classmethod
    def from_answers(cls, answers, is_local_name):
        """Validate the answers (question -> text); the first bad one raises InvalidAnswer."""
        mailer = validate.mailer_type(answers.get("mailer_type", ""))
        admin = validate.admin_user(answers.get("admin_user", ""))
        return cls(
            mail_domain=validate.mail_domain(answers.get("mail_domain", "")),
            hostname=validate.hostname(answers.get("hostname", "")),
            mailer_type=mailer,
            relayhost=validate.relayhost(answers.get("relayhost", ""), mailer),
            other_destinations=validate.other_destinations(answers.get("other_destinations", "")),
            mynetworks=validate.mynetworks(answers.get("mynetworks", "")),
            message_size_limit=validate.message_size_limit(answers.get("message_size_limit", "")),
            admin_user=admin,
            aliases=validate.aliases(answers.get("aliases", ""), admin=admin, is_local_name=is_local_name),
            inet_protocols=validate.inet_protocols(answers.get("inet_protocols", "")),
            recipient_delimiter=validate.recipient_delimiter(answers.get("recipient_delimiter", "")),
        )

    def to_answers(self):
        """The settings as debconf answers (question -> text)."""
        return {
            "mail_domain": self.mail_domain,
            "hostname": self.hostname,
            "mailer_type": self.mailer_type,
            "relayhost": self.relayhost,
            "other_destinations": ", ".join(self.other_destinations),
            "mynetworks": " ".join(self.mynetworks),
            "message_size_limit": str(self.message_size_limit),
            "admin_user": self.admin_user,
            "aliases": validate.format_aliases(self.aliases),
            "inet_protocols": self.inet_protocols,
            "recipient_delimiter": self.recipient_delimiter,
        }
