"""The one place that knows the order of the packages: core, then imap, then filter, then webmail.

mailsetup (the core) writes main.cf; mailsetup-imap adds mailbox domains,
which the core must then take out of mydestination; mailsetup-filter signs
the mail of every mail domain, so a new one needs its DKIM key; mailsetup-webmail
tells the mail programs of every mail domain how to connect (autoconfig.DOMAIN). The core
learns the mailbox domains from the map mailsetup-imap writes
(System.virtual_domains), so it imports neither add-on; mailsetup-imap calls
reapply_core() here after changing its domains. mailsetup-imap's certificate from
an ACME CA names the webmail's site too (certificate_names).

The packages are imported late: the core's code must not need an add-on's.
"""


def reapply_core(system):
    """Apply the core answers recorded last time again, so that mydestination
    follows the virtual domains (a domain is local or virtual, never both).

    Returns the core Outcome, or None when the core was never configured."""
    from mailsetup.core import apply as core_apply
    settings = core_apply.applied_settings(system)
    if settings is None:
        return None
    outcome = core_apply.apply(settings, system)
    sign_new_domains(system, settings)
    refresh_webmail(system, settings)
    return outcome


def sign_new_domains(system, core_settings):
    """With mailsetup-filter, a new mail domain gets its DKIM key at once (and rspamd, which
    signs only domains with a key, is told); see `mailsetup dns` for the record to publish."""
    try:
        from mailsetup.filter import apply as filter_apply
    except ImportError:
        return  # mailsetup-filter is not installed (its code ships in that package)
    if system.run_services and filter_apply.configured(system):
        if filter_apply.ensure_keys(system, filter_apply.mail_domains(system, core_settings)):
            filter_apply.reload_rspamd(system)


def certificate_names(system, core_settings):
    """The names besides the server's that the other packages' sites answer for, for
    mailsetup-imap's certificate from an ACME CA: the webmail's, when it is set up."""
    try:
        from mailsetup.webmail import apply as webmail_apply
    except ImportError:
        return []
    return webmail_apply.certificate_names(system, core_settings)


def refresh_webmail(system, core_settings):
    """With mailsetup-webmail, its answers applied again: the site then answers for
    the autoconfig names of every mail domain, and the settings it serves list them."""
    try:
        from mailsetup.webmail import apply as webmail_apply
    except ImportError:
        return  # mailsetup-webmail is not installed
    settings = webmail_apply.applied_settings(system, core_settings.hostname)
    if settings is not None:
        webmail_apply.apply(settings, core_settings, system)
