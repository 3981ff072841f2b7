"""Apply the core settings to the system: plan, apply, check, undo on failure.

Idempotent: when the system already matches the settings nothing is written
and Postfix is not reloaded.
"""

import os
import time
from dataclasses import dataclass, field

from mailsetup.core.components.account import AdminAccount
from mailsetup.core.components.aliases import Aliases
from mailsetup.core.components.mailname import Mailname
from mailsetup.core.components.postfix_bootstrap import PostfixBootstrap
from mailsetup.core.components.postfix_main import PostfixMain, outgoing_tls
from mailsetup import postfix_service, services
from mailsetup.i18n import _
from mailsetup.core.settings import CoreSettings
from mailsetup.state import StateDir
from mailsetup.errors import ApplyFailed, MailsetupError
from mailsetup.transaction import Transaction

# A test hook: pause halfway through an apply (after main.cf, before the rest),
# so a test can kill the helper there and check that dpkg --configure -a recovers.
PAUSE_FILE_ENV = "MAILSETUP_TEST_PAUSE_FILE"


@dataclass
class Outcome:
    changed: list = field(default_factory=list)  # names of the components that changed
    postfix: str = "not running"  # "reloaded", "restarted", "started", "not running", "unchanged"
    outgoing_tls: str = None  # smtp_tls_security_level chosen: "dane" or "may" (None: not known)


def components(system):
    # The account comes first: the aliases send root's mail to it. /etc/mailname
    # precedes main.cf, whose myorigin names it (postalias reads it).
    return [AdminAccount(system), Mailname(system), PostfixMain(system), Aliases(system)]


def read_system(system):
    """component -> its current state."""
    return {c: c.read_current() for c in components(system)}


def answers_from_system(system):
    """question -> [(component name, answer), ...] as the system reflects it, main.cf first."""
    found = {}
    if not system.postfix_installed():
        return found
    # main.cf first: its mydomain is the mail domain, /etc/mailname only echoes it.
    ordered = sorted(read_system(system).items(), key=lambda item: not isinstance(item[0], PostfixMain))
    for component, current in ordered:
        for question, answer in component.answers_from_system(current).items():
            found.setdefault(question, []).append((component.name, answer))
    return found


def applied_settings(system):
    """The core settings applied last time, or None when the core was never configured."""
    applied = StateDir(system.state_dir).applied()
    if not applied:
        return None
    return CoreSettings.from_answers(applied["answers"], system.is_local_name)


def _pause_for_tests():
    path = os.environ.get(PAUSE_FILE_ENV)
    if path:
        open(path + ".reached", "w").close()
        while os.path.exists(path):
            time.sleep(0.1)


def apply(settings, system):
    """Bring the system in line with settings; on any failure put every file back."""
    state = StateDir(system.state_dir)
    bootstrap = PostfixBootstrap(system)
    created = False
    if bootstrap.needed():
        try:
            created = bootstrap.create(state)
        except (MailsetupError, OSError) as err:
            bootstrap.undo(state)
            # Translators: {error} is the reason, often from the system (in English).
            raise ApplyFailed(_("could not create {path}: {error}").format(
                path=system.main_cf_path, error=err)) from err
        if not created:
            raise ApplyFailed(_("{path} does not exist and postfix's template is missing: is postfix installed?").format(
                path=system.main_cf_path))
    # A main.cf created here goes again when the rest fails.
    outcome = _apply_components(settings, system, state, undo=[lambda: bootstrap.undo(state)] if created else [])
    if created and outcome.postfix == "not running":
        # Postfix's postinst did not start it: there was no main.cf then. A chroot's
        # policy-rc.d may forbid the start: the report then says "not running".
        services.of(system).start(services.POSTFIX)
        if postfix_service.running(system):
            outcome.postfix = "started"
    return outcome


def _apply_components(settings, system, state, undo=()):
    postfix_service.finish_interrupted_drain(system, state)
    transaction = Transaction(system, state)
    for component in components(system):
        transaction.add(component, settings)
    main = next(c for c in transaction.components if isinstance(c, PostfixMain))
    # A run killed after changing files but before telling Postfix leaves a
    # note of what it owed; without it the next run would find the files in
    # place, change nothing, and leave Postfix on the old settings.
    restart = main.needs_restart(transaction.plans[main] or {}) or transaction.pending == "restart"
    outcome = Outcome(changed=transaction.changed, outgoing_tls=outgoing_tls(main.dnssec_validates())[
        "smtp_tls_security_level"])

    def reload():
        if transaction.todo or transaction.pending:
            outcome.postfix = postfix_service.apply_changes(system, state, needs_restart=restart)
        else:
            outcome.postfix = "unchanged"

    def after_each(component):
        if component is main:
            _pause_for_tests()

    transaction.run(
        settings.to_answers(),
        # Translators: {error} is the reason, often the output of a Postfix command (in English).
        _("applying the settings failed, the previous configuration is back in place: {error}"),
        reload, owed="restart" if restart else "reload", after_each=after_each, undo=undo)
    return outcome
