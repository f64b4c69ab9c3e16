"""Validation of the options mapping a builtin factory receives."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from aureus_core.errors import ConfigError


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
