"""Bulk import from CSV, all-or-nothing.

The file is UTF-8 CSV (commas, "..." quoting as usual) with four columns:

    type,address,value,quota
    domain,example.org,,
    mailbox,alice@example.org,correct horse battery,2G
    mailbox,bob@example.org,{SHA512-CRYPT}$6$...,
    alias,info@example.org,alice@example.org bob@example.org,
    alias,@example.org,alice@example.org,
    list,team@example.org,alice@example.org bob@example.org carol@example.net,

- type:    domain, mailbox, alias (address "@domain" is the domain's catch-all) or list.
- address: the domain, or the address to create.
- value:   domain: empty. mailbox: the password, taken exactly as written, spaces
           included ("mailbox,a@example.org, secret," gives " secret"), or a hash as
           doveadm pw prints it ("{SCHEME}..."; stored as it is, without surrounding
           spaces). alias: one or more targets. list: the
           members (may be empty). Several addresses are separated by spaces or ";".
- quota:   mailbox only: 500M, 2G, ... or empty / 0 for no limit.

A first line "type,address,value,quota" is a header and skipped; so are blank lines and
lines whose first field starts with "#". Rows may come in any order (an alias may name a
mailbox created further down; domain rows are applied first). Everything is added to what exists; nothing is replaced.

All-or-nothing: every row is checked first, then the whole result (targets exist, no
loops); the first problem fails the import with "FILE line N: ..." and nothing changes.
Only then are the passwords hashed (the slow part: ~170 ms each with ARGON2ID, one
doveadm per CPU) and the result committed in one store commit. The file holds
passwords in clear text: delete it after the import.
"""

import csv
import io

from mailsetup.i18n import _
from mailsetup.imap.mailboxes.hashing import hash_many
from mailsetup.imap.mailboxes.model import MailboxError, is_password_hash, password, quota, split_targets

HEADER = ["type", "address", "value", "quota"]
TYPES = ("domain", "mailbox", "alias", "list")
_PLACEHOLDER = "{PENDING}x"  # stands in for a hash until the passwords are hashed


class CsvImportError(MailboxError):
    """A bad row: str() is "FILE line N: problem"."""


def parse(text, name="import.csv"):
    """The rows as (line number, type, address, value, quota); bad shape raises CsvImportError."""
    rows = []
    reader = csv.reader(io.StringIO(text))
    first = True
    end = 0  # the last line of the previous row; a row may span lines (a quoted line break)
    for fields in reader:
        line, end = end + 1, reader.line_num
        if not fields or all(not f.strip() for f in fields) or fields[0].strip().startswith("#"):
            continue
        if first and [f.strip().lower() for f in fields] == HEADER:
            first = False
            continue
        first = False
        if len(fields) < 2 or len(fields) > 4:
            raise CsvImportError(_("{file} line {line}: expected 4 columns ({columns}), found {count}").format(
                file=name, line=line, columns=",".join(HEADER), count=len(fields)))
        fields += [""] * (4 - len(fields))
        kind = fields[0].strip().lower()
        # A password is taken as given; every other field without surrounding spaces.
        value = fields[2] if kind == "mailbox" and not is_password_hash(fields[2].strip()) else fields[2].strip()
        fields = [f.strip() for f in fields[:2]] + [value, fields[3].strip()]
        if kind not in TYPES:
            raise CsvImportError(_("{file} line {line}: {type}: unknown type (expected one of {types})").format(
                file=name, line=line, type=fields[0], types=", ".join(TYPES)))
        if kind != "mailbox" and fields[3]:
            raise CsvImportError(_("{file} line {line}: only a mailbox has a quota").format(file=name, line=line))
        if kind == "domain" and fields[2]:
            raise CsvImportError(_("{file} line {line}: a domain row has no value").format(file=name, line=line))
        rows.append((line, kind, fields[1], fields[2], fields[3]))
    return rows


def apply_rows(directory, rows, name="import.csv"):
    """Add the rows to directory (in place); returns [(address, plaintext)] still to hash."""
    lines = {}  # address or domain -> the line that created it
    to_hash = []

    def fail(line, error):
        if line is None:
            raise CsvImportError(_("{file}: {problem}").format(file=name, problem=error), error.subject) from None
        raise CsvImportError(_("{file} line {line}: {problem}").format(file=name, line=line, problem=error),
                             error.subject) from None

    # Domains first (mailboxes need them), then every other row in the order of the file;
    # whether targets exist and whether anything loops is checked once all rows are in.
    for line, kind, addr, value, size in [r for r in rows if r[1] == "domain"] + [r for r in rows if r[1] != "domain"]:
        try:
            if kind == "domain":
                key = directory.add_domain(addr)
            elif kind == "mailbox":
                if is_password_hash(value) and not value.startswith("{PENDING}"):
                    key = directory.add_mailbox(addr, value, quota(size))
                else:
                    password(value)
                    key = directory.add_mailbox(addr, _PLACEHOLDER, quota(size))
                    to_hash.append((key, value))
            elif kind == "alias":
                key = directory.add_alias(addr, split_targets(value))
            else:
                key = directory.add_list(addr, split_targets(value))
        except MailboxError as e:
            fail(line, e)
        lines[key] = line
    try:
        directory.check()
    except MailboxError as e:
        fail(_line_of(e, lines), e)
    return to_hash


def _line_of(error, lines):
    """The line that brought in what error is about: its subject, else the earliest address it names."""
    if error.subject in lines:
        return lines[error.subject]
    named = [lines[w] for w in str(error).replace(",", " ").split() if w in lines]
    return min(named) if named else None


def import_csv(store, path, hasher, workers=None, check=None):
    """Import FILE.csv into store, all-or-nothing. Returns (counts by type, changed paths).

    check(directory), if given, may refuse the result (raise) before anything is written."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise CsvImportError(_("{file}: cannot be read: {error}").format(file=path, error=e)) from None
    rows = parse(text, path)
    with store.transaction() as directory:
        to_hash = apply_rows(directory, rows, path)
        if check:
            check(directory)
        hashes = hash_many(hasher, [p for _a, p in to_hash], workers)
        for (addr, _p), hashed in zip(to_hash, hashes):
            directory.set_password(addr, hashed)
    counts = {kind: sum(1 for r in rows if r[1] == kind) for kind in TYPES}
    return counts, store.last_changed
