"""The report printed at the end of mailsetup-filter's configure."""

from mailsetup import reporting
from mailsetup.i18n import _


def rspamd_states():
    """apply.Outcome.rspamd -> what happened to rspamd."""
    return {
        "reloaded": _("rspamd was reloaded"),
        "started": _("rspamd was started"),
        "restarted": _("rspamd was restarted"),
        "restart needed": _("rspamd was reloaded, but its milter socket moves only when it is restarted: "
                            "restart rspamd"),
        "reload failed": _("rspamd could not be reloaded; restart it"),
        "not running": _("rspamd is not running; start it (and its Redis or Valkey server) to filter mail"),
        "unchanged": _("rspamd needed no reload"),
    }


def filter_fact(outcome):
    """The "Filter:" fact: whether the filter works after the reloads; None when not checked."""
    if not outcome.checked:
        return None
    if outcome.problem is None:
        # Translators: after "Filter:".
        return (_("Filter:"), _("working: rspamd runs and Postfix reaches its milter"))
    # Translators: after "Filter:"; {problem} says what is wrong.
    return (_("Filter:"), _("NOT working, so Postfix defers mail (nothing is lost) until it does: "
                            "{problem}").format(problem=outcome.problem))


def render(settings, outcome):
    """The closing report of mailsetup-filter."""
    names = {
        # Translators: in "Changed: ...", the files in /etc/rspamd/local.d.
        "rspamd": _("rspamd configuration"),
        # Translators: in "Changed: ...", main.cf settings for the filter.
        "postfix (filter)": _("Postfix settings for the filter"),
        # Translators: in "Changed: ...", the files of `mailsetup access`.
        "access lists": _("access lists"),
    }
    facts = [
        (_("Signed with DKIM:"), " ".join(outcome.domains) or _("none")),
        (_("New DKIM keys:"), " ".join(outcome.new_keys) or _("none")),
        (_("Greylisting:"), _("on") if settings.greylisting else _("off")),
        (_("DNS blocklists:"), " ".join(settings.dnsbl_zones) or _("none")),
        (_("Virus scan:"), _("ClamAV") if settings.antivirus else _("off")),
        reporting.changed_fact(outcome.changed, names, _("{changed}; {postfix}; {rspamd}."),
                               postfix=reporting.postfix_states()[outcome.postfix], rspamd=rspamd_states()[outcome.rspamd]),
    ]
    working = filter_fact(outcome)
    if working:
        facts.append(working)
    lines = ["", _("mailsetup-filter: the spam and forgery filter is set up."), *reporting.facts(facts)]
    lines += reporting.aligned([
        (_("DNS records to publish:"), "mailsetup dns"),
        (_("To allow or deny senders:"), "mailsetup access"),
        (_("To change the settings:"), "dpkg-reconfigure mailsetup-filter"),
    ])
    lines.append("")
    return "\n".join(lines)
