"""End-to-end: a person at the debconf dialog.

The real interactive frontend (readline, DEBIAN_PRIORITY=low so that every
question shows) is driven through a pseudo-terminal (tests/e2e/dialog.py):
the person reads each question, types an answer or presses Enter to keep the
default shown on the input line.

Which path asks the questions: the base root has apt-utils, so on
`apt-get install` dpkg-preconfigure runs the config scripts (Postfix's, then
ours) before anything is unpacked, when our Python helper cannot check the
answers yet; our postinst then validates them and, for a refused one, shows
mailsetup/invalid_answer and asks again.  On `dpkg-reconfigure` the config
script runs with the package installed and checks each answer right after it
is typed (python3 -m mailsetup.maintainer check): a refused one is explained
and asked again before the next question.

Questions are recognised by their short description on the prompt line and
the start of their long description shown just before it, both read from
debian/mailsetup.templates, or for Ukrainian from debian/po/uk.po.
"""

import os
import re

import pytest

from .dialog import converse, download, use_gnu_readline
from .testbed import APT
from .steps import token, require

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
APT_INSTALL = APT + " install mailsetup"


# ---------------------------------------------------------------------------
# The texts the person sees
# ---------------------------------------------------------------------------

def read_templates():
    """question -> {"short", "first" (first paragraph of the long
    description), "choices" (Choices-C list, for selects)}."""
    out = {}
    blocks = []
    for name in ("mailsetup.templates", "mailsetup-imap.templates"):
        with open(os.path.join(TOP, "debian", name)) as f:
            blocks += f.read().strip().split("\n\n")
    for block in blocks:
        fields, current = {}, None
        for line in block.split("\n"):
            if line.startswith(" ") and current:
                fields[current].append(line[1:])
            else:
                key, _, value = line.partition(":")
                current = key.lstrip("_")
                fields[current] = [value.strip()]
        name = fields["Template"][0].split("/", 1)[1]
        desc = fields["Description"]
        first = []
        for line in desc[1:]:
            if line.strip() == "." or line.startswith(" "):
                break   # end of paragraph, or a verbatim line
            first.append(line.strip())
        choices = [c.strip() for c in fields.get("Choices-C", [""])[0].split(",") if c.strip()]
        out[name] = {"short": desc[0], "first": " ".join(first), "choices": choices}
    return out


def read_po(path):
    """msgid -> msgstr of a .po file (no plural forms, no contexts)."""
    entries, key, parts = {}, None, {}

    def unquote(s):
        return s.strip()[1:-1].replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")

    def flush():
        if "msgid" in parts and parts["msgid"]:
            entries[parts["msgid"]] = parts.get("msgstr", "")

    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("msgid "):
                flush()
                parts, key = {"msgid": unquote(line[6:])}, "msgid"
            elif line.startswith("msgstr "):
                key = "msgstr"
                parts[key] = unquote(line[7:])
            elif line.startswith('"') and key:
                parts[key] += unquote(line)
        flush()
    return entries


TEMPLATES = read_templates()
UK = read_po(os.path.join(TOP, "debian", "po", "uk.po"))


def texts(question, lang="en"):
    """(short description, start of the long description) as shown."""
    t = TEMPLATES[question]
    short, first = t["short"], t["first"]
    if lang == "uk":
        # a paragraph with verbatim lines is one msgid, lines joined by "\n"
        short = UK[short]
        first = next(UK[msgid] for msgid in UK if msgid.startswith(first))
    return short, first[:60]


def choice(question, value):
    """The number the person types for a select value."""
    return str(TEMPLATES[question]["choices"].index(value) + 1)


def rules_for(answers, lang="en"):
    """converse() rules for our questions: name -> answer (None: Enter)."""
    rules = []
    for name, answer in answers.items():
        short, first = texts(name, lang)
        rules.append((name, re.escape(short), first, answer))
    return rules


def asked(dialog):
    return [name for name, _, _, _ in dialog.asked if name]


def report(dialog):
    lines = ["--- questions (rule, prompt line, answer sent) ---"]
    lines += ["%-20s %-70r %r" % (name, prompt, answer)
              for name, prompt, _, answer in dialog.asked]
    return "\n".join(lines) + "\n" + dialog.tail(120)


def mail_to_root_reaches(bed, user, domain):
    """Start Postfix, send to root over SMTP, wait for the mailbox, stop."""
    mark = token("dialog")
    bed.start_postfix()
    try:
        bed.smtp_send("someone@example.org", "root@" + domain, mark, subject=mark)
        bed.wait_for_mail(user, mark)
    finally:
        bed.stop_postfix(check=False)


def prepared(bed, *extra):
    """Term::ReadLine::Gnu installed, mailsetup (and `extra`) downloaded."""
    use_gnu_readline(bed)
    download(bed, "mailsetup", *extra)
    return bed


# ---------------------------------------------------------------------------
# English: install answering everything, reconfigure, reconfigure Postfix
# ---------------------------------------------------------------------------

FIRST = {
    "mail_domain": "example.test",
    "hostname": "mail.example.test",
    "mailer_type": choice("mailer_type", "internet"),
    "other_destinations": "example.net",
    "mynetworks": "127.0.0.0/8 [::1]/128 192.0.2.0/24",
    "message_size_limit": "20",
    "admin_user": "alice",
    "aliases": "webmaster: alice",
    "inet_protocols": choice("inet_protocols", "ipv4"),
    "recipient_delimiter": "-",
}


class TestDialog:

    @pytest.fixture(scope="class")
    def bed(self, new_testbed):
        return prepared(new_testbed(private_archives=True))

    @pytest.fixture(scope="class")
    def state(self, bed):
        return {}

    def test_install_answering_every_question(self, bed, state):
        d = converse(bed, APT_INSTALL, rules_for(FIRST))
        info = report(d)
        assert d.wait() == 0, "apt-get install mailsetup failed\n" + info
        expected = [q for q in FIRST]   # relayhost is not asked for "internet"
        assert sorted(asked(d)) == sorted(expected), info
        assert asked(d) == [q for q in TEMPLATES if q in FIRST], "questions out of order\n" + info
        got = {k: bed.postconf(k) for k in ("myhostname", "mydomain", "mynetworks",
                                            "message_size_limit", "inet_protocols",
                                            "recipient_delimiter", "relayhost")}
        assert got == {"myhostname": "mail.example.test", "mydomain": "example.test",
                       "mynetworks": "127.0.0.0/8 [::1]/128 192.0.2.0/24",
                       "message_size_limit": str(20 * 1024 * 1024), "inet_protocols": "ipv4",
                       "recipient_delimiter": "-", "relayhost": ""}, info
        assert "example.net" in bed.postconf("mydestination"), info
        assert bed.read_file("/etc/mailname").strip() == "example.test"
        state["installed"] = True

    def test_mail_to_root_and_alias_reaches_the_admin(self, bed, state):
        require(state, "installed")
        mark = token("dialog")
        bed.start_postfix()
        try:
            bed.smtp_send("someone@example.org", ["root@example.test", "webmaster@example.net"],
                          mark, subject=mark)
            bed.wait_for_mail("alice", mark)
        finally:
            bed.stop_postfix(check=False)
        assert bed.mailbox("alice").count(mark) >= 2, "one of root/webmaster did not arrive"

    def test_reconfigure_to_smarthost_sets_relayhost(self, bed, state):
        require(state, "installed")
        rules = rules_for({"mailer_type": choice("mailer_type", "smarthost"),
                           "relayhost": "[relay.example.test]:587"})
        d = converse(bed, "dpkg-reconfigure mailsetup", rules)
        info = report(d)
        assert d.wait() == 0, "dpkg-reconfigure mailsetup failed\n" + info
        assert "relayhost" in asked(d), "the relay host question was not asked\n" + info
        # every question is asked again, offering the current answer
        offered = [prompt for _, prompt, _, _ in d.asked]
        for question, value in (("hostname", "mail.example.test"), ("admin_user", "alice"),
                                ("message_size_limit", "20")):
            line = "%s %s" % (texts(question)[0], value)
            assert line in offered, "%r not offered\n%s" % (line, info)
        got = {k: bed.postconf(k) for k in ("relayhost", "myhostname", "message_size_limit")}
        assert got == {"relayhost": "[relay.example.test]:587",
                       "myhostname": "mail.example.test",
                       "message_size_limit": str(20 * 1024 * 1024)}, info
        state["smarthost"] = True

    # What dpkg-reconfigure postfix must not change (alias_maps is compared
    # by meaning below).
    KEPT = ("myhostname", "mydomain", "myorigin", "mydestination", "relayhost", "mynetworks",
            "message_size_limit", "inet_interfaces", "inet_protocols", "recipient_delimiter")

    def test_reconfigure_postfix_pressing_enter_keeps_settings(self, bed, state):
        require(state, "smarthost")
        before = {k: bed.postconf(k) for k in self.KEPT}
        dest_before = bed.postconf("mydestination", effective=True)
        d = converse(bed, "dpkg-reconfigure postfix", [])
        info = report(d)
        assert d.wait() == 0, "dpkg-reconfigure postfix failed\n" + info
        prompts = [prompt for _, prompt, _, _ in d.asked]
        assert len(prompts) >= 5 and any("mail configuration type" in p for p in prompts), (
            "Postfix's questions were not shown\n" + info)
        after = {k: bed.postconf(k) for k in self.KEPT}
        assert after == before, info

        expand = bed.run("postconf -xh mydestination").stdout.strip()
        assert set(re.split(r"[\s,]+", expand)) - {""} == {
            "mail.example.test", "example.test", "localhost", "example.net"}, (
            "mydestination was %r, now %r" % (dest_before, bed.postconf("mydestination")))
        alias_maps = re.split(r"[\s,]+", bed.postconf("alias_maps"))
        assert alias_maps[0] == "hash:/etc/mailsetup/aliases", alias_maps
        state["postfix_reconfigured"] = True

    def test_mail_to_root_still_reaches_the_admin(self, bed, state):
        require(state, "postfix_reconfigured")
        mail_to_root_reaches(bed, "alice", "example.test")

    # Every core question, Enter unless given: the current answers stay.
    CORE = ("mail_domain", "hostname", "mailer_type", "relayhost", "other_destinations", "mynetworks",
            "message_size_limit", "admin_user", "aliases", "inet_protocols", "recipient_delimiter")

    def reconfigure(self, bed, **answers):
        rules = rules_for(dict({q: None for q in self.CORE}, **answers))
        d = converse(bed, "dpkg-reconfigure mailsetup", rules)
        info = report(d)
        assert d.wait() == 0, "dpkg-reconfigure mailsetup failed\n" + info
        return d, info

    def test_bad_host_name_is_refused_right_after_it_is_typed(self, bed, state):
        require(state, "installed")
        d, info = self.reconfigure(bed, hostname=["bad_host!", "mail.example.test"])
        # refused before the next question: asked again right away
        assert asked(d)[:4] == ["mail_domain", "hostname", "hostname", "mailer_type"], info
        hostname_asks = [(shown, answer) for name, _, shown, answer in d.asked if name == "hostname"]
        assert [a for _, a in hostname_asks] == ["bad_host!", "mail.example.test"], info
        explanation = " ".join(hostname_asks[1][0].split())
        for needed in (TEMPLATES["invalid_answer"]["short"], '"bad_host!"', "fully qualified host name"):
            assert needed in explanation, "%r not shown right after bad_host!\n%s" % (needed, info)
        assert bed.postconf("myhostname") == "mail.example.test", info


# ---------------------------------------------------------------------------
# An invalid answer: explained, asked again
# ---------------------------------------------------------------------------

class TestInvalidAnswer:

    @pytest.fixture(scope="class")
    def bed(self, new_testbed):
        return prepared(new_testbed(private_archives=True))

    def test_invalid_hostname_is_explained_and_asked_again(self, bed):
        # On apt-get install the answers are typed under dpkg-preconfigure,
        # before the helper is unpacked: the postinst refuses bad_host! and
        # asks again (the dialog test above has the check right after typing).
        answers = dict(FIRST, hostname=["bad_host!", "mail.example.test"])
        d = converse(bed, APT_INSTALL, rules_for(answers))
        info = report(d)
        assert d.wait() == 0, "apt-get install mailsetup failed\n" + info
        hostname_asks = [(shown, answer) for name, _, shown, answer in d.asked
                         if name == "hostname"]
        assert [a for _, a in hostname_asks] == ["bad_host!", "mail.example.test"], (
            "the host name question was not asked again after bad_host!\n" + info)
        explanation = " ".join(hostname_asks[1][0].split())
        title = TEMPLATES["invalid_answer"]["short"]
        for needed in (title, '"bad_host!"', "fully qualified host name"):
            assert needed in explanation, (
                "%r not shown before the question was asked again\n%s" % (needed, info))
        assert bed.postconf("myhostname") == "mail.example.test", info


# ---------------------------------------------------------------------------
# Ukrainian
# ---------------------------------------------------------------------------

class TestUkrainian:

    @pytest.fixture(scope="class")
    def bed(self, new_testbed):
        bed = prepared(new_testbed(private_archives=True), "mailsetup-imap")
        bed.apt_install("locales", options="--no-install-recommends")
        bed.run("echo 'uk_UA.UTF-8 UTF-8' > /etc/locale.gen && locale-gen")
        return bed

    def test_whole_dialog_in_ukrainian(self, bed):
        env = {"LANG": "uk_UA.UTF-8", "LANGUAGE": "uk", "LC_ALL": None}
        d = converse(bed, APT_INSTALL, rules_for(FIRST, lang="uk"), env=env)
        info = report(d)
        assert d.wait() == 0, "apt-get install mailsetup failed\n" + info
        # every question recognised by its Ukrainian texts
        assert sorted(asked(d)) == sorted(FIRST), info
        seen = " ".join(d.transcript.split())
        for english in (TEMPLATES["mail_domain"]["first"], TEMPLATES["mailer_type"]["short"]):
            assert UK[english] in seen, "Ukrainian text missing: %r\n%s" % (UK[english], info)
            assert english not in seen, "English text shown: %r\n%s" % (english, info)
        for label in ("Internet site", "Internet with smarthost"):   # select choices
            assert UK[label] in seen, info
        # the closing report of the Python helper follows the dialog's language
        assert "mailsetup: поштовий сервер налаштовано." in seen, info
        assert "the mail server is configured" not in seen, info
        assert bed.postconf("myhostname") == "mail.example.test", info
        assert bed.postconf("mydomain") == "example.test", info

    def test_mailboxes_dialog_in_ukrainian(self, bed):
        # mailsetup-imap's questions, Enter at each: the mail domain is offered
        # as the domain with mailboxes, the self-signed certificate for TLS (so
        # no certificate files are asked for).
        env = {"LANG": "uk_UA.UTF-8", "LANGUAGE": "uk", "LC_ALL": None}
        answers = {"domains": None, "tls_source": None}
        d = converse(bed, APT + " install mailsetup-imap", rules_for(answers, lang="uk"), env=env)
        info = report(d)
        assert d.wait() == 0, "apt-get install mailsetup-imap failed\n" + info
        assert sorted(asked(d)) == sorted(answers), info
        seen = " ".join(d.transcript.split())
        for english in (TEMPLATES["domains"]["short"], TEMPLATES["tls_source"]["first"]):
            assert UK[english] in seen, "Ukrainian text missing: %r\n%s" % (UK[english], info)
            assert english not in seen, "English text shown: %r\n%s" % (english, info)
        assert "mailsetup-imap: поштові скриньки налаштовано." in seen, info
        assert "mailboxes are set up" not in seen, info
        assert bed.postconf("virtual_mailbox_domains").endswith("/etc/mailsetup/sqlite/domains.cf"), info
        assert "example.test" in bed.run("mailsetup domain list").stdout.split(), info
