"""Entry point for the maintainer scripts: the dispatch to each package's
configure module (core/, imap/, filter/configure.py), the exit status and the
one-line error.

    python3 -m mailsetup.maintainer readback    (from config, before asking)
    python3 -m mailsetup.maintainer configure   (from postinst configure)
    python3 -m mailsetup.maintainer check QUESTION VALUE [QUESTION=VALUE...]
                                                (from config, after each answer)
    python3 -m mailsetup.maintainer imap-readback|imap-configure|filter-configure|webmail-configure
                                                (the same for mailsetup-imap, -filter, -webmail)
    python3 -m mailsetup.maintainer reapply-core (from mailsetup-imap's postrm)

All but check are started by a /bin/sh script that sourced confmodule. Exit
status 1 with one line on stderr means an answer was refused or the apply
failed; in both cases the files are as they were.

check talks no debconf and changes nothing: exit 0 when VALUE is a good
answer to QUESTION (such as mailsetup/hostname), 1 with why not on stdout (one
line, the "expected ..." text) when it is refused, 2 when it cannot tell
(usage, an unknown question). The QUESTION=VALUE pairs are the other answers
it depends on: mailsetup/mailer_type for mailsetup/relayhost,
mailsetup/admin_user for mailsetup/aliases.
"""

import importlib
import sys

from mailsetup.errors import MailsetupError
from mailsetup.i18n import _
from mailsetup.system import System
from mailsetup.validate import InvalidAnswer

# command -> (module, function); a package's module is imported only when its
# command runs (from its own maintainer scripts). The function is given the
# debconf questions and the System, or only the System for reapply-core: it runs
# from mailsetup-imap's postrm after the package's questions are gone.
COMMANDS = {
    "readback": ("mailsetup.core.configure", "readback"),
    "configure": ("mailsetup.core.configure", "configure"),
    "imap-readback": ("mailsetup.imap.configure", "readback"),
    "imap-configure": ("mailsetup.imap.configure", "configure"),
    # mydestination takes mailsetup-imap's domains back.
    "reapply-core": ("mailsetup.reapply", "reapply_core"),
    "filter-configure": ("mailsetup.filter.configure", "configure"),
    "webmail-configure": ("mailsetup.webmail.configure", "configure"),
}
WITHOUT_DEBCONF = ("reapply-core",)

# The owner of a question ("owner/name") -> the module that checks its answers.
CHECKERS = {
    "mailsetup": "mailsetup.core.configure",
    "mailsetup-imap": "mailsetup.imap.configure",
    "mailsetup-filter": "mailsetup.filter.configure",
    "mailsetup-webmail": "mailsetup.webmail.configure",
}


def check_answer(question, value, others, system):
    """Refuse value as the answer to question ("owner/name") with InvalidAnswer, as
    the postinst would. others: the answers it depends on ("owner/name" -> text).
    Only reads the system. KeyError for a question it does not know."""
    owner = question.partition("/")[0]
    importlib.import_module(CHECKERS[owner]).check_answer(question, value, others, system)


def check(args, system):
    """The check command; returns its exit status."""
    if len(args) < 2 or any("=" not in arg for arg in args[2:]):
        print(_("usage: {command}").format(
            command="python3 -m mailsetup.maintainer check QUESTION VALUE [QUESTION=VALUE...]"), file=sys.stderr)
        return 2
    question, value = args[0], args[1]
    others = dict(arg.split("=", 1) for arg in args[2:])
    try:
        check_answer(question, value, others, system)
    except InvalidAnswer as invalid:
        print(" ".join(invalid.expected.splitlines()))
        return 1
    except KeyError:
        print(_("mailsetup: no such question: {question}").format(question=question), file=sys.stderr)
        return 2
    except Exception as err:  # cannot tell: the postinst checks again
        print(f"mailsetup: {err}", file=sys.stderr)
        return 2
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["check"]:
        return check(argv[1:], System())
    if len(argv) != 1 or argv[0] not in COMMANDS:
        print(_("usage: {command}").format(command="python3 -m mailsetup.maintainer " + "|".join(list(COMMANDS) + ["check"])),
              file=sys.stderr)
        return 2
    system = System()
    module, function = COMMANDS[argv[0]]
    try:
        command = getattr(importlib.import_module(module), function)
        if argv[0] in WITHOUT_DEBCONF:
            command(system)
        else:
            from mailsetup.debconf_io import Questions
            command(Questions(), system)
    except MailsetupError as err:
        print(f"mailsetup: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        # Failed before anything was changed (reading the system): still one line.
        print(f"mailsetup: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
