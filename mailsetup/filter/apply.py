"""Apply the filter settings (mailsetup-filter): DKIM keys, rspamd, Postfix.

Through the apply engine (mailsetup/transaction.py): the DKIM keys this run
makes are removed again on failure, with the components' files.
"""

import contextlib
import errno
import os
import pwd
import socket
import stat
import time
from dataclasses import dataclass, field

from mailsetup import dkim, postfix_service, services
from mailsetup.filter.access import AccessError
from mailsetup.filter.components import rspamd
from mailsetup.filter.components.access_maps import AccessMaps
from mailsetup.filter.components.postfix_filter import PostfixFilter
from mailsetup.errors import ApplyFailed
from mailsetup.i18n import _
from mailsetup.state import StateDir
from mailsetup.transaction import Transaction
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


RSPAMD = "rspamd"
POSTFIX_USER = "postfix"
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


def milter_path(system):
    """The milter socket as rspamd binds it (Postfix names it relative to its queue directory)."""
    queue_directory = system.postconf().effective(["queue_directory"])["queue_directory"]
    return os.path.join(queue_directory, rspamd.MILTER_SOCKET)


def _connect(path):
    """0 when a connection to the unix socket at path is accepted, else an errno."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(2)
    try:
        sock.connect(path)
        return 0
    except socket.timeout:
        return errno.ETIMEDOUT
    except OSError as err:
        return err.errno or errno.EIO
    finally:
        sock.close()


def _connect_as(path, user):
    """_connect() in a child process with user's uid and primary group only, as
    Postfix's daemons run (they drop supplementary groups)."""
    pid = os.fork()
    if pid == 0:
        code = errno.EIO
        try:
            os.setgroups([user.pw_gid])
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
            code = _connect(path)
        finally:
            os._exit(min(code, 255))
    _pid, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else errno.EIO


def _allowed(info, user, bits):
    """Whether user (uid and primary group) has the permission bits (r=4, w=2, x=1) on info."""
    if info.st_uid == user.pw_uid:
        return info.st_mode >> 6 & bits == bits
    if info.st_gid == user.pw_gid:
        return info.st_mode >> 3 & bits == bits
    return info.st_mode & bits == bits


def _permission_problem(path, user):
    """EACCES when the mode bits of path's directories or of the socket keep user out, else 0."""
    directory = os.path.dirname(os.path.abspath(path))
    while True:
        if not _allowed(os.stat(directory), user, 1):
            return errno.EACCES
        parent = os.path.dirname(directory)
        if parent == directory:
            break
        directory = parent
    return 0 if _allowed(os.stat(path), user, 2) else errno.EACCES


def milter_checkable(path):
    """Whether this process can check the socket: root, or one that may enter its directory."""
    return os.geteuid() == 0 or os.access(os.path.dirname(path), os.X_OK)


def milter_problem(path, user_name=POSTFIX_USER):
    """None when Postfix (its user) can connect to the milter socket at path, else
    why not. As root the connection is tried as that user; otherwise only the
    permission bits are compared."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        # Translators: why Postfix cannot use rspamd's milter socket.
        return _("Milter socket {path}: it does not exist").format(path=path)
    except OSError as err:
        return _("Milter socket {path}: Postfix cannot connect ({reason})").format(path=path, reason=err.strerror)
    if not stat.S_ISSOCK(info.st_mode):
        return _("Milter socket {path}: it is not a socket").format(path=path)
    try:
        user = pwd.getpwnam(user_name)
    except KeyError:
        return _("Milter socket {path}: there is no user {user}").format(path=path, user=user_name)
    code = _connect_as(path, user) if os.geteuid() == 0 else _permission_problem(path, user)
    if code:
        return _("Milter socket {path}: Postfix cannot connect ({reason})").format(
            path=path, reason=os.strerror(code))
    return None


def filter_problem(system, wait=0):
    """None when rspamd runs and Postfix can reach its milter, else why not (one line).
    wait: seconds to give a just started rspamd to bind its socket."""
    if not services.of(system).running(RSPAMD):
        return _("rspamd is not running")
    path = milter_path(system)
    end = time.monotonic() + wait
    while True:
        problem = milter_problem(path)
        if problem is None or time.monotonic() >= end:
            return problem
        time.sleep(0.5)


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
            outcome.postfix = "not running"
            if postfix_service.running(system):
                postfix_service.reload(system)
                outcome.postfix = "reloaded"

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
