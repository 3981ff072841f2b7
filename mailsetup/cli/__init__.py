"""The runtime command `mailsetup`; it never reads debconf.

main() builds the parser from the commands of the package `mailsetup`
(status in cli/status.py, dns in dns/cli.py) and the command groups of the
other packages that are installed (OPTIONAL_GROUPS: imap/cli.py for
mailsetup-imap, filter/cli.py for mailsetup-filter), each added by its
module's register(subparsers). What they share is in cli/common.py, which
imports none of them: no group imports this module, so there is no cycle.
"""

import argparse
import importlib
import os
import sys

from mailsetup.cli import common
from mailsetup.cli.common import EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, HelpFormatter, Tools, import_present
from mailsetup.errors import MailsetupError
from mailsetup.i18n import _
from mailsetup.system import System

__all__ = ["EXIT_OK", "EXIT_PROBLEM", "EXIT_USAGE", "CORE_GROUPS", "OPTIONAL_GROUPS", "build_parser", "main"]

# The commands of the package `mailsetup`, in the order of --help. Imported when the parser is
# built: dns/cli.py imports cli/common.py, which runs this package's __init__ first.
CORE_GROUPS = ("mailsetup.cli.status", "mailsetup.dns.cli")
# The command groups of the other binary packages: their module, the commands it adds
# (its COMMANDS; named here too, for when it is missing) and the line to say then. That line
# is the one the commands say when the package is installed but not set up, and so is the
# exit status (EXIT_PROBLEM): the command line was right, the system lacks the package.
OPTIONAL_GROUPS = (
    ("mailsetup.imap.cli", ("domain", "mailbox", "alias", "list", "import"),
     lambda: _("mailboxes are not set up: install mailsetup-imap first (apt install mailsetup-imap)")),
    ("mailsetup.filter.cli", ("access",),
     lambda: _("mailsetup-filter is not set up: install it first (apt install mailsetup-filter)")),
)


def present_groups():
    """The modules of OPTIONAL_GROUPS whose package is installed, in that order."""
    return [module for module in (import_present(name) for name, _commands, _missing in OPTIONAL_GROUPS)
            if module is not None]


def missing_package(argv):
    """What to say when argv asks for a command of a package that is not installed, else None."""
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    for name, commands, missing in OPTIONAL_GROUPS:
        if command in commands and import_present(name) is None:
            return missing()
    return None


def build_parser():
    parser = argparse.ArgumentParser(prog="mailsetup", formatter_class=HelpFormatter, add_help=False,
                                     description=_("Show and manage the mail server set up by mailsetup."))
    # Translators: title of the list of commands (such as "status") in --help.
    sub = parser.add_subparsers(dest="command", required=True, title=_("commands"))
    common.options(parser)
    for module in [importlib.import_module(name) for name in CORE_GROUPS] + present_groups():
        module.register(sub)
    return parser


def main(argv=None, tools=None):
    """tools: what the commands act on (a common.Tools, or the one a group names); tests pass their own."""
    argv = sys.argv[1:] if argv is None else list(argv)
    missing = missing_package(argv)
    if missing:
        print(f"mailsetup: {missing}", file=sys.stderr)
        return EXIT_PROBLEM
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return EXIT_USAGE if exit_.code else EXIT_OK
    try:
        return args.func(args, tools or getattr(args, "make_tools", Tools)(System()))
    except BrokenPipeError:
        # `mailsetup status | head`: the reader has all it wanted.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except (MailsetupError, OSError) as err:
        print(f"mailsetup: {err}", file=sys.stderr)
        return EXIT_PROBLEM
