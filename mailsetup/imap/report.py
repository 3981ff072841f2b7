"""The report printed at the end of mailsetup-imap's configure."""

from mailsetup import reporting
from mailsetup.i18n import _


def dovecot_states():
    """apply.Outcome.dovecot -> what happened to Dovecot."""
    return {
        "reloaded": _("Dovecot was reloaded"),
        "started": _("Dovecot was started"),
        "reload failed": _("Dovecot could not be reloaded; restart it"),
        "not running": _("Dovecot is not running; start it to read mail"),
        "unchanged": _("Dovecot needed no reload"),
    }


def certificate_fact(settings):
    if settings.tls_source == "acme":
        # Translators: {url} is the ACME directory, {path} the certificate file.
        return _("{path}, from the ACME CA {url}; certbot renews it and the services are reloaded").format(
            path=settings.tls_cert, url=settings.acme_server)
    if settings.tls_source == "snakeoil":
        # Translators: {path} is the file of ssl-cert's self-signed certificate.
        return _("{path} (self-signed: mail programs warn until it is accepted)").format(path=settings.tls_cert)
    return settings.tls_cert


def render(settings, outcome, hostname=None):
    """The closing report of mailsetup-imap; hostname: the server name a mail program connects to."""
    names = {
        # Translators: in "Changed: ...", the two Dovecot drop-in files.
        "dovecot": _("Dovecot configuration"),
        # Translators: in "Changed: ...", main.cf/master.cf settings for the mailboxes.
        "postfix (mailboxes)": _("Postfix settings for the mailboxes"),
        # Translators: in "Changed: ...", the list of domains with mailboxes.
        "domains": _("domains"),
        # Translators: in "Changed: ...", the Sieve script that files mail marked as spam into the Junk folder.
        "sieve": _("Sieve script (spam into Junk)"),
        # Translators: in "Changed: ...", the Sieve scripts that let the spam filter learn from mail moved into or out of Junk.
        "learn": _("Sieve scripts (learning from Junk)"),
        # Translators: in "Changed: ...", the certificate obtained from an ACME CA (with certbot).
        "certificate (ACME)": _("certificate from the ACME CA"),
        # Translators: in "Changed: ...", the move of the mailboxes, aliases and lists from
        # files (directory.json and Postfix maps) into an SQLite database.
        "directory (SQLite)": _("mailbox directory moved into SQLite (the old directory.json kept as "
                                "directory.json.migrated)"),
        # Translators: in "Changed: ...", this server now uses the PostgreSQL directory of a group of servers.
        "directory (PostgreSQL)": _("mailbox directory in PostgreSQL, shared with the other servers"),
    }
    example = f"alice@{settings.domains[0]}" if settings.domains else "alice@example.org"
    facts = [
        (_("Domains with mailboxes:"), " ".join(settings.domains) or _("none yet")),
        (_("Mailboxes:"), str(outcome.mailboxes)),
        # Translators: {path} is the folder of the SQLite databases of mailboxes, aliases and lists.
        (_("Mailbox directory:"), _("SQLite, in {path}").format(path=outcome.directory)
         if settings.directory == "sqlite" else
         # Translators: {location} is "the PostgreSQL directory DB on HOSTS"; {address}, this server's.
         _("{location}, shared; this server is {address} for the others").format(
             location=outcome.directory, address=settings.server_address)),
        # Translators: {ports} are port numbers with how they are secured.
        (_("Reading mail:"), _("IMAP 143 (STARTTLS) and 993 (TLS); POP3 110 (STARTTLS) and 995 (TLS)")),
        (_("Sending mail:"), _("587 (STARTTLS) and 465 (TLS), with the mailbox address and password")),
        # Translators: the port of ManageSieve, where mail programs and the webmail keep filters.
        (_("Filters:"), _("ManageSieve 4190 (STARTTLS), for filters and vacation replies")),
        (_("Certificate:"), certificate_fact(settings)),
        reporting.changed_fact(outcome.changed, names, _("{changed}; {postfix}; {dovecot}."),
                               postfix=reporting.postfix_states()[outcome.postfix], dovecot=dovecot_states()[outcome.dovecot]),
    ]
    lines = ["", _("mailsetup-imap: mailboxes are set up."), *reporting.facts(facts)]
    # Only commands that work as shown: a domain to add only when there is none
    # (one already set up is refused), the mailbox in the first domain.
    steps = [] if settings.domains else [(_("To add a domain:"), "mailsetup domain add example.org")]
    if hostname:
        # Translators: continues "To test:" after the command that sends a test message.
        read = _("then read it in a mail program: server {server}, user name {address}, IMAP port 993").format(
            server=hostname, address=example)
    else:
        # Translators: continues "To test:" after the command that sends a test message.
        read = _("then read it in a mail program, with {address} as user name").format(address=example)
    steps += [
        (_("To add a mailbox:"), f"mailsetup mailbox add {example}"),
        (_("To test:"), f"{reporting.SEND_TEST} {example}"),
        ("", read),
        (_("To see them later:"), "mailsetup status; mailsetup mailbox list"),
    ]
    lines += reporting.aligned(steps)
    lines.append("")
    return "\n".join(lines)
