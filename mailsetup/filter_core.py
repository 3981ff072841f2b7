"""Apply the filter settings (mailsetup-filter): DKIM keys, rspamd, Postfix.

Same shape as core.py: read what is there, plan, record originals, apply,
check with the components' own tools (rspamadm configtest, postfix check),
undo every file on failure, reload only what changed.
"""

import contextlib
import fcntl
import os
import signal
from dataclasses import dataclass, field

from mailsetup import dkim, postfix_service
from mailsetup.access import AccessError
from mailsetup.components import rspamd
from mailsetup.components.access_maps import AccessMaps
from mailsetup.components.postfix_filter import PostfixFilter
from mailsetup.core import ApplyFailed
from mailsetup.fileutil import Snapshot
from mailsetup.i18n import _
from mailsetup.state import StateDir
from mailsetup.system import CommandFailed
from mailsetup.validate import NO_DOMAIN


@dataclass
class Outcome:
    changed: list = field(default_factory=list)
    new_keys: list = field(default_factory=list)   # domains that got a DKIM key
    domains: tuple = ()
    postfix: str = "unchanged"   # "reloaded", "not running", "unchanged"
    rspamd: str = "unchanged"    # "reloaded", "started", "not running", "unchanged"


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
    """HUP a running rspamd (it re-reads local.d), or restart it where its sockets
    changed; start it where an init system can."""
    pid = rspamd.running()
    if pid and restart:
        if system.run(["invoke-rc.d", "rspamd", "restart"], check=False).returncode == 0:
            return "restarted"
        # No init system to restart it with (a chroot): the new socket waits for the next start.
        os.kill(pid, signal.SIGHUP)
        return "restart needed"
    if pid:
        os.kill(pid, signal.SIGHUP)
        return "reloaded"
    system.run(["invoke-rc.d", "rspamd", "start"], check=False)
    return "started" if rspamd.running() else "not running"


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
    snapshot = Snapshot([path for c in todo for path in c.files()])
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
    except (CommandFailed, OSError, RuntimeError) as err:
        snapshot.restore()
        state.set_postfix_pending(pending)
        # Translators: {error} is the reason, often the output of an rspamd or Postfix command (in English).
        raise ApplyFailed(_("applying the filter settings failed, the previous configuration is back in place: "
                            "{error}").format(error=err)) from err

    if system.run_services:
        # rspamd first: Postfix then finds the milter where main.cf now says.
        if (any(isinstance(c, (rspamd.RspamdConfig, AccessMaps)) for c in todo) or outcome.new_keys
                or not rspamd.running()):
            outcome.rspamd = reload_rspamd(system, restart=parts[1].needs_restart(plans[parts[1]]))
        if any(isinstance(c, (PostfixFilter, AccessMaps)) for c in todo) or pending:
            outcome.postfix = "not running"
            if postfix_service.running(system):
                postfix_service.reload(system)
                outcome.postfix = "reloaded"
        state.set_postfix_pending(None)
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
        if system.run_services and postfix_service.running(system):
            postfix_service.reload(system)
    except (CommandFailed, OSError) as err:
        snapshot.restore()
        raise ApplyFailed(_("changing the access lists failed, they are as before: {error}").format(
            error=err)) from err
    pid = rspamd.running() if system.run_services else None
    if pid:
        os.kill(pid, signal.SIGHUP)
    return sorted(plan)
