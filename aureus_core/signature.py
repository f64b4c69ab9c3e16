"""Signatures and the algorithms that make them."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import attrs

from .errors import SignatureError


@attrs.frozen(kw_only=True)
class Signature:
    """A signature with the key version and algorithm that made it.

    ``value`` is the raw signature: 64 bytes for Ed25519, DER for ECDSA, as
    ``openssl pkeyutl -verify`` expects.
    """

    value: bytes = attrs.field(repr=lambda v: f"<{len(v)} bytes>")
    key_uri: str
    key_version: str
    algorithm: str

    def to_json(self) -> str:
        """Serialize as JSON, the value in base64."""
        return json.dumps(
            {
                "signature": base64.b64encode(self.value).decode(),
                "key_uri": self.key_uri,
                "key_version": self.key_version,
                "algorithm": self.algorithm,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Signature:
        """Parse what :meth:`to_json` wrote."""
        try:
            data: Any = json.loads(text)
            return cls(
                value=base64.b64decode(data["signature"], validate=True),
                key_uri=str(data["key_uri"]),
                key_version=str(data["key_version"]),
                algorithm=str(data["algorithm"]),
            )
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise SignatureError(
                "malformed signature record: expected JSON with signature, key_uri, "
                "key_version and algorithm"
            ) from None
