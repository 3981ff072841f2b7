"""Dovecot for the mailboxes: two drop-ins under /etc/dovecot/conf.d.

Why two files (doc/dovecot-facts.md): passdb/userdb are lists in the order
first defined, so ours go into 05-mailsetup-auth.conf, before Debian's
10-auth.conf (PAM would otherwise be asked first); every other setting goes
into 99-mailsetup.conf, read last, so it wins over Debian's conf.d files.
Dovecot 2.4 refuses 2.3's syntax, so both are written for the installed
version. Nothing under /etc/dovecot is a dpkg conffile; these two files are
ours alone and purge removes them.

99-mailsetup.conf also turns on Sieve for LMTP with our global script run
before any personal one (components/sieve.py: mail marked `X-Spam: Yes` goes
to Junk), and makes Junk, a \\Junk special-use mailbox in Debian's
15-mailboxes.conf, exist and subscribed in every mailbox.
"""

from mailsetup.imap.components.sieve import script_path
from mailsetup.fileutil import read_bytes, write_atomic

AUTH_FILE = "05-mailsetup-auth.conf"
MAIN_FILE = "99-mailsetup.conf"
HEADER = "# Written by mailsetup-imap; change it with dpkg-reconfigure mailsetup-imap.\n\n"

LISTENERS = """\
service lmtp {
  unix_listener /var/spool/postfix/private/dovecot-lmtp {
    mode = 0600
    user = postfix
    group = postfix
  }
}
service auth {
  unix_listener /var/spool/postfix/private/auth {
    mode = 0660
    user = postfix
    group = postfix
  }
}
"""


def auth_conf(version, users_path, vmail_dir):
    if version == "2.3":
        return f"""\
passdb {{
  driver = passwd-file
  args = scheme=ARGON2ID username_format=%Lu {users_path}
  result_failure = return-fail
}}
userdb {{
  driver = passwd-file
  args = username_format=%Lu {users_path}
  default_fields = uid=vmail gid=vmail home={vmail_dir}/%d/%n
  result_failure = return-fail
}}
"""
    return f"""\
passdb passwd-file {{
  passwd_file_path = {users_path}
  default_password_scheme = ARGON2ID
  auth_username_format = %{{user | lower}}
  result_failure = return-fail
}}
userdb passwd-file {{
  passwd_file_path = {users_path}
  auth_username_format = %{{user | lower}}
  result_failure = return-fail
}}
"""


JUNK = """\
namespace inbox {
  mailbox Junk {
    special_use = \\Junk
    auto = subscribe
  }
}
"""


def main_conf(version, settings, vmail_uid, vmail_dir, sieve_script):
    # vmail is a system user: first_valid_uid = last_valid_uid = its uid admits
    # exactly it (never 0, which would admit root).
    common = f"""\
auth_mechanisms = plain login
ssl = required
ssl_min_protocol = TLSv1.2
mail_uid = vmail
mail_gid = vmail
first_valid_uid = {vmail_uid}
last_valid_uid = {vmail_uid}
"""
    if version == "2.3":
        return common + f"""\
disable_plaintext_auth = yes
ssl_cert = <{settings.tls_cert}
ssl_key = <{settings.tls_key}
mail_home = {vmail_dir}/%d/%n
mail_location = maildir:~/Maildir
mail_plugins = $mail_plugins quota

plugin {{
  quota = count:User quota
  quota_rule = *:storage=0
  quota_vsizes = yes
  sieve_before = {sieve_script}
}}
protocol imap {{
  mail_plugins = $mail_plugins imap_quota
}}
protocol lmtp {{
  mail_plugins = $mail_plugins sieve
}}
""" + JUNK + LISTENERS
    return common + f"""\
auth_allow_cleartext = no
ssl_server_cert_file = {settings.tls_cert}
ssl_server_key_file = {settings.tls_key}
mail_driver = maildir
mail_home = {vmail_dir}/%{{user | domain}}/%{{user | username}}
mail_path = %{{home}}/Maildir
# Debian's 10-mail.conf puts INBOX in /var/mail; Maildir/{{cur,new,tmp}} as on 2.3.
mail_inbox_path = .

mail_plugins {{
  quota = yes
}}
protocol imap {{
  mail_plugins {{
    imap_quota = yes
  }}
}}
quota "User quota" {{
  driver = count
}}
# Debian's 20-lmtp.conf strips the domain for LMTP lookups; our users have one.
protocol lmtp {{
  auth_username_format = %{{user | lower}}
  mail_plugins {{
    sieve = yes
  }}
}}
sieve_script mailsetup-spam-to-junk {{
  type = before
  driver = file
  path = {sieve_script}
}}
""" + JUNK + LISTENERS


class DovecotConfig:
    name = "dovecot"

    def __init__(self, system, version, vmail_uid, users_path):
        self.system = system
        self.version = version
        self.vmail_uid = vmail_uid
        self.users_path = users_path

    def path(self, name):
        return f"{self.system.dovecot_conf_dir}/{name}"

    def files(self):
        return [self.path(AUTH_FILE), self.path(MAIN_FILE)]

    def read_current(self):
        return {path: read_bytes(path) for path in self.files()}

    def desired(self, settings):
        vmail = self.system.vmail_dir
        return {
            self.path(AUTH_FILE): (HEADER + auth_conf(self.version, self.users_path, vmail)).encode(),
            self.path(MAIN_FILE): (HEADER + main_conf(self.version, settings, self.vmail_uid, vmail,
                                                      script_path(self.system))).encode(),
        }

    def plan(self, settings, current):
        return {p: data for p, data in self.desired(settings).items() if current[p] != data}

    def record_originals(self, state, plan, current):
        for path in plan:
            state.record_file_original(path.rsplit("/", 1)[1], current[path])

    def apply(self, plan):
        for path, data in plan.items():
            write_atomic(path, data)

    def check(self):
        """doveconf parses the whole configuration; a bad one fails here, before any reload."""
        self.system.run(["doveconf", "-n"])
