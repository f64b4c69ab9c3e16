"""Key references: a URI whose scheme selects the provider.

``local://payments``, ``local://payments?version=3``,
``aws-kms://arn:aws:kms:eu-west-1:111122223333:key/1234abcd-...?region=eu-west-1``.
The part between ``://`` and ``?`` is the provider's own key identifier; only
``version`` has a meaning common to every provider.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, quote

import attrs

from .errors import ConfigError

_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*$")
# Characters that would make a reference ambiguous to parse or display.
_FORBIDDEN_IN_ID = re.compile(r"[\s?#\x00-\x1f\x7f]")
_PARAM_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")


def _check_scheme(_: object, __: object, value: str) -> None:
    if not _SCHEME.match(value):
        raise ConfigError(
            f"invalid key URI scheme {value!r}: use lower-case letters, digits, '+', '.', '-'"
        )


def _check_key_id(_: object, __: object, value: str) -> None:
    if not value:
        raise ConfigError("a key URI needs a key identifier after '://', e.g. local://payments")
    if _FORBIDDEN_IN_ID.search(value):
        raise ConfigError(
            f"invalid key identifier {value!r}: it may not contain whitespace, '?', '#' "
            "or control characters"
        )


def _check_version(_: object, __: object, value: str | None) -> None:
    if value is not None and (not value or _FORBIDDEN_IN_ID.search(value) or "&" in value):
        raise ConfigError(f"invalid key version {value!r}")


def _freeze_params(
    value: Mapping[str, str] | Iterable[tuple[str, str]] | None,
) -> tuple[tuple[str, str], ...]:
    # A mapping, or the frozen pairs themselves (attrs.evolve passes those back in).
    pairs = value.items() if isinstance(value, Mapping) else (value or ())
    items = sorted(dict(pairs).items())
    for name, param in items:
        if not isinstance(name, str) or not isinstance(param, str):
            raise ConfigError("key URI parameters must map strings to strings")
        if not _PARAM_NAME.match(name) or name == "version":
            raise ConfigError(f"invalid key URI parameter name {name!r}")
    return tuple(items)


@attrs.frozen(kw_only=True)
class KeyRef:
    """A parsed key URI.

    ``scheme`` selects the provider, ``key_id`` is the provider's identifier,
    ``version`` pins one key version (``None``: the current one) and
    ``params`` holds provider-specific query parameters such as ``region``.
    Immutable, so parsed references are shared: :meth:`parse` and
    :meth:`with_version` hand out the same object for the same input.
    """

    scheme: str = attrs.field(validator=_check_scheme)
    key_id: str = attrs.field(validator=_check_key_id)
    version: str | None = attrs.field(default=None, validator=_check_version)
    params: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_freeze_params)
    _uri: str | None = attrs.field(init=False, default=None, eq=False, repr=False)
    _unversioned: KeyRef | None = attrs.field(init=False, default=None, eq=False, repr=False)

    @classmethod
    def parse(cls, uri: str | KeyRef) -> KeyRef:
        """Parse ``scheme://key-id[?version=V&name=value...]``."""
        if isinstance(uri, KeyRef):
            return uri
        if type(uri) is str:
            return _parse_memo(uri)
        if not isinstance(uri, str):
            raise ConfigError(f"a key URI must be a string, not {type(uri).__name__}")
        return _parse(str(uri))

    @property
    def uri(self) -> str:
        """The canonical URI string (parameters sorted, version first)."""
        uri = self._uri
        if uri is None:
            query = []
            if self.version is not None:
                query.append(f"version={quote(self.version, safe='')}")
            query.extend(f"{name}={quote(value, safe='')}" for name, value in self.params)
            suffix = "?" + "&".join(query) if query else ""
            uri = f"{self.scheme}://{self.key_id}{suffix}"
            object.__setattr__(self, "_uri", uri)
        return uri

    def param(self, name: str, default: str | None = None) -> str | None:
        """Return one query parameter."""
        return dict(self.params).get(name, default)

    def with_version(self, version: str | None) -> KeyRef:
        """The same key, pinned to ``version`` (or unpinned with ``None``)."""
        if version == self.version:
            return self
        if version is None:
            unversioned = self._unversioned
            if unversioned is None:
                unversioned = _checked_copy(self, None)
                object.__setattr__(self, "_unversioned", unversioned)
            return unversioned
        return _checked_copy(self, version)

    def __str__(self) -> str:
        return self.uri


def _checked_copy(ref: KeyRef, version: str | None) -> KeyRef:
    """``ref`` with another version: only the new version needs checking."""
    _check_version(None, None, version)
    copy = object.__new__(KeyRef)
    for name, value in (
        ("scheme", ref.scheme),
        ("key_id", ref.key_id),
        ("version", version),
        ("params", ref.params),
        ("_uri", None),
        ("_unversioned", ref if ref.version is None else ref._unversioned),
    ):
        object.__setattr__(copy, name, value)
    return copy


def _parse(uri: str) -> KeyRef:
    scheme, sep, rest = uri.partition("://")
    if not sep:
        raise ConfigError(f"{uri!r} is not a key URI: write scheme://key, e.g. local://payments")
    key_id, _, query = rest.partition("?")
    params: dict[str, str] = {}
    version: str | None = None
    if query:
        try:
            pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
        except ValueError:
            raise ConfigError(f"invalid query string in key URI {uri!r}") from None
        for name, value in pairs:
            if name in params or (name == "version" and version is not None):
                raise ConfigError(f"parameter {name!r} given twice in key URI {uri!r}")
            if name == "version":
                version = value
            else:
                params[name] = value
    return KeyRef(scheme=scheme, key_id=key_id, version=version, params=params)


_parse_memo = functools.lru_cache(maxsize=1024)(_parse)
"""Parsed URIs by their text: a stack parses the same few on every operation."""
