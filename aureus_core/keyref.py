"""Key references: a URI whose scheme selects the provider.

``local://payments``, ``local://payments?version=3``,
``aws-kms://arn:aws:kms:eu-west-1:111122223333:key/1234abcd-...?region=eu-west-1``.
The part between ``://`` and ``?`` is the provider's own key identifier; only
``version`` has a meaning common to every provider.
"""

from __future__ import annotations

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
    """

    scheme: str = attrs.field(validator=_check_scheme)
    key_id: str = attrs.field(validator=_check_key_id)
    version: str | None = attrs.field(default=None, validator=_check_version)
    params: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_freeze_params)

    @classmethod
    def parse(cls, uri: str | KeyRef) -> KeyRef:
        """Parse ``scheme://key-id[?version=V&name=value...]``."""
        if isinstance(uri, KeyRef):
            return uri
        if not isinstance(uri, str):
            raise ConfigError(f"a key URI must be a string, not {type(uri).__name__}")
        scheme, sep, rest = uri.partition("://")
        if not sep:
            raise ConfigError(
                f"{uri!r} is not a key URI: write scheme://key, e.g. local://payments"
            )
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
        return cls(scheme=scheme, key_id=key_id, version=version, params=params)

    @property
    def uri(self) -> str:
        """The canonical URI string (parameters sorted, version first)."""
        query = []
        if self.version is not None:
            query.append(f"version={quote(self.version, safe='')}")
        query.extend(f"{name}={quote(value, safe='')}" for name, value in self.params)
        suffix = "?" + "&".join(query) if query else ""
        return f"{self.scheme}://{self.key_id}{suffix}"

    def param(self, name: str, default: str | None = None) -> str | None:
        """Return one query parameter."""
        return dict(self.params).get(name, default)

    def with_version(self, version: str | None) -> KeyRef:
        """The same key, pinned to ``version`` (or unpinned with ``None``)."""
        return attrs.evolve(self, version=version)

    def __str__(self) -> str:
        return self.uri
