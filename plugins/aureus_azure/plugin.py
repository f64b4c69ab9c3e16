"""The pluggy plugin: the ``azure-kv`` key provider and the azure credential sources.

Loaded through the entry point ``azure = "aureus_azure.plugin [azure]"``.  Importing
it registers names only: the Azure SDK is imported when an ``azure-kv``
provider or an ``azure-*`` credential source is first needed.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from aureus_core.errors import ConfigError, CredentialError
from aureus_core.hookspecs import hookimpl
from aureus_core.interfaces import CredentialSource, ProviderSettings
from aureus_core.registry import CredentialSourceRegistry, KeyProviderRegistry

from .naming import SCHEME

if TYPE_CHECKING:
    from azure.core.credentials import AccessToken, TokenCredential

    from .provider import AzureKeyVaultProvider

_FLOATS = (
    "retry_backoff_factor",
    "retry_backoff_max",
    "connection_timeout",
    "read_timeout",
    "public_key_ttl",
)
MAX_SECONDS = 86400.0
OPTIONS = (
    "vault",
    "endpoints",
    "connection_verify",
    "verify_challenge_resource",
    "retry_total",
    "discovery",
    "managed_hsm",
    *_FLOATS,
)


@hookimpl
def aureus_register_key_providers(registry: KeyProviderRegistry) -> None:
    """Register the ``azure-kv`` scheme."""
    registry.register(
        SCHEME,
        create_provider,
        description="Azure Key Vault / Managed HSM: RSA-OAEP-256 and A256KW wrapping, "
        "ES256/ES384/PS256/RS256 signing",
    )


@hookimpl
def aureus_register_credential_sources(registry: CredentialSourceRegistry) -> None:
    """Register the four ``azure-*`` credential sources."""
    from .credentials import SOURCES

    for name, (factory, description) in SOURCES.items():
        registry.register(name, factory, description=description)


def create_provider(settings: ProviderSettings) -> AzureKeyVaultProvider:
    """Build the provider from ``[providers.azure-kv]`` options and its credentials.

    The credentials are the source's ``azure_credential()`` when it has one
    (the azure sources do), else a bearer token from its ``token`` value;
    with no credentials, azure-identity's DefaultAzureCredential.
    """
    from .provider import AzureKeyVaultProvider, VaultDiscovery

    options = dict(settings.options)
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ConfigError(
            f"unknown option(s) for the {SCHEME} provider: {', '.join(unknown)}; "
            f"it accepts {', '.join(OPTIONS)}"
        )
    kwargs: dict[str, Any] = {}
    vault = options.get("vault")
    if vault is not None:
        kwargs["vault"] = _typed("vault", vault, str)
    endpoints = options.get("endpoints")
    if endpoints is not None:
        if not isinstance(endpoints, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in endpoints.items()
        ):
            raise ConfigError(f"the {SCHEME} option 'endpoints' must map vault hosts to URLs")
        kwargs["endpoints"] = dict(endpoints)
    if "connection_verify" in options:
        kwargs["connection_verify"] = _typed(
            "connection_verify", options["connection_verify"], (str, bool)
        )
    if "verify_challenge_resource" in options:
        kwargs["verify_challenge_resource"] = _typed(
            "verify_challenge_resource", options["verify_challenge_resource"], bool
        )
    if "retry_total" in options:
        total = options["retry_total"]
        if isinstance(total, bool) or not isinstance(total, int) or total < 0:
            raise ConfigError(f"the {SCHEME} option 'retry_total' must be a whole number >= 0")
        kwargs["retry_total"] = total
    for name in _FLOATS:
        if name in options:
            value = options[name]
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not 0 <= value <= MAX_SECONDS
            ):
                raise ConfigError(
                    f"the {SCHEME} option {name!r} must be a number from 0 to {MAX_SECONDS:g}"
                )
            kwargs[name] = float(value)
    if "managed_hsm" in options:
        kwargs["managed_hsm"] = _typed("managed_hsm", options["managed_hsm"], bool)
    if "discovery" in options:
        kwargs["discovery"] = VaultDiscovery.from_options(options["discovery"])
    if settings.credentials is not None:
        kwargs["credential"] = token_credential(settings.credentials)
    return AzureKeyVaultProvider(**kwargs)


def _typed(name: str, value: object, kinds: type | tuple[type, ...]) -> Any:
    if not isinstance(value, kinds) or value == "":
        raise ConfigError(f"the {SCHEME} option {name!r} has the wrong type or is empty")
    return value


def token_credential(source: CredentialSource) -> TokenCredential:
    """An azure ``TokenCredential`` from any credential source."""
    getter = getattr(source, "azure_credential", None)
    if callable(getter):
        credential: TokenCredential = getter()
        return credential
    return _SourceTokenCredential(source)


class _SourceTokenCredential:
    """Adapts a generic source whose credentials hold a bearer ``token`` value."""

    def __init__(self, source: CredentialSource) -> None:
        self._source = source

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        credentials = self._source.get_credentials()
        token = credentials.values.get("token")
        if token is None:
            raise CredentialError(
                f"credential source {self._source.name!r} gave the {SCHEME} provider no "
                "'token' value: use an azure-* credential source"
            )
        from azure.core.credentials import AccessToken

        # A token of unknown lifetime is asked for again after five minutes.
        expires = credentials.expires_at or datetime.now(timezone.utc) + timedelta(minutes=5)
        return AccessToken(str(token.reveal()), int(expires.timestamp()))

    def __repr__(self) -> str:
        return f"_SourceTokenCredential(source={self._source.name!r})"
