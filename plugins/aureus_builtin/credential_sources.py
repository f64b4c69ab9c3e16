"""The ``env`` and ``static`` credential sources."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from aureus_core.errors import CredentialError
from aureus_core.interfaces import Credentials
from aureus_core.options import Options
from aureus_core.sensitive import Secret


class EnvCredentialSource:
    """Reads each credential value from an environment variable, on every call.

    ``variables`` maps a credential value name to the variable that holds it,
    e.g. ``{"passphrase": "AUREUS_KEYSTORE_PASSPHRASE"}``.  A variable that is
    unset or empty is a :class:`CredentialError` naming the variable.
    """

    name = "env"

    def __init__(
        self, variables: Mapping[str, str], *, environ: Mapping[str, str] | None = None
    ) -> None:
        self._variables = dict(variables)
        self._environ = os.environ if environ is None else environ

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> EnvCredentialSource:
        """Build from ``[credentials.NAME]`` options: ``variables``."""
        reader = Options("the env credential source", options, ("variables",))
        return cls(reader.string_map("variables", values="environment variable names"))

    @property
    def variables(self) -> dict[str, str]:
        """Credential value names to environment variable names."""
        return dict(self._variables)

    def get_credentials(self) -> Credentials:
        """The values of the variables, each wrapped in :class:`Secret`."""
        values: dict[str, Secret[str]] = {}
        missing = []
        for value_name, variable in self._variables.items():
            value = self._environ.get(variable)
            if value:
                values[value_name] = Secret(value)
            else:
                missing.append(f"{variable} (for {value_name!r})")
        if missing:
            raise CredentialError(
                f"environment variable(s) {', '.join(missing)} not set or empty: set them, "
                "or change the env credential source's 'variables'"
            )
        return Credentials(kind=self.name, values=values)

    def __repr__(self) -> str:
        return f"EnvCredentialSource(variables={self._variables!r})"


class StaticCredentialSource:
    """Hands out fixed values given in the configuration, wrapped in :class:`Secret`."""

    name = "static"

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = {key: Secret(value) for key, value in values.items()}

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> StaticCredentialSource:
        """Build from ``[credentials.NAME]`` options: ``values``."""
        reader = Options("the static credential source", options, ("values",))
        return cls(reader.string_map("values"))

    def get_credentials(self) -> Credentials:
        """The configured values."""
        return Credentials(kind=self.name, values=dict(self._values))

    def __repr__(self) -> str:
        return f"StaticCredentialSource(names={sorted(self._values)!r})"
