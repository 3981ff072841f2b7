"""The global Sieve scripts of mailsetup-imap, and the first of them: mail
marked as spam goes to Junk.

mailsetup-filter (rspamd) adds `X-Spam: Yes` to mail it scores between its
add_header and reject thresholds; Dovecot runs this script before any
personal one (sieve_before, set in 99-mailsetup.conf by components/dovecot.py)
when LMTP delivers, and files such mail into the mailbox's Junk folder.
The user's own script (~/.dovecot.sieve, managed with ManageSieve) runs after
it for all other mail.

The scripts live in our own directory, /etc/mailsetup/sieve. Dovecot cannot
save a compiled binary there when it runs them (as the vmail user), so each
script is compiled here, as root, with sievec: whenever the script is
written, its .svbin is missing or older than it, or Dovecot's drop-in
changed (a Dovecot upgrade from 2.3 to 2.4 rewrites the drop-in, and the
binary format follows Dovecot's version; the drop-in also enables the
extensions a script needs, so it is written first: components/dovecot.py
comes before these in apply.py). Purge removes the files and the directory
(doc/rspamd-facts.md, "Sieve: files `X-Spam: Yes` into Junk").
components/learn.py holds the other two scripts (learning spam and ham).
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

# The plan's value for a binary: compile it from its script.
COMPILE = "compile"


def script_path(system):
    return os.path.join(system.sieve_dir, SCRIPT_NAME)


def binary_name(script_name):
    """Where sievec writes the binary of a script: NAME.sieve -> NAME.svbin."""
    return script_name[:-len(".sieve")] + ".svbin"


class GlobalSieveScripts:
    """Scripts in system.sieve_dir (SCRIPTS: file name -> content), each
    compiled with sievec next to itself. A subclass gives name and SCRIPTS."""

    name = None
    SCRIPTS = {}

    def __init__(self, system, dovecot_config_changed=False):
        self.system = system
        self.dovecot_config_changed = dovecot_config_changed
        # [(script path, binary path, content)]
        self.scripts = [(os.path.join(system.sieve_dir, name), os.path.join(system.sieve_dir, binary_name(name)),
                         content) for name, content in self.SCRIPTS.items()]

    def files(self):
        return [path for script, binary, _ in self.scripts for path in (script, binary)]

    def read_current(self):
        return {path: read_bytes(path) for path in self.files()}

    @staticmethod
    def _binary_outdated(script, binary):
        try:
            return os.stat(binary).st_mtime_ns < os.stat(script).st_mtime_ns
        except FileNotFoundError:
            return True

    def plan(self, settings, current):
        plan = {}
        for script, binary, content in self.scripts:
            if current[script] != content:
                plan[script] = content
            # Only where sievec can run (not in the unit tests' scratch directories).
            if self.system.run_services and (script in plan or self.dovecot_config_changed
                                             or current[binary] is None or self._binary_outdated(script, binary)):
                plan[binary] = COMPILE
        return plan

    def record_originals(self, state, plan, current):
        for path in plan:
            state.record_file_original(os.path.basename(path), current[path])

    def apply(self, plan):
        directory = self.system.sieve_dir
        os.makedirs(directory, exist_ok=True)
        # Dovecot reads the scripts and their binaries as the vmail user.
        os.chmod(directory, 0o755)
        for script, binary, _ in self.scripts:
            if script in plan:
                write_atomic(script, plan[script], mode=0o644)
        for script, binary, _ in self.scripts:
            if binary in plan:
                # -c: the configuration files as just written; without it sievec
                # asks the running Dovecot's config service, which still has the
                # old settings (no IMAPSieve, no pipe extension) until the reload.
                self.system.run(["sievec", "-c", self.system.dovecot_conf_path, script])
                os.chmod(binary, 0o644)


class SieveJunk(GlobalSieveScripts):
    name = "sieve"
    SCRIPTS = {SCRIPT_NAME: SCRIPT}
