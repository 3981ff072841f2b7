"""Postfix for the mailboxes: virtual domains delivered by Dovecot LMTP, SASL
through Dovecot, TLS (mailsetup/tls_profile.py on every smtpd service, port 25
included; doc/tls.md), and the submission services (587 STARTTLS, 465 TLS).

main.cf keys are changed with postconf, master.cf services with postconf -M
and -P (postconf -M on an existing entry drops its -o options, so the
options are always written again after it). The originals are recorded in
mailsetup-imap's own state directory, so its purge restores just these.
"""

import subprocess

from mailsetup import postfix_tools, tls_profile
from mailsetup.errors import CommandFailed
from mailsetup.i18n import _
from mailsetup.postfix_keys import MainCfKeys
from mailsetup.core.components.postfix_main import RELAY_RESTRICTIONS

LMTP_SOCKET = "private/dovecot-lmtp"
AUTH_SOCKET = "private/auth"

# Ports 587 and 465: only authenticated clients, only over TLS, and only as
# an address they own (smtpd_sender_login_maps).
SUBMISSION_OPTIONS = (
    ("smtpd_sasl_auth_enable", "yes"),
    ("smtpd_tls_auth_only", "yes"),
    ("smtpd_client_restrictions", "permit_sasl_authenticated,reject"),
    ("smtpd_sender_restrictions", "reject_sender_login_mismatch"),
    ("smtpd_relay_restrictions", "permit_sasl_authenticated,reject"),
)
SERVICES = {
    "submission": (("syslog_name", "postfix/submission"), ("smtpd_tls_security_level", "encrypt"))
    + SUBMISSION_OPTIONS,
    "submissions": (("syslog_name", "postfix/submissions"), ("smtpd_tls_wrappermode", "yes"),
                    ("smtpd_tls_security_level", "encrypt"))
    + SUBMISSION_OPTIONS,
}
SERVICE_ENTRY = "{name} inet n - y - - smtpd"


def master_entry(name):
    return SERVICE_ENTRY.format(name=name)


class PostfixVirtual(MainCfKeys):
    """The main.cf keys (MainCfKeys) and the master.cf services: current is
    {"explicit": main.cf keys, "services": ...}, a plan {"keys": ..., "services": [...]}."""

    name = "postfix (mailboxes)"
    MANAGED_KEYS = (
        "virtual_mailbox_domains",
        "virtual_mailbox_maps",
        "virtual_alias_maps",
        "virtual_transport",
        "smtpd_sasl_type",
        "smtpd_sasl_path",
        "smtpd_sender_login_maps",
        "smtpd_tls_cert_file",
        "smtpd_tls_key_file",
        "smtpd_tls_security_level",
        "smtpd_tls_protocols",
        "smtpd_tls_mandatory_protocols",
        "smtpd_tls_ciphers",
        "smtpd_tls_mandatory_ciphers",
        "smtpd_tls_exclude_ciphers",
        "tls_high_cipherlist",
        "tls_preempt_cipherlist",
        "smtpd_relay_restrictions",
        "transport_maps",
    )

    def __init__(self, system, store):
        super().__init__(system)
        self.store = store

    def files(self):
        config_dir = self.system.postfix_config_dir or "/etc/postfix"
        return super().files() + [f"{config_dir}/master.cf"]

    def read_current(self):
        services = {}
        for name in SERVICES:
            services[name] = {"entry": self.postconf.master_entry(f"{name}/inet") or None,
                              "options": self.postconf.master_options(f"{name}/inet")}
        return {"explicit": super().read_current(), "services": services}

    def desired(self, settings):
        return {
            "virtual_mailbox_domains": self.store.map_spec("domains"),
            "virtual_mailbox_maps": self.store.map_spec("mailboxes"),
            "virtual_alias_maps": self.store.map_spec("aliases"),
            "virtual_transport": f"lmtp:unix:{LMTP_SOCKET}",
            "smtpd_sasl_type": "dovecot",
            "smtpd_sasl_path": AUTH_SOCKET,
            "smtpd_sender_login_maps": self.store.map_spec("senders"),
            "smtpd_tls_cert_file": settings.tls_cert,
            "smtpd_tls_key_file": settings.tls_key,
            "smtpd_tls_security_level": "may",
            # The TLS profile (doc/tls.md) on every smtpd service, port 25 too:
            # "high" is tls_high_cipherlist, which only smtpd uses here (the
            # smtp and lmtp clients stay on their default "medium").
            "smtpd_tls_protocols": f">={tls_profile.MIN_PROTOCOL}",
            "smtpd_tls_mandatory_protocols": f">={tls_profile.MIN_PROTOCOL}",
            "smtpd_tls_ciphers": "high",
            "smtpd_tls_mandatory_ciphers": "high",
            "tls_high_cipherlist": tls_profile.CIPHER_LIST,
            # Belt and braces: Postfix's own grade lists include the anonymous
            # suites (postconf(5), smtpd_tls_mandatory_ciphers); ours has none.
            "smtpd_tls_exclude_ciphers": "aNULL",
            "tls_preempt_cipherlist": "no",  # the client chooses, as Mozilla's profile has it
            # The core sets it too (same value); listed so a purge of mailsetup-imap
            # alone leaves it as the core wants it.
            "smtpd_relay_restrictions": RELAY_RESTRICTIONS,
            # In a group (PostgreSQL directory): mail for a mailbox stored on another server
            # goes to that server's LMTP; without one the key is the admin's.
            "transport_maps": self.store.map_spec("transport") if self.store.backend == "pgsql" else None,
        }

    def _ours(self, value):
        return bool(value) and value.startswith(f"proxy:pgsql:{self.system.etc_dir}/")

    def plan(self, settings, current):
        keys = super().plan(settings, current["explicit"])
        if keys.get("transport_maps", "") is None and not self._ours(current["explicit"]["transport_maps"]):
            del keys["transport_maps"]  # the admin's own transport_maps stay
        services = []
        for name, options in SERVICES.items():
            have = current["services"][name]
            want = sorted(f"{k}={v}" for k, v in options)  # postconf -P lists them sorted
            fields = " ".join((have["entry"] or "").split()[:8])  # without the -o options
            if fields != master_entry(name) or sorted(have["options"]) != want:
                services.append(name)
        return {"keys": keys, "services": services} if keys or services else None

    def record_originals(self, state, plan, current):
        super().record_originals(state, plan["keys"], current["explicit"])
        for name in plan["services"]:
            have = current["services"][name]
            # One line, as `postconf -M NAME/inet="..."` takes it back at purge.
            state.record_file_original(f"master-{name}", f"{have['entry']}\n".encode() if have["entry"] else None)

    def check(self):
        """A group's tables answer Postfix (postfix check does not open them): one lookup
        each, without proxymap; "not found" is an answer, a broken table or a
        database that does not answer is not."""
        if self.store.backend != "pgsql":
            return
        for name in ("domains", "mailboxes", "aliases", "senders", "transport"):
            argv = postfix_tools.command_line("postmap", self.system.postfix_config_dir, "-q",
                                              "postmaster@mailsetup.invalid", f"pgsql:{self.store.map_path(name)}")
            proc = subprocess.run(argv, capture_output=True, text=True, check=False)
            if proc.returncode not in (0, 1) or "fatal" in proc.stderr or "warning" in proc.stderr:
                raise CommandFailed(_("{command} failed: {output}").format(
                    command=" ".join(argv),
                    output=" ".join(proc.stderr.split())))

    def apply(self, plan):
        super().apply(plan["keys"])
        for name in plan["services"]:
            self.postconf.set_master(f"{name}/inet", master_entry(name), SERVICES[name])
