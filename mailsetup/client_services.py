"""What this server offers to mail programs: IMAP, POP3 and SMTP submission,
each with its host, port and TLS mode, read from the system.

Used by `mailsetup dns` (the RFC 6186 SRV records) and by mailsetup-webmail
(the autoconfiguration files it serves), so both say the same. The host is
main.cf `myhostname`. Submission is what master.cf runs (`postconf -M`):
mailsetup-imap adds `submission` (587, STARTTLS) and `submissions` (465, TLS
from the first byte: smtpd_tls_wrappermode=yes). IMAP and POP3 are what
Dovecot's `protocols` names (`doveconf -h protocols`), on Dovecot's standard
ports, which mailsetup-imap leaves as they are. read_services() is the pure part.
"""

import os
from dataclasses import dataclass

from mailsetup.errors import CommandFailed
from mailsetup.postfix_tools import PostconfError, command_line, parse_master, run

SSL = "SSL"            # TLS from the first byte (implicit TLS, RFC 8314)
STARTTLS = "STARTTLS"  # plain connection, then STARTTLS before the login
KINDS = ("imap", "pop3", "smtp")

# Dovecot's listeners as Debian ships them (10-master.conf): implicit TLS first.
DOVECOT_PORTS = {"imap": ((993, SSL), (143, STARTTLS)), "pop3": ((995, SSL), (110, STARTTLS))}
# What mailsetup-imap installs (dovecot-imapd, dovecot-pop3d): used when doveconf cannot be run.
DEFAULT_PROTOCOLS = ("imap", "pop3")
DOVECONF_PROTOCOLS = ["doveconf", "-h", "protocols"]

# master.cf service names that are submission ports; a number is taken as it is.
SUBMISSION_PORTS = {"submission": 587, "submissions": 465, "smtps": 465}
SMTP_PORT = 25  # server to server (MX), never a submission port
LOOPBACK = {"localhost", "127.0.0.1", "::1"}


@dataclass(frozen=True)
class MailService:
    kind: str     # "imap", "pop3" or "smtp" (submission)
    host: str
    port: int
    socket: str   # SSL or STARTTLS

    @property
    def ssl(self):
        return self.socket == SSL


def _options(args):
    """{name: value} of the -o options of a `postconf -M` line's command arguments.
    postconf prints `-o name=value`, and a value with blanks as `-o {name=value, more}`."""
    options, i = {}, 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg != "-o" and not arg.startswith("-o"):
            continue
        text = arg[2:] if arg != "-o" else (args[i] if i < len(args) else "")
        if arg == "-o":
            i += 1
        if text.startswith("{"):
            parts = [text]
            while not parts[-1].endswith("}") and i < len(args):
                parts.append(args[i])
                i += 1
            text = " ".join(parts)[1:].rstrip("}")
        name, sep, value = text.partition("=")
        if sep:
            options[name.strip()] = value.strip()
    return options


def _listen_port(service):
    """(address or "", port name or number) of a master.cf inet service name `[host:]port`."""
    if service.startswith("["):
        address, _sep, port = service[1:].partition("]")
        return address, port.lstrip(":")
    address, sep, port = service.rpartition(":")
    return (address, port) if sep else ("", service)


def submission_services(master_lines):
    """[(port, socket)] of the SMTP submission services in `postconf -M` lines.

    An enabled (uncommented) inet smtpd service counts when it listens on the
    submission or submissions (smtps) port, by name or number, or when it turns
    SASL authentication on for its own port (other than 25). One bound to a loopback
    address only is for this host's programs, not for mail programs elsewhere."""
    found = []
    for entry in parse_master(master_lines):
        if entry.type != "inet" or entry.command.rsplit("/", 1)[-1] != "smtpd":
            continue
        address, port_name = _listen_port(entry.service)
        if address.lower() in LOOPBACK or address.startswith("127."):
            continue
        options = _options(entry.args)
        if port_name.isdigit():
            port = int(port_name)
            if port == SMTP_PORT or (port not in SUBMISSION_PORTS.values()
                                     and options.get("smtpd_sasl_auth_enable", "").lower() != "yes"):
                continue
        elif port_name in SUBMISSION_PORTS:
            port = SUBMISSION_PORTS[port_name]
        else:
            continue
        socket = SSL if options.get("smtpd_tls_wrappermode", "").lower() == "yes" else STARTTLS
        if (port, socket) not in found:
            found.append((port, socket))
    return found


def dovecot_protocols(output):
    """The protocols `doveconf -h protocols` printed (system.run mixes in its stderr,
    whose lines start with "doveconf:"); DEFAULT_PROTOCOLS when output is None (no doveconf)."""
    if output is None:
        return list(DEFAULT_PROTOCOLS)
    names = []
    for line in output.splitlines():
        if line.startswith("doveconf:"):
            continue
        names += [word for word in line.replace(",", " ").split() if word.isalnum()]
    return list(dict.fromkeys(names))


def _order(service):
    return KINDS.index(service.kind), not service.ssl, service.port


def read_services(host, master_output, protocols_output):
    """The MailServices of a server called host, from the text `postconf -M` printed and
    the one `doveconf -h protocols` printed (None: doveconf is not there, see
    dovecot_protocols; "": Dovecot serves nothing). Ordered IMAP, POP3, SMTP, and SSL
    before STARTTLS in each: a mail program takes the first it can use."""
    services = []
    protocols = dovecot_protocols(protocols_output)
    for kind, ports in DOVECOT_PORTS.items():
        if kind in protocols:
            services += [MailService(kind, host, port, socket) for port, socket in ports]
    services += [MailService("smtp", host, port, socket)
                 for port, socket in submission_services((master_output or "").splitlines())]
    return sorted(services, key=_order)


def read_protocols(system):
    """What `doveconf -h protocols` prints, or None when it cannot run or fails. The
    defaults only stand in when mailsetup-imap has set Dovecot up (its state directory);
    without it and without doveconf there is no IMAP or POP3 here."""
    try:
        proc = system.run(DOVECONF_PROTOCOLS, check=False)
    except CommandFailed:
        proc = None
    if proc is not None and proc.returncode == 0:
        return proc.stdout
    return None if os.path.isdir(system.imap_state_dir) else ""


def services_on(system):
    """The MailServices this server offers (read_services on this system's outputs);
    empty when Postfix cannot be asked."""
    postconf = system.postconf()
    try:
        host = postconf.effective(["myhostname"])["myhostname"].rstrip(".").lower()
        master = run(command_line(postconf.command, postconf.config_dir, "-M")).stdout
    except PostconfError:
        return []
    return read_services(host, master, read_protocols(system))
