"""MACs under local aes-256 keys: HMAC-SHA-256 with a key derived by HKDF.

The HMAC key is ``HKDF-SHA-256(material, salt=none, info=LABEL)``, never the
AES key itself, so one key serves wrapping (AES-GCM) and MACs without reusing
the same bytes in two algorithms.
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

LABEL = b"aureus-local/mac/hmac-sha256/v1"
KEY_SIZE = 32


def mac_key(material: bytes) -> bytes:
    """The HMAC key derived from one aes-256 key version."""
    return HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=None, info=LABEL).derive(
        bytes(material)
    )


def mac(material: bytes, message: bytes) -> bytes:
    """HMAC-SHA-256 of ``message`` under the key derived from ``material`` (32 bytes)."""
    return hmac.new(mac_key(material), message, hashlib.sha256).digest()
