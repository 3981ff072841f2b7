"""Postfix main.cf: the keys mailsetup manages, changed with postconf only.

Outgoing TLS: smtp_tls_security_level = dane and smtp_dns_support_level = dnssec
when the system's resolver validates DNSSEC (mailsetup/dnssec.py, asked once
per apply through System.dnssec_validates()), else smtp_tls_security_level = may
and no smtp_dns_support_level line (Postfix's default, no DNSSEC). Purge puts
back what both keys were before (postfix-originals).
"""

import re

from mailsetup.postfix_keys import MainCfKeys

MIB = 1024 * 1024

MANAGED_KEYS = (
    "myhostname",
    "mydomain",
    "myorigin",
    "mydestination",
    "relayhost",
    "mynetworks",
    "message_size_limit",
    "inet_interfaces",
    "inet_protocols",
    "recipient_delimiter",
    "alias_maps",
    "alias_database",
    "default_transport",
    "relay_transport",
    "smtpd_relay_restrictions",
    "smtp_tls_security_level",
    "smtp_dns_support_level",
)

# Keys whose change needs a stop and start of Postfix; a reload is not enough.
RESTART_KEYS = ("inet_interfaces", "inet_protocols")

# Entries of mydestination that are not "other destinations" when read back.
_IMPLIED_DESTINATIONS = {"$myhostname", "${myhostname}", "$mydomain", "${mydomain}", "localhost",
                         "localhost.$mydomain", "localhost.${mydomain}", "localhost.localdomain",
                         "localdomain"}

# Refuse mail for foreign domains with 5xx (Debian's default defers with 4xx).
RELAY_RESTRICTIONS = "permit_mynetworks permit_sasl_authenticated reject_unauth_destination"

LOOPBACK_ONLY = ("satellite", "local")

# smtp_tls_security_level when the resolver validates DNSSEC, and when it does not.
DANE, MAY = "dane", "may"


def outgoing_tls(validating):
    """The outgoing TLS keys: DANE with a validating resolver, else opportunistic TLS."""
    if validating:
        return {"smtp_tls_security_level": DANE, "smtp_dns_support_level": "dnssec"}
    return {"smtp_tls_security_level": MAY, "smtp_dns_support_level": None}


def _split_list(value):
    return [item for item in re.split(r"[\s,]+", value or "") if item]


def _with_map_first(current, ours):
    """A map list with our table first and every other table kept after it."""
    rest = [m for m in _split_list(current) if m != ours]
    return ", ".join([ours] + rest)


def mydestination(settings, virtual_domains=()):
    """The domains delivered to Unix accounts here, as main.cf and postfix/destinations hold them.

    Written out, not as $myhostname, $mydomain: Postfix's own config script
    reads it back expanded (postconf -hx), and the same text on both sides
    keeps a later reconfigure from rewriting it. Domains with mailboxes
    (mailsetup-imap's virtual domains) are left out: Postfix wants a domain
    in one class only.
    """
    virtual = {d.lower() for d in virtual_domains}
    return ", ".join(d for d in dict.fromkeys(
        (settings.hostname, settings.mail_domain, "localhost") + settings.other_destinations)
        if d.lower() not in virtual)


class PostfixMain(MainCfKeys):
    """The core's keys; what they should be also depends on main.cf's effective
    alias settings, so read_current() is {"explicit": key -> value or None,
    "effective": the alias settings}, and desired() takes it as a second
    argument (unlike MainCfKeys.desired(settings))."""
    name = "main.cf"
    MANAGED_KEYS = MANAGED_KEYS
    _validating = None

    def dnssec_validates(self):
        """Whether the resolver validates DNSSEC, asked once for this component (one apply)."""
        if self._validating is None:
            self._validating = self.system.dnssec_validates()
        return self._validating

    def read_current(self):
        effective = self.postconf.effective(["alias_maps", "alias_database", "default_database_type"])
        return {"explicit": super().read_current(), "effective": effective}

    def desired(self, settings, current):
        """key -> value for every managed key (None: no such line), from the settings and
        read_current(): our alias table first in alias_maps and alias_database."""
        explicit, effective = current["explicit"], current["effective"]
        ours = f"{effective['default_database_type']}:{self.system.aliases_path}"
        local_only = settings.mailer_type == "local"

        def transport(key):
            # Local-only delivery bounces everything else; other setups use Postfix's
            # default transports, so a leftover "error" is removed and anything else kept.
            if local_only:
                return "error"
            return None if explicit[key] == "error" else explicit[key]

        return {
            "myhostname": settings.hostname,
            "mydomain": settings.mail_domain,
            "myorigin": self.system.mailname_path,
            "mydestination": mydestination(settings, self.system.virtual_domains()),
            "relayhost": settings.relayhost,
            "mynetworks": " ".join(settings.mynetworks),
            "message_size_limit": str(settings.message_size_limit * MIB),
            "inet_interfaces": "loopback-only" if settings.mailer_type in LOOPBACK_ONLY else "all",
            "inet_protocols": settings.inet_protocols,
            "recipient_delimiter": settings.recipient_delimiter,
            "alias_maps": _with_map_first(effective["alias_maps"], ours),
            "alias_database": _with_map_first(effective["alias_database"], ours),
            "default_transport": transport("default_transport"),
            "relay_transport": transport("relay_transport"),
            "smtpd_relay_restrictions": RELAY_RESTRICTIONS,
            **outgoing_tls(self.dnssec_validates()),
        }

    def plan(self, settings, current):
        """key -> new value (None: remove the line) for the keys that differ."""
        explicit = current["explicit"]
        return {k: v for k, v in self.desired(settings, current).items() if explicit[k] != v}

    def record_originals(self, state, plan, current):
        super().record_originals(state, plan, current["explicit"])

    @staticmethod
    def needs_restart(plan):
        return any(key in plan for key in RESTART_KEYS)

    @staticmethod
    def answers_from_system(current):
        """The answers main.cf reflects, from the lines it sets explicitly."""
        explicit = current["explicit"]
        answers = {}
        if explicit["mydomain"]:
            answers["mail_domain"] = explicit["mydomain"]
        if explicit["myhostname"]:
            answers["hostname"] = explicit["myhostname"]
        relay = explicit["relayhost"] or ""
        if explicit["default_transport"] == "error":
            answers["mailer_type"] = "local"
        elif not relay:
            answers["mailer_type"] = "internet"
        elif explicit["inet_interfaces"] == "loopback-only":
            answers["mailer_type"] = "satellite"
        else:
            answers["mailer_type"] = "smarthost"
        answers["relayhost"] = relay
        if explicit["mydestination"] is not None:
            implied = _IMPLIED_DESTINATIONS | {explicit["myhostname"], explicit["mydomain"]}
            answers["other_destinations"] = ", ".join(
                d for d in _split_list(explicit["mydestination"]) if d not in implied)
        if explicit["mynetworks"]:
            answers["mynetworks"] = " ".join(_split_list(explicit["mynetworks"]))
        limit = explicit["message_size_limit"]
        if limit and limit.isdigit() and int(limit) > 0:
            answers["message_size_limit"] = str(max(1, -(-int(limit) // MIB)))
        protocols = _split_list(explicit["inet_protocols"])
        if protocols:
            answers["inet_protocols"] = {("ipv4",): "ipv4", ("ipv6",): "ipv6"}.get(tuple(protocols), "all")
        if explicit["recipient_delimiter"] is not None:
            answers["recipient_delimiter"] = explicit["recipient_delimiter"]
        return answers
