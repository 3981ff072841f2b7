"""The runtime command `mailsetup`: reads the system (main.cf, maps), never debconf."""

import argparse
import json
import os
import sys

from mailsetup.components import aliases as alias_table
from mailsetup.fileutil import read_bytes
from mailsetup.i18n import _
from mailsetup.system import System

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2

STATUS_KEYS = ("myhostname", "mydomain", "myorigin", "mydestination", "relayhost", "mynetworks",
               "inet_interfaces", "inet_protocols", "message_size_limit", "recipient_delimiter",
               "alias_maps")
QUEUE_DIRS = ("maildrop", "incoming", "active", "deferred", "hold")


def postfix_running(system):
    return system.run(["postfix", "status"], check=False).returncode == 0


def queue_size(queue_directory):
    """Messages waiting in Postfix's queues (counted on disk, so it works when Postfix is down)."""
    count = 0
    for name in QUEUE_DIRS:
        for _dir, _subdirs, files in os.walk(os.path.join(queue_directory, name)):
            count += len(files)
    return count


def collect_status(system):
    if not system.postfix_installed():
        return {"configured": False, "main_cf": system.main_cf_path}
    postconf = system.postconf()
    settings = postconf.effective(list(STATUS_KEYS) + ["queue_directory"])
    table = alias_table.parse(read_bytes(system.aliases_path) or b"")
    return {
        "configured": True,
        "settings": {k: settings[k] for k in STATUS_KEYS},
        "mailname": (read_bytes(system.mailname_path) or b"").decode().strip(),
        "root_mail_to": table.get("root", []),
        "aliases": {k: v for k, v in table.items() if k not in ("root", "postmaster")},
        "postfix_running": postfix_running(system),
        "queue": queue_size(settings["queue_directory"]),
    }


def print_status(status, out):
    if not status["configured"]:
        print(_("Postfix is not configured: {path} does not exist.").format(path=status["main_cf"]), file=out)
        return
    width = max(len(k) for k in status["settings"])
    print(_("Postfix settings in effect (main.cf):"), file=out)
    for key, value in status["settings"].items():
        print(f"  {key.ljust(width)} = {value}", file=out)
    # Translators: shown after "/etc/mailname:" when the file does not exist.
    print("/etc/mailname: " + (status["mailname"] or _("(missing)")), file=out)
    print(_("Mail for root goes to: {targets}").format(
        targets=", ".join(status["root_mail_to"]) or _("(not set by mailsetup)")), file=out)
    for name, targets in status["aliases"].items():
        print("  " + _("alias {name}: {targets}").format(name=name, targets=", ".join(targets)), file=out)
    print(_("Postfix: running") if status["postfix_running"] else _("Postfix: NOT running"), file=out)
    print(_("Messages in the queue: {count}").format(count=status["queue"]), file=out)


def cmd_status(args, system):
    status = collect_status(system)
    if args.json:
        json.dump(status, sys.stdout, indent=2)
        print()
    else:
        print_status(status, sys.stdout)
    healthy = status["configured"] and status["postfix_running"]
    return EXIT_OK if healthy else EXIT_PROBLEM


class HelpFormatter(argparse.HelpFormatter):
    """argparse's layout, with its "usage:" in the user's language."""

    def add_usage(self, usage, actions, groups, prefix=None):
        if prefix is None:
            # Translators: the start of the usage line of --help; keep the space at the end.
            prefix = _("usage: ")
        super().add_usage(usage, actions, groups, prefix)


def _options(parser):
    """The group of options of parser, with a translated -h/--help as its first."""
    # Translators: title of the list of options in --help.
    options = parser.add_argument_group(_("options"))
    options.add_argument("-h", "--help", action="help", help=_("show this help message and exit"))
    return options


def build_parser():
    parser = argparse.ArgumentParser(prog="mailsetup", formatter_class=HelpFormatter, add_help=False,
                                     description=_("Show the mail server set up by mailsetup."))
    # Translators: title of the list of commands (such as "status") in --help.
    sub = parser.add_subparsers(dest="command", required=True, title=_("commands"))
    _options(parser)
    status = sub.add_parser("status", formatter_class=HelpFormatter, add_help=False,
                            help=_("settings in effect, whether Postfix runs, queue size"),
                            description=_("Show the settings in effect, whether Postfix runs and the queue size."))
    _options(status).add_argument("--json", action="store_true", help=_("machine-readable output"))
    status.set_defaults(func=cmd_status)
    return parser


def main(argv=None):
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return EXIT_USAGE if exit_.code else EXIT_OK
    try:
        return args.func(args, System())
    except BrokenPipeError:
        # `mailsetup status | head`: the reader has all it wanted.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except (RuntimeError, OSError) as err:
        print(f"mailsetup: {err}", file=sys.stderr)
        return EXIT_PROBLEM
