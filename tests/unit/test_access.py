"""The access lists (mailsetup access): what a user types, what Postfix and
rspamd get, and refusals that change nothing."""

import dataclasses
import json
import os

import pytest

from mailsetup.filter import access

from mailsetup import cli

from mailsetup.core import apply as core

from mailsetup.filter import apply as filter_core
from mailsetup.filter.access import AccessError, AccessLists, Entry, parse_entry
from mailsetup.cli.common import Tools
from mailsetup.filter.components.access_maps import AccessMaps
from mailsetup.filter.settings import FilterSettings
from mailsetup.postfix_tools import Postconf
from mailsetup.core.settings import CoreSettings

from test_filter_apply import CORE_ANSWERS


@pytest.mark.parametrize("typed, kind, value", [
    ("203.0.113.5", "ip", "203.0.113.5"),
    ("203.0.113.5/32", "ip", "203.0.113.5"),
    ("198.51.100.0/24", "ip", "198.51.100.0/24"),
    ("2001:DB8::/48", "ip", "2001:db8::/48"),
    ("2001:db8::1", "ip", "2001:db8::1"),
    ("Example.ORG.", "domain", "example.org"),
    ("Someone@Example.org", "address", "someone@example.org"),
])
def test_entries_are_recognised_and_written_one_way(typed, kind, value):
    assert parse_entry(typed) == Entry(kind, value)


@pytest.mark.parametrize("typed, says", [
    ("198.51.100.7/24", "did you mean 198.51.100.0/24?"),
    ("0.0.0.0/0", "too wide"),
    ("2000::/8", "too wide"),
    ("localhost", "expected an IP address or network"),
    ("exa mple.org", "expected an IP address or network"),
    ("someone@", "expected an IP address or network"),
    ("a@b@example.org", "not one address"),
    ("bad_name!.org", "not a valid label"),
    ("203.0.113.300", "expected an IP address or network"),
])
def test_wrong_entries_are_refused_with_one_line(typed, says):
    with pytest.raises(AccessError) as err:
        parse_entry(typed)
    assert says in str(err.value) and "\n" not in str(err.value)


def lists(*pairs):
    result = AccessLists()
    for action, text in pairs:
        result.set(parse_entry(text), action)
    return result


def body(data):
    return [line for line in data.decode().splitlines() if not line.startswith("#")]


def test_client_table_puts_the_most_specific_network_first():
    """cidr: tables stop at the first match: a denied host inside an allowed
    network must come before the network."""
    table = lists(("allow", "198.51.100.0/24"), ("deny", "198.51.100.7"), ("allow", "198.51.0.0/16")).client_table()
    assert body(table) == ["198.51.100.7 REJECT Access denied by the administrator",
                           "198.51.100.0/24 OK", "198.51.0.0/16 OK"]


def test_sender_table_and_rspamd_maps():
    result = lists(("deny", "spammer.test"), ("allow", "friend@spammer.test"), ("allow", "203.0.113.5"),
                   ("allow", "friend.test"))
    assert body(result.sender_table()) == ["friend.test OK", "spammer.test REJECT Sender blocked by the administrator",
                                           "friend@spammer.test OK"]
    assert body(result.rspamd_map("ip")) == ["203.0.113.5"]
    assert body(result.rspamd_map("domain")) == ["friend.test"]   # the denied domain is not there
    assert body(result.rspamd_map("address")) == ["friend@spammer.test"]


def test_tables_are_read_back_as_written():
    result = lists(("deny", "203.0.113.9"), ("allow", "2001:db8::/48"), ("deny", "evil.test"),
                   ("allow", "pal@client.test"))
    assert access.parse_tables(result.client_table(), result.sender_table()) == result


def test_a_damaged_table_line_is_named():
    with pytest.raises(AccessError) as err:
        access.parse_tables(b"203.0.113.9 MAYBE\n", b"")
    assert str(err.value).startswith("client-access.cidr:1: ")


# ---------------------------------------------------------------- the command

@pytest.fixture
def filter_system(scratch, tmp_path):
    system = dataclasses.replace(scratch, filter_state_dir=str(tmp_path / "filter-state"),
                                 dkim_dir=str(tmp_path / "dkim"), rspamd_local_dir=str(tmp_path / "local.d"))
    core_settings = CoreSettings.from_answers(CORE_ANSWERS, lambda name: False)
    core.apply(core_settings, system)
    filter_core.apply(FilterSettings.from_answers({"greylisting": "true", "dnsbl_zones": "bl.example"}),
                      core_settings, system)
    return system


def run(system, *argv):
    return cli.main(["access", *argv], Tools(system))


def files(system):
    return {p: open(p, "rb").read() for p in AccessMaps(system).files()}


def test_install_wires_the_empty_tables_into_postfix_and_rspamd(filter_system):
    maps = AccessMaps(filter_system)
    main = Postconf(filter_system.postfix_config_dir).explicit(["smtpd_client_restrictions",
                                                               "smtpd_sender_restrictions"])
    # the allow/deny table before the blocklists: an allowed client skips them
    assert main["smtpd_client_restrictions"] == (
        f"permit_mynetworks, permit_sasl_authenticated, check_client_access cidr:{maps.client_table}, "
        "reject_rbl_client bl.example")
    assert main["smtpd_sender_restrictions"].endswith(f"check_sender_access texthash:{maps.sender_table}")
    assert all(body(data) == [] for data in files(filter_system).values())
    local = filter_system.rspamd_local_dir
    greylist = open(os.path.join(local, "greylist.conf")).read()
    assert f'whitelisted_ip = "{maps.rspamd_map("ip")}";' in greylist
    assert '"MAILSETUP_ALLOW_FROM_DOMAIN"' in greylist
    assert f'map = "{maps.rspamd_map("address")}";' in open(os.path.join(local, "multimap.conf")).read()


def test_deny_allow_remove_and_list(filter_system, capsys):
    assert run(filter_system, "deny", "203.0.113.9", "spammer.test") == 0
    assert capsys.readouterr().out.splitlines() == ["203.0.113.9: denied (client IP)",
                                                    "spammer.test: denied (sender domain)"]
    assert run(filter_system, "allow", "spammer.test", "pal@client.test") == 0
    assert capsys.readouterr().out.splitlines() == ["spammer.test: allowed (was denied)",
                                                    "pal@client.test: allowed (sender address)"]
    assert run(filter_system, "remove", "203.0.113.9") == 0
    capsys.readouterr()
    assert run(filter_system, "list", "--json") == 0
    assert json.loads(capsys.readouterr().out) == [
        {"action": "allow", "kind": "domain", "entry": "spammer.test"},
        {"action": "allow", "kind": "address", "entry": "pal@client.test"}]
    maps = AccessMaps(filter_system)
    assert body(open(maps.client_table, "rb").read()) == []
    assert body(open(maps.rspamd_map("domain"), "rb").read()) == ["spammer.test"]


def test_a_bad_entry_among_good_ones_changes_nothing(filter_system, capsys):
    run(filter_system, "deny", "203.0.113.9")
    before = files(filter_system)
    assert run(filter_system, "deny", "198.51.100.1", "198.51.100.7/24") == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        'mailsetup: "198.51.100.7/24" is not a network address: did you mean 198.51.100.0/24?']
    assert files(filter_system) == before


def test_removing_what_is_not_there_is_refused(filter_system, capsys):
    assert run(filter_system, "remove", "203.0.113.77") == 1
    assert "203.0.113.77: not on the access lists" in capsys.readouterr().err


def test_the_same_entry_twice_writes_nothing(filter_system, capsys):
    run(filter_system, "allow", "203.0.113.5")
    before = {p: os.stat(p).st_mtime_ns for p in AccessMaps(filter_system).files()}
    assert run(filter_system, "allow", "203.0.113.5") == 0
    assert "203.0.113.5: already allowed" in capsys.readouterr().out
    assert {p: os.stat(p).st_mtime_ns for p in AccessMaps(filter_system).files()} == before


def test_without_mailsetup_filter_the_command_is_refused(scratch, capsys):
    assert cli.main(["access", "list"], Tools(scratch)) == 1
    assert "mailsetup-filter is not set up" in capsys.readouterr().err


def test_a_change_takes_the_access_lock_in_the_filter_state_dir(filter_system, monkeypatch):
    from mailsetup.filter import access_change
    lock = os.path.join(filter_system.filter_state_dir, ".access-lock")
    taken = []
    real = access_change.access_locked

    def watched(system):
        taken.append(system)
        return real(system)

    monkeypatch.setattr(access_change, "access_locked", watched)
    assert run(filter_system, "deny", "203.0.113.9") == 0
    assert taken == [filter_system]
    assert os.stat(lock).st_mode & 0o7777 == 0o600
