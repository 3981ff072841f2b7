"""What mailsetup remembers between runs, under /var/lib/mailsetup.

The originals files are plain TAB-separated text because postrm, a /bin/sh
script that may only rely on essential tools, reads them at purge.
"""

import json
import os

from mailsetup.fileutil import read_bytes, write_atomic


class StateDir:
    def __init__(self, path):
        self.path = path

    def _file(self, name):
        return os.path.join(self.path, name)

    # -- originals, recorded once, restored by postrm purge ---------------

    def _read_table(self, name):
        data = read_bytes(self._file(name))
        table = {}
        for line in (data or b"").decode().splitlines():
            key, _, rest = line.partition("\t")
            table[key] = rest
        return table

    def _write_table(self, name, table):
        text = "".join(f"{key}\t{value}\n" for key, value in table.items())
        write_atomic(self._file(name), text.encode())

    def postfix_originals(self):
        """main.cf key -> original value, or None where main.cf did not set it."""
        originals = {}
        for key, rest in self._read_table("postfix-originals").items():
            how, _, value = rest.partition("\t")
            originals[key] = value if how == "set" else None
        return originals

    def record_postfix_originals(self, explicit_values):
        """Remember the main.cf values of keys we are about to manage for the first time."""
        originals = self._read_table("postfix-originals")
        new = {k: v for k, v in explicit_values.items() if k not in originals}
        if new:
            for key, value in new.items():
                originals[key] = "unset\t" if value is None else f"set\t{value}"
            self._write_table("postfix-originals", originals)

    def debconf_originals(self):
        return self._read_table("debconf-originals")

    def record_debconf_originals(self, values):
        originals = self.debconf_originals()
        new = {k: v for k, v in values.items() if k not in originals}
        if new:
            originals.update(new)
            self._write_table("debconf-originals", originals)

    def record_file_original(self, name, content, like=None):
        """Remember a file's original content (None: it did not exist), once.

        With like (the file's path), the copy takes that file's mode and owner,
        so that postrm can put it back with `cp -p`."""
        saved, absent = self._file(name + ".orig"), self._file(name + ".absent")
        if os.path.exists(saved) or os.path.exists(absent):
            return
        if content is None:
            write_atomic(absent, b"")
            return
        st = os.stat(like) if like else None
        write_atomic(saved, content, mode=(st.st_mode & 0o7777) if st else 0o644)
        if st:
            os.chown(saved, st.st_uid, st.st_gid)
            os.chmod(saved, st.st_mode & 0o7777)

    def created(self, name):
        """Whether we recorded that the file did not exist before us."""
        return os.path.exists(self._file(name + ".absent"))

    def forget_file_original(self, name):
        for suffix in (".orig", ".absent"):
            if os.path.exists(self._file(name + suffix)):
                os.unlink(self._file(name + suffix))

    # -- what we applied last time ----------------------------------------

    def applied(self):
        """The answers and main.cf values applied last time, or None before the first apply."""
        data = read_bytes(self._file("applied.json"))
        return json.loads(data) if data else None

    def save_applied(self, applied):
        data = (json.dumps(applied, indent=2, sort_keys=True) + "\n").encode()
        if read_bytes(self._file("applied.json")) != data:
            write_atomic(self._file("applied.json"), data)

    # -- a Postfix reload or restart still owed -----------------------------

    def postfix_pending(self):
        """"reload" or "restart" when an apply changed files and was stopped
        (killed) before it told Postfix; None otherwise."""
        data = read_bytes(self._file("postfix-pending"))
        return (data.decode().strip() or None) if data is not None else None

    def set_postfix_pending(self, action):
        path = self._file("postfix-pending")
        if action is None:
            if os.path.exists(path):
                os.unlink(path)
        else:
            write_atomic(path, f"{action}\n".encode())

    # -- deliveries drained before a restart (see postfix_service) ----------

    def begin_drain(self, defer_transports):
        """Remember the admin's defer_transports (None: not set) before we change it."""
        how = "unset\t" if defer_transports is None else f"set\t{defer_transports}"
        write_atomic(self._file("postfix-drain"), f"{how}\n".encode())

    def drain_original(self):
        """(True, the admin's defer_transports or None) while a drain is unfinished, else (False, None)."""
        data = read_bytes(self._file("postfix-drain"))
        if data is None:
            return False, None
        how, _, value = data.decode().rstrip("\n").partition("\t")
        return True, (value if how == "set" else None)

    def end_drain(self):
        path = self._file("postfix-drain")
        if os.path.exists(path):
            os.unlink(path)
