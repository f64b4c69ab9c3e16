"""Validated access to a credential source's options, shared by the credential plugins.

Messages name the source and the option, never the value: credential options
can be secrets.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from typing import Any

from .errors import ConfigError


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


__all__ = ["SourceOptions"]
