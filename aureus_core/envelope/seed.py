"""The seed system's JSON envelope: read, check and decrypt, for migration.

The JavaScript system Aureus replaces wrote, for each payload::

    {"encrypted": B64, "encryptedDataKey": B64, "iv": B64, "authTag": B64, "keyId": ARN}

``encrypted`` is AES-256-GCM of the data (12-byte ``iv``, 16-byte ``authTag``,
no associated data) under a data key from AWS KMS ``GenerateDataKey`` with
the caller's encryption context; ``encryptedDataKey`` is the KMS ciphertext
blob of that key and ``keyId`` the KMS key.  The context is not stored: the
caller passes it again, and KMS refuses the data key without it.

Nothing here binds the context or the key to the body itself, and there is no
key commitment: that is why these envelopes should be migrated
(:meth:`~aureus_core.stack.KeyStack.migrate_seed`, ``aureus migrate``) and
not written.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

import attrs
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..context import EncryptionContext
from ..datakey import EncryptedDataKey
from ..errors import (
    AccessDenied,
    AureusError,
    ConfigError,
    CredentialError,
    DecryptionError,
    KeyDisabled,
    ProviderUnavailable,
    Throttled,
    UnsupportedOperation,
)
from ..interfaces import Capability, ProviderLookup
from ..keyref import KeyRef
from .keyring import KeyFilter

SCHEME = "aws-kms"
"""The provider every seed data key is unwrapped through."""
IV_LENGTH = 12
TAG_LENGTH = 16
DATA_KEY_LENGTH = 32
FIELDS = ("encrypted", "encryptedDataKey", "iv", "authTag", "keyId")
MAX_ENVELOPE_BYTES = 64 * 1024 * 1024
"""The largest envelope :meth:`SeedEnvelope.parse` reads unless told otherwise."""
MAX_ENCRYPTED_DATA_KEY_BYTES = 6144
"""KMS ciphertext blobs are at most 6 144 bytes."""
MAX_KEY_ID_LENGTH = 2048
_FORBIDDEN_IN_KEY_ID = frozenset("?#") | {chr(c) for c in range(0x21)} | {"\x7f"}


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ConfigError(f"seed envelope: field {key!r} appears twice")
        result[key] = value
    return result


def _base64_field(data: Mapping[str, Any], name: str, limit: int) -> bytes:
    value = data[name]
    if not isinstance(value, str):
        raise ConfigError(
            f"seed envelope: field {name!r} must be a base64 string, not {_json_type(value)}"
        )
    if len(value) > (max(limit, 1024) + 2) // 3 * 4:  # short fields: checked exactly later
        raise ConfigError(f"seed envelope: field {name!r} is longer than {limit} bytes")
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise ConfigError(f"seed envelope: field {name!r} is not valid base64") from None


def _json_type(value: object) -> str:
    names = {dict: "an object", list: "an array", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number" if isinstance(value, (int, float)) else "a string")


@attrs.frozen(kw_only=True)
class SeedEnvelope:
    """One parsed seed envelope (raw bytes, base64 removed)."""

    encrypted: bytes = attrs.field(repr=lambda b: f"<{len(b)} bytes>")
    encrypted_data_key: bytes = attrs.field(repr=lambda b: f"<{len(b)} bytes>")
    iv: bytes = attrs.field(repr=False)
    auth_tag: bytes = attrs.field(repr=False)
    key_id: str
    """The KMS key (an ARN in the seed's deployments)."""

    def __attrs_post_init__(self) -> None:
        if len(self.iv) != IV_LENGTH:
            raise ConfigError(
                f"seed envelope: iv must be {IV_LENGTH} bytes (AES-GCM), not {len(self.iv)}"
            )
        if len(self.auth_tag) != TAG_LENGTH:
            raise ConfigError(
                f"seed envelope: authTag must be {TAG_LENGTH} bytes, not {len(self.auth_tag)}"
            )
        if not self.encrypted_data_key:
            raise ConfigError("seed envelope: encryptedDataKey is empty")
        if len(self.encrypted_data_key) > MAX_ENCRYPTED_DATA_KEY_BYTES:
            raise ConfigError(
                f"seed envelope: encryptedDataKey is longer than {MAX_ENCRYPTED_DATA_KEY_BYTES} "
                "bytes, so it is not a KMS ciphertext blob"
            )
        if not self.key_id or len(self.key_id) > MAX_KEY_ID_LENGTH:
            raise ConfigError(
                f"seed envelope: keyId must be a KMS key ARN of 1 to {MAX_KEY_ID_LENGTH} characters"
            )
        if _FORBIDDEN_IN_KEY_ID & set(self.key_id):
            raise ConfigError(
                "seed envelope: keyId may not contain whitespace, control characters, '?' or '#'"
            )

    @property
    def key(self) -> KeyRef:
        """The wrapping key as an Aureus key URI (``aws-kms://<keyId>``)."""
        return KeyRef.parse(f"{SCHEME}://{self.key_id}")

    @property
    def encrypted_key(self) -> EncryptedDataKey:
        """The data key as the ``aws-kms`` provider unwraps it."""
        return EncryptedDataKey(
            provider_id=SCHEME,
            provider_info=self.key_id.encode("utf-8"),
            ciphertext=self.encrypted_data_key,
        )

    @classmethod
    def parse(
        cls, data: bytes | bytearray | str, *, max_size: int = MAX_ENVELOPE_BYTES
    ) -> SeedEnvelope:
        """Parse the JSON text; a :class:`ConfigError` says which field is wrong and how."""
        if len(data) > max_size:
            raise ConfigError(f"seed envelope is {len(data)} bytes; the limit is {max_size} bytes")
        try:
            value = json.loads(data, object_pairs_hook=_no_duplicates)
        except ValueError:  # including UnicodeDecodeError
            raise ConfigError(
                "not a seed envelope: the input is not JSON "
                '({"encrypted", "encryptedDataKey", "iv", "authTag", "keyId"})'
            ) from None
        if not isinstance(value, dict):
            raise ConfigError(
                f"not a seed envelope: the JSON is {_json_type(value)}, not an object"
            )
        missing = [name for name in FIELDS if name not in value]
        if missing:
            raise ConfigError(f"seed envelope: missing field(s) {', '.join(missing)}")
        unknown = sorted(set(value) - set(FIELDS))
        if unknown:
            raise ConfigError(
                f"seed envelope: unknown field(s) {', '.join(unknown)}; "
                f"it has exactly {', '.join(FIELDS)}"
            )
        key_id = value["keyId"]
        if not isinstance(key_id, str):
            raise ConfigError(
                f"seed envelope: field 'keyId' must be a string, not {_json_type(key_id)}"
            )
        return cls(
            encrypted=_base64_field(value, "encrypted", max_size),
            encrypted_data_key=_base64_field(
                value, "encryptedDataKey", MAX_ENCRYPTED_DATA_KEY_BYTES
            ),
            iv=_base64_field(value, "iv", IV_LENGTH),
            auth_tag=_base64_field(value, "authTag", TAG_LENGTH),
            key_id=key_id,
        )

    def to_json(self) -> bytes:
        """The envelope as the seed wrote it."""
        encode = base64.b64encode
        return json.dumps(
            {
                "encrypted": encode(self.encrypted).decode("ascii"),
                "encryptedDataKey": encode(self.encrypted_data_key).decode("ascii"),
                "iv": encode(self.iv).decode("ascii"),
                "authTag": encode(self.auth_tag).decode("ascii"),
                "keyId": self.key_id,
            }
        ).encode("ascii")


def _unwrap(
    lookup: ProviderLookup, envelope: SeedEnvelope, context: EncryptionContext
) -> bytearray:
    """The data key, through the ``aws-kms`` provider (KMS ``Decrypt`` with ``context``)."""
    provider = lookup(SCHEME)
    if Capability.WRAP not in provider.capabilities:
        raise UnsupportedOperation(SCHEME, "unwrap", "seed envelopes need an AWS KMS provider")
    try:
        data_key = provider.unwrap(envelope.key, envelope.encrypted_key, context)
    except KeyDisabled as error:
        raise DecryptionError(f"the seed envelope could not be decrypted: {error}") from None
    except (ProviderUnavailable, Throttled, AccessDenied, CredentialError):
        raise  # the provider could not be asked: retrying or fixing access may help
    except AureusError:
        raise DecryptionError() from None
    if len(data_key) != DATA_KEY_LENGTH:
        data_key[:] = bytes(len(data_key))
        raise DecryptionError()
    return data_key


def decrypt_seed_envelope(
    lookup: ProviderLookup,
    data: bytes | bytearray | str | SeedEnvelope,
    context: Mapping[str, str] | None = None,
    *,
    allowed: KeyFilter | None = None,
) -> bytearray:
    """Decrypt a seed envelope; nothing is returned unless the GCM tag checks.

    ``context`` is the encryption context the seed passed to KMS; a wrong or
    missing one, a changed field or a key ``allowed`` refuses all raise the one
    :class:`DecryptionError`.  A malformed envelope is a :class:`ConfigError`;
    a provider that cannot be reached raises its own error, as in
    :func:`~aureus_core.envelope.keyring.unwrap_data_key`.
    """
    envelope = data if isinstance(data, SeedEnvelope) else SeedEnvelope.parse(data)
    encryption_context = EncryptionContext.coerce(context)
    if allowed is not None:
        why_not = allowed.refusal(envelope.key, lookup(envelope.key.scheme))
        if why_not is not None:
            raise DecryptionError(
                f"the seed envelope's key {envelope.key.uri} is not one this stack may decrypt "
                f"with: {why_not}"
            )
    data_key = _unwrap(lookup, envelope, encryption_context)
    try:
        plaintext = AESGCM(data_key).decrypt(
            envelope.iv, envelope.encrypted + envelope.auth_tag, None
        )
    except InvalidTag:
        raise DecryptionError() from None
    finally:
        data_key[:] = bytes(len(data_key))
    return bytearray(plaintext)


__all__ = ["SeedEnvelope", "decrypt_seed_envelope"]
