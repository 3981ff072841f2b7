"""The runtime command `mailsetup`; it never reads debconf.

`mailsetup status` is here and only reads the system (main.cf, maps, the
services, /proc/net/tcp, rspamd's milter socket);
the commands that change domains, mailboxes, aliases and lists
(mailsetup-imap) are in cli_mailboxes.py.
"""

import argparse
import json
import os
import sys

from mailsetup import services

from mailsetup.filter import apply as filter_core
from mailsetup.core.components import aliases as alias_table
from mailsetup.errors import MailsetupError
from mailsetup.fileutil import read_bytes
from mailsetup.i18n import _
from mailsetup.imap.mailboxes import system as mailbox_system
from mailsetup.imap.mailboxes.store import FileStore
from mailsetup.system import System

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2

STATUS_KEYS = ("myhostname", "mydomain", "myorigin", "mydestination", "relayhost", "mynetworks",
               "inet_interfaces", "inet_protocols", "message_size_limit", "recipient_delimiter",
               "alias_maps")
QUEUE_DIRS = ("maildrop", "incoming", "active", "deferred", "hold")
# SMTP, POP3, IMAP, submissions, submission, IMAPS, POP3S.
MAIL_PORTS = (25, 110, 143, 465, 587, 993, 995)
PROC_NET_TCP = ("/proc/net/tcp", "/proc/net/tcp6")
TCP_LISTEN = "0A"  # the state column of /proc/net/tcp


def postfix_running(system):
    return services.of(system).running(services.POSTFIX)


def queue_size(queue_directory):
    """Messages waiting in Postfix's queues (counted on disk, so it works when Postfix is down)."""
    count = 0
    for name in QUEUE_DIRS:
        for _dir, _subdirs, files in os.walk(os.path.join(queue_directory, name)):
            count += len(files)
    return count


def dovecot_running(system):
    return services.of(system).running("dovecot")


def listening_ports(paths=None):
    """The mail ports (MAIL_PORTS) with a listening TCP socket, IPv4 or IPv6, from /proc/net/tcp*."""
    found = set()
    for path in paths or PROC_NET_TCP:
        data = read_bytes(path)
        for line in (data or b"").decode("ascii", "replace").splitlines()[1:]:
            # sl local_address rem_address st ...; local_address is HEXIP:HEXPORT
            fields = line.split()
            if len(fields) < 4 or fields[3] != TCP_LISTEN:
                continue
            try:
                port = int(fields[1].rpartition(":")[2], 16)
            except ValueError:
                continue
            if port in MAIL_PORTS:
                found.add(port)
    return sorted(found)


def count_mailboxes(system):
    """(domains, mailboxes) when mailsetup-imap is set up, else (None, None).

    Counted in the generated maps, which anyone may read (directory.json is root's only)."""
    if not mailbox_system.configured(system):
        return None, None
    mailboxes_map = FileStore(root=system.etc_dir).map_path("mailboxes")
    lines = (read_bytes(mailboxes_map) or b"").decode("utf-8", "replace").splitlines()
    mailboxes = sum(1 for line in lines if line.strip() and not line.startswith("#"))
    return len(system.virtual_domains()), mailboxes


def filter_status(system):
    """mailsetup-filter: whether rspamd runs and Postfix can reach its milter (only
    filter_configured, False, when mailsetup-filter is not set up)."""
    if not filter_core.configured(system):
        return {"filter_configured": False}
    running = services.of(system).running(filter_core.RSPAMD)
    path = filter_core.milter_path(system)
    if not filter_core.milter_checkable(path):  # its directory is for rspamd and Postfix only
        return {"filter_configured": True, "rspamd_running": running, "milter_socket": path,
                "milter_reachable": None, "milter_problem": None}
    problem = filter_core.milter_problem(path)
    return {"filter_configured": True, "rspamd_running": running, "milter_socket": path,
            "milter_reachable": problem is None, "milter_problem": problem}


def collect_status(system):
    domains, mailboxes = count_mailboxes(system)
    mail_service = {"dovecot_running": dovecot_running(system), "ports": listening_ports(),
                    "domains": domains, "mailboxes": mailboxes}
    if not system.postfix_installed():
        return {"configured": False, "main_cf": system.main_cf_path, **mail_service, "filter_configured": False}
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
        **mail_service,
        **filter_status(system),
    }


def print_status(status, out):
    if not status["configured"]:
        print(_("Postfix is not configured: {path} does not exist.").format(path=status["main_cf"]), file=out)
        print_mail_service(status, out)
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
    print_mail_service(status, out)


def print_mail_service(status, out):
    """Dovecot, the listening ports and the mailboxes."""
    mailboxes_set_up = status.get("domains") is not None
    # Dovecot only matters once mailsetup-imap set up mailboxes; say it runs whenever it does.
    if mailboxes_set_up or status.get("dovecot_running"):
        print(_("Dovecot: running") if status.get("dovecot_running") else _("Dovecot: NOT running"), file=out)
    if "ports" in status:
        # Translators: {ports} is a list of port numbers such as "25, 587", or "(none)".
        print(_("Listening mail ports: {ports}").format(
            ports=", ".join(str(p) for p in status["ports"]) or _("(none)")), file=out)
    if mailboxes_set_up:
        print(_("Mail domains: {domains}, mailboxes: {mailboxes}").format(
            domains=status["domains"], mailboxes=status["mailboxes"]), file=out)
    print_filter(status, out)


def print_filter(status, out):
    """rspamd and its milter socket, once mailsetup-filter is set up."""
    if not status.get("filter_configured"):
        return
    if not status["rspamd_running"]:
        print(_("Filter (rspamd): NOT running"), file=out)
    elif status["milter_reachable"] is None:
        print(_("Filter (rspamd): running (only root can check its milter socket)"), file=out)
    elif status["milter_reachable"]:
        print(_("Filter (rspamd): running, milter reachable"), file=out)
    else:
        print(_("Filter (rspamd): running, milter NOT reachable"), file=out)
    if status["milter_problem"] and status["rspamd_running"]:
        print(status["milter_problem"], file=out)


def cmd_status(args, tools):
    status = collect_status(tools.system)
    if args.json:
        json.dump(status, sys.stdout, indent=2)
        print()
    else:
        print_status(status, sys.stdout)
    healthy = status["configured"] and status["postfix_running"]
    if status.get("domains") is not None:  # mailboxes set up: Dovecot must run too
        healthy = healthy and status.get("dovecot_running")
    if status.get("filter_configured"):  # Postfix defers all mail while the filter is down
        healthy = healthy and status["rspamd_running"] and status["milter_reachable"] is not False
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
    # Imported here: cli_dns and cli_mailboxes build their commands with this module's helpers.
    from mailsetup.filter import cli as cli_access
    from mailsetup.dns import cli as cli_dns
    from mailsetup.imap import cli as cli_mailboxes
    parser = argparse.ArgumentParser(prog="mailsetup", formatter_class=HelpFormatter, add_help=False,
                                     description=_("Show and manage the mail server set up by mailsetup."))
    # Translators: title of the list of commands (such as "status") in --help.
    sub = parser.add_subparsers(dest="command", required=True, title=_("commands"))
    _options(parser)
    status = sub.add_parser("status", formatter_class=HelpFormatter, add_help=False,
                            help=_("settings in effect, whether Postfix runs, queue size"),
                            description=_("Show the settings in effect, whether Postfix and Dovecot run, the "
                                          "listening mail ports, the queue size, how many domains and "
                                          "mailboxes there are, and whether the filter (rspamd) works."))
    _options(status).add_argument("--json", action="store_true", help=_("machine-readable output"))
    status.set_defaults(func=cmd_status)
    cli_dns.register(sub)
    cli_mailboxes.register(sub)
    cli_access.register(sub)
    return parser


def main(argv=None, tools=None):
    """tools: what the commands act on (cli_mailboxes.Tools); tests pass their own."""
    from mailsetup.imap.cli import Tools
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return EXIT_USAGE if exit_.code else EXIT_OK
    try:
        return args.func(args, tools or Tools(System()))
    except BrokenPipeError:
        # `mailsetup status | head`: the reader has all it wanted.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except (MailsetupError, OSError) as err:
        print(f"mailsetup: {err}", file=sys.stderr)
        return EXIT_PROBLEM
