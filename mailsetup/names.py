"""DNS names and the local part of mail addresses: the checks every package shares.

Pure functions that say what is wrong (one translated line) or that all is
well (None, True); they never raise, so each caller wraps the problem in its
own error: InvalidAnswer for a debconf answer (validate.py), MailboxError for
the mailbox directory, AccessError for the access lists.
"""

import re

from mailsetup.i18n import _, ngettext

MAX_NAME_LENGTH = 253  # of a DNS name

LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
# A dot-atom local part (RFC 5322) in lower case: no quotes, spaces or commas,
# which could not be written into a Postfix table or an aliases(5) line.
DOT_ATOM_LOCAL = re.compile(r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")


def domain_problem(name, min_labels):
    """Why name (lower case, without a trailing dot) is not a DNS name with at
    least min_labels labels, or None."""
    if not name.isascii():
        return _("non-ASCII names must be given in their punycode form (xn--...)")
    if len(name) > MAX_NAME_LENGTH:
        return ngettext("a name is at most {count} character long",
                        "a name is at most {count} characters long", MAX_NAME_LENGTH).format(count=MAX_NAME_LENGTH)
    labels = name.split(".")
    for label in labels:
        if not LABEL.match(label):
            # Translators: a label is one of the parts of a name between the dots.
            return _('"{label}" is not a valid label (letters, digits and inner hyphens, 1-63 characters)').format(
                label=label)
    if len(labels) < min_labels:
        return _("the name must contain a dot")
    if labels[-1].isdigit():
        return _("the last label must not be all digits")
    return None


def is_dot_atom_local(local):
    """Whether local can be the local part of a mail address we write (DOT_ATOM_LOCAL)."""
    return bool(DOT_ATOM_LOCAL.match(local))
