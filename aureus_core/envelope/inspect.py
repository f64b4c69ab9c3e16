"""Describing a message without decrypting it."""

from __future__ import annotations

from typing import BinaryIO

import attrs

from ..context import EncryptionContext
from .header import CONTENT_TYPE_NAMES, Limits
from .message import MessageReader


@attrs.frozen(kw_only=True)
class RecipientInfo:
    """One encrypted data key: who wrapped it, as far as the header says."""

    provider_id: str
    key: str
    """The wrapping key as recorded (a key name and version, an ARN ...)."""
    keyring: str | None = None
    """``raw-aes`` or ``raw-rsa`` when the provider ID is a raw keyring's key namespace.

    Then :attr:`provider_id` is the key namespace and :attr:`key` the key name.
    Told apart by layout alone: raw AES provider info ends with the tag and IV
    lengths and the IV; anything else under a namespace is read as raw RSA.
    """


@attrs.frozen(kw_only=True)
class MessageInfo:
    """What a message's header says; nothing here needs a key."""

    suite_id: int
    suite_name: str
    message_version: int
    message_id: str
    context: EncryptionContext
    """The caller's context (reserved ``aws-crypto-`` pairs left out)."""
    signed: bool
    """Whether the suite signs its messages (from the suite alone)."""
    committing: bool
    content_type: str
    """``framed`` or ``non-framed``."""
    frame_length: int
    """0 for non-framed content."""
    recipients: tuple[RecipientInfo, ...]
    required_context_keys: None = None
    """Always ``None``: the header does not record which pairs were authenticated
    without being stored (required encryption context), so nothing can tell
    without a key; a decrypt that needs them fails until they are supplied."""

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready form."""
        return {
            "suite": f"0x{self.suite_id:04X}",
            "suite_name": self.suite_name,
            "message_version": self.message_version,
            "message_id": self.message_id,
            "encryption_context": dict(self.context),
            "signed": self.signed,
            "committing": self.committing,
            "content_type": self.content_type,
            "frame_length": self.frame_length,
            "required_context_keys": self.required_context_keys,
            "encrypted_data_keys": [_recipient_dict(r) for r in self.recipients],
        }


def _recipient_dict(recipient: RecipientInfo) -> dict[str, str]:
    entry = {"provider_id": recipient.provider_id, "key": recipient.key}
    if recipient.keyring is not None:
        entry.update(
            keyring=recipient.keyring,
            key_namespace=recipient.provider_id,
            key_name=recipient.key,
        )
    return entry


_RAW_AES_SUFFIX = (128).to_bytes(4, "big") + (12).to_bytes(4, "big")
_PROVIDER_LAYOUTS = ("aws-kms", "aureus-")
"""Provider IDs that name a provider's own layout, not a raw keyring's key namespace."""


def _is_raw_aes(info: bytes) -> bool:
    return len(info) > 20 and info[-20:-12] == _RAW_AES_SUFFIX


def _describe_key(info: bytes) -> str:
    """The key name in provider info, dropping the raw AES keyring's tag/IV suffix."""
    if _is_raw_aes(info):
        info = info[:-20]
    try:
        return info.decode("utf-8")
    except UnicodeDecodeError:
        return info.hex()


def _recipient(provider_id: str, info: bytes) -> RecipientInfo:
    keyring = None
    if not provider_id.startswith(_PROVIDER_LAYOUTS):
        keyring = "raw-aes" if _is_raw_aes(info) else "raw-rsa"
    return RecipientInfo(provider_id=provider_id, key=_describe_key(info), keyring=keyring)


def inspect_message(
    source: bytes | bytearray | memoryview | BinaryIO, limits: Limits | None = None
) -> MessageInfo:
    """Parse the header of ``source`` and describe it."""
    from .suites import CommitmentPolicy

    reader = MessageReader(
        source, limits=limits, policy=CommitmentPolicy.FORBID_ENCRYPT_ALLOW_DECRYPT
    )
    header = reader.header
    visible = {k: v for k, v in header.context.items() if not k.startswith("aws-crypto-")}
    return MessageInfo(
        suite_id=header.suite.suite_id,
        suite_name=header.suite.name,
        message_version=header.suite.message_version,
        message_id=header.message_id.hex(),
        context=EncryptionContext(visible),
        signed=header.suite.signed,
        committing=header.suite.committing,
        content_type=CONTENT_TYPE_NAMES[header.content_type],
        frame_length=header.frame_length,
        recipients=tuple(
            _recipient(edk.provider_id, edk.provider_info) for edk in header.encrypted_data_keys
        ),
    )
