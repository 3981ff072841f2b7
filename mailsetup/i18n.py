"""Translations of the messages of mailsetup (GNU gettext, domain "mailsetup").

    from mailsetup.i18n import _, ngettext
    _("expected a domain name such as {example}").format(example="example.org")

The catalogues are po/*.po, compiled at package build time into
/usr/share/locale/LANG/LC_MESSAGES/mailsetup.mo. From the source tree, point
MAILSETUP_LOCALEDIR at a directory of compiled catalogues (tests do).

The language is chosen the way debconf chooses the language of its templates
(Debconf::Template): the languages in LANGUAGE first, then the locale that
LC_ALL / LC_MESSAGES / LANG select, if the C library has it. So the report and
the error line printed by the maintainer helper come in the language of the
debconf dialog. Without any of these variables (or with the C locale and no
LANGUAGE) the messages stay in English.

The catalogue is looked up at the first message, not at import, and reset()
makes the next message look again (for tests that change the environment).
"""

import gettext
import locale
import os

DOMAIN = "mailsetup"
LOCALEDIR = "/usr/share/locale"
LOCALEDIR_ENV = "MAILSETUP_LOCALEDIR"

_translation = None


def localedir():
    return os.environ.get(LOCALEDIR_ENV) or LOCALEDIR


def languages():
    """The languages to try, in order, as debconf picks them."""
    wanted = [lang for lang in os.environ.get("LANGUAGE", "").split(":") if lang]
    # The locale as the C library resolves it: a locale that is not installed
    # (locale-gen) counts as C, as it does for debconf. Queried and put back,
    # so the process's own locale settings are left alone.
    try:
        previous = locale.setlocale(locale.LC_MESSAGES)
        try:
            current = locale.setlocale(locale.LC_MESSAGES, "")
        finally:
            locale.setlocale(locale.LC_MESSAGES, previous)
    except locale.Error:
        current = "C"
    if current not in ("C", "POSIX") and not current.startswith("C."):
        wanted.append(current)
    return wanted


def translation():
    global _translation
    if _translation is None:
        langs = languages()
        if langs:
            _translation = gettext.translation(DOMAIN, localedir=localedir(), languages=langs, fallback=True)
        else:
            _translation = gettext.NullTranslations()
    return _translation


def reset():
    """Choose the catalogue again at the next message (after the environment changed)."""
    global _translation
    _translation = None


def _(message):
    return translation().gettext(message)


def ngettext(singular, plural, n):
    return translation().ngettext(singular, plural, n)
