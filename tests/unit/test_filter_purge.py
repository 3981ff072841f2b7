"""mailsetup-filter's purge of rspamd's local.d: the originals recorded by the
applier (Python) and put back by debian/mailsetup-filter.postrm (sh), whose
functions are run here against scratch directories."""

import dataclasses
import os
import re
import stat
import subprocess

import pytest

from mailsetup.core import apply as core

from mailsetup.filter import apply as filter_core
from mailsetup.filter.components import rspamd
from mailsetup.filter.settings import FilterSettings
from mailsetup.core.settings import CoreSettings

from test_filter_apply import CORE_ANSWERS

POSTRM = os.path.join(os.path.dirname(__file__), "..", "..", "debian", "mailsetup-filter.postrm")
ADMIN_GREYLIST = b"# the admin's own greylisting\nexpire = 1d;\n"
ADMIN_OPTIONS = b"dns { timeout = 2s; }\n"


@pytest.fixture
def filter_system(scratch, tmp_path):
    system = dataclasses.replace(scratch, filter_state_dir=str(tmp_path / "filter-state"),
                                 dkim_dir=str(tmp_path / "dkim"), rspamd_local_dir=str(tmp_path / "rspamd" / "local.d"))
    os.makedirs(system.rspamd_local_dir)
    system.core_settings = CoreSettings.from_answers(CORE_ANSWERS, lambda name: False)
    core.apply(system.core_settings, system)
    return system


def settings(greylisting="true"):
    return FilterSettings.from_answers({"greylisting": greylisting, "dnsbl_zones": ""})


def local_path(system, name):
    return os.path.join(system.rspamd_local_dir, name)


def write(path, data, mode):
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def postrm_function(name):
    text = open(POSTRM).read()
    match = re.search(rf"^{name}\(\) {{\n.*?^}}\n", text, re.S | re.M)
    assert match, f"{name} not found in the postrm"
    return match.group(0)


def run_postrm(call, *args, path=None):
    script = postrm_function("restore_rspamd_local") + postrm_function("rmdir_unshipped") + "set -e\n" + call
    env = dict(os.environ, PATH=path or os.environ["PATH"])
    return subprocess.run(["sh", "-c", script, "sh", *args], env=env, capture_output=True, text=True, check=True)


def purge(system):
    run_postrm('restore_rspamd_local "$1" "$2"\n', system.filter_state_dir, system.rspamd_local_dir)


def test_original_is_recorded_once_with_its_mode_never_replaced_by_ours(filter_system):
    greylist = local_path(filter_system, "greylist.conf")
    write(greylist, ADMIN_GREYLIST, 0o640)
    filter_core.apply(settings(greylisting="true"), filter_system.core_settings, filter_system)
    # greylist.conf is written again with other content: the saved original stays the admin's
    filter_core.apply(settings(greylisting="false"), filter_system.core_settings, filter_system)
    assert read(greylist).startswith(rspamd.HEADER.encode())
    saved = os.path.join(filter_system.filter_state_dir, "rspamd-greylist.conf.orig")
    assert read(saved) == ADMIN_GREYLIST
    assert stat.S_IMODE(os.stat(saved).st_mode) == 0o640
    assert not os.path.exists(os.path.join(filter_system.filter_state_dir, "rspamd-greylist.conf.absent"))
    # the files we created are listed as such
    assert os.path.exists(os.path.join(filter_system.filter_state_dir, "rspamd-actions.conf.absent"))
    assert not os.path.exists(os.path.join(filter_system.filter_state_dir, "rspamd-actions.conf.orig"))


def test_a_file_of_ours_found_without_state_is_not_taken_for_an_original(filter_system):
    options = local_path(filter_system, "options.inc")
    write(options, rspamd.HEADER.encode() + b"local_addrs = [];\n", 0o644)
    filter_core.apply(settings(), filter_system.core_settings, filter_system)
    assert os.path.exists(os.path.join(filter_system.filter_state_dir, "rspamd-options.inc.absent"))
    assert not os.path.exists(os.path.join(filter_system.filter_state_dir, "rspamd-options.inc.orig"))


def test_purge_puts_back_the_admins_files_and_removes_only_ours(filter_system):
    write(local_path(filter_system, "options.inc"), ADMIN_OPTIONS, 0o600)
    write(local_path(filter_system, "greylist.conf"), ADMIN_GREYLIST, 0o640)
    write(local_path(filter_system, "custom.conf"), b"mine\n", 0o644)   # never ours
    filter_core.apply(settings(greylisting="true"), filter_system.core_settings, filter_system)
    filter_core.apply(settings(greylisting="false"), filter_system.core_settings, filter_system)
    assert read(local_path(filter_system, "options.inc")) != ADMIN_OPTIONS
    for name in ("mailsetup-allow-ip.map", "mailsetup-allow-from-domain.map"):
        write(local_path(filter_system, name), b"", 0o644)
    purge(filter_system)
    assert sorted(os.listdir(filter_system.rspamd_local_dir)) == ["custom.conf", "greylist.conf", "options.inc"]
    for name, data, mode in (("options.inc", ADMIN_OPTIONS, 0o600), ("greylist.conf", ADMIN_GREYLIST, 0o640),
                             ("custom.conf", b"mine\n", 0o644)):
        assert read(local_path(filter_system, name)) == data
        assert stat.S_IMODE(os.stat(local_path(filter_system, name)).st_mode) == mode


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
def test_purge_puts_back_the_owner_too(filter_system):
    options = local_path(filter_system, "options.inc")
    write(options, ADMIN_OPTIONS, 0o640)
    os.chown(options, 0, 1)
    filter_core.apply(settings(), filter_system.core_settings, filter_system)
    os.chown(options, 0, 0)
    purge(filter_system)
    assert (os.stat(options).st_uid, os.stat(options).st_gid) == (0, 1)


def test_purge_without_local_d_does_nothing(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    (state / "rspamd-options.inc.orig").write_bytes(ADMIN_OPTIONS)
    run_postrm('restore_rspamd_local "$1" "$2"\n', str(state), str(tmp_path / "gone" / "local.d"))
    assert not (tmp_path / "gone").exists()


@pytest.fixture
def fake_dpkg_query(tmp_path):
    """A PATH whose dpkg-query -S says the path is shipped (exit 0) or not (exit 1)."""
    def make(shipped):
        bindir = tmp_path / ("bin-shipped" if shipped else "bin-unshipped")
        bindir.mkdir()
        (bindir / "dpkg-query").write_text(f"#!/bin/sh\nexit {0 if shipped else 1}\n")
        (bindir / "dpkg-query").chmod(0o755)
        return f"{bindir}:{os.environ['PATH']}"
    return make


def test_directories_a_package_still_ships_stay(tmp_path, fake_dpkg_query):
    local_d = tmp_path / "rspamd" / "local.d"
    local_d.mkdir(parents=True)
    run_postrm('rmdir_unshipped "$1"\nrmdir_unshipped "$2"\n', str(local_d), str(local_d.parent),
               path=fake_dpkg_query(shipped=True))
    assert local_d.is_dir()


def test_empty_directories_no_package_ships_go(tmp_path, fake_dpkg_query):
    local_d = tmp_path / "rspamd" / "local.d"
    local_d.mkdir(parents=True)
    run_postrm('rmdir_unshipped "$1"\nrmdir_unshipped "$2"\n', str(local_d), str(local_d.parent),
               path=fake_dpkg_query(shipped=False))
    assert not local_d.parent.exists()


def test_unshipped_directories_holding_files_stay(tmp_path, fake_dpkg_query):
    local_d = tmp_path / "rspamd" / "local.d"
    local_d.mkdir(parents=True)
    (local_d / "options.inc").write_bytes(ADMIN_OPTIONS)
    run_postrm('rmdir_unshipped "$1"\nrmdir_unshipped "$2"\n', str(local_d), str(local_d.parent),
               path=fake_dpkg_query(shipped=False))
    assert (local_d / "options.inc").read_bytes() == ADMIN_OPTIONS
