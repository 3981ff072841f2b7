"""The global Sieve script of mailsetup-imap: mail marked as spam goes to Junk.

mailsetup-filter (rspamd) adds `X-Spam: Yes` to mail it scores between its
add_header and reject thresholds; Dovecot runs this script before any
personal one (sieve_before, set in 99-mailsetup.conf by components/dovecot.py)
when LMTP delivers, and files such mail into the mailbox's Junk folder.

The script lives in our own directory, /etc/mailsetup/sieve. Dovecot cannot
save a compiled binary there when it delivers (it runs as the vmail user),
so the script is compiled here, as root, with sievec: whenever the script
is written, its .svbin is missing or older than it, or Dovecot's drop-in
changed (a Dovecot upgrade from 2.3 to 2.4 rewrites the drop-in, and the
binary format follows Dovecot's version). Purge removes both files and the
directory (doc/rspamd-facts.md, "Sieve: files `X-Spam: Yes` into Junk").
"""

import os

from mailsetup.fileutil import read_bytes, write_atomic

SCRIPT_NAME = "spam-to-junk.sieve"
BINARY_NAME = "spam-to-junk.svbin"

SCRIPT = b"""\
# Written by mailsetup-imap; removed when it is purged.
# Mail that mailsetup-filter (rspamd) marked as spam goes to the Junk folder.
require ["fileinto", "mailbox"];
if header :is "X-Spam" "Yes" {
  fileinto :create "Junk";
  stop;
}
"""

# The plan's value for the binary: compile it from the script.
COMPILE = "compile"


def script_path(system):
    return os.path.join(system.sieve_dir, SCRIPT_NAME)


class SieveJunk:
    name = "sieve"

    def __init__(self, system, dovecot_config_changed=False):
        self.system = system
        self.dovecot_config_changed = dovecot_config_changed
        self.script = script_path(system)
        self.binary = os.path.join(system.sieve_dir, BINARY_NAME)

    def files(self):
        return [self.script, self.binary]

    def read_current(self):
        return {path: read_bytes(path) for path in self.files()}

    def _binary_outdated(self):
        try:
            return os.stat(self.binary).st_mtime_ns < os.stat(self.script).st_mtime_ns
        except FileNotFoundError:
            return True

    def plan(self, settings, current):
        plan = {}
        if current[self.script] != SCRIPT:
            plan[self.script] = SCRIPT
        # Only where sievec can run (not in the unit tests' scratch directories).
        if self.system.run_services and (plan or self.dovecot_config_changed or current[self.binary] is None
                                         or self._binary_outdated()):
            plan[self.binary] = COMPILE
        return plan

    def record_originals(self, state, plan, current):
        for path in plan:
            state.record_file_original(os.path.basename(path), current[path])

    def apply(self, plan):
        directory = os.path.dirname(self.script)
        os.makedirs(directory, exist_ok=True)
        # Dovecot reads the script and its binary as the vmail user.
        os.chmod(directory, 0o755)
        if self.script in plan:
            write_atomic(self.script, plan[self.script], mode=0o644)
        if self.binary in plan:
            self.system.run(["sievec", self.script])
            os.chmod(self.binary, 0o644)
