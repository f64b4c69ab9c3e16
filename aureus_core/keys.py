"""Key specifications and metadata shared by every provider."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime, timezone

import attrs

from .errors import ConfigError
from .keyref import KeyRef


class KeyPurpose(str, enum.Enum):
    """What a key is for."""

    WRAP = "wrap"
    """Symmetric key that wraps (encrypts) data keys."""
    SIGN = "sign"
    """Asymmetric key pair that signs and verifies."""


class KeyType(str, enum.Enum):
    """Key algorithms known to Aureus; each provider supports a subset."""

    AES_128 = "aes-128"
    AES_192 = "aes-192"
    AES_256 = "aes-256"
    ED25519 = "ed25519"
    ECDSA_P256 = "ecdsa-p256"
    ECDSA_P384 = "ecdsa-p384"
    RSA_2048 = "rsa-2048"
    RSA_3072 = "rsa-3072"
    RSA_4096 = "rsa-4096"

    @property
    def purpose(self) -> KeyPurpose:
        """Wrapping for symmetric types, signing for the others.

        A key's own purpose may differ (an RSA key that wraps): see
        :attr:`KeyMetadata.purpose`.
        """
        return KeyPurpose.WRAP if self in _SYMMETRIC else KeyPurpose.SIGN

    @classmethod
    def parse(cls, value: str | KeyType) -> KeyType:
        """Parse a key type name, with an error listing the valid ones."""
        if isinstance(value, KeyType):
            return value
        try:
            return cls(value)
        except ValueError:
            valid = ", ".join(t.value for t in cls)
            raise ConfigError(f"unknown key type {value!r}; choose one of: {valid}") from None


_SYMMETRIC = frozenset({KeyType.AES_128, KeyType.AES_192, KeyType.AES_256})


class KeyState(str, enum.Enum):
    """Lifecycle state of a key or key version."""

    ENABLED = "enabled"
    DISABLED = "disabled"
    PENDING_DELETION = "pending-deletion"
    DESTROYED = "destroyed"
    PENDING_IMPORT = "pending-import"
    UNAVAILABLE = "unavailable"


def _parse_key_type(value: str | KeyType) -> KeyType:
    return KeyType.parse(value)


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ConfigError("timestamps must be timezone-aware (use datetime.now(timezone.utc))")
    return value.astimezone(timezone.utc)


def _freeze_str_map(value: Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((value or {}).items()))


@attrs.frozen(kw_only=True)
class KeySpec:
    """What to create: a key type plus optional description, labels and provider options."""

    key_type: KeyType = attrs.field(converter=_parse_key_type)
    description: str = ""
    labels: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_freeze_str_map)
    options: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_freeze_str_map)

    @property
    def purpose(self) -> KeyPurpose:
        """The purpose implied by the key type."""
        return self.key_type.purpose


@attrs.frozen(kw_only=True)
class KeyVersion:
    """One version of a key."""

    version: str
    created_at: datetime = attrs.field(converter=_utc)
    state: KeyState = KeyState.ENABLED
    messages: int | None = None
    """Data keys wrapped and messages signed with this version (``None``: not counted)."""
    bytes: int | None = None
    """Bytes signed, or plaintext bytes protected, with this version (``None``: not counted)."""


@attrs.frozen(kw_only=True)
class KeyMetadata:
    """What a provider knows about a key, without any key material."""

    ref: KeyRef
    key_type: KeyType
    state: KeyState
    created_at: datetime = attrs.field(converter=_utc)
    current_version: str
    versions: tuple[KeyVersion, ...] = ()
    min_decryption_version: str | None = None
    """Versions below this one may no longer unwrap or verify (``None``: no minimum)."""
    description: str = ""
    labels: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_freeze_str_map)
    extra: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_freeze_str_map)
    """Provider-specific facts (origin, key manager, rotation status ...)."""
    usage: KeyPurpose | None = None
    """What the backend says the key is for (``None``: it does not say; the type decides).

    Set it from the backend's own record (KMS ``KeyUsage``, Cloud KMS ``purpose``,
    the key's operations): an RSA key may wrap, though its type implies signing.
    """

    @property
    def uri(self) -> str:
        """The key's URI, without a version."""
        return self.ref.with_version(None).uri

    @property
    def purpose(self) -> KeyPurpose:
        """The key's purpose: :attr:`usage` if set, else the one its type implies."""
        return self.usage if self.usage is not None else self.key_type.purpose

    @property
    def algorithm(self) -> str:
        """The key type name, e.g. ``ed25519``."""
        return self.key_type.value

    def version_info(self, version: str) -> KeyVersion:
        """Return the :class:`KeyVersion` for ``version``."""
        for info in self.versions:
            if info.version == version:
                return info
        from .errors import KeyNotFound

        raise KeyNotFound(f"key {self.uri} has no version {version!r}")

    @property
    def current(self) -> KeyVersion:
        """The current version's details."""
        return self.version_info(self.current_version)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready description."""
        return {
            "uri": self.uri,
            "type": self.key_type.value,
            "purpose": self.purpose.value,
            "state": self.state.value,
            "created_at": self.created_at.isoformat(),
            "current_version": self.current_version,
            "min_decryption_version": self.min_decryption_version,  # rotation
            "versions": [
                {
                    "version": v.version,
                    "created_at": v.created_at.isoformat(),
                    "state": v.state.value,
                    "messages": v.messages,  # rotation: usage counters
                    "bytes": v.bytes,
                }
                for v in self.versions
            ],
            "description": self.description,
            "labels": dict(self.labels),
            "extra": dict(self.extra),
        }
