"""Validation of the debconf answers.

Pure functions: each takes the answer as text and returns the normalised value,
or raises InvalidAnswer, whose str() is the one line shown to the user.
Nothing here touches the system; what a check needs to know about the machine
(which local accounts exist) is passed in. DNS names and local parts are
checked by names.py; plain_text() and also() serve the other packages'
questions (imap/settings.py) and the access lists too.
"""

import ipaddress
import re

from mailsetup.errors import MailsetupError
from mailsetup.i18n import _, ngettext
from mailsetup.names import domain_problem, is_dot_atom_local

MAX_ANSWER_LENGTH = 1000
MAX_MESSAGE_SIZE_MIB = 2047

MAILER_TYPES = ("internet", "smarthost", "satellite", "local")
INET_PROTOCOLS = ("all", "ipv4", "ipv6")

_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_ALIAS_NAME = re.compile(r"^[a-z0-9][a-z0-9._+-]{0,63}$")
_RECIPIENT_DELIMITER = re.compile(r"^[-+=_.]{1,4}$")


class InvalidAnswer(MailsetupError):
    """An answer that cannot be applied; str() names question, value and what is expected."""

    def __init__(self, question, value, expected, owner="mailsetup"):
        super().__init__(question, value, expected)
        self.question = question
        self.value = value
        self.expected = expected
        self.owner = owner  # the package whose question it is

    def __str__(self):
        label = question_label(self.owner, self.question)
        if label is None:
            # Translators: the one line that says why an answer was refused. Keep
            # "{owner}/{question}:" (such as mailsetup/hostname) first and {value}
            # (the answer, already in quotes) right after it: scripts look for
            # them. {expected} is one of the "expected ..." texts below.
            return _('{owner}/{question}: {value} is not valid: {expected}').format(
                owner=self.owner, question=self.question, value=show(self.value), expected=self.expected)
        # Translators: as the line above, with {label}, the question as the dialog
        # shows it (its short description, such as "Host name of the mail server"),
        # in quotes after the key: keep "{owner}/{question} (" first.
        return _('{owner}/{question} ("{label}"): {value} is not valid: {expected}').format(
            owner=self.owner, question=self.question, label=label, value=show(self.value),
            expected=self.expected)


def question_label(owner, question):
    """The question as the dialog shows it: its template's short description
    without the closing colon (the same texts as debian/*.templates and
    debian/po/uk.po; a unit test compares them), or None for an unknown one."""
    labels = {
        "mailsetup/mail_domain": _("Mail domain"),
        "mailsetup/hostname": _("Host name of the mail server"),
        "mailsetup/mailer_type": _("Mail server type"),
        "mailsetup/relayhost": _("Relay host for outgoing mail"),
        "mailsetup/other_destinations": _("Other domains to receive mail for"),
        "mailsetup/mynetworks": _("Networks allowed to send mail through this server"),
        "mailsetup/message_size_limit": _("Maximum message size in MiB"),
        "mailsetup/admin_user": _("Administrator account"),
        "mailsetup/aliases": _("Additional mail aliases"),
        "mailsetup/inet_protocols": _("Internet protocols to use"),
        "mailsetup/recipient_delimiter": _("Address extension separator"),
        "mailsetup-imap/domains": _("Mail domains with mailboxes"),
        "mailsetup-imap/tls_source": _("Source of the TLS certificate"),
        "mailsetup-imap/tls_cert": _("TLS certificate file"),
        "mailsetup-imap/tls_key": _("TLS private key file"),
        "mailsetup-imap/acme_server": _("ACME directory address"),
        "mailsetup-imap/acme_email": _("Contact address for the certificate authority"),
        "mailsetup-imap/directory": _("Where the mailbox directory is kept"),
        "mailsetup-imap/pg_hosts": _("PostgreSQL servers"),
        "mailsetup-imap/pg_database": _("PostgreSQL database name"),
        "mailsetup-imap/pg_user": _("PostgreSQL user name"),
        "mailsetup-imap/pg_password": _("PostgreSQL password"),
        "mailsetup-imap/server_address": _("Address of this server for the other mail servers"),
        "mailsetup-filter/greylisting": _("Greylist unknown senders?"),
        "mailsetup-filter/dnsbl_zones": _("DNS blocklists"),
        "mailsetup-filter/antivirus": _("Scan mail for viruses with ClamAV?"),
        "mailsetup-webmail/site": _("Web address of the webmail"),
        "mailsetup-webmail/language": _("Language of the webmail"),
    }
    return labels.get(f"{owner}/{question}")


def show(value):
    """Quote a value for an error line, making control characters visible."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in value)
    if len(text) > 80:
        text = text[:77] + "..."
    return f'"{text}"'


def also(expected, problem):
    """What is expected, and what is wrong with this answer: "EXPECTED; PROBLEM"."""
    return f"{expected}; {problem}"


def plain_text(question, value, expected):
    """The answer without surrounding blanks; InvalidAnswer for what can never be
    a valid answer: control characters, huge values."""
    if len(value) > MAX_ANSWER_LENGTH:
        # Translators: {expected} is one of the "expected ..." texts.
        raise InvalidAnswer(question, value, ngettext("{expected} (at most {count} character)",
                                                      "{expected} (at most {count} characters)",
                                                      MAX_ANSWER_LENGTH).format(
            expected=expected, count=MAX_ANSWER_LENGTH))
    if any(not c.isprintable() for c in value):
        # Translators: {expected} is one of the "expected ..." texts.
        raise InvalidAnswer(question, value, _("{expected}, without control characters or line breaks").format(
            expected=expected))
    return value.strip()


def _split(text):
    return [item for item in re.split(r"[\s,]+", text) if item]


def domain(question, value, *, expected, min_labels=2):
    """A DNS domain name, returned in lower case without a trailing dot."""
    text = plain_text(question, value, expected).lower().rstrip(".")
    if not text:
        raise InvalidAnswer(question, value, also(expected, _("it must not be empty")))
    problem = domain_problem(text, min_labels)
    if problem:
        raise InvalidAnswer(question, value, also(expected, problem))
    return text


# Postfix's default domain for a machine without a domain name: accepted so that an
# unattended install on such a machine still works (local mail only).
NO_DOMAIN = "localdomain"


def mail_domain(value):
    if value.strip().lower() == NO_DOMAIN:
        return NO_DOMAIN
    return domain("mail_domain", value,
                  expected=_("expected a domain name such as {example}").format(example="example.org"))


def hostname(value):
    return domain("hostname", value, expected=_("expected a fully qualified host name such as {example}").format(
        example="mail.example.org"))


def choice(question, value, choices):
    text = value.strip()
    if text not in choices:
        # Translators: {choices} are the values themselves, such as "internet, smarthost, satellite, local".
        raise InvalidAnswer(question, value, _("expected one of {choices}").format(choices=", ".join(choices)))
    return text


def mailer_type(value):
    return choice("mailer_type", value, MAILER_TYPES)


def inet_protocols(value):
    return choice("inet_protocols", value, INET_PROTOCOLS)


def relayhost(value, mailer):
    """Postfix relayhost syntax: host, [host], host:port or [host]:port.

    Required for smarthost and satellite setups, ignored (empty) otherwise.
    """
    # Translators: {first}, {second} and {third} are examples of the Postfix relayhost syntax.
    expected = _("expected a relay host such as {first}, {second} or {third}").format(
        first="smtp.example.org", second="[smtp.example.org]", third="[smtp.example.org]:587")
    text = plain_text("relayhost", value, expected)
    if mailer not in ("smarthost", "satellite"):
        return ""
    if not text:
        # Translators: {mailer} is the chosen mailer type, "smarthost" or "satellite".
        raise InvalidAnswer("relayhost", value, also(expected, _("a {mailer} setup needs one").format(mailer=mailer)))
    if "://" in text:
        raise InvalidAnswer("relayhost", value, also(expected, _("no URL scheme (smtp://)")))
    match = re.match(r"^(\[(?P<bracketed>[^\]]+)\]|(?P<plain>[^:\[\]]+))(?::(?P<port>[^:]*))?$", text)
    if not match:
        raise InvalidAnswer("relayhost", value, expected)
    port = match.group("port")
    if port is not None and not (port.isdigit() and 1 <= int(port) <= 65535):
        raise InvalidAnswer("relayhost", value, also(expected, _("the port must be a number from 1 to 65535")))
    if match.group("bracketed"):
        host = match.group("bracketed")
        if host.lower().startswith("ipv6:"):
            _ip_address("relayhost", value, host[5:], expected)
            return text
        if re.match(r"^[0-9.]+$", host):
            _ip_address("relayhost", value, host, expected)
            return text
    else:
        host = match.group("plain")
    problem = domain_problem(host.lower().rstrip("."), min_labels=1)
    if problem:
        raise InvalidAnswer("relayhost", value, also(expected, problem))
    return text.lower()


def _ip_address(question, value, text, expected):
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise InvalidAnswer(question, value, also(expected, _("'{address}' is not an IP address").format(
            address=text))) from None


def domain_list(question, value, expected, owner="mailsetup", *, min_labels=2, name_problem=None):
    """DNS names separated by spaces or commas (or none): a tuple of them in lower case,
    without a trailing dot, each once.

    name_problem(name), where given, says why a well-formed name is refused (or None);
    it is asked name by name, right after the name's own check.
    """
    try:
        text = plain_text(question, value, expected)
    except InvalidAnswer as err:
        raise InvalidAnswer(question, value, err.expected, owner=owner)
    names = []
    for item in _split(text):
        name = item.lower().rstrip(".")
        problem = domain_problem(name, min_labels)
        if problem:
            raise InvalidAnswer(question, value, also(expected, f"{item}: {problem}"), owner=owner)
        problem = name_problem(name) if name_problem else None
        if problem:
            raise InvalidAnswer(question, value, also(expected, problem), owner=owner)
        if name not in names:
            names.append(name)
    return tuple(names)


def other_destinations(value):
    """Further domains delivered locally; may be empty."""
    expected = _("expected domain names separated by commas or spaces, such as {examples}").format(
        examples="example.net, example.com")
    return domain_list("other_destinations", value, expected, min_labels=1)


def mynetworks(value):
    """Trusted client networks in Postfix syntax; IPv6 written as [addr]/len."""
    expected = _("expected networks such as {examples}").format(examples="127.0.0.0/8 [::1]/128 192.168.1.0/24")
    text = plain_text("mynetworks", value, expected)
    items = _split(text)
    if not items:
        raise InvalidAnswer("mynetworks", value, also(expected, _("at least one network (loopback) is needed")))
    networks = []
    for item in items:
        ip_text = item
        bracketed = re.match(r"^\[([^\]]+)\](/\d+)?$", item)
        if bracketed:
            ip_text = bracketed.group(1) + (bracketed.group(2) or "")
        try:
            net = ipaddress.ip_network(ip_text, strict=True)
        except ValueError:
            raise InvalidAnswer("mynetworks", value, also(expected, _network_problem(item, ip_text))) from None
        if net.version == 6 and not bracketed:
            raise InvalidAnswer("mynetworks", value, also(expected, _(
                "write IPv6 networks in brackets: {network}").format(network=_show_network(net))))
        if net.prefixlen == 0:
            raise InvalidAnswer("mynetworks", value, also(expected, _(
                "{network} would trust the whole internet (an open relay)").format(network=item)))
        shown = _show_network(net)
        if shown not in networks:
            networks.append(shown)
    return tuple(networks)


def _show_network(net):
    """A network as Postfix wants it: IPv6 in brackets."""
    return f"[{net.network_address}]/{net.prefixlen}" if net.version == 6 else str(net)


def _network_problem(item, ip_text):
    """Why item (ip_text without IPv6 brackets) is not a network."""
    try:
        net = ipaddress.ip_network(ip_text, strict=False)
    except ValueError:
        return _("{network} is not a network in CIDR notation (address/prefix length)").format(network=item)
    # Translators: the user gave an address with a prefix length, such as
    # 192.168.1.1/24; {suggestion} is the network meant, such as 192.168.1.0/24.
    return _("{network} is an address inside a network, not a network; write {suggestion}").format(
        network=item, suggestion=_show_network(net))


def message_size_limit(value):
    # Translators: MiB (mebibytes) is the unit of the answer; write it as the question does (uk: МіБ).
    expected = _("expected a whole number of MiB from 1 to {maximum}, such as {example}").format(
        maximum=MAX_MESSAGE_SIZE_MIB, example=25)
    text = plain_text("message_size_limit", value, expected)
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_MESSAGE_SIZE_MIB:
        raise InvalidAnswer("message_size_limit", value, expected)
    return int(text)


def admin_user(value):
    """The local account that gets root's mail; it is created when missing."""
    expected = _("expected a local user name such as {example} (lower-case letters, digits, - and _)").format(
        example="alice")
    text = plain_text("admin_user", value, expected)
    if not _USER.match(text):
        raise InvalidAnswer("admin_user", value, expected)
    if text in ("root", "postmaster", "mailer-daemon"):
        # Translators: {name} is root, postmaster or mailer-daemon, given as the admin account.
        raise InvalidAnswer("admin_user", value, also(expected, _(
            "{name}'s mail is what goes to this account").format(name=text)))
    return text


def recipient_delimiter(value):
    # Translators: "+ - = _ ." are the characters allowed; keep them as they are.
    expected = _("expected one or more of the characters + - = _ . (such as +), or nothing")
    text = plain_text("recipient_delimiter", value, expected)
    if text and not _RECIPIENT_DELIMITER.match(text):
        raise InvalidAnswer("recipient_delimiter", value, expected)
    return text


def _alias_target(value, target, expected):
    """A target is a local name or a mail address."""
    if "@" in target:
        local, _at, dom = target.rpartition("@")
        if not local or not is_dot_atom_local(local) or "@" in local:
            raise InvalidAnswer("aliases", value, also(expected, _("{target} is not a mail address").format(
                target=target)))
        problem = domain_problem(dom.rstrip("."), min_labels=2)
        if problem:
            raise InvalidAnswer("aliases", value, also(expected, f"{target}: {problem}"))
        return target
    if not _ALIAS_NAME.match(target):
        raise InvalidAnswer("aliases", value, also(expected, _(
            "{target} is neither a local name nor a mail address").format(target=target)))
    return target


def aliases(value, *, admin, is_local_name):
    """Extra aliases: "name: target [target...], name2: target".

    admin is the admin account (root and postmaster already go there);
    is_local_name(name) tells whether a local target exists outside our
    aliases (an account or an alias in /etc/aliases).
    Returns a tuple of (name, (targets...)).
    """
    expected = _("expected entries like {example}").format(example="webmaster: alice, sales: bob carol@example.net")
    text = plain_text("aliases", value, expected).lower()
    entries = []
    names = {}
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        name, colon, rest = entry.partition(":")
        name = name.strip()
        targets = rest.split()
        if not colon or not targets:
            # Translators: an entry is one alias, such as "sales: bob carol@example.net".
            raise InvalidAnswer("aliases", value, also(expected, _(
                "'{entry}' has no targets after a colon").format(entry=entry)))
        if not _ALIAS_NAME.match(name):
            raise InvalidAnswer("aliases", value, also(expected, _(
                "'{name}' is not a valid alias name").format(name=name)))
        if name in ("root", "postmaster"):
            raise InvalidAnswer("aliases", value, also(expected, _(
                "{name} is set by the admin account question").format(name=name)))
        if name == admin:
            raise InvalidAnswer("aliases", value, also(expected, _(
                "{name} is the admin account itself").format(name=name)))
        if name in names:
            raise InvalidAnswer("aliases", value, also(expected, _("{name} is given twice").format(name=name)))
        checked = []
        for target in targets:
            target = _alias_target(value, target, expected)
            if target not in checked:
                checked.append(target)
        names[name] = checked
        entries.append((name, tuple(checked)))

    # Every local target must lead somewhere, and no alias may lead back to itself.
    for name, targets in entries:
        for target in targets:
            if "@" in target or target in names or target in ("root", "postmaster", admin):
                continue
            if not is_local_name(target):
                raise InvalidAnswer("aliases", value, also(expected, _(
                    "{name}: {target} is neither a local account nor an alias").format(name=name, target=target)))
    for start in names:
        seen, stack = set(), [start]
        while stack:
            for target in names.get(stack.pop(), ()):
                if target == start:
                    raise InvalidAnswer("aliases", value, also(expected, _(
                        "{name} leads back to itself (an alias loop)").format(name=start)))
                if target in names and target not in seen:
                    seen.add(target)
                    stack.append(target)
    return tuple(entries)


def format_aliases(entries):
    return ", ".join(f"{name}: {' '.join(targets)}" for name, targets in entries)
