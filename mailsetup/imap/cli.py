"""The commands of `mailsetup` that manage mailsetup-imap's mail: domains,
mailboxes, aliases, distribution lists and CSV imports.

    mailsetup domain  add DOMAIN | del DOMAIN [--force] | list [--json]
    mailsetup mailbox add ADDRESS [--quota SIZE] | del ADDRESS [--force] [--purge-mail]
                      | passwd ADDRESS | quota ADDRESS SIZE | list [DOMAIN] [--json]
    mailsetup alias   add ADDRESS TARGET... | del ADDRESS [--force] | list [DOMAIN] [--json]
    mailsetup list    add LIST [MEMBER...] | del LIST [--force] | members [LIST] [--json]
                      | subscribe LIST MEMBER... | unsubscribe LIST MEMBER...
    mailsetup import  FILE.csv

Every change is one store transaction (mailboxes/store.py): checked as a
whole, then committed all-or-nothing, or refused with one line and nothing
changed. The Postfix maps and Dovecot's users file need no reload; only a
change of the domains brings the core settings in line again (mydestination
must not name a virtual domain), and if that fails the domain change is
undone. Passwords are read from the terminal (twice) or as one line from
standard input, never from the command line (visible in ps).
"""

import contextlib
import getpass
import os
import sys

from mailsetup.cli import common
from mailsetup.cli.common import EXIT_OK, command, dump_json, group, json_option
from mailsetup.errors import MailsetupError
from mailsetup.i18n import _, ngettext
from mailsetup.imap.mailboxes import model, passwords
from mailsetup.imap.mailboxes.hashing import DoveadmHasher
from mailsetup.imap.mailboxes.importer import import_csv
from mailsetup.imap.mailboxes.model import MailboxError, format_quota, show, split_targets
from mailsetup.imap.mailboxes.system import configured, maildir_of, remove_mail, require_configured
from mailsetup.reapply import reapply_core


class Tools(common.Tools):
    """What the commands act on. Tests pass a scratch System, their own store,
    a fast hasher and a stand-in for the core; None means the real one."""

    def __init__(self, system, store=None, hasher=None, reapply=None):
        super().__init__(system)
        self._store = store
        self._hasher = hasher
        self.reapply = reapply or reapply_core

    def store(self):
        """The mailbox store; refused (one line) while mailsetup-imap is not configured."""
        if self._store is None or not configured(self.system):
            self._store = require_configured(self.system)
        return self._store

    def hasher(self):
        if self._hasher is None:
            self._hasher = DoveadmHasher()
        return self._hasher


# ------------------------------------------------------------------ helpers

def _fail(value, problem):
    raise MailboxError(f"{show(value)}: {problem}", value)


def _say(line):
    print(line)


def _locked(store):
    """The store's lock for a whole command (commit, core, undo), where the store has one."""
    return store.locked() if hasattr(store, "locked") else contextlib.nullcontext()


def _targets(values):
    """Addresses as given on the command line: separate arguments, or separated by commas or spaces."""
    result = []
    for value in values:
        for t in split_targets(value):
            if t.lower() not in (r.lower() for r in result):
                result.append(t)
    return result


def _quota_text(size):
    # Translators: the quota of a mailbox without a limit.
    return format_quota(size) if size else _("no limit")


def _existing_domain(directory, value):
    name = model.domain(value)
    if name not in directory.domains:
        _fail(name, _("no such domain"))
    return name


def change(tools, edit, domains_change=False):
    """Run edit(directory) in one transaction and return its result.

    With domains_change, bring the core (mydestination) in line afterwards; if
    that fails, put the directory back as it was and refuse with one line."""
    store = tools.store()
    with _locked(store):
        with store.transaction() as directory:
            before = directory.copy() if domains_change else None  # what an undo puts back
            result = edit(directory)
            if domains_change:
                refuse_own_name(tools, directory)
        if domains_change and store.last_changed:
            _reapply_or_undo(tools, store, before)
    return result


def refuse_own_name(tools, directory):
    """The server's own host name as a mailbox domain would take root's and cron's mail
    away from the system accounts (mydestination would lose it): refused, before any write."""
    try:
        host = tools.system.postconf().effective(["myhostname"])["myhostname"].lower()
    except (MailsetupError, OSError, KeyError):
        return
    if host in directory.domains:
        raise MailboxError(_("{name} is the server's own name: its mail (root, postmaster) stays with the "
                             "system accounts").format(name=host))


def _reapply_or_undo(tools, store, before):
    try:
        tools.reapply(tools.system)
    except (MailsetupError, OSError) as err:
        before.origin = store.load().origin
        store.commit(before)
        raise MailboxError(_("the Postfix settings could not follow the change of domains, so nothing was "
                             "changed: {error}").format(error=err)) from None


def read_password(addr):
    """The new password of addr: typed twice at a terminal, else one line of standard input."""
    stdin = sys.stdin
    try:
        if stdin is not None and stdin.isatty():
            first = getpass.getpass(_("New password for {address}: ").format(address=addr))
            second = getpass.getpass(_("Retype the new password: "))
            if first != second:
                raise MailboxError(_("the passwords do not match; nothing was changed"))
            return model.password(first)
        line = stdin.readline() if stdin is not None else ""
    except (EOFError, KeyboardInterrupt):
        print(file=sys.stderr)
        raise MailboxError(_("no password given; nothing was changed")) from None
    if not line:
        raise MailboxError(_("no password on standard input: give it as one line there, or run the command "
                             "from a terminal to type it"))
    return model.password(line.rstrip("\r\n"))


# ------------------------------------------------------------------ domain

def cmd_domain_add(args, tools):
    name = change(tools, lambda d: d.add_domain(args.domain), domains_change=True)
    _say(_("domain {domain} added").format(domain=name))
    return EXIT_OK


def cmd_domain_del(args, tools):
    counts = {}

    def edit(d):
        mailboxes, aliases, lists = d.in_domain(model.domain(args.domain))
        counts.update(mailboxes=len(mailboxes), aliases=len(aliases), lists=len(lists))
        return d.del_domain(args.domain, force=args.force)

    name = change(tools, edit, domains_change=True)
    if counts["mailboxes"]:
        _say(_("domain {domain} deleted with {mailboxes} mailbox(es), {aliases} alias(es) and {lists} list(s); "
               "the mail stays in {path}").format(domain=name, path=os.path.join(tools.system.vmail_dir, name),
                                                  **counts))
    elif counts["aliases"] or counts["lists"]:
        _say(_("domain {domain} deleted with {aliases} alias(es) and {lists} list(s)").format(
            domain=name, aliases=counts["aliases"], lists=counts["lists"]))
    else:
        _say(_("domain {domain} deleted").format(domain=name))
    return EXIT_OK


def cmd_domain_list(args, tools):
    directory = tools.store().load()
    rows = []
    for name in sorted(directory.domains):
        mailboxes, aliases, lists = directory.in_domain(name)
        rows.append({"domain": name, "mailboxes": len(mailboxes), "aliases": len(aliases), "lists": len(lists)})
    if args.json:
        dump_json(rows)
        return EXIT_OK
    width = max((len(r["domain"]) for r in rows), default=0)
    for r in rows:
        _say(r["domain"].ljust(width) + "  " + _("{mailboxes} mailbox(es), {aliases} alias(es), {lists} list(s)")
             .format(**r))
    return EXIT_OK


# ------------------------------------------------------------------ mailbox

def cmd_mailbox_add(args, tools):
    store = tools.store()
    size = model.quota(args.quota) if args.quota is not None else 0
    # Everything but the password is checked first, so nobody types a password for a refused change.
    store.load().add_mailbox(args.address, "{PENDING}x", size)
    password_hash = tools.hasher()(read_password(model.address(args.address)))
    addr = change(tools, lambda d: d.add_mailbox(args.address, password_hash, size))
    home = maildir_of(tools.system, addr)
    if os.path.isdir(home):
        print("mailsetup: " + _("note: {path} still holds the mail of an earlier mailbox with this address; the "
                                "new mailbox gets it").format(path=home), file=sys.stderr)
    _say(_("mailbox {address} added (quota: {quota})").format(address=addr, quota=_quota_text(size)))
    return EXIT_OK


def cmd_mailbox_del(args, tools):
    addr = change(tools, lambda d: d.del_mailbox(args.address, force=args.force))
    path = maildir_of(tools.system, addr)
    if args.purge_mail:
        if remove_mail(tools.system, addr):
            _say(_("mailbox {address} and its mail deleted").format(address=addr))
        else:
            _say(_("mailbox {address} deleted (it had no mail)").format(address=addr))
        return EXIT_OK
    _say(_("mailbox {address} deleted; its mail stays in {path} (--purge-mail deletes it)").format(
        address=addr, path=path))
    return EXIT_OK


def cmd_mailbox_passwd(args, tools):
    store = tools.store()
    passwords.require_mailbox(store, args.address)  # refuses an unknown mailbox before the prompt
    plaintext = read_password(model.address(args.address))
    with _locked(store):
        addr = passwords.change_password(store, tools.hasher(), args.address, plaintext)
    _say(_("password of {address} changed").format(address=addr))
    return EXIT_OK


def cmd_mailbox_quota(args, tools):
    size = model.quota(args.size)
    addr = change(tools, lambda d: d.set_quota(args.address, size))
    _say(_("quota of {address}: {quota}").format(address=addr, quota=_quota_text(size)))
    return EXIT_OK


def cmd_mailbox_list(args, tools):
    directory = tools.store().load()
    name = _existing_domain(directory, args.domain) if args.domain else None
    rows = [{"address": a, "quota_bytes": m.quota_bytes, "quota": format_quota(m.quota_bytes)}
            for a, m in sorted(directory.mailboxes.items()) if name is None or model.domain_of(a) == name]
    if args.json:
        dump_json(rows)
        return EXIT_OK
    width = max((len(r["address"]) for r in rows), default=0)
    for r in rows:
        _say(f"{r['address'].ljust(width)}  {_quota_text(r['quota_bytes'])}")
    return EXIT_OK


# ------------------------------------------------------------------ alias

def cmd_alias_add(args, tools):
    targets = _targets(args.targets)

    def edit(d):
        key = d.add_alias(args.address, targets)
        return key, d.aliases[key]  # as stored: lower case, without duplicates

    key, stored = change(tools, edit)
    if model.is_catchall(key):
        _say(_("catch-all of {domain} added: {targets}").format(domain=key[1:], targets=", ".join(stored)))
    else:
        _say(_("alias {address} added: {targets}").format(address=key, targets=", ".join(stored)))
    return EXIT_OK


def cmd_alias_del(args, tools):
    key = change(tools, lambda d: d.del_alias(args.address, force=args.force))
    if model.is_catchall(key):
        _say(_("catch-all of {domain} deleted").format(domain=key[1:]))
    else:
        _say(_("alias {address} deleted").format(address=key))
    return EXIT_OK


def cmd_alias_list(args, tools):
    directory = tools.store().load()
    name = _existing_domain(directory, args.domain) if args.domain else None
    rows = [{"address": k, "catch_all": model.is_catchall(k), "targets": list(t)}
            for k, t in sorted(directory.aliases.items()) if name is None or model.domain_of(k) == name]
    if args.json:
        dump_json(rows)
        return EXIT_OK
    for r in rows:
        _say(f"{r['address']} -> {', '.join(r['targets'])}")
    return EXIT_OK


# ------------------------------------------------------------------ list

def cmd_list_add(args, tools):
    members = _targets(args.members)

    def edit(d):
        addr = d.add_list(args.list, members)
        return addr, len(d.lists[addr])

    addr, count = change(tools, edit)
    _say(ngettext("list {list} added with {count} member", "list {list} added with {count} members",
                  count).format(list=addr, count=count))
    return EXIT_OK


def cmd_list_del(args, tools):
    addr = change(tools, lambda d: d.del_list(args.list, force=args.force))
    _say(_("list {list} deleted").format(list=addr))
    return EXIT_OK


def cmd_list_members(args, tools):
    directory = tools.store().load()
    if args.list:
        addr = model.address(args.list, _("a list address"))
        if directory.kind(addr) != "list":
            _fail(addr, _("no such list"))
        members = directory.lists[addr]
        if args.json:
            dump_json({"list": addr, "members": members})
        else:
            for member in members:
                _say(member)
        return EXIT_OK
    rows = [{"list": k, "members": m} for k, m in sorted(directory.lists.items())]
    if args.json:
        dump_json(rows)
        return EXIT_OK
    for r in rows:
        _say(f"{r['list']}: {', '.join(r['members'])}".rstrip())
    return EXIT_OK


def _change_members(args, tools, change_one):
    """Subscribe or unsubscribe the members named on the command line, in one transaction;
    (the members changed, the list's address)."""
    members = _targets(args.members)

    def edit(d):
        return [change_one(d, args.list, m) for m in members], model.address(args.list, _("a list address"))

    return change(tools, edit)


def cmd_list_subscribe(args, tools):
    added, addr = _change_members(args, tools, model.Directory.subscribe)
    _say(_("subscribed to {list}: {members}").format(list=addr, members=", ".join(added)))
    return EXIT_OK


def cmd_list_unsubscribe(args, tools):
    removed, addr = _change_members(args, tools, model.Directory.unsubscribe)
    _say(_("unsubscribed from {list}: {members}").format(list=addr, members=", ".join(removed)))
    return EXIT_OK


# ------------------------------------------------------------------ import

def cmd_import(args, tools):
    store = tools.store()
    with _locked(store):
        before = store.load()
        counts, changed = import_csv(store, args.file, tools.hasher(),
                                     check=lambda directory: refuse_own_name(tools, directory))
        if counts["domain"] and changed:
            _reapply_or_undo(tools, store, before)
    _say(_("{file}: imported {domains} domain(s), {mailboxes} mailbox(es), {aliases} alias(es) and {lists} "
           "list(s)").format(file=args.file, domains=counts["domain"], mailboxes=counts["mailbox"],
                             aliases=counts["alias"], lists=counts["list"]))
    return EXIT_OK


# ------------------------------------------------------------------ the parser

# The commands register() adds; cli/__init__.py names them too, for when this package is not installed.
COMMANDS = ("domain", "mailbox", "alias", "list", "import")


def register(sub):
    """Add the commands domain, mailbox, alias, list and import (COMMANDS) to the subparsers of `mailsetup`."""
    force_help = _("also delete the aliases and list memberships that deliver to it")

    domain = group(sub, "domain", _("add, delete or list mail domains"),
                   _("Manage the mail domains whose mailboxes are on this server."), tools=Tools)
    arguments, _opts = command(domain, "add", cmd_domain_add, _("add a mail domain"))
    arguments.add_argument("domain", metavar="DOMAIN", help=_("the domain, such as example.org"))
    arguments, options = command(domain, "del", cmd_domain_del, _("delete a mail domain"),
                                 _("Delete a mail domain. Refused while it has mailboxes, aliases or lists, "
                                   "unless forced; their mail stays on disk."))
    arguments.add_argument("domain", metavar="DOMAIN", help=_("the domain"))
    options.add_argument("--force", action="store_true",
                         help=_("also delete its mailboxes, aliases and lists"))
    _arguments, options = command(domain, "list", cmd_domain_list, _("list the mail domains"))
    json_option(options)

    mailbox = group(sub, "mailbox", _("add, delete or change mailboxes"),
                    _("Manage mailboxes. Passwords are typed twice at a terminal, or read as one line from "
                      "standard input; never give them on the command line."), tools=Tools)
    arguments, options = command(mailbox, "add", cmd_mailbox_add, _("add a mailbox"))
    arguments.add_argument("address", metavar="ADDRESS", help=_("the address, such as alice@example.org"))
    options.add_argument("--quota", metavar="SIZE",
                         help=_("the largest size of its mail, such as 500M or 2G (default: no limit)"))
    arguments, options = command(mailbox, "del", cmd_mailbox_del, _("delete a mailbox"),
                                 _("Delete a mailbox; its mail stays on disk unless --purge-mail is given."))
    arguments.add_argument("address", metavar="ADDRESS", help=_("the address"))
    options.add_argument("--purge-mail", action="store_true", help=_("also delete its mail"))
    options.add_argument("--force", action="store_true", help=force_help)
    arguments, _opts = command(mailbox, "passwd", cmd_mailbox_passwd, _("set the password of a mailbox"))
    arguments.add_argument("address", metavar="ADDRESS", help=_("the address"))
    arguments, _opts = command(mailbox, "quota", cmd_mailbox_quota, _("set the quota of a mailbox"))
    arguments.add_argument("address", metavar="ADDRESS", help=_("the address"))
    arguments.add_argument("size", metavar="SIZE", help=_("such as 500M or 2G; 0 for no limit"))
    arguments, options = command(mailbox, "list", cmd_mailbox_list, _("list the mailboxes and their quotas"))
    arguments.add_argument("domain", metavar="DOMAIN", nargs="?", help=_("only those of this domain"))
    json_option(options)

    alias = group(sub, "alias", _("add, delete or list aliases (forwards) and catch-alls"),
                  _("Manage aliases: addresses whose mail goes to other addresses, here or elsewhere. "
                    "The address @DOMAIN is the catch-all of the domain: it gets the mail for every address "
                    "of the domain that does not exist."), tools=Tools)
    arguments, _opts = command(alias, "add", cmd_alias_add, _("add an alias or a catch-all"))
    arguments.add_argument("address", metavar="ADDRESS", help=_("the alias, or @DOMAIN for a catch-all"))
    arguments.add_argument("targets", metavar="TARGET", nargs="+", help=_("where its mail goes"))
    arguments, options = command(alias, "del", cmd_alias_del, _("delete an alias or a catch-all"))
    arguments.add_argument("address", metavar="ADDRESS", help=_("the alias, or @DOMAIN for a catch-all"))
    options.add_argument("--force", action="store_true", help=force_help)
    arguments, options = command(alias, "list", cmd_alias_list, _("list the aliases and catch-alls"))
    arguments.add_argument("domain", metavar="DOMAIN", nargs="?", help=_("only those of this domain"))
    json_option(options)

    lists = group(sub, "list", _("add, delete or change distribution lists"),
                  _("Manage distribution lists: mail to the list reaches every member once."), tools=Tools)
    arguments, _opts = command(lists, "add", cmd_list_add, _("add a distribution list"))
    arguments.add_argument("list", metavar="LIST", help=_("the address of the list"))
    arguments.add_argument("members", metavar="MEMBER", nargs="*", help=_("its first members"))
    arguments, options = command(lists, "del", cmd_list_del, _("delete a distribution list"))
    arguments.add_argument("list", metavar="LIST", help=_("the address of the list"))
    options.add_argument("--force", action="store_true", help=force_help)
    arguments, options = command(lists, "members", cmd_list_members,
                                 _("list the members of a list (of every list without LIST)"))
    arguments.add_argument("list", metavar="LIST", nargs="?", help=_("the address of the list"))
    json_option(options)
    arguments, _opts = command(lists, "subscribe", cmd_list_subscribe, _("add members to a list"))
    arguments.add_argument("list", metavar="LIST", help=_("the address of the list"))
    arguments.add_argument("members", metavar="MEMBER", nargs="+", help=_("the addresses to add"))
    arguments, _opts = command(lists, "unsubscribe", cmd_list_unsubscribe, _("remove members from a list"))
    arguments.add_argument("list", metavar="LIST", help=_("the address of the list"))
    arguments.add_argument("members", metavar="MEMBER", nargs="+", help=_("the addresses to remove"))

    importer = common.parser(sub, "import", _("create domains, mailboxes, aliases and lists from a CSV file"),
                             _("Create domains, mailboxes, aliases and lists from a CSV file with the columns "
                               "type,address,value,quota, all or nothing: a bad line fails the import with its number "
                               "and changes nothing."), tools=Tools)
    arguments = common.arguments(importer)
    arguments.add_argument("file", metavar="FILE.csv", help=_("the CSV file"))
    common.options(importer)
    importer.set_defaults(func=cmd_import)
