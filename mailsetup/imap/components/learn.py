"""rspamd learns spam and ham from what users do with their Junk folder.

Dovecot's IMAPSieve (the Pigeonhole documentation's "Antispam with Sieve"):
when a user moves or copies a message into Junk, Dovecot runs
report-spam.sieve, which pipes the message to learn-spam; out of Junk into
any folder but Trash, report-ham.sieve pipes it to learn-ham. Both scripts
live beside spam-to-junk.sieve in /etc/mailsetup/sieve and are compiled with
sievec like it (components/sieve.py); the settings that run them are in
99-mailsetup.conf (components/dovecot.py). The two programs are static
files of mailsetup-imap in PIPE_BIN_DIR (data/imap/sieve-pipe in the
source): they run `rspamc learn_spam` / `learn_ham` as the vmail user, and
do nothing when rspamc is missing (mailsetup-filter not installed) or
rspamd cannot learn, so a move never fails for their sake.
"""

import os

from mailsetup.imap.components.sieve import GlobalSieveScripts

# sieve_pipe_bin_dir: only programs in this directory can be piped to.
PIPE_BIN_DIR = "/usr/lib/mailsetup-imap/sieve-pipe"

REPORT_SPAM_NAME = "report-spam.sieve"
REPORT_HAM_NAME = "report-ham.sieve"

REPORT_SPAM = b"""\
# Written by mailsetup-imap; removed when it is purged.
# A message moved or copied into Junk: rspamd (mailsetup-filter) learns it as spam.
require ["vnd.dovecot.pipe", "copy", "imapsieve"];
pipe :copy "learn-spam";
"""

REPORT_HAM = b"""\
# Written by mailsetup-imap; removed when it is purged.
# A message moved or copied out of Junk: rspamd (mailsetup-filter) learns it as
# ham, unless it went to Trash (deleted spam is no ham).
require ["vnd.dovecot.pipe", "copy", "imapsieve", "environment", "variables"];
if environment :matches "imap.mailbox" "*" {
  set "mailbox" "${1}";
}
if string "${mailbox}" "Trash" {
  stop;
}
pipe :copy "learn-ham";
"""


def report_spam_path(system):
    return os.path.join(system.sieve_dir, REPORT_SPAM_NAME)


def report_ham_path(system):
    return os.path.join(system.sieve_dir, REPORT_HAM_NAME)


class SieveLearn(GlobalSieveScripts):
    name = "learn"
    SCRIPTS = {REPORT_SPAM_NAME: REPORT_SPAM, REPORT_HAM_NAME: REPORT_HAM}
