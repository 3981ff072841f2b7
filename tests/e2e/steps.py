"""Small helpers shared by the end-to-end test classes."""

import time
import uuid

import pytest


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


def retry_on_apt_lock(call, timeout=300):
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
