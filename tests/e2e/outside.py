"""An "outside host" for the end-to-end tests: a second network namespace,
joined to a Testbed's private network namespace by a veth pair, so that the
Postfix in the test bed sees an SMTP client that is not on loopback and not
in mynetworks.

    bed (private netns of the Testbed)          outside (netns made here)
      lo 127.0.0.1                                lo 127.0.0.1
      ms-srv 192.0.2.1/24  2001:db8:25::1/64 <--> ms-out 192.0.2.2/24  2001:db8:25::2/64

Network rules kept here:
  * only documentation addresses (192.0.2.0/24, 2001:db8::/32), assigned to
    the two ends of the veth pair only;
  * the veth pair is created inside the outside namespace with its peer put
    straight into the test bed's namespace: it never exists in the host's
    network namespace, and neither namespace gets a default route (checked);
  * the outside namespace is held by a process whose stdin is a pipe held by
    the test process, so it (and with it the veth pair) also goes away if the
    test process dies; close() ends it explicitly.

Clients run the host's Debian python3 (smtplib, socket) inside the outside
namespace with nsenter --net; nothing of the host file system changes.
"""

import json
import os
import subprocess
import time

from .testbed import HOST_PYTHON, log

SERVER_IP = "192.0.2.1"
OUTSIDE_IP = "192.0.2.2"
SERVER_IP6 = "2001:db8:25::1"
OUTSIDE_IP6 = "2001:db8:25::2"
PREFIX, PREFIX6 = 24, 64
SERVER_IF, OUTSIDE_IF = "ms-srv", "ms-out"

_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8"}

# Runs in the outside namespace: one SMTP session per call, raw commands, every
# reply code kept.  Input (JSON on stdin):
#   {"host":, "port":, "commands": [[verb, arg], ...]}
# verbs: "cmd" (raw line, sent as is), "data" (message text, DATA + body + ".").
# Output (JSON): {"greeting": [code, text], "replies": [[code, text], ...]} or
# {"error": "ExceptionName: text"} when no session could be opened.
_DIALOGUE = r"""
import json, smtplib, sys
p = json.load(sys.stdin)
out = {"replies": []}
try:
    s = smtplib.SMTP(timeout=20)
    code, msg = s.connect(p["host"], p["port"])
    out["greeting"] = [code, msg.decode(errors="replace")]
except OSError as e:
    print(json.dumps({"error": "%s: %s" % (type(e).__name__, e)}))
    sys.exit(0)
try:
    for verb, arg in p["commands"]:
        if verb == "cmd":
            code, msg = s.docmd(arg)
        elif verb == "data":
            code, msg = s.docmd("DATA")
            if code == 354:
                s.send(smtplib.quotedata(arg).encode() + b"\r\n.\r\n")
                code, msg = s.getreply()
        else:
            raise ValueError(verb)
        out["replies"].append([code, msg.decode(errors="replace")])
    try:
        s.quit()
    except smtplib.SMTPException:
        pass
except (OSError, smtplib.SMTPException) as e:
    out["error"] = "%s: %s" % (type(e).__name__, e)
print(json.dumps(out))
"""

# Runs in the outside namespace: try a TCP connection; print "connected",
# "refused", "timeout" or the error.
_CONNECT = r"""
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
try:
    socket.create_connection((host, port), timeout=5).close()
    print("connected")
except ConnectionRefusedError:
    print("refused")
except socket.timeout:
    print("timeout")
except OSError as e:
    print("%s: %s" % (type(e).__name__, e))
"""


def _run(argv, check=True, input=None, timeout=60):
    proc = subprocess.run(argv, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env=_ENV, cwd="/", timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError("command failed (exit %d): %s\n%s%s" % (
            proc.returncode, " ".join(argv), proc.stdout, proc.stderr))
    return proc


def _netns_id(pid):
    return os.readlink("/proc/%d/ns/net" % pid)


class OutsideHost:
    """The outside network namespace and the veth pair to `bed`.  Use as a
    context manager or call close() (always: it removes the veth pair and the
    namespace; safe to call twice and after a failed setup)."""

    def __init__(self, bed, ipv6=True):
        self.bed = bed
        self.ipv6 = ipv6
        self.proc = None
        self._closed = False
        try:
            self._setup()
        except BaseException:
            self.close()
            raise

    # -- setup ------------------------------------------------------------

    def _setup(self):
        self.proc = subprocess.Popen(
            ["unshare", "--net", "--", "/bin/sh", "-c",
             "ip link set lo up && echo READY && exec cat >/dev/null"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=_ENV, cwd="/")
        line = self.proc.stdout.readline().decode(errors="replace").strip()
        if line != "READY":
            raise RuntimeError("outside namespace did not start: %r %s"
                               % (line, self.proc.stderr.read().decode(errors="replace")))
        self.pid = self.proc.pid
        host_ns, bed_ns, out_ns = _netns_id(os.getpid()), _netns_id(self.bed.pid), \
            _netns_id(self.pid)
        # Never configure the host's network namespace by mistake.
        if len({host_ns, bed_ns, out_ns}) != 3:
            raise RuntimeError("network namespaces are not distinct: host %s, bed %s, outside %s"
                               % (host_ns, bed_ns, out_ns))
        # The pair is born in the outside namespace, its peer directly in the bed's.
        self.outside(["ip", "link", "add", OUTSIDE_IF, "type", "veth",
                      "peer", "name", SERVER_IF, "netns", str(self.bed.pid)])
        for ns, ifname, ip4, ip6 in ((self.server, SERVER_IF, SERVER_IP, SERVER_IP6),
                                     (self.outside, OUTSIDE_IF, OUTSIDE_IP, OUTSIDE_IP6)):
            ns(["ip", "addr", "add", "%s/%d" % (ip4, PREFIX), "dev", ifname])
            if self.ipv6:
                ns(["ip", "-6", "addr", "add", "%s/%d" % (ip6, PREFIX6), "dev", ifname,
                    "nodad"])
            ns(["ip", "link", "set", ifname, "up"])
        self._check_isolated()
        self._wait_link()
        log("outside host ready: %s (netns of pid %d) <-> %s (test bed)"
            % (OUTSIDE_IP, self.pid, SERVER_IP))

    def _check_isolated(self):
        """Neither namespace may route anywhere but the veth subnet and lo."""
        for name, ns in (("test bed", self.server), ("outside", self.outside)):
            for family in ("-4", "-6"):
                default = ns(["ip", family, "route", "show", "default"]).stdout.strip()
                if default:
                    raise RuntimeError("%s namespace has a default route: %s" % (name, default))
        if SERVER_IF in _run(["ip", "-o", "link", "show"]).stdout or \
                OUTSIDE_IF in _run(["ip", "-o", "link", "show"]).stdout:
            raise RuntimeError("a veth end showed up in the host's network namespace")

    def _wait_link(self, timeout=10):
        """Until both ends of the veth pair have carrier (LOWER_UP)."""
        end = time.time() + timeout
        while True:
            links = [ns(["ip", "-o", "link", "show", "dev", ifname]).stdout
                     for ns, ifname in ((self.server, SERVER_IF), (self.outside, OUTSIDE_IF))]
            if all("LOWER_UP" in link for link in links):
                return
            if time.time() > end:
                raise RuntimeError("veth pair has no carrier:\n%s" % "".join(links))
            time.sleep(0.1)

    # -- running commands -------------------------------------------------

    def outside(self, argv, check=True, input=None, timeout=60):
        """Run a host program in the outside network namespace."""
        return _run(["nsenter", "--target", str(self.pid), "--net", "--"] + list(argv),
                    check=check, input=input, timeout=timeout)

    def server(self, argv, check=True, input=None, timeout=60):
        """Run a host program in the test bed's network namespace."""
        return _run(["nsenter", "--target", str(self.bed.pid), "--net", "--"] + list(argv),
                    check=check, input=input, timeout=timeout)

    # -- clients ----------------------------------------------------------

    def smtp(self, commands, host=SERVER_IP, port=25):
        """One SMTP session from the outside: `commands` is a list of
        ("cmd", "RAW LINE") or ("data", message).  Returns the dict printed by
        _DIALOGUE (greeting, replies, maybe error)."""
        payload = json.dumps({"host": host, "port": port, "commands": commands})
        res = self.outside([HOST_PYTHON, "-c", _DIALOGUE], input=payload, check=False)
        if res.returncode != 0:
            raise AssertionError("SMTP client failed:\n%s%s" % (res.stdout, res.stderr))
        return json.loads(res.stdout)

    def connect(self, host=SERVER_IP, port=25):
        """"connected", "refused", "timeout" or an error text."""
        return self.outside([HOST_PYTHON, "-c", _CONNECT, host, str(port)]).stdout.strip()

    # -- teardown ---------------------------------------------------------

    def close(self):
        if self._closed:
            return
        self._closed = True
        # Remove the pair from the bed's side (deleting one end deletes both),
        # then end the namespace, which would remove it anyway.
        if self.bed.pid and os.path.exists("/proc/%d" % self.bed.pid):
            try:
                self.server(["ip", "link", "del", SERVER_IF], check=False)
            except Exception as exc:  # teardown goes on
                log("removing %s failed: %s" % (SERVER_IF, exc))
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.stdin.close()
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=10)
            for f in (self.proc.stdout, self.proc.stderr):
                f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
