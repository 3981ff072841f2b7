"""`mailsetup dns [DOMAIN] [--mta-sts] [--json] [--check]`: the DNS records to
publish for the mail domains of this server.

For every mail domain (the core's mail domain, main.cf `mydomain`, and
mailsetup-imap's mailbox domains): MX, SPF, DKIM (the key mailsetup-filter
made), DMARC and, with --mta-sts, the MTA-STS and TLS-RPT records; when the
server offers mail programs IMAP, POP3 or submission (mailsetup/client_services.py),
the RFC 6186 SRV records of each, and with mailsetup-webmail, which serves the
autoconfiguration files, the names mail programs fetch them from; once for
the server, the A/AAAA records of its host name (main.cf `myhostname`) with
the public addresses the kernel knows, and the DANE TLSA record of its port 25
(`_25._tcp.HOST. TLSA 3 1 1 <SHA-256 of the public key>` of the certificate in
main.cf `smtpd_tls_cert_file`; a self-signed one too: DANE-EE does not care
who signed it). Printed in zone-file syntax, with absolute names and the TTL
left to the zone's default, or as JSON.

The records are built by pure functions (domain_records, client_records,
host_records, render_zone) from what collect() reads off the system. --check looks each
record up through the system's resolver with python3-dnspython, when it is
installed, and compares the key Postfix presents on 127.0.0.1:25 with the key
of that file (they differ when the file was changed without reloading
Postfix); nothing here changes the system.
"""

import datetime
import importlib.util
import ipaddress
import json
import os
import subprocess
import sys
import urllib.request
from dataclasses import dataclass

from mailsetup import certinfo, client_services, dkim
from mailsetup.cli.common import EXIT_OK, EXIT_PROBLEM, arguments, dump_json, json_option, options, parser
from mailsetup.client_services import SSL
from mailsetup.mta_sts import mta_sts_policy, mta_sts_url, parse_policy
from mailsetup.errors import MailsetupError
from mailsetup.i18n import _, ngettext
from mailsetup.validate import NO_DOMAIN

TXT_STRING_MAX = 255  # the longest character-string of a TXT record (RFC 1035)
MX_PREFERENCE = 10
# The package whose web server serves the autoconfiguration files and the MTA-STS policy;
# only looked for (importlib.util.find_spec), never imported: it is not the core's.
WEBMAIL_PACKAGE = "mailsetup.webmail"
# RFC 6186 (and RFC 8314 for _submissions): the SRV name of each service kind and TLS mode.
SRV_LABELS = (("imap", SSL, "_imaps"), ("imap", "STARTTLS", "_imap"), ("pop3", SSL, "_pop3s"),
              ("pop3", "STARTTLS", "_pop3"), ("smtp", SSL, "_submissions"), ("smtp", "STARTTLS", "_submission"))
NOT_OFFERED = "0 0 0 ."  # RFC 6186 section 4 (RFC 2782: the target "." means no such service)
HTTPS_PORT = 443
SMTP_PORT = 25
# Where --check asks Postfix for the certificate it presents.
SERVED_HOST = "127.0.0.1"
IP_ADDR = ["ip", "-j", "addr", "show", "scope", "global"]
LOOPBACK_ONLY = {"loopback-only", "localhost", "127.0.0.1", "[::1]", "::1"}
# Documentation ranges (RFC 5737, RFC 3849): Python calls them private, but they are
# no network behind NAT; they stand for public addresses in examples and test beds,
# so they are treated as public here.
DOCUMENTATION = tuple(ipaddress.ip_network(n) for n in
                      ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"))


def is_public(address):
    """Whether address (ipaddress) belongs in a public zone: global, or a documentation address."""
    return address.is_global or any(address in network for network in DOCUMENTATION)


class DnsError(MailsetupError):
    """A problem reported in one line (exit 1)."""


@dataclass(frozen=True)
class Record:
    name: str       # absolute, with the trailing dot
    type: str       # MX, A, AAAA, TXT, SRV, CNAME, TLSA
    value: str      # as published; a TXT value unquoted and unsplit
    purpose: str    # one line for the zone-file comment

    def to_json(self):
        return {"name": self.name, "type": self.type, "value": self.value, "purpose": self.purpose}


# ------------------------------------------------------------------ pure: the records

def absolute(name):
    return name.rstrip(".").lower() + "."


def spf_value():
    return "v=spf1 mx -all"


def dmarc_value(domain):
    return f"v=DMARC1; p=quarantine; rua=mailto:postmaster@{domain}"


def tlsrpt_value(domain):
    return f"v=TLSRPTv1; rua=mailto:postmaster@{domain}"


def mta_sts_value(policy_id):
    return f"v=STSv1; id={policy_id}"


def mta_sts_id(now):
    """An id for the MTA-STS record: the time in UTC, YYYYMMDDhhmm (it must change with the policy)."""
    return now.astimezone(datetime.timezone.utc).strftime("%Y%m%d%H%M")


def host_records(host, addresses):
    """The A and AAAA records of the mail server's name: IPv4 first, then IPv6."""
    found = sorted((ipaddress.ip_address(a) for a in addresses), key=lambda a: a.version)
    return [Record(absolute(host), "A" if a.version == 4 else "AAAA", str(a),
                   _("the mail server {host} has the address {address}").format(host=host, address=a))
            for a in found]


def tlsa_name(host, port=SMTP_PORT):
    return f"_{port}._tcp.{absolute(host)}"


def tlsa_records(host, certificate):
    """The DANE record of the mail server's port 25: TLSA 3 1 1, the SHA-256 of the public key of
    certificate (certinfo.Certificate; None: no record)."""
    if certificate is None:
        return []
    return [Record(tlsa_name(host), "TLSA", certinfo.tlsa_value(certificate),
                   _("DANE: when the zone is DNSSEC-signed, other mail servers check the key of {host} against "
                     "this record; the key is kept when the certificate is renewed (certbot --reuse-key for ACME "
                     "certificates), so the record stays valid; if the key ever changes, publish the new record "
                     "next to the old one first and wait for the TTL before the switch").format(host=host))]


def domain_records(domain, host, dkim_public=None, policy_id=None, selector=dkim.SELECTOR):
    """The records of one mail domain. dkim_public: the domain's DKIM public key (base64),
    None without one; policy_id: the MTA-STS id, None for no MTA-STS and TLS-RPT records."""
    name = absolute(domain)
    records = [
        Record(name, "MX", f"{MX_PREFERENCE} {absolute(host)}",
               _("mail for {domain} is delivered to {host}").format(domain=domain, host=host)),
        Record(name, "TXT", spf_value(),
               _("SPF: only the servers named by the MX records may send mail from {domain}").format(
                   domain=domain)),
    ]
    if dkim_public:
        records.append(Record(f"{selector}._domainkey.{name}", "TXT", dkim.txt_value(dkim_public),
                              _("DKIM: the public key that checks the signatures of mail from {domain}").format(
                                  domain=domain)))
    records.append(Record(f"_dmarc.{name}", "TXT", dmarc_value(domain),
                          _("DMARC: mail from {domain} that fails SPF and DKIM goes to spam; reports go to "
                            "postmaster@{domain}").format(domain=domain)))
    if policy_id:
        records.append(Record(f"_mta-sts.{name}", "TXT", mta_sts_value(policy_id),
                              _("MTA-STS: mail to {domain} must come over TLS; change the id whenever the "
                                "policy changes").format(domain=domain)))
        records.append(Record(f"_smtp._tls.{name}", "TXT", tlsrpt_value(domain),
                              _("TLS-RPT: reports about TLS problems of mail to {domain} go to "
                                "postmaster@{domain}").format(domain=domain)))
    return records


def protocol_name(kind, socket):
    """What a service is, for the comments: such as "IMAP over TLS"."""
    names = {
        ("imap", SSL): _("IMAP over TLS"),
        ("imap", "STARTTLS"): _("IMAP with STARTTLS"),
        ("pop3", SSL): _("POP3 over TLS"),
        ("pop3", "STARTTLS"): _("POP3 with STARTTLS"),
        ("smtp", SSL): _("SMTP submission over TLS"),
        ("smtp", "STARTTLS"): _("SMTP submission with STARTTLS"),
    }
    return names[(kind, socket)]


def srv_value(port, host, priority=0):
    """An SRV record's value: priority, weight, port, target."""
    return f"{priority} 1 {port} {absolute(host)}"


def client_records(domain, host, services, web=False, mta_sts=False):
    """The records mail programs set themselves up from. services: the MailServices the
    server offers; none at all (no mailboxes here) gives no records. Each RFC 6186 SRV
    name is published: for a service that is not offered it says so ("0 0 0 .") rather
    than leaving mail programs to guess. web: the server serves the autoconfiguration
    files (mailsetup-webmail), so the names they are fetched from point to it too, and
    with mta_sts the name the MTA-STS policy is fetched from."""
    name = absolute(domain)
    records = []
    for kind, socket, label in SRV_LABELS if services else ():
        offered = [s for s in services if (s.kind, s.socket) == (kind, socket)]
        what = protocol_name(kind, socket)
        for i, service in enumerate(offered):
            records.append(Record(f"{label}._tcp.{name}", "SRV", srv_value(service.port, service.host, 10 * i),
                                  _("mail programs setting up an address of {domain} find {protocol} at "
                                    "{host}, port {port}").format(domain=domain, protocol=what,
                                                                  host=service.host, port=service.port)))
        if not offered:
            records.append(Record(f"{label}._tcp.{name}", "SRV", NOT_OFFERED,
                                  _("this server offers no {protocol}: the record tells mail programs not to "
                                    "try it").format(protocol=what)))
    if web and services:
        records.append(Record(f"_autodiscover._tcp.{name}", "SRV", srv_value(HTTPS_PORT, host),
                              _("Outlook fetches its settings for {domain} from "
                                "https://{host}/autodiscover/autodiscover.xml").format(domain=domain, host=host)))
        records.append(Record(f"autoconfig.{name}", "CNAME", absolute(host),
                              _("Thunderbird fetches its settings for {domain} from "
                                "https://autoconfig.{domain}/mail/config-v1.1.xml (the web server's "
                                "certificate must be valid for that name)").format(domain=domain)))
        records.append(Record(f"autodiscover.{name}", "CNAME", absolute(host),
                              _("Outlook tries https://autodiscover.{domain}/autodiscover/autodiscover.xml "
                                "first (the web server's certificate must be valid for that name)").format(
                                    domain=domain)))
    if web and mta_sts:
        records.append(Record(f"mta-sts.{name}", "CNAME", absolute(host),
                              _("MTA-STS: this server serves the policy at {url} (the web server's "
                                "certificate must be valid for mta-sts.{domain})").format(
                                    url=mta_sts_url(domain), domain=domain)))
    return records


def txt_strings(value, size=TXT_STRING_MAX):
    """value cut into the character-strings of a TXT record, each at most size characters."""
    return [value[i:i + size] for i in range(0, len(value), size)] or [""]


def _quoted(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def zone_lines(record, width):
    """The record in zone-file syntax, its name padded to width; a long TXT value on several lines."""
    start = f"{record.name.ljust(width)} IN {record.type.ljust(5)} "
    if record.type != "TXT":
        return [start + record.value]
    parts = [_quoted(s) for s in txt_strings(record.value)]
    if len(parts) == 1:
        return [start + parts[0]]
    indent = " " * (len(start) + 2)
    return ([f"{start}( {parts[0]}"] + [indent + p for p in parts[1:-1]] + [f"{indent}{parts[-1]} )"])


def render_zone(plan):
    """The plan (see collect) as zone-file text: comments start with ";"."""
    records = all_records(plan)
    width = max((len(r.name) for r in records), default=0)
    lines = ["; " + _("DNS records for the mail of {host}: names are absolute, the TTL is the zone's "
                      "default.").format(host=plan["host"])]
    lines += ["; " + note for note in plan["notes"]]
    lines.append("")
    if plan["host_records"]:
        for record in plan["host_records"]:
            lines += ["; " + record.purpose] + zone_lines(record, width)
    else:
        lines.append("; " + no_address_text(plan["host"], plan["private_addresses"]))
    for record in plan.get("tlsa_records", []):
        lines += ["; " + record.purpose] + zone_lines(record, width)
    if plan.get("tlsa_note"):
        lines.append("; " + plan["tlsa_note"])
    for entry in plan["domains"]:
        lines.append("")
        for item in entry["items"]:
            if isinstance(item, Record):
                lines += ["; " + item.purpose] + zone_lines(item, width)
            else:
                lines.append("; " + item)
        if entry.get("mta_sts") and plan.get("web"):
            lines.append("; " + _("MTA-STS: the policy this server serves at {url}:").format(
                url=entry["mta_sts"]["url"]))
        elif entry.get("mta_sts"):
            lines.append("; " + _("MTA-STS: a web server with a valid certificate for mta-sts.{domain} must "
                                  "serve this policy at {url}:").format(
                domain=entry["domain"], url=entry["mta_sts"]["url"]))
        if entry.get("mta_sts"):
            lines += [";   " + line for line in entry["mta_sts"]["policy"].splitlines()]
    return "\n".join(lines) + "\n"


def plan_json(plan):
    """The plan as the --json object; record values unsplit."""
    notes = list(plan["notes"])
    if not plan["host_records"]:
        notes.append(no_address_text(plan["host"], plan["private_addresses"]))
    if plan.get("tlsa_note"):
        notes.append(plan["tlsa_note"])
    notes += [item for d in plan["domains"] for item in d["items"] if not isinstance(item, Record)]
    return {
        "host": plan["host"],
        "addresses": [r.value for r in plan["host_records"]],
        "tlsa": [r.to_json() for r in plan.get("tlsa_records", [])],
        "certificate_file": plan.get("cert_file") or None,
        "domains": [dict({"domain": d["domain"], "records": [r.to_json() for r in d["records"]]},
                         **({"mta_sts": d["mta_sts"]} if d.get("mta_sts") else {}))
                    for d in plan["domains"]],
        "services": [{"kind": s.kind, "host": s.host, "port": s.port, "socket": s.socket}
                     for s in plan.get("services", [])],
        "notes": notes,
    }


def no_address_text(host, private):
    text = _("no public address of {host} found: add its A record (IPv4) and AAAA record (IPv6) by hand, with "
             "the address the Internet reaches it at (a server behind NAT does not know it)").format(host=host)
    if private:
        text += " " + _("(this server has only private addresses: {addresses})").format(
            addresses=", ".join(private))
    return text


# ------------------------------------------------------------------ reading the system

def split_addresses(ip_json):
    """(public, private) addresses from the output of `ip -j addr show scope global`.

    Temporary (privacy), deprecated and tentative IPv6 addresses are left out: they
    change or are going away. Private ones (RFC 1918, ULA, shared) are not for a public zone;
    documentation ones count as public (see is_public)."""
    public, private = [], []
    try:
        links = json.loads(ip_json or "[]")
    except ValueError:
        return [], []
    for link in links if isinstance(links, list) else []:
        for info in link.get("addr_info", []) if isinstance(link, dict) else []:
            if not isinstance(info, dict) or not info.get("local"):
                continue
            if any(info.get(flag) for flag in ("temporary", "deprecated", "tentative", "dadfailed")):
                continue
            try:
                address = ipaddress.ip_address(info["local"])
            except ValueError:
                continue
            if address.is_loopback or address.is_link_local or address.is_multicast:
                continue
            found = public if is_public(address) else private
            if str(address) not in found:
                found.append(str(address))
    return public, private


def kernel_addresses():
    """(public, private) global-scope addresses of this host, from iproute2; none if it fails."""
    try:
        proc = subprocess.run(IP_ADDR, capture_output=True, text=True, check=False)
    except OSError:
        return [], []
    return split_addresses(proc.stdout) if proc.returncode == 0 else ([], [])


def mail_domains(system, mydomain):
    """The core's mail domain and mailsetup-imap's, in that order, without duplicates."""
    domains = [d.rstrip(".").lower() for d in [mydomain] + list(system.virtual_domains()) if d]
    return [d for d in dict.fromkeys(domains) if d != NO_DOMAIN]


def read_dkim_key(system, domain):
    """(public key, None) or (None, why there is no record to publish)."""
    try:
        public = dkim.public_key(system, domain)
    except PermissionError:
        return None, _("the DKIM key of {domain} could not be read ({path}): run as root").format(
            domain=domain, path=dkim.record_path(system, domain))
    if public:
        return public, None
    if not os.path.isdir(system.dkim_dir):
        return None, _("no DKIM record for {domain}: signing mail with DKIM needs mailsetup-filter").format(
            domain=domain)
    return None, _("no DKIM record for {domain}: its key is missing ({path}); dpkg-reconfigure "
                   "mailsetup-filter makes it").format(domain=domain, path=dkim.record_path(system, domain))


def read_postfix_certificate(path, host):
    """(certinfo.Certificate, None) of Postfix's smtpd_tls_cert_file, or (None, why there is no TLSA record)."""
    if not path:
        return None, _("no TLSA record for {host}: Postfix has no certificate (smtpd_tls_cert_file is "
                       "empty)").format(host=host)
    try:
        return certinfo.read_file(path), None
    except certinfo.CertError as err:
        if os.path.exists(path) and not os.access(path, os.R_OK):
            return None, _("no TLSA record for {host}: {error}: run as root").format(host=host, error=err)
        return None, _("no TLSA record for {host}: {error}").format(host=host, error=err)


def webmail_present():
    """Whether mailsetup-webmail, whose web server serves the autoconfiguration files and
    the MTA-STS policy, is installed: its code is there (looked for, not imported)."""
    return importlib.util.find_spec(WEBMAIL_PACKAGE) is not None


def collect(system, domain=None, mta_sts=False, now=None, addresses=None, services=None, web=None):
    """What `mailsetup dns` prints: the host, its records, the domains' records and notes.

    addresses: (public, private) instead of asking the kernel; services: the MailServices
    instead of client_services.services_on(system); web: whether the autoconfiguration is
    served here, instead of webmail_present()."""
    if not system.postfix_installed():
        raise DnsError(_("Postfix is not configured: {path} does not exist.").format(path=system.main_cf_path))
    settings = system.postconf().effective(["myhostname", "mydomain", "relayhost", "inet_interfaces",
                                            "smtpd_tls_cert_file"])
    host = settings["myhostname"].rstrip(".").lower()
    domains = mail_domains(system, settings["mydomain"])
    if not domains:
        raise DnsError(_("this server has no mail domain whose records could be published (its mail domain "
                         "is {domain})").format(domain=NO_DOMAIN))
    if domain is not None:
        wanted = domain.rstrip(".").lower()
        if wanted not in domains:
            raise DnsError(_("{domain}: not a mail domain of this server ({domains})").format(
                domain=domain, domains=", ".join(domains)))
        domains = [wanted]
    public, private = addresses if addresses is not None else kernel_addresses()
    services = list(client_services.services_on(system) if services is None else services)
    web = webmail_present() if web is None else web
    policy_id = mta_sts_id(now or datetime.datetime.now(datetime.timezone.utc)) if mta_sts else None
    notes = []
    if public:
        notes.append(_("the reverse DNS (PTR) of {addresses} should name {host}; it is set by whoever "
                       "provides the address, not in your zone").format(addresses=", ".join(public), host=host))
    relayhost = settings.get("relayhost", "").strip()
    if relayhost:
        notes.append(_("Postfix sends mail out through {relayhost}: add what its operator publishes for SPF "
                       "(such as include:...) before -all, or mail from these domains may be refused").format(
                           relayhost=relayhost))
    interfaces = {i.strip().lower() for i in settings.get("inet_interfaces", "").replace(",", " ").split()}
    if interfaces and interfaces <= LOOPBACK_ONLY:
        notes.append(_("Postfix does not take mail from the network (inet_interfaces = {value}): the MX records "
                       "only work once it does").format(value=settings["inet_interfaces"]))
    entries = []
    for name in domains:
        public_key, missing = read_dkim_key(system, name)
        records = domain_records(name, host, public_key, policy_id) + client_records(
            name, host, services, web, mta_sts)
        items = list(records)
        if missing:
            # where the DKIM record would be: after SPF
            items.insert(2, missing)
        entry = {"domain": name, "records": records, "items": items}
        if mta_sts:
            entry["mta_sts"] = {"url": mta_sts_url(name), "policy": mta_sts_policy([host])}
        entries.append(entry)
    cert_file = settings.get("smtpd_tls_cert_file", "").strip()
    certificate, tlsa_note = read_postfix_certificate(cert_file, host)
    return {"host": host, "host_records": host_records(host, public), "private_addresses": private,
            "tlsa_records": tlsa_records(host, certificate), "tlsa_note": tlsa_note,
            "cert_file": cert_file, "certificate": certificate,
            "domains": entries, "notes": notes, "services": services, "web": web}


# ------------------------------------------------------------------ --check

# A different value is wrong, not a choice of the administrator: an SRV record with another
# port or target sends mail programs elsewhere. A CNAME to another host may be the
# administrator's own web server.
# A TLSA record of another key makes servers that check DANE refuse to deliver.
STRICT_TYPES = ("MX", "A", "AAAA", "SRV", "TLSA")


def dnspython_lookup():
    """lookup(name, type) -> the published values, through dnspython; None without dnspython."""
    try:
        import dns.exception  # noqa: PLC0415 -- optional: python3-dnspython
        import dns.resolver  # noqa: PLC0415
    except ImportError:
        return None
    try:
        resolver = dns.resolver.Resolver()  # the system's, from /etc/resolv.conf
    except dns.exception.DNSException as err:
        problem = str(err) or type(err).__name__
        resolver = None

    def lookup(name, rtype):
        if resolver is None:
            raise LookupError(problem)
        try:
            answer = resolver.resolve(name, rtype)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.DNSException as err:
            raise LookupError(str(err) or type(err).__name__) from None
        values = []
        for rdata in answer:
            if rtype == "TXT":
                values.append(b"".join(rdata.strings).decode("utf-8", "replace"))
            elif rtype == "MX":
                values.append(f"{rdata.preference} {rdata.exchange.to_text().lower()}")
            elif rtype == "SRV":
                values.append(f"{rdata.priority} {rdata.weight} {rdata.port} {rdata.target.to_text().lower()}")
            elif rtype == "CNAME":
                values.append(rdata.target.to_text().lower())
            else:
                values.append(rdata.to_text())
        return values

    return lookup


def _srv_target(value):
    fields = value.split()
    return (fields[2], absolute(fields[3])) if len(fields) == 4 else None


def _tag(txt):
    return txt.split(";", 1)[0].replace(" ", "").lower()


def _normal(txt):
    return " ".join(txt.replace(";", "; ").split()).rstrip("; ").lower()


def tlsa_normal(value):
    """A TLSA value compared: the three numbers and the data in lower case, without spaces."""
    fields = value.split()
    return " ".join(fields[:3] + ["".join(fields[3:]).lower()])


def check_record(record, lookup):
    """(status, found, error): status "ok", "different", "missing" or "failed"; found: the values
    published (of the record's kind, for TXT); error: why the lookup failed."""
    try:
        found = lookup(record.name, record.type)
    except LookupError as err:
        return "failed", [], str(err)
    if record.type == "MX":
        host = record.value.split()[1]
        ok = any(v.split()[-1].lower() == host for v in found)
    elif record.type in ("A", "AAAA"):
        ok = any(ipaddress.ip_address(v) == ipaddress.ip_address(record.value) for v in found)
    elif record.type == "SRV":
        # priority and weight are the administrator's; port and target are what clients use
        ok = any(_srv_target(v) == _srv_target(record.value) for v in found)
    elif record.type == "CNAME":
        ok = any(absolute(v) == record.value for v in found)
    elif record.type == "TLSA":
        # any one of them: during a change of key the old and the new record are published side by side
        ok = any(tlsa_normal(v) == tlsa_normal(record.value) for v in found)
    else:
        found = [v for v in found if _tag(v) == _tag(record.value)]
        if record.value.startswith("v=STSv1"):
            ok = bool(found)  # the id is the administrator's
        elif record.value.startswith("v=DKIM1"):
            key = dkim.parse_public_key(record.value)
            ok = any(dkim.parse_public_key(v) == key for v in found)
        else:
            ok = any(_normal(v) == _normal(record.value) for v in found)
    if ok:
        return "ok", found, None
    return ("different" if found else "missing"), found, None


def is_problem(record, status):
    """Missing, failed, or wrong where there is only one right value (MX, A/AAAA, the DKIM key)."""
    if status in ("missing", "failed"):
        return True
    return status == "different" and (record.type in STRICT_TYPES or record.value.startswith("v=DKIM1"))


def all_records(plan):
    return plan["host_records"] + plan.get("tlsa_records", []) + [r for d in plan["domains"] for r in d["records"]]


def check_all(plan, lookup):
    """[(record, status, found, error)] for every record of the plan, in order."""
    return [(r, *check_record(r, lookup)) for r in all_records(plan)]


def served_certificate(host):
    """The certinfo.Certificate Postfix presents on SERVED_HOST port 25 after STARTTLS (SNI: host)."""
    return certinfo.fetch(SERVED_HOST, SMTP_PORT, certinfo.SMTP_STARTTLS, host)


def check_served_key(plan, fetch=None):
    """Whether the running Postfix presents the key of its certificate file: {"status": "ok",
    "different" (the file changed, Postfix not reloaded) or "unknown" (no certificate had,
    error says why), "file", "file_key", "served_key", "error"}; None without a certificate file."""
    certificate = plan.get("certificate")
    if certificate is None:
        return None
    result = {"port": SMTP_PORT, "file": plan["cert_file"], "file_key": certificate.spki_sha256,
              "served_key": None, "error": None}
    try:
        served = (fetch or served_certificate)(plan["host"])
    except certinfo.CertError as err:
        return dict(result, status="unknown", error=str(err))
    result["served_key"] = served.spki_sha256
    return dict(result, status="ok" if served.spki_sha256 == certificate.spki_sha256 else "different")


def fetch_policy(url, timeout=10):
    """The MTA-STS policy as senders fetch it: over HTTPS with a certificate valid for
    its name (the system's trusted CAs), no redirects followed (RFC 8461 3.3)."""
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    with urllib.request.build_opener(NoRedirect).open(url, timeout=timeout) as response:
        return response.read(64 * 1024).decode("utf-8", "replace")


def check_policies(plan, fetch=None):
    """[{"domain", "url", "status" ("ok", "different", "failed"), "error"}] for each domain
    whose MTA-STS policy the plan has (--mta-sts): the one served against ours."""
    results = []
    for entry in plan["domains"]:
        if not entry.get("mta_sts"):
            continue
        url = entry["mta_sts"]["url"]
        result = {"domain": entry["domain"], "url": url, "status": "ok", "error": None}
        try:
            served = parse_policy((fetch or fetch_policy)(url))
        except (OSError, ValueError) as err:
            result.update(status="failed", error=str(getattr(err, "reason", None) or err))
        else:
            if served != parse_policy(entry["mta_sts"]["policy"]):
                result.update(status="different", error=_("serves mode {mode}, mx {mx}").format(
                    mode=served["mode"], mx=" ".join(served["mx"]) or "-"))
        results.append(result)
    return results


def healthy(results, served=None, policies=()):
    return (not any(is_problem(r[0], r[1]) for r in results) and not (served and served["status"] == "different")
            and all(p["status"] == "ok" for p in policies))


def print_check(results, out, served=None, policies=()):
    """One line a record, one about the key Postfix presents (served: check_served_key), then a summary."""
    labels = {
        # Translators: a result of `mailsetup dns --check`, at the start of a line (padded to 10 characters).
        "ok": _("ok"),
        # Translators: a result of `mailsetup dns --check`: published with another value.
        "different": _("different"),
        # Translators: a result of `mailsetup dns --check`: not published.
        "missing": _("MISSING"),
        # Translators: a result of `mailsetup dns --check`: the lookup did not work.
        "failed": _("FAILED"),
        # Translators: a result of `mailsetup dns --check`: it could not be found out.
        "unknown": _("unknown"),
    }
    for record, status, found, error in results:
        line = f"{labels[status]:10} {record.name} {record.type}"
        if status == "different":
            line += "  " + _("(published: {values})").format(values=" ".join(_quoted(v) for v in found))
        elif status == "failed":
            line += "  " + _("(lookup failed: {error})").format(error=error)
        print(line, file=out)
    problems = sum(1 for r in results if is_problem(r[0], r[1]))
    if served is not None:
        where = f"{SERVED_HOST}:{served['port']}"
        if served["status"] == "ok":
            text = _("{where} presents the key of {path}").format(where=where, path=served["file"])
        elif served["status"] == "different":
            problems += 1
            text = _("{where} presents another key than {path}: the file was changed and Postfix not reloaded "
                     "(postfix reload)").format(where=where, path=served["file"])
        else:
            text = _("{where}: the key Postfix presents is not known ({error})").format(
                where=where, error=served["error"])
        print(f"{labels[served['status']]:10} {text}", file=out)
    for policy in policies:
        status = policy["status"]
        if status != "ok":
            problems += 1
        # Translators: {url} is where the MTA-STS policy is served.
        text = _("MTA-STS policy at {url}").format(url=policy["url"])
        if policy["error"]:
            text += f"  ({policy['error']})"
        print(f"{labels[status]:10} {text}", file=out)
    ok = sum(1 for r in results if r[1] == "ok")
    print(ngettext("{ok} of {total} records published as printed; {problems} problem",
                   "{ok} of {total} records published as printed; {problems} problems",
                   problems).format(ok=ok, total=len(results), problems=problems), file=out)


# ------------------------------------------------------------------ the command

def cmd_dns(args, tools):
    lookup = None
    if args.check:
        lookup = dnspython_lookup()
        if lookup is None:
            raise DnsError(_("--check needs python3-dnspython, which is not installed "
                             "(apt install python3-dnspython)"))
    plan = collect(tools.system, args.domain, mta_sts=args.mta_sts)
    results = check_all(plan, lookup) if args.check else None
    served = check_served_key(plan) if args.check else None
    policies = check_policies(plan) if args.check else ()
    if args.json:
        data = plan_json(plan)
        if results is not None:
            data["check"] = [dict(r.to_json(), status=status, published=found, error=error)
                             for r, status, found, error in results]
            data["served_key"] = served
            data["mta_sts_policies"] = policies
        dump_json(data)
    elif results is not None:
        print_check(results, sys.stdout, served, policies)
    else:
        sys.stdout.write(render_zone(plan))
    return EXIT_PROBLEM if results is not None and not healthy(results, served, policies) else EXIT_OK


def register(sub):
    """Add the command dns to the subparsers of `mailsetup`."""
    command = parser(sub, "dns", _("the DNS records to publish for the mail domains"),
                     _("Print the DNS records to publish for the mail domains of this server "
                       "(MX, the server's A/AAAA and TLSA, SPF, DKIM, DMARC, the SRV and CNAME records "
                       "mail programs set themselves up from and, on request, MTA-STS "
                       "and TLS-RPT), in zone-file syntax."))
    arguments(command).add_argument("domain", metavar="DOMAIN", nargs="?",
                                    help=_("only this mail domain (default: every mail domain of the server)"))
    optional = options(command)
    optional.add_argument("--mta-sts", action="store_true",
                          help=_("also the MTA-STS and TLS-RPT records, and the MTA-STS policy file"))
    optional.add_argument("--check", action="store_true",
                          help=_("look the records up in the DNS and say which are missing or different, "
                                 "compare the key port 25 presents and, with --mta-sts, the policy served "
                                 "(needs python3-dnspython)"))
    json_option(optional)
    command.set_defaults(func=cmd_dns)
