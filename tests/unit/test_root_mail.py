"""Where mail for root, postmaster and abuse ends up, followed through the maps
Postfix would use (postmap -q / postalias -q on the built tables), before and
after mailsetup-imap, with the core's own domain as a mailbox domain and without."""

import dataclasses
import re
import subprocess

import pytest

from mailsetup.core import apply as core

from mailsetup.imap import apply as imap_core
from mailsetup.core.components import aliases as alias_table
from mailsetup.imap.settings import ImapSettings
from mailsetup.postfix_tools import Postconf
from mailsetup.core.settings import CoreSettings

CORE_ANSWERS = {
    "mail_domain": "example.test", "hostname": "mail.example.test", "mailer_type": "internet",
    "relayhost": "", "other_destinations": "", "mynetworks": "127.0.0.0/8",
    "message_size_limit": "20", "admin_user": "alice", "aliases": "webmaster: alice",
    "inet_protocols": "ipv4", "recipient_delimiter": "+",
}
ACCOUNTS = {"alice"}  # the Unix accounts of the simulated machine
CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
KEY = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"


def _lookup(system, command, key, maps):
    for spec in re.split(r"[\s,]+", maps or ""):
        if not spec:
            continue
        # no proxymap here: the table itself, as proxymap would open it
        proc = subprocess.run([command, "-c", system.postfix_config_dir, "-q", key, spec.removeprefix("proxy:")],
                              capture_output=True, text=True, check=False)
        if proc.returncode == 0:
            return [t.strip() for t in proc.stdout.strip().split(",") if t.strip()]
    return None


def deliveries(system, address, depth=0):
    """The final destinations of address, roughly as Postfix resolves it: virtual
    aliases, then mailbox domains, local domains (aliases, then accounts), remote."""
    assert depth < 20, "alias loop"
    keys = ["myorigin", "mydestination", "alias_maps", "virtual_alias_maps",
            "virtual_mailbox_domains", "virtual_mailbox_maps"]
    main = Postconf(system.postfix_config_dir).explicit(keys)
    if "@" not in address:  # append_at_myorigin
        address = f"{address}@{open(system.mailname_path).read().strip()}"
    local, _, domain = address.rpartition("@")
    virtual = _lookup(system, "postmap", address, main["virtual_alias_maps"])
    if virtual and virtual != [address]:
        return [d for target in virtual for d in deliveries(system, target, depth + 1)]
    if main["virtual_mailbox_domains"] and _lookup(system, "postmap", domain, main["virtual_mailbox_domains"]):
        found = _lookup(system, "postmap", address, main["virtual_mailbox_maps"])
        return [("mailbox", address)] if found else [("bounce", address)]
    if domain in re.split(r"[\s,]+", main["mydestination"]):
        targets = _lookup(system, "postalias", local, main["alias_maps"])
        if targets:
            return [d for target in targets for d in deliveries(system, target, depth + 1)]
        return [("account", local)] if local in ACCOUNTS else [("bounce", address)]
    return [("remote", address)]


@pytest.fixture
def system(scratch, tmp_path):
    system = dataclasses.replace(scratch, imap_state_dir=str(tmp_path / "imap-state"),
                                 dovecot_conf_dir=str(tmp_path / "dovecot"), vmail_dir=str(tmp_path / "vmail"))
    core.apply(CoreSettings.from_answers(CORE_ANSWERS, lambda name: False), system)
    (tmp_path / "cert.pem").write_text(CERT)
    (tmp_path / "key.pem").write_text(KEY)
    return system


def with_mailboxes(system, tmp_path, domains):
    imap_core.apply(ImapSettings.from_answers(
        {"domains": domains, "tls_cert": str(tmp_path / "cert.pem"), "tls_key": str(tmp_path / "key.pem")},
        core_hostname="mail.example.test"), system, dovecot_version="2.3")


ADDRESSES = ("root", "postmaster", "root@example.test", "postmaster@example.test",
             "root@mail.example.test", "postmaster@localhost", "webmaster@mail.example.test")


def test_without_mailboxes_root_and_postmaster_reach_the_admin_once(system):
    for address in ADDRESSES + ("webmaster", "abuse@example.test"):
        expected = [("bounce", "abuse@example.test")] if address.startswith("abuse") else [("account", "alice")]
        assert deliveries(system, address) == expected, address


@pytest.mark.parametrize("domains", ["example.test", "example.org", "example.test example.org"])
def test_with_mailbox_domains_root_postmaster_and_abuse_reach_the_admin_once(system, tmp_path, domains):
    with_mailboxes(system, tmp_path, domains)
    addresses = ADDRESSES + tuple(f"{name}@{d}" for d in domains.split() for name in ("root", "postmaster", "abuse"))
    for address in addresses:
        assert deliveries(system, address) == [("account", "alice")], address


def test_the_table_names_the_host_for_local_targets(system):
    table = alias_table.parse(open(system.aliases_path, "rb").read())
    assert table["root"] == ["alice@mail.example.test"]
    assert table["postmaster"] == ["root@mail.example.test"]
    assert table["webmaster"] == ["alice@mail.example.test"]


def test_render_keeps_mail_addresses_and_qualifies_local_names():
    settings = CoreSettings.from_answers(dict(CORE_ANSWERS, aliases="sales: alice bob@example.net"),
                                         lambda name: False)
    assert b"sales: alice@mail.example.test, bob@example.net\n" in alias_table.render(settings)


def _readback(text, myhostname="mail.example.test"):
    return alias_table.Aliases.answers_from_system({"text": text.encode(), "myhostname": myhostname})


def test_readback_gives_the_bare_local_names():
    answers = _readback("postmaster: root@mail.example.test\nroot: alice@mail.example.test\n"
                        "sales: alice@mail.example.test, bob@example.net, carol@localhost\n")
    assert answers == {"admin_user": "alice", "aliases": "sales: alice bob@example.net carol"}


def test_readback_of_a_hand_edit_without_a_host():
    assert _readback("postmaster: root\nroot: bob\n") == {"admin_user": "bob", "aliases": ""}


def test_readback_after_myhostname_was_changed_by_hand():
    # The table still names the old host; its postmaster line says which host that was.
    answers = _readback("postmaster: root@mail.example.test\nroot: alice@mail.example.test\n",
                        myhostname="mx.example.test")
    assert answers["admin_user"] == "alice"


def test_readback_keeps_an_address_elsewhere():
    assert _readback("root: alice@example.net\n")["admin_user"] == "alice@example.net"


def test_readback_after_apply_gives_what_was_applied(system):
    from_system = dict(core.answers_from_system(system))
    assert ("aliases", "alice") in from_system["admin_user"]
    assert ("aliases", "webmaster: alice") in from_system["aliases"]
