"""Encryption context: authenticated, non-secret key/value pairs bound to a message.

The canonical serialization is the AWS Encryption SDK's: a 2-byte pair count,
then for each pair, sorted by the UTF-8 bytes of the key, a 2-byte key length,
the key, a 2-byte value length and the value.  The empty context serializes to
no bytes at all.
"""

from __future__ import annotations

import struct
from collections.abc import ItemsView, Iterator, KeysView, Mapping, ValuesView
from typing import Any

import attrs

from .errors import ConfigError

MAX_SERIALIZED_SIZE = 0xFFFF
RESERVED_PREFIX = "aws-crypto-"


def _encode(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise ConfigError(f"encryption context {what}s must be strings, not {type(text).__name__}")
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(f"encryption context {what} is not valid Unicode text") from None


def _first(item: tuple[bytes, bytes, str, str]) -> bytes:
    return item[0]


def _serialize(encoded: list[tuple[bytes, bytes]]) -> bytes:
    """The canonical bytes of ``encoded`` (UTF-8 key/value pairs already sorted by key)."""
    if not encoded:
        return b""
    parts = [_U16.pack(len(encoded))]
    for key, value in encoded:
        if len(key) > 0xFFFF or len(value) > 0xFFFF:
            raise ConfigError("an encryption context key or value is longer than 65 535 bytes")
        parts += [_U16.pack(len(key)), key, _U16.pack(len(value)), value]
    return b"".join(parts)


_U16 = struct.Struct(">H")
_MEMO_SIZE = 256
"""Contexts remembered by their pairs and by their bytes (see :meth:`EncryptionContext.coerce`)."""
_MEMO_MAX_BYTES = 2048
"""Only contexts up to this serialized size are remembered (the memo's memory stays small)."""
_memo: dict[tuple[tuple[str, str], ...], EncryptionContext] = {}
_parsed: dict[tuple[bytes, bool], EncryptionContext] = {}


@attrs.frozen(init=False, eq=False, repr=False)
class EncryptionContext(Mapping[str, str]):
    """An immutable ``str -> str`` mapping with a canonical byte serialization.

    Keys beginning with ``aws-crypto-`` are reserved for the message format;
    the serialized form may not exceed 65 535 bytes.
    """

    _pairs: tuple[tuple[str, str], ...]
    _serialized: bytes
    _map: dict[str, str]

    def __init__(self, pairs: Mapping[str, str] | None = None, /, **kwargs: str) -> None:
        merged = dict(pairs or {})
        merged.update(kwargs)
        for key in merged:
            if isinstance(key, str) and key.startswith(RESERVED_PREFIX):
                raise ConfigError(
                    f"encryption context key {key!r} is reserved: keys beginning with "
                    f"{RESERVED_PREFIX!r} belong to the message format; rename it"
                )
        self._init(merged)

    def _init(self, merged: Mapping[str, str]) -> None:
        encoded = []
        for key, value in merged.items():
            if key == "":
                raise ConfigError("encryption context keys may not be empty")
            encoded.append((_encode(key, "key"), _encode(value, "value"), key, value))
        # Keys are unique, and so are their UTF-8 encodings: the sort never compares values.
        encoded.sort(key=_first)
        serialized = _serialize([(k, v) for k, v, _, _ in encoded])
        if len(serialized) > MAX_SERIALIZED_SIZE:
            raise ConfigError(
                f"encryption context serializes to {len(serialized)} bytes; "
                f"the limit is {MAX_SERIALIZED_SIZE}: store large values elsewhere"
            )
        pairs = tuple((k, v) for _, _, k, v in encoded)
        object.__setattr__(self, "_pairs", pairs)
        object.__setattr__(self, "_serialized", serialized)
        object.__setattr__(self, "_map", dict(pairs))

    @classmethod
    def _unchecked_reserved(cls, pairs: Mapping[str, str]) -> EncryptionContext:
        """Build a context that may hold reserved keys (for the message format itself)."""
        self = cls.__new__(cls)
        self._init(pairs)
        return self

    @classmethod
    def coerce(cls, value: Mapping[str, str] | None) -> EncryptionContext:
        """Return ``value`` as an :class:`EncryptionContext`.

        Contexts are immutable, so one built from the same pairs before is
        reused (a bounded memo: applications tend to pass the same few).
        """
        if isinstance(value, EncryptionContext):
            return value
        if not value:
            return EMPTY_CONTEXT
        try:
            items = tuple(value.items())
            found = _memo.get(items)
        except (AttributeError, TypeError):  # not a mapping, or unhashable: the constructor
            # says what is wrong
            return cls(value)
        if found is not None:
            return found
        made = cls(value)
        if len(made._serialized) > _MEMO_MAX_BYTES:
            return made
        if len(_memo) >= _MEMO_SIZE:
            _memo.clear()
        _memo[items] = made
        return made

    @classmethod
    def deserialize(cls, data: bytes, *, allow_reserved: bool = False) -> EncryptionContext:
        """Parse the canonical serialization; reject malformed input and duplicate keys."""
        if not data:
            return EMPTY_CONTEXT
        memo_key = (bytes(data), allow_reserved)
        found = _parsed.get(memo_key)
        if found is not None:
            return found
        parsed = cls._deserialize(memo_key[0], allow_reserved=allow_reserved)
        if len(data) > _MEMO_MAX_BYTES:
            return parsed
        if len(_parsed) >= _MEMO_SIZE:
            _parsed.clear()
        _parsed[memo_key] = parsed
        return parsed

    @classmethod
    def _deserialize(cls, data: bytes, *, allow_reserved: bool) -> EncryptionContext:
        view = memoryview(data)
        try:
            (count,) = struct.unpack_from(">H", view, 0)
            offset = 2
            pairs: dict[str, str] = {}
            for _ in range(count):
                (klen,) = struct.unpack_from(">H", view, offset)
                key = bytes(view[offset + 2 : offset + 2 + klen])
                offset += 2 + klen
                (vlen,) = struct.unpack_from(">H", view, offset)
                value = bytes(view[offset + 2 : offset + 2 + vlen])
                offset += 2 + vlen
                if len(key) != klen or len(value) != vlen:
                    raise ConfigError("encryption context is truncated")
                text_key = key.decode("utf-8")
                if text_key in pairs:
                    raise ConfigError(f"encryption context has key {text_key!r} twice")
                pairs[text_key] = value.decode("utf-8")
        except (struct.error, UnicodeDecodeError):
            raise ConfigError("encryption context is malformed") from None
        if offset != len(data):
            raise ConfigError("encryption context has trailing bytes")
        if count == 0:
            raise ConfigError("a non-empty encryption context field must hold at least one pair")
        return cls._unchecked_reserved(pairs) if allow_reserved else cls(pairs)

    def serialize(self) -> bytes:
        """The canonical bytes, as authenticated by the message format."""
        return self._serialized

    def __getitem__(self, key: str) -> str:
        return self._map[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._map)

    def __len__(self) -> int:
        return len(self._pairs)

    def __contains__(self, key: object) -> bool:
        return key in self._map

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, or ``default``."""
        return self._map.get(key, default)

    def items(self) -> ItemsView[str, str]:
        """The pairs, sorted by the UTF-8 bytes of their keys."""
        return self._map.items()

    def keys(self) -> KeysView[str]:
        """The keys, sorted by their UTF-8 bytes."""
        return self._map.keys()

    def values(self) -> ValuesView[str]:
        """The values, in the order of their keys."""
        return self._map.values()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, EncryptionContext):
            return self._pairs == other._pairs
        if isinstance(other, Mapping):
            return dict(self._pairs) == dict(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._pairs)

    def __repr__(self) -> str:
        return f"EncryptionContext({dict(self._pairs)!r})"


EMPTY_CONTEXT = EncryptionContext()
"""The empty context (immutable, so one instance serves everywhere)."""
