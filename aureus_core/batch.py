"""Field-level encryption in batches: many small values under one context.

Database columns and JSON fields are many small values encrypted together.
A batch makes one data key (wrapped once for every recipient, the wraps in
parallel), writes one complete message per value — each with its own random
message ID, so every value has its own derived key and IVs — and records one
audit event that summarises the batch.  Decrypting a batch unwraps each
distinct data key once.  :meth:`KeyStack.encrypt_batch` and
:meth:`KeyStack.decrypt_batch` (and their async twins) are the entry points.

The data-key cache is not consulted: the batch itself is the reuse.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from .context import EncryptionContext
from .envelope.keyring import KeyFilter, encryption_materials, unwrap_data_key
from .envelope.message import (
    DEFAULT_FRAME_LENGTH,
    MessageReader,
    MessageWriter,
    check_frame_length,
    encrypt_bytes,
    merge_supplied,
)
from .envelope.suites import CommitmentPolicy
from .errors import ConfigError, DecryptionError
from .keyref import KeyRef

if TYPE_CHECKING:
    from .stack import KeyStack


def _refs(stack: KeyStack, keys: Sequence[str | KeyRef] | None) -> list[KeyRef]:
    from .stack import _names_keys

    if _names_keys(keys, "wrap the data key with"):
        return [stack._ref(k) for k in keys]
    return list(stack.config.wrapping_keys)


def encrypt_batch(
    stack: KeyStack,
    values: Sequence[bytes | bytearray | memoryview],
    *,
    context: Mapping[str, str] | None = None,
    keys: Sequence[str | KeyRef] | None = None,
    signed: bool = False,
) -> list[bytes]:
    """One message per value, in order, all under one fresh data key."""
    if isinstance(values, (bytes, bytearray, memoryview, str)):
        raise ConfigError("encrypt_batch takes a sequence of values; use encrypt for one value")
    if not values:
        return []
    refs = _refs(stack, keys)
    stack.limits.check_recipients(len(refs))
    encryption_context = EncryptionContext.coerce(context)
    length = check_frame_length(stack.config.frame_length or DEFAULT_FRAME_LENGTH, stack.limits)
    with stack._operation("encrypt_batch") as op:
        if refs:
            op.update(provider=refs[0].scheme, key_uri=refs[0].with_version(None).uri)
        op.update(stack.audit.context_fields(encryption_context))
        materials, used = encryption_materials(
            stack.provider, refs, encryption_context, signed=signed, pool=stack.fanout
        )
        try:
            messages = [encrypt_bytes(value, MessageWriter(materials, length)) for value in values]
        finally:
            if isinstance(materials.data_key, bytearray):
                materials.data_key[:] = bytes(len(materials.data_key))
        op.update(
            key_version=used[0].version,
            byte_count=sum(memoryview(v).nbytes for v in values),
            details=(
                ("count", str(len(values))),
                ("recipients", ",".join(r.uri for r in used)),
                ("signed", str(signed).lower()),
            ),
        )
        return messages


def decrypt_batch(
    stack: KeyStack,
    messages: Sequence[bytes | bytearray | memoryview],
    *,
    context: Mapping[str, str] | None = None,
    keys: Sequence[str | KeyRef] | None = None,
) -> list[bytes]:
    """Every message's plaintext, in order; nothing is returned unless all of them check.

    Each message passes every check :meth:`KeyStack.decrypt` makes; each
    distinct data key (same encrypted data keys and context) is unwrapped
    once.  A failure names the message's position.
    """
    if isinstance(messages, (bytes, bytearray, memoryview, str)):
        raise ConfigError("decrypt_batch takes a sequence of messages; use decrypt for one")
    supplied = EncryptionContext.coerce(context)
    from .stack import _names_keys

    _names_keys(keys, "decrypt with")  # an empty list is refused, not read as "any key"
    allowed = KeyFilter(
        keys=tuple(stack._ref(k) for k in keys or ()),
        patterns=stack.config.decrypt_allow,
        named=stack.config.named_keys,
    )
    policy = CommitmentPolicy.parse(stack.config.commitment_policy)
    unwrapped: dict[tuple[object, ...], tuple[bytearray, KeyRef]] = {}
    plaintexts: list[bytes] = []
    with stack._operation("decrypt_batch") as op:
        try:
            for index, message in enumerate(messages):
                try:
                    reader = MessageReader(message, limits=stack.limits, policy=policy)
                    full, required = merge_supplied(reader.stored_context, supplied)
                    header = reader.header
                    memo = (
                        header.suite.suite_id,
                        header.encrypted_data_keys,
                        tuple(sorted(full.items())),
                    )
                    if memo not in unwrapped:
                        unwrapped[memo] = unwrap_data_key(
                            stack._unwrap_lookup(allowed),
                            header.encrypted_data_keys,
                            full,
                            allowed,
                            stack._own_providers,
                            stack.unwrap_fanout,
                        )
                    reader.unlock(unwrapped[memo][0], required)
                    plaintexts.append(reader.read_all())
                except DecryptionError as error:
                    raise DecryptionError(
                        f"message {index + 1} of {len(messages)} in the batch: {error}"
                    ) from None
        finally:
            for data_key, _ in unwrapped.values():
                data_key[:] = bytes(len(data_key))
        used = sorted({ref.uri for _, ref in unwrapped.values()})
        if used:
            first = next(iter(unwrapped.values()))[1]
            op.update(provider=first.scheme, key_uri=first.with_version(None).uri)
        op.update(
            byte_count=sum(len(p) for p in plaintexts),
            details=(
                ("count", str(len(plaintexts))),
                ("unwraps", str(len(unwrapped))),
                ("keys", ",".join(used)),
            ),
        )
        return plaintexts


__all__ = ["decrypt_batch", "encrypt_batch"]
