"""The runtime command `mailsetup`: reads the system (main.cf, maps), never debconf."""

import argparse
import json
import os
import subprocess
import sys

from mailsetup.components import aliases as alias_table
from mailsetup.fileutil import read_bytes
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
        for _, _, files in os.walk(os.path.join(queue_directory, name)):
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
        print(f"Postfix is not configured: {status['main_cf']} does not exist.", file=out)
        return
    width = max(len(k) for k in status["settings"])
    print("Postfix settings in effect (main.cf):", file=out)
    for key, value in status["settings"].items():
        print(f"  {key.ljust(width)} = {value}", file=out)
    print(f"/etc/mailname: {status['mailname'] or '(missing)'}", file=out)
    print(f"Mail for root goes to: {', '.join(status['root_mail_to']) or '(not set by mailsetup)'}", file=out)
    for name, targets in status["aliases"].items():
        print(f"  alias {name}: {', '.join(targets)}", file=out)
    print(f"Postfix: {'running' if status['postfix_running'] else 'NOT running'}", file=out)
    print(f"Messages in the queue: {status['queue']}", file=out)


def cmd_status(args, system):
    status = collect_status(system)
    if args.json:
        json.dump(status, sys.stdout, indent=2)
        print()
    else:
        print_status(status, sys.stdout)
    healthy = status["configured"] and status["postfix_running"]
    return EXIT_OK if healthy else EXIT_PROBLEM


def build_parser():
    parser = argparse.ArgumentParser(prog="mailsetup", description="Show the mail server set up by mailsetup.")
    sub = parser.add_subparsers(dest="command", required=True)
    status = sub.add_parser("status", help="settings in effect, whether Postfix runs, queue size")
    status.add_argument("--json", action="store_true", help="machine-readable output")
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
    except (RuntimeError, OSError) as err:
        print(f"mailsetup: {err}", file=sys.stderr)
        return EXIT_PROBLEM
