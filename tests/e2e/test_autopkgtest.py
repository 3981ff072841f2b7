"""autopkgtest (DEP-8): run debian/tests against the built package, for
each suite (MAILSETUP_TEST_SUITES).

autopkgtest runs inside a booted test bed (testbed.BootedTestbed: Debian
with systemd as PID 1, as on ci.debian.net's containers) with the `null`
virtualization server: the testbed is the container, whose network has only
`lo`, so the services the packages start and the tests' SMTP to 127.0.0.1
stay inside it.  The dependencies (postfix, python3, ...) and
autopkgtest itself are installed first, downloaded on the host network;
then the Debian mirror is switched off in the root, so that autopkgtest's
own apt runs (publishing the .deb as a local repository, installing the
tests' Depends, resetting apt at the end) work offline and nothing in the
run can reach another host.

autopkgtest exits 0 only when every test passed (2: a test was skipped,
4: one failed, 8: no tests, 12/16: broken package or testbed); anything
but 0 fails here, with autopkgtest's log.
"""

import os
import shlex
import subprocess

import pytest

from .conftest import TOP
from .testbed import OWN_ARCHIVES


# Debian's own test tools run on both releases by default (the issue asks
# for it); an explicit MAILSETUP_TEST_SUITES still chooses.
RELEASE_SUITES = os.environ.get("MAILSETUP_TEST_SUITES", "bookworm trixie").split()


@pytest.fixture(scope="class", params=RELEASE_SUITES)
def suite(request):
    """Overrides conftest's `suite` (and so new_testbed's) in this module."""
    return request.param


SRC_IN_ROOT = "/srv/mailsetup-src"
DEBS_IN_ROOT = "/srv/mailsetup-debs"
OUT_IN_ROOT = "/var/tmp/autopkgtest-out"
LOG_DIR = os.path.join(TOP, "build", "logs")
TESTS = ("deliver", "reconfigure", "purge", "mailboxes", "filter", "webmail")

NULL_CONTAINER = "/usr/local/lib/mailsetup-tests/autopkgtest-virt-null-container"
NULL_CONTAINER_SCRIPT = """#!/usr/bin/python3
# autopkgtest's null virtualization server, for a testbed that is itself a
# throw-away container (written by tests/e2e/test_autopkgtest.py).
import sys

sys.path.insert(0, "/usr/share/autopkgtest/lib")
import VirtSubproc  # noqa: E402

_mktemp = VirtSubproc.downtmp_mktemp


def downtmp_mktemp(capabilities, path, downtmp_prefix):
    # null passes '' (the testbed's paths are the host's); the isolation
    # check wants None for "no host-visible prefix".
    return _mktemp(capabilities, path, downtmp_prefix or None)


VirtSubproc.downtmp_mktemp = downtmp_mktemp
NULL = "/usr/bin/autopkgtest-virt-null"
sys.argv[0] = __file__ = NULL
sys.argv.append("--fake-capability=isolation-container")
# Run it as this __main__: VirtSubproc calls the hooks on sys.modules["__main__"].
with open(NULL) as f:
    exec(compile(f.read(), NULL, "exec"))
"""


def control_depends():
    """Packages named in debian/tests/control Depends (without our own)."""
    pkgs = set()
    with open(os.path.join(TOP, "debian", "tests", "control")) as f:
        for line in f:
            if line.startswith("Depends:"):
                for dep in line.split(":", 1)[1].split(","):
                    name = dep.split()[0] if dep.split() else ""
                    if name and not name.startswith("mailsetup") and name not in ("@", "@builddeps@"):
                        pkgs.add(name)
    return sorted(pkgs)


def deb_depends(deb):
    """The dependencies of a .deb, each a tuple of its alternatives' names, but
    not our own packages: autopkgtest installs those from the .debs given."""
    out = subprocess.run(["dpkg-deb", "-f", deb, "Depends"], check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    found = {tuple(a.split()[0] for a in d.split("|")) for d in out.split(",") if d.strip()}
    return sorted(alts for alts in found if not alts[0].startswith("mailsetup"))


def available(bed, alternatives):
    """The first of the alternatives the bed's apt can install (valkey-server
    exists on trixie only)."""
    for name in alternatives:
        policy = bed.run("apt-cache policy %s" % shlex.quote(name), check=False).stdout
        if "Candidate:" in policy and "Candidate: (none)" not in policy:
            return name
    raise AssertionError("none of %s can be installed" % (alternatives,))


@pytest.fixture(scope="class")
def autopkgtest_run(new_booted_bed, repo_dir, suite):
    bed = new_booted_bed()
    debs = [n for n in os.listdir(repo_dir) if n.endswith(".deb")]
    assert any(n.startswith("mailsetup_") for n in debs), "no mailsetup .deb in " + repo_dir
    # The package's and the tests' dependencies, and autopkgtest; not
    # mailsetup itself: autopkgtest installs that, from the .deb given.
    deps = set(control_depends()) | {"autopkgtest"}
    for n in debs:
        deps |= {available(bed, alts) for alts in deb_depends(os.path.join(repo_dir, n))}
    # First what decides an alternative further down, as mailsetup-webmail's
    # Depends order does: php-fpm (not mod_php and apache2), roundcube-sqlite3
    # (not roundcube-mysql, which fails without a MySQL server).
    first = [p for p in ("php-fpm", "roundcube-sqlite3") if p in deps]
    if first:
        bed.apt_install(*first, options="--no-install-recommends")
    bed.apt_install(*sorted(deps - set(first)), options="--no-install-recommends")
    assert not bed.exists("/var/lib/mailsetup"), "mailsetup got installed before autopkgtest"

    # The source tree (for debian/tests) and the .debs, copied in.
    tar = subprocess.Popen(
        ["tar", "-C", TOP, "--exclude=./build", "--exclude=./.git",
         "--exclude=./.pytest_cache", "--exclude=__pycache__", "-cf", "-", "."],
        stdout=subprocess.PIPE)
    os.makedirs(bed.path(SRC_IN_ROOT))
    subprocess.run(["tar", "-C", bed.path(SRC_IN_ROOT), "-xf", "-"], stdin=tar.stdout,
                   check=True)
    tar.stdout.close()
    assert tar.wait() == 0
    # A built tree (debian/files present): autopkgtest then uses the tree's
    # debian/tests as they are, without dpkg-source (dpkg-dev) in the root.
    open(bed.path(SRC_IN_ROOT + "/debian/files"), "a").close()
    os.makedirs(bed.path(DEBS_IN_ROOT))
    for n in debs:
        subprocess.run(["cp", os.path.join(repo_dir, n), bed.path(DEBS_IN_ROOT)], check=True)

    # Offline from here on: only autopkgtest's own repository of the .debs,
    # and a package cache of this root's own (the shared one is locked by
    # any test bed downloading beside us, and autopkgtest does not wait).
    bed.run("mkdir -p %s/partial && "
            "echo 'Dir::Cache::Archives \"%s/\";' " % (OWN_ARCHIVES, OWN_ARCHIVES) +
            "> /etc/apt/apt.conf.d/95mailsetup-own-archives")
    bed.run("mkdir -p /etc/apt/sources-disabled && "
            "for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list "
            "/etc/apt/sources.list.d/*.sources; do "
            "[ -e \"$f\" ] && mv \"$f\" /etc/apt/sources-disabled/; done; true")

    # autopkgtest 5.28 (bookworm): `null` claims isolation-machine.  Later
    # versions (trixie: 5.49) claim no isolation (the null server cannot know
    # what it runs on), so the tests that start Postfix (isolation-container)
    # would be skipped; and `null --fake-capability=isolation-container`
    # trips an assertion there (its hook_downtmp passes downtmp_prefix ''
    # instead of None).  This root *is* a throw-away container: declare it
    # through a small wrapper around the stock null server.
    bed._write(NULL_CONTAINER, NULL_CONTAINER_SCRIPT, mode=0o755)
    virt = ('virt=null; if autopkgtest-virt-null --help 2>&1 | grep -q -e --fake-capability; '
            'then virt=%s; fi; ' % NULL_CONTAINER)
    cmd = ("autopkgtest --no-built-binaries --output-dir %s --summary-file %s/summary "
           "%s %s -- $virt" % (OUT_IN_ROOT, OUT_IN_ROOT,
                               " ".join(shlex.quote(DEBS_IN_ROOT + "/" + n)
                                        for n in sorted(debs)),
                               SRC_IN_ROOT))
    res = bed.run("rm -rf %s; %s%s" % (OUT_IN_ROOT, virt, cmd), check=False, timeout=1800)
    log_text = res.stdout + res.stderr
    os.makedirs(LOG_DIR, exist_ok=True)
    logfile = os.path.join(LOG_DIR, "autopkgtest-%s.log" % suite)
    with open(logfile, "w") as f:
        f.write(log_text)
    summary_path = bed.path(OUT_IN_ROOT + "/summary")
    summary = open(summary_path).read() if os.path.exists(summary_path) else ""
    # The services the packages started survived the tests, none failed.
    failed = bed.failed_units()
    return {"suite": suite, "rc": res.returncode, "log": log_text, "logfile": logfile,
            "summary": summary, "failed": failed, "bed": bed}


def show(run):
    return "autopkgtest exit %d on %s (log %s)\n--- summary ---\n%s\n--- log (tail) ---\n%s" % (
        run["rc"], run["suite"], run["logfile"], run["summary"],
        "\n".join(run["log"].splitlines()[-150:]))


class TestAutopkgtest:

    def test_autopkgtest_passes(self, autopkgtest_run):
        assert autopkgtest_run["rc"] == 0, show(autopkgtest_run)

    @pytest.mark.parametrize("name", TESTS)
    def test_each_test_ran_and_passed(self, autopkgtest_run, name):
        results = dict(line.split(None, 1) for line in autopkgtest_run["summary"].splitlines()
                       if line.strip())
        assert results.get(name, "").startswith("PASS"), (
            "%s: %r\n%s" % (name, results.get(name), show(autopkgtest_run)))

    def test_no_unit_failed(self, autopkgtest_run):
        assert not autopkgtest_run["failed"], (
            "failed units after the tests: %s\n%s" % (autopkgtest_run["failed"],
                                                      autopkgtest_run["bed"].diagnostics()))
