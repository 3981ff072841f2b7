"""End-to-end test bed: a throw-away Debian root with real apt, dpkg, debconf
and Postfix, isolated in private namespaces.

Layout of one test bed (a fresh directory under $MAILSETUP_TEST_TMPDIR,
default /var/tmp):

    root/   the extracted base tarball (the Debian system under test)
    logs/   syslog.log (everything logged to /dev/log in the root, i.e. the
            mail log), holder.log, one file per command output

A holder process (_holder.py, PID 1 of a new PID namespace, with new mount,
network, UTS and IPC namespaces) keeps the namespaces alive.  Every command
enters them with nsenter and chroots into root/.  Commands run with the
private network namespace (loopback only) unless they are asked to use the
host network; the only host-network use is apt downloading packages from the
Debian mirror (`apt_install` downloads first on the host network, then
installs, i.e. runs all maintainer scripts, in the private one).

Base tarballs (mmdebstrap) and downloaded .debs are cached under
$MAILSETUP_TEST_CACHE, default /var/cache/mailsetup-tests.
"""

import fcntl
import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
HOLDER = os.path.join(HERE, "_holder.py")
HOST_PYTHON = "/usr/bin/python3"   # Debian's, whatever python3 is on PATH

CACHE_DIR = os.environ.get("MAILSETUP_TEST_CACHE", "/var/cache/mailsetup-tests")
TMP_DIR = os.environ.get("MAILSETUP_TEST_TMPDIR", "/var/tmp")
TARBALL_MAX_AGE = 7 * 24 * 3600
MMDEBSTRAP_ARGS = ["--variant=apt", "--include=apt-utils,ca-certificates",
                   # keep the package lists: a later `apt-get update` is then
                   # mostly "Hit" answers
                   "--skip=cleanup/apt/lists",
                   '--aptopt=Acquire::Retries "3"']

REPO_IN_ROOT = "/srv/mailsetup-repo"
HOSTNAME = "testbed"

ROOT_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "TERM": "dumb",
    "DEBIAN_FRONTEND": "noninteractive",
    "APT_LISTCHANGES_FRONTEND": "none",
}

# How long apt waits for the shared package cache: a bed beside this one holds
# its lock for a whole install, maintainer scripts and service starts included.
APT_LOCK_WAIT = 1200

# A package cache of a bed's own, for an apt-get that cannot wait for the
# shared cache's lock.
OWN_ARCHIVES = "/var/cache/apt/archives-own"
APT = ("apt-get -q -y -o Dpkg::Use-Pty=0 -o DPkg::Lock::Timeout=60 "
       "-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold")


class CommandFailed(AssertionError):
    """A command in the test bed exited with an unexpected status."""

    def __init__(self, result):
        self.result = result
        super().__init__(
            "command failed with exit status %d: %s\n--- stdout (tail) ---\n%s"
            "\n--- stderr (tail) ---\n%s"
            % (result.returncode, result.cmd, _tail(result.stdout),
               _tail(result.stderr)))


class Result:
    def __init__(self, cmd, returncode, stdout, stderr, seconds):
        self.cmd = cmd
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.seconds = seconds

    def __repr__(self):
        return "Result(rc=%d, cmd=%r)" % (self.returncode, self.cmd)


def _tail(text, lines=40):
    parts = text.rstrip("\n").split("\n")
    return "\n".join(parts[-lines:])


def log(msg):
    # Shown by pytest for failing tests (captured), and live with -s.
    print("[testbed %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Base tarball cache
# --------------------------------------------------------------------------

def base_tarball(suite):
    """Path of a cached `mmdebstrap` tarball of `suite` for test beds."""
    return cached_mmdebstrap("%s.tar.zst" % suite, MMDEBSTRAP_ARGS + [suite])


def cached_mmdebstrap(name, args):
    """Path of CACHE_DIR/name, a tarball made by `mmdebstrap args` (its
    compression follows the name), made anew if missing, if older than
    7 days, or if made with other arguments."""
    os.makedirs(CACHE_DIR, exist_ok=True)
    tarball = os.path.join(CACHE_DIR, name)
    stamp = tarball + ".args"
    with open(os.path.join(CACHE_DIR, ".lock"), "w") as lockf:
        fcntl.flock(lockf, fcntl.LOCK_EX)
        try:
            fresh = (time.time() - os.path.getmtime(tarball) < TARBALL_MAX_AGE
                     and open(stamp).read() == json.dumps(args))
        except OSError:
            fresh = False
        if not fresh:
            log("creating base tarball %s (mmdebstrap %s)" % (tarball, " ".join(args)))
            start = time.time()
            stem, dot, ext = name.partition(".")
            partial = os.path.join(CACHE_DIR, "%s.partial%s%s" % (stem, dot, ext))
            proc = subprocess.run(["mmdebstrap", "--quiet"] + args + [partial],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
            if proc.returncode != 0:
                raise RuntimeError("mmdebstrap %s failed (exit %d):\n%s"
                                   % (" ".join(args), proc.returncode, _tail(proc.stdout, 60)))
            os.replace(partial, tarball)
            with open(stamp, "w") as f:
                f.write(json.dumps(args))
            log("base tarball made in %.1f s" % (time.time() - start))
    return tarball


def _mounts_under(directory):
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f
                if line.split()[4].startswith(directory.rstrip("/") + "/")]


def remove_stale_testbeds():
    """Remove test bed directories left by a test run that was killed (its
    namespaces died with it; only the files are left)."""
    os.makedirs(TMP_DIR, exist_ok=True)
    for name in os.listdir(TMP_DIR):
        d = os.path.join(TMP_DIR, name)
        if not name.startswith("mailsetup-testbed-") or not os.path.isdir(d):
            continue
        try:
            with open(os.path.join(d, "holder.pid")) as f:
                pid = int(f.read())
        except (OSError, ValueError):
            # setup never got that far (or is doing it right now): go by age
            if time.time() - os.path.getmtime(d) < 3600:
                continue
            pid = None
        if pid and os.path.exists("/proc/%d" % pid):
            continue
        if _mounts_under(d) or os.environ.get("MAILSETUP_TEST_KEEP"):
            continue
        log("removing stale test bed %s" % d)
        shutil.rmtree(d, ignore_errors=True)


# --------------------------------------------------------------------------
# The test bed
# --------------------------------------------------------------------------

class Testbed:
    """A Debian root of `suite` with the local repository `repo_dir`
    (a flat apt repository: Packages, Release) available as
    `deb [trusted=yes] file:/srv/mailsetup-repo ./`.

    Use as a context manager, or call close() (always: it is what stops the
    daemons and removes the directory)."""

    def __init__(self, suite="bookworm", repo_dir=None, hostname=HOSTNAME, domain="localdomain",
                 private_archives=False):
        self.suite = suite
        # private_archives: a package cache of the bed's own, for an apt-get
        # run that cannot wait for the shared cache's lock (one typed at a
        # dialog under a pseudo-terminal)
        self.private_archives = private_archives
        self.hostname = hostname
        self.domain = domain
        self.holder = None
        self.pid = None
        self.postfix_running = False
        self._closed = False
        start = time.time()
        tarball = self._tarball()
        remove_stale_testbeds()
        self.dir = tempfile.mkdtemp(prefix="mailsetup-testbed-%s-" % suite, dir=TMP_DIR)
        self.root = os.path.join(self.dir, "root")
        self.logs = os.path.join(self.dir, "logs")
        self.syslog = os.path.join(self.logs, "syslog.log")
        os.mkdir(self.root)
        os.mkdir(self.logs)
        try:
            self._extract(tarball)
            self._prepare_files(repo_dir)
            self._start()
            log("%s test bed ready in %s (%.1f s)" % (suite, self.dir, time.time() - start))
        except BaseException:
            self.close()
            raise

    # -- setup ------------------------------------------------------------

    def _tarball(self):
        return base_tarball(self.suite)

    def _start(self):
        self._start_holder()

    def _extract(self, tarball):
        subprocess.run(["tar", "--zstd", "-xpf", tarball, "-C", self.root,
                        "--numeric-owner"], check=True, stdin=subprocess.DEVNULL)

    def _write(self, path, text, mode=0o644):
        full = self.path(path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as f:
            f.write(text)
        os.chmod(full, mode)

    def _prepare_files(self, repo_dir):
        shutil.copyfile("/etc/resolv.conf", self.path("/etc/resolv.conf"))
        self._write("/etc/hostname", self.hostname + "\n")
        # Without a domain: /etc/hosts names the host alone, as on a fresh VM.
        names = ("%s.%s %s" % (self.hostname, self.domain, self.hostname) if self.domain
                 else self.hostname)
        self._write("/etc/hosts", "127.0.0.1\tlocalhost\n127.0.1.1\t%s\n"
                    "::1\tlocalhost ip6-localhost ip6-loopback\n" % names)
        self._write("/etc/apt/apt.conf.d/90mailsetup-tests",
                    'APT::Keep-Downloaded-Packages "true";\n'
                    'Binary::apt::APT::Keep-Downloaded-Packages "true";\n'
                    'Acquire::Retries "3";\n')
        if repo_dir is not None:
            if not os.path.exists(os.path.join(repo_dir, "Packages")):
                raise RuntimeError("%s is not an apt repository (no Packages file)" % repo_dir)
            shutil.copytree(repo_dir, self.path(REPO_IN_ROOT))
            self._write("/etc/apt/sources.list.d/mailsetup.list",
                        "deb [trusted=yes] file:%s ./\n" % REPO_IN_ROOT)
        archives = os.path.join(CACHE_DIR, "archives", self.suite)
        os.makedirs(os.path.join(archives, "partial"), exist_ok=True)
        self._binds = [] if self.private_archives else [(archives, self.path("/var/cache/apt/archives"))]

    def _start_holder(self):
        cfg = {"root": self.root, "binds": self._binds, "hostname": self.hostname,
               "syslog": self.syslog}
        holder_log = open(os.path.join(self.logs, "holder.log"), "wb")
        self.holder = subprocess.Popen(
            ["unshare", "--net", "--mount", "--pid", "--uts", "--ipc", "--fork",
             "--propagation", "private", HOST_PYTHON, HOLDER, json.dumps(cfg)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=holder_log,
            cwd="/", env={"PATH": ROOT_ENV["PATH"], "LC_ALL": "C.UTF-8"})
        holder_log.close()
        line = self.holder.stdout.readline().decode(errors="replace").strip()
        if line != "READY":
            raise RuntimeError("namespace holder did not start: %r\n%s" % (
                line, open(os.path.join(self.logs, "holder.log")).read()))
        self.pid = self._child_of(self.holder.pid)
        with open(os.path.join(self.dir, "holder.pid"), "w") as f:
            f.write("%d\n" % self.pid)

    @staticmethod
    def _child_of(ppid):
        try:
            with open("/proc/%d/task/%d/children" % (ppid, ppid)) as f:
                kids = f.read().split()
            if kids:
                return int(kids[0])
        except OSError:
            pass
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open("/proc/%s/stat" % entry) as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[1]) == ppid:
                    return int(entry)
        raise RuntimeError("cannot find the namespace holder (child of %d)" % ppid)

    # -- running commands -------------------------------------------------

    def path(self, path):
        """Host path of `path` inside the root."""
        return os.path.join(self.root, path.lstrip("/"))

    def chroot_argv(self, net="private"):
        """argv prefix that enters the test bed's namespaces (private network
        unless net="host") and chroots into its root; append the command, e.g.
        ["/bin/sh", "-c", cmd].  For spawning a command under a pseudo-terminal
        (tests/e2e/dialog.py); run() is the usual way."""
        if self._closed:
            raise RuntimeError("test bed is closed")
        argv = ["nsenter", "--target", str(self.pid), "--mount", "--pid", "--uts", "--ipc"]
        if net == "private":
            argv.append("--net")
        return argv + ["--", "chroot", self.root]

    def run(self, cmd, net="private", check=True, input=None, env=None, timeout=900):
        """Run shell command `cmd` chrooted into the root, in the test bed's
        namespaces.  net="private": loopback-only network namespace (the
        default; daemons and SMTP); net="host": the host's network (only for
        apt downloads).  Output goes to files, not pipes, so a daemon started
        by the command cannot make this wait.  Returns a Result; with
        check=True raises CommandFailed on a non-zero exit status."""
        if self._closed:
            raise RuntimeError("test bed is closed")
        if net not in ("private", "host"):
            raise ValueError("net must be 'private' or 'host'")
        argv = self.chroot_argv(net) + ["/bin/sh", "-c", cmd]
        full_env = dict(ROOT_ENV)
        full_env.update(env or {})
        return self._execute(argv, cmd, check, input, full_env, timeout)

    def run_host_in_netns(self, argv, check=True, input=None, timeout=120):
        """Run a *host* program (host file system) inside the private network
        namespace only, e.g. Debian's python3 talking SMTP to the root's
        Postfix over loopback."""
        full = ["nsenter", "--target", str(self.pid), "--net", "--"] + list(argv)
        return self._execute(full, " ".join(map(shlex.quote, argv)), check, input,
                             {"PATH": ROOT_ENV["PATH"], "LC_ALL": "C.UTF-8"}, timeout)

    def _execute(self, argv, shown, check, input, env, timeout):
        tag = uuid.uuid4().hex[:8]
        out_path = os.path.join(self.logs, "cmd-%s.out" % tag)
        err_path = os.path.join(self.logs, "cmd-%s.err" % tag)
        start = time.time()
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                stdout=out, stderr=err, env=env, cwd="/", start_new_session=True)
            try:
                if input is not None:
                    proc.stdin.write(input.encode() if isinstance(input, str) else input)
                    proc.stdin.close()
                rc = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise AssertionError("command timed out after %d s: %s" % (timeout, shown))
        with open(out_path, encoding="utf-8", errors="replace") as f:
            stdout = f.read()
        with open(err_path, encoding="utf-8", errors="replace") as f:
            stderr = f.read()
        os.unlink(out_path)
        os.unlink(err_path)
        result = Result(shown, rc, stdout, stderr, time.time() - start)
        log("rc=%d in %.1f s: %s" % (rc, result.seconds, shown if len(shown) < 300
                                     else shown[:300] + "..."))
        if check and rc != 0:
            raise CommandFailed(result)
        return result

    # -- Debian helpers ---------------------------------------------------

    def preseed(self, lines):
        """Feed debconf-set-selections lines ("owner question type value")."""
        if isinstance(lines, str):
            lines = [lines]
        return self.run("debconf-set-selections", input="".join(line + "\n" for line in lines))

    def apt_update(self):
        return self.run(APT + " update", net="host")

    def apt_install(self, *pkgs, check=True, options="", env=None):
        """Install packages: download on the host network, then install
        (maintainer scripts, daemons) inside the private network namespace."""
        args = options + " " + " ".join(shlex.quote(p) for p in pkgs)
        self.apt_download(*pkgs, options=options)
        return self._apt(APT + " install " + args, check=check, env=env)

    def apt_download(self, *pkgs, options=""):
        """Download packages into the (shared) package cache on the host network."""
        args = options + " " + " ".join(shlex.quote(p) for p in pkgs)
        return self._apt(APT + " install --download-only " + args, net="host")

    def _apt(self, cmd, net="private", check=True, env=None, timeout=APT_LOCK_WAIT):
        """Run apt-get; the package cache is shared by test beds running side by
        side, and apt (install and purge too, not only downloads) does not wait
        for its lock: wait for it here."""
        end = time.time() + timeout
        while True:
            res = self.run(cmd, net=net, check=False, env=env)
            if (res.returncode == 0 or "Could not get lock /var/cache/apt/archives/lock" not in res.stderr
                    or time.time() > end):
                break
            time.sleep(1)
        if check and res.returncode != 0:
            raise CommandFailed(res)
        return res

    def apt_purge(self, *pkgs, check=True):
        return self._apt(APT + " purge " + " ".join(shlex.quote(p) for p in pkgs), check=check)

    def apt_remove(self, *pkgs, check=True):
        return self._apt(APT + " remove " + " ".join(shlex.quote(p) for p in pkgs), check=check)

    def dpkg_reconfigure(self, pkg, frontend="noninteractive", check=True):
        return self.run("dpkg-reconfigure -f %s %s" % (shlex.quote(frontend), shlex.quote(pkg)),
                        check=check)

    def debconf_show(self, pkg):
        return self.run("debconf-show %s" % shlex.quote(pkg)).stdout

    def postconf(self, key, effective=False):
        """Value of `key` as set in the root's main.cf, or None if main.cf
        does not set it (effective=True: the value Postfix uses, defaults
        included)."""
        flags = "-h" if effective else "-nh"
        res = self.run("postconf %s %s" % (flags, shlex.quote(key)), check=False)
        if res.returncode != 0:
            raise CommandFailed(res)
        if not effective and not res.stdout:
            return None
        return res.stdout.rstrip("\n")

    def postconf_n(self):
        """Every parameter explicitly set in main.cf, as a dict."""
        out = self.run("postconf -n").stdout
        values = {}
        for line in out.splitlines():
            key, _, value = line.partition(" = ")
            values[key.strip()] = value
        return values

    def exists(self, path):
        return os.path.lexists(self.path(path))

    def read_file(self, path, binary=False):
        with open(self.path(path), "rb" if binary else "r") as f:
            return f.read()

    def file_state(self, path):
        """(sha256, mtime in ns, size) of a file in the root, or None."""
        full = self.path(path)
        if not os.path.lexists(full):
            return None
        st = os.lstat(full)
        with open(full, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        return (digest, st.st_mtime_ns, st.st_size)

    def dpkg_verify(self, *packages):
        """{package: what `dpkg --verify` says} for the packages whose
        installed files are not as shipped (missing, changed); {} if all are."""
        found = {}
        for pkg in packages:
            res = self.run("dpkg --verify %s" % shlex.quote(pkg), check=False)
            if res.returncode != 0 or res.stdout.strip():
                found[pkg] = (res.stdout + res.stderr).strip()
        return found

    def user_exists(self, user):
        return self.run("getent passwd %s" % shlex.quote(user), check=False).returncode == 0

    # -- Postfix ----------------------------------------------------------

    def start_postfix(self):
        """`postfix start` in the private network namespace; output to a log
        file.  Waits until port 25 on 127.0.0.1 answers."""
        self.run("mkdir -p /var/log/mailsetup-tests && "
                 "postfix start </dev/null >>/var/log/mailsetup-tests/postfix.log 2>&1 || "
                 "{ rc=$?; cat /var/log/mailsetup-tests/postfix.log >&2; exit $rc; }")
        self.postfix_running = True
        self._wait_port(25)

    def stop_postfix(self, check=True):
        res = self.run("postfix stop </dev/null >>/var/log/mailsetup-tests/postfix.log 2>&1",
                       check=check)
        self.postfix_running = False
        return res

    def postfix_status(self):
        return self.run("postfix status </dev/null >/dev/null 2>&1", check=False).returncode == 0

    def _wait_port(self, port, timeout=30):
        code = ("import socket,sys,time\n"
                "end=time.time()+%d\n"
                "while True:\n"
                "    try:\n"
                "        socket.create_connection(('127.0.0.1',%d),2).close(); sys.exit(0)\n"
                "    except OSError as e:\n"
                "        if time.time()>end: print(e); sys.exit(1)\n"
                "        time.sleep(0.2)\n" % (timeout, port))
        res = self.run_host_in_netns([HOST_PYTHON, "-c", code], check=False)
        if res.returncode != 0:
            raise AssertionError("nothing listens on 127.0.0.1:%d in the test bed: %s\n%s"
                                 % (port, res.stdout, self.diagnostics()))

    def smtp_send(self, sender, recipients, body, subject=None, host="127.0.0.1", port=25):
        """Send one message over SMTP to the Postfix in the private network
        namespace (Debian's python3 on the host, smtplib, nothing mocked).
        Raises if the server refuses it."""
        if isinstance(recipients, str):
            recipients = [recipients]
        payload = json.dumps({"host": host, "port": port, "from": sender,
                              "to": recipients, "body": body,
                              "subject": subject or "mailsetup e2e test"})
        code = (
            "import json,smtplib,sys\n"
            "from email.message import EmailMessage\n"
            "p=json.load(sys.stdin)\n"
            "m=EmailMessage()\n"
            "m['From']=p['from']; m['To']=', '.join(p['to']); m['Subject']=p['subject']\n"
            "m.set_content(p['body'])\n"
            "with smtplib.SMTP(p['host'],p['port'],timeout=30) as s:\n"
            "    refused=s.send_message(m,from_addr=p['from'],to_addrs=p['to'])\n"
            "print(json.dumps(refused))\n")
        res = self.run_host_in_netns([HOST_PYTHON, "-c", code], input=payload, check=False)
        if res.returncode != 0:
            raise AssertionError("SMTP delivery to %s:%d refused or failed:\n%s\n%s"
                                 % (host, port, res.stderr, self.diagnostics()))
        refused = json.loads(res.stdout)
        if refused:
            raise AssertionError("recipients refused: %r" % refused)

    def mailbox(self, user):
        path = self.path("/var/mail/" + user)
        if not os.path.exists(path):
            return ""
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def wait_for_mail(self, user, text, timeout=30):
        """Poll /var/mail/USER in the root until it contains `text`."""
        end = time.time() + timeout
        while True:
            if text in self.mailbox(user):
                return
            if time.time() > end:
                raise AssertionError("no mail containing %r in /var/mail/%s after %d s\n%s"
                                     % (text, user, timeout, self.diagnostics()))
            time.sleep(0.25)

    def log_text(self):
        """Everything logged in the bed so far (the mail log)."""
        try:
            with open(self.syslog, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def diagnostics(self):
        """Mail log tail and queue, for failure messages."""
        parts = []
        try:
            with open(self.syslog, errors="replace") as f:
                parts.append("--- mail log (tail) ---\n" + _tail(f.read(), 40))
        except OSError:
            pass
        if not self._closed and self.postfix_running:
            try:
                q = self.run("postqueue -p", check=False)
                parts.append("--- postqueue -p ---\n" + _tail(q.stdout + q.stderr, 20))
            except Exception as exc:  # diagnostics must never hide the real error
                parts.append("(postqueue failed: %s)" % exc)
        return "\n".join(parts)

    # -- teardown ---------------------------------------------------------

    def close(self):
        """Stop daemons, end the namespaces (killing everything left in
        them, which also drops all mounts) and delete the directory.  Safe to
        call more than once and after a failed setup."""
        if self._closed:
            return
        try:
            if self.holder is not None and self.holder.poll() is None:
                if self.postfix_running:
                    try:
                        self.stop_postfix(check=False)
                    except Exception as exc:
                        log("postfix stop failed: %s" % exc)
                self._closed = True
                self.holder.stdin.close()
                try:
                    self.holder.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    if self.pid:
                        try:
                            os.kill(self.pid, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                    self.holder.kill()
                    self.holder.wait(timeout=15)
                self.holder.stdout.close()
            self._closed = True
            self._wait_namespace_gone()
        finally:
            self._closed = True
            self._remove_dir()

    def _wait_namespace_gone(self, timeout=15):
        """Wait until no process is left in the PID namespace (the kernel
        kills them when its init exits, asynchronously)."""
        if not self.pid:
            return
        end = time.time() + timeout
        while os.path.exists("/proc/%d" % self.pid) and time.time() < end:
            time.sleep(0.05)

    def _remove_dir(self):
        if not getattr(self, "dir", None) or not os.path.isdir(self.dir):
            return
        # The mounts live in the private mount namespace only; never delete
        # through a mount point that is visible here.
        mounted = _mounts_under(self.dir)
        if mounted:
            raise RuntimeError("not removing %s: still mounted here: %s" % (self.dir, mounted))
        if os.environ.get("MAILSETUP_TEST_KEEP"):
            log("keeping %s (MAILSETUP_TEST_KEEP set)" % self.dir)
            return

        # Another run's remove_stale_testbeds() may be deleting it too, once
        # the holder is gone: a file already gone is no error.
        def already_gone(function, path, exc_info):
            if not isinstance(exc_info[1], FileNotFoundError):
                raise exc_info[1]
        shutil.rmtree(self.dir, onerror=already_gone)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --------------------------------------------------------------------------
# The booted test bed
# --------------------------------------------------------------------------

# What a booted root needs on top of a chroot's: an init system and the tools
# the tests and the packages' own scripts use inside it.
BOOTED_INCLUDE = "apt-utils,ca-certificates,systemd,systemd-sysv,dbus,iproute2,procps"
BOOTED_MMDEBSTRAP_ARGS = ["--variant=apt", "--include=" + BOOTED_INCLUDE,
                          "--skip=cleanup/apt/lists", '--aptopt=Acquire::Retries "3"']
BOOT_TIMEOUT = 120


def booted_tarball(suite):
    """Path of a cached `mmdebstrap` tarball of `suite` that boots with systemd."""
    return cached_mmdebstrap("%s-booted.tar.zst" % suite, BOOTED_MMDEBSTRAP_ARGS + [suite])


class BootedTestbed(Testbed):
    """A Debian root of `suite` booted with systemd as PID 1 in a systemd-nspawn
    container: the machine our users have.  Installing a package starts its
    services (invoke-rc.d -> systemctl); tests never start or stop daemons by
    hand.  The container has only a loopback interface (--private-network);
    apt downloads run in the container's mount namespace with the host's
    network, everything else (maintainer scripts, daemons, clients) in the
    container's network namespace.

    `pid` is the container's PID 1 (systemd); shutdown() and boot() stop and
    boot the same root again (the PID changes, outside hosts must be made
    anew).  The journal stays in root/var/log/journal after the container is
    gone."""

    booted = True

    def _tarball(self):
        return booted_tarball(self.suite)

    def _start(self):
        self.nspawn = None
        self.boot()

    def boot(self):
        """Boot the root; returns once systemd says the system is up."""
        if self.nspawn is not None and self.nspawn.poll() is None:
            raise RuntimeError("the container is already running")
        start = time.time()
        machine = "mstest-" + uuid.uuid4().hex[:8]
        argv = ["systemd-nspawn", "--boot", "--directory", self.root, "--register=no",
                # without --keep-unit: "Failed to open system bus" on this host
                "--keep-unit", "--private-network", "--resolv-conf=off",
                "--machine", machine, "--hostname", self.hostname,
                "--console=passive",
                # the root's own /etc/localtime (a bind mount of the host's
                # makes tzdata's postinst fail) and journal
                "--timezone=off", "--link-journal=no"]
        argv += ["--bind=%s:%s" % (host, inside[len(self.root):] or "/")
                 for host, inside in self._binds]
        with open(os.path.join(self.logs, "boot.log"), "ab") as boot_log:
            self.nspawn = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=boot_log,
                                           stderr=subprocess.STDOUT, cwd="/",
                                           start_new_session=True,
                                           env={"PATH": ROOT_ENV["PATH"], "LC_ALL": "C.UTF-8"})
        self._closed = False
        with open(os.path.join(self.dir, "holder.pid"), "w") as f:
            f.write("%d\n" % self.nspawn.pid)
        end = time.time() + BOOT_TIMEOUT
        self.pid = None
        while self.pid is None:
            if self.nspawn.poll() is not None:
                raise RuntimeError("systemd-nspawn exited (%d) while booting:\n%s"
                                   % (self.nspawn.returncode, self.boot_log()))
            if time.time() > end:
                raise RuntimeError("the container did not start systemd:\n" + self.boot_log())
            try:
                pid = self._child_of(self.nspawn.pid)
                with open("/proc/%d/comm" % pid) as f:
                    if f.read().strip() == "systemd":
                        self.pid = pid
                        break
            except (RuntimeError, OSError):
                pass
            time.sleep(0.1)
        state = ""
        while True:
            res = self.run("systemctl is-system-running --wait", check=False, timeout=BOOT_TIMEOUT)
            state = res.stdout.strip()
            if state in ("running", "degraded") or time.time() > end:
                break
            time.sleep(0.2)   # "Failed to connect to bus" until dbus is up
        if state not in ("running", "degraded"):
            raise RuntimeError("the container did not finish booting (%r):\n%s"
                               % (state, self.boot_log()))
        log("%s container booted in %.1f s (%s)" % (self.suite, time.time() - start, state))

    def shutdown(self, timeout=90):
        """Halt the container (systemd stops every service) and wait for it."""
        if self.nspawn is None or self.nspawn.poll() is not None:
            return
        try:
            os.kill(self.pid, signal.SIGRTMIN + 3)   # systemd: halt
        except (ProcessLookupError, TypeError):
            pass
        try:
            self.nspawn.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log("container did not halt in %d s: killing it" % timeout)
            os.killpg(self.nspawn.pid, signal.SIGKILL)
            self.nspawn.wait(timeout=30)
        self._wait_namespace_gone()
        self._closed = True

    def chroot_argv(self, net="private"):
        """argv prefix that runs a command inside the container (its mount, PID,
        UTS and IPC namespaces, and its network unless net="host")."""
        if self._closed:
            raise RuntimeError("the container is not running")
        argv = ["nsenter", "--target", str(self.pid), "--mount", "--pid", "--uts", "--ipc"]
        if net == "private":
            argv.append("--net")
        return argv + ["--"]

    def boot_log(self):
        try:
            with open(os.path.join(self.logs, "boot.log"), errors="replace") as f:
                return _tail(f.read(), 40)
        except OSError:
            return ""

    # /run and /tmp are file systems of the container's own (tmpfs): what is
    # there is seen only from inside.
    VOLATILE = ("/run/", "/tmp/", "/dev/shm/")

    def exists(self, path):
        if path.startswith(self.VOLATILE) and not self._closed:
            return self.run("test -e %s -o -L %s" % (shlex.quote(path), shlex.quote(path)),
                            check=False).returncode == 0
        return super().exists(path)

    def read_file(self, path, binary=False):
        if path.startswith(self.VOLATILE):
            text = self.run("cat %s" % shlex.quote(path)).stdout
            return text.encode() if binary else text
        return super().read_file(path, binary)

    # -- systemd ----------------------------------------------------------

    def systemctl(self, args, check=True):
        return self.run("systemctl --no-pager " + args, check=check)

    def failed_units(self):
        """Names of the units systemd lists as failed."""
        out = self.run("systemctl --no-pager --plain --no-legend --failed", check=False).stdout
        return [line.split()[0] for line in out.splitlines() if line.strip()]

    def is_active(self, unit):
        return self.run("systemctl is-active --quiet %s" % shlex.quote(unit),
                        check=False).returncode == 0

    def journal(self, args=""):
        """The journal (all of it, or journalctl ARGS), also after a shutdown."""
        base = ("journalctl --no-pager -o short-precise --directory=%s"
                % shlex.quote(self.path("/var/log/journal")))
        res = subprocess.run(base + " " + args, shell=True, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, errors="replace")
        return res.stdout

    def log_text(self):
        return self.journal()

    # -- no hand-started daemons --------------------------------------------

    def start_postfix(self):
        raise AssertionError("a booted test bed never starts Postfix by hand: "
                             "the packages do (invoke-rc.d)")

    def stop_postfix(self, check=True):
        raise AssertionError("a booted test bed never stops Postfix by hand")

    def wait_port(self, port, timeout=30):
        self._wait_port(port, timeout)

    def diagnostics(self):
        parts = ["--- journal (tail) ---\n" + _tail(self.journal(), 60)]
        if not self._closed:
            try:
                failed = self.failed_units()
                parts.append("--- systemctl --failed ---\n%s" % (failed or "none"))
                for unit in failed:  # the tail above rarely reaches back to why
                    parts.append("--- journal of %s ---\n%s" % (
                        unit, _tail(self.journal("-u " + shlex.quote(unit)), 30)))
                q = self.run("postqueue -p", check=False)
                parts.append("--- postqueue -p ---\n" + _tail(q.stdout + q.stderr, 20))
            except Exception as exc:  # diagnostics must never hide the real error
                parts.append("(diagnostics failed: %s)" % exc)
        return "\n".join(parts)

    # -- teardown ---------------------------------------------------------

    def close(self):
        if getattr(self, "_removed", False):
            return
        try:
            if getattr(self, "nspawn", None) is not None:
                self.shutdown()
        finally:
            self._closed = True
            self._removed = True
            self._remove_dir()
