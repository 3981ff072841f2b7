"""Small helpers shared by the end-to-end test classes."""

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
