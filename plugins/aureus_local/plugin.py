"""The pluggy plugin: registers the ``local`` key provider scheme.

Loaded through the entry point ``local = "aureus_local.plugin"`` in the
``aureus`` group.  :func:`create_provider` turns provider settings (options,
environment, credentials) into a :class:`LocalKeyProvider`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import platformdirs

from aureus_core.errors import ConfigError, CredentialError
from aureus_core.hookspecs import hookimpl
from aureus_core.interfaces import CredentialSource, ProviderSettings
from aureus_core.registry import KeyProviderRegistry
from aureus_core.sensitive import Secret

from .keystore import DEFAULT_RECHECK_INTERVAL, PASSPHRASE_ENV
from .naming import SCHEME
from .provider import LocalKeyProvider
from .sealing import DEFAULT_SCRYPT_LOG_N

KEYSTORE_ENV = "AUREUS_KEYSTORE"
OPTIONS = (
    "keystore",
    "scrypt_log_n",
    "insecure_kdf_for_tests",
    "keystore_id",
    "keystore_fingerprint",
    "min_generation",
    "state_file",
    "accept_high_s",
    "recheck_interval",
)


@hookimpl
def aureus_register_key_providers(registry: KeyProviderRegistry) -> None:
    """Register the ``local`` scheme."""
    registry.register(
        SCHEME,
        create_provider,
        description="local keystore directory: AES-256 wrapping, Ed25519 and ECDSA P-256 signing",
    )


def create_provider(settings: ProviderSettings) -> LocalKeyProvider:
    """Build the local provider from its settings.

    The keystore directory is the ``keystore`` option, else ``$AUREUS_KEYSTORE``,
    else ``<user data dir>/aureus/keystore``.  The passphrase comes from the
    configured credentials (value ``passphrase``), else from a non-empty
    ``$AUREUS_KEYSTORE_PASSPHRASE``; with neither, the keystore uses a key file.
    """
    unknown = sorted(set(settings.options) - set(OPTIONS))
    if unknown:
        raise ConfigError(
            f"unknown option(s) for the local provider: {', '.join(unknown)}; "
            f"it accepts {', '.join(OPTIONS)}"
        )
    return LocalKeyProvider(
        keystore_directory(settings.options),
        passphrase=passphrase(settings.credentials),
        passphrase_source=passphrase_source(settings.credentials),
        scrypt_log_n=_whole(settings.option("scrypt_log_n", DEFAULT_SCRYPT_LOG_N), "scrypt_log_n"),
        insecure_kdf_for_tests=_flag(settings.options, "insecure_kdf_for_tests"),
        keystore_id=_text(settings.options, "keystore_id"),
        fingerprint=_text(settings.options, "keystore_fingerprint"),
        min_generation=_whole(settings.option("min_generation", 0), "min_generation"),
        state_file=_path(settings.options, "state_file"),
        accept_high_s=_flag(settings.options, "accept_high_s"),
        recheck_interval=_seconds(
            settings.option("recheck_interval", DEFAULT_RECHECK_INTERVAL), "recheck_interval"
        ),
    )


def keystore_directory(options: Mapping[str, Any]) -> Path:
    """The keystore directory the options and environment select."""
    configured = options.get("keystore")
    if configured is not None:
        if not isinstance(configured, (str, os.PathLike)) or not os.fspath(configured):
            raise ConfigError("the local provider's 'keystore' option must be a directory path")
        return Path(configured).expanduser()
    from_env = os.environ.get(KEYSTORE_ENV)
    if from_env:
        return Path(from_env).expanduser()
    return Path(platformdirs.user_data_dir("aureus")) / "keystore"


def passphrase(credentials: CredentialSource | None) -> Secret[str] | None:
    """The keystore passphrase from credentials or the environment, if any."""
    if credentials is None:
        from_env = os.environ.get(PASSPHRASE_ENV)
        return Secret(from_env) if from_env else None
    value = credentials.get_credentials().values.get("passphrase")
    if value is None:
        raise CredentialError(
            f"credential source {credentials.name!r} gave the local provider no 'passphrase' "
            "value: add one, or remove the credentials to use a key file"
        )
    revealed = value.reveal() if isinstance(value, Secret) else value
    if not isinstance(revealed, str) or not revealed:
        raise CredentialError(
            f"the 'passphrase' from credential source {credentials.name!r} must be a "
            "non-empty string"
        )
    return value if isinstance(value, Secret) else Secret(revealed)


def passphrase_source(credentials: CredentialSource | None) -> str:
    """Name where the passphrase comes from, for error messages (never the value)."""
    if credentials is None:
        return f"the environment variable {PASSPHRASE_ENV}"
    variables = getattr(credentials, "variables", None)
    if isinstance(variables, Mapping) and isinstance(variables.get("passphrase"), str):
        return (
            f"the environment variable {variables['passphrase']} "
            f"(credential source {credentials.name!r})"
        )
    return f"the 'passphrase' of credential source {credentials.name!r}"


def _whole(value: object, option: str) -> int:
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ConfigError(f"the local provider's {option!r} must be a whole number, not {value!r}")


def _seconds(value: object, option: str) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise ConfigError(f"the local provider's {option!r} must be a number of seconds, not {value!r}")


def _flag(options: Mapping[str, Any], option: str) -> bool:
    value = options.get(option, False)
    if not isinstance(value, bool):
        raise ConfigError(f"the local provider's {option!r} must be true or false, not {value!r}")
    return value


def _text(options: Mapping[str, Any], option: str) -> str | None:
    value = options.get(option)
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"the local provider's {option!r} must be a string, not {value!r}")
    return value


def _path(options: Mapping[str, Any], option: str) -> Path | None:
    value = options.get(option)
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
        raise ConfigError(f"the local provider's {option!r} must be a file path")
    return Path(value).expanduser()
