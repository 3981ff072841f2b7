"""Apply the filter settings (mailsetup-filter): DKIM keys, rspamd, Postfix.

Same shape as core.py: read what is there, plan, record originals, apply,
check with the components' own tools (rspamadm configtest, postfix check),
undo every file on failure, reload only what changed.
"""

import contextlib
import fcntl
import os
from dataclasses import dataclass, field

from mailsetup import dkim, postfix_service, services
from mailsetup.filter.access import AccessError
from mailsetup.filter.components import rspamd
from mailsetup.filter.components.access_maps import AccessMaps
from mailsetup.filter.components.postfix_filter import PostfixFilter
from mailsetup.filter.health import RSPAMD, filter_problem
from mailsetup.errors import ApplyFailed, MailsetupError
from mailsetup.fileutil import Snapshot
from mailsetup.i18n import _
from mailsetup.state import StateDir
from mailsetup.errors import CommandFailed
from mailsetup.validate import NO_DOMAIN


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
    found = [] if core_settings.mail_domain == NO_DOMAIN else [core_settings.mail_domain]
    return tuple(dict.fromkeys(found + list(system.virtual_domains())))


def ensure_keys(system, domains):
    """A DKIM key for every domain that has none; the domains that got one."""
    return [d for d in domains if dkim.ensure_key(system, d)]


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
    # The tables before main.cf names them, rspamd's maps before its configuration.
    parts = [access_maps, rspamd.RspamdConfig(system, core_settings.mynetworks), PostfixFilter(system)]
    wanted = {access_maps: lists}
    current = {c: c.read_current() for c in parts}
    plans = {c: c.plan(wanted.get(c, settings), current[c]) for c in parts}
    todo = [c for c in parts if plans[c]]
    outcome = Outcome(changed=[c.name for c in todo], domains=domains)
    pending = state.postfix_pending()
    # The keys this run may make are put back (removed) with the files on failure.
    key_files = [path for d in domains for path in dkim.key_files(system, d)]
    dkim_dir_existed = os.path.isdir(system.dkim_dir)
    snapshot = Snapshot([path for c in todo for path in c.files()] + key_files)
    if todo:
        state.set_postfix_pending("reload")
    try:
        # Keys first: the signing configuration names them.
        outcome.new_keys = ensure_keys(system, domains) if system.run_services else []
        for c in todo:
            c.record_originals(state, plans[c], current[c])
        for c in todo:
            c.apply(plans[c])
        if system.run_services:
            parts[1].make_socket_dir()
        if system.run_services and todo:
            parts[1].check()
            system.run(["postfix", "check"])
    except (MailsetupError, OSError) as err:
        snapshot.restore()
        if not dkim_dir_existed:
            with contextlib.suppress(OSError):
                os.rmdir(system.dkim_dir)
        state.set_postfix_pending(pending)
        # Translators: {error} is the reason, often the output of an rspamd or Postfix command (in English).
        raise ApplyFailed(_("applying the filter settings failed, the previous configuration is back in place: "
                            "{error}").format(error=err)) from err

    if system.run_services:
        service = services.of(system)
        # rspamd first: Postfix then finds the milter where main.cf now says.
        if (any(isinstance(c, (rspamd.RspamdConfig, AccessMaps)) for c in todo) or outcome.new_keys
                or not service.running(RSPAMD)):
            outcome.rspamd = reload_rspamd(system, restart=parts[1].needs_restart(plans[parts[1]]))
        if any(isinstance(c, (PostfixFilter, AccessMaps)) for c in todo) or pending:
            outcome.postfix = "not running"
            if postfix_service.running(system):
                postfix_service.reload(system)
                outcome.postfix = "reloaded"
        state.set_postfix_pending(None)
        # What the report says is what the services say now.
        outcome.problem = filter_problem(system, wait=MILTER_WAIT)
        outcome.checked = True
        if not service.running(RSPAMD):
            outcome.rspamd = "not running"
    state.save_applied({"answers": settings.to_answers()})
    return outcome


@contextlib.contextmanager
def access_locked(system):
    """One `mailsetup access` change at a time (read, change, write)."""
    os.makedirs(system.filter_state_dir, exist_ok=True)
    fd = os.open(os.path.join(system.filter_state_dir, ".access-lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def change_access(system, lists):
    """Write the access lists' files and reload Postfix and rspamd; the files written.

    Postfix re-reads its cidr and texthash tables only on reload; rspamd would
    notice its maps within about 30 s, a HUP makes it at once."""
    maps = AccessMaps(system)
    current = maps.read_current()
    plan = maps.plan(lists, current)
    if not plan:
        return []
    snapshot = Snapshot(list(plan))
    try:
        maps.apply(plan)
        if postfix_service.running(system):
            postfix_service.reload(system)
    except (CommandFailed, OSError) as err:
        snapshot.restore()
        raise ApplyFailed(_("changing the access lists failed, they are as before: {error}").format(
            error=err)) from err
    service = services.of(system)
    if service.running(RSPAMD):
        service.reload(RSPAMD)
    return sorted(plan)
