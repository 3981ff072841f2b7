"""A private network of several booted test beds: a bridge in a network
namespace of its own, one veth pair per bed, documentation addresses
(198.51.100.0/24) only.

    lan namespace (made here)            each bed's private network namespace
      ms-lan (bridge)                      lo
        ms-lanN  <-- veth pair -->         ms-grp  198.51.100.X/24

As with outside.py: the pairs are born in the lan namespace with their peers
put straight into the beds' namespaces (never in the host's), no namespace
gets a default route (checked), and the lan namespace is held by a process
whose stdin is a pipe of the test process, so it goes away with it.
"""

import os
import subprocess

from .outside import _netns_id, _run
from .testbed import log

PREFIX = 24
BRIDGE = "ms-lan"
BED_IF = "ms-grp"


class Lan:
    def __init__(self):
        self.members = []
        self.proc = subprocess.Popen(
            ["unshare", "--net", "--", "/bin/sh", "-c",
             "ip link set lo up && ip link add %s type bridge && ip link set %s up && echo READY"
             " && exec cat >/dev/null" % (BRIDGE, BRIDGE)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd="/")
        line = self.proc.stdout.readline().decode(errors="replace").strip()
        if line != "READY":
            raise RuntimeError("lan namespace did not start: %r %s" % (
                line, self.proc.stderr.read().decode(errors="replace")))
        self.pid = self.proc.pid
        if _netns_id(self.pid) == _netns_id(os.getpid()):
            raise RuntimeError("the lan namespace is the host's")

    def lan(self, argv, check=True):
        return _run(["nsenter", "--target", str(self.pid), "--net", "--"] + list(argv), check=check)

    def join(self, bed, address):
        """Put bed on the network with address (198.51.100.X)."""
        if not address.startswith("198.51.100."):
            raise ValueError("only documentation addresses: %s" % address)
        if _netns_id(bed.pid) in (_netns_id(os.getpid()), _netns_id(self.pid)):
            raise RuntimeError("the bed's network namespace is not its own")
        port = "ms-lan%d" % len(self.members)
        self.lan(["ip", "link", "add", port, "type", "veth", "peer", "name", BED_IF, "netns", str(bed.pid)])
        self.lan(["ip", "link", "set", port, "master", BRIDGE, "up"])
        inside = ["nsenter", "--target", str(bed.pid), "--net", "--"]
        _run(inside + ["ip", "addr", "add", "%s/%d" % (address, PREFIX), "dev", BED_IF])
        _run(inside + ["ip", "link", "set", BED_IF, "up"])
        for family in ("-4", "-6"):
            default = _run(inside + ["ip", family, "route", "show", "default"]).stdout.strip()
            if default:
                raise RuntimeError("the bed has a default route: %s" % default)
        self.members.append((bed, address))
        log("bed %s joined the lan as %s" % (bed.hostname, address))

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        for f in (self.proc.stdout, self.proc.stderr):
            f.close()
