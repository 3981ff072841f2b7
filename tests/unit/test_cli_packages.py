"""The `mailsetup` command with only some of its binary packages installed.

The package `mailsetup` ships mailsetup/*.py, core/, cli/ and dns/;
mailsetup-imap ships imap/ and mailsetup-filter ships filter/. Here a copy of
the tree without imap/ and filter/ runs in a child Python: `mailsetup status`,
`mailsetup dns` and --help work, and the commands of a missing package say in
one line which package to install (exit 1, as when it is installed but not set
up). The module-level imports of the command modules are checked with ast.
"""

import ast
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from mailsetup import cli
from mailsetup.cli import common
from mailsetup.cli import status as cli_status

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# Run in the child: a System from the JSON in argv[1], services as the JSON list in argv[2] says.
DRIVER = """
import json, sys
from mailsetup import services
from mailsetup.cli import main
from mailsetup.cli.common import Tools
from mailsetup.system import System

class Services:
    def __init__(self, up):
        self.up = set(up)

    def running(self, name):
        return name in self.up

system = System(**json.loads(sys.argv[1]))
fake = Services(json.loads(sys.argv[2]))
services.of = lambda system: fake
sys.exit(main(sys.argv[3:], tools=Tools(system)))
"""
IMAP_HINT = "mailsetup: mailboxes are not set up: install mailsetup-imap first (apt install mailsetup-imap)\n"
FILTER_HINT = "mailsetup: mailsetup-filter is not set up: install it first (apt install mailsetup-filter)\n"


def shipped_tree(tmp_path, leave_out):
    """A copy of mailsetup/ without the folders in leave_out, as dpkg would leave it."""
    top = tmp_path / "tree"
    shutil.copytree(os.path.join(TOP, "mailsetup"), top / "mailsetup",
                    ignore=shutil.ignore_patterns("__pycache__", *leave_out))
    return top


@pytest.fixture
def only_core(tmp_path, scratch):
    """run(*argv, up=("postfix",)) -> (exit code, stdout, stderr) of `mailsetup ARGV` with the package
    `mailsetup` alone (no imap/, filter/ or webmail/), acting on scratch."""
    top = shipped_tree(tmp_path, ("imap", "filter", "webmail"))
    assert not (top / "mailsetup" / "imap").exists() and (top / "mailsetup" / "dns" / "cli.py").exists()
    assert not (tmp_path / "mailsetup").exists()  # the child's cwd, first on its sys.path
    os.utime(scratch.main_cf_path, (time.time() - 60, time.time() - 60))
    system = {"postfix_config_dir": scratch.postfix_config_dir, "mailname_path": scratch.mailname_path,
              "etc_dir": scratch.etc_dir, "state_dir": scratch.state_dir,
              "system_aliases_path": scratch.system_aliases_path, "run_services": False,
              "imap_state_dir": str(tmp_path / "imap-state"), "filter_state_dir": str(tmp_path / "filter-state")}
    env = dict(os.environ, PYTHONPATH=str(top), LANGUAGE="C", PYTHONDONTWRITEBYTECODE="1")
    env.pop("LC_ALL", None)

    def run(*argv, up=("postfix",)):
        proc = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(system), json.dumps(list(up)), *argv],
                              capture_output=True, text=True, env=env, cwd=str(tmp_path), check=False)
        return proc.returncode, proc.stdout, proc.stderr
    return run


def test_status_works_with_only_the_core(only_core):
    code, out, err = only_core("status")
    assert err == "" and code == cli.EXIT_OK, (out, err)
    assert out.startswith("Postfix settings in effect (main.cf):\n")
    assert "Postfix: running\n" in out and "Listening mail ports: " in out
    for other in ("Dovecot", "Mail domains", "Filter"):
        assert other not in out
    code, out, err = only_core("status", "--json")
    status = json.loads(out)
    assert status["configured"] is True and "ports" in status
    assert not {"dovecot_running", "domains", "filter_configured"} & set(status)
    assert only_core("status", up=())[0] == cli.EXIT_PROBLEM  # Postfix down is still a problem


def test_help_and_dns_work_with_only_the_core(only_core):
    code, out, err = only_core("--help")
    assert (code, err) == (cli.EXIT_OK, "") and out.startswith("usage: mailsetup")
    assert "status" in out and "dns" in out
    for missing in ("mailbox", "access"):
        assert missing not in out
    code, out, err = only_core("dns")
    assert (code, err) == (cli.EXIT_OK, ""), (out, err)
    assert out.startswith("; DNS records for the mail of old.example.net:")
    assert "example.net. " in out and " IN MX    10 old.example.net." in out


@pytest.mark.parametrize("argv, hint", [(["mailbox", "list"], IMAP_HINT), (["domain", "add", "example.org"], IMAP_HINT),
                                        (["alias"], IMAP_HINT), (["list", "members"], IMAP_HINT),
                                        (["import", "x.csv"], IMAP_HINT), (["access", "list"], FILTER_HINT)])
def test_the_commands_of_a_missing_package_name_it(only_core, argv, hint):
    assert only_core(*argv) == (cli.EXIT_PROBLEM, "", hint)


def test_with_imap_but_not_the_filter(tmp_path):
    top = shipped_tree(tmp_path, ("filter",))
    env = dict(os.environ, PYTHONPATH=str(top), LANGUAGE="C", PYTHONDONTWRITEBYTECODE="1")
    script = "import sys; from mailsetup.cli import build_parser, main; print(build_parser().format_help()); " \
             "sys.exit(main(['access', 'list']))"
    # cwd: `python3 -c` puts it first on sys.path, and it must not be the full tree
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                          cwd=str(tmp_path), check=False)
    assert (proc.returncode, proc.stderr) == (cli.EXIT_PROBLEM, FILTER_HINT)
    assert "mailbox" in proc.stdout and "access" not in proc.stdout


def test_the_hints_name_the_commands_each_group_adds():
    """OPTIONAL_GROUPS names each group's commands for when it is missing: the same as it adds."""
    for name, commands, missing in cli.OPTIONAL_GROUPS:
        module = common.import_present(name)
        assert tuple(module.COMMANDS) == commands
        parser = cli.build_parser()
        choices = set(parser._subparsers._group_actions[0].choices)
        assert set(commands) <= choices
        assert missing()  # a line to say
    everything = {c for _n, commands, _m in cli.OPTIONAL_GROUPS for c in commands} | {"status", "dns"}
    assert set(cli.build_parser()._subparsers._group_actions[0].choices) == everything


def test_only_a_missing_package_counts_as_absent(tmp_path, monkeypatch):
    """A bug that raises ImportError inside an installed package is a traceback, not "install it"."""
    package = tmp_path / "somepkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "broken.py").write_text("import somepkg.nonexistent_helper\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert common.import_present("nopkg_at_all.cli") is None
    assert common.import_present("somepkg.missing") is None
    with pytest.raises(ModuleNotFoundError):
        common.import_present("somepkg.broken")
    assert common.import_present("somepkg") is not None


def test_a_programming_error_is_a_traceback(monkeypatch, capsys):
    def broken(system):
        raise TypeError("a bug")
    monkeypatch.setattr(cli_status, "collect_status", broken)
    with pytest.raises(TypeError):
        cli.main(["status"])
    assert "mailsetup: a bug" not in capsys.readouterr().err


# --- the imports of the command modules -------------------------------------------

COMMAND_MODULES = ["mailsetup/cli/__init__.py", "mailsetup/cli/common.py", "mailsetup/cli/status.py",
                   "mailsetup/dns/cli.py", "mailsetup/imap/cli.py", "mailsetup/imap/status.py",
                   "mailsetup/filter/cli.py", "mailsetup/filter/status.py", "mailsetup/filter/health.py",
                   "mailsetup/filter/apply.py"]


def imports(path):
    """[(module, name or None)] of path's module-level imports."""
    found = []
    for node in ast.parse(open(os.path.join(TOP, path), encoding="utf-8").read()).body:
        if isinstance(node, ast.Import):
            found += [(a.name, None) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            found += [(node.module, a.name) for a in node.names]
    return found


@pytest.mark.parametrize("path", COMMAND_MODULES)
def test_no_private_name_is_imported(path):
    private = [f"{module}.{name}" for module, name in imports(path)
               if name and name.startswith("_") and name != "_"]
    assert not private, f"{path} imports {private}"


@pytest.mark.parametrize("path", [p for p in COMMAND_MODULES if p.startswith(("mailsetup/cli/", "mailsetup/dns/"))])
def test_the_core_s_commands_import_no_other_package(path):
    """cli/ and dns/ ship in `mailsetup`: mailsetup-imap and mailsetup-filter are imported only by importlib."""
    others = [module for module, _name in imports(path)
              if module.startswith(("mailsetup.imap", "mailsetup.filter"))]
    assert not others, f"{path} imports {others}"
