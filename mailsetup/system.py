"""Where things live on the machine, and the commands that act on it.

Tests point a System at a scratch directory and turn off what needs a real
Postfix installation (postfix check, reload, creating accounts); with
run_services off the resolver is not asked whether it validates DNSSEC either
(set `dnssec` to choose the answer).
"""

import os
import pwd
import sqlite3
import subprocess
from dataclasses import dataclass

from mailsetup import dnssec as dnssec_check
from mailsetup.errors import CommandFailed
from mailsetup.i18n import _
from mailsetup.fileutil import read_bytes
from mailsetup.postfix_tools import Postconf, parse_aliases
from mailsetup.validate import NO_DOMAIN


@dataclass
class System:
    postfix_config_dir: str = None  # None: Postfix's own default, /etc/postfix
    mailname_path: str = "/etc/mailname"
    etc_dir: str = "/etc/mailsetup"
    state_dir: str = "/var/lib/mailsetup"
    system_aliases_path: str = "/etc/aliases"
    run_services: bool = True  # postfix check/reload, adduser, asking the resolver about DNSSEC
    resolv_conf_path: str = dnssec_check.RESOLV_CONF
    dnssec: bool = None  # whether the resolver validates DNSSEC; None: ask it (mailsetup/dnssec.py)
    # mailsetup-imap
    imap_state_dir: str = "/var/lib/mailsetup-imap"
    dovecot_conf_dir: str = "/etc/dovecot/conf.d"
    vmail_dir: str = "/var/vmail"
    letsencrypt_dir: str = "/etc/letsencrypt"  # certbot's, for the certificate from an ACME CA
    # mailsetup-filter
    filter_state_dir: str = "/var/lib/mailsetup-filter"
    dkim_dir: str = "/var/lib/mailsetup-filter/dkim"
    rspamd_local_dir: str = "/etc/rspamd/local.d"
    clamd_path: str = "/usr/sbin/clamd"   # clamav-daemon, for mailsetup-filter/antivirus
    # mailsetup-webmail
    webmail_state_dir: str = "/var/lib/mailsetup-webmail"
    nginx_dir: str = "/etc/nginx"

    @property
    def aliases_path(self):
        return os.path.join(self.etc_dir, "aliases")

    @property
    def sieve_dir(self):
        """mailsetup-imap's global Sieve script (components/sieve.py)."""
        return os.path.join(self.etc_dir, "sieve")

    @property
    def acme_webroot(self):
        """Where certbot puts the ACME HTTP-01 answers that mailsetup-webmail's site serves
        on port 80 (/.well-known/acme-challenge/); mailsetup-imap's, removed at its purge."""
        return os.path.join(self.imap_state_dir, "acme-webroot")

    @property
    def webmail_roundcube_dir(self):
        """mailsetup-webmail's Roundcube settings, read after Debian's (webmail/components/roundcube.py)."""
        return os.path.join(self.etc_dir, "webmail", "roundcube")

    @property
    def webmail_www_dir(self):
        """The files mailsetup-webmail's site serves itself: autoconfiguration, MTA-STS policy."""
        return os.path.join(self.webmail_state_dir, "www")

    @property
    def dovecot_conf_path(self):
        """Dovecot's main configuration file, which includes dovecot_conf_dir."""
        return os.path.join(os.path.dirname(self.dovecot_conf_dir.rstrip("/")), "dovecot.conf")

    @property
    def main_cf_path(self):
        return os.path.join(self.postfix_config_dir or "/etc/postfix", "main.cf")

    @property
    def access_dir(self):
        """mailsetup-filter's access tables (mailsetup/access.py)."""
        return os.path.join(self.etc_dir, "filter")

    @property
    def virtual_domains_map(self):
        """Written by mailsetup-imap's file store (mailsetup/imap/mailboxes/store.py) from directory.json."""
        return os.path.join(self.etc_dir, "virtual", "domains")

    @property
    def directory_db_dir(self):
        """mailsetup-imap's SQLite store (mailsetup/imap/mailboxes/sqlite_store.py)."""
        return os.path.join(self.imap_state_dir, "directory")

    def virtual_domains(self):
        """The domains with mailboxes (mailsetup-imap); empty without it. From the
        store that is live (mailsetup/imap/mailboxes/system.py: the file store while
        directory.json exists), read here without importing mailsetup-imap."""
        path = os.path.join(self.directory_db_dir, "directory.sqlite")
        group = os.path.join(self.etc_dir, "pgsql")
        if (os.path.exists(os.path.join(group, "directory.conf"))
                and not os.path.exists(os.path.join(self.etc_dir, "directory.json"))):
            # A group's PostgreSQL directory, as mailsetup-imap last saw it (pgsql_store.py)
            return self._domains_of_list(os.path.join(group, "domains"))
        if os.path.exists(os.path.join(self.etc_dir, "directory.json")) or not os.path.exists(path):
            return self._domains_of_map()
        try:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                return sorted(name for (name,) in conn.execute("SELECT name FROM domains"))
            finally:
                conn.close()
        except sqlite3.Error as e:
            raise CommandFailed(_("{path}: cannot be read ({error})").format(path=path, error=e)) from None

    @staticmethod
    def _domains_of_list(path):
        try:
            with open(path, encoding="utf-8") as f:
                return sorted(line.strip() for line in f if line.strip())
        except FileNotFoundError:
            return []

    def _domains_of_map(self):
        domains = []
        try:
            with open(self.virtual_domains_map, encoding="utf-8") as f:
                for line in f:
                    fields = line.split()
                    if fields and not fields[0].startswith("#"):
                        domains.append(fields[0])
        except FileNotFoundError:
            pass
        return domains

    def mail_domains(self, core_mail_domain):
        """The mail domains of this server: the core's mail domain (unless it is
        Postfix's NO_DOMAIN placeholder) and the mailbox domains, each once."""
        found = [] if core_mail_domain == NO_DOMAIN else [core_mail_domain]
        return tuple(dict.fromkeys(found + list(self.virtual_domains())))

    def dnssec_validates(self):
        """Whether Postfix may trust the resolver's DNSSEC validation (dnssec.resolver_validates):
        System.dnssec when set, False with run_services off, else the resolver is asked."""
        if self.dnssec is not None:
            return self.dnssec
        if not self.run_services:
            return False
        return dnssec_check.resolver_validates(path=self.resolv_conf_path)

    def postconf(self):
        return Postconf(self.postfix_config_dir)

    def postfix_installed(self):
        return os.path.exists(self.main_cf_path)

    def run(self, argv, check=True):
        """Run a command; its output goes to our stderr (the terminal or the debconf log)."""
        try:
            proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
        except FileNotFoundError:
            raise CommandFailed(_("{command} not found").format(command=argv[0])) from None
        if check and proc.returncode != 0:
            # Translators: {command} is a command line, {output} what it printed.
            raise CommandFailed(_("{command} failed: {output}").format(
                command=" ".join(argv), output=proc.stdout.strip()))
        return proc

    def account_exists(self, name):
        try:
            pwd.getpwnam(name)
            return True
        except KeyError:
            return False

    def system_alias_names(self):
        """Names defined in /etc/aliases (ours are in a table of their own)."""
        return set(parse_aliases(read_bytes(self.system_aliases_path) or b""))

    def is_local_name(self, name):
        return self.account_exists(name) or name in self.system_alias_names()
