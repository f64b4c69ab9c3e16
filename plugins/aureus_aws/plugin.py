"""The pluggy plugin: the ``aws-kms`` key provider and the AWS credential sources.

Loaded through the entry point ``aws = "aureus_aws.plugin [aws]"``.  Importing
it registers names only: boto3 is imported when an ``aws-kms`` provider or an
AWS credential source is first built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aureus_core.hookspecs import hookimpl
from aureus_core.interfaces import ProviderSettings
from aureus_core.registry import CredentialSourceRegistry, KeyProviderRegistry

from .naming import SCHEME

if TYPE_CHECKING:
    from .provider import AwsKmsProvider


@hookimpl
def aureus_register_key_providers(registry: KeyProviderRegistry) -> None:
    """Register the ``aws-kms`` scheme."""
    registry.register(
        SCHEME,
        create_provider,
        description="AWS KMS: wrapping (Encryption SDK compatible), ECDSA/RSA-PSS signing, "
        "multi-Region keys, CloudHSM key stores",
    )


@hookimpl
def aureus_register_credential_sources(registry: CredentialSourceRegistry) -> None:
    """Register the AWS credential sources (static/env/default chain, web identity, roles)."""
    from .credentials import register

    register(registry)


def create_provider(settings: ProviderSettings) -> AwsKmsProvider:
    """Build the provider from its options and, if configured, its credential source."""
    from .options import AwsKmsOptions
    from .provider import AwsKmsProvider
    from .session import make_session

    options = AwsKmsOptions.from_mapping(settings.options)
    session = make_session(settings.credentials, options.region)
    return AwsKmsProvider(options, session=session)
