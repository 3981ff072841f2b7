"""Namespace holder for a test root (run by testbed.py, never imported).

Started as
    unshare --net --mount --pid --uts --ipc --fork --propagation private \
        /usr/bin/python3 _holder.py CONFIG_JSON

so it is PID 1 of a fresh PID namespace, alone in fresh mount, network, UTS
and IPC namespaces.  It

  * mounts /proc, a private /dev, and the bind mounts listed in the config
    under the root -- inside the private mount namespace only, so nothing is
    ever visible on (or has to be unmounted from) the host;
  * brings up the loopback interface of the private network namespace;
  * sets the host name of the private UTS namespace;
  * receives syslog datagrams on ROOT/dev/log and appends them to a log file
    (Postfix logs there; there is no syslog daemon in the root);
  * reaps orphans (daemons started in the root are re-parented to it);
  * writes "READY" on stdout, then lives until its stdin reaches EOF or it
    gets SIGTERM.  When it exits, the kernel kills every process left in the
    PID namespace and the mount namespace with all its mounts goes away.

Because its stdin is a pipe held by the test process, the whole testbed also
goes away if pytest dies.
"""

import json
import os
import select
import signal
import socket
import subprocess
import sys

DEVICES = ("null", "zero", "full", "random", "urandom", "tty")


def sh(*argv):
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL)


def setup(cfg):
    root = cfg["root"]
    sh("mount", "--make-rprivate", "/")
    sh("mount", "-t", "proc", "-o", "nosuid,nodev,noexec", "proc", root + "/proc")

    dev = root + "/dev"
    sh("mount", "-t", "tmpfs", "-o", "mode=0755,nosuid", "tmpfs", dev)
    for name in DEVICES:
        path = os.path.join(dev, name)
        open(path, "w").close()
        sh("mount", "--bind", "/dev/" + name, path)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"),
                         ("ptmx", "pts/ptmx")):
        os.symlink(target, os.path.join(dev, name))
    os.mkdir(dev + "/pts")
    sh("mount", "-t", "devpts", "-o", "newinstance,ptmxmode=0666,mode=0620,gid=5",
       "devpts", dev + "/pts")
    os.mkdir(dev + "/shm", 0o1777)
    sh("mount", "-t", "tmpfs", "-o", "mode=1777,nosuid,nodev", "tmpfs", dev + "/shm")

    for src, dst in cfg.get("binds", []):
        os.makedirs(dst, exist_ok=True)
        sh("mount", "--bind", src, dst)

    sh("ip", "link", "set", "lo", "up")
    socket.sethostname(cfg.get("hostname", "testbed"))


def main():
    cfg = json.loads(sys.argv[1])
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))

    def reap(*_):
        while True:
            try:
                pid, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return

    signal.signal(signal.SIGCHLD, reap)

    try:
        setup(cfg)
        log = open(cfg["syslog"], "ab", buffering=0)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(cfg["root"] + "/dev/log")
        os.chmod(cfg["root"] + "/dev/log", 0o666)
    except Exception as exc:  # reported to the test process, which fails
        print("SETUP FAILED: %s" % exc, flush=True)
        return 1

    print("READY", flush=True)
    stdin = sys.stdin.buffer.raw
    while True:
        readable, _, _ = select.select([stdin, sock], [], [])
        if sock in readable:
            data = sock.recv(65536)
            log.write(data.rstrip(b"\0\n") + b"\n")
        if stdin in readable:
            if not os.read(stdin.fileno(), 4096):
                return 0


if __name__ == "__main__":
    sys.exit(main())
