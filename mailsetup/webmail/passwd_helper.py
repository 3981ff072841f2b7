"""The webmail's password changes: a poppassd server for one connection.

Roundcube's `password` plugin (driver `poppassd`) runs as www-data and must
never write the mailbox directory; it asks this helper instead, which runs as
root, one process per connection (systemd socket activation with Accept=yes:
stdin and stdout are the accepted socket; debian/mailsetup-webmail.*):

    python3 -m mailsetup.webmail.passwd_helper

The conversation, as the driver speaks it (drivers/poppassd.php of
roundcube-plugins: the greeting must be 2xx, the answers to user and pass 2xx
or 3xx, the last one 2xx; the text after the code is shown to the user):

    S: 200 mailsetup poppassd
    C: user alice@example.org          -> 300, or 500 when it is no mail address
    C: pass OLD                        -> 300, or (after FAIL_DELAY) 500 and the end
    C: newpass NEW                     -> 200 password changed, or 500 <why>
    (quit ends it at any point)

The old password is checked first, by Dovecot's auth service over its
auth-client socket (DovecotAuth): the very check an IMAP login makes, logged
by Dovecot as a login's check is (service mailsetup-passwd). Only then is the new password checked with the
rules of `mailsetup mailbox passwd` and stored through the same code
(imap/mailboxes/passwords.py). So the helper does for a caller exactly what
any IMAP client that knows the current password could ask for anyway: nothing
more. doc/webmail.md has the trust model.

No password is ever put on a command line, logged, or echoed: a log line names
the address, what happened and the peer. A line longer than MAX_LINE bytes, a
line that is not UTF-8, or a client silent for IDLE_TIMEOUT seconds ends the
connection.

Conversation is the protocol alone (readline, writeline, authenticate and
set_password are handed to it), so it is tested without root or Dovecot.
"""

import base64
import os
import select
import socket
import sys
import time

from mailsetup.errors import MailsetupError
from mailsetup.i18n import _
from mailsetup.imap.mailboxes import model, passwords
from mailsetup.imap.mailboxes.hashing import DoveadmHasher
from mailsetup.imap.mailboxes.system import require_configured
from mailsetup.system import System

GREETING = "200 mailsetup poppassd"
MAX_LINE = 1024          # bytes of one line, without its line end
IDLE_TIMEOUT = 30        # seconds a client may take to send one line
FAIL_DELAY = 2.0         # seconds before "old password is not correct": slows guessing
AUTH_SOCKET = "/run/dovecot/auth-client"
AUTH_SERVICE = "mailsetup-passwd"
AUTH_TIMEOUT = 20        # Dovecot itself delays a failure (auth_failure_delay, 2 s by default)
AUTH_MAX_LINE = 16384    # Dovecot's AUTH_CLIENT_MAX_LINE_LENGTH


class ConnectionEnd(Exception):
    """The connection ends without the conversation being finished."""


class LineTooLong(ConnectionEnd):
    pass


class NotText(ConnectionEnd):
    pass


class Silent(ConnectionEnd):
    pass


class AuthUnavailable(MailsetupError):
    """Dovecot's auth service could not be asked (not the same as a wrong password)."""


# ------------------------------------------------------------------ line I/O

class LineChannel:
    """Lines over file descriptors: the accepted socket is both 0 and 1.

    readline() gives one line without its end (LF or CRLF), None when the
    client closed the connection; it raises LineTooLong past `limit` bytes,
    NotText for bytes that are not UTF-8, Silent when the line took longer
    than `timeout` seconds. Lines are written with CRLF."""

    def __init__(self, rfd=0, wfd=1, limit=MAX_LINE, timeout=IDLE_TIMEOUT, clock=time.monotonic):
        self.rfd, self.wfd = rfd, wfd
        self.limit, self.timeout, self.clock = limit, timeout, clock
        self.buffer = b""

    def readline(self):
        deadline = self.clock() + self.timeout
        while b"\n" not in self.buffer:
            if len(self.buffer) > self.limit + 1:  # + 1: the CR of a CRLF still to come
                raise LineTooLong()
            left = deadline - self.clock()
            if left <= 0 or not select.select([self.rfd], [], [], left)[0]:
                raise Silent()
            chunk = os.read(self.rfd, 4096)
            if not chunk:
                return None  # closed; a partial last line is no command
            self.buffer += chunk
        line, _nl, self.buffer = self.buffer.partition(b"\n")
        if line.endswith(b"\r"):
            line = line[:-1]
        if len(line) > self.limit:
            raise LineTooLong()
        try:
            return line.decode("utf-8")
        except UnicodeDecodeError:
            raise NotText() from None

    def writeline(self, text):
        data = (text + "\r\n").encode("utf-8")
        while data:
            data = data[os.write(self.wfd, data):]


# ------------------------------------------------------------------ the protocol

def one_line(text, secrets=()):
    """A reply or log text on one line, with the secrets (passwords) blotted out.

    No message is made with a password in it; this is the second line of
    defence, for a text from further down (a tool's error output). Secrets
    shorter than a password may be are left alone: blotting out every "short"
    would garble the very message that says the password is too short."""
    text = str(text)
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= model.MIN_PASSWORD_LENGTH:
            text = text.replace(secret, "***")
    return " ".join(text.split())


class Conversation:
    """One poppassd conversation.

    readline() -> str or None and writeline(str) move the lines;
    authenticate(user, password) -> bool asks whether the password is the
    user's (AuthUnavailable when it cannot tell); set_password(user, password)
    stores a new one (MailsetupError, one line, when refused); log(str) takes
    one line for the journal; sleep(FAIL_DELAY) follows a wrong old password.
    run() returns True when the password was changed."""

    def __init__(self, readline, writeline, authenticate, set_password, log=None, peer=None,
                 delay=FAIL_DELAY, sleep=time.sleep):
        self.readline, self.writeline = readline, writeline
        self.authenticate, self.set_password = authenticate, set_password
        self.log = log or (lambda line: None)
        self.peer = peer or "?"
        self.delay, self.sleep = delay, sleep
        self.secrets = []

    def reply(self, code, text):
        self.writeline(f"{code} {one_line(text, self.secrets)}")

    def note(self, text):
        self.log("mailsetup-passwd: " + one_line(text, self.secrets))

    def end(self, why):
        """Refuse the rest of the conversation: reply, log, None."""
        self.reply(500, why)
        self.note(_("connection from {peer} ended: {reason}").format(peer=self.peer, reason=why))
        return None

    def command(self, expected):
        """The argument of the next command, which must be `expected`; None ends the conversation."""
        try:
            line = self.readline()
        except LineTooLong:
            return self.end(_("line too long"))
        except NotText:
            return self.end(_("expected UTF-8 text"))
        except Silent:
            return self.end(_("timed out"))
        if line is None:
            return None
        verb, _space, argument = line.partition(" ")
        verb = verb.lower()
        if verb == "quit":
            self.reply(200, _("bye"))
            return None
        if verb != expected:
            # The line itself is never repeated: it may hold a password.
            return self.end(_("unknown command: expected {command}").format(command=expected))
        return argument

    def run(self):
        self.writeline(GREETING)
        name = self.command("user")
        if name is None:
            return False
        try:
            user = model.address(name.strip(), _("a mailbox address"))
        except MailsetupError as err:
            self.reply(500, err)
            return False
        self.reply(300, _("send the current password"))

        old = self.command("pass")
        if old is None:
            return False
        self.secrets.append(old)
        try:
            correct = self.authenticate(user, old)
        except MailsetupError as err:
            self.reply(500, _("the current password cannot be checked now; try again later"))
            self.note(_("{address}: the current password could not be checked ({peer}): {error}").format(
                address=user, peer=self.peer, error=err))
            return False
        if not correct:
            self.sleep(self.delay)
            self.reply(500, _("old password is not correct"))
            self.note(_("{address}: wrong current password, nothing changed ({peer})").format(
                address=user, peer=self.peer))
            return False
        self.reply(300, _("send the new password"))

        new = self.command("newpass")
        if new is None:
            return False
        self.secrets.append(new)
        try:
            model.password(new)
            self.set_password(user, new)
        except MailsetupError as err:
            self.reply(500, err)
            self.note(_("{address}: new password refused ({peer}): {error}").format(
                address=user, peer=self.peer, error=err))
            return False
        except OSError as err:
            self.reply(500, _("the new password could not be stored; nothing was changed"))
            self.note(_("{address}: the new password could not be stored ({peer}): {error}").format(
                address=user, peer=self.peer, error=err))
            return False
        self.reply(200, _("password changed"))
        self.note(_("{address}: password changed ({peer})").format(address=user, peer=self.peer))
        return True


# ------------------------------------------------------------------ Dovecot's auth service

class DovecotAuth:
    """authenticate(user, password) through Dovecot's auth-client socket.

    Dovecot's auth protocol (doc.dovecot.org, "Dovecot Authentication
    Protocol"): both sides send VERSION; the client CPID, the server SPID,
    CUID, COOKIE, MECH lines and DONE; then AUTH with SASL PLAIN and the
    initial response, answered by OK (True) or FAIL (False; a temporary
    failure raises AuthUnavailable). `secured` says the transport is safe
    (loopback), which Dovecot wants before it takes a plaintext password."""

    def __init__(self, path=AUTH_SOCKET, service=AUTH_SERVICE, timeout=AUTH_TIMEOUT):
        self.path, self.service, self.timeout = path, service, timeout

    def __call__(self, user, password):
        if "\0" in user or "\0" in password:
            return False  # cannot be said in SASL PLAIN, and no password of ours has one
        response = base64.b64encode(b"\0" + user.encode("utf-8") + b"\0" + password.encode("utf-8")).decode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(self.timeout)
                conn.connect(self.path)
                conn.sendall(f"VERSION\t1\t2\nCPID\t{os.getpid()}\n".encode())
                lines = conn.makefile("rb")
                self._handshake(lines)
                conn.sendall(f"AUTH\t1\tPLAIN\tservice={self.service}\tsecured\tresp={response}\n".encode())
                return self._result(lines)
        except OSError as err:  # also a timeout
            raise AuthUnavailable(f"{self.path}: {err.strerror or err}") from None

    def _fields(self, lines):
        line = lines.readline(AUTH_MAX_LINE + 1)
        if not line.endswith(b"\n"):
            raise AuthUnavailable(_("{path}: the connection ended unexpectedly").format(path=self.path))
        return line.rstrip(b"\r\n").split(b"\t")

    def _handshake(self, lines):
        mechanisms = set()
        while True:
            fields = self._fields(lines)
            if fields[0] == b"VERSION" and (len(fields) < 2 or fields[1] != b"1"):
                raise AuthUnavailable(_("{path}: unsupported protocol version {version}").format(
                    path=self.path, version=b".".join(fields[1:]).decode("ascii", "replace")))
            if fields[0] == b"MECH" and len(fields) > 1:
                mechanisms.add(fields[1].upper())
            if fields[0] == b"DONE":
                break
        if b"PLAIN" not in mechanisms:
            raise AuthUnavailable(_("{path}: the mechanism PLAIN is not offered").format(path=self.path))

    def _result(self, lines):
        while True:
            fields = self._fields(lines)
            if len(fields) < 2 or fields[1] != b"1":
                continue  # not about our request
            if fields[0] == b"OK":
                return True
            if fields[0] == b"FAIL":
                params = fields[2:]
                if b"temp" in params or b"code=temp_fail" in params:
                    raise AuthUnavailable(_("{path}: temporary failure").format(path=self.path))
                return False
            # CONT: PLAIN with an initial response needs no second round.
            raise AuthUnavailable(_("{path}: unexpected answer {answer}").format(
                path=self.path, answer=fields[0].decode("ascii", "replace")))


# ------------------------------------------------------------------ the store

def store_password(open_store=None, hasher=None):
    """set_password(user, password) for Conversation: `mailsetup mailbox passwd`'s path
    (passwords.change_password) on the store as mailsetup-imap configured it."""
    def set_password(user, password):
        store = open_store() if open_store else require_configured(System())
        return passwords.change_password(store, hasher or DoveadmHasher(), user, password)
    return set_password


def log_to_stderr(line):
    print(line, file=sys.stderr, flush=True)


def main():
    """One connection on stdin/stdout (systemd: StandardInput=socket, StandardOutput=socket)."""
    channel = LineChannel(0, 1)
    # systemd sets these for a service started by an Accept=yes socket.
    peer = os.environ.get("REMOTE_ADDR", "?")
    if os.environ.get("REMOTE_PORT"):
        peer += ":" + os.environ["REMOTE_PORT"]
    conversation = Conversation(channel.readline, channel.writeline, DovecotAuth(), store_password(),
                                log=log_to_stderr, peer=peer)
    try:
        conversation.run()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the client went away; nothing to tell it
    return 0


if __name__ == "__main__":
    sys.exit(main())
