"""What the command groups of `mailsetup` share: the exit codes, the argparse
helpers that give every command the same translated --help, and Tools.

The groups (cli/status.py, dns/cli.py, imap/cli.py, filter/cli.py) import
this module; it imports none of them, and nothing of mailsetup-imap or
mailsetup-filter, so it works with only the package `mailsetup` installed.
"""

import argparse
import importlib
import json
import sys

from mailsetup.i18n import _

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2


def import_present(name):
    """The module name, or None when the binary package that ships it is not installed.

    Only a missing package (or module) counts as absent: any other ImportError raised
    inside it is a bug and propagates."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name and (name == err.name or name.startswith(err.name + ".")):
            return None
        raise


class Tools:
    """What a command acts on: the System. A package whose commands need more
    (mailsetup-imap: its store and password hasher) subclasses it and names the
    subclass with group(..., tools=...); main() then makes that one."""

    def __init__(self, system):
        self.system = system


class HelpFormatter(argparse.HelpFormatter):
    """argparse's layout, with its "usage:" in the user's language."""

    def add_usage(self, usage, actions, groups, prefix=None):
        if prefix is None:
            # Translators: the start of the usage line of --help; keep the space at the end.
            prefix = _("usage: ")
        super().add_usage(usage, actions, groups, prefix)


def options(parser):
    """The group of options of parser, with a translated -h/--help as its first."""
    # Translators: title of the list of options in --help.
    group = parser.add_argument_group(_("options"))
    group.add_argument("-h", "--help", action="help", help=_("show this help message and exit"))
    return group


def arguments(parser):
    """The group of positional arguments of parser, with a translated title."""
    # Translators: title of the list of positional arguments in --help.
    return parser.add_argument_group(_("arguments"))


def parser(sub, name, help_, description, tools=None):
    """A command of sub (the subparsers of `mailsetup` or of a group), without options yet.
    tools: the Tools class its commands need, when not the plain one."""
    result = sub.add_parser(name, formatter_class=HelpFormatter, add_help=False, help=help_,
                            description=description)
    if tools is not None:
        result.set_defaults(make_tools=tools)
    return result


def group(sub, name, help_, description, tools=None):
    """A command with subcommands of its own (domain, mailbox, access, ...): their subparsers."""
    result = parser(sub, name, help_, description, tools)
    # Translators: title of the list of commands (such as "add") in --help.
    commands = result.add_subparsers(dest="action", required=True, title=_("commands"))
    options(result)
    return commands


def command(commands, name, func, help_, description=None):
    """A subcommand that runs func(args, tools): (its group of arguments, its group of options)."""
    result = parser(commands, name, help_, description or help_[:1].upper() + help_[1:] + ".")
    positional = arguments(result)
    optional = options(result)
    result.set_defaults(func=func)
    return positional, optional


def json_option(group_of_options):
    group_of_options.add_argument("--json", action="store_true", help=_("machine-readable output"))


def dump_json(data, out=None):
    """data as the --json output: indented, then a newline."""
    out = out or sys.stdout
    json.dump(data, out, indent=2)
    print(file=out)
