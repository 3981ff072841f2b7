import os
import shutil
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

from mailsetup import i18n  # noqa: E402
from mailsetup.system import System  # noqa: E402

MAIN_CF_DEBIAN = "/usr/share/postfix/main.cf.debian"
LOCALE_VARIABLES = ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG", i18n.LOCALEDIR_ENV)


@pytest.fixture(autouse=True)
def no_dovecot_to_wait_for(monkeypatch):
    """The store waits up to a second after changing Dovecot's users file so that a
    running Dovecot sees it (tests/e2e/test_imap.py checks that); no Dovecot here."""
    monkeypatch.setattr("mailsetup.imap.mailboxes.store.WAIT_FOR_DOVECOT", False)


@pytest.fixture(autouse=True)
def english(monkeypatch):
    """Every test starts in English, whatever the locale of the shell running pytest."""
    for name in LOCALE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    i18n.reset()
    yield
    i18n.reset()


@pytest.fixture
def scratch(tmp_path):
    """A System whose Postfix configuration, /etc/mailname and state live in tmp_path."""
    confdir = tmp_path / "postfix"
    confdir.mkdir()
    main_cf = (open(MAIN_CF_DEBIAN).read()
               + "myhostname = old.example.net\n"
               + f"alias_maps = hash:{tmp_path}/aliases\n"
               + f"alias_database = hash:{tmp_path}/aliases\n"
               + "mydestination = $myhostname, localhost\n"
               + "relayhost =\n"
               + "mynetworks = 127.0.0.0/8 [::ffff:127.0.0.0]/104 [::1]/128\n"
               + "inet_interfaces = all\n"
               + "inet_protocols = all\n")
    (confdir / "main.cf").write_text(main_cf)
    shutil.copy("/etc/postfix/master.cf", confdir / "master.cf")
    (tmp_path / "aliases").write_text("postmaster: root\n")
    (tmp_path / "mailname").write_text("old.example.net\n")
    return System(
        postfix_config_dir=str(confdir),
        mailname_path=str(tmp_path / "mailname"),
        etc_dir=str(tmp_path / "etc-mailsetup"),
        state_dir=str(tmp_path / "state"),
        system_aliases_path=str(tmp_path / "aliases"),
        run_services=False,
    )


class FakeServices:
    """What mailsetup.services.of() gives in tests: the services in `up` run; every
    start, reload and restart asked for is in `calls`. A service in `cannot_start`
    does not come up."""

    def __init__(self, up=()):
        self.up = set(up)
        self.cannot_start = set()
        self.calls = []

    def running(self, name):
        return name in self.up

    def start(self, name):
        self.calls.append(("start", name))
        if name not in self.cannot_start:
            self.up.add(name)
        return name in self.up

    def reload(self, name):
        self.calls.append(("reload", name))
        return name in self.up

    def restart(self, name):
        self.calls.append(("restart", name))
        return self.start(name)

    def stop(self, name):
        self.calls.append(("stop", name))
        self.up.discard(name)
        return True

    def stop_postfix(self):
        return self.stop("postfix")

    def start_postfix(self):
        return self.start("postfix")


@pytest.fixture
def fake_services(monkeypatch):
    from mailsetup import services
    fake = FakeServices()
    monkeypatch.setattr(services, "of", lambda system: fake)
    return fake


def pytest_configure(config):
    config.addinivalue_line("markers", "requires_root: changes file owners (chown to root, _rspamd, postfix)")


def pytest_collection_modifyitems(config, items):
    # A Debian package build (dh_auto_test) runs as an ordinary user: the tests that
    # chown files are left to root runs (make test) and the end-to-end tests.
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root: it changes file owners")
    for item in items:
        if "requires_root" in item.keywords:
            item.add_marker(skip)
