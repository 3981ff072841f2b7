"""A main.cf for a Postfix installed as "No configuration".

Postfix's own postinst leaves /etc/postfix/main.cf out in that case and says to
start from /usr/share/postfix/main.cf.debian; we do what its fresh install
would, so `apt install mailsetup` always ends with a configured server.
Purge removes what this created, back to "No configuration".
"""

import os
import shutil

from mailsetup.fileutil import write_atomic
from mailsetup.postfix_tools import postalias_line

TEMPLATE = "/usr/share/postfix/main.cf.debian"
TLS_TEMPLATE = "/usr/share/postfix/main.cf.tls"
SNAKEOIL_KEY = "/etc/ssl/private/ssl-cert-snakeoil.key"
# What Postfix's own fresh install writes when /etc/aliases is missing.
SYSTEM_ALIASES = b"# See man 5 aliases for format\npostmaster:    root\n"


class PostfixBootstrap:
    name = "main.cf (created)"

    def __init__(self, system):
        self.system = system
        self.aliases_db = system.system_aliases_path + ".db"

    def needed(self):
        return not self.system.postfix_installed()

    def create(self, state):
        """Write main.cf as Postfix's fresh install does; returns False when it cannot."""
        if not os.path.exists(TEMPLATE):
            return False
        state.record_file_original("main.cf", None)
        if not os.path.exists(self.aliases_db):
            state.record_file_original("aliases.db", None)
        aliases_file = self.system.system_aliases_path
        if not os.path.exists(aliases_file):
            # Postfix 3.10's postinst creates it only when it configures Postfix.
            state.record_file_original("aliases", None)
            write_atomic(aliases_file, SYSTEM_ALIASES)
        main_cf = self.system.main_cf_path
        shutil.copyfile(TEMPLATE, main_cf + ".mailsetup-new")
        if os.path.exists(SNAKEOIL_KEY) and os.path.exists(TLS_TEMPLATE):
            with open(TLS_TEMPLATE, "rb") as tls, open(main_cf + ".mailsetup-new", "ab") as out:
                out.write(tls.read())
        os.chmod(main_cf + ".mailsetup-new", 0o644)
        os.replace(main_cf + ".mailsetup-new", main_cf)
        aliases = f"hash:{self.system.system_aliases_path}"
        self.system.postconf().change({"alias_maps": aliases, "alias_database": aliases})
        self.system.run(postalias_line(aliases, self.system.postfix_config_dir))
        return True

    def undo(self, state):
        created = {"main.cf": self.system.main_cf_path, "aliases.db": self.aliases_db,
                   "aliases": self.system.system_aliases_path}
        for name, path in created.items():
            if state.created(name) and os.path.exists(path):
                os.unlink(path)
            state.forget_file_original(name)
