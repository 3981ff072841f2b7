"""Apply the mailboxes settings (mailsetup-imap): vmail, Dovecot, Postfix, domains,
and the Sieve script that files spam into Junk.

Same shape as core.py: read what is there, plan, record originals, apply,
check with the components' own tools (doveconf -n, postfix check), undo
every file on failure, and reload only what changed.
"""

import os
import pwd
from dataclasses import dataclass, field

from mailsetup import postfix_service, services
from mailsetup.imap.components.dovecot import DovecotConfig
from mailsetup.imap.components.postfix_virtual import PostfixVirtual
from mailsetup.imap.components.sieve import SieveJunk
from mailsetup.errors import ApplyFailed, MailsetupError
from mailsetup.fileutil import Snapshot
from mailsetup.i18n import _
from mailsetup.imap.mailboxes import system as mailbox_system
from mailsetup.imap.mailboxes.model import MailboxError
from mailsetup.errors import CommandFailed

VMAIL_USER = "vmail"
DOVECOT = "dovecot"


@dataclass
class Outcome:
    changed: list = field(default_factory=list)
    postfix: str = "unchanged"   # "reloaded", "not running", "unchanged"
    dovecot: str = "unchanged"   # "reloaded", "started", "not running", "unchanged"
    domains: tuple = ()
    mailboxes: int = 0


def ensure_vmail(system):
    """The one system user that owns all Maildirs; its uid (created if missing)."""
    if system.run_services:
        try:
            pwd.getpwnam(VMAIL_USER)
        except KeyError:
            system.run(["adduser", "--quiet", "--system", "--group", "--home", system.vmail_dir,
                        "--no-create-home", "--disabled-password", VMAIL_USER])
        user = pwd.getpwnam(VMAIL_USER)
        uid, gid = user.pw_uid, user.pw_gid
    else:
        uid, gid = os.getuid(), os.getgid()
    os.makedirs(system.vmail_dir, mode=0o770, exist_ok=True)
    if system.run_services:
        os.chown(system.vmail_dir, uid, gid)
        os.chmod(system.vmail_dir, 0o770)
    return uid


def _directory_with_domains(store, domains):
    """The directory after adding the answered domains and removing the others.

    A domain that still has mailboxes, aliases or lists is not removed: the
    model refuses with a line that says so."""
    directory = store.load()
    for name in domains:
        if name not in directory.domains:
            directory.add_domain(name)
    for name in sorted(directory.domains - set(domains)):
        directory.del_domain(name)
    return directory


def apply(settings, system, dovecot_version=None):
    state = mailbox_system.imap_state(system)
    version = dovecot_version or mailbox_system.dovecot_version()
    try:
        uid = ensure_vmail(system)
        store = mailbox_system.open_store(system, version)
        before = store.load()
        directory = _directory_with_domains(store, settings.domains)
    except (MailboxError, CommandFailed, OSError) as err:
        raise ApplyFailed(str(err)) from err

    dovecot = DovecotConfig(system, version, uid, store.users_path)
    parts = [dovecot, PostfixVirtual(system, store)]
    current = {c: c.read_current() for c in parts}
    plans = {c: c.plan(settings, current[c]) for c in parts}
    # The Sieve binary is compiled again when Dovecot's configuration (and so
    # perhaps its version) changed.
    sieve = SieveJunk(system, dovecot_config_changed=bool(plans[dovecot]))
    parts.append(sieve)
    current[sieve] = sieve.read_current()
    plans[sieve] = sieve.plan(settings, current[sieve])
    todo = [c for c in parts if plans[c]]
    outcome = Outcome(changed=[c.name for c in todo], domains=tuple(sorted(directory.domains)),
                      mailboxes=len(directory.mailboxes))
    pending = state.postfix_pending()
    snapshot = Snapshot([path for c in todo for path in c.files()])
    committed = False
    if todo:
        state.set_postfix_pending("reload")
    try:
        for c in todo:
            c.record_originals(state, plans[c], current[c])
        for c in todo:
            c.apply(plans[c])
        changed_maps = store.commit(directory)
        committed = bool(changed_maps)
        if changed_maps and directory.domains != before.domains:
            outcome.changed.append("domains")
        if system.run_services:
            dovecot.check()
            system.run(["postfix", "check"])
        # A domain is delivered locally or to mailboxes, never both: the core
        # takes the mailbox domains out of mydestination (and reloads Postfix).
        mailbox_system.reapply_core(system)
    except (MailsetupError, OSError) as err:
        snapshot.restore()
        if committed:
            before.origin = directory.origin
            store.commit(before)
            mailbox_system.reapply_core(system)
        state.set_postfix_pending(pending)
        # Translators: {error} is the reason, often the output of a Dovecot or Postfix command (in English).
        raise ApplyFailed(_("applying the mailbox settings failed, the previous configuration is back in place: "
                            "{error}").format(error=err)) from err

    if system.run_services:
        if todo or pending:
            outcome.postfix = "not running"
            if postfix_service.running(system):
                postfix_service.reload(system)
                outcome.postfix = "reloaded"
        state.set_postfix_pending(None)
        service = services.of(system)
        if service.running(DOVECOT):
            if dovecot in todo or sieve in todo:
                outcome.dovecot = "reloaded" if service.reload(DOVECOT) else "reload failed"
        else:
            # On a system with an init system; in a chroot this starts nothing.
            service.start(DOVECOT)
            outcome.dovecot = "started" if service.running(DOVECOT) else "not running"
    state.save_applied({"answers": settings.to_answers()})
    return outcome


def answers_from_system(system):
    """question -> answer as the system reflects it (for dpkg-reconfigure's defaults)."""
    if not mailbox_system.configured(system):
        return {}
    found = {}
    domains = system.virtual_domains()
    found["domains"] = " ".join(domains)
    try:
        explicit = system.postconf().explicit(["smtpd_tls_cert_file", "smtpd_tls_key_file"])
    except MailsetupError:
        return found
    if explicit["smtpd_tls_cert_file"]:
        found["tls_cert"] = explicit["smtpd_tls_cert_file"]
    if explicit["smtpd_tls_key_file"]:
        found["tls_key"] = explicit["smtpd_tls_key_file"]
    return found
