"""How keys on a token are named: ``pkcs11://`` URIs, object labels and ``CKA_ID`` versions.

``pkcs11://TOKEN/NAME`` names a key on the token labelled ``TOKEN``;
``pkcs11://TOKEN/NAME?version=N`` (or ``pkcs11://TOKEN/NAME/N``) pins one
version.  ``pkcs11://NAME`` is the same key on the provider's configured token.
On the token every version of a key is its own object (or key pair) with
``CKA_LABEL = NAME`` and ``CKA_ID`` = the version number as a big-endian
unsigned integer (version 1 is ``CKA_ID`` ``01``), so ``pkcs11-tool --label
NAME --id 01`` creates version 1 of ``NAME``.
"""

from __future__ import annotations

import re

import attrs

from aureus_core.errors import ConfigError
from aureus_core.keyref import KeyRef

SCHEME = "pkcs11"

NAME_RULE = "1 to 64 characters: letters, digits, '_', '.' and '-', starting with a letter or digit"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_VERSION = re.compile(r"0|[1-9][0-9]{0,9}")
MAX_VERSION = 2**32 - 1


@attrs.frozen
class KeyName:
    """A parsed key reference: token label, key name and pinned version (``None``: current)."""

    token: str
    name: str
    version: int | None = None

    def ref(self, version: int | None = None) -> KeyRef:
        """The canonical reference, pinned to ``version`` (default: this one's pin)."""
        pinned = self.version if version is None else version
        return KeyRef(
            scheme=SCHEME,
            key_id=f"{self.token}/{self.name}",
            version=None if pinned is None else str(pinned),
        )


def check_name(name: object) -> str:
    """Return ``name`` if it may name a key on a token, else raise :class:`ConfigError`."""
    if not isinstance(name, str) or _NAME.fullmatch(name) is None:
        shown = repr(name) if isinstance(name, str) else type(name).__name__
        raise ConfigError(f"invalid PKCS#11 key name {shown:.100}: use {NAME_RULE}")
    return name


def parse_version(text: str, uri: str) -> int:
    """Parse a decimal version number or raise :class:`ConfigError`."""
    if _VERSION.fullmatch(text) is None or int(text) > MAX_VERSION:
        raise ConfigError(
            f"invalid version {text!r} in {uri}: PKCS#11 key versions are whole numbers "
            "(the object's CKA_ID read as a big-endian number)"
        )
    return int(text)


def parse_ref(key: KeyRef | str, token: str) -> KeyName:
    """Split a reference into token, name and version; ``token`` is the configured token.

    Raises :class:`ConfigError` for another scheme, parameters other than
    ``version``, a malformed name or version, or a version given twice.
    """
    ref = KeyRef.parse(key)
    if ref.scheme != SCHEME:
        raise ConfigError(
            f"{ref.uri} is not a PKCS#11 key: this provider serves {SCHEME}://TOKEN/NAME URIs"
        )
    if ref.params:
        names = ", ".join(name for name, _ in ref.params)
        raise ConfigError(f"PKCS#11 key URIs take no parameters but 'version' ({names} given)")
    parts = ref.key_id.split("/")
    version: int | None = None
    if len(parts) == 3:
        version = parse_version(parts[2], ref.uri)
        parts = parts[:2]
        if ref.version is not None:
            raise ConfigError(f"{ref.uri} gives the version twice (path and ?version=)")
    if len(parts) == 1:
        parts = [token, parts[0]]
    if len(parts) != 2 or not parts[0]:
        raise ConfigError(
            f"{ref.uri} is not a PKCS#11 key URI: write {SCHEME}://TOKEN/NAME[/VERSION]"
        )
    if ref.version is not None:
        version = parse_version(ref.version, ref.uri)
    return KeyName(token=parts[0], name=check_name(parts[1]), version=version)


def version_to_id(version: int) -> bytes:
    """The ``CKA_ID`` bytes of a version number (at least one byte)."""
    return version.to_bytes(max(1, (version.bit_length() + 7) // 8), "big")


def id_to_version(object_id: bytes) -> int | None:
    """The version number a ``CKA_ID`` encodes (empty: 0), or ``None`` if it is too long."""
    stripped = object_id.lstrip(b"\x00")
    if len(stripped) > 4:
        return None
    return int.from_bytes(stripped, "big") if stripped else 0
