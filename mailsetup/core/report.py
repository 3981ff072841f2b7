"""The short report printed at the end of configure: what was set up and how to test it."""

from mailsetup.core.components.postfix_main import mydestination
from mailsetup.i18n import _

# The test command shown in the report (the same in every language).
SEND_TEST = "printf 'Subject: test\\n\\nhello\\n' | /usr/sbin/sendmail"
TEST_COMMAND = SEND_TEST + " root"


def setups():
    """mailer type -> what it means, in the user's language."""
    return {
        "internet": _("Internet site: mail is sent and received directly over SMTP"),
        "smarthost": _("Internet with smarthost: mail is received directly, sent through the relay host"),
        "satellite": _("Satellite system: all mail is sent through the relay host; nothing is received from outside"),
        "local": _("Local only: mail is delivered between local users only"),
    }


def postfix_states():
    """core.Outcome.postfix -> what happened to Postfix."""
    return {
        "reloaded": _("Postfix was reloaded"),
        "restarted": _("Postfix was restarted"),
        "started": _("Postfix was started"),
        "not running": _("Postfix is not running; start it to use the new settings"),
        "unchanged": _("nothing needed to change"),
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


def _aligned(rows, indent="", gap=1):
    """(label, value) rows with the values lined up after the longest label."""
    width = max(len(label) for label, _value in rows) + gap
    return [f"{indent}{label.ljust(width)}{value}" for label, value in rows]


def _facts(facts):
    """The facts of a report, indented, their values lined up; a row whose label is
    None is a sentence of its own, not lined up with the others."""
    lined_up = iter(_aligned([row for row in facts if row[0] is not None], indent="  ", gap=3))
    return [next(lined_up) if label is not None else "  " + value for label, value in facts]


def _changed(changed, names, summary, **states):
    """The "Changed:" fact. changed: the names of the components that changed; names:
    component name -> how the report names it; summary: the translated line with
    {changed} (what changed, or "nothing") and a field for each of states."""
    listed = ", ".join(names.get(c, c) for c in changed) if changed else _("nothing")
    return (_("Changed:"), summary.format(changed=listed, **states))


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
        # Translators: after "Changed:"; {changed} lists what changed (or "nothing"),
        # {postfix} says what happened to Postfix.
        _changed(outcome.changed, changed_names(), _("{changed}; {postfix}."),
                 postfix=postfix_states()[outcome.postfix]),
    ]
    lines = ["", _("mailsetup: the mail server is configured."), *_facts(facts)]
    lines += _aligned([
        (_("To change the settings:"), "dpkg-reconfigure mailsetup"),
        (_("To see them later:"), "mailsetup status"),
        (_("To test:"), TEST_COMMAND),
        # Translators: continues "To test:": after sending the test message, read the mailbox.
        ("", _("then read {mailbox}").format(mailbox=mailbox)),
    ])
    lines.append("")
    return "\n".join(lines)


def dovecot_states():
    """imap_core.Outcome.dovecot -> what happened to Dovecot."""
    return {
        "reloaded": _("Dovecot was reloaded"),
        "started": _("Dovecot was started"),
        "reload failed": _("Dovecot could not be reloaded; restart it"),
        "not running": _("Dovecot is not running; start it to read mail"),
        "unchanged": _("Dovecot needed no reload"),
    }


def render_imap(settings, outcome, hostname=None):
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
    }
    example = f"alice@{settings.domains[0]}" if settings.domains else "alice@example.org"
    facts = [
        (_("Domains with mailboxes:"), " ".join(settings.domains) or _("none yet")),
        (_("Mailboxes:"), str(outcome.mailboxes)),
        # Translators: {ports} are port numbers with how they are secured.
        (_("Reading mail:"), _("IMAP 143 (STARTTLS) and 993 (TLS); POP3 110 (STARTTLS) and 995 (TLS)")),
        (_("Sending mail:"), _("587 (STARTTLS) and 465 (TLS), with the mailbox address and password")),
        (_("Certificate:"), settings.tls_cert),
        _changed(outcome.changed, names, _("{changed}; {postfix}; {dovecot}."),
                 postfix=postfix_states()[outcome.postfix], dovecot=dovecot_states()[outcome.dovecot]),
    ]
    lines = ["", _("mailsetup-imap: mailboxes are set up."), *_facts(facts)]
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
        (_("To test:"), f"{SEND_TEST} {example}"),
        ("", read),
        (_("To see them later:"), "mailsetup status; mailsetup mailbox list"),
    ]
    lines += _aligned(steps)
    lines.append("")
    return "\n".join(lines)


def rspamd_states():
    """filter_core.Outcome.rspamd -> what happened to rspamd."""
    return {
        "reloaded": _("rspamd was reloaded"),
        "started": _("rspamd was started"),
        "restarted": _("rspamd was restarted"),
        "restart needed": _("rspamd was reloaded, but its milter socket moves only when it is restarted: "
                            "restart rspamd"),
        "reload failed": _("rspamd could not be reloaded; restart it"),
        "not running": _("rspamd is not running; start it (and its Redis or Valkey server) to filter mail"),
        "unchanged": _("rspamd needed no reload"),
    }


def filter_fact(outcome):
    """The "Filter:" fact: whether the filter works after the reloads; None when not checked."""
    if not outcome.checked:
        return None
    if outcome.problem is None:
        # Translators: after "Filter:".
        return (_("Filter:"), _("working: rspamd runs and Postfix reaches its milter"))
    # Translators: after "Filter:"; {problem} says what is wrong.
    return (_("Filter:"), _("NOT working, so Postfix defers mail (nothing is lost) until it does: "
                            "{problem}").format(problem=outcome.problem))


def render_filter(settings, outcome):
    """The closing report of mailsetup-filter."""
    names = {
        # Translators: in "Changed: ...", the files in /etc/rspamd/local.d.
        "rspamd": _("rspamd configuration"),
        # Translators: in "Changed: ...", main.cf settings for the filter.
        "postfix (filter)": _("Postfix settings for the filter"),
        # Translators: in "Changed: ...", the files of `mailsetup access`.
        "access lists": _("access lists"),
    }
    facts = [
        (_("Signed with DKIM:"), " ".join(outcome.domains) or _("none")),
        (_("New DKIM keys:"), " ".join(outcome.new_keys) or _("none")),
        (_("Greylisting:"), _("on") if settings.greylisting else _("off")),
        (_("DNS blocklists:"), " ".join(settings.dnsbl_zones) or _("none")),
        (_("Virus scan:"), _("ClamAV") if settings.antivirus else _("off")),
        _changed(outcome.changed, names, _("{changed}; {postfix}; {rspamd}."),
                 postfix=postfix_states()[outcome.postfix], rspamd=rspamd_states()[outcome.rspamd]),
    ]
    working = filter_fact(outcome)
    if working:
        facts.append(working)
    lines = ["", _("mailsetup-filter: the spam and forgery filter is set up."), *_facts(facts)]
    lines += _aligned([
        (_("DNS records to publish:"), "mailsetup dns"),
        (_("To allow or deny senders:"), "mailsetup access"),
        (_("To change the settings:"), "dpkg-reconfigure mailsetup-filter"),
    ])
    lines.append("")
    return "\n".join(lines)
