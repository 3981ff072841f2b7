"""Roundcube for mailsetup-webmail: our own config.inc.php, read after Debian's.

Debian's /etc/roundcube/config.inc.php belongs to roundcube-core (ucf; it holds
the database settings of dbconfig-common and the des_key its postinst made at
random for this machine): we never edit it. Roundcube reads config.inc.php from
every directory in RCUBE_CONFIG_PATH, later ones winning; our nginx site passes
"/var/lib/roundcube/config/:/etc/mailsetup/webmail/roundcube/" (the first is
/etc/roundcube by the name Roundcube knows it), so this file only adds and
overrides. The plugins' own files in /etc/roundcube/plugins are Debian's
empty arrays and override nothing of ours.

Roundcube reaches IMAP, submission and ManageSieve on loopback only, over TLS
without checking the certificate's name: 127.0.0.1 is not in it, and no one
can be in the middle of a loopback connection.
"""

import os
import shutil

from mailsetup.fileutil import read_bytes, write_atomic
from mailsetup.imap.mailboxes.model import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH
from mailsetup.webmail.autoconfig import php_string

CONFIG_NAME = "config.inc.php"
# The password plugin's stock poppassd driver talks to our helper there
# (debian/mailsetup-webmail.mailsetup-passwd.socket; doc/webmail.md).
PASSWD_HELPER = ("127.0.0.1", 106)
# mailsetup-imap's ports: IMAPS, submissions (465, TLS from the start), ManageSieve.
IMAP = "ssl://127.0.0.1:993"
SMTP = "ssl://127.0.0.1:465"
MANAGESIEVE = ("tls://127.0.0.1", 4190)
PLUGINS = ("managesieve", "markasjunk", "password")
WEB_GROUP = "www-data"


LOOPBACK_TLS = "['ssl' => ['verify_peer' => false, 'verify_peer_name' => false]]"


def config_php(settings):
    host, port = PASSWD_HELPER
    sieve_host, sieve_port = MANAGESIEVE
    plugins = ", ".join(php_string(p) for p in PLUGINS)
    return f"""<?php
// Written by mailsetup-webmail; change it with dpkg-reconfigure mailsetup-webmail.
// Read after /etc/roundcube/config.inc.php, whose database settings and des_key stay.
$config = [];
$config['imap_host'] = {php_string(IMAP)};
$config['imap_conn_options'] = {LOOPBACK_TLS};
$config['smtp_host'] = {php_string(SMTP)};
$config['smtp_user'] = '%u';
$config['smtp_pass'] = '%p';
$config['smtp_conn_options'] = {LOOPBACK_TLS};
// Users log in with their full address, in any case.
$config['login_lc'] = 2;
$config['language'] = {php_string(settings.language)};
// HTTPS only: secure session cookies, and no page over plain HTTP (nginx redirects).
$config['use_https'] = true;
$config['session_samesite'] = 'Strict';
$config['ip_check'] = true;
$config['junk_mbox'] = 'Junk';
$config['plugins'] = [{plugins}];

// Filters and vacation replies: Dovecot's ManageSieve (mailsetup-imap).
$config['managesieve_host'] = {php_string(sieve_host)};
$config['managesieve_port'] = {sieve_port};
$config['managesieve_conn_options'] = {LOOPBACK_TLS};
$config['managesieve_vacation'] = 1;

// Password changes go through mailsetup's helper, which checks the old password first.
$config['password_driver'] = 'poppassd';
$config['password_pop_host'] = {php_string(host)};
$config['password_pop_port'] = {port};
$config['password_confirm_current'] = true;
$config['password_minimum_score'] = 0;
$config['password_force_save'] = false;
$config['password_charset'] = 'UTF-8';
$config['password_username_format'] = '%u';
$config['password_minimum_length'] = {MIN_PASSWORD_LENGTH};
$config['password_maximum_length'] = {MAX_PASSWORD_LENGTH};

// "Mark as junk" moves the message into Junk; Dovecot then teaches rspamd
// (IMAPSieve, mailsetup-imap), as it does for any mail program.
$config['markasjunk_learning_driver'] = null;
$config['markasjunk_spam_mbox'] = 'Junk';
"""


class RoundcubeConfig:
    name = "roundcube"

    def __init__(self, system):
        self.system = system
        self.path = os.path.join(system.webmail_roundcube_dir, CONFIG_NAME)

    def files(self):
        return [self.path]

    def read_current(self):
        return read_bytes(self.path)

    def plan(self, settings, current):
        wanted = config_php(settings).encode()
        return {self.path: wanted} if current != wanted else {}

    def record_originals(self, state, plan, current):
        """Nothing to record: the file is ours alone, purge removes its directory."""

    def apply(self, plan):
        for path, data in plan.items():
            # PHP-FPM reads it as www-data; nobody else needs to.
            write_atomic(path, data, mode=0o640)
            if self.system.run_services:
                shutil.chown(path, group=WEB_GROUP)
