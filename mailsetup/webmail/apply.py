"""Apply the webmail settings (mailsetup-webmail): Roundcube's settings, the
files the site serves itself, and the nginx site.

Through the apply engine (mailsetup/transaction.py): `nginx -t` checks the
result before nginx is reloaded; a failure puts the files and nginx's links
back as they were.
"""

import socket
from dataclasses import dataclass, field

from mailsetup import services
from mailsetup.errors import ApplyFailed
from mailsetup.i18n import _
from mailsetup.imap.certificate import apply_certificate
from mailsetup.imap.mailboxes import system as mailbox_system
from mailsetup.state import StateDir
from mailsetup.transaction import Transaction
from mailsetup.webmail import autoconfig
from mailsetup.webmail.components.nginx import NginxSite, roundcube_config_dir, site_conf
from mailsetup.webmail.components.roundcube import RoundcubeConfig
from mailsetup.webmail.components.site_files import SiteFiles
from mailsetup.webmail.settings import WebmailSettings, installed_languages

NGINX = "nginx"
# The host names besides the webmail's that the site answers for, per mail domain.
CLIENT_NAMES = ("autoconfig", "autodiscover", "mta-sts")


@dataclass
class Outcome:
    changed: list = field(default_factory=list)
    nginx: str = "unchanged"   # "reloaded", "started", "reload failed", "not running", "unchanged"
    url: str = ""
    domains: tuple = ()
    services: tuple = ()       # autoconfig.MailService, what the site tells mail programs
    certificate: str = ""      # why the certificate from an ACME CA could not follow the site's names


def webmail_state(system):
    return StateDir(system.webmail_state_dir)


def configured(system):
    return webmail_state(system).applied() is not None


def applied_settings(system, hostname):
    """The settings applied last time (hostname: the server's name now), or None before the first apply."""
    applied = webmail_state(system).applied()
    if applied is None:
        return None
    return WebmailSettings.from_answers(applied["answers"], installed_languages(), hostname)


def certificate(system):
    """The certificate and key of the mail services, as main.cf has them: mailsetup-imap
    may be applying new ones right now (its apply refreshes the webmail before it
    records its answers)."""
    if not mailbox_system.imap_state(system).applied():
        raise ApplyFailed(_("mailboxes are not set up: install mailsetup-imap first (apt install mailsetup-imap)"))
    found = system.postconf().explicit(["smtpd_tls_cert_file", "smtpd_tls_key_file"])
    return found["smtpd_tls_cert_file"], found["smtpd_tls_key_file"]


def site_names(settings, domains):
    names = [settings.site.host]
    names += [f"{prefix}.{domain}" for domain in domains for prefix in CLIENT_NAMES]
    return list(dict.fromkeys(names))


def resolvable(name):
    try:
        return bool(socket.getaddrinfo(name, None))
    except (OSError, UnicodeError):
        return False


def certificate_names(system, core_settings, resolves=resolvable):
    """The site's names that a certificate from an ACME CA can be for: the webmail's
    host and the autoconfig./autodiscover./mta-sts. names that resolve (the CA checks
    each name over HTTP; one that is not in the DNS yet would fail them all). [] before
    the webmail is set up."""
    settings = applied_settings(system, core_settings.hostname)
    if settings is None:
        return []
    domains = system.mail_domains(core_settings.mail_domain)
    names = site_names(settings, domains)
    return [names[0]] + [name for name in names[1:] if resolves(name)]


def ipv6_available(path="/proc/net/if_inet6"):
    """nginx refuses to start with a [::] listener where the kernel has no IPv6."""
    try:
        with open(path, "rb"):
            return True
    except OSError:
        return False


def site_files(domains, offered, hostname):
    """What the site serves itself (components/site_files.py): file name -> bytes."""
    return {
        "config-v1.1.xml": autoconfig.thunderbird_config(domains, offered, hostname),
        "autodiscover.php": autoconfig.autodiscover_php(offered),
        "mta-sts.txt": autoconfig.mta_sts_policy([hostname]).encode(),
    }


def reload_nginx(system):
    service = services.of(system)
    if service.running(NGINX):
        return "reloaded" if service.reload(NGINX) else "reload failed"
    service.start(NGINX)
    return "started" if service.running(NGINX) else "not running"


def apply(settings, core_settings, system):
    cert, key = certificate(system)
    # the domains whose mail programs the site configures
    domains = system.mail_domains(core_settings.mail_domain)
    offered = tuple(autoconfig.services_on(system)) if system.run_services else ()
    size_limit = system.postconf().effective(["message_size_limit"])["message_size_limit"]
    transaction = Transaction(system, webmail_state(system))
    roundcube = RoundcubeConfig(system)
    transaction.add(roundcube, settings)
    files = SiteFiles(system, site_files(domains, offered, core_settings.hostname))
    transaction.add(files, settings)
    site = NginxSite(system, site_conf(settings, cert, key, site_names(settings, domains), system.webmail_www_dir,
                                       system.webmail_roundcube_dir, ipv6=ipv6_available(),
                                       message_size_limit=size_limit,
                                       roundcube_own_config=roundcube_config_dir(),
                                       acme_webroot=system.acme_webroot))
    transaction.add(site, settings)
    outcome = Outcome(changed=transaction.changed, url=settings.site.url, domains=domains, services=offered)
    links_before = transaction.current[site]

    def reload():
        if system.run_services and (site in transaction.todo or not services.of(system).running(NGINX)):
            outcome.nginx = reload_nginx(system)

    transaction.run(
        settings.to_answers(),
        # Translators: {error} is the reason, often the output of nginx -t (in English).
        _("applying the webmail settings failed, the previous configuration is back in place: {error}"),
        reload, checks=[site.check], undo=[lambda: site.undo(links_before)])
    if system.run_services:
        # The site now answers the CA's checks: the certificate gets the site's names.
        try:
            apply_certificate(system, core_settings, [core_settings.hostname] + [
                n for n in certificate_names(system, core_settings) if n != core_settings.hostname])
        except ApplyFailed as err:
            outcome.certificate = str(err)
    return outcome
