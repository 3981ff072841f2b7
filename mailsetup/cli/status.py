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

so the output keeps one order: core, daemons, ports, the certificates of the
TLS ports, the packages' details.

The certificates: each listening TLS port (TLS_PORTS) is asked on 127.0.0.1
for the certificate it presents (mailsetup/certinfo.py; no verification, the
server's host name as SNI, at most certinfo.TIMEOUT seconds, all ports at
once); one that expires in less than certinfo.WARN_DAYS days, or has expired,
makes the status unhealthy. A port that gives no certificate (TLS off, or not
listening on the loopback address) is shown, but is no problem of its own.
"""

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from mailsetup import certinfo, postfix_tools, services
from mailsetup.cli.common import EXIT_OK, EXIT_PROBLEM, dump_json, import_present, options, parser
from mailsetup.core.components import aliases as alias_table
from mailsetup.fileutil import read_bytes
from mailsetup.i18n import _, ngettext

STATUS_KEYS = ("myhostname", "mydomain", "myorigin", "mydestination", "relayhost", "mynetworks",
               "inet_interfaces", "inet_protocols", "message_size_limit", "recipient_delimiter",
               "alias_maps")
# The status sections of the other packages, in the order they are shown; a missing one is left out.
SECTIONS = ("mailsetup.imap.status", "mailsetup.filter.status", "mailsetup.webmail.status")
# SMTP, HTTP, POP3, IMAP, HTTPS, submissions, submission, IMAPS, POP3S, ManageSieve.
MAIL_PORTS = (25, 80, 110, 143, 443, 465, 587, 993, 995, 4190)
PROC_NET_TCP = ("/proc/net/tcp", "/proc/net/tcp6")
TCP_LISTEN = "0A"  # the state column of /proc/net/tcp
# The ports that present a certificate: port -> (what it is, as shown; how TLS starts).
TLS_PORTS = {
    25: ("SMTP, STARTTLS", certinfo.SMTP_STARTTLS),
    443: ("HTTPS, TLS", certinfo.IMPLICIT),
    465: ("submissions, TLS", certinfo.IMPLICIT),
    587: ("submission, STARTTLS", certinfo.SMTP_STARTTLS),
    993: ("IMAPS, TLS", certinfo.IMPLICIT),
    995: ("POP3S, TLS", certinfo.IMPLICIT),
}
TLS_HOST = "127.0.0.1"


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


def certificate_on(port, mode, server_name):
    """The certinfo.Certificate this host presents on port (TLS_HOST); CertError if none."""
    return certinfo.fetch(TLS_HOST, port, mode, server_name)


def tls_certificates(ports, server_name=None, fetch=None, now=None):
    """[{port, protocol, ...}] for each port of ports in TLS_PORTS, in order: the certificate's
    fields (certinfo.Certificate.to_json) and "expiring", or "error" (one line) without one.
    fetch(port, mode, server_name) -> Certificate, certificate_on unless given."""
    fetch = fetch or certificate_on
    wanted = [p for p in ports if p in TLS_PORTS]

    def one(port):
        protocol, mode = TLS_PORTS[port]
        entry = {"port": port, "protocol": protocol}
        try:
            certificate = fetch(port, mode, server_name)
        except certinfo.CertError as err:
            return dict(entry, error=str(err))
        return dict(entry, **certificate.to_json(now), expiring=certificate.expiring(now), error=None)

    if not wanted:
        return []
    with ThreadPoolExecutor(max_workers=len(wanted)) as pool:
        return list(pool.map(one, wanted))


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
    server_name = status["settings"]["myhostname"] if configured else None
    status["certificates"] = tls_certificates(status["ports"], server_name)
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
    print_certificates(status.get("certificates", []), out)
    for section in present:
        section.print_details(status, out)


def certificate_line(entry):
    """One line about the certificate of a port (an entry of tls_certificates)."""
    where = f"{entry['port']} ({entry['protocol']})"
    if entry.get("error"):
        return f"  {where}: {entry['error']}"
    names = entry["subject_cn"] or ", ".join(entry["sans"][:1]) or entry["subject"]
    others = [n for n in entry["sans"] if n != names]
    if others:
        # Translators: the other names of a certificate (subjectAltName), after its CN.
        names += " " + _("(also {names})").format(names=", ".join(others))
    date, days = entry["not_after"][:10], entry["days_left"]
    if days < 0:
        # Translators: {date} is the expiry date (YYYY-MM-DD).
        expiry = ngettext("EXPIRED {date} ({days} day ago)", "EXPIRED {date} ({days} days ago)", -days).format(
            date=date, days=-days)
    else:
        expiry = ngettext("expires {date} ({days} day)", "expires {date} ({days} days)", days).format(
            date=date, days=days)
    # Translators: {names} are the certificate's names, {issuer} who signed it, {expiry} when it expires.
    text = _("CN={names}, issued by {issuer}, {expiry}").format(
        names=names, issuer=entry["issuer_name"], expiry=expiry)
    if entry["expiring"]:
        # Translators: a certificate that expires within two weeks, or has expired.
        text = _("WARNING: {certificate}: renew it").format(certificate=text)
    return f"  {where}: {text}"


def print_certificates(entries, out):
    if not entries:
        return
    print(_("Certificates on the TLS ports:"), file=out)
    for entry in entries:
        print(certificate_line(entry), file=out)
    different = {(e["spki_sha256"], e["serial"]) for e in entries if not e.get("error")}
    if len(different) > 1:
        print("  " + _("(the ports present {count} different certificates)").format(count=len(different)),
              file=out)


def healthy(status):
    """Postfix configured and running, no certificate expiring, and every installed package's part well."""
    expiring = any(e.get("expiring") for e in status.get("certificates", []))
    return (bool(status["configured"] and status["postfix_running"]) and not expiring
            and all(s.healthy(status) for s in sections()))


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
