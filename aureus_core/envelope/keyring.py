"""Data keys for messages: generated and wrapped for every recipient, or unwrapped by one."""

from __future__ import annotations

import contextlib
import fnmatch
import os
from collections.abc import Callable, Iterator, Sequence

import attrs

from ..context import EncryptionContext
from ..datakey import EncryptedDataKey
from ..errors import (
    AccessDenied,
    AureusError,
    ConfigError,
    CredentialError,
    DecryptionError,
    KeyDisabled,
    ProviderError,
    ProviderUnavailable,
    Throttled,
    UnsupportedOperation,
)
from ..interfaces import Capability, GeneratesDataKeys, KeyProvider
from ..keyref import KeyRef
from .message import EncryptionMaterials, new_signing_key, signed_context
from .suites import DEFAULT_SUITE, SIGNED_SUITE

ProviderLookup = Callable[[str], KeyProvider]
Claimants = Callable[[], Sequence[KeyProvider]]
"""The providers a stack is configured with or has loaded, asked to claim other provider IDs."""


def scheme_for_provider_id(provider_id: str) -> str:
    """The URI scheme whose provider reads encrypted data keys with ``provider_id``.

    Aureus providers write ``aureus-<scheme>``; a provider that follows an
    ecosystem layout uses that layout's ID as its scheme (``aws-kms``).
    Other provider IDs (a raw keyring's key namespace) are not schemes: the
    keyring asks the stack's own providers whether one holds such a key.
    """
    return provider_id[len("aureus-") :] if provider_id.startswith("aureus-") else provider_id


RESERVED_PROVIDER_IDS = ("aureus-", "aws-kms")
"""Provider ID prefixes that name a provider's own layout and are never a raw key namespace."""


def _candidates(
    lookup: ProviderLookup, claimants: Claimants | None, encrypted: EncryptedDataKey
) -> Iterator[KeyProvider]:
    """Providers that may own ``encrypted``: its scheme's, then the stack's own.

    The provider ID picks at most the provider of the scheme it names by
    convention.  Only when that provider does not own it, and the ID is not
    one of the reserved Aureus and AWS KMS IDs, are the stack's configured and
    loaded providers asked; each takes part only if
    :meth:`~KeyProvider.owner_of` recognises one of its own keys.
    """
    convention: KeyProvider | None = None
    with contextlib.suppress(AureusError):
        convention = lookup(scheme_for_provider_id(encrypted.provider_id))
    if convention is not None:
        yield convention
        if convention.owner_of(encrypted) is not None:
            return
    if claimants is None or encrypted.provider_id.startswith(RESERVED_PROVIDER_IDS):
        return
    for provider in claimants():
        if convention is None or provider.scheme != convention.scheme:
            yield provider


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
    data_key, encrypted, used = _new_data_key(lookup, keys, suite.data_key_length, full_context)
    materials = EncryptionMaterials(
        suite=suite,
        data_key=data_key,
        encrypted_data_keys=encrypted,
        context=full_context,
        signing_key=signing_key,
    )
    return materials, used


def _wipe(buffer: bytearray) -> None:
    buffer[:] = bytes(len(buffer))


def _new_data_key(
    lookup: ProviderLookup, keys: Sequence[KeyRef], length: int, context: EncryptionContext
) -> tuple[bytearray, tuple[EncryptedDataKey, ...], list[KeyRef]]:
    """A data key wrapped by every key in ``keys``.

    When the first key's provider generates data keys (KMS ``GenerateDataKey``),
    it makes the key and its first wrap in one call; otherwise the key comes
    from the operating system's CSPRNG.
    """
    first = lookup(keys[0].scheme)
    if Capability.GENERATE_DATA_KEY not in first.capabilities:
        data_key = bytearray(os.urandom(length))
        encrypted, used = wrap_for_all(lookup, keys, data_key, context)
        return data_key, encrypted, used
    if not isinstance(first, GeneratesDataKeys):
        raise UnsupportedOperation(
            keys[0].scheme, "generate_data_key", "it declares the capability but lacks the method"
        )
    data_key, wrapped = first.generate_data_key(keys[0], length, context)
    if len(data_key) != length:
        _wipe(data_key)
        raise ProviderError(
            f"provider {keys[0].scheme!r} generated a {len(data_key)}-byte data key; "
            f"the algorithm suite needs {length} bytes",
            provider=keys[0].scheme,
        )
    try:
        rest, used = wrap_for_all(lookup, keys[1:], data_key, context)
    except BaseException:
        _wipe(data_key)
        raise
    return data_key, (wrapped.encrypted, *rest), [wrapped.key, *used]


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
    claimants: Claimants | None = None,
) -> tuple[bytearray, KeyRef]:
    """Unwrap the first encrypted data key an allowed, reachable key can open.

    Each encrypted data key goes to the provider its ID names by convention
    and to the ``claimants`` (the stack's configured and loaded providers);
    a provider tries it only if it owns the key (:meth:`KeyProvider.owner_of`)
    and ``allowed`` permits that key's URI.  A key that fails (wrong key,
    tampering, an unreachable provider) is skipped.  When none succeeds: if a
    provider could not be asked at all
    (unreachable, throttled, credentials refused), that error, since retrying
    or fixing access may help; otherwise one opaque :class:`DecryptionError`.
    """
    refused: list[str] = []
    operational: list[AureusError] = []
    for encrypted in encrypted_data_keys:
        for provider in _candidates(lookup, claimants, encrypted):
            if Capability.WRAP not in provider.capabilities:
                continue
            ref = provider.owner_of(encrypted)
            if ref is None or ref.scheme != provider.scheme or not allowed.allows(ref):
                continue
            try:
                return provider.unwrap(ref, encrypted, context), ref
            except KeyDisabled as error:
                # A lifecycle refusal (disabled, below the minimum version) names the
                # key and version, not anything secret: pass it on so it can be fixed.
                refused.append(str(error))
            except (ProviderUnavailable, Throttled, AccessDenied, CredentialError) as error:
                operational.append(error)
            except AureusError:
                continue
    if operational:
        raise operational[0]
    reason = f" ({'; '.join(refused)})" if refused else ""
    raise DecryptionError(
        "the message could not be decrypted: none of its "
        f"{len(encrypted_data_keys)} encrypted data key(s) could be unwrapped with a key "
        f"this stack may use{reason}"
    )
