"""`mailsetup status`: what is in effect, read off the system, nothing changed.

The core's part is here: main.cf's keys, /etc/mailname, root's mail, whether
Postfix runs, the queue and the listening mail ports. Each other package that
is installed adds its own section (imap/status.py, filter/status.py), found by
SECTIONS; a section is a module with

    running(system) -> dict                        its daemons, shown before the ports
    collect(system, postfix_configured) -> dict    the rest (main.cf may not exist)
    print_running(status, out)
    print_details(status, out)
    healthy(status) -> bool             whether its part is well (status is the whole)

so the output keeps one order: core, daemons, ports, the packages' details.
"""

import json
import subprocess
import sys

from mailsetup import postfix_tools, services
from mailsetup.cli.common import EXIT_OK, EXIT_PROBLEM, dump_json, import_present, options, parser
from mailsetup.core.components import aliases as alias_table
from mailsetup.fileutil import read_bytes
from mailsetup.i18n import _

STATUS_KEYS = ("myhostname", "mydomain", "myorigin", "mydestination", "relayhost", "mynetworks",
               "inet_interfaces", "inet_protocols", "message_size_limit", "recipient_delimiter",
               "alias_maps")
# The status sections of the other packages, in the order they are shown; a missing one is left out.
SECTIONS = ("mailsetup.imap.status", "mailsetup.filter.status", "mailsetup.webmail.status")
# SMTP, HTTP, POP3, IMAP, HTTPS, submissions, submission, IMAPS, POP3S, ManageSieve.
MAIL_PORTS = (25, 80, 110, 143, 443, 465, 587, 993, 995, 4190)
PROC_NET_TCP = ("/proc/net/tcp", "/proc/net/tcp6")
TCP_LISTEN = "0A"  # the state column of /proc/net/tcp


def sections():
    """The modules of SECTIONS whose package is installed."""
    return [module for module in map(import_present, SECTIONS) if module is not None]


def postfix_running(system):
    return services.of(system).running(services.POSTFIX)


def queue_size(system):
    """Messages in Postfix's queues, as `postqueue -j` lists them (one JSON object a line;
    anyone may ask), or None when that is unknown: postqueue missing or failing (Postfix down)."""
    try:
        proc = subprocess.run(postfix_tools.postqueue_list_line(system.postfix_config_dir),
                              capture_output=True, text=True, check=False)
    except OSError:
        return None
    if proc.returncode != 0:
        return None
    count = 0
    for line in proc.stdout.splitlines():
        if not line.strip():
            continue
        try:
            json.loads(line)
        except ValueError:
            return None  # not postqueue's JSON: no count to trust
        count += 1
    return count


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


def collect_status(system):
    """The status as a dict (the --json output), with the sections of the packages installed."""
    present = sections()
    configured = system.postfix_installed()
    if not configured:
        status = {"configured": False, "main_cf": system.main_cf_path}
    else:
        postconf = system.postconf()
        settings = postconf.effective(list(STATUS_KEYS))
        table = alias_table.parse(read_bytes(system.aliases_path) or b"")
        running = postfix_running(system)
        status = {
            "configured": True,
            "settings": {k: settings[k] for k in STATUS_KEYS},
            "mailname": (read_bytes(system.mailname_path) or b"").decode().strip(),
            "root_mail_to": table.get("root", []),
            "aliases": {k: v for k, v in table.items() if k not in ("root", "postmaster")},
            "postfix_running": running,
            # Postfix down: postqueue cannot ask it, and a count of the files would be root's only.
            "queue": queue_size(system) if running else None,
        }
    for section in present:
        status.update(section.running(system))
    status["ports"] = listening_ports()
    for section in present:
        status.update(section.collect(system, configured))
    return status


def print_status(status, out):
    present = sections()
    if not status["configured"]:
        print(_("Postfix is not configured: {path} does not exist.").format(path=status["main_cf"]), file=out)
    else:
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
        if status["queue"] is None:
            # Translators: the queue could not be listed (Postfix is not running, or postqueue failed).
            print(_("Messages in the queue: unknown"), file=out)
        else:
            print(_("Messages in the queue: {count}").format(count=status["queue"]), file=out)
    for section in present:
        section.print_running(status, out)
    if "ports" in status:
        # Translators: {ports} is a list of port numbers such as "25, 587", or "(none)".
        print(_("Listening mail ports: {ports}").format(
            ports=", ".join(str(p) for p in status["ports"]) or _("(none)")), file=out)
    for section in present:
        section.print_details(status, out)


def healthy(status):
    """Postfix configured and running, and every installed package's part well."""
    return bool(status["configured"] and status["postfix_running"]) and all(s.healthy(status) for s in sections())


def cmd_status(args, tools):
    status = collect_status(tools.system)
    if args.json:
        dump_json(status)
    else:
        print_status(status, sys.stdout)
    return EXIT_OK if healthy(status) else EXIT_PROBLEM


def register(sub):
    """Add the command status to the subparsers of `mailsetup`."""
    status = parser(sub, "status", _("settings in effect, whether Postfix runs, queue size"),
                    _("Show the settings in effect, whether Postfix and Dovecot run, the "
                      "listening mail ports, the queue size, how many domains and "
                      "mailboxes there are, and whether the filter (rspamd) works."))
    options(status).add_argument("--json", action="store_true", help=_("machine-readable output"))
    status.set_defaults(func=cmd_status)
