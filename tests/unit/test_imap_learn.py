"""ManageSieve and learning spam/ham from the Junk folder (mailsetup-imap): the
Dovecot drop-in for 2.3 and 2.4, the report-spam/report-ham Sieve scripts and
their compilation, and the programs they pipe to (data/imap/sieve-pipe).

doveconf and sievec cannot run here (no Dovecot on the host): the drop-in's
text is checked piece by piece, and sievec is a fake."""

import dataclasses
import os
import shutil
import subprocess

import pytest

from mailsetup import system as mailsetup_system
from mailsetup.imap import apply as imap_core
from mailsetup.imap.components import dovecot, learn, sieve
from mailsetup.imap.settings import ImapSettings
from mailsetup.system import System

TOP = os.path.join(os.path.dirname(__file__), "..", "..")
PIPE_SOURCE = os.path.join(TOP, "data", "imap", "sieve-pipe")
MESSAGE = b"From: someone@example.net\r\nSubject: buy now\r\n\r\ncheap pills\r\n"


@dataclasses.dataclass
class Tls:
    tls_cert: str = "/etc/ssl/certs/mail.pem"
    tls_key: str = "/etc/ssl/private/mail.key"
    directory: str = "sqlite"


def main_conf(version):
    system = System(etc_dir="/etc/mailsetup")
    return dovecot.main_conf(version, Tls(), 103, "/var/vmail", system)


# -- the drop-in ------------------------------------------------------------

def test_the_2_3_drop_in_stores_personal_scripts_in_the_home_and_learns_from_junk():
    conf = main_conf("2.3")
    assert """
plugin {
  quota = count:User quota
  quota_rule = *:storage=0
  quota_vsizes = yes
  # The user's scripts (ManageSieve) run after ours.
  sieve = file:~/sieve;active=~/.dovecot.sieve
  sieve_before = /etc/mailsetup/sieve/spam-to-junk.sieve
  # Learning from Junk: only global scripts may pipe, only to sieve_pipe_bin_dir.
  sieve_plugins = sieve_imapsieve sieve_extprograms
  sieve_global_extensions = +vnd.dovecot.pipe +vnd.dovecot.environment
  sieve_pipe_bin_dir = /usr/lib/mailsetup-imap/sieve-pipe
  imapsieve_mailbox1_name = Junk
  imapsieve_mailbox1_causes = COPY
  imapsieve_mailbox1_before = file:/etc/mailsetup/sieve/report-spam.sieve
  imapsieve_mailbox2_name = *
  imapsieve_mailbox2_from = Junk
  imapsieve_mailbox2_causes = COPY
  imapsieve_mailbox2_before = file:/etc/mailsetup/sieve/report-ham.sieve
}
protocol imap {
  mail_plugins = $mail_plugins imap_quota imap_sieve
}
""" in conf
    # One plugin block and one protocol imap block: a second one would be read
    # after the first and could hide it.
    assert conf.count("plugin {") == 1 and conf.count("protocol imap {") == 1
    assert "protocol lmtp {\n  mail_plugins = $mail_plugins sieve\n}" in conf
    # ManageSieve's login refuses cleartext logins before STARTTLS through these.
    assert "ssl = required\n" in conf and "disable_plaintext_auth = yes\n" in conf


def test_the_2_4_drop_in_stores_personal_scripts_in_the_home_and_learns_from_junk():
    conf = main_conf("2.4")
    assert """
protocol imap {
  mail_plugins {
    imap_quota = yes
    imap_sieve = yes
  }
}
""" in conf
    assert """
sieve_script personal {
  type = personal
  driver = file
  path = ~/sieve
  active_path = ~/.dovecot.sieve
}
# No cause: run at delivery only.
sieve_script mailsetup-spam-to-junk {
  type = before
  driver = file
  path = /etc/mailsetup/sieve/spam-to-junk.sieve
}
""" in conf
    assert """
sieve_plugins {
  sieve_imapsieve = yes
  sieve_extprograms = yes
}
sieve_global_extensions {
  vnd.dovecot.pipe = yes
  vnd.dovecot.environment = yes
}
sieve_pipe_bin_dir = /usr/lib/mailsetup-imap/sieve-pipe
# Moved or copied into Junk.
mailbox Junk {
  sieve_script mailsetup-report-spam {
    type = before
    cause = copy
    driver = file
    path = /etc/mailsetup/sieve/report-spam.sieve
  }
}
# Moved or copied out of Junk (report-ham.sieve leaves out Trash).
imapsieve_from Junk {
  sieve_script mailsetup-report-ham {
    type = before
    cause = copy
    driver = file
    path = /etc/mailsetup/sieve/report-ham.sieve
  }
}
""" in conf
    assert conf.count("protocol imap {") == 1
    assert "protocol lmtp {\n  auth_username_format = %{user | lower}\n  mail_plugins {\n    sieve = yes\n  }\n}" in conf
    # 2.3's syntax would stop Dovecot 2.4 (doc/dovecot-facts.md).
    for old in ("plugin {", "$mail_plugins", "imapsieve_mailbox", "sieve_before", "disable_plaintext_auth"):
        assert old not in conf
    assert "ssl = required\n" in conf and "auth_allow_cleartext = no\n" in conf


@pytest.mark.parametrize("version", ["2.3", "2.4"])
def test_the_drop_in_pipes_only_to_the_programs_the_package_ships(version):
    conf = main_conf(version)
    assert f"sieve_pipe_bin_dir = {learn.PIPE_BIN_DIR}\n" in conf
    with open(os.path.join(TOP, "debian", "mailsetup-imap.install")) as f:
        shipped = [line.split() for line in f if line.startswith("data/")]
    assert sorted(shipped) == [[f"data/imap/sieve-pipe/{name}", learn.PIPE_BIN_DIR.lstrip("/")]
                               for name in ("learn-ham", "learn-spam")]


# -- the Sieve scripts and their compilation ----------------------------------

def test_the_scripts_pipe_to_the_shipped_programs_and_ham_leaves_out_trash():
    assert learn.REPORT_SPAM.count(b"pipe :copy") == 1 and b'pipe :copy "learn-spam";' in learn.REPORT_SPAM
    assert b'require ["vnd.dovecot.pipe", "copy", "imapsieve"];' in learn.REPORT_SPAM
    ham = learn.REPORT_HAM.decode()
    assert 'if environment :matches "imap.mailbox" "*" {\n  set "mailbox" "${1}";\n}' in ham
    assert ham.index('if string "${mailbox}" "Trash" {\n  stop;\n}') < ham.index('pipe :copy "learn-ham";')
    for program in ("learn-spam", "learn-ham"):
        assert os.path.exists(os.path.join(PIPE_SOURCE, program))


class Compiling:
    """A system where sievec "runs": it writes the binary next to the script."""

    def __init__(self, system, fail_on=None):
        self.system = dataclasses.replace(system, run_services=True)
        self.calls = []
        self.fail_on = fail_on
        self.system.run = self.run

    def run(self, argv, check=True):
        self.calls.append(argv)
        # the configuration as written, not the running Dovecot's
        assert argv[:3] == ["sievec", "-c", self.system.dovecot_conf_path]
        script = argv[3]
        if self.fail_on and script.endswith(self.fail_on):
            raise mailsetup_system.CommandFailed("sievec failed: simulated")
        with open(script[:-len(".sieve")] + ".svbin", "wb") as f:
            f.write(b"compiled " + open(script, "rb").read())


def run_component(part):
    current = part.read_current()
    plan = part.plan(None, current)
    if plan:
        part.apply(plan)
    return plan


@pytest.fixture
def sieve_system(tmp_path):
    return System(etc_dir=str(tmp_path / "etc-mailsetup"), run_services=False)


def test_the_learn_component_plans_both_scripts_and_their_compilation(sieve_system):
    fake = Compiling(sieve_system)
    spam, ham = learn.report_spam_path(sieve_system), learn.report_ham_path(sieve_system)
    spam_bin, ham_bin = spam[:-len(".sieve")] + ".svbin", ham[:-len(".sieve")] + ".svbin"
    part = learn.SieveLearn(fake.system)
    assert part.name == "learn"
    assert part.files() == [spam, spam_bin, ham, ham_bin]
    assert run_component(part) == {spam: learn.REPORT_SPAM, spam_bin: sieve.COMPILE,
                                   ham: learn.REPORT_HAM, ham_bin: sieve.COMPILE}
    # As root, like the spam-to-junk script: each compiled where it is.
    conf = fake.system.dovecot_conf_path
    assert fake.calls == [["sievec", "-c", conf, spam], ["sievec", "-c", conf, ham]]
    for path in (spam, ham, spam_bin, ham_bin):
        assert os.stat(path).st_mode & 0o777 == 0o644
    assert open(spam, "rb").read() == learn.REPORT_SPAM and open(ham, "rb").read() == learn.REPORT_HAM
    # Nothing to do the second time; the drop-in changed: both compiled again.
    assert run_component(learn.SieveLearn(fake.system)) == {}
    assert run_component(learn.SieveLearn(fake.system, dovecot_config_changed=True)) == {
        spam_bin: sieve.COMPILE, ham_bin: sieve.COMPILE}
    # One script changed by hand: only it is written back and compiled.
    with open(ham, "ab") as f:
        f.write(b"discard;\n")
    assert run_component(learn.SieveLearn(fake.system)) == {ham: learn.REPORT_HAM, ham_bin: sieve.COMPILE}
    assert len(fake.calls) == 5


def test_without_sievec_the_scripts_are_written_and_nothing_is_compiled(sieve_system):
    """Scratch directories (run_services off): what the unit tests of apply see."""
    plan = run_component(learn.SieveLearn(sieve_system))
    assert set(plan) == {learn.report_spam_path(sieve_system), learn.report_ham_path(sieve_system)}
    assert not [name for name in os.listdir(sieve_system.sieve_dir) if name.endswith(".svbin")]


CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
KEY = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"


def imap_settings(tmp_path):
    (tmp_path / "cert.pem").write_text(CERT)
    (tmp_path / "key.pem").write_text(KEY)
    return ImapSettings.from_answers({"domains": "example.test", "tls_cert": str(tmp_path / "cert.pem"),
                                      "tls_key": str(tmp_path / "key.pem")}, core_hostname="mail.example.test")


@pytest.fixture
def imap_system(scratch, tmp_path):
    from mailsetup.core import apply as core
    from mailsetup.core.settings import CoreSettings
    system = dataclasses.replace(scratch, imap_state_dir=str(tmp_path / "imap-state"),
                                 dovecot_conf_dir=str(tmp_path / "dovecot"), vmail_dir=str(tmp_path / "vmail"))
    core.apply(CoreSettings.from_answers({
        "mail_domain": "example.test", "hostname": "mail.example.test", "mailer_type": "internet",
        "relayhost": "", "other_destinations": "", "mynetworks": "127.0.0.0/8", "message_size_limit": "20",
        "admin_user": "alice", "aliases": "", "inet_protocols": "ipv4", "recipient_delimiter": "+"},
        lambda name: False), system)
    return system


@pytest.mark.parametrize("version", ["2.3", "2.4"])
def test_apply_writes_the_learning_scripts_and_the_drop_in_names_them(imap_system, tmp_path, version):
    outcome = imap_core.apply(imap_settings(tmp_path), imap_system, dovecot_version=version)
    # After the drop-in (sievec reads the extensions it enables) and the spam-to-junk script.
    assert [name for name in outcome.changed if name in ("dovecot", "sieve", "learn")] == ["dovecot", "sieve", "learn"]
    main = open(os.path.join(imap_system.dovecot_conf_dir, dovecot.MAIN_FILE)).read()
    for path, content in ((learn.report_spam_path(imap_system), learn.REPORT_SPAM),
                          (learn.report_ham_path(imap_system), learn.REPORT_HAM)):
        assert open(path, "rb").read() == content
        assert path in main
    assert imap_core.apply(imap_settings(tmp_path), imap_system, dovecot_version=version).changed == []


def test_a_failing_sievec_for_a_learning_script_puts_everything_back(imap_system, tmp_path, monkeypatch):
    fake = Compiling(imap_system, fail_on=learn.REPORT_HAM_NAME)
    monkeypatch.setattr(imap_core, "ensure_vmail", lambda system: os.getuid())
    monkeypatch.setattr("mailsetup.reapply.reapply_core", lambda system: None)
    with pytest.raises(imap_core.ApplyFailed, match="simulated"):
        imap_core.apply(imap_settings(tmp_path), fake.system, dovecot_version="2.4")
    assert [call[-1] for call in fake.calls][-1] == learn.report_ham_path(imap_system)
    for name in (sieve.SCRIPT_NAME, learn.REPORT_SPAM_NAME, learn.REPORT_HAM_NAME, "report-spam.svbin"):
        assert not os.path.exists(os.path.join(imap_system.sieve_dir, name))
    assert not os.path.exists(os.path.join(imap_system.dovecot_conf_dir, dovecot.MAIN_FILE))


# -- the programs Dovecot pipes to ---------------------------------------------

@pytest.mark.parametrize("program", ["learn-spam", "learn-ham"])
def test_the_programs_are_executable_sh_scripts(program):
    path = os.path.join(PIPE_SOURCE, program)
    assert os.stat(path).st_mode & 0o111 == 0o111
    with open(path) as f:
        assert f.readline() == "#!/bin/sh\n"
    subprocess.run(["sh", "-n", path], check=True)


def bin_dir(tmp_path, *tools):
    """A PATH directory with the given host tools and nothing else."""
    directory = tmp_path / "bin"
    directory.mkdir(exist_ok=True)
    for tool in tools:
        os.symlink(shutil.which(tool), directory / tool)
    return directory


def fake(directory, name, body):
    path = directory / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


def run_program(program, directory, message=MESSAGE):
    """Run the program as Dovecot does: the message written to its stdin, every
    byte of it (a program that stops reading would fail Dovecot's write)."""
    proc = subprocess.Popen(["/bin/sh", os.path.join(PIPE_SOURCE, program)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={"PATH": str(directory)})
    proc.stdin.write(message)   # BrokenPipeError if the program does not read it all
    proc.stdin.close()
    out, err = proc.stdout.read(), proc.stderr.read()
    proc.wait(timeout=30)
    return proc.returncode, out, err


BIG = MESSAGE + b"x" * (1024 * 1024) + b"\r\n"


@pytest.mark.parametrize("program", ["learn-spam", "learn-ham"])
def test_without_rspamc_the_message_is_read_and_nothing_is_done(tmp_path, program):
    directory = bin_dir(tmp_path, "cat", "tr")
    fake(directory, "logger", f'echo "$*" >> "{tmp_path}/logged"\n')
    assert run_program(program, directory, BIG) == (0, b"", b"")
    assert not (tmp_path / "logged").exists()


@pytest.mark.parametrize("program,command", [("learn-spam", "learn_spam"), ("learn-ham", "learn_ham")])
def test_rspamc_gets_the_command_and_the_message(tmp_path, program, command):
    directory = bin_dir(tmp_path, "cat", "tr")
    fake(directory, "rspamc", f'echo "$*" > "{tmp_path}/args"\ncat > "{tmp_path}/stdin"\necho "success = true;"\n')
    fake(directory, "logger", f'echo "$*" >> "{tmp_path}/logged"\n')
    assert run_program(program, directory) == (0, b"", b"")
    assert (tmp_path / "args").read_text() == command + "\n"
    assert (tmp_path / "stdin").read_bytes() == MESSAGE
    assert not (tmp_path / "logged").exists()


# rspamc 3.4 with rspamd not running: this on stdout, exit status 1.
REFUSED = 'echo "Results for file: stdin (0 seconds)"\necho "IO write error: Connection refused"\necho\nexit 1\n'


@pytest.mark.parametrize("program,command", [("learn-spam", "learn_spam"), ("learn-ham", "learn_ham")])
def test_a_failing_rspamc_is_logged_once_and_the_move_goes_on(tmp_path, program, command):
    directory = bin_dir(tmp_path, "cat", "tr")
    # It fails without reading the message: the program still takes all of it.
    fake(directory, "rspamc", REFUSED)
    fake(directory, "logger", f'echo "$*" >> "{tmp_path}/logged"\n')
    assert run_program(program, directory, BIG) == (0, b"", b"")
    assert (tmp_path / "logged").read_text().splitlines() == [
        f"-t mailsetup-learn -p mail.warning -- rspamc {command} failed: "
        "Results for file: stdin (0 seconds) IO write error: Connection refused"]


def test_without_logger_the_failure_goes_to_stderr(tmp_path):
    directory = bin_dir(tmp_path, "cat", "tr")
    fake(directory, "rspamc", REFUSED)
    code, out, err = run_program("learn-spam", directory)
    assert (code, out) == (0, b"")
    assert err.decode().splitlines() == [
        "mailsetup-learn: rspamc learn_spam failed: Results for file: stdin (0 seconds) "
        "IO write error: Connection refused"]
