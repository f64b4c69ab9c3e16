"""Keys for the audit trail, derived through a provider's MAC, and keyed hashes of field values.

An audit key never comes out of a key store: the provider computes
``MAC(key, label)`` and that 32-byte result is the key for one purpose
(``label``), held in process memory only.  Whoever cannot use the provider
key cannot compute it, and so cannot recompute an HMAC chain or guess a
hashed value by trying candidates.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections.abc import Callable

from ..errors import ConfigError
from ..interfaces import Capability, ProviderLookup
from ..keyref import KeyRef
from ..sensitive import Secret

FIELD_HASH_LABEL = b"aureus-audit/field-hash/v1"
MIN_KEY_SIZE = 16


def derive_key(providers: ProviderLookup, key: KeyRef, label: bytes) -> tuple[bytes, KeyRef]:
    """The key for ``label`` under ``key``, and ``key`` pinned to the version that made it.

    The version is pinned (to the current one, when the provider can
    describe keys) so the same key can be derived again after a rotation.
    """
    provider = providers(key.scheme)
    if Capability.MAC not in provider.capabilities:
        raise ConfigError(
            f"{key.uri} cannot key the audit trail: provider {key.scheme!r} cannot compute "
            "MACs; use a key of a provider with the 'mac' capability, such as a local "
            "aes-256 key"
        )
    pinned = key
    if key.version is None and Capability.DESCRIBE in provider.capabilities:
        pinned = key.with_version(provider.describe_key(key).current_version)
    derived = bytes(provider.mac(pinned, label))
    if len(derived) < MIN_KEY_SIZE:
        raise ConfigError(
            f"provider {key.scheme!r} returned a {len(derived)}-byte MAC; an audit key needs "
            f"at least {MIN_KEY_SIZE} bytes"
        )
    return derived, pinned


class FieldHasher:
    """HMAC-SHA-256 of field values, so equal values can be matched without being recorded.

    The key comes from ``key_source`` on first use: :meth:`ephemeral` (random,
    for one stack's lifetime: hashes only match within it) or
    :meth:`from_provider` (derived from a provider key: hashes match across
    processes, for whoever may use that key).
    """

    def __init__(self, key_source: Callable[[], bytes], *, description: str) -> None:
        self._source = key_source
        self._key: Secret[bytes] | None = None
        self._lock = threading.Lock()
        self.description = description

    @classmethod
    def ephemeral(cls) -> FieldHasher:
        """A hasher under a random key that lives as long as this object."""
        key = secrets.token_bytes(32)
        return cls(lambda: key, description="a random per-stack key")

    @classmethod
    def from_provider(cls, providers: ProviderLookup, key: KeyRef) -> FieldHasher:
        """A hasher under the key derived from ``key`` (see :func:`derive_key`)."""
        return cls(
            lambda: derive_key(providers, key, FIELD_HASH_LABEL)[0],
            description=f"a key derived from {key.uri}",
        )

    def _secret(self) -> bytes:
        with self._lock:
            if self._key is None:
                self._key = Secret(self._source())
            return self._key.reveal()

    def hash(self, name: str, value: str) -> str:
        """Hex HMAC-SHA-256 of ``value`` as the value of field ``name``."""
        message = name.encode() + b"\x00" + value.encode()
        return hmac.new(self._secret(), message, hashlib.sha256).hexdigest()

    def __repr__(self) -> str:
        return f"FieldHasher({self.description})"
