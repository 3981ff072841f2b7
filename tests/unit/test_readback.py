"""Reading main.cf back into the questions on a host without a domain name
(`hostname` = vm): Postfix's own postinst writes `myhostname = vm`, which is no
valid answer and must not replace the machine's default (<host>.localdomain)."""

from mailsetup.core import configure

from mailsetup.core import apply as core
from mailsetup.postfix_tools import Postconf
from mailsetup.core.settings import CoreSettings, valid_on_its_own


class FakeQuestions:
    """The debconf questions of the core as readback() sees them."""

    def __init__(self, values=None, seen=()):
        self.values = {f"mailsetup/{q}": v for q, v in (values or {}).items()}
        self.seen_questions = set(seen)

    def seen(self, question):
        return question in self.seen_questions

    def get(self, name):
        return self.values.get(name, "")

    def set(self, question, value):
        self.values[f"mailsetup/{question}"] = value


def postfix_postinst_on_vm(system):
    """What Postfix's postinst writes on a host named vm."""
    Postconf(system.postfix_config_dir).change({"myhostname": "vm", "mydestination": "$myhostname, vm, localhost"})


def test_an_invalid_main_cf_value_is_not_taken_before_the_first_apply():
    from_system = {"hostname": [("main.cf", "vm")], "mynetworks": [("main.cf", "127.0.0.0/8")]}
    changes = configure.readback_changes(from_system, None, seen={}, valid=valid_on_its_own)
    assert changes == {"mynetworks": "127.0.0.0/8"}


def test_a_valid_main_cf_value_is_taken_before_the_first_apply():
    from_system = {"hostname": [("main.cf", "mx.example.org")]}
    changes = configure.readback_changes(from_system, None, seen={}, valid=valid_on_its_own)
    assert changes == {"hostname": "mx.example.org"}


def test_after_the_first_apply_a_hand_edit_is_taken_even_when_invalid():
    # The admin sees it in the dialog, with why it is refused.
    from_system = {"hostname": [("main.cf", "vm")]}
    changes = configure.readback_changes(from_system, {"hostname": "vm.localdomain"}, seen={},
                                         valid=valid_on_its_own)
    assert changes == {"hostname": "vm"}


def test_readback_leaves_the_default_on_a_host_without_a_domain_name(scratch):
    postfix_postinst_on_vm(scratch)
    questions = FakeQuestions({"hostname": "vm.localdomain", "mail_domain": "localdomain"})
    configure.readback(questions, scratch)
    assert questions.values["mailsetup/hostname"] == "vm.localdomain"
    assert questions.values["mailsetup/mail_domain"] == "localdomain"
    # The answers the config script ends with are valid: an unattended install works.
    answers = {q: questions.get(f"mailsetup/{q}") for q in ("hostname", "mail_domain")}
    assert CoreSettings.from_answers(dict(BASE, **answers), lambda name: False).hostname == "vm.localdomain"


def test_readback_empties_a_stale_invalid_value_so_the_default_is_computed(scratch):
    # "vm" taken from main.cf by an earlier version, in a run that then failed.
    postfix_postinst_on_vm(scratch)
    questions = FakeQuestions({"hostname": "vm"})
    configure.readback(questions, scratch)
    assert questions.values["mailsetup/hostname"] == ""


def test_a_preseeded_or_applied_value_is_never_emptied():
    assert configure.stale_defaults({"hostname": "vm"}, None, seen={"hostname": True}) == []
    assert configure.stale_defaults({"hostname": "vm"}, {"hostname": "vm.localdomain"}, seen={}) == []
    assert configure.stale_defaults({"hostname": "vm", "mail_domain": "localdomain"}, None, seen={}) == [
        "hostname"]


def test_the_machine_defaults_without_a_domain_name_are_valid_answers():
    assert valid_on_its_own("hostname", "vm.localdomain")
    assert valid_on_its_own("mail_domain", "localdomain")
    assert not valid_on_its_own("hostname", "vm")


def test_readback_after_apply_on_vm_gives_what_was_applied(scratch):
    postfix_postinst_on_vm(scratch)
    settings = CoreSettings.from_answers(dict(BASE, hostname="vm.localdomain", mail_domain="localdomain"),
                                         lambda name: False)
    core.apply(settings, scratch)
    questions = FakeQuestions(settings.to_answers())
    configure.readback(questions, scratch)
    assert {q: questions.get(f"mailsetup/{q}") for q in settings.to_answers()} == settings.to_answers()


BASE = {
    "mail_domain": "example.test", "hostname": "mail.example.test", "mailer_type": "internet",
    "relayhost": "", "other_destinations": "", "mynetworks": "127.0.0.0/8",
    "message_size_limit": "20", "admin_user": "alice", "aliases": "", "inet_protocols": "ipv4",
    "recipient_delimiter": "+",
}
