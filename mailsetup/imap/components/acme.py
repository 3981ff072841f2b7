"""A certificate from an ACME CA (Let's Encrypt, or an internal one such as
step-ca or pebble) through Debian's certbot, and the deploy hook that reloads
the services when certbot's timer has renewed it.

Why certbot: it is the ACME client Debian maintains best (its own systemd
timer, certbot.timer, renews twice a day; hooks; python3-certbot-nginx), and
Debian has no other client with a renewal timer of its own. One lineage of
ours, named ACME_CERT_NAME, for the server's name and the webmail's names
(mailsetup/reapply.py: certificate_names); its live links are what Postfix,
Dovecot and nginx read, so a renewal needs only their reload.

The key is kept across renewals (--reuse-key): the TLSA record `mailsetup dns`
prints (DANE, 3 1 1: the key, not the certificate) then stays valid, and no
new record has to be published before each renewal.

HTTP-01: through our nginx site (mailsetup-webmail serves ACME_WEBROOT's
/.well-known/acme-challenge/ on port 80) when it is enabled and nginx runs;
otherwise certbot answers on port 80 itself (standalone), stopping a running
nginx or apache2 for those seconds (pre and post hooks, kept by certbot for the
renewals). The CA must reach port 80 under every name.

The deploy hook is a file in certbot's renewal-hooks/deploy/ directory, not a
--deploy-hook in the lineage's renewal configuration: the directory's hooks
run for every renewal, and a missing one (purge removes ours) makes nothing
fail. The certificate itself stays at purge: it is the admin's.
"""

import json
import os
import shutil
import socket
import urllib.error
import urllib.request

from mailsetup import certinfo, services
from mailsetup.certinfo import CertError
from mailsetup.errors import CommandFailed, MailsetupError
from mailsetup.fileutil import read_bytes, write_atomic
from mailsetup.i18n import _
from mailsetup.imap.settings import ACME_CERT_NAME, ACME_LIVE_DIR

CERTBOT = "certbot"
LETSENCRYPT_DIR = "/etc/letsencrypt"
HOOK_NAME = "mailsetup"
# The services that read the certificate; reloaded after a renewal when they run.
RELOADED = ("postfix", "dovecot", "nginx")
# Web servers that may hold port 80 while certbot answers there itself.
WEB_SERVERS = ("nginx", "apache2")
DIRECTORY_TIMEOUT = 20

HOOK = f"""#!/bin/sh
# Written by mailsetup-imap (purge removes it): after certbot has renewed the
# certificate of the mail services, the services that read it are reloaded,
# so they present the new one. Other certificates are left alone.
[ "${{RENEWED_LINEAGE##*/}}" = {ACME_CERT_NAME} ] || exit 0
for service in {" ".join(RELOADED)}; do
    if invoke-rc.d --quiet "$service" status >/dev/null 2>&1; then
        invoke-rc.d "$service" reload || echo "mailsetup: reloading $service failed" >&2
    fi
done
exit 0
"""


class AcmeRefused(CommandFailed):
    """The CA could not be reached or issued no certificate (certbot is there)."""


def hook_path(letsencrypt_dir=LETSENCRYPT_DIR):
    return os.path.join(letsencrypt_dir, "renewal-hooks", "deploy", HOOK_NAME)


def renewal_conf_path(letsencrypt_dir=LETSENCRYPT_DIR):
    return os.path.join(letsencrypt_dir, "renewal", f"{ACME_CERT_NAME}.conf")


def read_renewal_conf(text):
    """The lineage's renewal configuration (certbot's INI-like file): key -> value,
    from its top and its [renewalparams] section."""
    found = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#"):
            found[key.strip()] = value.strip()
    return found


def certificate_names(cert_path):
    """The DNS names of the certificate at cert_path (its subjectAltName), or ()."""
    if not os.path.exists(cert_path):
        return ()
    try:
        return tuple(name.lower() for name in certinfo.read_file(cert_path).sans)
    except CertError:
        return ()


def directory_problem(url, timeout=DIRECTORY_TIMEOUT):
    """Why url is not an ACME directory that answers (RFC 8555 7.1.1), or None.
    Certificates of the CA's address are checked against the system's trusted
    CAs (an internal CA's root goes into /usr/local/share/ca-certificates)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data = json.loads(response.read(1 << 20).decode("utf-8"))
    except urllib.error.HTTPError as err:
        # Translators: {error} is an HTTP status such as "404 Not Found".
        return _("the server answers {error}").format(error=f"{err.code} {err.reason}")
    except urllib.error.URLError as err:
        return _("it cannot be reached ({error})").format(error=getattr(err.reason, "strerror", None) or err.reason)
    except (OSError, ValueError) as err:
        return _("it cannot be reached ({error})").format(error=err)
    if not isinstance(data, dict) or "newNonce" not in data or "newOrder" not in data:
        return _("it does not answer as an ACME directory")
    return None


def port_in_use(port, hosts=("127.0.0.1", "::1")):
    for host in hosts:
        try:
            with socket.create_connection((host, port), timeout=2):
                return True
        except OSError:
            continue
    return False


def last_line(output):
    """The line of certbot's output that says what went wrong (its last words are
    advice where to ask for help)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    skip = ("Ask for help", "See the logfile", "Some challenges have failed", "IMPORTANT NOTES",
            "Saving debug log")
    meaningful = [line for line in lines if not line.startswith(skip)]
    return (meaningful or lines or [""])[-1]


class AcmeCertificate:
    """current: {"hook", "names", "server", "authenticator"}; wanted: ImapSettings
    with the names (certificate_names) given to the constructor."""

    name = "certificate (ACME)"

    def __init__(self, system, names):
        self.system = system
        self.names = tuple(dict.fromkeys(names))
        self.letsencrypt_dir = system.letsencrypt_dir
        self.hook = hook_path(self.letsencrypt_dir)

    def files(self):
        return [self.hook]

    def read_current(self):
        conf = read_bytes(renewal_conf_path(self.letsencrypt_dir))
        renewal = read_renewal_conf(conf.decode("utf-8", "replace")) if conf else {}
        live = os.path.join(self.letsencrypt_dir, "live", ACME_CERT_NAME, "fullchain.pem")
        return {"hook": read_bytes(self.hook), "names": certificate_names(live) if conf else (),
                "server": renewal.get("server"), "authenticator": renewal.get("authenticator")}

    def authenticator(self):
        """"webroot" through our nginx site, else "standalone" (see the module's docstring)."""
        site = os.path.join(self.system.nginx_dir, "sites-enabled", "mailsetup-webmail")
        if os.path.exists(site) and services.of(self.system).running("nginx"):
            return "webroot"
        return "standalone"

    def plan(self, settings, current):
        if settings.tls_source != "acme":
            # Ours no longer: the hook goes; the certificate stays (certbot delete removes it).
            return {"remove hook": True} if current["hook"] is not None else None
        plan = {}
        if current["hook"] != HOOK.encode():
            plan["hook"] = HOOK.encode()
        authenticator = self.authenticator() if self.system.run_services else "standalone"
        if (set(current["names"]) != set(self.names) or current["server"] != settings.acme_server
                or current["authenticator"] != authenticator):
            plan["obtain"] = {"server": settings.acme_server, "email": settings.acme_email,
                              "names": self.names, "authenticator": authenticator}
        return plan

    def record_originals(self, state, plan, current):
        """Nothing to put back at purge but our hook, which postrm removes."""

    def apply(self, plan):
        if "remove hook" in plan:
            os.unlink(self.hook)
        if "obtain" in plan:
            self.obtain(**plan["obtain"])
        if "hook" in plan:
            os.makedirs(os.path.dirname(self.hook), exist_ok=True)
            write_atomic(self.hook, plan["hook"], mode=0o755)

    def certbot_argv(self, server, email, names, authenticator, hooks=()):
        argv = [CERTBOT, "certonly", "--non-interactive", "--agree-tos", "--cert-name", ACME_CERT_NAME,
                "--server", server, "--key-type", "ecdsa", "--elliptic-curve", "secp256r1", "--reuse-key",
                # run only when something changed (plan): a new name, CA or way to answer
                "--force-renewal", "--config-dir", self.letsencrypt_dir]
        argv += ["--email", email] if email else ["--register-unsafely-without-email"]
        if authenticator == "webroot":
            argv += ["--webroot", "--webroot-path", self.system.acme_webroot]
        else:
            argv += ["--standalone"]
            for service in hooks:
                argv += ["--pre-hook", f"invoke-rc.d {service} stop", "--post-hook", f"invoke-rc.d {service} start"]
        for name in names:
            argv += ["-d", name]
        return argv

    def obtain(self, server, email, names, authenticator):
        """certbot certonly; a CA that cannot be reached or refuses raises CommandFailed
        with one line (before anything else of ours has changed)."""
        if not shutil.which(CERTBOT):
            raise CommandFailed(_("certificates from an ACME CA need certbot, which is not installed "
                                  "(apt install certbot)"))
        problem = directory_problem(server)
        if problem:
            # Translators: {url} is the ACME directory address, {problem} why it cannot be used.
            raise AcmeRefused(_("the ACME directory {url} cannot be used: {problem}").format(
                url=server, problem=problem))
        hooks = ()
        if authenticator == "standalone" and self.system.run_services and port_in_use(80):
            hooks = [s for s in WEB_SERVERS if services.of(self.system).running(s)]
            if not hooks:
                raise CommandFailed(_("port 80 is in use by a program other than nginx or apache2: "
                                      "the ACME CA checks the server's names there"))
        if authenticator == "webroot":
            os.makedirs(self.system.acme_webroot, mode=0o755, exist_ok=True)
        try:
            self.system.run(self.certbot_argv(server, email, names, authenticator, hooks))
        except CommandFailed as err:
            # Translators: {url} is the ACME directory; {error} certbot's last line (in English).
            raise AcmeRefused(_("the ACME CA {url} issued no certificate for {names}: {error} "
                                "(details in /var/log/letsencrypt/letsencrypt.log)").format(
                url=server, names=", ".join(names), error=last_line(str(err)))) from err
        if not os.path.exists(os.path.join(self.letsencrypt_dir, "live", ACME_CERT_NAME, "privkey.pem")):
            raise MailsetupError(_("certbot reported success but {path} is missing").format(path=ACME_LIVE_DIR))
