"""Dovecot for the mailboxes: two drop-ins under /etc/dovecot/conf.d.

Why two files (doc/dovecot-facts.md): passdb/userdb are lists in the order
first defined, so ours go into 05-mailsetup-auth.conf, before Debian's
10-auth.conf (PAM would otherwise be asked first); every other setting goes
into 99-mailsetup.conf, read last, so it wins over Debian's conf.d files.
Dovecot 2.4 refuses 2.3's syntax, so both are written for the installed
version. Nothing under /etc/dovecot is a dpkg conffile; these two files are
ours alone and purge removes them.

99-mailsetup.conf also turns on Sieve for LMTP with our global script run
before the user's personal one (components/sieve.py: mail marked `X-Spam:
Yes` goes to Junk); the personal scripts are stored in the mailbox's home
(~/sieve, the active one linked at ~/.dovecot.sieve), where ManageSieve (port
4190, dovecot-managesieved: it needs nothing more here, its login obeys the
global ssl = required and the refusal of cleartext logins without TLS) puts
them. IMAPSieve runs our report-spam/report-ham scripts when a message is
moved into or out of Junk (components/learn.py). Junk, a \\Junk special-use
mailbox in Debian's 15-mailboxes.conf, exists and is subscribed in every
mailbox.
"""

import os

from mailsetup import tls_profile
from mailsetup.imap.components import learn
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


# What Dovecot asks the SQL directory (imap/mailboxes/sqlite_store.py): plain SQL that
# PostgreSQL runs as well; %u is the lower-cased login, quoted by Dovecot. A NULL
# field is left out, so no quota column means no limit.
SQL_QUERIES = {
    "password": "SELECT address AS user, password FROM passwords WHERE address = '%u'",
    "user": {
        "2.3": "SELECT address AS user, '*:storage=' || quota AS quota_rule FROM mailboxes WHERE address = '%u'",
        "2.4": "SELECT address AS user, quota AS quota_storage_size FROM mailboxes WHERE address = '%u'",
    },
    "iterate": "SELECT address AS user FROM mailboxes",
}
LOGIN = {"2.3": "%Lu", "2.4": "%{user | lower}"}
# Dovecot 2.3 reads SQL settings from a file of their own (args = ...).
SQL_PASSDB_FILE = "passdb-sql.conf.ext"
SQL_USERDB_FILE = "userdb-sql.conf.ext"


# In a group (PostgreSQL directory): a login for a mailbox stored on another server is
# passed on to it (proxy, host: its address), over STARTTLS that does not check the
# certificate (each server may have a self-signed one); the password is checked here
# first. A field that exists counts as set whatever its value, so one stored here gets
# NULL in every column: Dovecot leaves NULL fields out and logs in here. The password
# goes on to the home server as the pass field: 2.3 adds it by itself, 2.4 is given it
# in the passdb's fields (not in the SQL, where it would reach the database's logs).
PROXY_COLUMNS = {"proxy": "'y'", "host": "m.home_server", "starttls": "'any-cert'"}
# The address setting of an inet_listener (2.4 refuses 2.3's name and the other way round).
LMTP_LISTEN = {"2.3": "address", "2.4": "listen"}


def sql_query(version, name, server=None):
    query = SQL_QUERIES[name]
    query = query[version] if isinstance(query, dict) else query
    if name == "password" and server:
        query = _group_password_query(version, server)
    return query.replace("%u", LOGIN[version])


def _group_password_query(version, server):
    elsewhere = f"m.home_server NOT IN ('', '{server}')"
    columns = "".join(f", CASE WHEN {elsewhere} THEN {value} END AS {field}"
                      for field, value in PROXY_COLUMNS.items())
    return ("SELECT p.address AS user, p.password" + columns
            + " FROM passwords p JOIN mailboxes m ON m.address = p.address WHERE p.address = '%u'")


def sql_args_files(version, store):
    """path -> content of the 2.3 args files for a SQL store (none for 2.4 or files)."""
    if version != "2.3" or store.backend not in ("sqlite", "pgsql"):
        return {}
    if store.backend == "pgsql":
        passwords = users = f"driver = pgsql\nconnect = {store.dovecot_connect()}\n"
        server = store.server
    else:
        passwords = f"driver = sqlite\nconnect = {store.passwords_db}\n"
        users = f"driver = sqlite\nconnect = {store.directory_db}\n"
        server = None
    return {
        store.dovecot_args_path(SQL_PASSDB_FILE): passwords + f"""\
default_pass_scheme = ARGON2ID
password_query = {sql_query(version, "password", server)}
""",
        store.dovecot_args_path(SQL_USERDB_FILE): users + f"""\
user_query = {sql_query(version, "user")}
iterate_query = {sql_query(version, "iterate")}
""",
    }


def auth_conf(version, store, vmail_dir):
    """passdb and userdb of the store: files (a passwd-file) or sqlite."""
    if store.backend in ("sqlite", "pgsql"):
        return _sql_auth_conf(version, store, vmail_dir)
    users_path = store.users_path
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


def pgsql_connection_24(store):
    """Dovecot 2.4's connection to the group's PostgreSQL: a pgsql block per server
    (a pool that goes on with the others when one fails), libpq's keywords in parameters."""
    parameters = "".join(f"      {key} = {value}\n" for key, value in store.libpq_parameters())
    blocks = "".join(f"  pgsql {host} {{\n    parameters {{\n{parameters}    }}\n  }}\n" for host in store.hosts)
    return "sql_driver = pgsql\n" + blocks


def _sql_auth_conf(version, store, vmail_dir):
    if version == "2.3":
        return f"""\
passdb {{
  driver = sql
  args = {store.dovecot_args_path(SQL_PASSDB_FILE)}
  result_failure = return-fail
}}
userdb {{
  driver = sql
  args = {store.dovecot_args_path(SQL_USERDB_FILE)}
  default_fields = uid=vmail gid=vmail home={vmail_dir}/%d/%n
  result_failure = return-fail
}}
"""
    forward = ""
    if store.backend == "pgsql":
        passwords = users = pgsql_connection_24(store)
        server = store.server
        forward = "  fields {\n    pass = %{password}\n  }\n"
    else:
        passwords = f"sql_driver = sqlite\n  sqlite_path = {store.passwords_db}\n"
        users = f"sql_driver = sqlite\n  sqlite_path = {store.directory_db}\n"
        server = None
    return f"""\
passdb sql {{
  {passwords}  default_password_scheme = ARGON2ID
  query = {sql_query(version, "password", server)}
{forward}  result_failure = return-fail
}}
userdb sql {{
  {users}  query = {sql_query(version, "user")}
  iterate_query = {sql_query(version, "iterate")}
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


def group_conf(version, settings):
    """In a group: the LMTP listener the other servers deliver to (Postfix's
    transport_maps there), on this server's group address only."""
    if settings.directory != "postgresql":
        return ""
    address = settings.server_address
    return f"""\
# The other servers of the group deliver the mail of mailboxes stored here to this
# listener, on the group's network only (doc/directory.md).
service lmtp {{
  inet_listener lmtp {{
    {LMTP_LISTEN[version]} = {address}
    port = 24
  }}
}}
"""


def main_conf(version, settings, vmail_uid, vmail_dir, system):
    """99-mailsetup.conf for Dovecot `version` ("2.3" or "2.4"); the Sieve
    scripts' paths come from system.sieve_dir."""
    sieve_script = script_path(system)
    report_spam, report_ham = learn.report_spam_path(system), learn.report_ham_path(system)
    # vmail is a system user: first_valid_uid = last_valid_uid = its uid admits
    # exactly it (never 0, which would admit root).
    # The TLS profile (doc/tls.md): TLS 1.2 with Mozilla intermediate's suites,
    # TLS 1.3 with the library's; the client chooses.
    common = f"""\
auth_mechanisms = plain login
ssl = required
ssl_min_protocol = {tls_profile.MIN_PROTOCOL}
ssl_cipher_list = {tls_profile.CIPHER_LIST}
mail_uid = vmail
mail_gid = vmail
first_valid_uid = {vmail_uid}
last_valid_uid = {vmail_uid}
"""
    if version == "2.3":
        return common + f"""\
disable_plaintext_auth = yes
ssl_prefer_server_ciphers = no
ssl_cert = <{settings.tls_cert}
ssl_key = <{settings.tls_key}
mail_home = {vmail_dir}/%d/%n
mail_location = maildir:~/Maildir
mail_plugins = $mail_plugins quota

plugin {{
  quota = count:User quota
  quota_rule = *:storage=0
  quota_vsizes = yes
  # The user's scripts (ManageSieve) run after ours.
  sieve = file:~/sieve;active=~/.dovecot.sieve
  sieve_before = {sieve_script}
  # Learning from Junk: only global scripts may pipe, only to sieve_pipe_bin_dir.
  sieve_plugins = sieve_imapsieve sieve_extprograms
  sieve_global_extensions = +vnd.dovecot.pipe +vnd.dovecot.environment
  sieve_pipe_bin_dir = {learn.PIPE_BIN_DIR}
  imapsieve_mailbox1_name = Junk
  imapsieve_mailbox1_causes = COPY
  imapsieve_mailbox1_before = file:{report_spam}
  imapsieve_mailbox2_name = *
  imapsieve_mailbox2_from = Junk
  imapsieve_mailbox2_causes = COPY
  imapsieve_mailbox2_before = file:{report_ham}
}}
protocol imap {{
  mail_plugins = $mail_plugins imap_quota imap_sieve
}}
protocol lmtp {{
  mail_plugins = $mail_plugins sieve
}}
""" + JUNK + LISTENERS + group_conf(version, settings)
    return common + f"""\
auth_allow_cleartext = no
ssl_server_prefer_ciphers = client
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
    imap_sieve = yes
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
# The user's scripts (ManageSieve) run after ours; Debian's 90-sieve.conf has
# this storage only as a comment, and ManageSieve needs it.
sieve_script personal {{
  type = personal
  driver = file
  path = ~/sieve
  active_path = ~/.dovecot.sieve
}}
# No cause: run at delivery only.
sieve_script mailsetup-spam-to-junk {{
  type = before
  driver = file
  path = {sieve_script}
}}
# Learning from Junk: only global scripts may pipe, only to sieve_pipe_bin_dir.
sieve_plugins {{
  sieve_imapsieve = yes
  sieve_extprograms = yes
}}
sieve_global_extensions {{
  vnd.dovecot.pipe = yes
  vnd.dovecot.environment = yes
}}
sieve_pipe_bin_dir = {learn.PIPE_BIN_DIR}
# Moved or copied into Junk.
mailbox Junk {{
  sieve_script mailsetup-report-spam {{
    type = before
    cause = copy
    driver = file
    path = {report_spam}
  }}
}}
# Moved or copied out of Junk (report-ham.sieve leaves out Trash).
imapsieve_from Junk {{
  sieve_script mailsetup-report-ham {{
    type = before
    cause = copy
    driver = file
    path = {report_ham}
  }}
}}
""" + JUNK + LISTENERS + group_conf(version, settings)


class DovecotConfig:
    name = "dovecot"

    def __init__(self, system, version, vmail_uid, store):
        self.system = system
        self.version = version
        self.vmail_uid = vmail_uid
        self.store = store

    def path(self, name):
        return f"{self.system.dovecot_conf_dir}/{name}"

    def files(self):
        # Both stores' 2.3 args files, so that a change of store removes the other's.
        return [self.path(AUTH_FILE), self.path(MAIN_FILE)] + [
            self.store.dovecot_args_path(name) for name in (SQL_PASSDB_FILE, SQL_USERDB_FILE)]

    def read_current(self):
        return {path: read_bytes(path) for path in self.files()}

    def desired(self, settings):
        vmail = self.system.vmail_dir
        wanted = dict.fromkeys(self.files())  # None: the file should not be there
        wanted.update({path: (HEADER + text).encode()
                       for path, text in sql_args_files(self.version, self.store).items()})
        wanted[self.path(AUTH_FILE)] = (HEADER + auth_conf(self.version, self.store, vmail)).encode()
        wanted[self.path(MAIN_FILE)] = (HEADER + main_conf(self.version, settings, self.vmail_uid, vmail,
                                                           self.system)).encode()
        return wanted

    def plan(self, settings, current):
        return {p: data for p, data in self.desired(settings).items() if current[p] != data}

    def record_originals(self, state, plan, current):
        for path in plan:
            state.record_file_original(path.rsplit("/", 1)[1], current[path])

    def apply(self, plan):
        for path, data in plan.items():
            if data is None:
                os.unlink(path)
            else:
                # The args files are read by Dovecot's auth process as root.
                write_atomic(path, data, 0o644 if path in (self.path(AUTH_FILE), self.path(MAIN_FILE)) else 0o600)

    def check(self):
        """doveconf parses the whole configuration; a bad one fails here, before any reload."""
        self.system.run(["doveconf", "-n"])
