"""End-to-end: nothing is lost while the configuration changes.

1. While a client submits 1,000 messages over SMTP (a few parallel
   sessions, retrying on 4xx and dropped connections as a real client does),
   `dpkg-reconfigure mailsetup` runs three times with changed answers, once
   with a change that makes mailsetup restart Postfix.  Every message must
   land exactly once, in the right mailbox.

2. The helper is killed (SIGKILL) halfway through an apply (the test hook
   MAILSETUP_TEST_PAUSE_FILE holds it after main.cf is written).  What an
   admin does next (`dpkg --configure -a`, or dpkg-reconfigure again) must
   finish, leave the configuration fully the new one, and mail must flow.
"""

import json
import os
import re
import shlex
import signal
import threading
import time
import uuid

import pytest

from .steps import require, token
from .testbed import APT, HOST_PYTHON, OWN_ARCHIVES

MIB = 1024 * 1024
# not under /run: a tmpfs of its own in a booted container, unseen from the host
PAUSE_FILE = "/var/tmp/mailsetup-test-pause"


def preseed_lines(answers):
    lines = []
    for question, value in answers.items():
        kind = "select" if question in ("mailer_type", "inet_protocols") else "string"
        lines.append("mailsetup mailsetup/%s %s %s" % (question, kind, value))
    return lines


BASE = {
    "mail_domain": "example.test",
    "hostname": "mail.example.test",
    "mailer_type": "internet",
    "relayhost": "",
    "admin_user": "alice",
    "aliases": "webmaster: alice, sales: bob",
    "other_destinations": "",
    "mynetworks": "127.0.0.0/8 [::1]/128",
    "message_size_limit": "20",
    "inet_protocols": "ipv4",
    "recipient_delimiter": "+",
}


def new_bed(new_booted_bed, answers):
    bed = new_booted_bed()
    # A second local account, target of an alias (useradd is in passwd,
    # which trixie's base system lacks; mailsetup's adduser brings it).
    bed.apt_install("adduser")
    bed.run("useradd --create-home bob")
    bed.preseed(preseed_lines(answers))
    bed.apt_install("mailsetup")
    bed.wait_port(25)
    return bed


class Background(threading.Thread):
    """Run bed.run(...) (or any call) in a thread; .result or .error afterwards."""

    def __init__(self, fn, *args, **kw):
        super().__init__(daemon=True)
        self.fn, self.args, self.kw = fn, args, kw
        self.result = self.error = None

    def run(self):
        try:
            self.result = self.fn(*self.args, **self.kw)
        except BaseException as exc:  # reported by the test
            self.error = exc

    def outcome(self, timeout):
        self.join(timeout)
        if self.is_alive():
            raise AssertionError("background command still running after %d s" % timeout)
        if self.error is not None:
            raise self.error
        return self.result


# ---------------------------------------------------------------------------
# 1. 1,000 messages while dpkg-reconfigure runs three times
# ---------------------------------------------------------------------------

# Runs with Debian's python3 on the host, inside the test bed's network
# namespace.  Each session keeps its connection for many messages; a 4xx
# reply or a lost connection makes it retry the same message (on a new
# connection if needed) until it gets 250 after DATA or the deadline passes.
# A 5xx is final.  A connection lost after the message text was sent but
# before the reply is "ambiguous": SMTP cannot tell whether it was taken.
CLIENT = r'''
import json, smtplib, sys, threading, time
from email.message import EmailMessage

p = json.load(sys.stdin)
lock = threading.Lock()
todo = list(range(p["total"]))
out = {"accepted": {}, "tempfail": 0, "lost_connection": 0, "ambiguous": {},
       "permfail": {}, "gave_up": [], "connects": 0}

def progress():
    tmp = p["progress"] + ".%d" % threading.get_ident()
    with open(tmp, "w") as f:
        f.write(str(len(out["accepted"])))
    import os
    os.replace(tmp, p["progress"])

def message(i):
    mid = "%s-%04d" % (p["tag"], i)
    rcpt = p["recipients"][i % len(p["recipients"])]
    m = EmailMessage()
    m["From"] = p["sender"]
    m["To"] = rcpt
    m["Subject"] = mid
    m["Message-ID"] = "<%s@client.test>" % mid
    m.set_content("message %s to %s\n" % (mid, rcpt))
    return mid, rcpt, m.as_bytes()

def session():
    conn = None
    while True:
        with lock:
            if not todo:
                break
            i = todo.pop(0)
        mid, rcpt, data = message(i)
        deadline = time.time() + p["deadline"]
        while True:
            if time.time() > deadline:
                with lock:
                    out["gave_up"].append(mid)
                break
            stage = "connect"
            try:
                if conn is None:
                    conn = smtplib.SMTP(p["host"], p["port"], timeout=30)
                    with lock:
                        out["connects"] += 1
                    code, text = conn.ehlo("client.test")
                    if code != 250:
                        raise smtplib.SMTPResponseException(code, text)
                stage = "mail"
                code, text = conn.mail(p["sender"])
                if code == 250:
                    stage = "rcpt"
                    code, text = conn.rcpt(rcpt)
                if code in (250, 251):
                    stage = "data"
                    code, text = conn.data(data)
                if code == 250 and stage == "data":
                    with lock:
                        out["accepted"][mid] = out["accepted"].get(mid, 0) + 1
                    progress()
                    break
                if 400 <= code < 500:
                    with lock:
                        out["tempfail"] += 1
                    try:
                        conn.rset()
                    except Exception:
                        conn = None
                    time.sleep(0.2)
                    continue
                with lock:
                    out["permfail"][mid] = "%s %d %s" % (stage, code, text.decode(errors="replace"))
                try:
                    conn.rset()
                except Exception:
                    conn = None
                break
            except smtplib.SMTPDataError as err:   # no 354 after DATA
                code = err.smtp_code
                if 400 <= code < 500:
                    with lock:
                        out["tempfail"] += 1
                    conn = None
                    time.sleep(0.2)
                    continue
                with lock:
                    out["permfail"][mid] = "data %d %s" % (code, err.smtp_error)
                conn = None
                break
            except (OSError, smtplib.SMTPException) as err:
                with lock:
                    out["lost_connection"] += 1
                    if stage == "data":
                        out["ambiguous"][mid] = out["ambiguous"].get(mid, 0) + 1
                try:
                    if conn is not None:
                        conn.close()
                except Exception:
                    pass
                conn = None
                time.sleep(0.2)
        time.sleep(p["pace"])
    if conn is not None:
        try:
            conn.quit()
        except Exception:
            pass

threads = [threading.Thread(target=session) for _ in range(p["sessions"])]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps(out))
'''

TOTAL = 1000
SESSIONS = 4
PACE = 0.2  # seconds between two messages of a session: 1,000 take >= 50 s, time for
# three reconfigures (one a restart) on a machine busy with the other beds
# The runs start when the client has had this many messages accepted; the
# rest leaves the last run (a restart can take a few seconds) ample time.
START_AT = (150, 300, 450)

# recipient -> mailbox it must land in
RECIPIENTS = {
    "root@example.test": "alice",           # root -> the admin
    "webmaster@example.test": "alice",      # an alias -> the admin
    "alice@example.test": "alice",          # the admin herself
    "sales@example.test": "bob",            # an alias -> another account
    "postmaster@example.test": "alice",     # postmaster -> root -> the admin
    "alice+robust@example.test": "alice",   # recipient delimiter
}

# Three reconfigures while the mail flows.  webmaster and sales keep their
# targets (their table is rebuilt under the running deliveries).
CHANGES = [
    ("reloaded", dict(message_size_limit="30",
                      aliases="webmaster: alice, sales: bob, info: alice")),
    ("restarted", dict(inet_protocols="all")),
    ("reloaded", dict(other_destinations="example.net",
                      mynetworks="127.0.0.0/8 [::1]/128 10.0.0.0/8",
                      aliases="webmaster: alice, sales: bob")),
]


def read_progress(path):
    try:
        with open(path) as f:
            return int(f.read() or 0)
    except (OSError, ValueError):
        return 0


def queue(bed):
    """The queue as postqueue -j lists it."""
    out = bed.run("postqueue -j", check=False).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def wait_for_empty_queue(bed, timeout=120):
    """Wait until the queue is empty; deferred mail is flushed once (a
    deferral is reported, the mail is still expected)."""
    end = time.time() + timeout
    flushed = False
    deferred_seen = []
    while time.time() < end:
        q = queue(bed)
        if not q:
            return deferred_seen
        deferred = [m for m in q if m.get("queue_name") == "deferred"]
        if deferred and len(deferred) == len(q):
            deferred_seen = deferred
            if not flushed:
                bed.run("postqueue -f")
                flushed = True
        time.sleep(0.5)
    raise AssertionError("queue not empty after %d s:\n%s\n%s"
                         % (timeout, json.dumps(queue(bed))[:1500], bed.diagnostics()))


def subjects(bed, user, tag):
    """id -> how many messages with that Subject are in /var/mail/USER."""
    counts = {}
    for mid in re.findall(r"^Subject: (%s-\d{4})$" % re.escape(tag), bed.mailbox(user), re.M):
        counts[mid] = counts.get(mid, 0) + 1
    return counts


class TestNothingLostUnderChange:

    @pytest.fixture(scope="class")
    def bed(self, new_booted_bed):
        return new_bed(new_booted_bed, BASE)

    def test_every_message_delivered_exactly_once(self, bed):
        tag = "robust-" + uuid.uuid4().hex[:8]
        progress_file = os.path.join(bed.logs, "client-progress")
        recipients = list(RECIPIENTS)
        payload = json.dumps({
            "host": "127.0.0.1", "port": 25, "sender": "client@example.org",
            "recipients": recipients, "total": TOTAL, "sessions": SESSIONS, "pace": PACE,
            "tag": tag, "progress": progress_file, "deadline": 120,
        })
        client = Background(bed.run_host_in_netns, [HOST_PYTHON, "-c", CLIENT],
                            input=payload, check=False, timeout=900)
        client.start()

        answers = dict(BASE)
        during = []
        for n, (postfix_action, change) in enumerate(CHANGES):
            target = START_AT[n]
            end = time.time() + 120
            while read_progress(progress_file) < target and client.is_alive():
                assert time.time() < end, "client stalled at %d messages" % read_progress(progress_file)
                time.sleep(0.1)
            answers.update(change)
            bed.preseed(preseed_lines(answers))
            res = bed.dpkg_reconfigure("mailsetup")
            assert "Postfix was %s" % postfix_action in res.stderr, (
                "run %d: expected Postfix to be %s:\n%s" % (n + 1, postfix_action, res.stderr[-2000:]))
            during.append((read_progress(progress_file), client.is_alive()))

        res = client.outcome(900)
        assert res.returncode == 0, "client failed:\n%s" % res.stderr[-3000:]
        out = json.loads(res.stdout)
        # The runs really happened while mail was being submitted.
        assert all(alive for _, alive in during), (
            "the client finished before the reconfigures did: %r" % during)

        deferred = wait_for_empty_queue(bed)

        # What the client saw: every message taken (after retries), none refused.
        assert not out["permfail"], "refused for good: %r" % dict(list(out["permfail"].items())[:10])
        assert not out["gave_up"], "never accepted: %r" % out["gave_up"][:10]
        ids = ["%s-%04d" % (tag, i) for i in range(TOTAL)]
        assert sorted(out["accepted"]) == ids

        # What the users see: each id once, in the right mailbox, nowhere else.
        boxes = {user: subjects(bed, user, tag) for user in set(RECIPIENTS.values())}
        wrong = []
        for i, mid in enumerate(ids):
            want = RECIPIENTS[recipients[i % len(recipients)]]
            got = {user: boxes[user].get(mid, 0) for user in boxes}
            if got != {user: int(user == want) for user in boxes}:
                wrong.append((mid, want, got, out["ambiguous"].get(mid, 0)))
        summary = ("client: %d connects, %d 4xx replies, %d lost connections "
                   "(%d after the message text); %d deferred; progress at the runs %r"
                   % (out["connects"], out["tempfail"], out["lost_connection"],
                      len(out["ambiguous"]), len(deferred), during))
        assert not wrong, ("%d of %d messages not delivered exactly once "
                           "(id, mailbox, found per mailbox, ambiguous sends): %r\n%s\n%s"
                           % (len(wrong), TOTAL, wrong[:15], summary, bed.diagnostics()))
        print(summary)

    def test_settings_of_the_last_run_are_in_effect(self, bed):
        got = {k: bed.postconf(k) for k in ("message_size_limit", "inet_protocols",
                                            "mydestination", "mynetworks")}
        assert got == {"message_size_limit": str(30 * MIB), "inet_protocols": "all",
                       "mydestination": "mail.example.test, example.test, localhost, example.net",
                       "mynetworks": "127.0.0.0/8 [::1]/128 10.0.0.0/8"}
        assert bed.postfix_status(), "Postfix is not running after the reconfigures"


# ---------------------------------------------------------------------------
# 2. The helper killed halfway through an apply
# ---------------------------------------------------------------------------

def helper_pids(bed):
    """PIDs of `python3 -m mailsetup.maintainer configure` in this test bed
    (its PID namespace only: other test beds may run the same)."""
    ns = os.readlink("/proc/%d/ns/pid" % bed.pid)
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as f:
                argv = f.read().split(b"\0")
            if b"mailsetup.maintainer" in argv and b"configure" in argv \
                    and os.readlink("/proc/%s/ns/pid" % entry) == ns:
                pids.append(int(entry))
        except OSError:
            continue
    return pids


def kill_helper_when_paused(bed, background, timeout=120):
    """Wait for the pause hook, SIGKILL the helper, release the pause file."""
    reached = bed.path(PAUSE_FILE + ".reached")
    end = time.time() + timeout
    while not os.path.exists(reached):
        if not background.is_alive():
            res = background.outcome(1)
            raise AssertionError("the run ended without reaching the pause hook "
                                 "(exit %s):\n%s" % (getattr(res, "returncode", "?"),
                                                     getattr(res, "stderr", "")[-3000:]))
        assert time.time() < end, "pause hook not reached after %d s" % timeout
        time.sleep(0.1)
    pids = helper_pids(bed)
    assert len(pids) == 1, "expected one mailsetup helper, found %r" % pids
    os.kill(pids[0], signal.SIGKILL)
    os.unlink(bed.path(PAUSE_FILE))
    os.unlink(reached)
    return pids[0]


def listening_on_25(bed):
    """Local addresses with a TCP socket listening on port 25 in the test
    bed's network namespace (from /proc/PID/net/tcp of its holder)."""
    found = set()
    for name in ("tcp", "tcp6"):
        try:
            with open("/proc/%d/net/%s" % (bed.pid, name)) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            addr, port = fields[1].split(":")
            if fields[3] == "0A" and int(port, 16) == 25:   # LISTEN
                if name == "tcp":
                    found.add(".".join(str(b) for b in reversed(bytes.fromhex(addr))))
                else:
                    found.add("v6:" + addr)
    return found


def alias_table(bed):
    """The alias table with local targets as bare names: mailsetup writes them
    with the host name its own `postmaster: root@HOST` names (root@HOST), so
    that they stay local whatever domains get mailboxes."""
    table = {}
    for line in bed.read_file("/etc/mailsetup/aliases").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, targets = line.partition(":")
            table[name.strip()] = [t.strip() for t in targets.split(",")]
    postmaster = table.get("postmaster", [""])[0]
    assert postmaster.startswith("root@"), "postmaster: %r, expected root@HOST" % postmaster
    host = postmaster.partition("@")[2]
    return {name: [t[:-len(host) - 1] if t.endswith("@" + host) else t for t in targets]
            for name, targets in table.items()}


def expected_main_cf(answers):
    local = answers["mailer_type"] == "local"
    return {
        "myhostname": answers["hostname"],
        "mydomain": answers["mail_domain"],
        "myorigin": "/etc/mailname",
        "mydestination": ", ".join([answers["hostname"], answers["mail_domain"], "localhost"]
                                   + [d for d in answers["other_destinations"].replace(",", " ").split()]),
        "relayhost": answers["relayhost"],
        "mynetworks": answers["mynetworks"],
        "message_size_limit": str(int(answers["message_size_limit"]) * MIB),
        "inet_interfaces": "loopback-only" if answers["mailer_type"] in ("local", "satellite") else "all",
        "inet_protocols": answers["inet_protocols"],
        "recipient_delimiter": answers["recipient_delimiter"],
        "alias_maps": "hash:/etc/mailsetup/aliases, hash:/etc/aliases",
        "alias_database": "hash:/etc/mailsetup/aliases, hash:/etc/aliases",
        "default_transport": "error" if local else None,
        "relay_transport": "error" if local else None,
        "smtpd_relay_restrictions": "permit_mynetworks permit_sasl_authenticated reject_unauth_destination",
    }


def expected_aliases(answers):
    table = {"postmaster": ["root"], "root": [answers["admin_user"]]}
    for entry in answers["aliases"].split(","):
        name, _, targets = entry.partition(":")
        if name.strip():
            table[name.strip()] = targets.split()
    return table


def assert_fully(bed, answers):
    """main.cf, the alias table and its database, /etc/mailname, the record
    of what was applied and Postfix's debconf answers all match answers."""
    problems = []
    want_cf = expected_main_cf(answers)
    got_cf = {k: bed.postconf(k) for k in want_cf}
    problems += ["main.cf %s = %r, expected %r" % (k, got_cf[k], want_cf[k])
                 for k in want_cf if got_cf[k] != want_cf[k]]
    want_aliases = expected_aliases(answers)
    if alias_table(bed) != want_aliases:
        problems.append("/etc/mailsetup/aliases is %r, expected %r" % (alias_table(bed), want_aliases))
    for name, targets in want_aliases.items():
        got = bed.run("postalias -q %s hash:/etc/mailsetup/aliases" % shlex.quote(name),
                      check=False).stdout.strip()
        # local targets as written: with the new host name
        qualified = [t if "@" in t else "%s@%s" % (t, answers["hostname"]) for t in targets]
        if [t.strip() for t in got.split(",")] != qualified:
            problems.append("alias database: %s -> %r, expected %r" % (name, got, qualified))
    mailname = bed.read_file("/etc/mailname")
    if mailname != answers["mail_domain"] + "\n":
        problems.append("/etc/mailname is %r" % mailname)
    applied = json.loads(bed.read_file("/var/lib/mailsetup/applied.json"))["answers"]
    for key in ("mail_domain", "hostname", "admin_user", "message_size_limit", "inet_protocols"):
        if applied.get(key) != answers[key]:
            problems.append("applied.json %s = %r, expected %r" % (key, applied.get(key), answers[key]))
    show = bed.debconf_show("postfix")
    if "postfix/mailname: %s\n" % answers["mail_domain"] not in show:
        problems.append("postfix/mailname in debconf is not %s:\n%s" % (answers["mail_domain"], show))
    assert not problems, "configuration is not fully the new one:\n  " + "\n  ".join(problems)


def dpkg_status(bed):
    return bed.run("dpkg-query -W -f='${Status}' mailsetup").stdout.strip()


class TestKilledHalfway:

    @pytest.fixture(scope="class")
    def bed(self, new_booted_bed):
        return new_bed(new_booted_bed, BASE)

    @pytest.fixture(scope="class")
    def state(self):
        return {}

    # -- killed during dpkg-reconfigure ------------------------------------

    NEW1 = dict(BASE, mail_domain="example2.test", hostname="mail.example2.test",
                admin_user="bob", aliases="webmaster: bob, sales: alice",
                other_destinations="example.net", mynetworks="127.0.0.0/8 [::1]/128 10.0.0.0/8",
                message_size_limit="30", recipient_delimiter="-")

    def test_killed_reconfigure_recovers_to_the_new_answers(self, bed, state):
        bed.preseed(preseed_lines(self.NEW1))
        open(bed.path(PAUSE_FILE), "w").close()
        run = Background(bed.run, "dpkg-reconfigure -f noninteractive mailsetup", check=False,
                         env={"MAILSETUP_TEST_PAUSE_FILE": PAUSE_FILE})
        run.start()
        kill_helper_when_paused(bed, run)
        res = run.outcome(120)
        assert res.returncode != 0, "dpkg-reconfigure succeeded although its helper was killed"

        # Really halfway: main.cf is new, the alias table still the old one.
        assert bed.postconf("myhostname") == "mail.example2.test"
        assert alias_table(bed)["root"] == ["alice"]

        # What an admin does: dpkg first, then the command that failed.
        status = dpkg_status(bed)
        bed.run("dpkg --configure -a")
        if status == "install ok installed":
            # dpkg-reconfigure does not change dpkg's status: nothing is
            # pending for dpkg, the admin runs dpkg-reconfigure again.
            bed.dpkg_reconfigure("mailsetup")
        assert dpkg_status(bed) == "install ok installed"
        assert_fully(bed, self.NEW1)
        bed.run("postfix check")
        state["first"] = True

    def test_mail_to_root_reaches_the_new_admin(self, bed, state):
        require(state, "first")
        mark = token("killed")
        bed.smtp_send("someone@example.org", "root@example2.test", mark, subject=mark)
        bed.wait_for_mail("bob", mark)

    # -- killed during an upgrade (dpkg --configure) -----------------------

    NEW2 = dict(BASE, mail_domain="example3.test", hostname="mail.example3.test",
                mailer_type="local", admin_user="alice", aliases="webmaster: alice",
                message_size_limit="40")

    def test_killed_upgrade_is_finished_by_dpkg_configure_a(self, bed, state):
        require(state, "first")
        assert listening_on_25(bed) == {"0.0.0.0"}, listening_on_25(bed)
        bed.preseed(preseed_lines(self.NEW2))
        bed.apt_download("mailsetup", options="--reinstall")
        # The killed apt-get cannot wait for the shared cache's lock (a bed
        # beside us may hold it): it takes a cache of this bed's own (the
        # mailsetup .debs come from a file: repository, never from the cache).
        bed.run("mkdir -p %s/partial" % OWN_ARCHIVES)
        open(bed.path(PAUSE_FILE), "w").close()
        run = Background(bed.run, APT + " -o Dir::Cache::Archives=%s/ install --reinstall mailsetup"
                         % OWN_ARCHIVES, check=False,
                         env={"MAILSETUP_TEST_PAUSE_FILE": PAUSE_FILE})
        run.start()
        kill_helper_when_paused(bed, run)
        res = run.outcome(300)
        assert res.returncode != 0, "apt-get succeeded although the helper was killed"
        assert dpkg_status(bed) == "install ok half-configured"
        assert alias_table(bed)["root"] == ["bob"], "not killed halfway"

        bed.run("dpkg --configure -a")
        assert dpkg_status(bed) == "install ok installed"
        assert_fully(bed, self.NEW2)
        bed.run("postfix check")
        state["second"] = True

    def test_running_postfix_uses_the_new_settings(self, bed, state):
        require(state, "second")
        # local: loopback only.  A Postfix left running with the interfaces of
        # before the kill would still listen on every address.
        assert bed.postfix_status()
        assert listening_on_25(bed) == {"127.0.0.1"}, listening_on_25(bed)
        mark = token("killed")
        bed.smtp_send("someone@example.org", "root@example3.test", mark, subject=mark)
        bed.wait_for_mail("alice", mark)
