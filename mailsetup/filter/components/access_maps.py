"""The access lists' files (mailsetup-filter): two Postfix tables in
/etc/mailsetup/filter, which are also the lists' record, and the allow maps
rspamd reads from local.d.  Same shape as the other components; the files
are ours alone (purge removes them), so there are no originals to record.
"""

import os

from mailsetup.filter import access
from mailsetup.fileutil import read_bytes, write_atomic


class AccessMaps:
    name = "access lists"

    def __init__(self, system):
        self.system = system

    @property
    def client_table(self):
        return os.path.join(self.system.access_dir, access.CLIENT_TABLE)

    @property
    def sender_table(self):
        return os.path.join(self.system.access_dir, access.SENDER_TABLE)

    def rspamd_map(self, kind):
        return os.path.join(self.system.rspamd_local_dir, access.RSPAMD_MAPS[kind])

    def postfix_specs(self):
        """What main.cf names: (client table, sender table)."""
        return f"cidr:{self.client_table}", f"texthash:{self.sender_table}"

    def files(self):
        return [self.client_table, self.sender_table] + [self.rspamd_map(k) for k in access.KINDS]

    def read_current(self):
        return {path: read_bytes(path) for path in self.files()}

    def load(self):
        """The lists as the Postfix tables have them (empty when there are none yet)."""
        return access.parse_tables(read_bytes(self.client_table), read_bytes(self.sender_table),
                                   names=(self.client_table, self.sender_table))

    def wanted(self, lists):
        files = {self.client_table: lists.client_table(), self.sender_table: lists.sender_table()}
        files.update({self.rspamd_map(k): lists.rspamd_map(k) for k in access.KINDS})
        return files

    def plan(self, lists, current):
        return {p: data for p, data in self.wanted(lists).items() if current[p] != data}

    def record_originals(self, state, plan, current):
        """Nothing: these files did not exist before mailsetup-filter."""

    def apply(self, plan):
        for path, data in plan.items():
            write_atomic(path, data)
