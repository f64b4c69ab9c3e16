"""Data keys for messages: generated and wrapped for every recipient, or unwrapped by one."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Sequence

import attrs

from ..context import EncryptionContext
from ..datakey import EncryptedDataKey
from ..errors import AureusError, ConfigError, DecryptionError, KeyDisabled, UnsupportedOperation
from ..interfaces import Capability, KeyProvider
from ..keyref import KeyRef
from .message import EncryptionMaterials, new_signing_key, signed_context
from .suites import DEFAULT_SUITE, SIGNED_SUITE

ProviderLookup = Callable[[str], KeyProvider]


def scheme_for_provider_id(provider_id: str) -> str:
    """The URI scheme whose provider reads encrypted data keys with ``provider_id``.

    Aureus providers write ``aureus-<scheme>``; a provider that follows an
    ecosystem layout uses that layout's ID as its scheme (``aws-kms``).
    """
    return provider_id[len("aureus-") :] if provider_id.startswith("aureus-") else provider_id


@attrs.frozen(kw_only=True)
class KeyFilter:
    """Which wrapping keys a decrypt may use.

    ``keys`` (strict mode) names the only keys allowed, optionally pinned to a
    version; otherwise (discovery mode) any key whose unversioned URI matches
    one of ``patterns`` (shell-style, default ``*``) is allowed.
    """

    keys: tuple[KeyRef, ...] = ()
    patterns: tuple[str, ...] = ("*",)

    def allows(self, ref: KeyRef) -> bool:
        """Whether ``ref`` (pinned to the version that wrapped) may be used."""
        base = ref.with_version(None)
        if self.keys:
            return any(
                key.with_version(None) == base and key.version in (None, ref.version)
                for key in self.keys
            )
        return any(fnmatch.fnmatchcase(base.uri, pattern) for pattern in self.patterns)


def encryption_materials(
    lookup: ProviderLookup,
    keys: Sequence[KeyRef],
    context: EncryptionContext,
    *,
    signed: bool,
) -> tuple[EncryptionMaterials, list[KeyRef]]:
    """A fresh data key wrapped by every key in ``keys``; returns the wrapping versions too."""
    if not keys:
        raise ConfigError(
            "no wrapping key: pass keys=[URI, ...] (--key URI) or set [stack] wrapping_keys"
        )
    if len(set(keys)) != len(keys):
        raise ConfigError("the same wrapping key is listed twice")
    signing_key = new_signing_key()[0] if signed else None
    full_context = signed_context(context, signing_key)
    suite = SIGNED_SUITE if signed else DEFAULT_SUITE
    data_key = bytearray(os.urandom(suite.data_key_length))
    encrypted, used = wrap_for_all(lookup, keys, data_key, full_context)
    materials = EncryptionMaterials(
        suite=suite,
        data_key=data_key,
        encrypted_data_keys=encrypted,
        context=full_context,
        signing_key=signing_key,
    )
    return materials, used


def wrap_for_all(
    lookup: ProviderLookup,
    keys: Sequence[KeyRef],
    data_key: bytes | bytearray,
    context: EncryptionContext,
) -> tuple[tuple[EncryptedDataKey, ...], list[KeyRef]]:
    """Wrap ``data_key`` under every key; return the encrypted keys and the versions used."""
    encrypted: list[EncryptedDataKey] = []
    used: list[KeyRef] = []
    for ref in keys:
        provider = lookup(ref.scheme)
        if Capability.WRAP not in provider.capabilities:
            raise UnsupportedOperation(ref.scheme, "wrap")
        wrapped = provider.wrap(ref, bytes(data_key), context)
        encrypted.append(wrapped.encrypted)
        used.append(wrapped.key)
    return tuple(encrypted), used


def unwrap_data_key(
    lookup: ProviderLookup,
    encrypted_data_keys: Sequence[EncryptedDataKey],
    context: EncryptionContext,
    allowed: KeyFilter,
) -> tuple[bytearray, KeyRef]:
    """Unwrap the first encrypted data key an allowed, reachable key can open.

    A key that fails (wrong key, tampering, an unreachable provider) is
    skipped; when none succeeds the result is one opaque
    :class:`DecryptionError`.
    """
    refused: list[str] = []
    for encrypted in encrypted_data_keys:
        try:
            provider = lookup(scheme_for_provider_id(encrypted.provider_id))
        except AureusError:
            continue
        if Capability.WRAP not in provider.capabilities:
            continue
        ref = provider.owner_of(encrypted)
        if ref is None or not allowed.allows(ref):
            continue
        try:
            return provider.unwrap(ref, encrypted, context), ref
        except KeyDisabled as error:
            # A lifecycle refusal (disabled, below the minimum version) names the
            # key and version, not anything secret: pass it on so it can be fixed.
            refused.append(str(error))
        except AureusError:
            continue
    reason = f" ({'; '.join(refused)})" if refused else ""
    raise DecryptionError(
        "the message could not be decrypted: none of its "
        f"{len(encrypted_data_keys)} encrypted data key(s) could be unwrapped with a key "
        f"this stack may use{reason}"
    )
