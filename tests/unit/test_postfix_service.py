"""The pure parts of the drained restart: which services deliver mail, and
the record that lets a later run finish a drain a killed run left behind."""

from mailsetup import postfix_service
from mailsetup.postfix_tools import parse_master
from mailsetup.state import StateDir

# `postconf -M` as Debian's master.cf prints it, plus a Dovecot LMTP and a pipe.
MASTER_CF = """\
smtp       inet  n       -       y       -       -       smtpd
pickup     unix  n       -       y       60      1       pickup
cleanup    unix  n       -       y       -       0       cleanup
qmgr       unix  n       -       n       300     1       qmgr
smtp       unix  -       -       y       -       -       smtp
relay      unix  -       -       y       -       -       smtp -o syslog_name=postfix/$service_name
local      unix  -       n       n       -       -       local
virtual    unix  -       n       n       -       -       virtual
lmtp       unix  -       -       y       -       -       lmtp
error      unix  -       -       y       -       -       error
maildrop   unix  -       n       n       -       -       pipe flags=DRXhu user=vmail argv=/usr/bin/maildrop -d ${recipient}
submission inet  n       -       y       -       -       smtpd -o syslog_name=postfix/submission
""".splitlines()


def test_delivery_transports_are_the_unix_services_of_delivery_agents():
    assert postfix_service.delivery_transports(parse_master(MASTER_CF)) == [
        "smtp", "relay", "local", "virtual", "lmtp", "maildrop"]


def test_drain_record_keeps_an_unset_and_a_set_value_apart(tmp_path):
    state = StateDir(str(tmp_path))
    assert state.drain_original() == (False, None)
    state.begin_drain(None)
    assert state.drain_original() == (True, None)
    state.begin_drain("smtp, relay")
    assert state.drain_original() == (True, "smtp, relay")
    state.begin_drain("")
    assert state.drain_original() == (True, "")
    state.end_drain()
    assert state.drain_original() == (False, None)
