"""The short report printed at the end of configure: what was set up and how to test it."""

SETUPS = {
    "internet": "Internet site: mail is sent and received directly over SMTP",
    "smarthost": "Internet with smarthost: mail is received directly, sent through the relay host",
    "satellite": "Satellite system: all mail is sent through the relay host; nothing is received from outside",
    "local": "Local only: mail is delivered between local users only",
}

POSTFIX_STATE = {
    "reloaded": "Postfix was reloaded",
    "restarted": "Postfix was restarted",
    "not running": "Postfix is not running; start it to use the new settings",
    "unchanged": "nothing needed to change",
}


def render(settings, outcome):
    destinations = ", ".join((settings.hostname, settings.mail_domain, "localhost") + settings.other_destinations)
    aliases = "; ".join(f"{name} -> {' '.join(targets)}" for name, targets in settings.aliases) or "none"
    changed = ", ".join(outcome.changed) if outcome.changed else "nothing"
    lines = [
        "",
        "mailsetup: the mail server is configured.",
        f"  Mail domain:        {settings.mail_domain}",
        f"  Server name:        {settings.hostname}",
        f"  Setup:              {SETUPS[settings.mailer_type]}",
    ]
    if settings.relayhost:
        lines.append(f"  Relay host:         {settings.relayhost}")
    lines += [
        f"  Delivered here:     {destinations}",
        f"  Trusted networks:   {' '.join(settings.mynetworks)}",
        f"  Largest message:    {settings.message_size_limit} MiB",
        f"  Mail for root and postmaster goes to: {settings.admin_user} (mailbox /var/mail/{settings.admin_user})",
        f"  Other aliases:      {aliases}",
        f"  Changed:            {changed}; {POSTFIX_STATE[outcome.postfix]}.",
        "To change the settings: dpkg-reconfigure mailsetup",
        "To see them later:      mailsetup status",
        "To test:                printf 'Subject: test\\n\\nhello\\n' | /usr/sbin/sendmail root",
        f"                        then read /var/mail/{settings.admin_user}",
        "",
    ]
    return "\n".join(lines)
