"""End-to-end: install, configure, reconfigure and purge mailsetup with apt,
dpkg and debconf in a fresh Debian root, and deliver mail with the Postfix
it configured.

Each class shares one test bed for its consecutive steps (tests run in file
order); each test asserts one thing a user would notice.
"""

import time

import pytest

from .steps import install_postfix, require, retry_on_apt_lock, rewritten_by_reconfigure, token
from .testbed import APT

# design.md: the main.cf keys mailsetup manages.
MANAGED_KEYS = (
    "myhostname", "mydomain", "myorigin", "mydestination", "relayhost", "mynetworks",
    "message_size_limit", "inet_interfaces", "inet_protocols", "recipient_delimiter",
    "alias_maps", "alias_database", "default_transport", "relay_transport",
    "smtpd_relay_restrictions",
)

ANSWERS = {
    "mail_domain": ("string", "example.test"),
    "hostname": ("string", "mail.example.test"),
    "mailer_type": ("select", "internet"),
    "admin_user": ("string", "alice"),
    "aliases": ("string", "webmaster: alice, sales: alice"),
    "other_destinations": ("string", ""),
    "mynetworks": ("string", "127.0.0.0/8 [::1]/128"),
    "message_size_limit": ("string", "20"),
    "inet_protocols": ("select", "ipv4"),
    "recipient_delimiter": ("string", "+"),
}

CONFIG_FILES = ("/etc/postfix/main.cf", "/etc/mailname", "/etc/mailsetup/aliases")


def preseed_lines(answers=None, **changes):
    """debconf-set-selections lines for mailsetup (owner `mailsetup`)."""
    merged = dict(answers or ANSWERS)
    merged.update(changes)
    return ["mailsetup mailsetup/%s %s %s" % (q, t, v) for q, (t, v) in merged.items()]


# ---------------------------------------------------------------------------
# 1-5: a system configured by mailsetup
# ---------------------------------------------------------------------------


class TestInstalled:

    @pytest.fixture(scope="class")
    def bed(self, new_booted_bed):
        bed = new_booted_bed()
        bed.preseed(preseed_lines())
        bed.install_result = bed.apt_install("mailsetup", check=False)
        return bed

    @pytest.fixture(scope="class")
    def state(self, bed):
        return {}

    def installed(self, bed):
        if bed.install_result.returncode != 0:
            pytest.fail("apt-get install mailsetup failed; see test_apt_install_succeeds",
                        pytrace=False)

    # -- install ----------------------------------------------------------

    def test_apt_install_succeeds(self, bed):
        res = bed.install_result
        assert res.returncode == 0, (
            "apt-get install -y mailsetup (DEBIAN_FRONTEND=noninteractive) exited %d\n"
            "--- stdout ---\n%s\n--- stderr ---\n%s"
            % (res.returncode, res.stdout[-6000:], res.stderr[-4000:]))

    def test_main_cf_has_the_preseeded_answers(self, bed):
        self.installed(bed)
        got = {k: bed.postconf(k) for k in
               ("myhostname", "mydomain", "message_size_limit", "inet_protocols")}
        assert got == {"myhostname": "mail.example.test", "mydomain": "example.test",
                       "message_size_limit": "20971520", "inet_protocols": "ipv4"}

    def test_mailname_is_the_mail_domain(self, bed):
        self.installed(bed)
        assert bed.read_file("/etc/mailname").strip() == "example.test"

    def test_admin_account_exists(self, bed):
        self.installed(bed)
        assert bed.user_exists("alice"), "account alice was not created"

    def test_mail_to_root_and_alias_lands_in_admin_mailbox(self, bed, state):
        self.installed(bed)
        assert bed.postfix_status(), "the install did not start Postfix"
        bed.wait_port(25)
        to_root, to_webmaster = token(), token()
        bed.smtp_send("someone@example.org", "root@example.test", "to root " + to_root,
                      subject=to_root)
        bed.smtp_send("someone@example.org", "webmaster@example.test",
                      "to webmaster " + to_webmaster, subject=to_webmaster)
        bed.wait_for_mail("alice", to_root)
        bed.wait_for_mail("alice", to_webmaster)
        state["postfix"] = True

    def test_mailsetup_status_shows_hostname(self, bed):
        self.installed(bed)
        assert bed.postfix_status()
        res = bed.run("mailsetup status", check=False)
        assert res.returncode == 0, res.stderr
        assert "mail.example.test" in res.stdout

    # -- 3: reconfigure without changes -----------------------------------

    def test_reconfigure_with_same_answers_changes_no_file(self, bed):
        self.installed(bed)
        changed = rewritten_by_reconfigure(bed, "mailsetup", CONFIG_FILES)
        assert not changed, "rewritten although nothing changed: %s" % changed

    # -- 5: an invalid preseeded answer -----------------------------------

    def test_invalid_answer_is_refused_and_changes_nothing(self, bed, state):
        self.installed(bed)
        assert bed.postfix_status()
        watched = ("/etc/postfix/main.cf", "/etc/aliases", "/etc/mailsetup/aliases",
                   "/etc/mailname")
        before = {p: bed.read_file(p, binary=True) if bed.exists(p) else None
                  for p in watched}
        bed.preseed(["mailsetup mailsetup/hostname string bad_host!"])
        try:
            res = bed.dpkg_reconfigure("mailsetup", check=False)
            after = {p: bed.read_file(p, binary=True) if bed.exists(p) else None
                     for p in watched}
        finally:
            bed.preseed(preseed_lines({"hostname": ANSWERS["hostname"]}))
        assert res.returncode != 0, "dpkg-reconfigure accepted hostname 'bad_host!'"
        lines = [line for line in res.stderr.splitlines()
                 if "mailsetup/hostname" in line and "bad_host!" in line]
        assert lines, ("no stderr line names mailsetup/hostname and bad_host!:\n"
                       + res.stderr[-3000:])
        changed = [p for p in watched if before[p] != after[p]]
        assert not changed, "changed by the refused run: %s" % changed
        state["refused"] = True

    def test_postfix_still_delivers_after_refused_answer(self, bed, state):
        require(state, "refused")
        mark = token()
        bed.smtp_send("someone@example.org", "root@example.test", mark, subject=mark)
        bed.wait_for_mail("alice", mark)

    # -- 2: reconfigure with new answers ----------------------------------

    def test_reconfigure_applies_new_answers(self, bed, state):
        self.installed(bed)
        bed.preseed(preseed_lines(hostname=("string", "mail2.example.test"),
                                  mailer_type=("select", "smarthost"),
                                  relayhost=("string", "[relay.example.test]:587")))
        bed.dpkg_reconfigure("mailsetup")
        got = {k: bed.postconf(k) for k in ("myhostname", "relayhost")}
        assert got == {"myhostname": "mail2.example.test",
                       "relayhost": "[relay.example.test]:587"}
        state["reconfigured"] = True

    # -- 4: Postfix's own maintainer scripts keep our settings ------------

    KEPT = ("myhostname", "mydomain", "relayhost", "mynetworks", "message_size_limit")

    def test_postfix_reconfigure_keeps_settings(self, bed, state):
        require(state, "reconfigured")
        before = {k: bed.postconf(k) for k in self.KEPT}
        bed.dpkg_reconfigure("postfix")
        after = {k: bed.postconf(k) for k in self.KEPT}
        assert after == before

    def test_postfix_reinstall_keeps_settings(self, bed, state):
        require(state, "reconfigured")
        before = {k: bed.postconf(k) for k in self.KEPT}
        bed.apt_install("postfix", options="--reinstall")
        after = {k: bed.postconf(k) for k in self.KEPT}
        assert after == before


# ---------------------------------------------------------------------------
# 6: purge gives the system back
# ---------------------------------------------------------------------------

class TestPurge:

    @pytest.fixture(scope="class")
    def bed(self, new_booted_bed):
        bed = new_booted_bed()
        install_postfix(bed, "Internet Site", mailname="orig.test")
        bed.originals = {k: bed.postconf(k) for k in MANAGED_KEYS}
        bed.original_mailname = bed.read_file("/etc/mailname", binary=True)
        bed.preseed(preseed_lines())
        bed.apt_install("mailsetup")
        return bed

    @pytest.fixture(scope="class")
    def state(self, bed):
        return {}

    def test_purge_succeeds(self, bed, state):
        # Sanity: mailsetup did change Postfix, or the rest proves nothing.
        assert bed.postconf("myhostname") == "mail.example.test"
        bed.apt_purge("mailsetup")
        state["purged"] = True

    def test_purge_restores_postfix_settings(self, bed, state):
        require(state, "purged")
        now = {k: bed.postconf(k) for k in MANAGED_KEYS}
        differ = {k: {"original": bed.originals[k], "after purge": now[k]}
                  for k in MANAGED_KEYS if now[k] != bed.originals[k]}
        assert not differ, "main.cf keys not restored (None = not set): %r" % differ

    def test_purge_restores_mailname(self, bed, state):
        require(state, "purged")
        assert bed.original_mailname.strip() == b"orig.test"
        assert bed.read_file("/etc/mailname", binary=True) == bed.original_mailname

    def test_purge_removes_config_and_state(self, bed, state):
        require(state, "purged")
        left = [p for p in ("/etc/mailsetup", "/var/lib/mailsetup") if bed.exists(p)]
        assert not left, "left after purge: %s" % left

    def test_purge_leaves_postfix_running_and_intact(self, bed, state):
        require(state, "purged")
        assert bed.postfix_status(), "Postfix does not run after the purge"
        assert not bed.failed_units(), bed.diagnostics()
        assert not bed.dpkg_verify("postfix")

    def test_purge_forgets_debconf_answers(self, bed, state):
        require(state, "purged")
        out = bed.run("debconf-show mailsetup", check=False)
        assert out.stdout.strip() == "", "debconf still has:\n" + out.stdout

    # Postfix purged first: mailsetup's postrm purge runs without postconf
    # and without /etc/postfix.

    def test_purge_after_postfix_purged_succeeds(self, bed, state):
        require(state, "purged")
        bed.preseed(preseed_lines())
        bed.apt_install("mailsetup")
        bed.apt_remove("mailsetup")
        bed.apt_purge("postfix")
        assert not bed.exists("/etc/postfix/main.cf")
        bed.apt_purge("mailsetup")
        status = bed.run("dpkg-query -W -f='${db:Status-Abbrev}' mailsetup", check=False)
        assert status.returncode != 0 or not status.stdout.startswith(("ii", "rc")), (
            "mailsetup still known to dpkg: %r" % status.stdout)
        state["purged_without_postfix"] = True

    def test_purge_after_postfix_purged_leaves_nothing(self, bed, state):
        require(state, "purged_without_postfix")
        left = [p for p in ("/etc/mailsetup", "/var/lib/mailsetup") if bed.exists(p)]
        assert not left, "left after purge: %s" % left


# ---------------------------------------------------------------------------
# Postfix installed as "No configuration" before mailsetup
# ---------------------------------------------------------------------------

class TestUnconfiguredPostfix:

    @pytest.fixture(scope="class")
    def bed(self, new_booted_bed):
        bed = new_booted_bed()
        install_postfix(bed, "No configuration")
        bed.aliases_before = (bed.read_file("/etc/aliases", binary=True)
                              if bed.exists("/etc/aliases") else None)
        bed.preseed(preseed_lines())
        bed.install_result = bed.apt_install("mailsetup", check=False)
        return bed

    def test_install_configures_postfix_and_delivers(self, bed):
        res = bed.install_result
        assert res.returncode == 0, res.stderr[-4000:]
        assert bed.postconf("myhostname") == "mail.example.test"
        # Postfix's postinst could not start it without a main.cf: mailsetup does
        assert bed.postfix_status(), "Postfix was not started after mailsetup configured it"
        bed.wait_port(25)
        mark = token()
        bed.smtp_send("someone@example.org", "root@example.test", mark, subject=mark)
        bed.wait_for_mail("alice", mark)

    def test_purge_leaves_postfix_unconfigured_again(self, bed):
        assert bed.install_result.returncode == 0
        bed.apt_purge("mailsetup")
        left = [p for p in ("/etc/postfix/main.cf", "/etc/aliases.db", "/etc/mailsetup",
                            "/var/lib/mailsetup") if bed.exists(p)]
        assert not left, "left after purge: %s" % left
        aliases_after = (bed.read_file("/etc/aliases", binary=True)
                         if bed.exists("/etc/aliases") else None)
        assert aliases_after == bed.aliases_before
        # Postfix as it was found: not running (it had no main.cf), nothing failed
        assert not bed.postfix_status(), "Postfix still runs without a main.cf"
        assert not bed.failed_units(), bed.diagnostics()
        # (a master being stopped may take a moment to exit)
        end = time.time() + 20
        while bed.run("pgrep -x master", check=False).returncode == 0 and time.time() < end:
            time.sleep(0.5)
        master = bed.run("pgrep -x master", check=False)
        assert master.returncode != 0, "a Postfix master runs without main.cf: %s" % master.stdout


# ---------------------------------------------------------------------------
# A host whose name has no domain, on a closed network (issue 10, item 7)
# ---------------------------------------------------------------------------

NO_DOMAIN_HOST = "vm"


def without_dns(bed, packages):
    """Download `packages`, then leave the bed without any nameserver (an
    empty resolv.conf: a closed network)."""
    res = retry_on_apt_lock(lambda: bed.run(APT + " install --download-only " + " ".join(packages),
                                            net="host", check=False))
    assert res.returncode == 0, res.stderr[-3000:]
    bed.run(": >/etc/resolv.conf")


def root_mail_is_delivered(bed, user):
    mark = token("no-domain")
    bed.run("/usr/sbin/sendmail -t", input="To: root\nSubject: %s\n\n%s\n" % (mark, mark))
    bed.wait_for_mail(user, mark)


class TestHostWithoutDomain:
    """`hostname` is `vm` and /etc/hosts names no domain; nothing preseeded;
    Postfix comes with mailsetup in the same apt run."""

    @pytest.fixture(scope="class")
    def bed(self, new_booted_bed):
        bed = new_booted_bed(hostname=NO_DOMAIN_HOST, domain=None)
        without_dns(bed, ["mailsetup", "mailsetup-filter"])
        bed.install_result = bed.apt_install("mailsetup", check=False)
        return bed

    def test_unattended_install_succeeds(self, bed):
        res = bed.install_result
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
        assert not bed.failed_units(), bed.diagnostics()

    def test_host_name_is_the_bare_name_in_localdomain(self, bed):
        assert bed.install_result.returncode == 0
        assert bed.postconf("myhostname") == NO_DOMAIN_HOST + ".localdomain"

    def test_mail_to_root_reaches_the_admin(self, bed):
        assert bed.install_result.returncode == 0
        assert bed.postfix_status(), "the install did not start Postfix"
        root_mail_is_delivered(bed, "mailadmin")

    def test_filter_installs_without_a_nameserver(self, bed):
        assert bed.install_result.returncode == 0
        res = bed.apt_install("mailsetup-filter", check=False)
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
        assert bed.is_active("rspamd") and not bed.failed_units(), bed.diagnostics()
        root_mail_is_delivered(bed, "mailadmin")


class TestHostWithoutDomainPostfixFirst:
    """The same host, with Postfix installed first (its own questions'
    defaults: Internet Site, mail name `vm`), then mailsetup."""

    @pytest.fixture(scope="class")
    def bed(self, new_booted_bed):
        bed = new_booted_bed(hostname=NO_DOMAIN_HOST, domain=None)
        without_dns(bed, ["mailsetup"])
        bed.preseed(["postfix postfix/main_mailer_type select Internet Site"])
        bed.apt_install("postfix")
        bed.install_result = bed.apt_install("mailsetup", check=False)
        return bed

    def test_unattended_install_succeeds(self, bed):
        res = bed.install_result
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
        assert bed.postconf("myhostname") == NO_DOMAIN_HOST + ".localdomain"
        assert not bed.failed_units(), bed.diagnostics()

    def test_mail_to_root_reaches_the_admin(self, bed):
        assert bed.install_result.returncode == 0
        root_mail_is_delivered(bed, "mailadmin")
