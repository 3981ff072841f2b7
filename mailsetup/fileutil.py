"""Atomic file writes, snapshots and locks, so an interrupted or failed apply
leaves whole files and concurrent runs take turns."""

import contextlib
import fcntl
import os
import tempfile


def read_bytes(path):
    """The file's content, or None if it does not exist."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def write_atomic(path, data, mode=0o644):
    """Write data beside path and rename it into place; keeps the old mode and
    owner if path exists (a daemon that could read the old file can read the new)."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    owner = None
    try:
        st = os.stat(path)
        mode, owner = st.st_mode & 0o7777, (st.st_uid, st.st_gid)
    except FileNotFoundError:
        pass
    fd, tmp = tempfile.mkstemp(prefix=".mailsetup-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if owner and owner != (os.geteuid(), os.getegid()):
            os.chown(tmp, *owner)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_if_changed(path, data, mode=0o644):
    """Write only when the content differs, so an unchanged file keeps its mtime. True if written."""
    if read_bytes(path) == data:
        return False
    write_atomic(path, data, mode)
    return True


class Snapshot:
    """The content of some files before a change, to put back if the change fails."""

    def __init__(self, paths):
        self.saved = {path: read_bytes(path) for path in paths}

    def restore(self):
        for path, data in self.saved.items():
            if data is None:
                if os.path.exists(path):
                    os.unlink(path)
            elif read_bytes(path) != data:
                write_atomic(path, data)


@contextlib.contextmanager
def locked(path):
    """Hold the exclusive flock on the lock file path (created 0600, its folder too)
    for the block; closing the file at the end releases it."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
