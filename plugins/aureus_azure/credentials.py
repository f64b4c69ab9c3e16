"""Credential sources built on azure-identity.

``azure-default`` (DefaultAzureCredential), ``azure-workload-identity`` (a
federated OIDC token file, as Kubernetes projects it), ``azure-client-secret``
and ``azure-managed-identity`` (with an explicit client ID).  Each hands the
provider an azure ``TokenCredential`` through :meth:`AzureCredentialSource.azure_credential`,
and anyone else generic :class:`~aureus_core.interfaces.Credentials` of kind
``azure``: a bearer token for ``scope`` (in :class:`Secret`) and its expiry.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError

from aureus_core.errors import ConfigError, CredentialError
from aureus_core.interfaces import Credentials
from aureus_core.options import SourceOptions
from aureus_core.sensitive import Secret

KIND = "azure"
VAULT_SCOPE = "https://vault.azure.net/.default"
"""The default scope: Azure Key Vault (Managed HSM uses https://managedhsm.azure.net/.default)."""
_COMMON = ("scope", "authority", "connection_verify", "disable_instance_discovery")
_DEFAULT_EXCLUDES = (
    "environment",
    "workload-identity",
    "managed-identity",
    "shared-token-cache",
    "cli",
    "developer-cli",
    "powershell",
    "visual-studio-code",
    "interactive-browser",
)


class AzureCredentialSource:
    """A credential source around one azure-identity credential, built on first use."""

    def __init__(
        self,
        name: str,
        factory: Callable[[], TokenCredential],
        *,
        scope: str = VAULT_SCOPE,
        principal: str | None = None,
    ) -> None:
        self.name = name
        self._factory = factory
        self._scope = scope
        self._principal = principal
        self._credential: TokenCredential | None = None
        self._lock = threading.Lock()

    def azure_credential(self) -> TokenCredential:
        """The azure ``TokenCredential`` the ``azure-kv`` provider authenticates with."""
        with self._lock:
            if self._credential is None:
                try:
                    self._credential = self._factory()
                except (ValueError, TypeError) as error:
                    raise ConfigError(
                        f"credential source {self.name!r} is misconfigured: {error}"
                    ) from None
            return self._credential

    def get_credentials(self) -> Credentials:
        """A bearer token for ``scope`` (azure-identity caches and refreshes it)."""
        credential = self.azure_credential()
        try:
            token = credential.get_token(self._scope)
        except AzureError as error:
            lines = str(error).strip().splitlines()
            reason = lines[0][:300] if lines else type(error).__name__
            raise CredentialError(
                f"credential source {self.name!r} could not get a token for {self._scope}: {reason}"
            ) from None
        return Credentials(
            kind=KIND,
            values={"token": Secret(token.token)},
            expires_at=datetime.fromtimestamp(token.expires_on, timezone.utc),
            principal=self._principal,
        )

    def close(self) -> None:
        """Close the underlying credential's transport, if it was built."""
        with self._lock:
            credential, self._credential = self._credential, None
        close = getattr(credential, "close", None)
        if callable(close):
            close()

    def __repr__(self) -> str:
        return f"AzureCredentialSource(name={self.name!r}, principal={self._principal!r})"


class _Reader(SourceOptions):
    """A source's options, plus the ones every azure-identity credential takes."""

    def __init__(self, source: str, options: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
        super().__init__(source, options, (*allowed, *_COMMON))

    def common(self) -> tuple[str, dict[str, Any]]:
        """The scope, and keyword arguments every azure-identity credential takes."""
        kwargs: dict[str, Any] = {}
        authority = self.string("authority")
        if authority:
            kwargs["authority"] = authority
        verify = self._options.get("connection_verify")
        if verify is not None:
            if not isinstance(verify, (str, bool)):
                raise ConfigError(
                    f"option 'connection_verify' of credential source {self._source!r} must be "
                    "a CA file path or true/false"
                )
            kwargs["connection_verify"] = verify
        if self.flag("disable_instance_discovery"):
            kwargs["disable_instance_discovery"] = True
        return self.string("scope") or VAULT_SCOPE, kwargs


def default_source(options: Mapping[str, Any]) -> AzureCredentialSource:
    """``azure-default``: DefaultAzureCredential; ``exclude`` lists chain members to skip."""
    reader = _Reader(
        "azure-default", options, ("tenant_id", "managed_identity_client_id", "exclude")
    )
    scope, kwargs = reader.common()
    tenant = reader.string("tenant_id")
    client_id = reader.string("managed_identity_client_id")
    exclude = options.get("exclude", [])
    if not isinstance(exclude, (list, tuple)) or any(e not in _DEFAULT_EXCLUDES for e in exclude):
        raise ConfigError(
            "option 'exclude' of credential source 'azure-default' must list some of: "
            + ", ".join(_DEFAULT_EXCLUDES)
        )
    for member in exclude:
        kwargs[f"exclude_{member.replace('-', '_')}_credential"] = True
    if tenant:
        kwargs["tenant_id"] = tenant
    if client_id:
        kwargs["managed_identity_client_id"] = client_id

    def build() -> TokenCredential:
        from azure.identity import DefaultAzureCredential

        return DefaultAzureCredential(**kwargs)

    return AzureCredentialSource("azure-default", build, scope=scope, principal=client_id)


MAX_TOKEN_BYTES = 64 * 1024
"""The most of a federated token file read: a JWT is a few KiB."""


def workload_identity_source(options: Mapping[str, Any]) -> AzureCredentialSource:
    """``azure-workload-identity``: a federated token file exchanged for an Entra token.

    ``tenant_id``, ``client_id`` and ``token_file`` default to the variables the
    AKS workload identity webhook sets (``AZURE_TENANT_ID``, ``AZURE_CLIENT_ID``,
    ``AZURE_FEDERATED_TOKEN_FILE``).  The file is re-read for every token
    request, so a rotated projected token is picked up at once.
    """
    reader = _Reader(
        "azure-workload-identity",
        options,
        ("tenant_id", "client_id", "token_file"),
    )
    scope, kwargs = reader.common()
    tenant = reader.string("tenant_id", "AZURE_TENANT_ID", required=True)
    client_id = reader.string("client_id", "AZURE_CLIENT_ID", required=True)
    token_file = reader.string("token_file", "AZURE_FEDERATED_TOKEN_FILE", required=True)
    assert tenant
    assert client_id
    assert token_file

    def read_token() -> str:
        try:
            with Path(token_file).open("rb") as handle:
                data = handle.read(MAX_TOKEN_BYTES + 1)
        except OSError as error:
            raise CredentialError(
                f"credential source 'azure-workload-identity' cannot read its token file "
                f"{token_file}: {error.strerror}"
            ) from None
        if len(data) > MAX_TOKEN_BYTES:  # read at most this much, whatever the file holds
            raise CredentialError(
                f"credential source 'azure-workload-identity': its token file {token_file} is "
                f"larger than {MAX_TOKEN_BYTES} bytes, so it is not a token: point token_file "
                "(or AZURE_FEDERATED_TOKEN_FILE) at the projected service account token"
            )
        try:
            return data.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise CredentialError(
                f"credential source 'azure-workload-identity': its token file {token_file} "
                "is not text, so it is not a token"
            ) from None

    def build() -> TokenCredential:
        from azure.identity import ClientAssertionCredential

        return ClientAssertionCredential(tenant, client_id, read_token, **kwargs)

    return AzureCredentialSource("azure-workload-identity", build, scope=scope, principal=client_id)


def client_secret_source(options: Mapping[str, Any]) -> AzureCredentialSource:
    """``azure-client-secret``: a service principal's secret, read from ``client_secret_env``.

    The secret comes from the environment variable ``client_secret_env``
    names (default ``AZURE_CLIENT_SECRET``), so configuration files hold none.
    """
    reader = _Reader(
        "azure-client-secret",
        options,
        ("tenant_id", "client_id", "client_secret_env"),
    )
    scope, kwargs = reader.common()
    tenant = reader.string("tenant_id", "AZURE_TENANT_ID", required=True)
    client_id = reader.string("client_id", "AZURE_CLIENT_ID", required=True)
    variable = reader.string("client_secret_env") or "AZURE_CLIENT_SECRET"
    assert tenant
    assert client_id

    def build() -> TokenCredential:
        from azure.identity import ClientSecretCredential

        secret = os.environ.get(variable)
        if not secret:
            raise CredentialError(
                f"credential source 'azure-client-secret' needs the client secret in the "
                f"environment variable {variable}, which is not set or empty"
            )
        return ClientSecretCredential(tenant, client_id, secret, **kwargs)

    return AzureCredentialSource("azure-client-secret", build, scope=scope, principal=client_id)


def managed_identity_source(options: Mapping[str, Any]) -> AzureCredentialSource:
    """``azure-managed-identity``: a user-assigned managed identity, named by ``client_id``."""
    reader = _Reader("azure-managed-identity", options, ("client_id",))
    scope, kwargs = reader.common()
    kwargs.pop("authority", None)
    kwargs.pop("disable_instance_discovery", None)
    client_id = reader.string("client_id", required=True)
    assert client_id

    def build() -> TokenCredential:
        from azure.identity import ManagedIdentityCredential

        return ManagedIdentityCredential(client_id=client_id, **kwargs)

    return AzureCredentialSource("azure-managed-identity", build, scope=scope, principal=client_id)


SOURCES: dict[str, tuple[Callable[[Mapping[str, Any]], AzureCredentialSource], str]] = {
    "azure-default": (default_source, "azure-identity DefaultAzureCredential chain"),
    "azure-workload-identity": (
        workload_identity_source,
        "Entra workload identity: federated token file, client ID and tenant",
    ),
    "azure-client-secret": (client_secret_source, "Entra service principal with a client secret"),
    "azure-managed-identity": (
        managed_identity_source,
        "user-assigned managed identity with an explicit client ID",
    ),
}
