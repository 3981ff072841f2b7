"""Fixtures for the end-to-end tests (see testbed.py).

Environment:
  MAILSETUP_TEST_SUITES   Debian suites to test, space separated (default: bookworm trixie)
  MAILSETUP_TEST_REPO     local apt repository with the built packages
                          (default: build/repo, made by `make repo`)
  MAILSETUP_TEST_CACHE    cache of base tarballs and .debs (default /var/cache/mailsetup-tests)
  MAILSETUP_TEST_TMPDIR   where test beds are made (default /var/tmp)
  MAILSETUP_TEST_KEEP     if set, keep each test bed's directory (root/ and logs/)
"""

import os
import subprocess

import pytest

from .testbed import CACHE_DIR, TMP_DIR, BootedTestbed, Testbed

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD_PREVIOUS = os.path.join(TOP, "tests", "release", "build-previous")
SUITES = os.environ.get("MAILSETUP_TEST_SUITES", "bookworm trixie").split() or ["bookworm", "trixie"]


def pytest_collection_modifyitems(config, items):
    here = os.path.dirname(os.path.abspath(__file__))
    for item in items:
        if str(item.fspath).startswith(here + os.sep):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(autouse=True, scope="session")
def _need_root():
    # Fail, do not skip: CI runs as root, and a silently skipped end-to-end
    # suite would look like a green one.
    if os.geteuid() != 0:
        pytest.fail("the end-to-end tests need root (they build Debian roots with "
                    "mmdebstrap and use namespaces, mounts and chroot); run them as root, "
                    "e.g. `sudo make test`", pytrace=False)


@pytest.fixture(scope="session")
def repo_dir():
    path = os.environ.get("MAILSETUP_TEST_REPO", os.path.join(TOP, "build", "repo"))
    packages = os.path.join(path, "Packages")
    if not os.path.exists(packages):
        pytest.fail("no local apt repository at %s: run `make repo` first "
                    "(`make test` does)" % path, pytrace=False)
    with open(packages) as f:
        if "Package: mailsetup\n" not in f.read():
            pytest.fail("%s has no mailsetup package: run `make repo`" % packages,
                        pytrace=False)
    return path


@pytest.fixture(scope="session")
def previous_repo():
    """(directory, version) of a local repository with the previous release
    (tests/release/build-previous: built once, cached by commit)."""
    proc = subprocess.run([BUILD_PREVIOUS], stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                               "MAILSETUP_TEST_CACHE": CACHE_DIR,
                               "TMPDIR": TMP_DIR, "HOME": "/root"})
    if proc.returncode != 0:
        pytest.fail("tests/release/build-previous failed:\n" + proc.stderr[-4000:],
                    pytrace=False)
    path = proc.stdout.strip().splitlines()[-1]
    with open(os.path.join(path, "VERSION")) as f:
        return path, f.read().strip()


@pytest.fixture(scope="class", params=SUITES)
def suite(request):
    """The Debian suite of the test bed(s) of a test class."""
    return request.param


@pytest.fixture(scope="class")
def new_testbed(suite, repo_dir):
    """Factory: new_testbed() -> a fresh Testbed of the class's suite with
    the local repository configured and apt's lists updated.  Every test bed
    made is closed (daemons stopped, namespaces ended, directory removed)
    when the class is done, also when a test failed."""
    yield from _factory(lambda **kw: Testbed(suite, repo_dir=repo_dir, **kw))


@pytest.fixture(scope="class")
def new_booted_bed(suite, repo_dir):
    """Factory: new_booted_bed(hostname=..., domain=...) -> a fresh
    BootedTestbed (systemd as PID 1) of the class's suite, booted, with the
    local repository configured and apt's lists updated; shut down and
    removed when the class is done."""
    yield from _factory(lambda **kw: BootedTestbed(suite, repo_dir=repo_dir, **kw))


def _factory(new):
    made = []

    def make(**kw):
        bed = new(**kw)
        made.append(bed)
        bed.apt_update()
        return bed

    yield make
    errors = []
    for bed in made:
        try:
            bed.close()
        except Exception as exc:  # close the others all the same
            errors.append(exc)
    if errors:
        raise errors[0]
