"""The webmail settings: one field per debconf question of mailsetup-webmail."""

import os
import urllib.parse
from dataclasses import dataclass

from mailsetup import validate
from mailsetup.i18n import _
from mailsetup.names import domain_problem
from mailsetup.validate import InvalidAnswer

OWNER = "mailsetup-webmail"
# Question names (without the owner prefix), in the order they are asked.
WEBMAIL_QUESTIONS = ("site", "language")

# Roundcube's translations, one directory per language (uk_UA, en_US, ...).
LOCALIZATION_DIR = "/usr/share/roundcube/program/localization"
# The path under the server's name the webmail has by default (see default_site).
DEFAULT_PATH = "/webmail/"
# The system's language, as Debian's locales package records it.
SYSTEM_LOCALE = "/etc/default/locale"
FALLBACK_LANGUAGE = "en_US"


def _refuse(question, value, expected):
    raise InvalidAnswer(question, value, expected, owner=OWNER)


def default_site(hostname):
    """The webmail on the server's own name, under /webmail/: that name already
    resolves, and it is the name in the certificate the mail services present, so a
    browser accepts the same certificate; webmail.DOMAIN would need a DNS record and
    a certificate of its own. The root of the name serves the clients'
    autoconfiguration and redirects to the webmail."""
    return f"https://{hostname}{DEFAULT_PATH}"


@dataclass(frozen=True)
class Site:
    host: str   # lower case, no trailing dot
    path: str   # begins and ends with "/"

    @property
    def url(self):
        return f"https://{self.host}{self.path}"


def site(value):
    """An https address on a host name, with an optional path: https://mail.example.org/webmail/."""
    expected = _("expected an https address such as {example}").format(example=default_site("mail.example.org"))
    try:
        text = validate.plain_text("site", value, expected)
    except InvalidAnswer as err:
        _refuse("site", value, err.expected)
    if "://" not in text:
        text = "https://" + text
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port
    except ValueError:
        _refuse("site", value, expected)
    if parts.scheme.lower() != "https":
        _refuse("site", value, validate.also(expected, _("the webmail is served over HTTPS only")))
    if parts.query or parts.fragment or parts.username or parts.password or port is not None:
        _refuse("site", value, validate.also(expected, _("without a port, user, query or fragment")))
    host = (parts.hostname or "").rstrip(".")
    problem = domain_problem(host, 1) if host else _("it has no host name")
    if problem:
        _refuse("site", value, validate.also(expected, problem))
    path = parts.path or "/"
    segments = [s for s in path.split("/") if s]
    if any(s in (".", "..") or not all(c.isalnum() or c in "-_." for c in s) for s in segments):
        _refuse("site", value, validate.also(expected, _("a path of letters, digits, '-', '_' and '.' only")))
    return Site(host, "/" + "".join(s + "/" for s in segments))


def installed_languages(directory=LOCALIZATION_DIR):
    """The languages Roundcube has a translation for."""
    try:
        return {name for name in os.listdir(directory) if os.path.isdir(os.path.join(directory, name))}
    except OSError:
        return set()


def language(value, languages):
    """One of Roundcube's languages (uk_UA, en_US, ...); languages: those installed."""
    text = value.strip()
    if text not in languages:
        sample = ", ".join(x for x in ("uk_UA", "en_US", "en_GB") if x in languages) or "en_US"
        _refuse("language", value, _("expected one of Roundcube's languages, such as {examples}").format(
            examples=sample))
    return text


def system_language(languages, locale_file=SYSTEM_LOCALE):
    """The webmail's default language: the system's (LANG in /etc/default/locale),
    where Roundcube has it: uk_UA.UTF-8 gives uk_UA; else en_US."""
    lang = ""
    try:
        with open(locale_file, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _sep, val = line.strip().partition("=")
                if key.strip() == "LANG":
                    lang = val.strip().strip('"\'')
    except OSError:
        pass
    base = lang.split(".")[0].split("@")[0]
    for candidate in (base, base.split("_")[0]):
        if candidate in languages:
            return candidate
    # Roundcube names most languages with their country: uk -> uk_UA.
    prefix = base.split("_")[0] + "_"
    matches = sorted(x for x in languages if base and x.startswith(prefix))
    return matches[0] if matches else FALLBACK_LANGUAGE


@dataclass(frozen=True)
class WebmailSettings:
    site: Site
    language: str
    # The answers as given: an empty one follows the server's name or language.
    answers: tuple = ()

    @classmethod
    def from_answers(cls, answers, languages, hostname, locale_file=SYSTEM_LOCALE):
        """Validate the answers (question -> text); the first bad one raises InvalidAnswer.
        An empty site is default_site(hostname) (hostname: the server's name as the core
        applied it), an empty language the system's (system_language)."""
        site_text = answers.get("site", "").strip()
        language_text = answers.get("language", "").strip()
        return cls(site=site(site_text) if site_text else site(default_site(hostname)),
                   language=language(language_text, languages) if language_text
                   else system_language(languages, locale_file),
                   answers=(("site", site_text), ("language", language_text)))

    def to_answers(self):
        return dict(self.answers)
