"""Messages of the Python code in English and Ukrainian (gettext domain "mailsetup", po/)."""

import ast
import io
import os
import re
import subprocess

import pytest

from mailsetup import i18n, validate

from mailsetup import cli
from mailsetup.cli import status as cli_status

from mailsetup.core import report
from mailsetup.filter import report as filter_report
from mailsetup.imap import report as imap_report
from mailsetup.core.apply import Outcome
from mailsetup.core.settings import CoreSettings
from mailsetup.validate import InvalidAnswer

from test_validate import BAD, GOOD_ANSWERS, known

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PO_DIR = os.path.join(TOP, "po")
POT = os.path.join(PO_DIR, "mailsetup.pot")
UK_PO = os.path.join(PO_DIR, "uk.po")
# The same command as `make pot`.
XGETTEXT = ["xgettext", "--language=Python", "--keyword=_", "--from-code=UTF-8", "--add-comments=Translators"]
UK_PLURAL_FORMS = ("nplurals=3; plural=(n%10==1 && n%100!=11 ? 0 : n%10>=2 && n%10<=4 && "
                   "(n%100<10 || n%100>=20) ? 1 : 2);")


def parse_po(path):
    """(msgid, msgid_plural) -> {"msgstr": [...], "fuzzy": bool} for the live entries of a .po/.pot file.

    Entries are separated by blank lines, as xgettext and msgmerge write them.
    """
    entries = {}
    with open(path, encoding="utf-8") as f:
        blocks = f.read().split("\n\n")
    for block in blocks:
        fields, field, fuzzy = {}, None, False
        for line in block.splitlines():
            if line.startswith("#,"):
                fuzzy = fuzzy or "fuzzy" in line
            elif line.startswith("#"):
                continue  # comments, locations, obsolete entries (#~)
            elif line.startswith('"'):
                fields[field] += ast.literal_eval(line)
            else:
                field, _sep, text = line.partition(" ")
                fields[field] = ast.literal_eval(text)
        if "msgid" in fields:
            strs = [fields[k] for k in sorted(fields) if k.startswith("msgstr")]
            entries[(fields["msgid"], fields.get("msgid_plural"))] = {"msgstr": strs, "fuzzy": fuzzy}
    return entries


def messages(entries):
    return {key for key in entries if key[0]}  # without the header


@pytest.fixture(scope="session")
def localedir(tmp_path_factory):
    """po/uk.po compiled the way the package build does it."""
    top = tmp_path_factory.mktemp("locale")
    (top / "uk" / "LC_MESSAGES").mkdir(parents=True)
    subprocess.run(["msgfmt", "--check", "-o", str(top / "uk" / "LC_MESSAGES" / "mailsetup.mo"), UK_PO],
                   check=True)
    return str(top)


@pytest.fixture
def ukrainian(monkeypatch, localedir):
    monkeypatch.setenv(i18n.LOCALEDIR_ENV, localedir)
    monkeypatch.setenv("LANGUAGE", "uk")
    monkeypatch.setenv("LANG", "uk_UA.UTF-8")
    i18n.reset()


def refused(question, value):
    with pytest.raises(InvalidAnswer) as caught:
        CoreSettings.from_answers(dict(GOOD_ANSWERS, **{question: value}), known)
    return str(caught.value), caught.value


# --- the error line -------------------------------------------------------

def test_invalid_hostname_in_ukrainian(ukrainian):
    line, err = refused("hostname", "bad_host!")
    assert line.startswith('mailsetup/hostname («Мережеве ім’я поштового сервера»): "bad_host!" — '
                           'неприпустиме значення: очікується '), line
    assert "повне мережеве ім’я, наприклад mail.example.org" in line
    assert "\n" not in line
    # The part shown as ${problem} in the debconf dialog is Ukrainian too.
    assert err.expected.startswith("очікується ")


@pytest.mark.parametrize("question,value", BAD)
def test_every_refusal_is_ukrainian(ukrainian, question, value):
    line, err = refused(question, value)
    label = validate.question_label("mailsetup", question)
    assert line.startswith(f"mailsetup/{question} («{label}»): {validate.show(value)} — неприпустиме значення: "), line
    assert "\n" not in line
    for english in ("expected", " is not ", " must ", " such as ", " should "):
        assert english not in line, f"English left in: {line}"


def debian_templates():
    """owner/question -> short description, from debian/*.templates."""
    out = {}
    for name in sorted(os.listdir(os.path.join(TOP, "debian"))):
        if name.endswith(".templates"):
            with open(os.path.join(TOP, "debian", name), encoding="utf-8") as f:
                text = f.read()
            for question, short in re.findall(r"^Template: (\S+)\n(?:[A-Za-z_-]+:.*\n(?: .*\n)*)*?_Description: (.*)$",
                                              text, re.M):
                out[question] = short
    return out


def debconf_uk():
    """msgid -> msgstr of debian/po/uk.po (one-line entries)."""
    with open(os.path.join(TOP, "debian", "po", "uk.po"), encoding="utf-8") as f:
        return dict(re.findall(r'^msgid "(.+)"\nmsgstr "(.+)"$', f.read(), re.M))


def questions_with_labels():
    return [q for q in debian_templates() if q != "mailsetup/invalid_answer"]


def test_every_question_has_a_label():
    assert len(questions_with_labels()) == 28
    for question in questions_with_labels():
        assert validate.question_label(*question.split("/")) is not None, question


@pytest.mark.parametrize("question", questions_with_labels())
def test_the_label_is_the_dialogs_short_description(question):
    """The error line names the question as the dialog shows it, in English and Ukrainian."""
    short = debian_templates()[question]
    assert validate.question_label(*question.split("/")) == short.rstrip(":")


@pytest.mark.parametrize("question", questions_with_labels())
def test_the_ukrainian_label_is_the_dialogs_too(ukrainian, question):
    short = debian_templates()[question]
    assert validate.question_label(*question.split("/")) == debconf_uk()[short].rstrip(":")


def test_english_is_the_default():
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        assert name not in os.environ
    line, _err = refused("hostname", "bad_host!")
    assert line.startswith('mailsetup/hostname ("Host name of the mail server"): "bad_host!" is not valid: '
                           'expected a fully qualified host name')


def test_english_with_the_c_locale(monkeypatch, localedir):
    monkeypatch.setenv(i18n.LOCALEDIR_ENV, localedir)
    monkeypatch.setenv("LC_ALL", "C")
    monkeypatch.setenv("LANG", "C.UTF-8")
    line, _err = refused("hostname", "bad_host!")
    assert " is not valid: expected " in line


def test_language_wins_over_a_c_locale_as_in_debconf(monkeypatch, localedir):
    """debconf picks its templates from LANGUAGE even under LC_ALL=C; so do we."""
    monkeypatch.setenv(i18n.LOCALEDIR_ENV, localedir)
    monkeypatch.setenv("LC_ALL", "C")
    monkeypatch.setenv("LANGUAGE", "de:uk")
    assert i18n.languages() == ["de", "uk"]
    line, _err = refused("hostname", "bad_host!")
    assert "неприпустиме значення" in line


# --- the report, status and help ------------------------------------------

def test_report_in_ukrainian(ukrainian):
    settings = CoreSettings.from_answers(GOOD_ANSWERS, known)
    text = report.render(settings, Outcome(changed=["main.cf", "aliases"], postfix="reloaded"))
    lines = text.splitlines()
    assert lines[1] == "mailsetup: поштовий сервер налаштовано."
    assert "  Поштовий домен:" in text and "Сервер-посередник:" in text
    assert "Змінено:" in text and "main.cf, псевдоніми; Postfix перечитав налаштування." in text
    assert "Інтернет через сервер-посередник" in text
    assert "dpkg-reconfigure mailsetup" in text and "/var/mail/alice" in text and "25 МіБ" in text
    # values line up after the longest label
    facts = []
    for line in lines[2:]:
        if not line.startswith("  "):
            break
        if not line.startswith("  Пошту для root"):
            facts.append(line)
    assert len(facts) == 9, text
    starts = {len(line) - len(line.split(":", 1)[1].lstrip()) for line in facts}
    assert len(starts) == 1, text
    for english in ("Mail domain", "Changed", "To test", "nothing", "reloaded"):
        assert english not in text


def test_report_in_english_by_default():
    settings = CoreSettings.from_answers(GOOD_ANSWERS, known)
    text = report.render(settings, Outcome(changed=[], postfix="unchanged"))
    assert "mailsetup: the mail server is configured." in text
    assert "  Changed:            nothing; nothing needed to change." in text
    assert "To see them later:      mailsetup status" in text


def test_imap_report_in_english():
    from mailsetup.imap import apply as imap_core
    from mailsetup.imap.settings import ImapSettings
    settings = ImapSettings(("example.org", "example.net"), "/etc/ssl/certs/mail.pem", "/etc/ssl/private/mail.key")
    outcome = imap_core.Outcome(changed=["dovecot", "domains"], postfix="reloaded", dovecot="started", mailboxes=2,
                                directory="/var/lib/mailsetup-imap/directory")
    assert imap_report.render(settings, outcome, "mail.example.org") == """
mailsetup-imap: mailboxes are set up.
  Domains with mailboxes:   example.org example.net
  Mailboxes:                2
  Mailbox directory:        SQLite, in /var/lib/mailsetup-imap/directory
  Reading mail:             IMAP 143 (STARTTLS) and 993 (TLS); POP3 110 (STARTTLS) and 995 (TLS)
  Sending mail:             587 (STARTTLS) and 465 (TLS), with the mailbox address and password
  Filters:                  ManageSieve 4190 (STARTTLS), for filters and vacation replies
  Certificate:              /etc/ssl/certs/mail.pem
  Changed:                  Dovecot configuration, domains; Postfix was reloaded; Dovecot was started.
To add a mailbox:  mailsetup mailbox add alice@example.org
To test:           printf 'Subject: test\\n\\nhello\\n' | /usr/sbin/sendmail alice@example.org
                   then read it in a mail program: server mail.example.org, user name alice@example.org, IMAP port 993
To see them later: mailsetup status; mailsetup mailbox list
"""


def test_imap_report_suggests_adding_a_domain_only_when_there_is_none():
    from mailsetup.imap import apply as imap_core
    from mailsetup.imap.settings import ImapSettings
    outcome = imap_core.Outcome(changed=[], postfix="unchanged", dovecot="unchanged", mailboxes=0)
    with_domain = imap_report.render(ImapSettings(("example.test",), "/c.pem", "/c.key"), outcome)
    assert "mailsetup domain add" not in with_domain  # refused: "this domain already exists"
    assert "mailsetup mailbox add alice@example.test" in with_domain
    assert "then read it in a mail program, with alice@example.test as user name" in with_domain
    without = imap_report.render(ImapSettings((), "/c.pem", "/c.key"), outcome).splitlines()
    add_domain = without.index("To add a domain:   mailsetup domain add example.org")
    assert without[add_domain + 1] == "To add a mailbox:  mailsetup mailbox add alice@example.org"


def test_imap_report_in_ukrainian(ukrainian):
    from mailsetup.imap import apply as imap_core
    from mailsetup.imap.settings import ImapSettings
    outcome = imap_core.Outcome(changed=[], postfix="unchanged", dovecot="unchanged", mailboxes=0)
    text = imap_report.render(ImapSettings(("example.test",), "/c.pem", "/c.key"), outcome, "mail.example.test")
    assert "Додати поштову скриньку: mailsetup mailbox add alice@example.test" in text
    assert "сервер mail.example.test, ім’я користувача alice@example.test, порт IMAP 993" in text
    for english in ("To test", "then read", "user name"):
        assert english not in text


def test_filter_report_in_english():
    from mailsetup.filter import apply as filter_core
    from mailsetup.filter.settings import FilterSettings
    outcome = filter_core.Outcome(domains=("example.org",), postfix="unchanged", rspamd="unchanged")
    assert filter_report.render(FilterSettings(True, ("zen.spamhaus.org",)), outcome) == """
mailsetup-filter: the spam and forgery filter is set up.
  Signed with DKIM:   example.org
  New DKIM keys:      none
  Greylisting:        on
  DNS blocklists:     zen.spamhaus.org
  Virus scan:         off
  Changed:            nothing; nothing needed to change; rspamd needed no reload.
DNS records to publish:   mailsetup dns
To allow or deny senders: mailsetup access
To change the settings:   dpkg-reconfigure mailsetup-filter
"""


STATUS = {
    "configured": True,
    "settings": {"myhostname": "mail.example.org", "mynetworks": "127.0.0.0/8"},
    "mailname": "",
    "root_mail_to": ["alice"],
    "aliases": {"sales": ["bob"]},
    "postfix_running": False,
    "queue": 3,
}


def test_status_in_ukrainian(ukrainian):
    out = io.StringIO()
    cli_status.print_status(STATUS, out)
    text = out.getvalue()
    assert "Чинні налаштування Postfix (main.cf):" in text
    assert "  myhostname = mail.example.org" in text
    assert "/etc/mailname: (файлу немає)" in text
    assert "Пошту для root отримує: alice" in text
    assert "  псевдонім sales: bob" in text
    assert "Postfix: НЕ працює" in text
    assert "Листів у черзі: 3" in text


def test_status_json_keys_stay_english(ukrainian, capsys, monkeypatch):
    monkeypatch.setattr(cli_status, "collect_status", lambda system: STATUS)
    assert cli.main(["status", "--json"]) == cli.EXIT_PROBLEM
    assert '"postfix_running": false' in capsys.readouterr().out


def test_help_in_ukrainian(ukrainian):
    text = cli.build_parser().format_help()
    assert text.startswith("використання: mailsetup")
    assert "показати цю довідку й вийти" in text
    assert "чинні налаштування, чи працює Postfix" in text


# --- the catalogues -------------------------------------------------------

def test_pot_is_up_to_date(tmp_path):
    fresh = tmp_path / "mailsetup.pot"
    subprocess.run(XGETTEXT + ["--files-from=po/POTFILES", f"--output={fresh}"], cwd=TOP, check=True)
    missing = messages(parse_po(fresh)) - messages(parse_po(POT))
    stale = messages(parse_po(POT)) - messages(parse_po(fresh))
    assert not missing and not stale, (
        f"po/mailsetup.pot is out of date (run make pot): missing {sorted(missing)}, stale {sorted(stale)}")


def test_potfiles_lists_every_module_with_messages():
    with open(os.path.join(PO_DIR, "POTFILES")) as f:
        listed = {line.strip() for line in f if line.strip() and not line.startswith("#")}
    using = set()
    for folder, _dirs, files in os.walk(os.path.join(TOP, "mailsetup")):
        for name in files:
            path = os.path.join(folder, name)
            if name.endswith(".py") and re.search(r"^from mailsetup\.i18n import",
                                                  open(path, encoding="utf-8").read(), re.M):
                using.add(os.path.relpath(path, TOP))
    assert using <= listed, f"add to po/POTFILES: {sorted(using - listed)}"


def test_ukrainian_is_complete():
    pot = messages(parse_po(POT))
    uk = parse_po(UK_PO)
    assert pot, "no messages in po/mailsetup.pot"
    untranslated = [key for key in pot if key not in uk or not all(uk[key]["msgstr"])]
    fuzzy = [key for key in pot if key in uk and uk[key]["fuzzy"]]
    assert not untranslated, f"untranslated in po/uk.po (run make pot, then translate): {untranslated}"
    assert not fuzzy, f"fuzzy in po/uk.po: {fuzzy}"
    plural_forms = re.search(r"Plural-Forms: ([^\n]*)", uk[("", None)]["msgstr"][0]).group(1)
    assert plural_forms == UK_PLURAL_FORMS
    for key in pot:
        if key[1] is not None:
            assert len(uk[key]["msgstr"]) == 3, key


def test_units_are_written_the_same_way_in_questions_and_messages():
    """The message size is in MiB, in Ukrainian МіБ: in the debconf templates and
    their translation as in the messages (report, refusals)."""
    templates = open(os.path.join(TOP, "debian", "mailsetup.templates"), encoding="utf-8").read()
    assert "Maximum message size in MiB:" in templates
    for path in (UK_PO, os.path.join(TOP, "debian", "po", "uk.po")):
        with_unit = {key: entry for key, entry in parse_po(path).items() if "MiB" in key[0]}
        assert with_unit, path
        for key, entry in with_unit.items():
            text = " ".join(entry["msgstr"])
            assert "МіБ" in text and "MiB" not in text, (path, key, text)
        for msgid, _plural in parse_po(path):
            assert not re.search(r"\bMB\b|\bmegabytes?\b", msgid), (path, msgid)  # quotas' 500M is input syntax
        for entry in parse_po(path).values():
            assert not re.search(r"\b(Мб|МБ|мегабайт\w*)", " ".join(entry["msgstr"])), (path, entry)


def test_message_size_refusal_in_ukrainian(ukrainian):
    line, _err = refused("message_size_limit", "25M")
    assert "очікується ціле число МіБ від 1 до 2047, наприклад 25" in line, line


def test_msgfmt_check_is_clean():
    proc = subprocess.run(["msgfmt", "--check", "--statistics", "-o", os.devnull, UK_PO],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "fuzzy" not in proc.stderr and "untranslated" not in proc.stderr, proc.stderr


def test_filter_report_says_when_the_filter_does_not_work():
    from mailsetup.filter import apply as filter_core
    from mailsetup.filter.settings import FilterSettings
    settings = FilterSettings(True, ())
    broken = filter_core.Outcome(domains=("example.org",), rspamd="restarted", checked=True,
                                 problem="Milter socket /x: Postfix cannot connect (Permission denied)")
    assert ("  Filter:             NOT working, so Postfix defers mail (nothing is lost) until it does: "
            "Milter socket /x: Postfix cannot connect (Permission denied)\n") in filter_report.render(settings, broken)
    working = filter_core.Outcome(domains=("example.org",), rspamd="started", checked=True)
    assert ("  Filter:             working: rspamd runs and Postfix reaches its milter\n"
            in filter_report.render(settings, working))
    # Not checked (no services, as in a scratch directory): no such line.
    assert "Filter:" not in filter_report.render(settings, filter_core.Outcome(domains=("example.org",)))
