"""A person at a debconf dialog: a command run in a test bed under a
pseudo-terminal (pexpect), with the readline frontend.

The root must have libterm-readline-gnu-perl (see `use_gnu_readline`): with
Perl's fallback Term::ReadLine::Stub, debconf neither shows nor keeps the
default of a question, so pressing Enter answers with an empty string; with
Term::ReadLine::Gnu, as on a usual Debian system, the default stands on the
input line and Enter keeps it.

When is the program asking?  Waiting for output to stop is not enough (apt
and dpkg pause too), so a prompt is recognised from the kernel's side: a
debconf frontend (a Perl process) in the terminal's foreground process group
is blocked reading the terminal (read(2) on it with the Stub, pselect(2)
with GNU readline), and the current screen line is not empty.  The line is
then the question's short description followed by the default.
"""

import os
import re
import time

import pexpect

from .steps import retry_on_apt_lock
from .testbed import APT, ROOT_ENV, log


class DialogError(AssertionError):
    pass


# An answer for converse(): Go Back (Ctrl-U, which debconf's readline frontend
# binds to previous-question when the config script has the backup capability).
BACK = "<Go Back>"


class Screen:
    """Just enough of a dumb terminal to render what the person sees:
    backspace, carriage return and newline (GNU readline on TERM=dumb
    redraws an edited line with backspaces and spaces)."""

    def __init__(self):
        self.lines = []
        self.line = []
        self.col = 0

    def feed(self, text):
        for ch in text:
            if ch == "\n":
                self.lines.append("".join(self.line).rstrip())
                self.line, self.col = [], 0
            elif ch == "\r":
                self.col = 0
            elif ch == "\b":
                self.col = max(0, self.col - 1)
            elif ch < " " or ch == "\x7f":
                continue  # bell, stray control characters
            else:
                if self.col < len(self.line):
                    self.line[self.col] = ch
                else:
                    self.line.extend(" " * (self.col - len(self.line)))
                    self.line.append(ch)
                self.col += 1

    @property
    def current(self):
        return "".join(self.line).rstrip()

    def text(self, start=0):
        return "\n".join(self.lines[start:] + [self.current])


# syscalls (x86_64) a frontend sits in while waiting for the person
DEV_TTY = os.makedev(5, 0)
SYS_READ, SYS_POLL, SYS_SELECT, SYS_PSELECT6, SYS_PPOLL = 0, 7, 23, 270, 271


class Dialog:
    """`cmd` (a shell command) run chrooted in `bed`, in its private network,
    under a pseudo-terminal, with DEBIAN_FRONTEND=readline.

        d = Dialog(bed, "dpkg-reconfigure mailsetup")
        while (prompt := d.next_prompt()) is not None:
            d.answer("x") or d.enter()
        assert d.wait() == 0, d.transcript
    """

    def __init__(self, bed, cmd, env=None, priority="low", timeout=60):
        self.bed = bed
        self.cmd = cmd
        self.timeout = timeout
        full_env = dict(ROOT_ENV)
        full_env.update({"DEBIAN_FRONTEND": "readline", "DEBIAN_PRIORITY": priority,
                         "TERM": "dumb"})
        for key, value in (env or {}).items():
            if value is None:
                full_env.pop(key, None)
            else:
                full_env[key] = value
        self.screen = Screen()
        self.raw = []
        self.prompts = []          # (prompt line, what was sent)
        self._mark = 0             # screen line where the last answer was given
        self._status = None
        self._fresh = False        # output seen since the last keys were sent
        log("dialog: %s" % cmd)
        self.start = time.time()
        self.child = pexpect.spawn(
            bed.chroot_argv()[0], bed.chroot_argv()[1:] + ["/bin/sh", "-c", cmd],
            env=full_env, cwd="/", encoding="utf-8", codec_errors="replace",
            dimensions=(1000, 250))   # no "[More]" paging, no wrapped prompts
        self._tty = os.stat("/proc/%d/fd/0" % self.child.pid).st_rdev

    # -- reading --------------------------------------------------------------

    def _feed(self, data):
        self.raw.append(data)
        self.screen.feed(data)
        if data:
            self._fresh = True

    def _fd_is_tty(self, pid, fd):
        # our pseudo-terminal, or /dev/tty (its controlling terminal, which
        # is ours: the process is in our foreground process group), as
        # dpkg-preconfigure opens it
        try:
            rdev = os.stat("/proc/%d/fd/%d" % (pid, fd)).st_rdev
        except OSError:
            return False
        return rdev in (self._tty, DEV_TTY)

    def _waiting_for_input(self):
        try:
            pgrp = os.tcgetpgrp(self.child.child_fd)
        except OSError:
            return False
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            pid = int(entry)
            try:
                with open("/proc/%d/stat" % pid) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[2]) != pgrp:
                    continue
                if not os.path.basename(os.readlink("/proc/%d/exe" % pid)).startswith("perl"):
                    continue
                with open("/proc/%d/syscall" % pid) as f:
                    call = f.read().split()
            except (OSError, ValueError, IndexError):
                continue
            if not call or not call[0].isdigit():
                continue      # "running"
            nr = int(call[0])
            if nr == SYS_READ and self._fd_is_tty(pid, int(call[1], 16)):
                return True
            if nr in (SYS_POLL, SYS_SELECT, SYS_PSELECT6, SYS_PPOLL) and self._fd_is_tty(pid, 0):
                return True
        return False

    def next_prompt(self):
        """Wait until a question is asked; return its line as shown (short
        description and default), or None when the command has ended."""
        deadline = time.time() + self.timeout
        while True:
            try:
                self._feed(self.child.read_nonblocking(65536, timeout=0.15))
                continue
            except pexpect.TIMEOUT:
                pass
            except pexpect.EOF:
                return None
            # (the echo of the last answer must have come first, or the
            # question just answered would be taken for the next one)
            if self._fresh and self.screen.current.strip() and self._waiting_for_input():
                return self.screen.current
            if time.time() > deadline:
                raise DialogError("no question and no end after %d s: %s\n%s"
                                  % (self.timeout, self.cmd, self.tail()))

    # -- answering ------------------------------------------------------------

    def _send(self, prompt, keys, shown):
        self.prompts.append((prompt, shown))
        self._fresh = False
        self.child.send(keys)
        self._mark = len(self.screen.lines)

    def answer(self, text):
        """Replace the default on the input line with `text`, press Enter
        (Ctrl-A, Ctrl-K: GNU readline's start of line, kill to end)."""
        self._send(self.screen.current, "\x01\x0b" + text + "\r", text)

    def enter(self):
        """Press Enter: keep the default."""
        self._send(self.screen.current, "\r", None)

    def back(self):
        """Go Back to the previous question (Ctrl-U)."""
        self._send(self.screen.current, "\x15", BACK)

    # -- the end --------------------------------------------------------------

    def wait(self):
        """Exit status of the command (after next_prompt returned None)."""
        if self._status is None:
            try:
                self._feed(self.child.read())
            except pexpect.EOF:
                pass
            self.child.close()
            self._status = (self.child.exitstatus if self.child.exitstatus is not None
                            else 128 + (self.child.signalstatus or 0))
            log("dialog: rc=%d in %.1f s after %d questions: %s"
                % (self._status, time.time() - self.start, len(self.prompts), self.cmd))
        return self._status

    def close(self):
        if self.child.isalive():
            self.child.terminate(force=True)
        self.child.close()

    @property
    def transcript(self):
        return self.screen.text()

    def since_last_answer(self):
        """What was shown between the last answer and now."""
        return self.screen.text(self._mark)

    def tail(self, lines=80):
        return "--- terminal (last %d lines) ---\n%s" % (
            lines, "\n".join(self.transcript.split("\n")[-lines:]))


def _flat(text):
    return " ".join(text.split())


def converse(bed, cmd, rules, env=None, max_questions=60, timeout=60):
    """Run `cmd` as a person would.  `rules` is a list of
    (name, prompt_regex, context, answers): a question whose prompt line
    matches prompt_regex (at its start) and, unless context is None, after
    whose previous answer the text `context` was shown (whitespace does not
    matter: the terminal wraps), gets `answers`: a string, None (press
    Enter), BACK (Go Back), or a list used one item per time the question
    is asked.  The
    first matching rule wins; other questions are answered with Enter.

    Returns the Dialog after the command ended; d.wait() is its exit status
    and d.asked lists (name or None, prompt line, text shown before it, answer
    sent or None).
    """
    d = Dialog(bed, cmd, env=env, timeout=timeout)
    d.asked = []
    rules = [(name, re.compile(pattern), context and _flat(context), answers)
             for name, pattern, context, answers in rules]
    used = {}
    try:
        while True:
            prompt = d.next_prompt()
            if prompt is None:
                break
            if len(d.asked) >= max_questions:
                raise DialogError("more than %d questions, stuck in a loop?\n%s"
                                  % (max_questions, d.tail()))
            shown = d.since_last_answer()
            name, answer = None, None
            for rule_name, rx, context, answers in rules:
                if rx.match(prompt) and (context is None or context in _flat(shown)):
                    name = rule_name
                    if isinstance(answers, list):
                        n = used.get(name, 0)
                        used[name] = n + 1
                        answers = answers[min(n, len(answers) - 1)]
                    answer = answers
                    break
            d.asked.append((name, prompt, shown, answer))
            if answer is None:
                d.enter()
            elif answer is BACK:
                d.back()
            else:
                d.answer(answer)
        d.wait()
    except BaseException:
        d.close()
        raise
    return d


def use_gnu_readline(bed):
    """Install Term::ReadLine::Gnu in the root (noninteractively)."""
    bed.apt_install("libterm-readline-gnu-perl", options="--no-install-recommends")


def download(bed, *pkgs):
    """Fetch the .debs on the host network, so that the install itself (under
    the pseudo-terminal) runs in the private network namespace."""
    res = retry_on_apt_lock(lambda: bed.run(APT + " install --download-only " + " ".join(pkgs),
                                            net="host", check=False))
    assert res.returncode == 0, res.stderr[-3000:]
