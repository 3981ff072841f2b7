#!/usr/bin/python3
"""Benchmark of mailsetup-webmail (issue 12): how long a person waits from
pressing "log in" to the inbox shown, with 1,000 messages in the mailbox, in
headless Chromium; and the idle memory of the web server and PHP-FPM.

    sudo MAILSETUP_TEST_REPO=build/repo /usr/bin/python3 bench/webmail.py \\
        [--suite bookworm|trixie] [--messages 1000] [--runs 5] [--idle 30] [--json FILE]

In one booted test bed (tests/e2e/testbed.py BootedTestbed: systemd as PID 1,
private network, our packages from the local repository): the whole stack
(mailsetup, mailsetup-imap, mailsetup-filter, mailsetup-webmail) installed as
tests/e2e/test_webmail.py does; a mailbox alice@example.test gets N messages
(written as Maildir files by the vmail user, then `doveadm force-resync`, so
the bench measures the webmail, not delivery); then --runs logins with
tests/e2e/browser.py (a fresh Chromium each, on the host inside the bed's
network namespace): "seconds" is from the click on the login button until
Roundcube has shown the inbox list (its request for the list done). The first
login (Dovecot builds its index, PHP's opcache warms up) is reported apart.

Memory: after --idle seconds without requests, RSS and PSS sums
(/proc/PID/smaps_rollup) of the processes in the nginx and php*-fpm units'
control groups (systemctl show -p ControlGroup, then its cgroup.procs).

Targets (issue 12): login to inbox under 1.5 s; nginx + PHP-FPM under 80 MB PSS.
"""

import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from tests.e2e import test_webmail as tw  # noqa: E402
from tests.e2e.testbed import BootedTestbed  # noqa: E402

MAILDIR_FILL = r'''
import os, sys, time
n, top = int(sys.argv[1]), sys.argv[2]
for i in range(n):
    body = ("From: carol@client.test\nTo: alice@example.test\nSubject: bench message %d\n"
            "Date: Wed, 02 Dec 2026 10:00:00 +0000\nMessage-ID: <bench-%d@client.test>\n\n" % (i, i)
            + "A line of an ordinary message body, about a meeting.\n" * 30)
    name = "%d.bench%d.mail" % (int(time.time()), i)
    with open(os.path.join(top, "tmp", name), "w") as f:
        f.write(body)
    os.rename(os.path.join(top, "tmp", name), os.path.join(top, "new", name))
'''


def memory(bed, unit):
    """(RSS, PSS) in KiB, summed over the processes of a systemd unit."""
    group = bed.run("systemctl show -p ControlGroup --value %s" % unit).stdout.strip()
    procs = bed.run("cat /sys/fs/cgroup%s/cgroup.procs" % group, check=False).stdout.split()
    if not procs:  # the container's cgroup tree is mounted below its own
        procs = bed.run("cat $(find /sys/fs/cgroup -path '*%s/cgroup.procs' | head -n 1)" % group,
                        check=False).stdout.split()
    rss = pss = 0
    for pid in procs:
        out = bed.run("cat /proc/%s/smaps_rollup" % pid, check=False).stdout
        for line in out.splitlines():
            fields = line.split()
            if fields[:1] == ["Rss:"]:
                rss += int(fields[1])
            elif fields[:1] == ["Pss:"]:
                pss += int(fields[1])
    return rss, pss, len(procs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--suite", default="bookworm")
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--idle", type=int, default=30)
    ap.add_argument("--json")
    args = ap.parse_args()
    repo = os.environ.get("MAILSETUP_TEST_REPO", os.path.join(os.path.dirname(HERE), "build", "repo"))
    result = {"suite": args.suite, "messages": args.messages}
    with BootedTestbed(args.suite, repo_dir=repo, hostname="mail", domain=tw.DOMAIN) as bed:
        bed.apt_update()
        tw.prepare(bed)
        tw.apt_ok(tw.apt_private(bed, "install " + " ".join(tw.PACKAGES)))
        tw.set_up_users(bed)
        top = "/var/vmail/example.test/alice/Maildir"
        bed.run("runuser -u vmail -- mkdir -p %s/new %s/cur %s/tmp" % (top, top, top))
        bed.run("runuser -u vmail -- python3 - %d %s" % (args.messages, top), input=MAILDIR_FILL)
        bed.run("doveadm force-resync -u %s INBOX" % tw.ALICE)
        first = tw.browse(bed, "inbox")
        result["first_login_seconds"] = first["seconds"]
        times = []
        for _ in range(args.runs):
            got = tw.browse(bed, "inbox")
            assert got["ok"] and got["subjects"], got
            times.append(got["seconds"])
        result["login_seconds"] = {"median": statistics.median(times), "min": min(times), "max": max(times),
                                   "runs": times}
        time.sleep(args.idle)
        php = bed.run("basename /etc/init.d/php*-fpm").stdout.strip()
        for unit in ("nginx.service", php + ".service"):
            rss, pss, n = memory(bed, unit)
            result[unit] = {"rss_kib": rss, "pss_kib": pss, "processes": n}
        result["web_pss_mib"] = round(sum(result[u]["pss_kib"] for u in ("nginx.service", php + ".service"))
                                      / 1024, 1)
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
