"""The certificate source questions of mailsetup-imap and the ACME component's
plan, without root and without a CA (the booted bed's tests/e2e/test_acme.py
obtains, renews and refuses certificates from pebble)."""

import http.server
import os
import subprocess
import threading

import pytest

from mailsetup.errors import ApplyFailed
from mailsetup.imap import certificate, configure
from mailsetup.imap import settings as imap_settings
from mailsetup.imap.components import acme
from mailsetup.imap.settings import ACME_CERT, ACME_KEY, SNAKEOIL_CERT, ImapSettings
from mailsetup.system import System
from mailsetup.validate import InvalidAnswer

LE = imap_settings.LETS_ENCRYPT


def answers(**changes):
    base = {"domains": "example.org", "tls_source": "acme", "tls_cert": "", "tls_key": "",
            "acme_server": LE, "acme_email": ""}
    base.update(changes)
    return base


def test_acme_uses_certbots_live_files_without_asking_for_them():
    settings = ImapSettings.from_answers(answers(tls_cert="/nonexistent.pem"), "mail.example.org")
    assert (settings.tls_cert, settings.tls_key) == (ACME_CERT, ACME_KEY)
    assert settings.to_answers()["acme_server"] == LE


@pytest.mark.parametrize("url", ["http://ca.example.org/dir", "ca.example.org/dir", "https://", "",
                                 "https://bad_host!/dir", "https://ca.example.org:99999/dir",
                                 "https://ca.example.org/dir with space"])
def test_a_bad_acme_address_is_refused_with_what_is_expected(url):
    with pytest.raises(InvalidAnswer) as refused:
        ImapSettings.from_answers(answers(acme_server=url), "mail.example.org")
    assert refused.value.question == "acme_server"
    assert "https address of an ACME directory" in str(refused.value)


@pytest.mark.parametrize("url", [LE, "https://localhost:14000/dir", "https://10.0.0.1/acme/directory",
                                 "https://ca.internal.example:9000/acme/acme/directory"])
def test_acme_addresses_taken(url):
    assert imap_settings.acme_server(url) == url


def test_contact_address_optional_but_checked():
    assert imap_settings.acme_email("") == ""
    assert imap_settings.acme_email(" Admin@Example.ORG ") == "admin@example.org"
    with pytest.raises(InvalidAnswer):
        imap_settings.acme_email("admin at example.org")


def test_snakeoil_ignores_the_file_answers():
    settings = ImapSettings.from_answers(answers(tls_source="snakeoil", tls_cert="/nonexistent"), "mail.example.org")
    assert settings.tls_cert == SNAKEOIL_CERT
    assert "acme_server" not in settings.to_answers()


def test_unknown_source_refused():
    with pytest.raises(InvalidAnswer) as refused:
        ImapSettings.from_answers(answers(tls_source="letsencrypt"), "mail.example.org")
    assert "snakeoil, files, acme" in str(refused.value)


def test_main_cf_certificate_tells_the_source():
    assert certificate.tls_source_of(SNAKEOIL_CERT) == "snakeoil"
    assert certificate.tls_source_of(ACME_CERT) == "acme"
    assert certificate.tls_source_of("/etc/ssl/mine.pem") == "files"


# --- the component -------------------------------------------------------

def scratch(tmp_path):
    return System(letsencrypt_dir=str(tmp_path / "le"), imap_state_dir=str(tmp_path / "state"),
                  nginx_dir=str(tmp_path / "nginx"), run_services=False)


def settings_for(server=LE, source="acme"):
    return ImapSettings.from_answers(answers(acme_server=server, tls_source=source), "mail.example.org")


def make_lineage(tmp_path, names, server=LE, authenticator="standalone"):
    le = tmp_path / "le"
    live = le / "live" / "mailsetup"
    live.mkdir(parents=True)
    (le / "renewal").mkdir()
    key = live / "privkey.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(live / "fullchain.pem"), "-days", "30", "-subj",
                    f"/CN={names[0]}", "-addext", "subjectAltName=" + ",".join(f"DNS:{n}" for n in names)],
                   check=True, capture_output=True)
    (le / "renewal" / "mailsetup.conf").write_text(
        f"# renew_before_expiry = 30 days\nversion = 2.1.0\n[renewalparams]\n"
        f"authenticator = {authenticator}\nserver = {server}\n")


def test_first_time_writes_the_hook_and_obtains(tmp_path):
    component = acme.AcmeCertificate(scratch(tmp_path), ["mail.example.org"])
    plan = component.plan(settings_for(), component.read_current())
    assert plan["hook"] == acme.HOOK.encode()
    assert plan["obtain"] == {"server": LE, "email": "", "names": ("mail.example.org",),
                              "authenticator": "standalone"}


def test_same_names_and_ca_obtain_nothing(tmp_path):
    make_lineage(tmp_path, ["mail.example.org", "autoconfig.example.org"])
    system = scratch(tmp_path)
    os.makedirs(os.path.dirname(acme.hook_path(system.letsencrypt_dir)))
    with open(acme.hook_path(system.letsencrypt_dir), "w") as f:
        f.write(acme.HOOK)
    component = acme.AcmeCertificate(system, ["mail.example.org", "autoconfig.example.org"])
    assert not component.plan(settings_for(), component.read_current())


def test_a_new_name_or_another_ca_obtains_again(tmp_path):
    make_lineage(tmp_path, ["mail.example.org"])
    system = scratch(tmp_path)
    component = acme.AcmeCertificate(system, ["mail.example.org", "mta-sts.example.org"])
    assert component.plan(settings_for(), component.read_current())["obtain"]["names"] == (
        "mail.example.org", "mta-sts.example.org")
    component = acme.AcmeCertificate(system, ["mail.example.org"])
    plan = component.plan(settings_for("https://ca.internal.example/dir"), component.read_current())
    assert plan["obtain"]["server"] == "https://ca.internal.example/dir"


def test_leaving_acme_removes_only_our_hook(tmp_path):
    make_lineage(tmp_path, ["mail.example.org"])
    system = scratch(tmp_path)
    hook = acme.hook_path(system.letsencrypt_dir)
    os.makedirs(os.path.dirname(hook))
    with open(hook, "w") as f:
        f.write(acme.HOOK)
    component = acme.AcmeCertificate(system, ["mail.example.org"])
    plan = component.plan(settings_for(source="snakeoil"), component.read_current())
    component.apply(plan)
    assert not os.path.exists(hook)
    assert os.path.exists(tmp_path / "le" / "live" / "mailsetup" / "fullchain.pem")


def test_certbot_command_keeps_the_key_and_names_every_name(tmp_path):
    component = acme.AcmeCertificate(scratch(tmp_path), ["mail.example.org", "autoconfig.example.org"])
    argv = component.certbot_argv(LE, "admin@example.org", component.names, "webroot")
    assert argv[:2] == ["certbot", "certonly"]
    assert "--reuse-key" in argv and "--non-interactive" in argv
    assert argv[argv.index("--webroot-path") + 1] == str(tmp_path / "state" / "acme-webroot")
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "-d"] == ["mail.example.org", "autoconfig.example.org"]
    standalone = component.certbot_argv(LE, "", component.names, "standalone", hooks=["nginx"])
    assert "--register-unsafely-without-email" in standalone
    assert standalone[standalone.index("--pre-hook") + 1] == "invoke-rc.d nginx stop"


def test_the_hook_is_sh_and_reloads_only_for_our_lineage(tmp_path):
    hook = tmp_path / "hook"
    hook.write_text(acme.HOOK)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    (bin_dir / "invoke-rc.d").write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    (bin_dir / "invoke-rc.d").chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "RENEWED_LINEAGE": "/etc/letsencrypt/live/other"}
    subprocess.run(["/bin/sh", str(hook)], env=env, check=True)
    assert not calls.exists()
    env["RENEWED_LINEAGE"] = "/etc/letsencrypt/live/mailsetup"
    subprocess.run(["/bin/sh", str(hook)], env=env, check=True)
    assert "postfix reload" in calls.read_text() and "nginx reload" in calls.read_text()


def test_certbots_last_words_are_not_the_reason():
    output = ("Requesting a certificate for mail.example.org\n"
              "Certbot failed to authenticate some domains (authenticator: standalone).\n"
              "  Domain: mail.example.org\n  Detail: Connection refused\n\n"
              "Ask for help or search for solutions at https://community.letsencrypt.org.\n")
    assert acme.last_line(output) == "Detail: Connection refused"


def test_a_directory_that_is_no_acme_directory(tmp_path):
    assert "cannot be reached" in acme.directory_problem("https://127.0.0.1:1/dir", timeout=2)

    class NotAcme(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), NotAcme)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        # Plain HTTP here only to see the answer checked (the question allows https only).
        assert "404" in acme.directory_problem(f"http://127.0.0.1:{server.server_port}/dir", timeout=2)
    finally:
        server.shutdown()


class AskedAgain:
    def __init__(self, interactive):
        self.interactive = interactive
        self.refused = []

    def ask_again(self, invalid):
        self.refused.append((invalid.question, invalid.expected))
        return self.interactive


def refusing_ca(settings):
    if settings.tls_source == "acme":
        try:
            raise acme.AcmeRefused("the ACME CA https://ca.example/dir issued no certificate: Connection refused")
        except acme.AcmeRefused as err:
            raise ApplyFailed("applying the mailbox settings failed: " + str(err)) from err
    return "applied"


def test_a_refusing_ca_asks_for_the_source_again_where_someone_answers():
    answers = iter([answers_for("acme"), answers_for("snakeoil")])
    questions = AskedAgain(interactive=True)
    settings, outcome = configure.apply_asking_again(
        questions, lambda: ImapSettings.from_answers(next(answers), "mail.example.org"), refusing_ca)
    assert (settings.tls_source, outcome) == ("snakeoil", "applied")
    assert questions.refused == [("tls_source", "the ACME CA https://ca.example/dir issued no certificate: "
                                                "Connection refused")]


def test_a_refusing_ca_fails_the_noninteractive_install():
    questions = AskedAgain(interactive=False)
    with pytest.raises(ApplyFailed, match="Connection refused"):
        configure.apply_asking_again(
            questions, lambda: ImapSettings.from_answers(answers_for("acme"), "mail.example.org"), refusing_ca)


def test_other_failures_are_not_asked_again():
    questions = AskedAgain(interactive=True)

    def broken(settings):
        raise ApplyFailed("doveconf failed")

    with pytest.raises(ApplyFailed, match="doveconf"):
        configure.apply_asking_again(
            questions, lambda: ImapSettings.from_answers(answers_for("acme"), "mail.example.org"), broken)
    assert questions.refused == []


def answers_for(source):
    return answers(tls_source=source)
