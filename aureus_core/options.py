"""Validated access to a plugin's options, for the factories of any plugin kind.

:class:`Options` checks the options mapping a cache backend, audit sink or
credential source factory receives; :class:`SourceOptions` adds environment
variable fallbacks for credential sources.  Messages name the plugin and the
option, never the value: options can be secrets.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from typing import Any

from .errors import ConfigError


class Options:
    """Typed, validated access to one plugin's options.

    ``what`` names the plugin in messages (e.g. ``"the memory cache backend"``).
    Messages name options and expected types, never option values, since some
    options (static credentials) are secrets.
    """

    def __init__(self, what: str, options: Mapping[str, Any], allowed: Collection[str]) -> None:
        if not isinstance(options, Mapping):
            raise ConfigError(f"the options of {what} must be a table/mapping")
        unknown = sorted(str(name) for name in options if name not in allowed)
        if unknown:
            accepted = ", ".join(sorted(allowed)) or "no options"
            raise ConfigError(
                f"unknown option(s) for {what}: {', '.join(unknown)}; it accepts {accepted}"
            )
        self._what = what
        self._options = options

    def _fail(self, name: str, expected: str, value: object) -> ConfigError:
        return ConfigError(
            f"option {name!r} of {self._what} must be {expected}, not {type(value).__name__}"
        )

    def positive_int(self, name: str, default: int) -> int:
        """A whole number of at least 1."""
        return positive_int(self._what, name, self._options.get(name, default))

    def string(self, name: str, default: str) -> str:
        """A non-empty string."""
        value = self._options.get(name, default)
        if not isinstance(value, str):
            raise self._fail(name, "a string", value)
        if not value:
            raise ConfigError(f"option {name!r} of {self._what} may not be empty")
        return value

    def raw(self, name: str, default: object) -> object:
        """The value as given, for options with a validation of their own."""
        return self._options.get(name, default)

    def string_map(self, name: str, *, values: str = "strings") -> dict[str, str]:
        """A required, non-empty mapping of non-empty names to strings.

        ``values`` describes the values in messages (e.g. "environment variable names").
        """
        if name not in self._options:
            raise ConfigError(f"{self._what} needs the option {name!r}")
        value = self._options[name]
        if not isinstance(value, Mapping):
            raise self._fail(name, f"a table of names to {values}", value)
        if not value:
            raise ConfigError(f"option {name!r} of {self._what} may not be empty")
        result: dict[str, str] = {}
        for key, item in value.items():
            if not isinstance(key, str) or not key:
                raise ConfigError(
                    f"option {name!r} of {self._what} has an empty or non-string name"
                )
            if not isinstance(item, str):
                raise ConfigError(
                    f"option {name!r} of {self._what}: the value of {key!r} must be a string, "
                    f"not {type(item).__name__}"
                )
            result[key] = item
        return result


def positive_int(what: str, name: str, value: object) -> int:
    """``value`` if it is a whole number of at least 1, else a :class:`ConfigError`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(
            f"option {name!r} of {what} must be a whole number, not {type(value).__name__}"
        )
    if value < 1:
        raise ConfigError(f"option {name!r} of {what} must be at least 1, not {value}")
    return value


class SourceOptions:
    """The options of one credential source, checked against the names it accepts."""

    def __init__(self, source: str, options: Mapping[str, Any], allowed: Collection[str]) -> None:
        if not isinstance(options, Mapping):
            raise ConfigError(f"the options of credential source {source!r} must be a table")
        accepted = set(allowed)
        unknown = sorted(str(name) for name in options if name not in accepted)
        if unknown:
            raise ConfigError(
                f"unknown option(s) for credential source {source!r}: {', '.join(unknown)}; "
                f"it accepts {', '.join(sorted(accepted))}"
            )
        self._source, self._options = source, options

    def string(self, name: str, env: str | None = None, *, required: bool = False) -> str | None:
        """A non-empty string option, else the variable ``env`` if set, else ``None``."""
        value = self._options.get(name)
        if value is None and env:
            value = os.environ.get(env) or None
        if value is not None and (not isinstance(value, str) or not value):
            raise ConfigError(
                f"option {name!r} of credential source {self._source!r} must be a non-empty string"
            )
        if value is None and required:
            where = f" (or set {env})" if env else ""
            raise ConfigError(
                f"credential source {self._source!r} needs the option {name!r}{where}"
            )
        return value

    def required(self, name: str, env: str | None = None) -> str:
        """A string option that must be given (or come from ``env``)."""
        value = self.string(name, env, required=True)
        assert value is not None
        return value

    def flag(self, name: str, default: bool = False) -> bool:
        """A true/false option."""
        value = self._options.get(name, default)
        if not isinstance(value, bool):
            raise ConfigError(
                f"option {name!r} of credential source {self._source!r} must be true or false"
            )
        return value


__all__ = ["Options", "SourceOptions", "positive_int"]
