import pytest

from mailsetup import validate
from mailsetup.core.settings import CoreSettings
from mailsetup.validate import InvalidAnswer

GOOD_ANSWERS = {
    "mail_domain": "Example.ORG",
    "hostname": "mail.example.org.",
    "mailer_type": "smarthost",
    "relayhost": "[smtp.example.net]:587",
    "other_destinations": "example.net, example.com example.net",
    "mynetworks": "127.0.0.0/8 [::1]/128, 192.168.1.0/24",
    "message_size_limit": "25",
    "admin_user": "alice",
    "aliases": "webmaster: alice, sales: bob carol@example.net, team: webmaster",
    "inet_protocols": "ipv4",
    "recipient_delimiter": "+",
}


def known(name):
    return name in ("bob", "nobody")


def test_good_answers_are_normalised():
    settings = CoreSettings.from_answers(GOOD_ANSWERS, known)
    assert settings.mail_domain == "example.org"
    assert settings.hostname == "mail.example.org"
    assert settings.relayhost == "[smtp.example.net]:587"
    assert settings.other_destinations == ("example.net", "example.com")
    assert settings.mynetworks == ("127.0.0.0/8", "[::1]/128", "192.168.1.0/24")
    assert settings.message_size_limit == 25
    assert settings.aliases == (("webmaster", ("alice",)), ("sales", ("bob", "carol@example.net")),
                                ("team", ("webmaster",)))


def test_answers_round_trip():
    settings = CoreSettings.from_answers(GOOD_ANSWERS, known)
    assert CoreSettings.from_answers(settings.to_answers(), known) == settings


def test_machine_without_domain_name_can_use_localdomain():
    settings = CoreSettings.from_answers(dict(GOOD_ANSWERS, mail_domain="localdomain",
                                              hostname="vm.localdomain"), known)
    assert (settings.mail_domain, settings.hostname) == ("localdomain", "vm.localdomain")


def test_relayhost_is_dropped_for_internet_site():
    answers = dict(GOOD_ANSWERS, mailer_type="internet", relayhost="[smtp.example.net]:587")
    assert CoreSettings.from_answers(answers, known).relayhost == ""


@pytest.mark.parametrize("value", ["smtp.example.org", "[smtp.example.org]", "smtp.example.org:25",
                                   "[192.0.2.1]:2525", "[ipv6:2001:db8::1]:587", "relay"])
def test_good_relayhosts(value):
    assert validate.relayhost(value, "satellite")


BAD = [
    ("mail_domain", ""),
    ("mail_domain", "localhost"),
    ("mail_domain", "exa mple.org"),
    ("mail_domain", "приклад.укр"),
    ("mail_domain", "-bad.example.org"),
    ("mail_domain", "example.123"),
    ("mail_domain", "a" * 64 + ".org"),
    ("mail_domain", "example.org\nmydestination = evil"),
    ("mail_domain", "x." * 600 + "org"),
    ("hostname", "bad_host!"),
    ("hostname", "mail"),
    ("hostname", "mail.example.org;rm -rf /"),
    ("hostname", "mail.$(reboot).org"),
    ("mailer_type", "Internet Site"),
    ("mailer_type", ""),
    ("relayhost", ""),
    ("relayhost", "smtp://relay.example.org"),
    ("relayhost", "[relay.example.org]:0"),
    ("relayhost", "[relay.example.org]:99999"),
    ("relayhost", "relay.example.org:port"),
    ("relayhost", "[300.1.1.1]"),
    ("relayhost", "relay example org"),
    ("other_destinations", "example.net, bad_domain"),
    ("mynetworks", ""),
    ("mynetworks", "0.0.0.0/0"),
    ("mynetworks", "192.168.1.1/24"),
    ("mynetworks", "10.0.0.0/33"),
    ("mynetworks", "::1/128"),
    ("mynetworks", "[::]/0"),
    ("mynetworks", "localnet"),
    ("message_size_limit", ""),
    ("message_size_limit", "0"),
    ("message_size_limit", "-5"),
    ("message_size_limit", "10MB"),
    ("message_size_limit", "99999"),
    ("message_size_limit", "١٠"),
    ("admin_user", ""),
    ("admin_user", "root"),
    ("admin_user", "Alice"),
    ("admin_user", "alice smith"),
    ("admin_user", "a" * 40),
    ("admin_user", "аліса"),
    ("aliases", "webmaster alice"),
    ("aliases", "webmaster:"),
    ("aliases", "root: bob"),
    ("aliases", "a: b, b: a"),
    ("aliases", "a: a"),
    ("aliases", "sales: nosuchuser"),
    ("aliases", "sales: bob, sales: alice"),
    ("aliases", "sales: bob@"),
    ("aliases", "sales: bob@localhost"),
    ("aliases", "sales: |/bin/sh"),
    ("inet_protocols", "ipv5"),
    ("recipient_delimiter", "#"),
    ("recipient_delimiter", "++++++"),
]


@pytest.mark.parametrize("question,value", BAD)
def test_bad_answer_gives_one_clear_line(question, value):
    answers = dict(GOOD_ANSWERS, **{question: value})
    with pytest.raises(InvalidAnswer) as caught:
        CoreSettings.from_answers(answers, known)
    line = str(caught.value)
    assert caught.value.question == question
    assert line.startswith(f'mailsetup/{question} ("{validate.question_label("mailsetup", question)}"): ')
    assert "is not valid: expected" in line
    assert "\n" not in line


def test_error_line_shows_the_value():
    with pytest.raises(InvalidAnswer) as caught:
        validate.hostname("bad_host!")
    assert str(caught.value) == ('mailsetup/hostname ("Host name of the mail server"): "bad_host!" is not '
                                 'valid: expected a fully qualified '
                                 'host name such as mail.example.org; "bad_host!" is not a valid label '
                                 '(letters, digits and inner hyphens, 1-63 characters)')


def test_control_characters_are_shown_escaped():
    with pytest.raises(InvalidAnswer) as caught:
        validate.mail_domain("example.org\nx")
    assert '"example.org\\nx"' in str(caught.value)


def test_alias_loop_through_several_names_is_found():
    with pytest.raises(InvalidAnswer, match="loop"):
        validate.aliases("a: b, b: c, c: a", admin="alice", is_local_name=known)


def test_domain_list_gives_each_name_once_in_lower_case_without_trailing_dot():
    names = validate.domain_list("zones", " Example.ORG., b.example.net example.org,,B.Example.Net ",
                                 "expected names", "mailsetup-test")
    assert names == ("example.org", "b.example.net")
    assert validate.domain_list("zones", "  ", "expected names", "mailsetup-test") == ()
    assert validate.domain_list("zones", "relay", "expected names", min_labels=1) == ("relay",)


@pytest.mark.parametrize("value,problem", [
    ("example.org bad_name.org", "bad_name.org: \"bad_name\" is not a valid label"),
    ("example", "example: the name must contain a dot"),
    ("example.org\nx", "expected names, without control characters or line breaks"),
    ("own.example.org", "own.example.org is refused here"),
])
def test_domain_list_refuses_with_the_owner_and_what_is_wrong(value, problem):
    def name_problem(name):
        return f"{name} is refused here" if name == "own.example.org" else None

    with pytest.raises(InvalidAnswer) as caught:
        validate.domain_list("zones", value, "expected names", "mailsetup-test", name_problem=name_problem)
    assert (caught.value.owner, caught.value.question, caught.value.value) == ("mailsetup-test", "zones", value)
    assert caught.value.expected.startswith("expected names")
    assert problem in caught.value.expected
    assert str(caught.value).startswith("mailsetup-test/zones: ")
