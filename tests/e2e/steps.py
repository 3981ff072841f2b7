"""Small helpers shared by the end-to-end test classes."""

import json
import time
import uuid

import pytest

from .testbed import APT_LOCK_WAIT


def token(kind="e2e"):
    """A unique mark to find one message in a mailbox."""
    return "mailsetup-%s-%s" % (kind, uuid.uuid4().hex[:12])


def require(state, step):
    """Fail (not skip) a test whose earlier step did not succeed."""
    if not state.get(step):
        pytest.fail("an earlier step (%s) failed; see its test" % step, pytrace=False)


def install_postfix(bed, mailer_type, mailname=None):
    """Install Postfix alone, answering its own type question (and mailname)."""
    lines = ["postfix postfix/main_mailer_type select %s" % mailer_type]
    if mailname:
        lines.append("postfix postfix/mailname string %s" % mailname)
    bed.preseed(lines)
    bed.apt_install("postfix")


APT_ARCHIVES_LOCKED = "Could not get lock /var/cache/apt/archives/lock"


def retry_on_apt_lock(call, timeout=APT_LOCK_WAIT):
    """call() -> Result of an apt-get command run with check=False, again
    while it fails only because a test bed running side by side holds the
    shared package cache's lock (apt-get install and purge take it too, not
    only downloads; testbed.py waits for it on downloads only)."""
    end = time.time() + timeout
    while True:
        res = call()
        if (res.returncode == 0 or APT_ARCHIVES_LOCKED not in res.stderr
                or time.time() > end):
            return res
        time.sleep(1)


def rewritten_by_reconfigure(bed, package, paths):
    """dpkg-reconfigure PACKAGE (same answers); the paths whose content or mtime changed."""
    before = {p: bed.file_state(p) for p in paths}
    assert all(before.values()), "missing: %s" % [p for p, s in before.items() if not s]
    time.sleep(1.1)  # a rewrite would show in the mtime even on coarse clocks
    bed.dpkg_reconfigure(package)
    after = {p: bed.file_state(p) for p in paths}
    return [p for p in paths if before[p] != after[p]]


def json_client(bed, script, op, params, diagnostics, timeout=300):
    """Run a client operation (Debian's python3 on the host, in the bed's network
    namespace): one JSON request on stdin, its JSON answer."""
    params = dict(params, op=op)
    res = bed.run_host_in_netns(["/usr/bin/python3", "-c", script], input=json.dumps(params),
                                check=False, timeout=timeout)
    if res.returncode != 0:
        raise AssertionError("client %s failed (exit %d):\n%s\n%s"
                             % (op, res.returncode, res.stderr[-3000:], diagnostics()))
    return json.loads(res.stdout)
