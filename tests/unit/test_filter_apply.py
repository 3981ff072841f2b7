"""mailsetup-filter's applier against a scratch Postfix configuration and a
scratch rspamd local.d: what an admin sees in main.cf and /etc/rspamd/local.d."""

import dataclasses
import os

import pytest

from mailsetup import core, filter_core
from mailsetup.components import rspamd
from mailsetup.filter_settings import FilterSettings
from mailsetup.postconf import Postconf
from mailsetup.settings import CoreSettings
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
    assert ('bind_socket = "/var/spool/postfix/rspamd/milter.sock mode=0660 owner=_rspamd group=postfix";'
            in local(filter_system, "worker-proxy.inc"))
    assert main["milter_default_action"] == "accept"  # mail keeps flowing while rspamd is down
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
    assert "\n" not in line and line.startswith(f'mailsetup-filter/{question} ("{question_label("mailsetup-filter", question)}"): ') and expected in line


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
