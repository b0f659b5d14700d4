"""The cipher policy every TLS context of Waypost shares: TLS 1.2 or later, AEAD suites only.

CBC suites (with their MAC-then-encrypt padding oracles, LUCKY13) and static-RSA key
exchange are not offered: TLS 1.2 keeps ECDHE with AES-GCM or ChaCha20-Poly1305
(RFC 7525 §4.2), and TLS 1.3's suites are all AEAD.
"""

from __future__ import annotations

import ssl

AEAD_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


def aead_only(context: ssl.SSLContext) -> ssl.SSLContext:
    """Restrict `context` to TLS 1.2+ with AEAD suites (forward secret); returns it."""
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(AEAD_CIPHERS)
    return context
