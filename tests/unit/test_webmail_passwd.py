"""The webmail's password helper (mailsetup/webmail/passwd_helper.py): the poppassd
conversation with stand-ins for Dovecot and the store, the line I/O over a real
socket pair, DovecotAuth against a fake auth server on a temporary unix socket,
and the store path shared with `mailsetup mailbox passwd`. No root, Dovecot or
Postfix needed (the store's postmap is a stand-in that copies the file)."""

import base64
import os
import shutil
import socket
import tempfile
import threading

import pytest

from mailsetup.imap.mailboxes import passwords
from mailsetup.imap.mailboxes.model import MailboxError
from mailsetup.imap.mailboxes.store import FileStore
from mailsetup.webmail import passwd_helper
from mailsetup.webmail.passwd_helper import (AuthUnavailable, Conversation, DovecotAuth, LineChannel, LineTooLong,
                                             NotText, Silent)

from test_mailbox_store import fast_hasher

OLD = "old-secret-password"
NEW = "brand new secret"


class Talk:
    """The client's side: the lines it sends, the replies it got; and what the helper did."""

    def __init__(self, *lines, passwords_=None, set_error=None, auth_error=None):
        self.incoming = list(lines)
        self.replies, self.log, self.sleeps = [], [], []
        self.auth_calls, self.set_calls = [], []
        self.passwords = {"alice@example.org": OLD} if passwords_ is None else passwords_
        self.set_error, self.auth_error = set_error, auth_error

    def readline(self):
        return self.incoming.pop(0) if self.incoming else None

    def authenticate(self, user, password):
        self.auth_calls.append((user, password))
        assert not self.set_calls, "the old password is checked before anything is stored"
        if self.auth_error:
            raise self.auth_error
        return self.passwords.get(user) == password

    def set_password(self, user, password):
        self.set_calls.append((user, password))
        if self.set_error:
            raise self.set_error

    def run(self):
        conversation = Conversation(self.readline, self.replies.append, self.authenticate, self.set_password,
                                    log=self.log.append, peer="127.0.0.1:40000", sleep=self.sleeps.append)
        return conversation.run()

    def assert_no_password_logged(self):
        for line in self.log:
            assert OLD not in line and NEW not in line, line


def test_the_whole_conversation_changes_the_password():
    talk = Talk("user Alice@Example.ORG", f"pass {OLD}", f"newpass {NEW}")
    assert talk.run() is True
    assert talk.replies == ["200 mailsetup poppassd", "300 send the current password", "300 send the new password",
                            "200 password changed"]
    # The address as Dovecot folds it (%Lu); the passwords exactly as sent, spaces and all.
    assert talk.auth_calls == [("alice@example.org", OLD)]
    assert talk.set_calls == [("alice@example.org", NEW)]
    assert talk.sleeps == []
    assert talk.log == ["mailsetup-passwd: alice@example.org: password changed (127.0.0.1:40000)"]


def test_crlf_lines_and_upper_case_commands_as_the_driver_may_send_them():
    # The conversation gets lines without their end (LineChannel strips LF and CRLF).
    talk = Talk("USER alice@example.org", f"PASS {OLD}", f"NEWPASS {NEW}")
    assert talk.run() is True
    assert talk.set_calls == [("alice@example.org", NEW)]


def test_a_wrong_old_password_changes_nothing_and_is_slowed_down():
    talk = Talk("user alice@example.org", "pass not-the-password", f"newpass {NEW}")
    assert talk.run() is False
    assert talk.replies == ["200 mailsetup poppassd", "300 send the current password",
                            "500 old password is not correct"]
    assert talk.set_calls == []
    assert talk.sleeps == [passwd_helper.FAIL_DELAY] == [2.0]
    assert talk.incoming == [f"newpass {NEW}"], "the conversation ends: newpass is never read"
    assert talk.log == ["mailsetup-passwd: alice@example.org: wrong current password, nothing changed "
                        "(127.0.0.1:40000)"]
    assert "not-the-password" not in "".join(talk.log)


def test_an_unknown_user_gets_the_same_answer_as_a_wrong_password():
    talk = Talk("user nobody@example.org", f"pass {OLD}", f"newpass {NEW}")
    assert talk.run() is False
    assert talk.replies[-1] == "500 old password is not correct"
    assert talk.set_calls == [] and talk.sleeps == [2.0]


def test_dovecot_unavailable_is_not_called_a_wrong_password():
    talk = Talk("user alice@example.org", f"pass {OLD}", f"newpass {NEW}",
                auth_error=AuthUnavailable("/run/dovecot/auth-client: No such file or directory"))
    assert talk.run() is False
    assert talk.replies[-1] == "500 the current password cannot be checked now; try again later"
    assert talk.set_calls == [] and talk.sleeps == []
    assert "No such file or directory" in talk.log[0]
    talk.assert_no_password_logged()


@pytest.mark.parametrize("new, message", [
    ("short", "the password is too short: at least 8 characters"),
    ("x" * 1025, "the password is too long: at most 1024 characters"),
])
def test_a_bad_new_password_is_refused_with_the_rule(new, message):
    talk = Talk("user alice@example.org", f"pass {OLD}", f"newpass {new}")
    assert talk.run() is False
    assert talk.replies[-1] == "500 " + message
    assert talk.set_calls == []
    assert talk.log == [f"mailsetup-passwd: alice@example.org: new password refused (127.0.0.1:40000): {message}"]


def test_a_refusal_of_the_store_is_the_reply():
    talk = Talk("user alice@example.org", f"pass {OLD}", f"newpass {NEW}",
                set_error=MailboxError("alice@example.org: no such mailbox"))
    assert talk.run() is False
    assert talk.replies[-1] == "500 alice@example.org: no such mailbox"


def test_a_failed_write_is_told_without_details_and_logged():
    talk = Talk("user alice@example.org", f"pass {OLD}", f"newpass {NEW}",
                set_error=PermissionError(13, "Permission denied", "/etc/mailsetup/.lock"))
    assert talk.run() is False
    assert talk.replies[-1] == "500 the new password could not be stored; nothing was changed"
    assert "Permission denied" in talk.log[0]


def test_a_password_in_an_error_text_is_blotted_out():
    talk = Talk("user alice@example.org", f"pass {OLD}", f"newpass {NEW}",
                set_error=MailboxError(f"doveadm pw failed: cannot hash {NEW} (old {OLD})"))
    assert talk.run() is False
    assert talk.replies[-1] == "500 doveadm pw failed: cannot hash *** (old ***)"
    talk.assert_no_password_logged()


def test_a_bad_user_name_is_refused_before_any_password():
    talk = Talk("user not an address", f"pass {OLD}")
    assert talk.run() is False
    assert talk.replies == ["200 mailsetup poppassd",
                            '500 "not an address": expected a mailbox address such as alice@example.org']
    assert talk.auth_calls == []


@pytest.mark.parametrize("lines, expected", [
    (["helo there"], "user"),
    ([f"pass {OLD}"], "user"),                                # out of order: the password is not repeated
    (["user alice@example.org", f"newpass {NEW}"], "pass"),   # no new password without the old one
    (["user alice@example.org", f"pass {OLD}", f"user {NEW}"], "newpass"),
    (["user"], None),                                         # no address at all
])
def test_unknown_commands_end_the_conversation(lines, expected):
    talk = Talk(*lines)
    assert talk.run() is False
    assert talk.set_calls == []
    if expected:
        assert talk.replies[-1] == f"500 unknown command: expected {expected}"
    else:
        assert talk.replies[-1].startswith("500 ")
    assert all(OLD not in r and NEW not in r for r in talk.replies)
    talk.assert_no_password_logged()
    if lines[0].startswith(("helo", "pass")):
        assert talk.auth_calls == []


def test_quit_and_a_closed_connection():
    talk = Talk("user alice@example.org", "quit")
    assert talk.run() is False
    assert talk.replies[-1] == "200 bye"
    talk = Talk("user alice@example.org")
    assert talk.run() is False
    assert talk.replies == ["200 mailsetup poppassd", "300 send the current password"]
    assert talk.auth_calls == []


def test_the_replies_are_translated(monkeypatch):
    # Every reply goes through _(); the catalogue itself is the lead's (po/).
    monkeypatch.setattr(passwd_helper, "_", lambda text: "«" + text + "»")
    talk = Talk("user alice@example.org", "pass wrong")
    talk.run()
    assert talk.replies[1:] == ["300 «send the current password»", "500 «old password is not correct»"]


# ------------------------------------------------------------------ line I/O over a socket pair

@pytest.fixture
def pair():
    helper, client = socket.socketpair()
    yield helper, client
    helper.close()
    client.close()


def channel(sock, **kwargs):
    return LineChannel(sock.fileno(), sock.fileno(), **kwargs)


def test_lines_are_read_with_lf_or_crlf_and_written_with_crlf(pair):
    helper, client = pair
    client.sendall(b"user alice@example.org\r\npass two  spaces \nnewpass \xc3\xa4\xc3\xb6\xc3\xbc-pass\r\n")
    lines = channel(helper)
    assert lines.readline() == "user alice@example.org"
    assert lines.readline() == "pass two  spaces "
    assert lines.readline() == "newpass äöü-pass"
    lines.writeline("200 password changed")
    assert client.recv(100) == b"200 password changed\r\n"
    client.shutdown(socket.SHUT_WR)
    assert lines.readline() is None


def test_a_line_of_1024_bytes_is_read_a_longer_one_ends_the_connection(pair):
    helper, client = pair
    client.sendall(b"a" * 1024 + b"\r\n" + b"b" * 1025 + b"\r\n")
    lines = channel(helper)
    assert lines.readline() == "a" * 1024
    with pytest.raises(LineTooLong):
        lines.readline()


def test_an_endless_line_is_not_buffered_without_limit(pair):
    helper, client = pair
    client.sendall(b"x" * 20000)
    with pytest.raises(LineTooLong):
        channel(helper).readline()


def test_a_silent_client_ends_the_connection(pair):
    helper, client = pair
    client.sendall(b"user alice@exa")  # half a line, then nothing
    with pytest.raises(Silent):
        channel(helper, timeout=0.2).readline()
    assert passwd_helper.IDLE_TIMEOUT == 30


def test_bytes_that_are_not_utf8_end_the_connection(pair):
    helper, client = pair
    client.sendall(b"pass \xff\xfe\r\n")
    with pytest.raises(NotText):
        channel(helper).readline()


def test_the_conversation_over_a_socket(pair):
    helper, client = pair
    client.sendall(b"user alice@example.org\r\npass " + OLD.encode() + b"\r\nnewpass " + b"y" * 1100 + b"\r\n")
    talk = Talk()
    lines = channel(helper)
    conversation = Conversation(lines.readline, lines.writeline, talk.authenticate, talk.set_password,
                                log=talk.log.append, sleep=talk.sleeps.append)
    assert conversation.run() is False
    helper.shutdown(socket.SHUT_WR)  # as the helper's exit does
    received = b""
    while chunk := client.recv(4096):
        received += chunk
    assert received.decode().split("\r\n") == ["200 mailsetup poppassd", "300 send the current password",
                                               "300 send the new password", "500 line too long", ""]
    assert talk.set_calls == []
    assert talk.log == ["mailsetup-passwd: connection from ? ended: line too long"]


# ------------------------------------------------------------------ DovecotAuth against a fake auth server

class FakeDovecotAuth:
    """A unix socket that speaks the server side of Dovecot's auth-client protocol
    for one connection: handshake, then OK or FAIL for one AUTH PLAIN."""

    HANDSHAKE = (b"VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nMECH\tLOGIN\tplaintext\nSPID\t4242\nCUID\t7\n"
                 b"COOKIE\t0123456789abcdef0123456789abcdef\nDONE\n")

    def __init__(self, path, users, fail_params=b"", version=b"1"):
        self.path, self.users, self.fail_params = path, users, fail_params
        self.handshake = self.HANDSHAKE.replace(b"VERSION\t1", b"VERSION\t" + version)
        self.received = []
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(1)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        conn, _addr = self.listener.accept()
        with conn, conn.makefile("rb") as lines:
            conn.sendall(self.handshake)
            for line in lines:
                fields = line.rstrip(b"\n").split(b"\t")
                self.received.append(fields)
                if fields[0] == b"AUTH":
                    resp = base64.b64decode(fields[-1].partition(b"=")[2])
                    _authzid, user, password = resp.split(b"\0")
                    if self.users.get(user.decode()) == password.decode():
                        conn.sendall(b"OK\t1\tuser=" + user + b"\n")
                    else:
                        conn.sendall(b"FAIL\t1\tuser=" + user + self.fail_params + b"\n")
                    break

    def close(self):
        self.thread.join(5)
        self.listener.close()


@pytest.fixture
def socket_dir():
    # A unix socket path must fit in 108 bytes: pytest's tmp_path may not.
    path = tempfile.mkdtemp(prefix="pw", dir="/tmp")
    yield path
    shutil.rmtree(path)


def test_dovecot_auth_ok_and_what_it_sends(socket_dir):
    path = os.path.join(socket_dir, "auth-client")
    server = FakeDovecotAuth(path, {"alice@example.org": "pass word\twith tab"})
    assert DovecotAuth(path)("alice@example.org", "pass word\twith tab") is True
    server.close()
    sent = server.received
    assert sent[0] == [b"VERSION", b"1", b"2"]
    assert sent[1] == [b"CPID", str(os.getpid()).encode()]
    auth = sent[2]
    assert auth[:6] == [b"AUTH", b"1", b"PLAIN", b"service=mailsetup-passwd", b"secured",
                        b"resp=" + base64.b64encode(b"\0alice@example.org\0pass word\twith tab")]
    assert len(auth) == 6, "resp= is the last parameter (Dovecot ignores what follows it)"


def test_dovecot_auth_fail(socket_dir):
    path = os.path.join(socket_dir, "auth-client")
    server = FakeDovecotAuth(path, {"alice@example.org": OLD})
    assert DovecotAuth(path)("alice@example.org", "wrong") is False
    server.close()


@pytest.mark.parametrize("params", [b"\ttemp", b"\tcode=temp_fail"])
def test_dovecot_auth_temporary_failure_is_no_answer(socket_dir, params):
    path = os.path.join(socket_dir, "auth-client")
    server = FakeDovecotAuth(path, {}, fail_params=params)
    with pytest.raises(AuthUnavailable, match="temporary failure"):
        DovecotAuth(path)("alice@example.org", OLD)
    server.close()


def test_dovecot_auth_other_protocol_version(socket_dir):
    path = os.path.join(socket_dir, "auth-client")
    server = FakeDovecotAuth(path, {"alice@example.org": OLD}, version=b"2")
    with pytest.raises(AuthUnavailable, match="unsupported protocol version 2"):
        DovecotAuth(path)("alice@example.org", OLD)
    server.close()


def test_dovecot_auth_without_dovecot(socket_dir):
    with pytest.raises(AuthUnavailable, match="auth-client"):
        DovecotAuth(os.path.join(socket_dir, "auth-client"))("alice@example.org", OLD)


def test_dovecot_auth_refuses_a_nul_without_asking(socket_dir):
    assert DovecotAuth(os.path.join(socket_dir, "none"))("alice@example.org", "a\0b") is False


def test_dovecot_auth_silent_server_times_out(socket_dir):
    path = os.path.join(socket_dir, "auth-client")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    try:
        with pytest.raises(AuthUnavailable, match="timed out"):
            DovecotAuth(path, timeout=0.2)("alice@example.org", OLD)
    finally:
        listener.close()


# ------------------------------------------------------------------ the store path of `mailsetup mailbox passwd`

@pytest.fixture
def store(tmp_path):
    postmap = tmp_path / "fake-postmap"
    postmap.write_text('#!/bin/sh\nfor arg; do last=$arg; done\nfile=${last#*:}\ncp "$file" "$file.db"\n')
    postmap.chmod(0o755)
    store = FileStore(str(tmp_path / "etc-mailsetup"), postmap=str(postmap), users_group=None)
    with store.transaction() as d:
        d.add_domain("example.org")
        d.add_mailbox("alice@example.org", fast_hasher(OLD))
        d.add_alias("info@example.org", ["alice@example.org"])
    return store


def users(store):
    with open(store.users_path) as f:
        return f.read()


def test_store_password_writes_the_hash_through_the_store(store):
    set_password = passwd_helper.store_password(lambda: store, fast_hasher)
    set_password("alice@example.org", NEW)
    assert users(store) == f"alice@example.org:{fast_hasher(NEW)}::::::\n"
    assert NEW not in open(store.json_path).read()


def test_store_password_only_for_mailboxes(store):
    set_password = passwd_helper.store_password(lambda: store, fast_hasher)
    with pytest.raises(MailboxError, match="^info@example.org: no such mailbox$"):
        set_password("info@example.org", NEW)
    assert users(store) == f"alice@example.org:{fast_hasher(OLD)}::::::\n"


def test_change_password_checks_before_it_hashes(store):
    hashed = []

    def hasher(plaintext):
        hashed.append(plaintext)
        return fast_hasher(plaintext)

    with pytest.raises(MailboxError, match="too short"):
        passwords.change_password(store, hasher, "alice@example.org", "short")
    with pytest.raises(MailboxError, match="no such mailbox"):
        passwords.change_password(store, hasher, "carol@example.org", NEW)
    assert hashed == []
    assert passwords.change_password(store, hasher, "Alice@Example.org", NEW) == "alice@example.org"
    assert hashed == [NEW]
