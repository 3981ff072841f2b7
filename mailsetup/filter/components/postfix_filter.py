"""Postfix for mailsetup-filter: rspamd as milter, HELO checks, DNS blocklists,
the access lists' tables.

The originals of these main.cf keys are recorded in mailsetup-filter's own
state directory, so its purge restores just these. A key added to MANAGED_KEYS
and desired() is planned, recorded, applied and restored like the others.
"""

from mailsetup.filter.components.access_maps import AccessMaps
from mailsetup.postfix_keys import MainCfKeys

from mailsetup.filter.components.rspamd import MILTER_SOCKET

# rspamd's proxy worker listens on a unix socket in Postfix's queue directory
# (components/rspamd.py); the path is relative to it, which works for the
# chrooted smtpd and for cleanup alike.
MILTER = f"unix:{MILTER_SOCKET}"


class PostfixFilter(MainCfKeys):
    name = "postfix (filter)"
    MANAGED_KEYS = (
        "smtpd_milters",
        "non_smtpd_milters",
        "milter_default_action",
        "smtpd_helo_required",
        "smtpd_helo_restrictions",
        "smtpd_client_restrictions",
        "smtpd_sender_restrictions",
    )

    def desired(self, settings):
        client_table, sender_table = AccessMaps(self.system).postfix_specs()
        return {
            "smtpd_milters": MILTER,
            "non_smtpd_milters": "$smtpd_milters",
            # While rspamd is down or unreachable, mail waits rather than passing
            # unfiltered and unsigned: SMTP clients get a 4xx and retry; mail from
            # sendmail stays in the maildrop queue and pickup retries it. Nothing is
            # bounced or lost, and `mailsetup status` says the filter is down.
            "milter_default_action": "tempfail",
            "smtpd_helo_required": "yes",
            "smtpd_helo_restrictions": ("permit_mynetworks, permit_sasl_authenticated, "
                                        "reject_invalid_helo_hostname, reject_non_fqdn_helo_hostname"),
            # Denied and listed clients are refused before DATA, with the list named
            # in the reply; an allowed client (OK in the table) skips the blocklists.
            "smtpd_client_restrictions": ", ".join(
                ["permit_mynetworks", "permit_sasl_authenticated", f"check_client_access {client_table}"]
                + [f"reject_rbl_client {zone}" for zone in settings.dnsbl_zones]),
            "smtpd_sender_restrictions": ("permit_mynetworks, permit_sasl_authenticated, "
                                          f"check_sender_access {sender_table}"),
        }
