"""How local keys are named: key names, version numbers and ``local://`` URIs.

A local key is ``local://NAME`` (the current version) or
``local://NAME?version=N`` (one version; versions count up from 1).
"""

from __future__ import annotations

import functools
import re

from aureus_core.errors import ConfigError
from aureus_core.keyref import KeyRef

SCHEME = "local"
NAME_RULE = (
    "1 to 128 characters: letters, digits, '_', '.' and '-', starting with a letter or digit"
)

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
# Ten digits is far more versions than any key will have; it keeps numbers small.
_VERSION = re.compile(r"[1-9][0-9]{0,9}")


def is_valid_name(name: object) -> bool:
    """Whether ``name`` may name a local key."""
    return isinstance(name, str) and _NAME.fullmatch(name) is not None


def check_name(name: object) -> str:
    """Return ``name`` if it may name a local key, else raise :class:`ConfigError`."""
    if not is_valid_name(name):
        shown = repr(name) if isinstance(name, str) else type(name).__name__
        raise ConfigError(f"invalid local key name {shown:.140}: use {NAME_RULE}")
    assert isinstance(name, str)
    return name


def parse_version(text: str) -> int | None:
    """Parse a decimal version number; ``None`` if ``text`` is not one."""
    if _VERSION.fullmatch(text) is None:
        return None
    return int(text)


@functools.lru_cache(maxsize=1024)
def key_ref(name: str, version: int | None = None) -> KeyRef:
    """The reference of a local key, pinned to ``version`` if given (immutable, so shared)."""
    return KeyRef(scheme=SCHEME, key_id=name, version=None if version is None else str(version))


def key_uri(name: str, version: int | None = None) -> str:
    """The URI of a local key, pinned to ``version`` if given."""
    return key_ref(name, version).uri


@functools.lru_cache(maxsize=1024)
def parse_ref(key: KeyRef | str) -> tuple[str, int | None]:
    """Split a local key reference into its name and pinned version (``None``: current).

    Raises :class:`ConfigError` for another scheme, an invalid name, query
    parameters other than ``version``, or a version that is not a number.
    """
    ref = KeyRef.parse(key)
    if ref.scheme != SCHEME:
        raise ConfigError(
            f"{ref.uri} is not a local key: the local provider serves {SCHEME}://NAME URIs"
        )
    if ref.params:
        names = ", ".join(name for name, _ in ref.params)
        raise ConfigError(
            f"local key URIs take no parameters other than 'version' (got {names} in {ref.uri})"
        )
    name = check_name(ref.key_id)
    if ref.version is None:
        return name, None
    version = parse_version(ref.version)
    if version is None:
        raise ConfigError(
            f"invalid version {ref.version!r} in {ref.uri}: local key versions are "
            "whole numbers counting from 1"
        )
    return name, version
