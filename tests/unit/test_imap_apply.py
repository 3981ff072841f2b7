"""mailsetup-imap's applier against a scratch Postfix configuration (postconf -c DIR):
what a user of the package sees in main.cf, master.cf and the Dovecot drop-ins."""

import dataclasses
import os

import pytest

from mailsetup.imap.mailboxes.model import MailboxError
from mailsetup.core import apply as core

from mailsetup.imap import apply as imap_core
from mailsetup.imap.components import dovecot, learn, postfix_virtual
from mailsetup.imap.components import sieve
from mailsetup.imap.settings import ImapSettings
from mailsetup.imap.mailboxes import system as mailbox_system
from mailsetup.postfix_tools import Postconf
from mailsetup.state import StateDir
from mailsetup import system as mailsetup_system
from mailsetup.validate import InvalidAnswer, question_label

from mailsetup.core.settings import CoreSettings

CORE_ANSWERS = {
    "mail_domain": "example.test", "hostname": "mail.example.test", "mailer_type": "internet",
    "relayhost": "", "other_destinations": "example.net", "mynetworks": "127.0.0.0/8",
    "message_size_limit": "20", "admin_user": "alice", "aliases": "", "inet_protocols": "ipv4",
    "recipient_delimiter": "+",
}
CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
KEY = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"


@pytest.fixture
def imap_system(scratch, tmp_path):
    system = dataclasses.replace(scratch, imap_state_dir=str(tmp_path / "imap-state"),
                                 dovecot_conf_dir=str(tmp_path / "dovecot"), vmail_dir=str(tmp_path / "vmail"))
    core.apply(CoreSettings.from_answers(CORE_ANSWERS, lambda name: False), system)
    (tmp_path / "cert.pem").write_text(CERT)
    (tmp_path / "key.pem").write_text(KEY)
    return system


def answers(tmp_path, **changes):
    return dict({"domains": "example.test", "tls_cert": str(tmp_path / "cert.pem"),
                 "tls_key": str(tmp_path / "key.pem")}, **changes)


def imap_settings(tmp_path, **changes):
    return ImapSettings.from_answers(answers(tmp_path, **changes), core_hostname="mail.example.test")


def snapshot(system):
    paths = [system.main_cf_path, os.path.join(system.postfix_config_dir, "master.cf"),
             os.path.join(system.dovecot_conf_dir, dovecot.AUTH_FILE),
             os.path.join(system.dovecot_conf_dir, dovecot.MAIN_FILE),
             os.path.join(system.etc_dir, "directory.json"),
             os.path.join(system.sieve_dir, sieve.SCRIPT_NAME), os.path.join(system.sieve_dir, sieve.BINARY_NAME),
             learn.report_spam_path(system), learn.report_ham_path(system)]
    return {p: (open(p, "rb").read(), os.stat(p).st_mtime_ns) if os.path.exists(p) else None for p in paths}


def explicit(system, *keys):
    return Postconf(system.postfix_config_dir).explicit(list(keys))


@pytest.mark.parametrize("version", ["2.3", "2.4"])
def test_apply_sets_up_dovecot_postfix_and_the_domain(imap_system, tmp_path, version):
    outcome = imap_core.apply(imap_settings(tmp_path), imap_system, dovecot_version=version)
    assert outcome.domains == ("example.test",)
    main = open(os.path.join(imap_system.dovecot_conf_dir, dovecot.MAIN_FILE)).read()
    auth = open(os.path.join(imap_system.dovecot_conf_dir, dovecot.AUTH_FILE)).read()
    if version == "2.3":
        assert f"ssl_cert = <{tmp_path}/cert.pem" in main and "disable_plaintext_auth = yes" in main
        assert "driver = sql" in auth
        args = open(os.path.join(imap_system.etc_dir, "dovecot", dovecot.SQL_PASSDB_FILE)).read()
        assert "driver = sqlite" in args and "directory/passwords.sqlite" in args
    else:
        assert f"ssl_server_cert_file = {tmp_path}/cert.pem" in main and "auth_allow_cleartext = no" in main
        assert "passdb sql {" in auth and "sql_driver = sqlite" in auth and "mail_inbox_path = ." in main
    assert "ssl = required" in main
    values = explicit(imap_system, "mydestination", "virtual_mailbox_domains", "virtual_transport",
                      "smtpd_sasl_type", "smtpd_tls_cert_file")
    # The domain has mailboxes now: it is no longer delivered to Unix accounts.
    assert values["mydestination"] == "mail.example.test, localhost, example.net"
    assert values["virtual_mailbox_domains"] == f"proxy:sqlite:{imap_system.etc_dir}/sqlite/domains.cf"
    assert values["virtual_transport"] == "lmtp:unix:private/dovecot-lmtp"
    assert values["smtpd_sasl_type"] == "dovecot"
    assert values["smtpd_tls_cert_file"] == f"{tmp_path}/cert.pem"
    pc = Postconf(imap_system.postfix_config_dir)
    for service in ("submission/inet", "submissions/inet"):
        options = pc.master_options(service)
        assert "smtpd_sasl_auth_enable=yes" in options
        assert "smtpd_sender_restrictions=reject_sender_login_mismatch" in options
    assert "smtpd_tls_security_level=encrypt" in pc.master_options("submission/inet")
    assert "smtpd_tls_wrappermode=yes" in pc.master_options("submissions/inet")
    assert imap_system.virtual_domains() == ["example.test"]


@pytest.mark.parametrize("version", ["2.3", "2.4"])
def test_second_apply_with_the_same_answers_writes_nothing(imap_system, tmp_path, version):
    imap_core.apply(imap_settings(tmp_path), imap_system, dovecot_version=version)
    before = snapshot(imap_system)
    outcome = imap_core.apply(imap_settings(tmp_path), imap_system, dovecot_version=version)
    assert outcome.changed == []
    assert snapshot(imap_system) == before


# -- the Sieve script that files mail marked as spam into Junk ------------

@pytest.mark.parametrize("version", ["2.3", "2.4"])
def test_apply_writes_the_spam_to_junk_script_and_turns_sieve_on_for_lmtp(imap_system, tmp_path, version):
    outcome = imap_core.apply(imap_settings(tmp_path), imap_system, dovecot_version=version)
    assert "sieve" in outcome.changed
    script = os.path.join(imap_system.sieve_dir, "spam-to-junk.sieve")
    with open(script) as f:
        text = f.read()
    assert 'require ["fileinto", "mailbox"];' in text
    assert 'if header :is "X-Spam" "Yes" {' in text and 'fileinto :create "Junk";' in text
    assert os.stat(script).st_mode & 0o777 == 0o644
    assert os.stat(imap_system.sieve_dir).st_mode & 0o777 == 0o755
    main = open(os.path.join(imap_system.dovecot_conf_dir, dovecot.MAIN_FILE)).read()
    if version == "2.3":
        assert f"  sieve_before = {script}\n" in main
        assert "protocol lmtp {\n  mail_plugins = $mail_plugins sieve\n}" in main
    else:
        assert ("protocol lmtp {\n  auth_username_format = %{user | lower}\n"
                "  mail_plugins {\n    sieve = yes\n  }\n}") in main
        assert ("sieve_script mailsetup-spam-to-junk {\n  type = before\n  driver = file\n"
                f"  path = {script}\n}}") in main
        assert "plugin {" not in main and "$mail_plugins" not in main
    # Junk (a \\Junk mailbox in Debian's 15-mailboxes.conf) exists and is subscribed everywhere.
    assert ("namespace inbox {\n  mailbox Junk {\n    special_use = \\Junk\n    auto = subscribe\n"
            "  }\n}") in main
    # No sievec in a scratch directory: nothing compiled, nothing to compile next time.
    assert not os.path.exists(os.path.join(imap_system.sieve_dir, "spam-to-junk.svbin"))


class Compiling:
    """A system where sievec "runs": it writes the binary next to the script."""

    def __init__(self, system, fail=False):
        self.system = dataclasses.replace(system, run_services=True)
        self.calls = []
        self.fail = fail
        self.system.run = self.run

    def run(self, argv, check=True):
        self.calls.append(argv)
        if self.fail:
            raise mailsetup_system.CommandFailed("sievec failed: simulated")
        assert argv[:3] == ["sievec", "-c", self.system.dovecot_conf_path]
        with open(argv[3][:-len(".sieve")] + ".svbin", "wb") as f:
            f.write(b"compiled " + open(argv[3], "rb").read())


def apply_sieve(system, dovecot_config_changed=False):
    """One SieveJunk pass as imap_core.apply runs it; its plan."""
    part = sieve.SieveJunk(system, dovecot_config_changed=dovecot_config_changed)
    current = part.read_current()
    plan = part.plan(None, current)
    if plan:
        part.apply(plan)
    return plan


def test_the_script_is_compiled_once_and_again_only_when_needed(imap_system):
    fake = Compiling(imap_system)
    script = os.path.join(imap_system.sieve_dir, "spam-to-junk.sieve")
    binary = os.path.join(imap_system.sieve_dir, "spam-to-junk.svbin")
    assert apply_sieve(fake.system) == {script: sieve.SCRIPT, binary: sieve.COMPILE}
    assert fake.calls == [["sievec", "-c", fake.system.dovecot_conf_path, script]]
    assert os.stat(binary).st_mode & 0o777 == 0o644
    # same answers: nothing written, nothing compiled
    assert apply_sieve(fake.system) == {}
    assert len(fake.calls) == 1
    # Dovecot's drop-in changed (e.g. 2.3 -> 2.4): the binary is made again, the script stays
    assert apply_sieve(fake.system, dovecot_config_changed=True) == {binary: sieve.COMPILE}
    # a lost or outdated binary is made again
    os.unlink(binary)
    assert apply_sieve(fake.system) == {binary: sieve.COMPILE}
    os.utime(binary, ns=(1, 1))
    assert apply_sieve(fake.system) == {binary: sieve.COMPILE}
    assert apply_sieve(fake.system) == {}
    assert len(fake.calls) == 4


def test_a_script_changed_by_hand_is_written_back_and_compiled(imap_system):
    fake = Compiling(imap_system)
    apply_sieve(fake.system)
    script = os.path.join(imap_system.sieve_dir, "spam-to-junk.sieve")
    with open(script, "ab") as f:
        f.write(b"discard;\n")
    plan = apply_sieve(fake.system)
    assert set(plan) == {script, os.path.join(imap_system.sieve_dir, "spam-to-junk.svbin")}
    assert open(script, "rb").read() == sieve.SCRIPT


@pytest.mark.parametrize("version", ["2.3", "2.4"])
def test_a_failing_sievec_puts_everything_back(imap_system, tmp_path, monkeypatch, version):
    before = snapshot(imap_system)
    fake = Compiling(imap_system, fail=True)
    monkeypatch.setattr(imap_core, "ensure_vmail", lambda system: os.getuid())
    monkeypatch.setattr("mailsetup.reapply.reapply_core", lambda system: None)
    with pytest.raises(core.ApplyFailed, match="simulated"):
        imap_core.apply(imap_settings(tmp_path), fake.system, dovecot_version=version)
    assert fake.calls and fake.calls[0][0] == "sievec"
    after = snapshot(imap_system)
    assert {p: v and v[0] for p, v in after.items()} == {p: v and v[0] for p, v in before.items()}


def test_a_domain_with_mailboxes_is_not_dropped(imap_system, tmp_path):
    imap_core.apply(imap_settings(tmp_path), imap_system, dovecot_version="2.3")
    store = mailbox_system.open_store(imap_system, "2.3")
    with store.transaction() as d:
        d.add_mailbox("alice@example.test", "{SHA512-CRYPT}$6$salt$hash")
    before = snapshot(imap_system)
    with pytest.raises(core.ApplyFailed, match="example.test"):
        imap_core.apply(imap_settings(tmp_path, domains="example.org"), imap_system, dovecot_version="2.3")
    assert snapshot(imap_system) == before


def test_a_failed_apply_puts_everything_back(imap_system, tmp_path, monkeypatch):
    before = snapshot(imap_system)

    def broken_commit(self, directory):
        raise MailboxError("sqlite: simulated failure")
    monkeypatch.setattr("mailsetup.imap.mailboxes.sqlite_store.SqliteStore.commit", broken_commit)
    with pytest.raises(core.ApplyFailed, match="previous configuration is back"):
        imap_core.apply(imap_settings(tmp_path), imap_system, dovecot_version="2.4")
    after = snapshot(imap_system)
    assert {p: v and v[0] for p, v in after.items()} == {p: v and v[0] for p, v in before.items()}


# -- the TLS profile on every port (doc/tls.md) ------------------------------

# Mozilla intermediate 5.7's TLS 1.2 suites without its DHE ones.
INTERMEDIATE = ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
                "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305")
SMTPD_PROFILE = {
    "smtpd_tls_security_level": "may",  # port 25: opportunistic, never required
    "smtpd_tls_protocols": ">=TLSv1.2",
    "smtpd_tls_mandatory_protocols": ">=TLSv1.2",
    "smtpd_tls_ciphers": "high",
    "smtpd_tls_mandatory_ciphers": "high",
    "tls_high_cipherlist": INTERMEDIATE,
    "smtpd_tls_exclude_ciphers": "aNULL",
    "tls_preempt_cipherlist": "no",
}


def test_the_profile_is_planned_for_every_smtpd_key_and_both_submission_services(imap_system, tmp_path):
    component = postfix_virtual.PostfixVirtual(imap_system, mailbox_system.open_store(imap_system, "2.4"))
    settings = imap_settings(tmp_path)
    assert set(component.desired(settings)) <= set(component.MANAGED_KEYS)
    current = component.read_current()
    plan = component.plan(settings, current)
    # Each key is planned, unless the main.cf we start from has its value already.
    assert {k: plan["keys"].get(k, current["explicit"][k]) for k in SMTPD_PROFILE} == SMTPD_PROFILE
    assert "tls_high_cipherlist" in plan["keys"] and "smtpd_tls_exclude_ciphers" in plan["keys"]
    assert plan["services"] == ["submission", "submissions"]
    for name in ("submission", "submissions"):
        assert ("smtpd_tls_security_level", "encrypt") in postfix_virtual.SERVICES[name]


def test_postfix_gets_the_profile_and_465_and_587_require_tls(imap_system, tmp_path):
    imap_core.apply(imap_settings(tmp_path), imap_system, dovecot_version="2.4")
    assert explicit(imap_system, *SMTPD_PROFILE) == SMTPD_PROFILE
    # "high" means our list for smtpd only: the smtp and lmtp clients keep "medium".
    assert explicit(imap_system, "smtp_tls_ciphers", "smtp_tls_mandatory_ciphers", "lmtp_tls_ciphers",
                    "lmtp_tls_mandatory_ciphers") == dict.fromkeys(
        ("smtp_tls_ciphers", "smtp_tls_mandatory_ciphers", "lmtp_tls_ciphers", "lmtp_tls_mandatory_ciphers"))
    pc = Postconf(imap_system.postfix_config_dir)
    for service in ("submission/inet", "submissions/inet"):
        options = pc.master_options(service)
        assert "smtpd_tls_security_level=encrypt" in options
        # No service has a cipher or protocol setting of its own: main.cf's hold everywhere.
        assert not [o for o in options if "cipher" in o or "protocols" in o]


def test_the_originals_of_the_profile_keys_are_recorded_for_purge(imap_system, tmp_path):
    pc = Postconf(imap_system.postfix_config_dir)
    pc.change({"smtpd_tls_exclude_ciphers": "MD5", "tls_high_cipherlist": None})
    imap_core.apply(imap_settings(tmp_path), imap_system, dovecot_version="2.4")
    originals = StateDir(imap_system.imap_state_dir).postfix_originals()
    assert originals["smtpd_tls_exclude_ciphers"] == "MD5"
    assert originals["tls_high_cipherlist"] is None and originals["smtpd_tls_ciphers"] is None


@pytest.mark.parametrize("version", ["2.3", "2.4"])
def test_dovecot_gets_the_profile_with_the_setting_names_of_its_version(imap_system, tmp_path, version):
    main = dovecot.main_conf(version, imap_settings(tmp_path), 103, "/var/vmail", imap_system)
    lines = main.splitlines()
    assert "ssl_min_protocol = TLSv1.2" in lines
    assert f"ssl_cipher_list = {INTERMEDIATE}" in lines
    if version == "2.3":
        assert "ssl_prefer_server_ciphers = no" in lines and "ssl_server_prefer_ciphers" not in main
    else:
        # 2.4 renamed it and takes client|server.
        assert "ssl_server_prefer_ciphers = client" in lines and "ssl_prefer_server_ciphers" not in main
    assert main.count("ssl_cipher_list") == 1


@pytest.mark.parametrize("question,value,expected", [
    ("domains", "example", "expected domain names"),
    ("domains", "mail.example.test", "the server's own name"),
    ("domains", "localhost", "must contain a dot"),
    ("domains", "localhost.localdomain", "the server's own name"),
    ("domains", "exa mple..test", "expected domain names"),
    ("domains", "bücher.example", "expected domain names"),
    ("domains", "example.test\nmydestination=x", "without control characters"),
    ("tls_cert", "relative/cert.pem", "absolute path"),
    ("tls_cert", "/nonexistent/cert.pem", "cannot be read"),
    ("tls_key", "{cert}", "no PEM private key"),
    ("tls_cert", "{key}", "no PEM certificate"),
])
def test_bad_answers_are_refused_with_one_line(tmp_path, question, value, expected):
    (tmp_path / "cert.pem").write_text(CERT)
    (tmp_path / "key.pem").write_text(KEY)
    value = value.format(cert=tmp_path / "cert.pem", key=tmp_path / "key.pem")
    with pytest.raises(InvalidAnswer) as err:
        imap_settings(tmp_path, **{question: value})
    line = str(err.value)
    assert "\n" not in line
    assert line.startswith(f'mailsetup-imap/{question} ("{question_label("mailsetup-imap", question)}"): ') and expected in line


def test_readback_keeps_files_whatever_file_they_name(imap_system, tmp_path, monkeypatch):
    """files may name snakeoil's or certbot's file: reading main.cf back must not turn the
    answer into snakeoil or acme (seen in a booted bed: the next apply ignored the files)."""
    imap_core.apply(imap_settings(tmp_path, tls_source="files"), imap_system, dovecot_version="2.4")
    monkeypatch.setattr(imap_core, "tls_source_of", lambda path: "snakeoil")
    found = imap_core.answers_from_system(imap_system)
    assert "tls_source" not in found and found["tls_cert"] == str(tmp_path / "cert.pem")


# -- the move from the file store (releases up to 0.3.0) to SQLite -----------

def file_store_of_0_3(system, tmp_path):
    """What mailsetup-imap 0.3.0 left: directory.json, its hash maps and main.cf on them."""
    from test_mailbox_store import populated
    files = mailbox_system.file_store(system, "2.4")
    files.users_group = None
    populated(files)
    pc = Postconf(system.postfix_config_dir)
    pc.change({name: files.map_spec(kind) for name, kind in (
        ("virtual_mailbox_domains", "domains"), ("virtual_mailbox_maps", "mailboxes"),
        ("virtual_alias_maps", "aliases"))})
    return files


def test_an_upgrade_moves_the_file_store_into_sqlite(imap_system, tmp_path):
    files = file_store_of_0_3(imap_system, tmp_path)
    old = files.load()
    imap_core.apply(imap_settings(tmp_path, domains="example.org example.net"), imap_system, dovecot_version="2.4")
    assert mailbox_system.live_backend(imap_system) == "sqlite"
    # Everything the admin had: every mailbox with its hash and quota, aliases and lists.
    assert mailbox_system.open_store(imap_system).load() == old
    assert not os.path.exists(files.json_path) and os.path.exists(files.json_path + ".migrated")
    assert not os.path.exists(files.map_path("mailboxes")) and not os.path.exists(files.users_path)
    values = explicit(imap_system, "virtual_mailbox_maps", "virtual_alias_maps")
    assert values == {"virtual_mailbox_maps": f"proxy:sqlite:{imap_system.etc_dir}/sqlite/mailboxes.cf",
                      "virtual_alias_maps": f"proxy:sqlite:{imap_system.etc_dir}/sqlite/aliases.cf"}


def test_a_failed_migration_leaves_the_file_store_working(imap_system, tmp_path, monkeypatch):
    files = file_store_of_0_3(imap_system, tmp_path)
    old = files.load()
    main_before = open(imap_system.main_cf_path).read()

    def lost_row(self, directory):
        raise MailboxError("sqlite: simulated failure")
    monkeypatch.setattr("mailsetup.imap.mailboxes.sqlite_store.SqliteStore.commit", lost_row)
    with pytest.raises(core.ApplyFailed, match="simulated failure"):
        imap_core.apply(imap_settings(tmp_path, domains="example.org example.net"), imap_system,
                        dovecot_version="2.4")
    assert mailbox_system.live_backend(imap_system) == "files"
    assert files.load() == old and os.path.exists(files.map_path("mailboxes") + files.suffix)
    assert open(imap_system.main_cf_path).read() == main_before
