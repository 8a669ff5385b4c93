"""The server's TLS configuration: Mozilla "intermediate" profile.

TLS 1.2 and 1.3 only; for 1.2 only ECDHE key exchange with AES-GCM or
ChaCha20-Poly1305 (AEAD) suites. TLS 1.3 suites are all AEAD already.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from strongroom.errors import ConfigurationError

TLS12_CIPHERS = ":".join([
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
])


def server_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.maximum_version = ssl.TLSVersion.TLSv1_3
    context.set_ciphers(TLS12_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    context.options |= ssl.OP_NO_RENEGOTIATION
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(cert_file, key_file)
    except FileNotFoundError:
        raise ConfigurationError(
            f"TLS certificate or key not found ({cert_file}, {key_file})",
            hint="set tls_cert_file and tls_key_file, or run `strongroom init` to generate them",
        ) from None
    except ssl.SSLError as exc:
        raise ConfigurationError(
            f"TLS certificate and key cannot be loaded: {exc.reason}",
            hint="check that the key belongs to the certificate and both are PEM",
        ) from None
    return context
