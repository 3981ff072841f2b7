"""Apply the core settings to the system: plan, apply, check, undo on failure.

Idempotent: when the system already matches the settings nothing is written
and Postfix is not reloaded.
"""

import os
import stat
import time
from dataclasses import dataclass, field

from mailsetup.components.account import AdminAccount
from mailsetup.components.aliases import Aliases
from mailsetup.components.mailname import Mailname
from mailsetup.components.postfix_bootstrap import PostfixBootstrap
from mailsetup.components.postfix_main import PostfixMain
from mailsetup.fileutil import Snapshot
from mailsetup.i18n import _
from mailsetup.state import StateDir
from mailsetup.system import CommandFailed

# A test hook: pause halfway through an apply (after main.cf, before the rest),
# so a test can kill the helper there and check that dpkg --configure -a recovers.
PAUSE_FILE_ENV = "MAILSETUP_TEST_PAUSE_FILE"


class ApplyFailed(RuntimeError):
    pass


@dataclass
class Outcome:
    changed: list = field(default_factory=list)  # names of the components that changed
    postfix: str = "not running"  # "reloaded", "restarted", "not running", "unchanged"


def components(system):
    # The account comes first: the aliases send root's mail to it. /etc/mailname
    # precedes main.cf, whose myorigin names it (postalias reads it).
    return [AdminAccount(system), Mailname(system), PostfixMain(system), Aliases(system)]


def read_system(system):
    """component -> its current state."""
    return {c: c.read_current() for c in components(system)}


def answers_from_system(system):
    """question -> [(component name, answer), ...] as the system reflects it, main.cf first."""
    found = {}
    if not system.postfix_installed():
        return found
    # main.cf first: its mydomain is the mail domain, /etc/mailname only echoes it.
    ordered = sorted(read_system(system).items(), key=lambda item: not isinstance(item[0], PostfixMain))
    for component, current in ordered:
        for question, answer in component.answers_from_system(current).items():
            found.setdefault(question, []).append((component.name, answer))
    return found


def _pause_for_tests():
    path = os.environ.get(PAUSE_FILE_ENV)
    if path:
        open(path + ".reached", "w").close()
        while os.path.exists(path):
            time.sleep(0.1)


def apply(settings, system):
    """Bring the system in line with settings; on any failure put every file back."""
    state = StateDir(system.state_dir)
    bootstrap = PostfixBootstrap(system)
    created = False
    if bootstrap.needed():
        try:
            created = bootstrap.create(state)
        except (CommandFailed, OSError, RuntimeError) as err:
            bootstrap.undo(state)
            # Translators: {error} is the reason, often from the system (in English).
            raise ApplyFailed(_("could not create {path}: {error}").format(
                path=system.main_cf_path, error=err)) from err
        if not created:
            raise ApplyFailed(_("{path} does not exist and postfix's template is missing: is postfix installed?").format(
                path=system.main_cf_path))
    try:
        outcome = _apply_components(settings, system, state)
    except ApplyFailed:
        if created:
            bootstrap.undo(state)
        raise
    if created:
        bootstrap.start_postfix()
    return outcome


def _apply_components(settings, system, state):
    current = read_system(system)
    plans = {c: c.plan(settings, current[c]) for c in current}
    todo = [c for c in current if plans[c]]
    outcome = Outcome(changed=[c.name for c in todo])
    main = next(c for c in current if isinstance(c, PostfixMain))

    # A run killed after changing files but before telling Postfix leaves a
    # note of what it owed; without it the next run would find the files in
    # place, change nothing, and leave Postfix on the old settings.
    pending = state.postfix_pending()
    if todo:
        restart = main.needs_restart(plans[main] or {}) or pending == "restart"
        state.set_postfix_pending("restart" if restart else "reload")
        snapshot = Snapshot([path for c in todo for path in c.files()])
        try:
            for c in todo:
                c.record_originals(state, plans[c], current[c])
            for c in todo:
                c.apply(plans[c])
                if c is main:
                    _pause_for_tests()
            if system.run_services:
                system.run(["postfix", "check"])
        except (CommandFailed, OSError, RuntimeError) as err:
            snapshot.restore()
            state.set_postfix_pending(pending)
            # Translators: {error} is the reason, often the output of a Postfix command (in English).
            raise ApplyFailed(_("applying the settings failed, the previous configuration is back in place: {error}").format(
                error=err)) from err
        outcome.postfix = _reload_postfix(system, restart=restart)
        state.set_postfix_pending(None)
    elif pending:
        outcome.postfix = _reload_postfix(system, restart=pending == "restart")
        state.set_postfix_pending(None)
    else:
        outcome.postfix = "unchanged"

    state.save_applied({"answers": settings.to_answers()})
    return outcome


def _reload_postfix(system, restart):
    if not system.run_services:
        return "not running"
    if system.run(["postfix", "status"], check=False).returncode != 0:
        return "not running"
    if not restart:
        system.run(["postfix", "reload"])
        return "reloaded"
    # inet_interfaces and inet_protocols need a stop and start; a reload is not enough.
    systemd = os.path.isdir("/run/systemd/system")
    stopping = time.time()
    system.run(["systemctl", "stop", "postfix.service"] if systemd else ["postfix", "stop"])
    remove_locks_of_killed_deliveries(system, since=stopping - STOP_LOCK_WINDOW)
    system.run(["systemctl", "start", "postfix.service"] if systemd else ["postfix", "start"])
    return "restarted"


# How far back before a stop a mailbox lock may have been taken by a delivery it killed.
STOP_LOCK_WINDOW = 5


def remove_locks_of_killed_deliveries(system, since):
    """Remove mailbox dot-locks left by local(8) deliveries that stopping Postfix killed.

    Stopping Postfix kills deliveries in progress; a killed local(8) leaves
    /var/mail/USER.lock behind and every later delivery to USER is deferred
    until the lock is stale_lock_time (500 s) old. A lock taken in the few
    seconds before the stop and still there once every Postfix process is
    gone is such a leftover: deliveries hold their locks for milliseconds.
    """
    if system.run(["postfix", "status"], check=False).returncode == 0:
        return  # something still runs: leave every lock alone
    spool = system.postconf().effective(["mail_spool_directory"])["mail_spool_directory"]
    try:
        names = os.listdir(spool)
    except OSError:
        return
    for name in names:
        if not name.endswith(".lock"):
            continue
        path = os.path.join(spool, name)
        try:
            info = os.lstat(path)
            if stat.S_ISREG(info.st_mode) and info.st_size == 0 and info.st_mtime >= since:
                os.unlink(path)
        except OSError:
            pass
