"""The access lists of mailsetup-filter: clients (IP address or network),
sender domains and sender addresses that are allowed or denied.

Pure code (no files, no commands): parsing what a user types, and the files
that carry the lists to Postfix and rspamd.  The Postfix tables are also the
lists' only record, read back by `mailsetup access list`:

    client-access.cidr  cidr: table, first match wins, so the most specific
                        network comes first.  deny -> REJECT (5xx at RCPT);
                        allow -> OK (the DNS blocklists are skipped).
    sender-access       texthash: table (no postmap; re-read on reload).
                        Postfix looks up the whole address first, then the
                        domain and its parents: an allowed address wins over
                        its denied domain, and a domain covers its subdomains.

The rspamd maps list what is allowed; those clients and senders skip
greylisting (doc/rspamd-facts.md, "Access lists").
"""

import ipaddress
from dataclasses import dataclass

from mailsetup import validate
from mailsetup.names import domain_problem
from mailsetup.errors import MailsetupError
from mailsetup.i18n import _

ALLOW, DENY = "allow", "deny"
IP, DOMAIN, ADDRESS = "ip", "domain", "address"
KINDS = (IP, DOMAIN, ADDRESS)

# A network wider than these is almost certainly a typo (0.0.0.0/0 would let
# in, or shut out, the whole internet).
MIN_PREFIX = {4: 8, 6: 16}

CLIENT_TABLE = "client-access.cidr"
SENDER_TABLE = "sender-access"
RSPAMD_MAPS = {IP: "mailsetup-allow-ip.map", DOMAIN: "mailsetup-allow-from-domain.map",
               ADDRESS: "mailsetup-allow-from-address.map"}

HEADER = "# Written by mailsetup; change it with `mailsetup access`.\n"
# What Postfix appends to its "Client host rejected:" / "Sender address rejected:".
CLIENT_REPLY = "Access denied by the administrator"
SENDER_REPLY = "Sender blocked by the administrator"
ACTION_WORD = {ALLOW: "OK", DENY: "REJECT"}


class AccessError(MailsetupError):
    """A wrong entry or a damaged table; the message is one line for the user."""


@dataclass(frozen=True)
class Entry:
    kind: str
    value: str   # normalized: lower case, an address without /32 or /128

    def sort_key(self):
        if self.kind == IP:
            net = ipaddress.ip_network(self.value)
            # most specific first (cidr: first match wins), then by address
            return (0, net.version, -net.prefixlen, int(net.network_address))
        return (1 if self.kind == DOMAIN else 2, self.value)


def parse_entry(text):
    """An Entry from what the user typed: 203.0.113.5, 198.51.100.0/24,
    2001:db8::/48, example.org or someone@example.org."""
    value = text.strip()
    expected = _("expected an IP address or network (203.0.113.5, 198.51.100.0/24), "
                 "a domain (example.org) or a sender address (someone@example.org)")
    if not value or any(c.isspace() or c in "#\"'\\" for c in value) or not value.isprintable():
        raise AccessError(_("\"{value}\" is not valid: {expected}").format(value=text, expected=expected))
    if "@" in value:
        local, _sep, domain = value.rpartition("@")
        problem = domain_problem(domain.lower().rstrip("."), 2) if domain else _("no domain")
        if not local or "@" in local or problem:
            raise AccessError(_("\"{value}\" is not valid: {expected}").format(
                value=text, expected=validate.also(expected, problem or _("not one address"))))
        return Entry(ADDRESS, local.lower() + "@" + domain.lower().rstrip("."))
    if ":" in value or value.replace(".", "").replace("/", "").isdigit():
        return Entry(IP, _network(text, value, expected))
    name = value.lower().rstrip(".")
    problem = domain_problem(name, 2)
    if problem:
        raise AccessError(_("\"{value}\" is not valid: {expected}").format(
            value=text, expected=validate.also(expected, problem)))
    return Entry(DOMAIN, name)


def _network(text, value, expected):
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as err:
        try:
            loose = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise AccessError(_("\"{value}\" is not valid: {expected}").format(
                value=text, expected=validate.also(expected, str(err)))) from None
        raise AccessError(_("\"{value}\" is not a network address: did you mean {network}?").format(
            value=text, network=loose)) from None
    if net.prefixlen < MIN_PREFIX[net.version]:
        raise AccessError(_("\"{value}\" is too wide: expected a network of at most /{prefix} (IPv{version})")
                          .format(value=text, prefix=MIN_PREFIX[net.version], version=net.version))
    return str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)


class AccessLists:
    """Entry -> ALLOW or DENY, in the order they were added."""

    def __init__(self, actions=None):
        self.actions = dict(actions or {})

    def __eq__(self, other):
        return isinstance(other, AccessLists) and self.actions == other.actions

    def set(self, entry, action):
        """Put entry on the list `action`; the action it had before (None, ALLOW or DENY)."""
        before = self.actions.get(entry)
        self.actions[entry] = action
        return before

    def remove(self, entry):
        return self.actions.pop(entry, None)

    def sorted(self, kind=None):
        return sorted((e for e in self.actions if kind is None or e.kind == kind), key=Entry.sort_key)

    def rows(self):
        """[(action, kind, value)] for showing, allow list first."""
        return [(self.actions[e], e.kind, e.value) for action in (ALLOW, DENY)
                for e in self.sorted() if self.actions[e] == action]

    # -- the files

    def client_table(self):
        lines = []
        for e in self.sorted(IP):
            action = self.actions[e]
            lines.append(f"{e.value} REJECT {CLIENT_REPLY}" if action == DENY else f"{e.value} OK")
        return (HEADER + "".join(line + "\n" for line in lines)).encode()

    def sender_table(self):
        lines = []
        for e in self.sorted(DOMAIN) + self.sorted(ADDRESS):
            action = self.actions[e]
            lines.append(f"{e.value} REJECT {SENDER_REPLY}" if action == DENY else f"{e.value} OK")
        return (HEADER + "".join(line + "\n" for line in lines)).encode()

    def rspamd_map(self, kind):
        allowed = [e.value for e in self.sorted(kind) if self.actions[e] == ALLOW]
        return (HEADER + "".join(v + "\n" for v in allowed)).encode()


def parse_tables(client_data, sender_data, names=(CLIENT_TABLE, SENDER_TABLE)):
    """AccessLists from the two Postfix tables (bytes or None if missing)."""
    lists = AccessLists()
    for name, data, kinds in ((names[0], client_data, (IP,)), (names[1], sender_data, (DOMAIN, ADDRESS))):
        for number, line in enumerate((data or b"").decode("utf-8", "replace").splitlines(), 1):
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            word = fields[1].upper() if len(fields) > 1 else ""
            try:
                entry = parse_entry(fields[0])
            except AccessError as err:
                raise AccessError(f"{name}:{number}: {err}") from None
            if entry.kind not in kinds or word not in ("OK", "REJECT"):
                raise AccessError(_("{file}:{line}: expected \"ENTRY OK\" or \"ENTRY REJECT text\": {text}").format(
                    file=name, line=number, text=line.strip()))
            lists.set(entry, ALLOW if word == "OK" else DENY)
    return lists
