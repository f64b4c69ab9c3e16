"""Aureus local keystore provider (scheme ``local``).

Keys live in a directory on this machine: AES-256 keys wrap data keys in the
AWS Encryption SDK raw AES keyring layout, Ed25519 and ECDSA P-256 keys sign.
Material is sealed under a master key from a key file or a passphrase, and
every write is atomic and serialized across processes.
"""

from __future__ import annotations

from .keystore import Keystore
from .plugin import create_provider
from .provider import LocalKeyProvider

__all__ = ["Keystore", "LocalKeyProvider", "create_provider"]
