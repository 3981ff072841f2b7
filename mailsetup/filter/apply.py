"""Apply the filter settings (mailsetup-filter): DKIM keys, rspamd, Postfix.

Through the apply engine (mailsetup/transaction.py): the DKIM keys this run
makes are removed again on failure, with the components' files.
"""

import contextlib
import os
from dataclasses import dataclass, field

from mailsetup import dkim, postfix_service, services
from mailsetup.filter.access import AccessError
from mailsetup.filter.components import rspamd
from mailsetup.filter.components.access_maps import AccessMaps
from mailsetup.filter.components.postfix_filter import PostfixFilter
from mailsetup.filter.health import RSPAMD, filter_problem
from mailsetup.errors import ApplyFailed
from mailsetup.i18n import _
from mailsetup.state import StateDir
from mailsetup.transaction import Transaction


@dataclass
class Outcome:
    changed: list = field(default_factory=list)
    new_keys: list = field(default_factory=list)   # domains that got a DKIM key
    domains: tuple = ()
    postfix: str = "unchanged"   # "reloaded", "not running", "unchanged"
    # "reloaded", "started", "restarted", "restart needed", "reload failed", "not running", "unchanged"
    rspamd: str = "unchanged"
    # After the reloads: None when the filter works, else why not (one line);
    # checked only where services run (Outcome.checked).
    problem: str = None
    checked: bool = False


# How long rspamd may take after a start to bind its milter socket.
MILTER_WAIT = 30


def filter_state(system):
    return StateDir(system.filter_state_dir)


def configured(system):
    return filter_state(system).applied() is not None


def mail_domains(system, core_settings):
    """The domains whose mail is signed: the core's mail domain and the mailbox domains."""
    return system.mail_domains(core_settings.mail_domain)


def group_directory(system):
    """mailsetup-imap's PostgreSQL directory when this server is in a group (it holds
    the group's DKIM keys), else None. Imported late: mailsetup-imap is not always installed."""
    try:
        from mailsetup.imap.mailboxes import system as mailbox_system
    except ImportError:
        return None
    if mailbox_system.live_backend(system) != "pgsql":
        return None
    return mailbox_system.pgsql_store(system)


def ensure_keys(system, domains):
    """A DKIM key for every domain that has none (in a group of servers: the group's
    key); the domains that got one."""
    group = group_directory(system)
    return [d for d in domains if dkim.ensure_key(system, d, group=group)]


def reload_rspamd(system, restart=False):
    """Reload a running rspamd (it re-reads local.d), restart it where its sockets
    changed, start it where it does not run; what happened."""
    service = services.of(system)
    if service.running(RSPAMD):
        if restart:
            if service.restart(RSPAMD):
                return "restarted"
            # No init system to restart it with (a chroot): the new socket waits for the next start.
            return "restart needed" if service.reload(RSPAMD) else "reload failed"
        return "reloaded" if service.reload(RSPAMD) else "reload failed"
    service.start(RSPAMD)
    return "started" if service.running(RSPAMD) else "not running"


def apply(settings, core_settings, system):
    state = filter_state(system)
    domains = mail_domains(system, core_settings)
    access_maps = AccessMaps(system)
    try:
        lists = access_maps.load()
    except AccessError as err:
        raise ApplyFailed(str(err)) from err
    transaction = Transaction(system, state)
    rspamd_config = rspamd.RspamdConfig(system, core_settings.mynetworks)
    # The tables before main.cf names them, rspamd's maps before its configuration.
    transaction.add(access_maps, lists)
    transaction.add(rspamd_config, settings)
    postfix_filter = PostfixFilter(system)
    transaction.add(postfix_filter, settings)
    todo = transaction.todo
    outcome = Outcome(changed=transaction.changed, domains=domains)
    # The keys this run may make are put back (removed) with the files on failure.
    key_files = [path for d in domains for path in dkim.key_files(system, d)]
    dkim_dir_existed = os.path.isdir(system.dkim_dir)

    def make_keys():
        # Keys first: the signing configuration names them.
        outcome.new_keys = ensure_keys(system, domains) if system.run_services else []

    def make_socket_dir():
        if system.run_services:
            rspamd_config.make_socket_dir()

    def remove_dkim_dir():
        if not dkim_dir_existed:
            with contextlib.suppress(OSError):
                os.rmdir(system.dkim_dir)

    def reload():
        # With run_services off (scratch directories) the report says "unchanged".
        if not system.run_services:
            return
        service = services.of(system)
        # rspamd first: Postfix then finds the milter where main.cf now says.
        if rspamd_config in todo or access_maps in todo or outcome.new_keys or not service.running(RSPAMD):
            outcome.rspamd = reload_rspamd(system, restart=rspamd_config.needs_restart(transaction.plans[rspamd_config]))
        if postfix_filter in todo or access_maps in todo or transaction.pending:
            outcome.postfix = postfix_service.apply_changes(system)

    def verify():
        if not system.run_services:
            return
        # What the report says is what the services say now.
        outcome.problem = filter_problem(system, wait=MILTER_WAIT)
        outcome.checked = True
        if not services.of(system).running(RSPAMD):
            outcome.rspamd = "not running"

    transaction.run(
        settings.to_answers(),
        # Translators: {error} is the reason, often the output of an rspamd or Postfix command (in English).
        _("applying the filter settings failed, the previous configuration is back in place: "
          "{error}"),
        reload, before_apply=[make_keys], after_apply=[make_socket_dir], checks=[rspamd_config.check],
        undo=[remove_dkim_dir], extra_files=key_files, verify=verify)
    return outcome
