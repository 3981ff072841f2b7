"""mailsetup-filter's applier against a scratch Postfix configuration and a
scratch rspamd local.d: what an admin sees in main.cf and /etc/rspamd/local.d."""

import dataclasses
import grp
import os
import subprocess

import pytest

from mailsetup import dkim

from mailsetup.core import apply as core

from mailsetup.filter import apply as filter_core
from mailsetup.filter import health
from mailsetup.filter.components import rspamd
from mailsetup.filter.settings import FilterSettings
from mailsetup.postfix_tools import Postconf
from mailsetup.core.settings import CoreSettings
from mailsetup.errors import CommandFailed
from mailsetup.validate import InvalidAnswer, question_label

CORE_ANSWERS = {
    "mail_domain": "example.test", "hostname": "mail.example.test", "mailer_type": "internet",
    "relayhost": "", "other_destinations": "", "mynetworks": "127.0.0.0/8 192.0.2.0/24",
    "message_size_limit": "20", "admin_user": "alice", "aliases": "", "inet_protocols": "ipv4",
    "recipient_delimiter": "+",
}


@pytest.fixture
def filter_system(scratch, tmp_path):
    system = dataclasses.replace(scratch, filter_state_dir=str(tmp_path / "filter-state"),
                                 dkim_dir=str(tmp_path / "dkim"), rspamd_local_dir=str(tmp_path / "local.d"))
    system.core_settings = CoreSettings.from_answers(CORE_ANSWERS, lambda name: False)
    core.apply(system.core_settings, system)
    return system


def settings(greylisting="true", zones=""):
    return FilterSettings.from_answers({"greylisting": greylisting, "dnsbl_zones": zones})


def local(system, name):
    with open(os.path.join(system.rspamd_local_dir, name)) as f:
        return f.read()


def snapshot(system):
    paths = [system.main_cf_path] + [os.path.join(system.rspamd_local_dir, n) for n in rspamd.FILE_NAMES]
    return {p: (open(p, "rb").read(), os.stat(p).st_mtime_ns) if os.path.exists(p) else None for p in paths}


def test_apply_wires_rspamd_into_postfix_with_helo_checks_and_blocklists(filter_system):
    outcome = filter_core.apply(settings(zones="bl.example zen.spamhaus.org"), filter_system.core_settings,
                                filter_system)
    assert outcome.domains == ("example.test",)
    main = Postconf(filter_system.postfix_config_dir).explicit(
        ["smtpd_milters", "milter_default_action", "smtpd_helo_required", "smtpd_helo_restrictions",
         "smtpd_client_restrictions"])
    assert main["smtpd_milters"] == "unix:rspamd/milter.sock"
    # rspamd's proxy listens there (Postfix's queue directory; a socket path relative to it)
    # mode 0666 (its directory keeps others out): rspamd as _rspamd cannot chown it to group postfix
    assert ('bind_socket = "/var/spool/postfix/rspamd/milter.sock mode=0666 owner=_rspamd";'
            in local(filter_system, "worker-proxy.inc"))
    assert "group=" not in local(filter_system, "worker-proxy.inc")
    assert main["milter_default_action"] == "tempfail"  # mail waits while rspamd is down, never passes unfiltered
    assert main["smtpd_helo_required"] == "yes"
    assert "reject_non_fqdn_helo_hostname" in main["smtpd_helo_restrictions"]
    assert main["smtpd_client_restrictions"].endswith(
        "reject_rbl_client bl.example, reject_rbl_client zen.spamhaus.org")
    # Postfix's trusted networks are local for rspamd too; keys from our own directory.
    assert 'local_addrs = ["127.0.0.0/8", "192.0.2.0/24"];' in local(filter_system, "options.inc")
    assert f'path = "{filter_system.dkim_dir}/$domain.$selector.key";' in local(filter_system, "dkim_signing.conf")
    assert "greylist = -10;" in local(filter_system, "actions.conf")
    assert 'reject = "reject";' in local(filter_system, "dmarc.conf")
    assert "autolearn = true;" in local(filter_system, "classifier-bayes.conf")


def test_greylisting_off_is_written_and_a_second_apply_writes_nothing(filter_system):
    filter_core.apply(settings(), filter_system.core_settings, filter_system)
    outcome = filter_core.apply(settings(greylisting="false"), filter_system.core_settings, filter_system)
    assert outcome.changed == ["rspamd"]
    assert "enabled = false;" in local(filter_system, "greylist.conf")
    before = snapshot(filter_system)
    assert filter_core.apply(settings(greylisting="false"), filter_system.core_settings,
                             filter_system).changed == []
    assert snapshot(filter_system) == before


def test_postfix_originals_are_recorded_once_for_purge(filter_system):
    filter_core.apply(settings(), filter_system.core_settings, filter_system)
    filter_core.apply(settings(zones="bl.example"), filter_system.core_settings, filter_system)
    originals = filter_core.filter_state(filter_system).postfix_originals()
    assert originals["smtpd_milters"] is None           # not set before us: purge removes it
    assert originals["smtpd_client_restrictions"] is None


@pytest.mark.parametrize("answers,question,expected", [
    ({"greylisting": "maybe", "dnsbl_zones": ""}, "greylisting", "expected true or false"),
    ({"greylisting": "true", "dnsbl_zones": "localhost"}, "dnsbl_zones", "expected DNS blocklist zones"),
    ({"greylisting": "true", "dnsbl_zones": "zen.spamhaus.org;rm -rf"}, "dnsbl_zones", "expected DNS blocklist"),
    ({"greylisting": "true", "dnsbl_zones": "bl.example\nsmtpd_milters=x"}, "dnsbl_zones", "control characters"),
])
def test_bad_answers_are_refused_with_one_line(answers, question, expected):
    with pytest.raises(InvalidAnswer) as err:
        FilterSettings.from_answers(answers)
    line = str(err.value)
    prefix = f'mailsetup-filter/{question} ("{question_label("mailsetup-filter", question)}"): '
    assert "\n" not in line and line.startswith(prefix) and expected in line


def test_antivirus_on_makes_rspamd_refuse_viruses_through_clamd(filter_system):
    answers = {"greylisting": "true", "dnsbl_zones": "", "antivirus": "true"}
    filter_core.apply(FilterSettings.from_answers(answers), filter_system.core_settings, filter_system)
    conf = local(filter_system, "antivirus.conf")
    assert 'servers = "/run/clamav/clamd.ctl";' in conf and 'action = "reject";' in conf
    answers["antivirus"] = "false"
    filter_core.apply(FilterSettings.from_answers(answers), filter_system.core_settings, filter_system)
    assert "clamav {" not in local(filter_system, "antivirus.conf")


def test_antivirus_without_clamav_daemon_is_refused_with_one_line():
    with pytest.raises(InvalidAnswer) as err:
        FilterSettings.from_answers({"greylisting": "true", "dnsbl_zones": "", "antivirus": "true"},
                                    clamd_installed=False)
    assert str(err.value) == ('mailsetup-filter/antivirus ("Scan mail for viruses with ClamAV?"): "true" '
                              'is not valid: expected false while '
                              'clamav-daemon is not installed (install it first: apt install clamav-daemon)')


def test_answers_recorded_before_the_antivirus_question_mean_no_scan():
    assert FilterSettings.from_answers({"greylisting": "true", "dnsbl_zones": ""}).antivirus is False


# --- no DNS server, and a failed apply --------------------------------------

@pytest.fixture
def resolv_conf(tmp_path, monkeypatch):
    path = tmp_path / "resolv.conf"
    monkeypatch.setattr(rspamd, "RESOLV_CONF", str(path))
    return path


def test_without_a_nameserver_rspamd_gets_one_and_follows_resolv_conf_again_later(filter_system, resolv_conf):
    resolv_conf.write_text("# closed network\nsearch example.test\n")
    filter_core.apply(settings(), filter_system.core_settings, filter_system)
    options = local(filter_system, "options.inc")
    assert 'dns {\n  nameserver = ["127.0.0.1:53"];\n}\n' in options
    assert 'local_addrs = ["127.0.0.0/8", "192.0.2.0/24"];' in options
    # The machine gets a DNS server: the next configure drops ours.
    resolv_conf.write_text("nameserver 192.0.2.53\n")
    outcome = filter_core.apply(settings(), filter_system.core_settings, filter_system)
    assert outcome.changed == ["rspamd"]
    assert "dns {" not in local(filter_system, "options.inc")
    # No resolv.conf at all is no nameserver either.
    resolv_conf.unlink()
    filter_core.apply(settings(), filter_system.core_settings, filter_system)
    assert 'nameserver = ["127.0.0.1:53"];' in local(filter_system, "options.inc")


FAKE_RSPAMADM = """#!/bin/sh
# rspamadm dkim_keygen -b BITS -s SELECTOR -d DOMAIN -k KEYFILE: a key file and the record on stdout
[ "$1" = dkim_keygen ] || exit 2
echo "-----BEGIN PRIVATE KEY-----" > "$9"
printf '%s._domainkey IN TXT ( "v=DKIM1; k=rsa; "\\n\\t"p=MIIBIjANBgkq" ) ;\\n' "$5"
"""


@pytest.fixture
def keygen_system(filter_system, tmp_path, monkeypatch, fake_services):
    """filter_system with services on: a fake rspamadm makes keys; System.run answers
    configtest as `configtest` says (None: it passes)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "rspamadm").write_text(FAKE_RSPAMADM)
    (bindir / "rspamadm").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setattr(dkim, "RSPAMD_GROUP", grp.getgrgid(os.getgid()).gr_name)
    monkeypatch.setattr(rspamd.RspamdConfig, "make_socket_dir", lambda self: None)
    monkeypatch.setattr(health, "milter_path", lambda system: str(tmp_path / "no-milter.sock"))
    monkeypatch.setattr(filter_core, "MILTER_WAIT", 0)
    system = dataclasses.replace(filter_system, run_services=True)
    system.core_settings = filter_system.core_settings
    system.configtest = None

    def run(argv, check=True):
        if argv[:2] == ["rspamadm", "configtest"] and system.configtest:
            raise CommandFailed(f"rspamadm configtest failed: {system.configtest}")
        return subprocess.CompletedProcess(argv, 0, "", "")
    system.run = run
    return system


def contents(system):
    return {path: saved and saved[0] for path, saved in snapshot(system).items()}


@pytest.mark.requires_root
def test_a_failed_apply_removes_the_dkim_key_it_made_so_the_retry_makes_it_again(keygen_system):
    before = contents(keygen_system)
    keygen_system.configtest = "cannot parse resolv.conf"
    with pytest.raises(core.ApplyFailed, match="cannot parse resolv.conf"):
        filter_core.apply(settings(), keygen_system.core_settings, keygen_system)
    assert not os.path.exists(keygen_system.dkim_dir)   # the key directory is as before: none
    assert contents(keygen_system) == before
    keygen_system.configtest = None
    outcome = filter_core.apply(settings(), keygen_system.core_settings, keygen_system)
    assert outcome.new_keys == ["example.test"]
    assert sorted(os.listdir(keygen_system.dkim_dir)) == ["example.test.mail.key", "example.test.mail.txt"]


@pytest.mark.requires_root
def test_a_failed_apply_keeps_the_keys_made_before(keygen_system):
    filter_core.apply(settings(), keygen_system.core_settings, keygen_system)
    key = dkim.key_path(keygen_system, "example.test")
    made = open(key, "rb").read()
    keygen_system.configtest = "simulated"
    with pytest.raises(core.ApplyFailed):
        filter_core.apply(settings(greylisting="false"), keygen_system.core_settings, keygen_system)
    assert open(key, "rb").read() == made


# --- services: what the report is told ---------------------------------------

@pytest.mark.requires_root
def test_apply_starts_rspamd_and_reports_the_filter_as_the_services_say(keygen_system, fake_services):
    outcome = filter_core.apply(settings(), keygen_system.core_settings, keygen_system)
    assert ("start", "rspamd") in fake_services.calls
    assert outcome.rspamd == "started" and outcome.checked
    # rspamd runs, but there is no milter socket: the filter does not work, and says so
    assert outcome.problem.startswith("Milter socket ") and "does not exist" in outcome.problem


@pytest.mark.requires_root
def test_rspamd_that_does_not_start_is_reported_not_running(keygen_system, fake_services):
    fake_services.cannot_start.add("rspamd")
    outcome = filter_core.apply(settings(), keygen_system.core_settings, keygen_system)
    assert (outcome.rspamd, outcome.problem) == ("not running", "rspamd is not running")


@pytest.mark.requires_root
def test_a_moved_socket_restarts_a_running_rspamd_and_a_change_reloads_it(keygen_system, fake_services):
    fake_services.up.update({"rspamd", "postfix"})
    outcome = filter_core.apply(settings(), keygen_system.core_settings, keygen_system)
    assert (outcome.rspamd, outcome.postfix) == ("restarted", "reloaded")   # worker-proxy.inc is new
    fake_services.calls.clear()
    outcome = filter_core.apply(settings(greylisting="false"), keygen_system.core_settings, keygen_system)
    assert outcome.rspamd == "reloaded"
    assert fake_services.calls == [("reload", "rspamd")]
