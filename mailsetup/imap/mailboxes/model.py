"""Virtual domains, mailboxes, aliases and lists: validation and the Directory.

Pure code: nothing here touches the system. Every refusal is a MailboxError
whose str() is one line that names the bad value first and says what is
expected, for example

    alice@example.org: unknown domain example.org (add it first: mailsetup domain add example.org)

What exists is a Directory:

- domains:   {"example.org", ...}
- mailboxes: {"alice@example.org": Mailbox(password_hash, quota_bytes, home)}  (quota 0 = unlimited;
             home: the address of the server that stores its mail, "" for this one)
- aliases:   {"info@example.org": ["alice@example.org", "bob@example.net"],
              "@example.org": ["alice@example.org"]}   (a key "@domain" is the domain's catch-all)
- lists:     {"team@example.org": ["alice@example.org", ...]}  (members; may be empty)

Its methods change it in place and refuse (MailboxError, nothing changed) what
is wrong in itself: a bad address, an unknown domain, a duplicate, an alias
with the address of a mailbox. check() looks at the whole: every target inside
a managed domain must exist, and no alias or list may lead back to itself.
Stores call check() before they commit, so a refused change never reaches disk.

Addresses are kept in lower case (Postfix folds map keys, Dovecot is set to
%Lu / %{user | lower}).
"""

import re
from dataclasses import dataclass

from mailsetup.errors import MailsetupError
from mailsetup.i18n import _
# names.py is the one place that knows DNS names and dot-atom local parts.
from mailsetup.names import domain_problem, is_dot_atom_local

MAX_LOCAL_PART = 64
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024

# Addresses we create (mailboxes, aliases, lists): the local part becomes a
# directory name under /var/vmail/DOMAIN/, so only a safe subset of RFC 5322.
_MANAGED_LOCAL = re.compile(r"^[a-z0-9_](?:[a-z0-9_+-]|\.(?!\.))*(?<!\.)$")
# Targets elsewhere (forwards): any dot-atom local part (names.is_dot_atom_local).
_QUOTA = re.compile(r"^(\d+)\s*([kmgt]?)(?:i?b)?$", re.IGNORECASE)
_UNITS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}
MAX_QUOTA = 1 << 60
# What a password hash looks like in a Dovecot passwd-file: {SCHEME}data, no ':' or spaces.
_HASH = re.compile(r"^\{[A-Za-z0-9._-]+\}[^:\s]+$")


class MailboxError(MailsetupError):
    """A change that cannot be made; str() is the one line shown to the user.

    subject is the address (or domain) the problem is about, so that an import
    can name the line that brought it in.
    """

    def __init__(self, message, subject=None):
        super().__init__(message)
        self.subject = subject

    def __str__(self):
        return self.args[0]


def show(value):
    """A value as it appears at the start of an error line: control characters made visible."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(value))
    if len(text) > 80:
        text = text[:77] + "..."
    if not text or " " in text:
        return f'"{text}"'
    return text


def _fail(value, problem, subject=None):
    raise MailboxError(f"{show(value)}: {problem}", subject)


# ---------------------------------------------------------------- values

def domain(value):
    """A domain name (at least two labels), lower case, without a trailing dot."""
    text = str(value).strip().lower().rstrip(".")
    if not text:
        _fail(value, _("expected a domain name such as {example}").format(example="example.org"))
    if any(not c.isprintable() for c in text):
        _fail(value, _("expected a domain name such as {example}").format(example="example.org"))
    problem = domain_problem(text, 2)
    if problem:
        _fail(value, _("not a domain name: {problem}").format(problem=problem))
    return text


def _split_address(value, what):
    text = str(value).strip().lower()
    local, at, dom = text.rpartition("@")
    if not at or not local:
        # Translators: {what} is "a mailbox address", "an alias address", ...
        _fail(value, _("expected {what} such as {example}").format(what=what, example="alice@example.org"))
    return text, local, dom


def address(value, what=None):
    """An address in a managed domain: lower case, local part of letters, digits, . _ + -."""
    what = what or _("a mail address")
    text, local, dom = _split_address(value, what)
    if len(local) > MAX_LOCAL_PART or not _MANAGED_LOCAL.match(local):
        _fail(value, _("{local} is not a valid local part (letters, digits, . _ + -, at most {count} "
                       "characters, no dot at either end)").format(local=show(local), count=MAX_LOCAL_PART))
    return f"{local}@{domain_of_address(value, dom)}"


def domain_of_address(value, dom):
    text = dom.rstrip(".")
    problem = domain_problem(text, 2) if text else _("the domain is missing")
    if problem:
        _fail(value, _("the domain is not valid: {problem}").format(problem=problem))
    return text


def target(value):
    """Where an alias or list delivers: any mail address (a local mailbox or a forward)."""
    what = _("a mail address")
    text, local, dom = _split_address(value, what)
    if len(local) > MAX_LOCAL_PART or not is_dot_atom_local(local):
        _fail(value, _("{local} is not a valid local part of a mail address").format(local=show(local)))
    return f"{local}@{domain_of_address(value, dom)}"


def alias_key(value):
    """An alias address, or "@domain" for the domain's catch-all."""
    text = str(value).strip().lower()
    if text.startswith("@"):
        return "@" + domain(text[1:])
    return address(value, _("an alias address (or @domain for a catch-all)"))


def is_catchall(key):
    return key.startswith("@")


def domain_of(key):
    return key.rpartition("@")[2]


def quota(value):
    """A quota: "0" (unlimited), or a number with a unit K, M, G, T (powers of 1024). Returns bytes."""
    text = str(value).strip()
    expected = _("expected a size such as {first} or {second}, or 0 for no limit").format(
        first="500M", second="2G")
    if text == "":
        return 0
    match = _QUOTA.match(text)
    if not match:
        _fail(value, expected)
    number, unit = int(match.group(1)), match.group(2).lower()
    if number == 0:
        return 0
    if not unit:
        # A bare number is ambiguous (Dovecot 2.3 reads KiB, 2.4 bytes): ask for a unit.
        _fail(value, _("give a unit: {example}").format(example=f"{number}M"))
    size = number << (10 * _UNITS[unit])
    if size > MAX_QUOTA:
        _fail(value, expected)
    return size


def format_quota(size):
    """Bytes as the largest exact unit, the way both Dovecot 2.3 and 2.4 read it ("10M", "20K")."""
    if size == 0:
        return "0"
    for unit, power in (("T", 4), ("G", 3), ("M", 2), ("K", 1)):
        if size % (1 << (10 * power)) == 0:
            return f"{size >> (10 * power)}{unit}"
    return f"{size}B"


def password(value):
    """A plaintext password as typed: checked, never stored."""
    if len(value) < MIN_PASSWORD_LENGTH:
        raise MailboxError(_("the password is too short: at least {count} characters").format(
            count=MIN_PASSWORD_LENGTH))
    if len(value) > MAX_PASSWORD_LENGTH:
        raise MailboxError(_("the password is too long: at most {count} characters").format(
            count=MAX_PASSWORD_LENGTH))
    if any(c in value for c in "\r\n\0"):
        raise MailboxError(_("the password must not contain line breaks or NUL characters"))
    return value


def is_password_hash(value):
    return bool(_HASH.match(value))


def password_hash(value):
    """A hash as Dovecot reads it: {SCHEME}data, such as doveadm pw prints."""
    if not is_password_hash(value) or value.upper().startswith(("{PLAIN", "{CLEAR", "{CLEARTEXT")):
        raise MailboxError(_("not a password hash: expected {form} as printed by doveadm pw").format(
            form="{SCHEME}..."))
    return value


# ---------------------------------------------------------------- the directory

@dataclass
class Mailbox:
    password_hash: str
    quota_bytes: int = 0
    # The server of a group (PostgreSQL directory) that stores the mail; "" for this one,
    # and with a store of one server. A store that knows its server fills it in at commit.
    home: str = ""


def _mailbox_dict(mailbox):
    data = {"password_hash": mailbox.password_hash, "quota_bytes": mailbox.quota_bytes}
    if mailbox.home:  # only in a group: directory.json of one server stays as it was
        data["home"] = mailbox.home
    return data


class Directory:
    """What exists; see the module docstring. Methods refuse a bad change and leave it as it was."""

    def __init__(self, domains=(), mailboxes=None, aliases=None, lists=None):
        self.domains = set(domains)
        self.mailboxes = dict(mailboxes or {})
        self.aliases = {k: list(v) for k, v in (aliases or {}).items()}
        self.lists = {k: list(v) for k, v in (lists or {}).items()}
        self.origin = None  # set by a store: a token for the version this was loaded from

    # -- serialisation (the stores use it; stable, so an unchanged directory gives the same bytes)

    def to_dict(self):
        return {
            "format": 1,
            "domains": sorted(self.domains),
            "mailboxes": {a: _mailbox_dict(m) for a, m in sorted(self.mailboxes.items())},
            "aliases": {a: list(t) for a, t in sorted(self.aliases.items())},
            "lists": {a: list(m) for a, m in sorted(self.lists.items())},
        }

    @classmethod
    def from_dict(cls, data):
        if data.get("format") != 1:
            raise MailboxError(_("unknown directory format {format}").format(format=data.get("format")))
        return cls(data["domains"],
                   {a: Mailbox(m["password_hash"], int(m["quota_bytes"]), m.get("home", ""))
                    for a, m in data["mailboxes"].items()},
                   data["aliases"], data["lists"])

    def copy(self):
        # By hand: copy.deepcopy took half of a `mailbox add` at 10,000 mailboxes.
        other = Directory(self.domains,
                          {a: Mailbox(m.password_hash, m.quota_bytes, m.home) for a, m in self.mailboxes.items()},
                          self.aliases, self.lists)
        other.origin = self.origin
        return other

    def __eq__(self, other):
        return isinstance(other, Directory) and self.to_dict() == other.to_dict()

    # -- what an address is

    def kind(self, addr):
        """"mailbox", "alias", "list" or None."""
        if addr in self.mailboxes:
            return "mailbox"
        if addr in self.aliases:
            return "alias"
        if addr in self.lists:
            return "list"
        return None

    def _require_domain(self, addr):
        dom = domain_of(addr)
        if dom not in self.domains:
            _fail(addr, _("unknown domain {domain} (add it first: {command})").format(
                domain=dom, command=f"mailsetup domain add {dom}"), addr)

    def _require_new(self, addr):
        kind = self.kind(addr)
        if kind == "mailbox":
            _fail(addr, _("a mailbox with this address already exists"), addr)
        if kind == "alias":
            _fail(addr, _("an alias with this address already exists"), addr)
        if kind == "list":
            _fail(addr, _("a list with this address already exists"), addr)

    def _require(self, addr, kind):
        if self.kind(addr) != kind:
            messages = {"mailbox": _("no such mailbox"), "alias": _("no such alias"), "list": _("no such list")}
            _fail(addr, messages[kind], addr)

    def in_domain(self, dom):
        """The mailboxes, aliases (with the catch-all) and lists of a domain."""
        def mine(key):
            return domain_of(key) == dom
        return ([a for a in self.mailboxes if mine(a)], [a for a in self.aliases if mine(a)],
                [a for a in self.lists if mine(a)])

    # -- domains

    def add_domain(self, name):
        name = domain(name)
        if name in self.domains:
            _fail(name, _("this domain already exists"), name)
        self.domains.add(name)
        return name

    def del_domain(self, name, force=False):
        """Remove a domain; with force also its mailboxes, aliases and lists (and references to them)."""
        name = domain(name)
        if name not in self.domains:
            _fail(name, _("no such domain"), name)
        mailboxes, aliases, lists = self.in_domain(name)
        if (mailboxes or aliases or lists) and not force:
            _fail(name, _("the domain still has {mailboxes} mailbox(es), {aliases} alias(es) and {lists} list(s) "
                          "(delete them first, or force)").format(
                mailboxes=len(mailboxes), aliases=len(aliases), lists=len(lists)), name)
        for addr in mailboxes:
            del self.mailboxes[addr]
        for addr in aliases:
            del self.aliases[addr]
        for addr in lists:
            del self.lists[addr]
        self._drop_references(set(mailboxes) | set(aliases) | set(lists))
        self.domains.discard(name)
        return name

    def _drop_references(self, gone):
        """Remove addresses that no longer exist from every alias and list; an alias left empty goes too."""
        if not gone:
            return
        changed = True
        while changed:  # an alias left empty is gone as well, and so are references to it
            changed = False
            for key in list(self.aliases):
                targets = [t for t in self.aliases[key] if t not in gone]
                if not targets:
                    del self.aliases[key]
                    gone.add(key)
                    changed = True
                else:
                    self.aliases[key] = targets
            for key in self.lists:
                self.lists[key] = [m for m in self.lists[key] if m not in gone]

    def referrers(self, addr):
        """The aliases and lists that deliver to addr."""
        return sorted([k for k, t in self.aliases.items() if addr in t]
                      + [k for k, m in self.lists.items() if addr in m])

    def _require_unreferenced(self, addr, force):
        if force:
            self._drop_references({addr})
            return
        users = self.referrers(addr)
        if users:
            more = f" (+{len(users) - 3})" if len(users) > 3 else ""
            _fail(addr, _("still a target of {names} (remove it there first, or force)").format(
                names=", ".join(users[:3]) + more), addr)

    # -- mailboxes

    def add_mailbox(self, addr, password_hash_, quota_bytes=0):
        addr = address(addr, _("a mailbox address"))
        self._require_domain(addr)
        self._require_new(addr)
        self.mailboxes[addr] = Mailbox(password_hash(password_hash_), _quota_bytes(quota_bytes))
        return addr

    def del_mailbox(self, addr, force=False):
        """Remove a mailbox (its mail stays on disk); refused while aliases or lists deliver to it, unless forced."""
        addr = address(addr, _("a mailbox address"))
        self._require(addr, "mailbox")
        self._require_unreferenced(addr, force)
        del self.mailboxes[addr]
        return addr

    def set_password(self, addr, password_hash_):
        addr = address(addr, _("a mailbox address"))
        self._require(addr, "mailbox")
        self.mailboxes[addr].password_hash = password_hash(password_hash_)
        return addr

    def set_quota(self, addr, quota_bytes):
        addr = address(addr, _("a mailbox address"))
        self._require(addr, "mailbox")
        self.mailboxes[addr].quota_bytes = _quota_bytes(quota_bytes)
        return addr

    # -- aliases (forwards) and catch-alls

    def add_alias(self, key, targets):
        key = alias_key(key)
        self._require_domain(key)
        if self.kind(key) == "mailbox":
            _fail(key, _("a mailbox has this address; an alias would take its mail"), key)
        self._require_new(key)
        self.aliases[key] = _targets(key, targets)
        return key

    def del_alias(self, key, force=False):
        key = alias_key(key)
        self._require(key, "alias")
        self._require_unreferenced(key, force)
        self.aliases.pop(key, None)
        return key

    # -- lists

    def add_list(self, addr, members=()):
        addr = address(addr, _("a list address"))
        self._require_domain(addr)
        if self.kind(addr) == "mailbox":
            _fail(addr, _("a mailbox has this address; a list would take its mail"), addr)
        self._require_new(addr)
        self.lists[addr] = _targets(addr, members, allow_empty=True)
        return addr

    def del_list(self, addr, force=False):
        addr = address(addr, _("a list address"))
        self._require(addr, "list")
        self._require_unreferenced(addr, force)
        self.lists.pop(addr, None)
        return addr

    def subscribe(self, addr, member):
        addr = address(addr, _("a list address"))
        self._require(addr, "list")
        member = target(member)
        if member == addr:
            _fail(member, _("a list cannot be a member of itself"), addr)
        if member in self.lists[addr]:
            _fail(member, _("already a member of {list}").format(list=addr), addr)
        self.lists[addr].append(member)
        return member

    def unsubscribe(self, addr, member):
        addr = address(addr, _("a list address"))
        self._require(addr, "list")
        member = target(member)
        if member not in self.lists[addr]:
            _fail(member, _("not a member of {list}").format(list=addr), addr)
        self.lists[addr].remove(member)
        return member

    # -- the whole

    def check(self):
        """Refuse a directory whose targets point nowhere or go round in a loop."""
        for key in sorted(self.domains):
            if key != domain(key):
                _fail(key, _("not a normalised domain name"), key)
        for table in (self.mailboxes, self.aliases, self.lists):
            for key in table:
                if domain_of(key) not in self.domains:
                    self._require_domain(key)
        for table in (self.aliases, self.lists):
            for key, targets in table.items():
                for t in targets:
                    if domain_of(t) in self.domains and self.kind(t) is None:
                        _fail(key, _("{target} is in managed domain {domain} but is no mailbox, alias or "
                                     "list there").format(target=t, domain=domain_of(t)), key)
        self._check_loops()

    def _check_loops(self):
        """Depth-first search over aliases and lists; a back edge is a loop."""
        def next_hops(node):
            return self.aliases.get(node) or self.lists.get(node) or ()

        state = {}  # node -> 1 on the current path, 2 done
        for start in sorted(list(self.aliases) + list(self.lists)):
            if state.get(start):
                continue
            path, stack = [start], [iter(next_hops(start))]
            state[start] = 1
            while stack:
                step = next(stack[-1], None)
                if step is None:
                    state[path.pop()] = 2
                    stack.pop()
                    continue
                if step not in self.aliases and step not in self.lists:
                    continue
                if state.get(step) == 1:
                    loop = path[path.index(step):] + [step]
                    _fail(loop[0], _("alias loop: {path}").format(path=" -> ".join(loop)), loop[0])
                if not state.get(step):
                    state[step] = 1
                    path.append(step)
                    stack.append(iter(next_hops(step)))

    # -- what the maps say

    def expand(self, key):
        """Where mail for an alias or list goes: targets as written (lists expanded by Postfix itself)."""
        return self.aliases.get(key) or self.lists.get(key) or []

    def sender_logins(self):
        """address -> the logins (mailboxes) that may send as it.

        A mailbox may send as itself, and as every alias that delivers to it,
        directly or through other aliases. Nobody may send as a list address
        (members write as themselves) nor through a catch-all (that would let
        one person use every unknown address of the domain), nor as a forward
        that reaches no mailbox here.
        """
        owners = {addr: [addr] for addr in self.mailboxes}
        for key in self.aliases:
            if is_catchall(key):
                continue
            found, seen, todo = [], {key}, list(self.aliases[key])
            while todo:
                t = todo.pop(0)
                if t in seen:
                    continue
                seen.add(t)
                if t in self.mailboxes:
                    found.append(t)
                elif t in self.aliases:
                    todo.extend(self.aliases[t])
            if found:
                owners[key] = sorted(set(found))
        return owners


def _quota_bytes(value):
    if isinstance(value, str):
        return quota(value)
    if not isinstance(value, int) or value < 0 or value > MAX_QUOTA:
        _fail(value, _("expected a size in bytes (0 for no limit)"))
    return value


def _targets(key, values, allow_empty=False):
    if isinstance(values, str):
        values = split_targets(values)
    result = []
    for value in values:
        t = target(value)
        if t == key:
            _fail(key, _("an address cannot deliver to itself"), key)
        if t not in result:
            result.append(t)
    if not result and not allow_empty:
        _fail(key, _("expected at least one target address"), key)
    return result


def split_targets(text):
    """Targets as written by a person: separated by spaces, commas or semicolons."""
    return [item for item in re.split(r"[\s,;]+", text) if item]
