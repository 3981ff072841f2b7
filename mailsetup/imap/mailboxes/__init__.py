"""Virtual domains, mailboxes, aliases and lists for mailsetup-imap.

    model.py     validation and the Directory (what exists), MailboxError
    store.py     Store (the interface) and FileStore (Postfix maps + Dovecot passwd-file)
    hashing.py   password hashing through doveadm pw
    passwords.py a new password checked, hashed and stored (mailbox passwd, the webmail)
    importer.py  CSV import, all-or-nothing

Typical use (a CLI run):

    store = FileStore("/etc/mailsetup")
    with store.transaction() as directory:      # exclusive lock, load
        directory.add_mailbox("alice@example.org", hasher(password), quota_bytes=2 << 30)
    # on leaving the block without an exception: checked and committed all-or-nothing
"""

from mailsetup.imap.mailboxes.model import Directory, Mailbox, MailboxError  # noqa: F401

__all__ = ["Directory", "Mailbox", "MailboxError"]
