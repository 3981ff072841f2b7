"""fileutil.write_atomic: what replaces a file keeps what let others read it."""

import os

import pytest

from mailsetup.fileutil import write_atomic


def test_new_file_gets_the_given_mode(tmp_path):
    path = tmp_path / "new.conf"
    write_atomic(str(path), b"x\n", mode=0o640)
    assert path.read_bytes() == b"x\n"
    assert path.stat().st_mode & 0o7777 == 0o640


def test_replaced_file_keeps_its_mode(tmp_path):
    path = tmp_path / "options.inc"
    path.write_bytes(b"old\n")
    os.chmod(path, 0o604)
    write_atomic(str(path), b"new\n")
    assert path.read_bytes() == b"new\n"
    assert path.stat().st_mode & 0o7777 == 0o604


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root (CI runs as root)")
def test_replaced_file_keeps_its_owner_and_group(tmp_path):
    """An administrator's root:_rspamd 0640 file replaced by ours: rspamd
    (running as _rspamd) must still be able to read it."""
    path = tmp_path / "options.inc"
    path.write_bytes(b"old\n")
    os.chown(path, 0, 65534)
    os.chmod(path, 0o640)
    write_atomic(str(path), b"new\n")
    st = path.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, 65534, 0o640)


def test_locked_holds_an_exclusive_flock_on_a_0600_file(tmp_path):
    import fcntl
    from mailsetup.fileutil import locked
    path = tmp_path / "state" / ".lock"

    def free():
        fd = os.open(path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False
        finally:
            os.close(fd)

    with locked(str(path)):
        assert path.stat().st_mode & 0o7777 == 0o600
        assert not free()
    assert free()


def test_locked_releases_the_flock_when_the_block_raises(tmp_path):
    from mailsetup.fileutil import locked
    path = str(tmp_path / ".lock")
    with pytest.raises(RuntimeError):
        with locked(path):
            raise RuntimeError("boom")
    with locked(path):  # would block forever if the first were still held (flock is per open file)
        pass
