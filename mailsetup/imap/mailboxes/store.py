"""Where the Directory lives: the Store interface and the file backend.

Store is what the mailsetup command uses; a shared SQL backend for several
servers would be a second implementation of the same three calls:

    directory = store.load()          # a snapshot, to change in memory
    changed = store.commit(directory) # all-or-nothing; [] when nothing changed
    with store.transaction() as directory: ...   # load + commit under one lock

FileStore (the embedded default) keeps, under its root (/etc/mailsetup):

    directory.json      the source of truth (0600: it holds the password hashes)
    virtual/domains     virtual_mailbox_domains   example.org        OK
    virtual/mailboxes   virtual_mailbox_maps      alice@example.org  example.org/alice/
    virtual/aliases     virtual_alias_maps        info@example.org   alice@example.org, bob@example.net
                                                  team@example.org   alice@example.org, carol@example.org (a list)
                                                  @example.org       alice@example.org (the catch-all)
                                                  alice@example.org  alice@example.org (every mailbox maps to
                                                  itself, so a catch-all does not take its mail)
    virtual/senders     smtpd_sender_login_maps   address -> the logins that may send as it
                                                  (Directory.sender_logins: own mailbox, and aliases that
                                                  deliver to it; never lists or catch-alls)
    dovecot/users       Dovecot passwd-file (0640, group dovecot), one line per mailbox:
                        alice@example.org:{ARGON2ID}...::::::userdb_quota_rule=*:storage=2G      (2.3)
                        alice@example.org:{ARGON2ID}...::::::userdb_quota_storage_size=2G        (2.4)
                        (no quota field when unlimited; both configs default to no limit)

Every generated file is derived from directory.json; a hand edit of one of them
is overwritten by the next commit. Why one JSON file and not the maps
themselves: lists, catch-alls and "alias X is owned by mailbox Y" cannot be
read back unambiguously from virtual_alias_maps (a list is expanded there
like an alias), the passwd-file holds only the mailboxes, and one file is one
rename, so the truth is always one consistent version.

A commit:
  1. takes the exclusive flock on .lock (held for a whole transaction), and
     refuses if directory.json changed since the snapshot was loaded;
  2. runs Directory.check();
  3. writes every file whose content differs (or whose map is missing) as
     FILE.new and builds FILE.new.db with postmap; any failure removes the
     .new files: the old set is untouched;
  4. creates .commit-in-progress, renames each map's .db and then its text
     into place (Postfix reads only the .db, so each map switches in one
     atomic rename; db first, so a text file is never newer than its db),
     the Dovecot file, and last directory.json (the commit point); removes
     .commit-in-progress.
A run killed in step 4 leaves .commit-in-progress; the next commit (also one
that changes nothing, see repair()) then rewrites every file from
directory.json. Unchanged files are not touched (their mtimes stay), so a
commit that changes nothing writes nothing.

Postfix notices a rebuilt .db by itself and Dovecot re-reads a changed
passwd-file: no reload is needed for any of these files.
"""

import contextlib
import grp
import hashlib
import json
import os
import time
from abc import ABC, abstractmethod

from mailsetup import fileutil, postfix_tools
from mailsetup.fileutil import read_bytes
from mailsetup.i18n import _
from mailsetup.imap.mailboxes.model import Directory, MailboxError, format_quota

MAP_SUFFIX = postfix_tools.DATABASE_SUFFIX  # the map types the store can build
DOVECOT_VERSIONS = ("2.3", "2.4")
ABSENT = "absent"
# Unit tests turn this off (no Dovecot there to wait for); see _wait_for_dovecot_to_see.
WAIT_FOR_DOVECOT = True
# name@DOMAIN -> name@localhost, for the core to deliver (abuse is no local name: postmaster)
SYSTEM_NAMES = {"postmaster": "postmaster", "abuse": "postmaster", "root": "root"}


def alias_rows(directory):
    """(address, destinations) of virtual_alias_maps, in the order of the map.

    Every mailbox maps to itself (so a catch-all does not take its mail), then
    the aliases, the lists with members, and for every domain a postmaster,
    abuse and root unless the directory defines them: they go where the core
    sends them (RFC 5321; localhost is always local)."""
    rows = [(a, a) for a in sorted(directory.mailboxes)]
    rows += [(k, ", ".join(directory.aliases[k])) for k in sorted(directory.aliases)]
    rows += [(k, ", ".join(m)) for k, m in sorted(directory.lists.items()) if m]
    rows += [(f"{name}@{d}", f"{local}@localhost") for d in sorted(directory.domains)
             for name, local in SYSTEM_NAMES.items() if directory.kind(f"{name}@{d}") is None]
    return rows


def sender_rows(directory):
    """(address, logins) of smtpd_sender_login_maps (Directory.sender_logins)."""
    senders = directory.sender_logins()
    return [(a, ", ".join(senders[a])) for a in sorted(senders)]


class Store(ABC):
    """What the mailsetup command changes mailboxes through; subclasses name
    lock_path and implement load() and commit()."""

    _lock_depth = 0
    last_changed = ()
    backend = None  # "files" or "sqlite": what components/dovecot.py configures
    etc_dir = None  # /etc/mailsetup

    def dovecot_args_path(self, name):
        """A file of Dovecot settings that belongs to the store (2.3's SQL args files)."""
        return os.path.join(self.etc_dir, "dovecot", name)

    @property
    @abstractmethod
    def lock_path(self):
        """The file whose flock concurrent mailsetup runs take turns on."""

    @abstractmethod
    def load(self):
        """A Directory snapshot; its .origin identifies the version it came from."""

    @abstractmethod
    def commit(self, directory):
        """Make directory the current one, all-or-nothing; returns the paths changed ([] for none)."""

    @contextlib.contextmanager
    def locked(self):
        """The exclusive lock for concurrent mailsetup runs (re-entrant within this object)."""
        if self._lock_depth:
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
            return
        with fileutil.locked(self.lock_path):
            self._lock_depth = 1
            try:
                yield
            finally:
                self._lock_depth = 0

    @contextlib.contextmanager
    def transaction(self):
        """Load, let the caller change the snapshot, commit when the block ends without an
        exception; under the lock, so that concurrent runs take turns instead of failing."""
        with self.locked():
            directory = self.load()
            yield directory
            self.last_changed = self.commit(directory)


class FileStore(Store):
    backend = "files"

    def __init__(self, root="/etc/mailsetup", postfix_config_dir=None, map_type="hash", dovecot_version="2.3",
                 postmap="postmap", users_group="dovecot"):
        if map_type not in MAP_SUFFIX:
            raise MailboxError(_("{type}: unsupported map type (expected one of {types})").format(
                type=map_type, types=", ".join(MAP_SUFFIX)))
        if dovecot_version not in DOVECOT_VERSIONS:
            raise MailboxError(_("{version}: unsupported Dovecot version (expected 2.3 or 2.4)").format(
                version=dovecot_version))
        self.root = self.etc_dir = root
        self.postfix_config_dir = postfix_config_dir
        self.map_type = map_type
        self.dovecot_version = dovecot_version
        self.postmap = postmap
        self.users_group = users_group
        self.last_changed = []

    # -- paths

    @property
    def json_path(self):
        return os.path.join(self.root, "directory.json")

    def map_path(self, name):
        """name: domains, mailboxes, aliases, senders."""
        return os.path.join(self.root, "virtual", name)

    def map_spec(self, name):
        """What main.cf names, such as hash:/etc/mailsetup/virtual/aliases."""
        return f"{self.map_type}:{self.map_path(name)}"

    @property
    def users_path(self):
        return os.path.join(self.root, "dovecot", "users")

    @property
    def marker_path(self):
        return os.path.join(self.root, ".commit-in-progress")

    @property
    def suffix(self):
        return MAP_SUFFIX[self.map_type]

    @property
    def lock_path(self):
        return os.path.join(self.root, ".lock")

    # -- load / commit

    @staticmethod
    def _token(data):
        return ABSENT if data is None else hashlib.sha256(data).hexdigest()

    def _read_json(self):
        return read_bytes(self.json_path)

    def load(self):
        data = self._read_json()
        if data is None:
            directory = Directory()
        else:
            try:
                directory = Directory.from_dict(json.loads(data))
            except (ValueError, KeyError, TypeError) as e:
                raise MailboxError(_("{path}: cannot be read ({error}); restore it from a backup").format(
                    path=self.json_path, error=e)) from None
        directory.origin = self._token(data)
        return directory

    def commit(self, directory):
        with self.locked():
            current = self._read_json()
            if (directory.origin or ABSENT) != self._token(current):
                raise MailboxError(_("{path}: changed by another run meanwhile; nothing was changed, try again").format(
                    path=self.json_path))
            directory.check()
            changed = self._write(directory, current)
            directory.origin = self._token(self._read_json())
            return changed

    def repair(self):
        """Bring every generated file in line with directory.json (after a run was killed)."""
        with self.locked():
            return self.commit(self.load())

    # -- the generated files

    def render(self, directory):
        """path -> (content, mode, is_postfix_map), in the order they are switched."""
        header = ("# generated by mailsetup from {json}; change it with the mailsetup command\n"
                  .format(json=self.json_path)).encode()

        def table(rows):
            return header + "".join(f"{k}\t{v}\n" for k, v in rows).encode()

        return {
            self.users_path: ("".join(self._user_line(a, m) for a, m in sorted(directory.mailboxes.items()))
                              .encode(), 0o640, False),
            self.map_path("mailboxes"): (table((a, f"{a.partition('@')[2]}/{a.partition('@')[0]}/")
                                               for a in sorted(directory.mailboxes)), 0o644, True),
            self.map_path("aliases"): (table(alias_rows(directory)), 0o644, True),
            self.map_path("senders"): (table(sender_rows(directory)), 0o644, True),
            self.map_path("domains"): (table((d, "OK") for d in sorted(directory.domains)), 0o644, True),
        }

    def _user_line(self, addr, mailbox):
        extra = ""
        if mailbox.quota_bytes:
            size = format_quota(mailbox.quota_bytes)
            extra = (f"userdb_quota_rule=*:storage={size}" if self.dovecot_version == "2.3"
                     else f"userdb_quota_storage_size={size}")
        return f"{addr}:{mailbox.password_hash}::::::{extra}\n"

    def _write(self, directory, current_json):
        json_data = (json.dumps(directory.to_dict(), indent=1, ensure_ascii=True) + "\n").encode()
        repair = os.path.exists(self.marker_path)
        outputs = self.render(directory)
        todo = []
        for path, (data, mode, is_map) in outputs.items():
            self._remove_new(path)
            if (repair or read_bytes(path) != data
                    or (is_map and not os.path.exists(path + self.suffix))):
                todo.append((path, data, mode, is_map))
        # write_atomic keeps a file's mode: a leftover .new (a killed run) must not lend it its own.
        self._remove_new(self.json_path)
        json_changed = repair or json_data != current_json
        if not todo and not json_changed:
            return []

        # 1. everything new beside the old, maps built; any failure leaves the old set alone
        try:
            for path, data, mode, is_map in todo:
                fileutil.write_atomic(path + ".new", data, mode)
                if path == self.users_path:
                    self._chgrp(path + ".new")
                if is_map:
                    self._postmap(path + ".new")
                    os.chmod(path + ".new" + self.suffix, mode)
            if json_changed:
                fileutil.write_atomic(self.json_path + ".new", json_data, 0o600)
        except BaseException:
            for path, *_rest in todo:
                self._remove_new(path)
            self._remove_new(self.json_path)
            raise

        # 2. switch: db then text for each map, the Dovecot file, directory.json last
        fileutil.write_atomic(self.marker_path, b"", 0o600)
        changed = []
        for path, data, mode, is_map in todo:
            if path == self.users_path:
                added = _users(data) - _users(read_bytes(path) or b"")
                switched = _switch_users_file(path)
                changed.append(path)
                if added and len(todo) > 1 and WAIT_FOR_DOVECOT:
                    # The Postfix maps after it send mail to the new mailboxes:
                    # only once Dovecot can know them, or LMTP bounces it.
                    _wait_for_dovecot_to_see(switched)
                continue
            if is_map:
                os.replace(path + ".new" + self.suffix, path + self.suffix)
                changed.append(path + self.suffix)
            os.replace(path + ".new", path)
            changed.append(path)
        if json_changed:
            os.replace(self.json_path + ".new", self.json_path)
            changed.append(self.json_path)
        for d in {os.path.dirname(p) for p in changed}:
            _fsync_dir(d)
        os.unlink(self.marker_path)
        return changed

    def _remove_new(self, path):
        for leftover in (path + ".new", path + ".new" + self.suffix):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(leftover)

    def _postmap(self, path):
        postfix_tools.run(postfix_tools.postmap_line(f"{self.map_type}:{path}", self.postfix_config_dir,
                                                     self.postmap), MailboxError)

    def _chgrp(self, path):
        if not self.users_group:
            return
        try:
            gid = grp.getgrnam(self.users_group).gr_gid
        except KeyError:
            return  # Dovecot not installed yet: root only, 0640
        os.chown(path, -1, gid)


def _users(data):
    """The user names of a Dovecot passwd-file."""
    return {line.split(b":", 1)[0] for line in data.splitlines() if line and not line.startswith(b"#")}


def _switch_users_file(path):
    """Rename the new Dovecot passwd-file into place so that Dovecot notices.

    Dovecot re-reads a passwd-file when its mtime (whole seconds) or size
    changed, and looks at most once a second (passwd_file_sync(), 2.3 and 2.4).
    A change of the same size in the same second as the last one (a quota, a
    password: hashes have one length) would never be seen: the new file gets
    an mtime at least a second past the old one's."""
    try:
        old = int(os.stat(path).st_mtime)
    except FileNotFoundError:
        old = -1
    now = time.time()
    stamp = max(now, old + 1)
    os.utime(path + ".new", (stamp, stamp))
    os.replace(path + ".new", path)
    return now


def _wait_for_dovecot_to_see(switched):
    """Wait until the second in which the users file was switched is over:
    Dovecot, which may have looked earlier in that second, looks again in the
    next one (and then sees the new mtime). Half a second on average."""
    time.sleep(max(0.0, int(switched) + 1.01 - time.time()))


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
