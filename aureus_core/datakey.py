"""Data keys and their wrapped (encrypted) forms."""

from __future__ import annotations

import attrs

from .keyref import KeyRef


@attrs.frozen(kw_only=True)
class EncryptedDataKey:
    """A data key wrapped by one wrapping key, as stored in a message header.

    ``provider_id`` and ``provider_info`` follow the AWS Encryption SDK's
    encrypted-data-key layout (``provider_info`` names the wrapping key).
    """

    provider_id: str
    provider_info: bytes
    ciphertext: bytes = attrs.field(repr=lambda c: f"<{len(c)} bytes>")


@attrs.frozen(kw_only=True)
class WrappedKey:
    """The result of one provider ``wrap`` call: the wrapped key and who wrapped it."""

    key: KeyRef
    """The wrapping key, pinned to the version that wrapped."""
    encrypted: EncryptedDataKey


@attrs.define(kw_only=True, eq=False)
class DataKey:
    """A plaintext data key and its wrapped copies.

    The plaintext is a ``bytearray`` so that :meth:`wipe` can overwrite it; it
    never appears in a repr.
    """

    plaintext: bytearray = attrs.field(repr=False, converter=bytearray)
    encrypted: tuple[EncryptedDataKey, ...] = ()

    def wipe(self) -> None:
        """Overwrite the plaintext in place (best effort: Python may hold copies)."""
        for i in range(len(self.plaintext)):
            self.plaintext[i] = 0
