"""A mailbox's new password: checked, hashed and stored in one store transaction.

The one path shared by `mailsetup mailbox passwd` (imap/cli.py) and the
webmail's password helper (webmail/passwd_helper.py), so both refuse the same
passwords, hash them the same way and write them the same way.

    require_mailbox(store, "Alice@example.org")         # -> "alice@example.org", or MailboxError
    change_password(store, hasher, "alice@example.org", "new password")
"""

from mailsetup.imap.mailboxes import model

# Stands in for a hash where only "is this a mailbox?" is asked (model.password_hash accepts it).
PENDING_HASH = "{PENDING}x"


def require_mailbox(store, addr):
    """The address of an existing mailbox, in lower case; an unknown address, an alias or
    a list is refused (MailboxError) before any password is asked for or hashed."""
    return store.load().set_password(addr, PENDING_HASH)


def change_password(store, hasher, addr, plaintext):
    """Give the mailbox addr the password plaintext; returns its address.

    The password is checked with model.password() (MailboxError names the
    rule it breaks), then hashed with hasher (plaintext -> "{SCHEME}...")
    and the hash committed in one store transaction. The plaintext itself is
    never stored."""
    plaintext = model.password(plaintext)
    require_mailbox(store, addr)
    password_hash = hasher(plaintext)
    with store.transaction() as directory:
        return directory.set_password(addr, password_hash)
