"""services.py: the commands it runs; the milter check that tells whether Postfix
can reach rspamd (as the postfix user, with real unix sockets)."""

import grp
import os
import pwd
import shutil
import socket
import subprocess
import tempfile

import pytest

from mailsetup import services

from mailsetup.filter import health
from mailsetup.errors import CommandFailed
from mailsetup.system import System


class Recording(System):
    """A System whose commands are recorded; invoke-rc.d actions in `failing` exit 3, commands
    in `missing` are not installed."""

    def __init__(self, failing=(), missing=()):
        super().__init__()
        self.calls, self.failing, self.missing = [], failing, missing

    def run(self, argv, check=True):
        self.calls.append(argv)
        if argv[0] in self.missing:
            raise CommandFailed(f"{argv[0]} not found")
        failed = argv[0] == "invoke-rc.d" and argv[-1] in self.failing
        return subprocess.CompletedProcess(argv, 3 if failed else 0, "", "")


def test_services_are_asked_through_invoke_rc_d_and_postfix_through_its_own_command():
    system = Recording(failing=("status",))
    service = services.of(system)
    assert service.running("rspamd") is False
    assert service.reload("rspamd") and service.restart("rspamd") and service.start("dovecot")
    assert service.running("postfix") and service.reload("postfix")
    assert system.calls == [["invoke-rc.d", "--quiet", "rspamd", "status"], ["invoke-rc.d", "rspamd", "reload"],
                            ["invoke-rc.d", "rspamd", "restart"], ["invoke-rc.d", "dovecot", "start"],
                            ["postfix", "status"], ["postfix", "reload"]]


class SlowPostfix(Recording):
    """systemd's postfix.service is stopped at once, its instance's master goes a few
    `postfix status` calls later (PartOf= propagation); likewise after a start."""

    def __init__(self, lag=3):
        super().__init__()
        self.master, self.lag, self.countdown = True, lag, 0

    def run(self, argv, check=True):
        self.calls.append(argv)
        if argv[:1] == ["invoke-rc.d"] and argv[-1] in ("stop", "start"):
            self.target, self.countdown = argv[-1] == "start", self.lag
        if argv == ["postfix", "status"]:
            if self.countdown:
                self.countdown -= 1
                if not self.countdown:
                    self.master = self.target
            return subprocess.CompletedProcess(argv, 0 if self.master else 1, "", "")
        return subprocess.CompletedProcess(argv, 0, "", "")


def test_a_restart_under_systemd_waits_for_the_master_to_go_and_to_come(monkeypatch):
    monkeypatch.setattr(services, "booted_with_systemd", lambda: True)
    monkeypatch.setattr(services.time, "sleep", lambda s: None)
    system = SlowPostfix()
    service = services.of(system)
    assert service.stop_postfix()
    assert system.master is False  # not returned while the old master still ran
    assert service.start_postfix()
    assert system.master is True
    assert system.calls.count(["postfix", "status"]) == 2 * system.lag


def test_a_master_that_never_goes_fails_the_stop(monkeypatch):
    monkeypatch.setattr(services, "booted_with_systemd", lambda: True)
    clock = iter(range(0, 1000, 5))
    monkeypatch.setattr(services.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(services.time, "sleep", lambda s: None)
    system = SlowPostfix(lag=10 ** 6)
    assert services.of(system).stop_postfix() is False


def test_without_invoke_rc_d_nothing_runs():
    assert services.of(Recording(missing=("invoke-rc.d",))).running("rspamd") is False


def test_with_run_services_off_nothing_is_run():
    system = Recording()
    system.run_services = False
    service = services.of(system)
    assert not service.running("postfix") and not service.start("rspamd") and not service.reload("rspamd")
    assert system.calls == []


# --- the milter socket ---------------------------------------------------------

@pytest.fixture
def milter_dir():
    """A short directory like /var/spool/postfix/rspamd: root:postfix 0750 (a socket path
    has at most 107 bytes, pytest's tmp_path can be longer)."""
    path = tempfile.mkdtemp(prefix="milter-", dir="/tmp")
    os.chown(path, 0, pwd.getpwnam("postfix").pw_gid)
    os.chmod(path, 0o750)
    yield path
    shutil.rmtree(path)


def listening(path, mode, group=None):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.listen(1)
    os.chmod(path, mode)
    if group is not None:
        os.chown(path, 0, grp.getgrnam(group).gr_gid)
    return sock


@pytest.fixture(params=["connect as postfix", "permission bits"])
def how(request, monkeypatch):
    if request.param == "permission bits":
        monkeypatch.setattr(health.os, "geteuid", lambda: 1000)
    return request.param


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="sockets owned by root, connecting as postfix")


@needs_root
def test_a_socket_0666_in_the_postfix_group_directory_is_reachable(milter_dir, how):
    path = os.path.join(milter_dir, "milter.sock")
    with listening(path, 0o666):
        assert health.milter_problem(path) is None


@needs_root
def test_a_socket_of_rspamd_s_own_group_0660_is_not(milter_dir, how):
    """As rspamd makes it under systemd today (_rspamd:_rspamd 0660; root here)."""
    path = os.path.join(milter_dir, "milter.sock")
    with listening(path, 0o660):
        assert health.milter_problem(path) == (
            f"Milter socket {path}: Postfix cannot connect (Permission denied)")


@needs_root
def test_a_directory_postfix_cannot_enter_makes_it_unreachable(milter_dir, how):
    os.chown(milter_dir, 0, 0)
    path = os.path.join(milter_dir, "milter.sock")
    with listening(path, 0o666):
        assert "Postfix cannot connect (Permission denied)" in health.milter_problem(path)


@needs_root
def test_a_socket_nobody_listens_on_is_refused(milter_dir):
    path = os.path.join(milter_dir, "milter.sock")
    listening(path, 0o666).close()   # the file stays, as after rspamd is killed
    assert health.milter_problem(path) == f"Milter socket {path}: Postfix cannot connect (Connection refused)"


def test_a_missing_socket_or_a_file_is_named(tmp_path):
    path = str(tmp_path / "milter.sock")
    assert health.milter_problem(path) == f"Milter socket {path}: it does not exist"
    open(path, "w").close()
    assert health.milter_problem(path) == f"Milter socket {path}: it is not a socket"


@pytest.mark.requires_root
def test_only_root_or_who_may_enter_the_directory_can_check(milter_dir, monkeypatch):
    path = os.path.join(milter_dir, "milter.sock")
    assert health.milter_checkable(path)
    monkeypatch.setattr(health.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(health.os, "access", lambda path, mode: False)
    assert not health.milter_checkable(path)
