"""What mail programs set themselves up from, as the web server serves it:

- thunderbird_config(): Mozilla's autoconfig file (config-v1.1.xml), for
  https://autoconfig.DOMAIN/mail/config-v1.1.xml and
  https://HOST/.well-known/autoconfig/mail/config-v1.1.xml;
- autodiscover_php(): the script PHP-FPM runs for Outlook's POST to
  https://autodiscover.DOMAIN/autodiscover/autodiscover.xml (and the same path
  on the host that the _autodiscover._tcp SRV record names);
- mta_sts_policy(): the MTA-STS policy for https://mta-sts.DOMAIN/.well-known/mta-sts.txt,
  the text `mailsetup dns --mta-sts` prints (mailsetup/mta_sts.py).

The services come from services_on(system) (mailsetup/client_services.py, shared
with `mailsetup dns` so the SRV records say the same); everything here is pure.
"""

import re
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from mailsetup.client_services import KINDS, SSL, STARTTLS, MailService, services_on
from mailsetup.mta_sts import mta_sts_policy, mta_sts_url

__all__ = ["MailService", "services_on", "thunderbird_config", "autodiscover_php", "mta_sts_policy",
           "mta_sts_url", "AUTOCONFIG_PATH", "WELL_KNOWN_AUTOCONFIG_PATH", "AUTODISCOVER_PATH"]

AUTOCONFIG_PATH = "/mail/config-v1.1.xml"  # on autoconfig.DOMAIN
WELL_KNOWN_AUTOCONFIG_PATH = "/.well-known/autoconfig/mail/config-v1.1.xml"
AUTODISCOVER_PATH = "/autodiscover/autodiscover.xml"

RESPONSE_SCHEMA = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
OUTLOOK_SCHEMA = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
# The user name is the whole address: Dovecot's passwd-file and Postfix's SASL take it so.
USERNAME = "%EMAILADDRESS%"
# The password goes in clear inside TLS (Dovecot's auth_mechanisms = plain login).
AUTHENTICATION = "password-cleartext"
HOST = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
# The address Outlook sends is echoed only if it is a dot-atom address (as names.py
# accepts local parts) with a DNS name after the @; the script escapes it as well.
ADDRESS_PATTERN = (r"/\A[A-Za-z0-9!#$%&'*+\/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+\/=?^_`{|}~-]+)*"
                   r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\z/")
# The address in the request (requestschema/2006): <EMailAddress>, with or without a prefix.
REQUEST_PATTERN = r"/<(?:[A-Za-z_][\w.-]*:)?EMailAddress>\s*([^<>\s]{1,254})\s*<\/(?:[A-Za-z_][\w.-]*:)?EMailAddress>/"
MAX_REQUEST = 65536  # bytes of the request body read; a real request is well under 1 kB


def _check(services):
    services = list(services)
    for service in services:
        if service.kind not in KINDS or service.socket not in (SSL, STARTTLS) or not HOST.match(service.host):
            raise ValueError(f"not a mail service to offer: {service!r}")
        if isinstance(service.port, bool) or not isinstance(service.port, int) or not 0 < service.port < 65536:
            raise ValueError(f"not a port: {service!r}")
    return services


def thunderbird_config(domains, services, display_name):
    """config-v1.1.xml (Mozilla's clientConfig 1.1) as UTF-8 bytes: the emailProvider is
    named after the first domain and lists every domain; one incomingServer per IMAP or
    POP3 service and one outgoingServer per SMTP service, in the order given (a client
    takes the first it can use). The values are escaped by ElementTree."""
    domains = [d.rstrip(".").lower() for d in domains if d]
    if not domains:
        raise ValueError("thunderbird_config needs at least one mail domain")
    services = _check(services)
    root = ElementTree.Element("clientConfig", version="1.1")
    provider = ElementTree.SubElement(root, "emailProvider", id=domains[0])
    for domain in dict.fromkeys(domains):
        ElementTree.SubElement(provider, "domain").text = domain
    ElementTree.SubElement(provider, "displayName").text = display_name
    ElementTree.SubElement(provider, "displayShortName").text = display_name
    for incoming in (True, False):
        for service in services:
            if (service.kind != "smtp") != incoming:
                continue
            server = ElementTree.SubElement(provider, "incomingServer" if incoming else "outgoingServer",
                                            type=service.kind)
            for tag, text in (("hostname", service.host), ("port", str(service.port)),
                              ("socketType", service.socket), ("authentication", AUTHENTICATION),
                              ("username", USERNAME)):
                ElementTree.SubElement(server, tag).text = text
    ElementTree.indent(root)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(root, encoding="utf-8") + b"\n"


def php_string(text):
    """text as a PHP single-quoted string literal (in which only \\ and ' are special)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def xml_text(text):
    return escape(str(text), {'"': "&quot;", "'": "&apos;"})


def autodiscover_php(services):
    """The PHP script (bytes) that answers Outlook's Autodiscover POST with the POX
    settings (Response of outlook/responseschema/2006a): one Protocol for each of IMAP,
    POP3 and SMTP that is offered, the first of its kind in the order given. The server
    values are baked in, escaped for XML and then for PHP; the address from the request
    is echoed as LoginName only when it matches ADDRESS_PATTERN, and through
    htmlspecialchars; without one the answer has no LoginName."""
    first = {}
    for service in _check(services):
        first.setdefault(service.kind, service)
    rows = []
    for kind in KINDS:
        service = first.get(kind)
        if service is None:
            continue
        values = (kind.upper(), service.host, str(service.port), "on" if service.socket == SSL else "off",
                  "SSL" if service.socket == SSL else "TLS")
        rows.append("    [" + ", ".join(php_string(xml_text(v)) for v in values) + "],")
    lines = [
        "<?php",
        "// Written by mailsetup-webmail from this server's settings; it is rewritten when they change.",
        "// Outlook POSTs an Autodiscover request naming the address being set up; the answer lists",
        "// the servers, with the address as the login name once it has passed the check.",
        "header('Content-Type: application/xml; charset=utf-8');",
        f"$request = (string) file_get_contents('php://input', false, null, 0, {MAX_REQUEST});",
        "$login = '';",
        f"if (preg_match({php_string(REQUEST_PATTERN)}, $request, $found) === 1) {{",
        "    // the XML's own escapes (&amp; ...) undone first: the check is on the address itself",
        "    $address = html_entity_decode($found[1], ENT_XML1 | ENT_QUOTES, 'UTF-8');",
        "    if (strlen($address) <= 254 && strpos($address, '@') !== false && strpos($address, '@') <= 64",
        f"            && preg_match({php_string(ADDRESS_PATTERN)}, $address) === 1) {{",
        "        $login = htmlspecialchars($address, ENT_XML1 | ENT_QUOTES, 'UTF-8');",
        "    }",
        "}",
        "// type, server, port, SSL, encryption (TLS: STARTTLS on a plain connection)",
        "$protocols = [",
        *rows,
        "];",
        "echo '<?xml version=\"1.0\" encoding=\"utf-8\"?>', \"\\n\";",
        "echo " + php_string(f'<Autodiscover xmlns="{RESPONSE_SCHEMA}">') + ', "\\n";',
        "echo " + php_string(f'  <Response xmlns="{OUTLOOK_SCHEMA}">') + ', "\\n";',
        "echo '    <Account>', \"\\n\";",
        "echo '      <AccountType>email</AccountType>', \"\\n\";",
        "echo '      <Action>settings</Action>', \"\\n\";",
        "foreach ($protocols as [$type, $server, $port, $ssl, $encryption]) {",
        "    echo '      <Protocol>', \"\\n\";",
        "    echo '        <Type>', $type, '</Type>', \"\\n\";",
        "    echo '        <Server>', $server, '</Server>', \"\\n\";",
        "    echo '        <Port>', $port, '</Port>', \"\\n\";",
        "    if ($login !== '') {",
        "        echo '        <LoginName>', $login, '</LoginName>', \"\\n\";",
        "    }",
        "    echo '        <DomainRequired>off</DomainRequired>', \"\\n\";",
        "    echo '        <SPA>off</SPA>', \"\\n\";",
        "    echo '        <SSL>', $ssl, '</SSL>', \"\\n\";",
        "    echo '        <Encryption>', $encryption, '</Encryption>', \"\\n\";",
        "    echo '        <AuthRequired>on</AuthRequired>', \"\\n\";",
        "    echo '      </Protocol>', \"\\n\";",
        "}",
        "echo '    </Account>', \"\\n\";",
        "echo '  </Response>', \"\\n\";",
        "echo '</Autodiscover>', \"\\n\";",
    ]
    # No closing ?>: nothing after it could then leak into the answer.
    return ("\n".join(lines) + "\n").encode("utf-8")
