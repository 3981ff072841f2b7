"""mailsetup/dnssec.py against a tiny DNS responder on 127.0.0.1 (a thread answering over UDP with
the AD bit set, not set, or not at all), and the core's outgoing TLS keys it decides."""

import dataclasses
import socket
import struct
import threading
import time

import pytest

from mailsetup import dnssec
from mailsetup.core import apply as core
from mailsetup.core import report
from mailsetup.core.settings import CoreSettings
from mailsetup.postfix_tools import Postconf
from mailsetup.state import StateDir

from test_core import ANSWERS


class Responder:
    """Answers every query on 127.0.0.1 (a free UDP port): mode "ad" with QR, RA and AD set,
    "plain" without AD, "servfail" with AD but SERVFAIL, "silent" not at all. queries: what came."""

    def __init__(self, mode):
        self.mode = mode
        self.queries = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            self.queries.append(data)
            if self.mode == "silent":
                continue
            qid, = struct.unpack("!H", data[:2])
            flags = 0x8000 | 0x0100 | 0x0080 | (0x0020 if self.mode in ("ad", "servfail") else 0)
            flags |= 2 if self.mode == "servfail" else 0
            question = data[12:data.index(b"\0", 12) + 5]
            self.sock.sendto(struct.pack("!H", qid ^ 1) + data[2:], peer)  # another id first: ignored
            self.sock.sendto(struct.pack("!HHHHHH", qid, flags, 1, 0, 0, 0) + question, peer)

    def close(self):
        self.sock.close()


@pytest.fixture
def responder():
    started = []

    def start(mode):
        started.append(Responder(mode))
        return started[-1]
    yield start
    for r in started:
        r.close()


def test_the_query_has_rd_ad_and_do():
    message = dnssec.query_message(0x1234)
    qid, flags, qd, an, ns, ar = struct.unpack("!HHHHHH", message[:12])
    assert (qid, flags, qd, an, ns, ar) == (0x1234, 0x0100 | 0x0020, 1, 0, 0, 1)
    assert message[12:17] == b"\0" + struct.pack("!HH", 6, 1)  # ".", SOA, IN
    assert message[17:] == b"\0" + struct.pack("!HHIH", 41, 1232, 0x8000, 0)  # OPT with DO
    assert dnssec.query_message(1, "example.org.")[12:25] == b"\x07example\x03org\0"


@pytest.mark.parametrize("mode,validates", [("ad", True), ("plain", False), ("servfail", False)])
def test_the_ad_bit_of_the_answer(responder, mode, validates):
    server = responder(mode)
    assert dnssec.ad_answer("127.0.0.1", server.port, timeout=2) is validates
    assert server.queries and server.queries[0][2:4] == struct.pack("!H", 0x0120)
    assert dnssec.resolver_validates("nameserver 127.0.0.1\n", port=server.port) is validates


def test_no_answer_within_the_timeout(responder):
    server = responder("silent")
    start = time.monotonic()
    assert dnssec.resolver_validates("nameserver 127.0.0.1\n", port=server.port, timeout=0.3) is False
    assert time.monotonic() - start < 1.5 and server.queries


def test_nothing_listening():
    free = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    assert dnssec.ad_answer("127.0.0.1", port, timeout=0.5) is False


def test_only_loopback_resolvers_are_trusted(responder):
    server = responder("ad")
    ok = "# written by hand\nsearch example.org\nnameserver 127.0.0.1\noptions edns0 trust-ad\n"
    assert dnssec.resolver_validates(ok, port=server.port)
    assert dnssec.resolver_validates("", port=server.port)  # no nameserver line: the local one
    assert not dnssec.resolver_validates(ok + "nameserver 192.0.2.53\n", port=server.port)  # not even asked
    assert len(server.queries) == 2
    assert dnssec.nameservers("nameserver 127.0.0.53 # resolved\nnameserver ::1\n") == ["127.0.0.53", "::1"]
    assert [dnssec.is_loopback(a) for a in ("127.0.0.53", "127.1.2.3", "::1", "::1%lo", "10.0.0.1",
                                            "fe80::1%eth0", "192.168.1.1", "localhost")] == [
        True, True, True, True, False, False, False, False]


def test_resolv_conf_read_from_the_path(responder, tmp_path):
    server = responder("plain")
    (tmp_path / "resolv.conf").write_text("nameserver 127.0.0.1\n")
    assert dnssec.resolver_validates(path=str(tmp_path / "resolv.conf"), port=server.port) is False
    assert server.queries


# ------------------------------------------------------------------ the core's keys

def settings():
    return CoreSettings.from_answers(dict(ANSWERS), lambda name: False)


def outgoing(system):
    return Postconf(system.postfix_config_dir).explicit(["smtp_tls_security_level", "smtp_dns_support_level"])


def test_dane_only_with_a_validating_resolver(scratch):
    assert scratch.dnssec_validates() is False  # run_services off: the resolver is not asked
    outcome = core.apply(settings(), scratch)
    assert outgoing(scratch) == {"smtp_tls_security_level": "may", "smtp_dns_support_level": None}
    assert outcome.outgoing_tls == "may"
    validating = dataclasses.replace(scratch, dnssec=True)
    outcome = core.apply(settings(), validating)
    assert outcome.changed == ["main.cf"] and outcome.outgoing_tls == "dane"
    assert outgoing(scratch) == {"smtp_tls_security_level": "dane", "smtp_dns_support_level": "dnssec"}
    assert core.apply(settings(), validating).changed == []
    assert core.apply(settings(), scratch).changed == ["main.cf"]  # the resolver no longer validates
    assert outgoing(scratch) == {"smtp_tls_security_level": "may", "smtp_dns_support_level": None}
    # purge puts back what was there before mailsetup: neither line in the scratch main.cf
    originals = StateDir(scratch.state_dir).postfix_originals()
    assert originals["smtp_tls_security_level"] is None and originals["smtp_dns_support_level"] is None


def test_the_system_asks_the_resolver_once_per_apply(scratch, monkeypatch):
    asked = []
    system = dataclasses.replace(scratch, run_services=True, resolv_conf_path="/nonexistent/resolv.conf")
    monkeypatch.setattr(dnssec, "resolver_validates", lambda path: asked.append(path) or True)
    assert system.dnssec_validates() is True and asked == ["/nonexistent/resolv.conf"]
    assert dataclasses.replace(system, dnssec=False).dnssec_validates() is False and len(asked) == 1


def test_the_report_says_which_was_chosen():
    text = report.render(settings(), core.Outcome(changed=[], postfix="unchanged", outgoing_tls="dane"))
    assert "  Outgoing TLS:       DANE where the receiving domain publishes TLSA records" in text
    text = report.render(settings(), core.Outcome(changed=[], postfix="unchanged", outgoing_tls="may"))
    assert "(the resolver does not validate DNSSEC: no DANE)" in text
    assert "Outgoing TLS" not in report.render(settings(), core.Outcome(changed=[], postfix="unchanged"))
