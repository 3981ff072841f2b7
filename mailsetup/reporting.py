"""What the closing reports of the three packages share: the test command,
what happened to Postfix, and the lined-up layout."""

from mailsetup.i18n import _

# The test command shown in the report (the same in every language).
SEND_TEST = "printf 'Subject: test\\n\\nhello\\n' | /usr/sbin/sendmail"


def postfix_states():
    """core.Outcome.postfix -> what happened to Postfix."""
    return {
        "reloaded": _("Postfix was reloaded"),
        "restarted": _("Postfix was restarted"),
        "started": _("Postfix was started"),
        "not running": _("Postfix is not running; start it to use the new settings"),
        "unchanged": _("nothing needed to change"),
    }


def aligned(rows, indent="", gap=1):
    """(label, value) rows with the values lined up after the longest label."""
    width = max(len(label) for label, _value in rows) + gap
    return [f"{indent}{label.ljust(width)}{value}" for label, value in rows]


def facts(facts):
    """The facts of a report, indented, their values lined up; a row whose label is
    None is a sentence of its own, not lined up with the others."""
    lined_up = iter(aligned([row for row in facts if row[0] is not None], indent="  ", gap=3))
    return [next(lined_up) if label is not None else "  " + value for label, value in facts]


def changed_fact(changed, names, summary, **states):
    """The "Changed:" fact. changed: the names of the components that changed; names:
    component name -> how the report names it; summary: the translated line with
    {changed} (what changed, or "nothing") and a field for each of states."""
    listed = ", ".join(names.get(c, c) for c in changed) if changed else _("nothing")
    return (_("Changed:"), summary.format(changed=listed, **states))
