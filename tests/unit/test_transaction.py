"""The apply engine (mailsetup/transaction.py) with fake components: what it writes,
what a failure puts back, and when the package is asked to reload."""

import os
from dataclasses import dataclass

import pytest

from mailsetup.errors import ApplyFailed, CommandFailed
from mailsetup.state import StateDir
from mailsetup.transaction import Transaction

FAILURE = "applying failed, all is back: {error}"


class FileComponent:
    """One file that should hold `wanted`; fail (an exception) makes apply break halfway."""

    def __init__(self, name, path, fail=None):
        self.name = name
        self.path = path
        self.fail = fail
        self.recorded = []

    def files(self):
        return [self.path]

    def read_current(self):
        return open(self.path).read() if os.path.exists(self.path) else None

    def plan(self, wanted, current):
        return wanted if wanted != current else None

    def record_originals(self, state, plan, current):
        self.recorded.append(current)

    def apply(self, plan):
        with open(self.path, "w") as f:
            f.write(plan[:1])
            if self.fail:
                raise self.fail
            f.write(plan[1:])


@dataclass
class FakeSystem:
    run_services: bool = False

    def __post_init__(self):
        self.commands = []

    def run(self, argv, check=True):
        self.commands.append(argv)


@pytest.fixture
def env(tmp_path):
    class Env:
        state = StateDir(str(tmp_path / "state"))
        system = FakeSystem()
        reloads = []
        a = tmp_path / "a.conf"
        b = tmp_path / "b.conf"

        def files(self):
            return {p.name: p.read_text() if p.exists() else None for p in (self.a, self.b)}

        def run(self, components, **hooks):
            transaction = Transaction(self.system, self.state)
            for component, wanted in components:
                transaction.add(component, wanted)
            transaction.run({"answer": "yes"}, FAILURE,
                            lambda: self.reloads.append((transaction.changed, transaction.pending)), **hooks)
            return transaction
    os.makedirs(tmp_path / "state")
    env = Env()
    env.a.write_text("old a")
    return env


def test_a_failure_puts_every_file_and_the_pending_note_back(env):
    env.state.set_postfix_pending("restart")  # owed by a killed run
    undone = []
    with pytest.raises(ApplyFailed, match="^applying failed, all is back: disk full$"):
        env.run([(FileComponent("a", str(env.a)), "new a"),
                 (FileComponent("b", str(env.b), fail=OSError("disk full")), "new b")],
                owed="reload", undo=[lambda: undone.append(env.files())])
    assert env.files() == {"a.conf": "old a", "b.conf": None}
    assert undone == [{"a.conf": "old a", "b.conf": None}]  # undo hooks run after the files are back
    assert env.state.postfix_pending() == "restart"
    assert env.reloads == [] and env.state.applied() is None


def test_a_failing_check_puts_the_files_back(env):
    env.system.run_services = True

    def check():
        raise CommandFailed("doveconf: broken")
    with pytest.raises(ApplyFailed, match="doveconf: broken"):
        env.run([(FileComponent("a", str(env.a)), "new a")], checks=[check])
    assert env.files()["a.conf"] == "old a"
    assert env.state.postfix_pending() is None


def test_an_interrupted_apply_leaves_the_note_for_the_next_run(env):
    with pytest.raises(KeyboardInterrupt):
        env.run([(FileComponent("a", str(env.a), fail=KeyboardInterrupt()), "new a")], owed="restart")
    assert env.state.postfix_pending() == "restart"


def test_nothing_is_written_when_no_component_has_a_plan(env):
    a = FileComponent("a", str(env.a))
    before = sorted(os.listdir(env.state.path))
    checks = []
    env.system.run_services = True
    mtime = os.stat(env.a).st_mtime_ns
    notes = []
    transaction = env.run([(a, "old a")], checks=[lambda: checks.append("checked")],
                          after_apply=[lambda: notes.append(env.state.postfix_pending())])
    assert transaction.todo == [] and a.recorded == [] and notes == [None]
    assert os.stat(env.a).st_mtime_ns == mtime
    assert checks == [] and env.system.commands == []  # nothing changed: nothing to check
    assert env.state.postfix_pending() is None
    assert sorted(os.listdir(env.state.path)) == sorted(before + ["applied.json"])


def test_only_changed_components_are_applied_and_checked_with_postfix(env):
    env.system.run_services = True
    env.b.write_text("same b")
    a, b = FileComponent("a", str(env.a)), FileComponent("b", str(env.b))
    order = []
    transaction = env.run([(a, "new a"), (b, "same b")], owed="restart",
                          before_apply=[lambda: order.append("before")],
                          after_each=lambda c: order.append(("applied", c.name, env.state.postfix_pending())),
                          after_apply=[lambda: order.append("after")], checks=[lambda: order.append("check")],
                          after_checks=[lambda: order.append("after checks")])
    assert transaction.changed == ["a"] and a.recorded == ["old a"] and b.recorded == []
    # The note is there while the files differ from what Postfix runs.
    assert order == ["before", ("applied", "a", "restart"), "after", "check", "after checks"]
    assert env.system.commands == [["postfix", "check"]]
    assert env.files() == {"a.conf": "new a", "b.conf": "same b"}
    assert env.state.postfix_pending() is None
    assert env.state.applied() == {"answers": {"answer": "yes"}}


def test_the_reload_is_told_what_changed_and_what_was_owed(env):
    a = FileComponent("a", str(env.a))
    env.run([(a, "new a")])
    assert env.reloads == [(["a"], None)]
    env.run([(a, "new a")])
    assert env.reloads[-1] == ([], None)    # nothing changed, nothing owed: the package reports "unchanged"
    env.state.set_postfix_pending("reload")
    env.run([(a, "new a")])
    assert env.reloads[-1] == ([], "reload")    # owed by a killed run: made good now
    assert env.state.postfix_pending() is None


def test_checks_of_an_unchanged_system_run_when_asked(env):
    env.system.run_services = True
    checks = []
    env.run([(FileComponent("a", str(env.a)), "old a")], checks=[lambda: checks.append("checked")],
            check_unchanged=True)
    assert checks == ["checked"] and env.system.commands == [["postfix", "check"]]


def test_no_checks_without_services(env):
    checks = []
    env.run([(FileComponent("a", str(env.a)), "new a")], checks=[lambda: checks.append("checked")])
    assert checks == [] and env.system.commands == []


def test_extra_files_are_put_back_too(env):
    key = env.a.parent / "new.key"

    def make_key():
        key.write_text("secret")
    with pytest.raises(ApplyFailed):
        env.run([(FileComponent("b", str(env.b), fail=OSError("broken")), "new b")],
                before_apply=[make_key], extra_files=[str(key)])
    assert not key.exists()
