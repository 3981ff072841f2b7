"""The apply engine, written once: each package's apply.py declares its components,
checks, undo hooks and reloads, and a Transaction runs them.

A component (core/, imap/ and filter/components/) has this shape:

- ``name``: what the report calls it (Outcome.changed lists these names);
- ``files()``: the paths apply() may change, snapshotted before any change so
  that a failed apply puts them back;
- ``read_current()``: the component's state as it is on the system now;
- ``plan(wanted, current)``: what has to change (empty or None: nothing);
  wanted is the package's settings, or what the package gives the component
  instead (the filter's access lists);
- ``record_originals(state, plan, current)``: remember in the StateDir, once,
  what purge must put back (the postrm, in sh, puts it back);
- ``apply(plan)``: make the change with the component's own tools;
- ``answers_from_system(current)`` (the core's components): question -> answer
  as the system reflects it, for reading hand edits back into the questions.

Components that set main.cf keys with postconf derive from postfix_keys.MainCfKeys
(files, read_current, plan, record_originals, apply); they give name,
MANAGED_KEYS and desired(settings).

Transaction.add() reads and plans one component; run() then does, for the
components whose plan is not empty ("todo"):

1. note in the state dir that Postfix is owed a reload (or restart), so a run
   killed halfway still tells Postfix next time (Transaction.pending);
2. snapshot their files, record their originals, apply them in order;
3. check the result with the components' tools and `postfix check` (only
   where run_services is on: scratch directories in unit tests have no Postfix);
4. on a MailsetupError or OSError: put the files back, run the package's undo
   hooks, put the pending note back and refuse with ApplyFailed (the package's
   message); anything else (KeyboardInterrupt, as a kill) leaves the note;
5. otherwise let the package reload what changed, clear the note and save the
   applied answers.

With no component to change nothing is written, but the package's reload still
runs: a reload owed by a killed run is made good then.
"""

from mailsetup.errors import ApplyFailed, MailsetupError
from mailsetup.fileutil import Snapshot


class Transaction:
    def __init__(self, system, state):
        self.system = system
        self.state = state
        self.components = []
        self.current = {}
        self.plans = {}
        # "reload" or "restart" when an earlier run changed files and was killed
        # before it told Postfix; None otherwise.
        self.pending = state.postfix_pending()

    def add(self, component, wanted):
        """Read component's current state and plan it towards wanted; the plan."""
        self.components.append(component)
        self.current[component] = component.read_current()
        self.plans[component] = component.plan(wanted, self.current[component])
        return self.plans[component]

    @property
    def todo(self):
        """The components with something to change, in the order they were added."""
        return [c for c in self.components if self.plans[c]]

    @property
    def changed(self):
        """The names of the components with something to change (a new list)."""
        return [c.name for c in self.todo]

    def run(self, answers, failure, reload, owed="reload", before_apply=(), after_each=None, after_apply=(),
            checks=(), check_unchanged=False, after_checks=(), undo=(), extra_files=(), verify=None):
        """Apply the plans; on failure put everything back and raise ApplyFailed.

        answers: what state.save_applied records on success; failure: the message,
        with {error} for the reason; reload(): tells the services (also with no
        todo); owed: "reload" or "restart", noted while the files differ from what
        Postfix runs. The hooks are callables without arguments, called in this
        order: before_apply, then each component's record_originals, apply and
        after_each(component), then after_apply, checks (only with a todo, or
        check_unchanged, and run_services on), after_checks. undo runs after the
        files are restored; extra_files are snapshotted with the components'
        files (the filter's DKIM keys); verify() runs after the note is cleared.
        """
        todo = self.todo
        state = self.state
        if todo:
            state.set_postfix_pending(owed)
        snapshot = Snapshot([path for c in todo for path in c.files()] + list(extra_files))
        try:
            for step in before_apply:
                step()
            for c in todo:
                c.record_originals(state, self.plans[c], self.current[c])
            for c in todo:
                c.apply(self.plans[c])
                if after_each:
                    after_each(c)
            for step in after_apply:
                step()
            if self.system.run_services and (todo or check_unchanged):
                for check in checks:
                    check()
                # Every package changes main.cf or master.cf.
                self.system.run(["postfix", "check"])
            for step in after_checks:
                step()
        except (MailsetupError, OSError) as err:
            snapshot.restore()
            for step in undo:
                step()
            state.set_postfix_pending(self.pending)
            raise ApplyFailed(failure.format(error=err)) from err
        reload()
        state.set_postfix_pending(None)
        if verify:
            verify()
        state.save_applied({"answers": answers})
