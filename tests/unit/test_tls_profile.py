"""The TLS profile of every port (mailsetup/tls_profile.py, doc/tls.md): Mozilla
intermediate 5.7's TLS 1.2 suites without the DHE ones, TLS 1.2 and later."""

import shutil
import subprocess

import pytest

from mailsetup import tls_profile


def test_the_list_has_only_forward_secret_aead_suites():
    assert tls_profile.CIPHER_LIST.split(":") == list(tls_profile.CIPHERS_TLS12)
    for name in tls_profile.CIPHERS_TLS12:
        assert name.startswith(("ECDHE-ECDSA-", "ECDHE-RSA-"))
        assert name.endswith(("-GCM-SHA256", "-GCM-SHA384", "-CHACHA20-POLY1305"))
    assert tls_profile.MIN_PROTOCOL == "TLSv1.2" and tls_profile.PROTOCOLS == ("TLSv1.2", "TLSv1.3")


@pytest.mark.skipif(not shutil.which("openssl"), reason="no openssl")
def test_openssl_reads_the_list_as_exactly_these_suites():
    out = subprocess.run(["openssl", "ciphers", "-v", tls_profile.CIPHER_LIST], check=True,
                         capture_output=True, text=True).stdout
    tls12 = [line.split() for line in out.splitlines() if " TLSv1.2 " in line]
    assert sorted(fields[0] for fields in tls12) == sorted(tls_profile.CIPHERS_TLS12)
    for fields in tls12:
        assert "Kx=ECDH" in fields and "Mac=AEAD" in fields
    assert "SSLv3" not in out and " TLSv1 " not in out
