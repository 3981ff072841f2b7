"""Postfix for mailsetup-filter: rspamd as milter, HELO checks, DNS blocklists.

The originals of these main.cf keys are recorded in mailsetup-filter's own
state directory, so its purge restores just these. A key added to MANAGED_KEYS
and desired() is planned, recorded, applied and restored like the others.
"""

from mailsetup.components.postfix_keys import MainCfKeys

# The proxy worker of Debian's rspamd is a milter on localhost:11332 (127.0.0.1 here).
MILTER = "inet:127.0.0.1:11332"


class PostfixFilter(MainCfKeys):
    name = "postfix (filter)"
    MANAGED_KEYS = (
        "smtpd_milters",
        "non_smtpd_milters",
        "milter_default_action",
        "smtpd_helo_required",
        "smtpd_helo_restrictions",
        "smtpd_client_restrictions",
    )

    def desired(self, settings):
        return {
            "smtpd_milters": MILTER,
            "non_smtpd_milters": "$smtpd_milters",
            # Mail keeps flowing while rspamd is down (tempfail would hold it all).
            "milter_default_action": "accept",
            "smtpd_helo_required": "yes",
            "smtpd_helo_restrictions": ("permit_mynetworks, permit_sasl_authenticated, "
                                        "reject_invalid_helo_hostname, reject_non_fqdn_helo_hostname"),
            # Listed clients are refused before DATA, with the list named in the reply.
            "smtpd_client_restrictions": ", ".join(
                ["permit_mynetworks", "permit_sasl_authenticated"]
                + [f"reject_rbl_client {zone}" for zone in settings.dnsbl_zones]),
        }
