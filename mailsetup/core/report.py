"""The report printed at the end of mailsetup's configure: what was set up and how to test it."""

from mailsetup import reporting
from mailsetup.core.components.postfix_main import mydestination
from mailsetup.i18n import _

# The test command shown in the report (the same in every language).
TEST_COMMAND = reporting.SEND_TEST + " root"


def setups():
    """mailer type -> what it means, in the user's language."""
    return {
        "internet": _("Internet site: mail is sent and received directly over SMTP"),
        "smarthost": _("Internet with smarthost: mail is received directly, sent through the relay host"),
        "satellite": _("Satellite system: all mail is sent through the relay host; nothing is received from outside"),
        "local": _("Local only: mail is delivered between local users only"),
    }


def changed_names():
    """Component name (core.Outcome.changed) -> how the report names it."""
    return {
        # Translators: in "Changed: ...", the local account that gets root's mail.
        "admin account": _("admin account"),
        # Translators: in "Changed: ...", mailsetup's alias table /etc/mailsetup/aliases.
        "aliases": _("aliases"),
        # Translators: in "Changed: ...", the file /etc/mailname.
        "mailname": _("mailname"),
        "main.cf": "main.cf",
        # Translators: in "Changed: ...", main.cf was created from Postfix's template.
        "main.cf (created)": _("main.cf (created)"),
    }


def outgoing_tls_text(level):
    """What smtp_tls_security_level (core.Outcome.outgoing_tls) means, in one line."""
    if level == "dane":
        # Translators: after "Outgoing TLS:"; DANE is a name, do not translate it.
        return _("DANE where the receiving domain publishes TLSA records (the resolver validates DNSSEC)")
    # Translators: after "Outgoing TLS:"; see doc/dane.md for how to get DANE.
    return _("when offered, unchecked (the resolver does not validate DNSSEC: no DANE)")


def render(settings, outcome, virtual_domains=()):
    destinations = mydestination(settings, virtual_domains)
    aliases = "; ".join(f"{name} -> {' '.join(targets)}" for name, targets in settings.aliases) or _("none")
    mailbox = f"/var/mail/{settings.admin_user}"
    facts = [
        (_("Mail domain:"), settings.mail_domain),
        (_("Server name:"), settings.hostname),
        # Translators: the mailer type (Internet site, smarthost, satellite, local).
        (_("Setup:"), setups()[settings.mailer_type]),
    ]
    if settings.relayhost:
        facts.append((_("Relay host:"), settings.relayhost))
    facts += [
        # Translators: the domains whose mail is delivered on this machine.
        (_("Delivered here:"), destinations),
        (_("Trusted networks:"), " ".join(settings.mynetworks)),
        (_("Largest message:"), _("{size} MiB").format(size=settings.message_size_limit)),
        # Not lined up with the others: a sentence of its own.
        (None, _("Mail for root and postmaster goes to: {user} (mailbox {mailbox})").format(
            user=settings.admin_user, mailbox=mailbox)),
        (_("Other aliases:"), aliases),
    ]
    if outcome.outgoing_tls:
        facts.append((_("Outgoing TLS:"), outgoing_tls_text(outcome.outgoing_tls)))
    facts += [
        # Translators: after "Changed:"; {changed} lists what changed (or "nothing"),
        # {postfix} says what happened to Postfix.
        reporting.changed_fact(outcome.changed, changed_names(), _("{changed}; {postfix}."),
                               postfix=reporting.postfix_states()[outcome.postfix]),
    ]
    lines = ["", _("mailsetup: the mail server is configured."), *reporting.facts(facts)]
    lines += reporting.aligned([
        (_("To change the settings:"), "dpkg-reconfigure mailsetup"),
        (_("To see them later:"), "mailsetup status"),
        (_("To test:"), TEST_COMMAND),
        # Translators: continues "To test:": after sending the test message, read the mailbox.
        ("", _("then read {mailbox}").format(mailbox=mailbox)),
    ])
    lines.append("")
    return "\n".join(lines)
