"""mailsetup-webmail's section of `mailsetup status` (see cli/status.py): whether
nginx and PHP-FPM run, and the address of the webmail, read off our nginx site."""

import glob
import os
import re

from mailsetup import services
from mailsetup.fileutil import read_bytes
from mailsetup.i18n import _
from mailsetup.webmail.apply import NGINX, configured
from mailsetup.webmail.components.nginx import SITE_NAME

# Debian names PHP-FPM's service after its version (php8.2-fpm, php8.4-fpm).
PHP_FPM_SCRIPTS = "/etc/init.d/php*-fpm"


def php_fpm_service(pattern=PHP_FPM_SCRIPTS):
    """The installed PHP-FPM's service name, or None."""
    found = sorted(glob.glob(pattern))
    return os.path.basename(found[-1]) if found else None


def site_url(text):
    """The webmail's address in our nginx site's text, or None: the first server_name
    of the HTTPS server and the path Roundcube is served under."""
    https = text.split("listen 443", 1)
    if len(https) < 2:
        return None
    name = re.search(r"^\s*server_name\s+([^\s;]+)", https[1], re.M)
    path = re.search(r"^\s*location \^~ (/\S*) \{", https[1], re.M)
    return f"https://{name.group(1)}{path.group(1)}" if name and path else None


def running(system):
    if not configured(system):
        return {}
    service = services.of(system)
    php = php_fpm_service()
    return {"nginx_running": service.running(NGINX), "php_fpm": php,
            "php_fpm_running": bool(php) and service.running(php)}


def collect(system, postfix_configured):
    if not configured(system):
        return {"webmail_configured": False}
    text = (read_bytes(os.path.join(system.nginx_dir, "sites-available", SITE_NAME)) or b"").decode("utf-8", "replace")
    enabled = os.path.lexists(os.path.join(system.nginx_dir, "sites-enabled", SITE_NAME))
    return {"webmail_configured": True, "webmail_url": site_url(text), "webmail_enabled": enabled}


def print_running(status, out):
    if "nginx_running" not in status:
        return
    print(_("Web server (nginx): running") if status["nginx_running"] else _("Web server (nginx): NOT running"),
          file=out)
    name = status["php_fpm"] or "PHP-FPM"
    if status["php_fpm_running"]:
        print(_("{service}: running").format(service=name), file=out)
    else:
        print(_("{service}: NOT running").format(service=name), file=out)


def print_details(status, out):
    if not status.get("webmail_configured"):
        return
    if status["webmail_enabled"] and status["webmail_url"]:
        print(_("Webmail: {url}").format(url=status["webmail_url"]), file=out)
    else:
        print(_("Webmail: NOT enabled in nginx"), file=out)


def healthy(status):
    """The webmail set up: nginx and PHP-FPM must run and the site be enabled."""
    if not status.get("webmail_configured"):
        return True
    return bool(status.get("nginx_running") and status.get("php_fpm_running") and status["webmail_enabled"])
