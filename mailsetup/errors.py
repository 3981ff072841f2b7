"""The one root of the errors mailsetup reports to the user.

Every error meant for the user derives from MailsetupError, and its str() is
the one line printed (after "mailsetup: "). Anything else that escapes is a
programming error and is shown as a traceback, never as a polite refusal.

The classes stay beside the code that raises them (InvalidAnswer in
validate.py, MailboxError in imap/mailboxes/model.py, ...); ApplyFailed and
CommandFailed are here because every package raises them.
"""


class MailsetupError(Exception):
    """An error for the user; str() is the one line that says what went wrong."""


class CommandFailed(MailsetupError):
    """A system command (postconf, postmap, doveadm, rspamadm, ...) failed."""


class ApplyFailed(MailsetupError):
    """An apply was refused or failed; the previous configuration is back in place."""
