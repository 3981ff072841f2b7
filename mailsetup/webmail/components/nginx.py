"""nginx for mailsetup-webmail: our site, enabled the Debian way, and the stock
default site disabled while ours is there.

/etc/nginx/sites-available/mailsetup-webmail is ours alone (purge removes it);
it is enabled by its link in sites-enabled, which the postrm removes at
"remove" (as roundcube-core disables its apache2 configuration) and configure
makes again. The stock `default` site (a link that nginx's postinst makes, not a
conffile) also listens on port 80 as default_server and serves a page over
plain HTTP: its link is recorded before we first remove it and put back at purge.
Nothing nginx ships is edited. doc/webmail.md has the reasons for the settings.
"""

import os

from mailsetup import tls_profile
from mailsetup.fileutil import read_bytes, write_atomic

SITE_NAME = "mailsetup-webmail"
DEFAULT_SITE = "default"
HEADER = "# Written by mailsetup-webmail; change it with dpkg-reconfigure mailsetup-webmail.\n"
# Debian's php-fpm: a link (update-alternatives) to the installed version's socket.
PHP_FPM_SOCKET = "/run/php/php-fpm.sock"
ROUNDCUBE_PUBLIC = "/var/lib/roundcube/public_html/"
# Roundcube's own configuration directory must be in RCUBE_CONFIG_PATH by the very
# name Roundcube gives it, else it appends it after ours and Debian's config.inc.php
# wins again: INSTALL_PATH/config/, where INSTALL_PATH is the folder above the
# resolved index.php (public_html/index.php: realpath(__DIR__ . '/..') . '/').
ROUNDCUBE_CONFIG_DIR = "/var/lib/roundcube/config/"


def roundcube_config_dir(public=ROUNDCUBE_PUBLIC):
    """INSTALL_PATH/config/ as Roundcube computes it on this system (PHP's __DIR__ is the
    folder of the script with its links resolved); ROUNDCUBE_CONFIG_DIR where Roundcube
    is not installed."""
    index = os.path.join(public, "index.php")
    if not os.path.exists(index):
        return ROUNDCUBE_CONFIG_DIR
    return os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(index))), "config") + "/"


# Mozilla's "intermediate" profile, as on the mail ports (mailsetup/tls_profile.py).
TLS_PROTOCOLS = " ".join(tls_profile.PROTOCOLS)
TLS_CIPHERS = tls_profile.CIPHER_LIST
HSTS_MAX_AGE = 63072000  # two years, as Mozilla's generator has it


def _listen(port, extra, ipv6):
    lines = [f"    listen {port}{extra};"]
    if ipv6:
        lines.append(f"    listen [::]:{port}{extra};")
    return "\n".join(lines) + "\n"


def upload_limit(message_size_limit):
    """PHP's upload limit for attachments: what fits into a message Postfix accepts
    once base64 has grown it by a third (at least 1 MiB)."""
    return max(1, int(message_size_limit) * 3 // 4 // (1024 * 1024))


def site_conf(settings, cert, key, names, www_dir, roundcube_config_dir, ipv6=True, message_size_limit=10240000,
              roundcube_own_config=ROUNDCUBE_CONFIG_DIR, acme_webroot=None):
    """The text of our nginx site. names: every name the site answers for
    (the webmail's host first, then autoconfig./autodiscover./mta-sts. names);
    roundcube_own_config: roundcube_config_dir() of the system; acme_webroot:
    where certbot puts the answers to an ACME CA's HTTP-01 checks (System.acme_webroot)."""
    path = settings.site.path
    upload = upload_limit(message_size_limit)
    acme = "" if not acme_webroot else f"""    location ^~ /.well-known/acme-challenge/ {{
        root {acme_webroot};
        default_type text/plain;
    }}
"""
    redirect_root = "" if path == "/" else f"    location = / {{\n        return 302 {path};\n    }}\n"
    return HEADER + f"""
# Plain HTTP serves no page: every request goes to the same address over HTTPS,
# but for an ACME CA's checks (certbot writes the answers; mailsetup-imap's acme choice).
server {{
{_listen(80, " default_server", ipv6)}    server_name _;
{acme}    location / {{
        return 301 https://$host$request_uri;
    }}
}}

server {{
{_listen(443, " ssl default_server", ipv6)}    server_name {" ".join(names)};

    # The certificate of the mail services (mailsetup-imap's tls_cert and tls_key).
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_protocols {TLS_PROTOCOLS};
    ssl_ciphers {TLS_CIPHERS};
    ssl_prefer_server_ciphers off;
    ssl_session_cache shared:mailsetup_webmail:1m;
    ssl_session_timeout 1d;
    ssl_session_tickets off;

    add_header Strict-Transport-Security "max-age={HSTS_MAX_AGE}" always;
    add_header X-Content-Type-Options "nosniff" always;
    add_header Referrer-Policy "same-origin" always;

    root {www_dir};
    # Roundcube's attachments: what fits into a message Postfix accepts.
    client_max_body_size {upload + 1}m;

{redirect_root}    location / {{
        return 404;
    }}

    # Thunderbird's autoconfiguration, on this name and on autoconfig.DOMAIN.
    location = /.well-known/autoconfig/mail/config-v1.1.xml {{
        alias {www_dir}/config-v1.1.xml;
        default_type application/xml;
    }}
    location = /mail/config-v1.1.xml {{
        alias {www_dir}/config-v1.1.xml;
        default_type application/xml;
    }}
    # The MTA-STS policy (RFC 8461), on mta-sts.DOMAIN.
    location = /.well-known/mta-sts.txt {{
        alias {www_dir}/mta-sts.txt;
        default_type text/plain;
    }}
    # Outlook's autodiscover (a POST; answered with the address it names).
    location ~* ^/autodiscover/autodiscover\\.xml$ {{
        include fastcgi_params;
        fastcgi_param SCRIPT_FILENAME {www_dir}/autodiscover.php;
        fastcgi_pass unix:{PHP_FPM_SOCKET};
    }}

    # Roundcube: only its front controller runs as PHP.
    location = {path}index.php {{
        alias {ROUNDCUBE_PUBLIC}index.php;
        include fastcgi_params;
        fastcgi_param SCRIPT_FILENAME $request_filename;
        fastcgi_param HTTPS on;
        # Our settings (roundcube_config_dir) are read after Debian's /etc/roundcube.
        fastcgi_param RCUBE_CONFIG_PATH "{roundcube_own_config}:{roundcube_config_dir}/";
        fastcgi_param PHP_VALUE "upload_max_filesize={upload}M
post_max_size={upload + 1}M";
        fastcgi_pass unix:{PHP_FPM_SOCKET};
    }}
    location ^~ {path} {{
        alias {ROUNDCUBE_PUBLIC};
        index index.php;
        location ~ \\.(php|inc|dist|sh|sql|log|md)$ {{
            return 404;
        }}
    }}
}}
"""


class NginxSite:
    name = "nginx"

    def __init__(self, system, text):
        self.system = system
        self.text = text.encode()
        self.available = os.path.join(system.nginx_dir, "sites-available", SITE_NAME)
        self.enabled = os.path.join(system.nginx_dir, "sites-enabled", SITE_NAME)
        self.default = os.path.join(system.nginx_dir, "sites-enabled", DEFAULT_SITE)

    def files(self):
        # The links are not files the snapshot can copy: undo() puts them back.
        return [self.available]

    def read_current(self):
        return {"site": read_bytes(self.available), "enabled": _link(self.enabled), "default": _link(self.default)}

    def plan(self, wanted, current):
        plan = {}
        if current["site"] != self.text:
            plan["site"] = self.text
        if current["enabled"] != self.available:
            plan["enable"] = True
        # Only the stock link: a file an admin put there is theirs (nginx -t then
        # refuses two default servers, and the apply with it).
        if current["default"] is not None:
            plan["disable default"] = current["default"]
        return plan

    def record_originals(self, state, plan, current):
        """The stock default site's link target, for purge to make the link again."""
        if "disable default" in plan:
            state.record_file_original("nginx-default-site", plan["disable default"].encode())

    def apply(self, plan):
        if "site" in plan:
            write_atomic(self.available, plan["site"])
        if "enable" in plan:
            _replace_link(self.enabled, self.available)
        if "disable default" in plan:
            os.unlink(self.default)

    def undo(self, current):
        """Put the links back as read (a failed apply)."""
        for path, target in ((self.enabled, current["enabled"]), (self.default, current["default"])):
            if _link(path) == target:
                continue
            if target is None:
                if os.path.lexists(path):
                    os.unlink(path)
            else:
                _replace_link(path, target)

    def check(self):
        """nginx parses the whole configuration before it is reloaded."""
        self.system.run(["nginx", "-t", "-q"])


def _link(path):
    """The target of the link at path, or None (no link there, or a file that is no link)."""
    return os.readlink(path) if os.path.islink(path) else None


def _replace_link(path, target):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".mailsetup-new"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, path)
