"""End-to-end: an upgrade from the previous release (the file directory:
directory.json, a Dovecot passwd-file, Postfix hash maps) to this one (SQLite),
with mailboxes, an alias, a list, a quota and mail in place.

The previous release is built from its commit by tests/release/build-previous
(the previous_repo fixture) and installed with `apt-get install PKG=VERSION`
from a second local repository in the booted bed; the upgrade is a plain
`apt-get install mailsetup-imap`, as an admin's `apt upgrade` does it. What the
users notice afterwards: the same passwords log in, the old mail is there,
aliases, lists and quotas still work, and `mailsetup status` names SQLite.
"""

import os
import re
import shutil

import pytest

from .steps import require, retry_on_apt_lock, token
from .test_imap import (ALICE, ALICE_PW, BOB, BOB_PW, CORE_ANSWERS, DOMAIN, IMAP_ANSWERS, add_mailbox,
                        apt_ok, client, count_subject, inbound, mailsetup_ok, maildir_messages, submit,
                        wait_in_mailbox, wait_mail_ports, wait_queue_settled)

PREVIOUS_IN_ROOT = "/srv/mailsetup-previous"
JSON = "/etc/mailsetup/directory.json"
DATABASE = "/var/lib/mailsetup-imap/directory/directory.sqlite"
BOB_QUOTA_KIB = "10240"  # `--quota 10M`
INFO = "info@" + DOMAIN  # alias: alice and bob
TEAM = "team@" + DOMAIN  # list: alice and bob


def storage_limits(bed, addr, password):
    lines = client(bed, "imap_quota", mode="ssl", user=addr, password=password)["lines"]
    return re.findall(r"STORAGE \d+ (\d+)", " ".join(lines))


class TestUpgradeFromTheFileDirectory:

    @pytest.fixture(scope="class")
    def bed(self, new_booted_bed, previous_repo):
        prev_dir, prev_version = previous_repo
        bed = new_booted_bed()
        shutil.copytree(prev_dir, bed.path(PREVIOUS_IN_ROOT))
        with open(bed.path("/etc/apt/sources.list.d/mailsetup-previous.list"), "w") as f:
            f.write("deb [trusted=yes] file:%s ./\n" % PREVIOUS_IN_ROOT)
        bed.apt_update()
        bed.previous_version = prev_version
        bed.preseed(CORE_ANSWERS + IMAP_ANSWERS)
        bed.install_result = retry_on_apt_lock(lambda: bed.apt_install(
            "mailsetup=" + prev_version, "mailsetup-imap=" + prev_version, check=False))
        return bed

    @pytest.fixture(scope="class")
    def state(self, bed):
        return {}

    def test_the_previous_release_runs_on_the_file_directory(self, bed, state):
        apt_ok(bed.install_result)
        wait_mail_ports(bed)
        add_mailbox(bed, ALICE, ALICE_PW)
        add_mailbox(bed, BOB, BOB_PW, quota="10M")
        mailsetup_ok(bed, "alias add %s %s %s" % (INFO, ALICE, BOB))
        mailsetup_ok(bed, "list add %s %s" % (TEAM, ALICE))
        mailsetup_ok(bed, "list subscribe %s %s" % (TEAM, BOB))
        subject = token("before-upgrade")
        inbound(bed, [ALICE], subject)
        wait_in_mailbox(bed, ALICE, subject)
        assert bed.exists(JSON), "%s did not set up the file directory" % bed.previous_version
        state["old_mail"] = subject

    def test_the_upgrade_succeeds_and_moves_the_directory_into_sqlite(self, bed, state):
        require(state, "old_mail")
        res = retry_on_apt_lock(lambda: bed.apt_install("mailsetup", "mailsetup-imap", check=False))
        apt_ok(res)
        version = bed.run("dpkg-query -W -f '${Version}' mailsetup-imap").stdout
        assert version != bed.previous_version, "apt did not upgrade mailsetup-imap"
        assert bed.exists(DATABASE)
        # kept for the admin, out of the way of the running system
        assert not bed.exists(JSON) and bed.exists(JSON + ".migrated")
        wait_mail_ports(bed)
        assert not bed.failed_units(), bed.diagnostics()
        state["upgraded"] = True

    def test_old_passwords_log_in_and_see_the_old_mail(self, bed, state):
        require(state, "upgraded")
        res = client(bed, "imap", mode="ssl", user=ALICE, password=ALICE_PW)
        assert res["login"], res
        assert state["old_mail"] in res["subjects"]
        res = client(bed, "pop3", mode="ssl", user=BOB, password=BOB_PW)
        assert res["login"], res
        res = client(bed, "imap", mode="ssl", user=BOB, password="not-" + BOB_PW)
        assert not res["login"], res

    def test_the_quota_is_kept(self, bed, state):
        require(state, "upgraded")
        assert storage_limits(bed, BOB, BOB_PW) == [BOB_QUOTA_KIB]
        assert storage_limits(bed, ALICE, ALICE_PW) == []

    def test_the_alias_and_the_list_deliver_once(self, bed, state):
        require(state, "upgraded")
        subject = token("after-upgrade")
        inbound(bed, [INFO, TEAM], subject)
        wait_in_mailbox(bed, ALICE, subject)
        wait_in_mailbox(bed, BOB, subject)
        wait_queue_settled(bed)
        counts = {a: count_subject(maildir_messages(bed, a), subject) for a in (ALICE, BOB)}
        assert counts == {ALICE: 1, BOB: 1}

    def test_submission_logs_in_with_the_old_password(self, bed, state):
        require(state, "upgraded")
        subject = token("submitted")
        res = submit(bed, BOB, BOB_PW, BOB, [ALICE], subject)
        assert res["accepted"], res
        wait_in_mailbox(bed, ALICE, subject)

    def test_status_names_the_sqlite_directory(self, bed, state):
        require(state, "upgraded")
        out = mailsetup_ok(bed, "status").stdout
        assert "Mailbox directory: SQLite" in out and "answering" in out and "NOT" not in out, out
        assert "mailboxes: 2" in out, out

    def test_a_new_mailbox_after_the_upgrade_receives_at_once(self, bed, state):
        require(state, "upgraded")
        carol = "carol@" + DOMAIN
        add_mailbox(bed, carol, "carol-secret-3", wait=False)
        subject = token("new-mailbox")
        inbound(bed, [carol], subject)
        wait_in_mailbox(bed, carol, subject)
        assert os.path.basename(JSON) not in os.listdir(bed.path("/etc/mailsetup"))
