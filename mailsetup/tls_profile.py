"""The TLS profile of every port we serve (Postfix, Dovecot, nginx): Mozilla's
"intermediate" server configuration, version 5.7
(https://ssl-config.mozilla.org/guidelines/5.7.json, "intermediate").

TLS 1.2 and 1.3 only; for TLS 1.2 only forward-secret AEAD suites (no aNULL,
no CBC, no RSA key exchange, no SHA1 MAC). TLS 1.3 has nothing to choose: all
of its suites are AEAD and forward-secret, so the TLS library's list stays.
The client picks among the suites (Mozilla: every one of them is strong).
Intermediate, not "modern" (TLS 1.3 only): many mail programs still do TLS 1.2
only (Outlook 2016, Android before 10). doc/tls.md has the reasons and what
each port offers.
"""

# Mozilla's list for TLS 1.2 in its order (OpenSSL names), without its three
# DHE-RSA suites: we configure no DH parameters (nginx has no ssl_dhparam, so
# it could offer none), and every port offers the same (doc/tls.md: the cost).
CIPHERS_TLS12 = (
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
)
# As OpenSSL cipher-list strings take it (nginx ssl_ciphers, Dovecot
# ssl_cipher_list, Postfix tls_high_cipherlist).
CIPHER_LIST = ":".join(CIPHERS_TLS12)

MIN_PROTOCOL = "TLSv1.2"
PROTOCOLS = ("TLSv1.2", "TLSv1.3")
