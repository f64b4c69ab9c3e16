"""The pluggy plugin: the ``gcp-kms`` key provider and the ``gcp-*`` credential sources.

Loaded through the entry point ``gcp = "aureus_gcp.plugin [gcp]"``.  Importing
it registers names only: the Google SDK is imported when a ``gcp-kms``
provider or a ``gcp-*`` credential source is first needed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aureus_core.hookspecs import hookimpl
from aureus_core.interfaces import ProviderSettings
from aureus_core.registry import CredentialSourceRegistry, KeyProviderRegistry

from .naming import SCHEME

if TYPE_CHECKING:
    from .provider import GcpKmsProvider


@hookimpl
def aureus_register_key_providers(registry: KeyProviderRegistry) -> None:
    """Register the ``gcp-kms`` scheme."""
    registry.register(
        SCHEME,
        create_provider,
        description="Google Cloud KMS: AES-256-GCM wrapping with the context as AAD, "
        "ECDSA/RSA/Ed25519 signing, versions and rotation, CRC32C-checked end to end",
    )


@hookimpl
def aureus_register_credential_sources(registry: CredentialSourceRegistry) -> None:
    """Register ``gcp-adc``, ``gcp-service-account`` and ``gcp-workload-identity``."""
    from .credentials import register

    register(registry)


def create_provider(settings: ProviderSettings) -> GcpKmsProvider:
    """Build the provider from ``[providers.gcp-kms]`` options and its credential source.

    The credentials are the source's ``google_credentials()`` when it has one
    (the ``gcp-*`` sources do), else a bearer token from its ``access_token``
    (or ``token``) value; with none, Application Default Credentials, looked
    up on the first call.
    """
    from .credentials import google_credentials_for
    from .options import GcpKmsOptions
    from .provider import GcpKmsProvider

    options = GcpKmsOptions.from_mapping(settings.options)
    credentials = (
        google_credentials_for(settings.credentials) if settings.credentials is not None else None
    )
    return GcpKmsProvider(options, credentials=credentials)
