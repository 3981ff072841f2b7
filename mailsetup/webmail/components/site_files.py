"""The files our nginx site serves itself, in /var/lib/mailsetup-webmail/www:
Thunderbird's autoconfiguration (config-v1.1.xml), Outlook's autodiscover
(autodiscover.php, run by PHP-FPM) and the MTA-STS policy (mta-sts.txt).

They are made from what the server really offers (webmail/autoconfig.py reads
master.cf, Dovecot's protocols and main.cf), so they change with it: apply runs
again after a domain is added or removed (mailsetup/reapply.py). Ours alone:
purge removes the directory.
"""

import os

from mailsetup.fileutil import read_bytes, write_atomic


class SiteFiles:
    name = "site files"

    def __init__(self, system, contents):
        """contents: file name -> bytes, every file the site serves from the directory."""
        self.system = system
        self.contents = contents
        self.directory = system.webmail_www_dir

    def path(self, name):
        return os.path.join(self.directory, name)

    def files(self):
        return [self.path(name) for name in self.contents]

    def read_current(self):
        return {path: read_bytes(path) for path in self.files()}

    def plan(self, wanted, current):
        return {self.path(n): data for n, data in self.contents.items() if current[self.path(n)] != data}

    def record_originals(self, state, plan, current):
        """Nothing to record: the directory is ours alone."""

    def apply(self, plan):
        os.makedirs(self.directory, mode=0o755, exist_ok=True)
        for path, data in plan.items():
            # nginx and PHP-FPM (www-data) read them; they hold nothing secret.
            write_atomic(path, data, mode=0o644)
