"""Password hashing: a hasher is any callable password -> "{SCHEME}hash".

The tool of record is `doveadm pw` (Dovecot's own code, so Dovecot can always
verify what it wrote). The password goes to doveadm on stdin, never on its
command line (visible in ps): with stdin not a terminal, doveadm's askpass
reads "password\\n" twice (prompt and retype) from stdin without a prompt
(dovecot src/lib/askpass.c). There is deliberately no in-process fallback:
Python's crypt module is deprecated (removed in 3.13), and mailsetup-imap
depends on dovecot-core, so doveadm is there wherever mailboxes are.

Costs measured in the Debian 12/13 test beds (doc/dovecot-facts.md): ARGON2ID
~170 ms per password, SHA512-CRYPT ~15 ms (mostly the process start).
hash_many() runs one doveadm per CPU at a time for imports.

Tests and benchmarks pass their own fast hasher to the store and importer.
"""

import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

from mailsetup.i18n import _
from mailsetup.imap.mailboxes.model import MailboxError, is_password_hash, password

DEFAULT_SCHEME = "ARGON2ID"
SCHEMES = ("ARGON2ID", "ARGON2I", "SHA512-CRYPT", "BLF-CRYPT")


class DoveadmHasher:
    def __init__(self, scheme=DEFAULT_SCHEME, command="doveadm"):
        if scheme not in SCHEMES:
            raise MailboxError(_("{scheme}: unsupported password scheme (expected one of {schemes})").format(
                scheme=scheme, schemes=", ".join(SCHEMES)))
        self.scheme = scheme
        self.command = command

    def available(self):
        return shutil.which(self.command) is not None

    def __call__(self, plaintext):
        password(plaintext)
        argv = [self.command, "pw", "-s", self.scheme]
        try:
            proc = subprocess.run(argv, input=f"{plaintext}\n{plaintext}\n", capture_output=True, text=True,
                                  check=False, start_new_session=True)  # no controlling terminal: read stdin
        except FileNotFoundError:
            raise MailboxError(_("{command} not found: install dovecot-core to hash passwords").format(
                command=self.command)) from None
        result = proc.stdout.strip()
        if proc.returncode != 0 or not is_password_hash(result):
            raise MailboxError(_("{command} failed: {output}").format(
                command=" ".join(argv), output=(proc.stderr or proc.stdout).strip()))
        return result


def hash_many(hasher, passwords, workers=None):
    """Hash a list of passwords, in order, with up to one worker per CPU."""
    if not passwords:
        return []
    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(passwords) == 1:
        return [hasher(p) for p in passwords]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(hasher, passwords))
