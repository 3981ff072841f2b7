"""Reload or restart a running Postfix without losing or duplicating mail.

A reload is lossless: old daemons finish what they do and exit. A restart
(needed for inet_interfaces and inet_protocols) is not: stopping the master
sends SIGTERM to every Postfix process, and a delivery agent killed after
writing a mailbox but before the queue manager marked the recipient done is
delivered again after the start. So before stopping, deliveries are drained:
every delivery transport is deferred for a moment (defer_transports and a
reload), the running deliveries finish, then Postfix is stopped, started
with the admin's defer_transports back, and the deferred mail is flushed.

The drain is recorded in the state directory before main.cf changes, so a
run killed halfway is finished by the next one (finish_interrupted_drain).
"""

import os
import stat
import time

from mailsetup import services
from mailsetup.i18n import _
from mailsetup.errors import CommandFailed

# Commands of master.cf services that deliver mail (transports).
DELIVERY_AGENTS = ("local", "virtual", "lmtp", "smtp", "pipe")
# How long running deliveries may take to finish before Postfix is stopped anyway.
DRAIN_TIMEOUT = 60
# How far back before a stop a mailbox lock may have been taken by a delivery it killed.
STOP_LOCK_WINDOW = 5


def delivery_transports(entries):
    """Names of the master.cf services that deliver mail, from MasterEntry
    (postfix_tools.Postconf.master_entries)."""
    return [e.service for e in entries if e.type == "unix" and e.command in DELIVERY_AGENTS]


def running(system):
    return services.of(system).running(services.POSTFIX)


def reload(system):
    if not services.of(system).reload(services.POSTFIX):
        raise CommandFailed(_("{command} failed").format(command="postfix reload"))


def apply_changes(system, state=None, needs_restart=False):
    """Make a running Postfix use changed files; what happened: "reloaded",
    "restarted" or "not running". needs_restart: inet_interfaces and
    inet_protocols need a stop and start, a reload is not enough (state
    records the drain)."""
    if not running(system):
        return "not running"
    if needs_restart:
        restart(system, state)
        return "restarted"
    reload(system)
    return "reloaded"


def restart(system, state):
    """Stop and start a running Postfix after draining its deliveries."""
    pc = system.postconf()
    transports = delivery_transports(pc.master_entries())
    if transports:
        original = pc.explicit(["defer_transports"])["defer_transports"]
        state.begin_drain(original)
        pc.change({"defer_transports": ", ".join(transports)})
        reload(system)
        wait_for_deliveries(system, pc)
        pc.change({"defer_transports": original})
    service = services.of(system)
    stopping = time.time()
    if not service.stop_postfix():
        raise CommandFailed(_("{command} failed").format(command="postfix stop"))
    remove_locks_of_killed_deliveries(system, since=stopping - STOP_LOCK_WINDOW)
    if not service.start_postfix():
        raise CommandFailed(_("{command} failed").format(command="postfix start"))
    state.end_drain()
    flush_deferred(system)


def flush_deferred(system, tries=20):
    """Deliver what the drain deferred now, not at the next queue run (up to 5 minutes).

    postqueue -f fails while the new master is not yet taking requests: try again."""
    for _attempt in range(tries):
        if system.run(["postqueue", "-f"], check=False).returncode == 0:
            return True
        time.sleep(0.5)
    return False


def finish_interrupted_drain(system, state):
    """Put back the admin's defer_transports if a run was killed during a drain.

    The restart it owed is still recorded as pending, so the caller restarts."""
    recorded, original = state.drain_original()
    if recorded:
        system.postconf().change({"defer_transports": original})
        state.end_drain()


def wait_for_deliveries(system, pc, timeout=DRAIN_TIMEOUT):
    """Wait until no delivery agent of this Postfix runs (bounded)."""
    queue_dir = pc.effective(["queue_directory"])["queue_directory"]
    master = _master_pid(queue_dir)
    end = time.monotonic() + timeout
    while master and _delivery_agents_of(master) and time.monotonic() < end:
        time.sleep(0.1)


def _master_pid(queue_dir):
    try:
        with open(os.path.join(queue_dir, "pid", "master.pid"), encoding="ascii") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def _delivery_agents_of(master):
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                # pid (comm) state ppid ...; comm may hold spaces, so split after ')'.
                ppid = int(f.read().rpartition(")")[2].split()[1])
            if ppid != master:
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv0 = f.read().split(b"\0", 1)[0].decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
        if os.path.basename(argv0) in DELIVERY_AGENTS:
            found.append(int(entry))
    return found


def remove_locks_of_killed_deliveries(system, since):
    """Remove mailbox dot-locks left by local(8) deliveries that stopping Postfix killed.

    A delivery killed by the stop (one that outlived the drain) leaves
    /var/mail/USER.lock behind and every later delivery to USER is deferred
    until the lock is stale_lock_time (500 s) old. A lock taken in the few
    seconds before the stop and still there once every Postfix process is
    gone is such a leftover: deliveries hold their locks for milliseconds.
    """
    if running(system):
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
