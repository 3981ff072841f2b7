"""Whether the system's resolver validates DNSSEC, so that Postfix may use DANE
for outgoing mail (smtp_tls_security_level = dane, smtp_dns_support_level = dnssec).

Postfix does not validate DNSSEC itself: it asks the resolvers of
/etc/resolv.conf through libc and trusts the AD ("authenticated data") bit of
their answers (it sets glibc's RES_TRUSTAD itself). So the rule is, as
Postfix's DANE README advises:

1. every `nameserver` of /etc/resolv.conf is a loopback address (127.0.0.0/8
   or ::1): the AD bit of a resolver elsewhere on the network could be forged
   on the way; no nameserver line at all means the local one (resolv.conf(5));
2. each of them answers a query for the root zone's SOA, sent with the RD, AD
   and (EDNS0) DO bits, within TIMEOUT seconds with the AD bit set: the root
   zone is signed, so a validating resolver sets it.

Anything else (a remote resolver, no answer, an answer without AD) means
"does not validate": outgoing TLS stays opportunistic (may). The query is a
minimal DNS message over UDP written here with the standard library.

The decision is made when the core's answers are applied (installation,
dpkg-reconfigure mailsetup): after installing a validating resolver such as
unbound (and pointing /etc/resolv.conf at it), run dpkg-reconfigure mailsetup.
System.dnssec_validates() is where the core asks; tests set System.dnssec.
"""

import ipaddress
import os
import socket
import struct
import time

RESOLV_CONF = "/etc/resolv.conf"
DNS_PORT = 53
TIMEOUT = 2.0
DEFAULT_NAMESERVER = "127.0.0.1"  # resolv.conf(5): without a nameserver line, the local one
# Header flags (RFC 1035, RFC 4035): QR, RD, AD; the EDNS0 OPT record's DO bit (RFC 3225).
QR, RD, AD = 0x8000, 0x0100, 0x0020
DO = 0x8000
TYPE_SOA, TYPE_OPT, CLASS_IN = 6, 41, 1
EDNS_PAYLOAD = 1232
NOERROR = 0


def nameservers(text):
    """The addresses of the nameserver lines of a resolv.conf text, in order (the default,
    127.0.0.1, without any)."""
    found = []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            found.append(fields[1])
    return found or [DEFAULT_NAMESERVER]


def is_loopback(address):
    """127.0.0.0/8 or ::1 (a zone index, as in ::1%lo, is allowed); False for what is no address."""
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def query_message(qid, name=".", qtype=TYPE_SOA):
    """A DNS query for name (absolute, "." for the root) with RD and AD set and an EDNS0 OPT
    record with the DO bit."""
    header = struct.pack("!HHHHHH", qid, RD | AD, 1, 0, 0, 1)
    labels = [part for part in name.rstrip(".").split(".") if part]
    qname = b"".join(bytes([len(label)]) + label.encode("ascii") for label in labels) + b"\0"
    question = qname + struct.pack("!HH", qtype, CLASS_IN)
    # OPT: root name, type, class = UDP payload size, TTL = extended rcode, version, flags (DO), no data
    opt = b"\0" + struct.pack("!HHBBHH", TYPE_OPT, EDNS_PAYLOAD, 0, 0, DO, 0)
    return header + question + opt


def authenticated(response, qid):
    """Whether response answers query qid (a response, NOERROR) with the AD bit set;
    None when it is not the answer to it (too short, another id, not a response)."""
    if len(response) < 12:
        return None
    rid, flags = struct.unpack("!HH", response[:4])
    if rid != qid or not flags & QR:
        return None
    return bool(flags & AD) and (flags & 0x000F) == NOERROR


def ad_answer(server, port=DNS_PORT, timeout=TIMEOUT, name="."):
    """Whether server answers the query for name's SOA with the AD bit within timeout seconds."""
    address = server.split("%", 1)[0]
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    qid = int.from_bytes(os.urandom(2), "big")
    end = time.monotonic() + timeout
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.connect((address, port))
            sock.send(query_message(qid, name))
            while True:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                sock.settimeout(left)
                verdict = authenticated(sock.recv(4096), qid)
                if verdict is not None:
                    return verdict
    except OSError:  # timed out, refused (ICMP port unreachable), no route
        return False


def resolver_validates(text=None, path=RESOLV_CONF, port=DNS_PORT, timeout=TIMEOUT):
    """The rule of this module: every nameserver of the resolv.conf text (read from path
    when None) is a loopback address and answers with the AD bit."""
    if text is None:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read()
        except OSError:
            text = ""
    servers = nameservers(text)
    return all(is_loopback(s) for s in servers) and all(ad_answer(s, port, timeout) for s in servers)
