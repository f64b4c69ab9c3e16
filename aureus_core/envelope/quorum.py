"""Key groups with a threshold: a data key readable only with shares from k of n groups.

The data key is split with Shamir's scheme (:mod:`.shamir`) into one share
per group; every key of a group wraps that group's share.  Each wrap is an
ordinary encrypted data key of the message, with provider ID
``aureus-quorum`` and this layout (integers big-endian)::

    provider_info = binding || u16 len || inner provider ID || u16 len || inner provider info
    binding       = u8 version (1) || u8 threshold k || u8 groups n || u8 share index x (1..n)
                    || 16-byte split ID || u8 len || group name (UTF-8)
    ciphertext    = the inner wrap's ciphertext: the member key's wrap of the share, made
                    with the message's context plus ("aureus-quorum", hex(binding))

The split ID is random per data key, so it ties every share to one message.
Because the binding is part of the share's wrap context, a provider that binds
the context (local, AWS KMS, Cloud KMS) refuses a share moved to another
message, index, group or threshold; the message's key commitment and header
tag refuse any other mix.  Decrypt needs shares from ``k`` distinct groups;
two shares with one index never count twice.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence

import attrs

from ..context import EncryptionContext
from ..datakey import EncryptedDataKey
from ..errors import AureusError, ConfigError, DecryptionError
from ..keyref import KeyRef
from .shamir import MAX_SHARES, combine, split

PROVIDER_ID = "aureus-quorum"
LAYOUT_VERSION = 1
SPLIT_ID_LENGTH = 16
_MAX_NAME = 64


def _check_name(name: str) -> str:
    if (
        not isinstance(name, str)
        or not 1 <= len(name.encode("utf-8")) <= _MAX_NAME
        or not name.isprintable()
        or "," in name
    ):
        raise ConfigError(
            f"key group name {name!r} is not valid: use 1 to {_MAX_NAME} printable "
            "characters without commas, e.g. 'aws'"
        )
    return name


def _parse_keys(keys: Iterable[str | KeyRef]) -> tuple[KeyRef, ...]:
    return tuple(KeyRef.parse(key) for key in keys)


@attrs.frozen(kw_only=True)
class KeyGroup:
    """A named group of wrapping keys; any one of them can unwrap the group's share."""

    name: str = attrs.field(converter=_check_name)
    keys: tuple[KeyRef, ...] = attrs.field(converter=_parse_keys)


@attrs.frozen(kw_only=True)
class Quorum:
    """``threshold`` of the ``groups`` are needed to read a message.

    Built with :meth:`of`; a key may appear in one group only (a key in two
    groups would let its holder bring two shares).
    """

    threshold: int
    groups: tuple[KeyGroup, ...]

    def __attrs_post_init__(self) -> None:
        n = len(self.groups)
        if not isinstance(self.threshold, int) or not 1 <= self.threshold <= n <= MAX_SHARES:
            raise ConfigError(
                f"a threshold of {self.threshold!r} of {n} key groups is not possible: "
                f"set 1 <= threshold <= groups <= {MAX_SHARES}"
            )
        names = [group.name for group in self.groups]
        if len(set(names)) != len(names):
            raise ConfigError(f"key group names must be distinct: {', '.join(names)}")
        seen: dict[KeyRef, str] = {}
        for group in self.groups:
            if not group.keys:
                raise ConfigError(f"key group {group.name!r} has no keys: give it at least one")
            for key in group.keys:
                base = key.with_version(None)
                if base in seen:
                    raise ConfigError(
                        f"key {base.uri} is in key groups {seen[base]!r} and {group.name!r}: "
                        "a key may belong to one group only, or its holder alone brings "
                        "two shares"
                    )
                seen[base] = group.name

    @classmethod
    def of(
        cls,
        threshold: int,
        groups: Mapping[str, Sequence[str | KeyRef]] | Iterable[KeyGroup],
    ) -> Quorum:
        """A quorum from ``{"name": [URI, ...], ...}`` (in order) or :class:`KeyGroup` objects."""
        if isinstance(groups, Mapping):
            if not all(isinstance(v, (list, tuple)) for v in groups.values()):
                raise ConfigError(
                    "each key group is a list of key URIs, e.g. aws = ['aws-kms://alias/x']"
                )
            built = tuple(KeyGroup(name=name, keys=keys) for name, keys in groups.items())
        else:
            built = tuple(groups)
        return cls(threshold=threshold, groups=built)

    @property
    def keys(self) -> tuple[KeyRef, ...]:
        """Every key of every group."""
        return tuple(key for group in self.groups for key in group.keys)

    def describe(self) -> str:
        """``2 of 3 groups: aws [aws-kms://...], gcp [...]`` for messages and audit details."""
        groups = "; ".join(f"{g.name} [{', '.join(k.uri for k in g.keys)}]" for g in self.groups)
        return f"{self.threshold} of {len(self.groups)} key groups: {groups}"


@attrs.frozen(kw_only=True)
class QuorumShare:
    """One ``aureus-quorum`` encrypted data key, parsed (no key needed)."""

    threshold: int
    groups: int
    index: int
    split_id: bytes
    group: str
    inner: EncryptedDataKey
    binding: bytes = attrs.field(repr=False)


def _binding(threshold: int, groups: int, index: int, split_id: bytes, name: str) -> bytes:
    encoded = name.encode("utf-8")
    return (
        bytes((LAYOUT_VERSION, threshold, groups, index))
        + split_id
        + bytes((len(encoded),))
        + encoded
    )


def _short(data: bytes) -> bytes:
    return struct.pack(">H", len(data)) + data


def encode(binding: bytes, inner: EncryptedDataKey) -> EncryptedDataKey:
    """The ``aureus-quorum`` encrypted data key that carries ``inner``."""
    info = binding + _short(inner.provider_id.encode("utf-8")) + _short(inner.provider_info)
    return EncryptedDataKey(
        provider_id=PROVIDER_ID, provider_info=info, ciphertext=inner.ciphertext
    )


def parse(encrypted: EncryptedDataKey) -> QuorumShare:
    """Read an ``aureus-quorum`` encrypted data key; :class:`DecryptionError` if malformed."""
    info = encrypted.provider_info
    try:
        version, threshold, groups, index = info[0], info[1], info[2], info[3]
        split_id = info[4 : 4 + SPLIT_ID_LENGTH]
        at = 4 + SPLIT_ID_LENGTH
        name_length = info[at]
        name = info[at + 1 : at + 1 + name_length].decode("utf-8")
        at += 1 + name_length
        binding = info[:at]
        (id_length,) = struct.unpack_from(">H", info, at)
        inner_id = info[at + 2 : at + 2 + id_length].decode("utf-8")
        at += 2 + id_length
        (info_length,) = struct.unpack_from(">H", info, at)
        inner_info = info[at + 2 : at + 2 + info_length]
        at += 2 + info_length
    except (IndexError, struct.error, UnicodeDecodeError):
        raise DecryptionError("a key share of the message (aureus-quorum) is malformed") from None
    if (
        version != LAYOUT_VERSION
        or len(split_id) != SPLIT_ID_LENGTH
        or len(name.encode("utf-8")) != name_length
        or len(inner_info) != info_length
        or len(inner_id) != id_length
        or at != len(info)
        or not 1 <= threshold <= groups
        or not 1 <= index <= groups
        or inner_id == PROVIDER_ID
    ):
        raise DecryptionError(
            "a key share of the message (aureus-quorum) is malformed or of an unknown version"
        )
    return QuorumShare(
        threshold=threshold,
        groups=groups,
        index=index,
        split_id=bytes(split_id),
        group=name,
        inner=EncryptedDataKey(
            provider_id=inner_id, provider_info=bytes(inner_info), ciphertext=encrypted.ciphertext
        ),
        binding=bytes(binding),
    )


@attrs.frozen(kw_only=True)
class QuorumLayout:
    """The key groups of one message, checked for consistency from its header alone."""

    threshold: int
    groups: dict[int, str]
    """share index -> group name, for every index 1..n"""
    shares: tuple[QuorumShare, ...]

    def members(self, index: int) -> list[QuorumShare]:
        """The wraps of the share with ``index`` (one per key of its group)."""
        return [share for share in self.shares if share.index == index]


def layout(encrypted_data_keys: Sequence[EncryptedDataKey]) -> QuorumLayout | None:
    """The message's key groups, or ``None`` if it has no ``aureus-quorum`` keys.

    A message mixing quorum and ordinary encrypted data keys, shares of
    different splits or thresholds, an index claimed by two groups, or a
    group with no share is refused: any of these would let fewer keys than the
    threshold read it, or is not something Aureus writes.
    """
    quorum = [edk for edk in encrypted_data_keys if edk.provider_id == PROVIDER_ID]
    if not quorum:
        return None
    if len(quorum) != len(encrypted_data_keys):
        raise DecryptionError(
            "the message mixes key shares (aureus-quorum) with ordinary encrypted data keys, "
            "which would let a single key bypass the threshold; it is refused"
        )
    shares = tuple(parse(edk) for edk in quorum)
    first = shares[0]
    if any(
        (s.threshold, s.groups, s.split_id) != (first.threshold, first.groups, first.split_id)
        for s in shares
    ):
        raise DecryptionError(
            "the key shares of the message come from different splits or thresholds "
            "(a share from another message?); it is refused"
        )
    groups: dict[int, str] = {}
    names: dict[str, int] = {}
    for share in shares:
        if groups.setdefault(share.index, share.group) != share.group or (
            names.setdefault(share.group, share.index) != share.index
        ):
            raise DecryptionError(
                f"key share index {share.index} or group {share.group!r} appears twice with "
                "different partners (a duplicated share?); the message is refused"
            )
    if len(groups) != first.groups:
        raise DecryptionError(
            f"the message names {first.groups} key groups but carries shares for "
            f"{len(groups)}; it is refused"
        )
    return QuorumLayout(threshold=first.threshold, groups=groups, shares=shares)


BINDING_CONTEXT_KEY = "aureus-quorum"
"""The encryption-context pair a share is wrapped with, on top of the message's context."""


def share_context(context: EncryptionContext, binding: bytes) -> EncryptionContext:
    """The context a share is wrapped and unwrapped with: the message's plus its binding."""
    if BINDING_CONTEXT_KEY in context:
        raise ConfigError(
            f"encryption context key {BINDING_CONTEXT_KEY!r} is reserved for key groups; rename it"
        )
    return EncryptionContext._unchecked_reserved(
        {**dict(context.items()), BINDING_CONTEXT_KEY: binding.hex()}
    )


Wrap = Callable[[KeyRef, bytes, EncryptionContext], tuple[EncryptedDataKey, KeyRef]]


def split_for(
    quorum: Quorum,
    data_key: bytes | bytearray,
    context: EncryptionContext,
    wrap: Wrap,
) -> tuple[tuple[EncryptedDataKey, ...], list[KeyRef]]:
    """Split ``data_key`` for ``quorum`` and wrap each share under every key of its group."""
    split_id = os.urandom(SPLIT_ID_LENGTH)
    n = len(quorum.groups)
    shares = split(data_key, quorum.threshold, n)
    encrypted: list[EncryptedDataKey] = []
    used: list[KeyRef] = []
    try:
        for index, (group, share) in enumerate(zip(quorum.groups, shares, strict=True), start=1):
            binding = _binding(quorum.threshold, n, index, split_id, group.name)
            bound = share_context(context, binding)
            for key in group.keys:
                inner, version = wrap(key, bytes(share), bound)
                encrypted.append(encode(binding, inner))
                used.append(version)
    finally:
        for share in shares:
            share[:] = bytes(len(share))
    return tuple(encrypted), used


Unwrap = Callable[
    [EncryptedDataKey, EncryptionContext, "list[str]"], "tuple[bytearray, KeyRef] | None"
]
"""Try one inner encrypted data key with a context; on failure append why and return ``None``."""


class QuorumNotReached(DecryptionError):
    """Fewer key groups than the threshold could give their share."""

    def __init__(self, message: str, *, reached: Sequence[str], missing: Sequence[str]) -> None:
        super().__init__(message)
        self.reached = tuple(reached)
        self.missing = tuple(missing)


def recover(
    layout: QuorumLayout, context: EncryptionContext, unwrap: Unwrap
) -> tuple[bytearray, list[KeyRef]]:
    """The data key from shares of ``threshold`` groups, asking each group's keys in turn.

    Stops as soon as enough groups answered (later groups are not contacted).
    Raises :class:`QuorumNotReached` naming the groups reached and, for the
    others, why not.
    """
    shares: dict[int, bytearray] = {}
    used: list[KeyRef] = []
    opened_by: dict[KeyRef, str] = {}  # key (any version) -> the group whose share it opened
    reasons: dict[str, list[str]] = {}
    try:
        for index in sorted(layout.groups):
            if len(shares) >= layout.threshold:
                break
            name = layout.groups[index]
            why: list[str] = []
            for member in layout.members(index):
                try:
                    result = unwrap(member.inner, share_context(context, member.binding), why)
                    if result is None:
                        continue
                    key = result[1].with_version(None)
                    if key in opened_by:
                        # A writer never wraps two groups' shares under one key (a key is in
                        # one group only): whoever did wants one key to pass for k groups.
                        result[0][:] = bytes(len(result[0]))
                        why.append(
                            f"{key.uri} already opened the share of group {opened_by[key]!r}: "
                            "one key counts for one group only"
                        )
                        continue
                    opened_by[key] = name
                    shares[index] = result[0]
                    used.append(result[1])
                    break
                except AureusError as error:
                    why.append(str(error))
            if index not in shares:
                reasons[name] = why
        if len(shares) < layout.threshold:
            reached = [layout.groups[i] for i in sorted(shares)]
            missing = [name for name in layout.groups.values() if name not in reached]
            detail = "; ".join(
                f"{name}: {' / '.join(reasons.get(name, [])) or 'no key of this group answered'}"
                for name in missing
            )
            raise QuorumNotReached(
                f"the message needs key shares from {layout.threshold} of its "
                f"{len(layout.groups)} key groups; reached {len(reached)}"
                f" ({', '.join(reached) or 'none'}); not reached: {detail}",
                reached=reached,
                missing=missing,
            )
        return combine(shares), used
    finally:
        for share in shares.values():
            share[:] = bytes(len(share))
