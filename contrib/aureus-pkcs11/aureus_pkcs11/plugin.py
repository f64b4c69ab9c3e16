"""The pluggy plugin: registers the ``pkcs11`` key provider and the ``pin-file`` credential source.

Loaded through the entry point ``pkcs11 = "aureus_pkcs11.plugin"`` in the
``aureus`` group, exactly as any third-party plugin.  Provider options
(``[providers.pkcs11]``):

- ``module``: path of the vendor's PKCS#11 library (else ``$AUREUS_PKCS11_MODULE``);
- ``token`` (label), ``serial`` or ``slot``: which token (else
  ``$AUREUS_PKCS11_TOKEN``, else the only token the module shows);
- ``sessions``: the session pool's size (default 4); ``retries``: reconnect
  attempts before :class:`~aureus_core.errors.ProviderUnavailable` (default 3).

The user PIN comes from the provider's credential source (value ``pin``), else
from ``$AUREUS_PKCS11_PIN``; never from the configuration file itself, so the
``static`` source is refused.

Importing this module looks for python-pkcs11 (without it the plugin is
unavailable, with the reason) but imports it, and the provider, only when a
``pkcs11`` provider is built: a command that uses another provider does not
pay for them.
"""

from __future__ import annotations

import importlib.util
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aureus_core.errors import ConfigError, CredentialError
from aureus_core.hookspecs import hookimpl
from aureus_core.interfaces import Credentials, CredentialSource, ProviderSettings
from aureus_core.registry import CredentialSourceRegistry, KeyProviderRegistry
from aureus_core.sensitive import Secret

from .naming import SCHEME

if TYPE_CHECKING:
    from .provider import Pkcs11KeyProvider

if importlib.util.find_spec("pkcs11") is None:  # the plugin is unavailable, and says why
    raise ModuleNotFoundError("No module named 'pkcs11'", name="pkcs11")

MODULE_ENV = "AUREUS_PKCS11_MODULE"
TOKEN_ENV = "AUREUS_PKCS11_TOKEN"  # noqa: S105 - a variable name, not a secret
PIN_ENV = "AUREUS_PKCS11_PIN"
OPTIONS = ("module", "token", "serial", "slot", "sessions", "retries")


@hookimpl
def aureus_register_key_providers(registry: KeyProviderRegistry) -> None:
    """Register the ``pkcs11`` scheme."""
    registry.register(
        SCHEME,
        create_provider,
        description=(
            "PKCS#11 HSMs and tokens: AES-256-GCM wrapping, Ed25519, ECDSA and RSA-PSS "
            "signing on the token"
        ),
    )


@hookimpl
def aureus_register_credential_sources(registry: CredentialSourceRegistry) -> None:
    """Register the ``pin-file`` credential source."""
    registry.register("pin-file", PinFileSource.from_options, description="a PIN read from a file")


def create_provider(settings: ProviderSettings) -> Pkcs11KeyProvider:
    """Build the provider from its options, the environment and its credential source."""
    from .provider import Pkcs11KeyProvider
    from .session import SessionPool, TokenSelector

    unknown = sorted(set(settings.options) - set(OPTIONS))
    if unknown:
        raise ConfigError(
            f"unknown option(s) for the pkcs11 provider: {', '.join(unknown)}; "
            f"it accepts {', '.join(OPTIONS)}"
        )
    module = settings.option("module") or os.environ.get(MODULE_ENV)
    if not isinstance(module, str) or not module:
        raise ConfigError(
            "the pkcs11 provider needs the path of the token's PKCS#11 library: set the "
            f"'module' option or {MODULE_ENV} (SoftHSM2 on Debian: "
            "/usr/lib/softhsm/libsofthsm2.so)"
        )
    selector = TokenSelector(
        module=module,
        label=_text(settings, "token") or os.environ.get(TOKEN_ENV) or None,
        serial=_text(settings, "serial"),
        slot=_number(settings, "slot", None),
    )
    pool = SessionPool(
        selector,
        user_pin(settings.credentials),
        size=_number(settings, "sessions", 4) or 4,
        retries=_number(settings, "retries", 3) or 0,
    )
    try:
        return Pkcs11KeyProvider(pool)
    except BaseException:
        pool.close()
        raise


def user_pin(credentials: CredentialSource | None) -> Secret[str] | None:
    """The user PIN from the credential source (value ``pin``), else ``$AUREUS_PKCS11_PIN``."""
    if credentials is None:
        from_env = os.environ.get(PIN_ENV)
        return Secret(from_env) if from_env else None
    supplied = credentials.get_credentials()
    if supplied.kind == "static":
        raise CredentialError(
            "the pkcs11 provider does not take its PIN from the configuration file (a "
            "'static' credential source): use 'env', 'pin-file' or another source"
        )
    value = supplied.values.get("pin")
    if value is None:
        raise CredentialError(
            f"credential source {credentials.name!r} gave the pkcs11 provider no 'pin' value"
        )
    revealed = value.reveal() if isinstance(value, Secret) else value
    if not isinstance(revealed, str) or not revealed:
        raise CredentialError(f"the 'pin' from credential source {credentials.name!r} is empty")
    return Secret(revealed)


class PinFileSource:
    """Reads the PIN (value ``pin``) from a file that only its owner may read.

    Options: ``path``.  Trailing newlines are dropped.  A file readable or
    writable by group or others is refused, as ``ssh`` refuses such a key.
    """

    name = "pin-file"

    def __init__(self, path: Path) -> None:
        self._path = path

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> PinFileSource:
        """Build from ``[credentials.NAME]`` options: ``path``."""
        unknown = sorted(set(options) - {"source", "path"})
        if unknown:
            raise ConfigError(f"unknown option(s) for pin-file: {', '.join(unknown)}")
        path = options.get("path")
        if not isinstance(path, str) or not path:
            raise ConfigError("the pin-file credential source needs 'path', the PIN file")
        return cls(Path(path).expanduser())

    def get_credentials(self) -> Credentials:
        """The PIN in the file, as ``pin``."""
        try:
            mode = self._path.stat().st_mode
            text = self._path.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as error:
            raise CredentialError(
                f"cannot read the PIN file {self._path}: {error.strerror}"
            ) from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise CredentialError(
                f"the PIN file {self._path} is open to group or others: chmod 600 it"
            )
        if not text:
            raise CredentialError(f"the PIN file {self._path} is empty")
        return Credentials(kind=self.name, values={"pin": Secret(text)})

    def __repr__(self) -> str:
        return f"PinFileSource(path={str(self._path)!r})"


def _text(settings: ProviderSettings, name: str) -> str | None:
    value = settings.option(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"the pkcs11 provider's {name!r} option must be a non-empty string")
    return value


def _number(settings: ProviderSettings, name: str, default: int | None) -> int | None:
    value = settings.option(name, default)
    if value is None:
        return None
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise ConfigError(f"the pkcs11 provider's {name!r} option must be a whole number")
