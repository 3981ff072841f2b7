"""The applier against a scratch Postfix configuration directory (postconf -c DIR)."""

import os

import pytest

from mailsetup.core import apply as core
from mailsetup.postfix_keys import MainCfKeys
from mailsetup.core.components.postfix_main import MANAGED_KEYS
from mailsetup.core.configure import applied_core_settings, readback_changes
from mailsetup.debconf_io import ask_until_valid
from mailsetup.postfix_tools import Postconf
from mailsetup.core.settings import CoreSettings
from mailsetup.state import StateDir
from mailsetup.validate import InvalidAnswer

ANSWERS = {
    "mail_domain": "example.test",
    "hostname": "mail.example.test",
    "mailer_type": "internet",
    "relayhost": "",
    "other_destinations": "example.net",
    "mynetworks": "127.0.0.0/8 [::1]/128",
    "message_size_limit": "20",
    "admin_user": "alice",
    "aliases": "webmaster: alice, sales: alice bob@example.net",
    "inet_protocols": "ipv4",
    "recipient_delimiter": "+",
}


def settings(**changes):
    return CoreSettings.from_answers(dict(ANSWERS, **changes), lambda name: False)


def main_cf(system, *keys):
    return Postconf(system.postfix_config_dir).explicit(list(keys))


def fingerprint(system):
    paths = [system.main_cf_path, system.mailname_path, system.aliases_path, system.aliases_path + ".db"]
    return {p: (open(p, "rb").read(), os.stat(p).st_mtime_ns) for p in paths if os.path.exists(p)}


def test_apply_sets_main_cf_mailname_and_aliases(scratch):
    outcome = core.apply(settings(), scratch)
    assert set(outcome.changed) == {"main.cf", "aliases", "mailname"}
    values = main_cf(scratch, "myhostname", "mydomain", "mydestination", "message_size_limit",
                     "inet_protocols", "inet_interfaces", "alias_maps", "smtpd_relay_restrictions")
    assert values["myhostname"] == "mail.example.test"
    assert values["mydomain"] == "example.test"
    assert values["mydestination"] == "mail.example.test, example.test, localhost, example.net"
    assert values["message_size_limit"] == str(20 * 1024 * 1024)
    assert values["inet_protocols"] == "ipv4"
    assert values["inet_interfaces"] == "all"
    assert values["alias_maps"].startswith(f"hash:{scratch.aliases_path}, hash:")
    assert "reject_unauth_destination" in values["smtpd_relay_restrictions"]
    assert open(scratch.mailname_path).read() == "example.test\n"
    table = open(scratch.aliases_path).read()
    assert "root: alice@mail.example.test\n" in table
    assert "sales: alice@mail.example.test, bob@example.net\n" in table
    assert os.path.exists(scratch.aliases_path + ".db")


def test_apply_keeps_every_unmanaged_line(scratch):
    before = [line for line in open(scratch.main_cf_path) if line.split("=")[0].strip() not in MANAGED_KEYS]
    core.apply(settings(), scratch)
    after = open(scratch.main_cf_path).read().splitlines(keepends=True)
    for line in before:
        assert line in after


def test_second_apply_changes_nothing(scratch):
    core.apply(settings(), scratch)
    before = fingerprint(scratch)
    outcome = core.apply(settings(), scratch)
    assert outcome.changed == [] and outcome.postfix == "unchanged"
    assert fingerprint(scratch) == before


def test_only_changed_keys_are_rewritten(scratch):
    core.apply(settings(), scratch)
    table = open(scratch.aliases_path, "rb").read()
    outcome = core.apply(settings(message_size_limit="30"), scratch)
    assert outcome.changed == ["main.cf"]
    assert main_cf(scratch, "message_size_limit")["message_size_limit"] == str(30 * 1024 * 1024)
    assert open(scratch.aliases_path, "rb").read() == table


def test_originals_are_recorded_once(scratch):
    core.apply(settings(), scratch)
    core.apply(settings(hostname="mx.example.test", mailer_type="smarthost", relayhost="[relay.example.test]:587"),
               scratch)
    originals = StateDir(scratch.state_dir).postfix_originals()
    assert originals["myhostname"] == "old.example.net"
    assert originals["mydomain"] is None  # not in main.cf before: purge removes the line
    assert originals["relayhost"] == ""
    state_file = open(os.path.join(scratch.state_dir, "postfix-originals")).read()
    assert "myhostname\tset\told.example.net\n" in state_file
    assert "mydomain\tunset\t\n" in state_file
    assert open(os.path.join(scratch.state_dir, "mailname.orig")).read() == "old.example.net\n"


class HeloKeys(MainCfKeys):
    name = "helo keys"
    MANAGED_KEYS = ("smtpd_helo_required", "relayhost", "inet_interfaces")

    def desired(self, settings):
        return {"smtpd_helo_required": "yes", "relayhost": None, "inet_interfaces": "all"}


def test_main_cf_keys_change_only_what_differs_and_record_the_originals(scratch):
    keys = HeloKeys(scratch)
    state = StateDir(scratch.state_dir)
    assert keys.files() == [scratch.main_cf_path]
    current = keys.read_current()
    assert current == {"smtpd_helo_required": None, "relayhost": "", "inet_interfaces": "all"}
    plan = keys.plan(None, current)
    assert plan == {"smtpd_helo_required": "yes", "relayhost": None}
    keys.record_originals(state, plan, current)
    keys.apply(plan)
    assert main_cf(scratch, *HeloKeys.MANAGED_KEYS) == {"smtpd_helo_required": "yes", "relayhost": None,
                                                        "inet_interfaces": "all"}
    assert state.postfix_originals() == {"smtpd_helo_required": None, "relayhost": ""}
    assert not keys.plan(None, keys.read_current())


@pytest.mark.parametrize("mailer,interfaces,transport", [
    ("internet", "all", None), ("smarthost", "all", None),
    ("satellite", "loopback-only", None), ("local", "loopback-only", "error")])
def test_mailer_types(scratch, mailer, interfaces, transport):
    core.apply(settings(mailer_type=mailer, relayhost="[relay.example.test]"), scratch)
    values = main_cf(scratch, "inet_interfaces", "default_transport", "relayhost")
    assert values["inet_interfaces"] == interfaces
    assert values["default_transport"] == transport
    assert values["relayhost"] == ("[relay.example.test]" if mailer in ("smarthost", "satellite") else "")


def test_leaving_local_only_removes_error_transport(scratch):
    core.apply(settings(mailer_type="local"), scratch)
    core.apply(settings(mailer_type="internet"), scratch)
    assert main_cf(scratch, "default_transport", "relay_transport") == {
        "default_transport": None, "relay_transport": None}


def test_failed_apply_puts_everything_back(scratch, monkeypatch):
    core.apply(settings(), scratch)
    before = {p: data for p, (data, _) in fingerprint(scratch).items()}

    def broken_postalias(plan):
        raise OSError("disk full")
    from mailsetup.core.components.aliases import Aliases
    monkeypatch.setattr(Aliases, "apply", lambda self, plan: broken_postalias(plan))
    with pytest.raises(core.ApplyFailed, match="previous configuration is back"):
        core.apply(settings(hostname="mx.example.test", aliases="webmaster: alice"), scratch)
    assert {p: data for p, (data, _) in fingerprint(scratch).items()} == before


def test_system_answers_read_back_what_was_applied(scratch):
    applied = settings(mailer_type="satellite", relayhost="[relay.example.test]:587")
    core.apply(applied, scratch)
    from_system = {q: [a for _, a in c] for q, c in core.answers_from_system(scratch).items()}
    for question, answer in applied.to_answers().items():
        assert from_system[question][0] == answer, question


def test_hand_edit_is_read_back_but_preseed_is_kept(scratch):
    core.apply(settings(), scratch)
    applied = settings().to_answers()
    Postconf(scratch.postfix_config_dir).change({"message_size_limit": str(50 * 1024 * 1024)})
    changes = readback_changes(core.answers_from_system(scratch), applied, seen={})
    assert changes == {"message_size_limit": "50"}


def test_hand_edit_of_alias_table_is_read_back(scratch):
    core.apply(settings(), scratch)
    with open(scratch.aliases_path, "a") as table:
        table.write("abuse: alice\n")
    changes = readback_changes(core.answers_from_system(scratch), settings().to_answers(), seen={})
    assert changes == {"aliases": "webmaster: alice, sales: alice bob@example.net, abuse: alice"}


def test_first_install_fills_only_unseen_questions_from_main_cf(scratch):
    from_system = core.answers_from_system(scratch)
    changes = readback_changes(from_system, None, seen={"hostname": False, "mynetworks": True})
    assert changes["hostname"] == "old.example.net"
    assert "mynetworks" not in changes  # preseeded: the preseed wins
    assert "mail_domain" not in changes  # /etc/mailname holds a host name, not the domain


def test_applied_core_settings_are_refused_until_the_core_is_applied(scratch):
    assert core.applied_settings(scratch) is None
    with pytest.raises(core.ApplyFailed, match="mailsetup is not configured yet"):
        applied_core_settings(scratch)
    core.apply(settings(), scratch)
    assert core.applied_settings(scratch) == settings()
    assert applied_core_settings(scratch) == settings()


class AskedAgain:
    """Questions that can ask again (interactive) or not (noninteractive), noting what was refused."""

    def __init__(self, interactive):
        self.interactive = interactive
        self.refused = []

    def ask_again(self, invalid):
        self.refused.append(invalid.question)
        return self.interactive


def test_ask_until_valid_asks_again_until_the_answers_are_valid():
    answers = iter([{"hostname": "bad..name"}, {"hostname": "mail.example.test"}])
    questions = AskedAgain(interactive=True)
    result = ask_until_valid(questions, lambda: settings(**next(answers)))
    assert result.hostname == "mail.example.test"
    assert questions.refused == ["hostname"]


def test_ask_until_valid_refuses_when_nobody_can_be_asked():
    questions = AskedAgain(interactive=False)
    with pytest.raises(InvalidAnswer) as caught:
        ask_until_valid(questions, lambda: settings(hostname="bad..name"))
    assert caught.value.question == "hostname"
    assert questions.refused == ["hostname"]


def test_unconfigured_postfix_gets_a_main_cf_and_failure_removes_it(scratch, monkeypatch):
    os.unlink(scratch.main_cf_path)  # Postfix installed as "No configuration"
    os.unlink(scratch.system_aliases_path)  # Postfix 3.10 does not create it then
    core.apply(settings(), scratch)
    assert main_cf(scratch, "myhostname", "alias_maps") == {
        "myhostname": "mail.example.test",
        "alias_maps": f"hash:{scratch.aliases_path}, hash:{scratch.system_aliases_path}"}
    assert os.path.exists(os.path.join(scratch.state_dir, "main.cf.absent"))  # purge removes it
    assert os.path.exists(scratch.system_aliases_path + ".db")
    assert open(scratch.system_aliases_path).read().endswith("postmaster:    root\n")
    assert os.path.exists(os.path.join(scratch.state_dir, "aliases.absent"))  # purge removes it

    os.unlink(scratch.main_cf_path)
    os.unlink(os.path.join(scratch.state_dir, "main.cf.absent"))
    monkeypatch.setattr("mailsetup.core.components.postfix_main.PostfixMain.apply",
                        lambda self, plan: (_ for _ in ()).throw(OSError("read-only")))
    with pytest.raises(core.ApplyFailed):
        core.apply(settings(hostname="mx.example.test"), scratch)
    assert not os.path.exists(scratch.main_cf_path)
    assert not os.path.exists(os.path.join(scratch.state_dir, "main.cf.absent"))


def test_apply_killed_before_telling_postfix_is_made_good_by_the_next_run(scratch, monkeypatch):
    core.apply(settings(), scratch)
    calls = []
    monkeypatch.setattr("mailsetup.postfix_service.apply_changes",
                        lambda system, state, needs_restart: calls.append(needs_restart) or "restarted")

    def killed(plan):
        raise KeyboardInterrupt  # not an error apply handles: nothing is put back, as with SIGKILL
    from mailsetup.core.components.aliases import Aliases
    real_apply = Aliases.apply
    monkeypatch.setattr(Aliases, "apply", lambda self, plan: killed(plan))
    with pytest.raises(KeyboardInterrupt):
        core.apply(settings(mailer_type="local", aliases="webmaster: alice"), scratch)
    assert calls == []
    monkeypatch.setattr(Aliases, "apply", real_apply)
    # main.cf is already in place: only the aliases are left to do, yet the
    # restart the interfaces change needs is still owed.
    outcome = core.apply(settings(mailer_type="local", aliases="webmaster: alice"), scratch)
    assert outcome.changed == ["aliases"] and calls == [True]
    # Owed once only.
    assert core.apply(settings(mailer_type="local", aliases="webmaster: alice"), scratch).postfix == "unchanged"
    assert calls == [True]


class Services:
    """system.run with services on, recording the commands; invoke-rc.d answers rc."""

    def __init__(self, system, monkeypatch, rc=0):
        import dataclasses
        import subprocess
        self.calls = []
        self.system = dataclasses.replace(system, run_services=True)
        real_run = self.system.run

        def run(argv, check=True):
            self.calls.append(argv)
            if argv[0] == "invoke-rc.d":
                return subprocess.CompletedProcess(argv, rc, "", "")
            if argv[0] == "postfix":
                return subprocess.CompletedProcess(argv, 0, "", "")
            return real_run(argv, check)  # postalias
        self.system.run = run
        self.system.account_exists = lambda name: True
        monkeypatch.setattr("mailsetup.postfix_service.finish_interrupted_drain", lambda system, state: None)
        # Postfix runs once an invoke-rc.d start of it succeeded
        monkeypatch.setattr("mailsetup.postfix_service.running", lambda system: (
            rc == 0 and ["invoke-rc.d", "postfix", "start"] in self.calls))


def test_postfix_without_configuration_is_started_after_apply_and_the_report_says_so(scratch, monkeypatch):
    from mailsetup.core import report
    os.unlink(scratch.main_cf_path)  # installed as "No configuration": its postinst did not start it
    services = Services(scratch, monkeypatch)
    outcome = core.apply(settings(), services.system)
    assert outcome.postfix == "started"
    assert services.calls[-1] == ["invoke-rc.d", "postfix", "start"]
    assert ["postfix", "check"] in services.calls  # checked before it is started
    text = report.render(settings(), outcome)
    assert "Postfix was started" in text and "not running" not in text


def test_a_start_refused_by_policy_rc_d_is_reported_as_not_running(scratch, monkeypatch):
    os.unlink(scratch.main_cf_path)
    services = Services(scratch, monkeypatch, rc=101)
    assert core.apply(settings(), services.system).postfix == "not running"


def test_a_configured_postfix_that_is_stopped_is_not_started(scratch, monkeypatch):
    services = Services(scratch, monkeypatch)
    assert core.apply(settings(), services.system).postfix == "not running"
    assert not [argv for argv in services.calls if argv[0] == "invoke-rc.d"]
