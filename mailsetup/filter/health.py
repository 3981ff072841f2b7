"""Whether mailsetup-filter works: rspamd runs and Postfix can reach its milter socket.

Asked after every apply (filter/apply.py) and by `mailsetup status` (filter/status.py).
"""

import errno
import os
import pwd
import socket
import stat
import time

from mailsetup import services
from mailsetup.filter.components import rspamd
from mailsetup.i18n import _

RSPAMD = "rspamd"
POSTFIX_USER = "postfix"


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
