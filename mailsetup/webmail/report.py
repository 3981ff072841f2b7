"""The report printed at the end of mailsetup-webmail's configure."""

from mailsetup import reporting
from mailsetup.i18n import _


def nginx_states():
    """apply.Outcome.nginx -> what happened to nginx."""
    return {
        "reloaded": _("nginx was reloaded"),
        "started": _("nginx was started"),
        "reload failed": _("nginx could not be reloaded; restart it"),
        "not running": _("nginx is not running; start it to serve the webmail"),
        "unchanged": _("nginx needed no reload"),
    }


def socket_names():
    return {
        # Translators: how a port is secured, after its number ("993 SSL/TLS").
        "SSL": _("SSL/TLS"),
        "STARTTLS": "STARTTLS",
    }


def client_settings(services):
    """What to type into a mail program: "IMAP 993 SSL/TLS, ..." from what the server offers."""
    names = {"imap": "IMAP", "pop3": "POP3", "smtp": "SMTP"}
    sockets = socket_names()
    return ", ".join(f"{names.get(s.kind, s.kind)} {s.port} {sockets.get(s.socket, s.socket)}" for s in services)


def render(settings, outcome):
    """The closing report of mailsetup-webmail."""
    names = {
        # Translators: in "Changed: ...", our settings file for Roundcube.
        "roundcube": _("Roundcube settings"),
        # Translators: in "Changed: ...", the files for mail programs' automatic setup.
        "site files": _("automatic setup for mail programs"),
        # Translators: in "Changed: ...", the web server's site.
        "nginx": _("nginx site"),
    }
    host = outcome.services[0].host if outcome.services else settings.site.host
    facts = [
        (_("Webmail:"), outcome.url),
        (_("Language:"), settings.language),
        (_("Log in with:"), _("the full mail address and its password")),
        reporting.changed_fact(outcome.changed, names, _("{changed}; {nginx}."), nginx=nginx_states()[outcome.nginx]),
    ]
    if outcome.certificate:
        # Translators: {error} says why the certificate from the ACME CA was not renewed for the site's names.
        facts.append((_("Warning:"), _("the certificate does not name the site yet: {error}").format(
            error=outcome.certificate)))
    lines = ["", _("mailsetup-webmail: the webmail is set up."), *reporting.facts(facts)]
    steps = [(_("To test:"), _("open {url} in a browser").format(url=outcome.url))]
    if outcome.services:
        steps += [
            # Translators: Thunderbird, Outlook and phones find the settings by themselves from the address.
            (_("Mail programs:"), _("give them the mail address and password; they find the rest")),
            ("", _("or by hand: server {host}, user name the full address, {ports}").format(
                host=host, ports=client_settings(outcome.services))),
        ]
    steps += [
        (_("DNS records to publish:"), "mailsetup dns"),
        (_("To change the settings:"), "dpkg-reconfigure mailsetup-webmail"),
    ]
    lines += reporting.aligned(steps)
    lines.append("")
    return "\n".join(lines)
