"""The command `mailsetup access` (mailsetup-filter): allow or deny clients
by IP address or network, and senders by domain or address.

    mailsetup access allow ENTRY... | deny ENTRY... | remove ENTRY... | list [--json]

A denied client or sender gets a 5xx at RCPT from Postfix; an allowed client
skips the DNS blocklists, and allowed clients and senders skip greylisting
(filter/access.py has how).  Every entry is checked before anything is
written: one bad entry and nothing changes.
"""

from mailsetup.cli.common import EXIT_OK, command, dump_json, group, json_option
from mailsetup.filter import access
from mailsetup.filter import access_change
from mailsetup.filter import apply as filter_apply
from mailsetup.filter.access import ALLOW, DENY, AccessError, parse_entry
from mailsetup.filter.components.access_maps import AccessMaps
from mailsetup.i18n import _


def _kind_name(kind):
    return {access.IP: _("client IP"), access.DOMAIN: _("sender domain"),
            access.ADDRESS: _("sender address")}[kind]


def _require_filter(system):
    if not filter_apply.configured(system):
        raise AccessError(_("mailsetup-filter is not set up: install it first (apt install mailsetup-filter)"))


def _parse_all(values):
    """Entries in the order given, each once; the first bad one refuses them all."""
    entries = []
    for value in values:
        entry = parse_entry(value)
        if entry not in entries:
            entries.append(entry)
    return entries


def _change(tools, values, change):
    """Load the lists, apply change(lists, entry) -> message to every entry, write once."""
    system = tools.system
    _require_filter(system)
    entries = _parse_all(values)
    maps = AccessMaps(system)
    with access_change.access_locked(system):
        lists = maps.load()
        messages = [change(lists, entry) for entry in entries]
        access_change.change_access(system, lists)
    for line in messages:
        print(line)
    return EXIT_OK


def _put(action):
    def change(lists, entry):
        before = lists.set(entry, action)
        if before == action:
            return (_("{entry}: already allowed") if action == ALLOW else _("{entry}: already denied")).format(
                entry=entry.value)
        if before is None:
            return (_("{entry}: allowed ({kind})") if action == ALLOW else _("{entry}: denied ({kind})")).format(
                entry=entry.value, kind=_kind_name(entry.kind))
        return (_("{entry}: allowed (was denied)") if action == ALLOW else _("{entry}: denied (was allowed)")).format(
            entry=entry.value)
    return change


def _remove(lists, entry):
    if lists.remove(entry) is None:
        raise AccessError(_("{entry}: not on the access lists").format(entry=entry.value))
    return _("{entry}: removed").format(entry=entry.value)


def cmd_allow(args, tools):
    return _change(tools, args.entries, _put(ALLOW))


def cmd_deny(args, tools):
    return _change(tools, args.entries, _put(DENY))


def cmd_remove(args, tools):
    return _change(tools, args.entries, _remove)


def cmd_list(args, tools):
    _require_filter(tools.system)
    rows = AccessMaps(tools.system).load().rows()
    if args.json:
        dump_json([{"action": a, "kind": k, "entry": v} for a, k, v in rows])
        return EXIT_OK
    if not rows:
        print(_("The access lists are empty."))
    words = {ALLOW: _("allow"), DENY: _("deny")}
    width = max([len(words[a]) for a, _k, _v in rows] + [0])
    kind_width = max([len(_kind_name(k)) for _a, k, _v in rows] + [0])
    for action, kind, value in rows:
        print(f"{words[action].ljust(width)}  {_kind_name(kind).ljust(kind_width)}  {value}")
    return EXIT_OK


# The commands register() adds; cli/__init__.py names them too, for when this package is not installed.
COMMANDS = ("access",)


def register(sub):
    """Add the command access (COMMANDS) to the subparsers of `mailsetup`."""
    commands = group(sub, "access", _("allow or deny clients and senders (mailsetup-filter)"),
                     _("Allow or deny mail by client IP address or network, sender domain or sender address. "
                       "Denied clients and senders are refused with a 5xx reply; allowed ones skip greylisting, "
                       "and allowed clients also skip the DNS blocklists. A domain also covers its subdomains "
                       "when denied."))
    entry_help = _("an IP address or network (203.0.113.5, 198.51.100.0/24), a domain or a sender address")
    for name, func, help_ in (("allow", cmd_allow, _("add to the allow list")),
                              ("deny", cmd_deny, _("add to the deny list")),
                              ("remove", cmd_remove, _("take off the access lists"))):
        arguments, _opts = command(commands, name, func, help_)
        arguments.add_argument("entries", metavar="ENTRY", nargs="+", help=entry_help)
    _arguments, options = command(commands, "list", cmd_list, _("show the access lists"))
    json_option(options)
