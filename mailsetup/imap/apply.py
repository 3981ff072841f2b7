"""Apply the mailboxes settings (mailsetup-imap): vmail, Dovecot, Postfix, domains,
the Sieve script that files spam into Junk and those that let rspamd learn
from the Junk folder.

Through the apply engine (mailsetup/transaction.py), with the directory's
domains committed after the components and the core applied again last, so
that mydestination follows them; a failure puts those back too.
"""

import os
import pwd
from dataclasses import dataclass, field

from mailsetup import postfix_service, reapply, services
from mailsetup.imap.components.acme import AcmeCertificate
from mailsetup.imap.components.dovecot import DovecotConfig
from mailsetup.imap.components.learn import SieveLearn
from mailsetup.imap.components.postfix_virtual import PostfixVirtual
from mailsetup.imap.components.sieve import SieveJunk
from mailsetup.fileutil import read_bytes, write_atomic
from mailsetup.errors import ApplyFailed, CommandFailed, MailsetupError
from mailsetup.i18n import _
from mailsetup.imap.mailboxes import system as mailbox_system
from mailsetup.imap.mailboxes.model import MailboxError
from mailsetup.imap.certificate import tls_source_of
from mailsetup.transaction import Transaction

VMAIL_USER = "vmail"
DOVECOT = "dovecot"


@dataclass
class Outcome:
    changed: list = field(default_factory=list)
    postfix: str = "unchanged"   # "reloaded", "not running", "unchanged"
    dovecot: str = "unchanged"   # "reloaded", "started", "not running", "unchanged"
    domains: tuple = ()
    mailboxes: int = 0
    directory: str = ""          # where the SQLite mailbox directory is


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


def _directory_with_domains(store, domains, removable=None):
    """The directory after adding the answered domains and removing the others
    (of removable, when given).

    A domain that still has mailboxes, aliases or lists is not removed: the
    model refuses with a line that says so."""
    directory = store.load()
    for name in domains:
        if name not in directory.domains:
            directory.add_domain(name)
    for name in sorted(directory.domains - set(domains)):
        if removable is None or name in removable:
            directory.del_domain(name)
    return directory


def _joined_group(system, settings, sqlite):
    """The PostgreSQL store of settings, its tables there; the first server of a
    group brings the mailboxes of its SQLite directory into it."""
    store = mailbox_system.pgsql_store(system, settings)
    store.install()
    mailbox_system.adopt(store, sqlite)
    return store


def certificate_names(system, core_settings):
    """The names the certificate from an ACME CA is for: the server's, then those of
    the other packages' sites (reapply.py)."""
    hostname = core_settings.hostname
    return [hostname] + [n for n in reapply.certificate_names(system, core_settings) if n != hostname]


def apply(settings, system, dovecot_version=None, core_settings=None):
    """core_settings: the core's applied settings; a certificate from an ACME CA is for its hostname."""
    state = mailbox_system.imap_state(system)
    version = dovecot_version or mailbox_system.dovecot_version()
    try:
        uid = ensure_vmail(system)
        # A file store (releases up to 0.3.0) is copied into SQLite here and retired only
        # once the transaction below pointed Postfix and Dovecot at SQLite.
        migrating = mailbox_system.live_backend(system) == "files"
        store = mailbox_system.migrate_to_sqlite(system, version)
        leaving_pgsql = mailbox_system.leaving_pgsql(system, settings)
        removable = None  # any domain not answered
        if settings.directory == "postgresql":
            # The settings file that makes it live is written inside the transaction (switch_directory).
            store = _joined_group(system, settings, store)
            applied = state.applied()
            # Other servers add domains too: a domain goes only when this server's answer dropped it.
            removable = set(applied["answers"].get("domains", "").split()) if applied else set()
        elif leaving_pgsql:
            mailbox_system.adopt(store, mailbox_system.pgsql_store(system), replace=True)
        before = store.load()
        directory = _directory_with_domains(store, settings.domains, removable)
    except (MailboxError, CommandFailed, OSError) as err:
        raise ApplyFailed(str(err)) from err

    transaction = Transaction(system, state)
    # First: a CA that refuses stops the apply before the services are pointed at it.
    acme = AcmeCertificate(system, certificate_names(system, core_settings) if core_settings else ())
    if settings.tls_source == "acme" and not core_settings:
        raise ApplyFailed(_("a certificate from an ACME CA needs the server's name: configure mailsetup first"))
    transaction.add(acme, settings)
    dovecot = DovecotConfig(system, version, uid, store)
    transaction.add(dovecot, settings)
    postfix_virtual = PostfixVirtual(system, store)
    transaction.add(postfix_virtual, settings)
    # The Sieve binaries are compiled again when Dovecot's configuration (and so
    # perhaps its version) changed; after it, since it enables what they use.
    dovecot_changed = bool(transaction.plans[dovecot])
    sieve = SieveJunk(system, dovecot_config_changed=dovecot_changed)
    transaction.add(sieve, settings)
    learn = SieveLearn(system, dovecot_config_changed=dovecot_changed)
    transaction.add(learn, settings)
    todo = transaction.todo
    outcome = Outcome(changed=transaction.changed, domains=tuple(sorted(directory.domains)),
                      mailboxes=len(directory.mailboxes), directory=store.root if store.backend == "sqlite" else store.location)
    committed = []

    settings_path = mailbox_system.pgsql_settings_path(system)
    settings_before = read_bytes(settings_path)

    def switch_directory():
        # From here on the group's directory is the live one (system.live_backend), for
        # the core's reapply below too; put back if the apply fails.
        if settings.directory == "postgresql" and store.save_settings():
            outcome.changed.append("directory (PostgreSQL)")

    def switch_back():
        if settings.directory != "postgresql" or read_bytes(settings_path) == settings_before:
            return
        if settings_before is None:
            os.unlink(settings_path)
        else:
            write_atomic(settings_path, settings_before, 0o600)

    def commit_domains():
        if store.commit(directory):
            committed.append(True)
            if directory.domains != before.domains:
                outcome.changed.append("domains")

    def reapply_core():
        # A domain is delivered locally or to mailboxes, never both: the core
        # takes the mailbox domains out of mydestination (and reloads Postfix).
        reapply.reapply_core(system)

    def put_domains_back():
        if committed:
            before.origin = directory.origin
            store.commit(before)
            reapply.reapply_core(system)

    def reload():
        # With run_services off (scratch directories) the report says "unchanged".
        if not system.run_services:
            return
        obtained = "obtain" in (transaction.plans[acme] or {})
        if todo or transaction.pending:
            outcome.postfix = postfix_service.apply_changes(system)
        service = services.of(system)
        if obtained and service.running("nginx"):
            service.reload("nginx")  # the webmail's site reads the same certificate
        if service.running(DOVECOT):
            if dovecot in todo or sieve in todo or learn in todo or obtained:
                outcome.dovecot = "reloaded" if service.reload(DOVECOT) else "reload failed"
        else:
            # On a system with an init system; in a chroot this starts nothing.
            service.start(DOVECOT)
            outcome.dovecot = "started" if service.running(DOVECOT) else "not running"

    transaction.run(
        settings.to_answers(),
        # Translators: {error} is the reason, often the output of a Dovecot or Postfix command (in English).
        _("applying the mailbox settings failed, the previous configuration is back in place: "
          "{error}"),
        reload, after_apply=[switch_directory, commit_domains], checks=[dovecot.check, postfix_virtual.check],
        check_unchanged=True, after_checks=[reapply_core], undo=[switch_back, put_domains_back])
    if migrating and mailbox_system.retire_file_store(system):
        outcome.changed.append("directory (SQLite)")
    if leaving_pgsql and mailbox_system.retire_pgsql(system):
        outcome.changed.append("directory (SQLite)")
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
        applied = mailbox_system.imap_state(system).applied()
        # files may name any file, snakeoil's and certbot's too: still files
        if not (applied and applied["answers"].get("tls_source") == "files"):
            found["tls_source"] = tls_source_of(explicit["smtpd_tls_cert_file"])
        found["tls_cert"] = explicit["smtpd_tls_cert_file"]
    if explicit["smtpd_tls_key_file"]:
        found["tls_key"] = explicit["smtpd_tls_key_file"]
    return found
