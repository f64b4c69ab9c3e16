"""boto3 sessions and per-region KMS clients for the provider.

Credentials come from the configured credential source: its
``botocore_credentials()`` (the AWS sources return refreshable botocore
credentials), else the ``access_key_id`` / ``secret_access_key`` /
``session_token`` values of its generic ``get_credentials()``, else boto3's
default chain.
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import (
    CredentialProvider,
    RefreshableCredentials,
)
from botocore.credentials import (
    Credentials as BotoCredentials,
)

from aureus_core.errors import ConfigError, CredentialError
from aureus_core.interfaces import CredentialSource
from aureus_core.sensitive import Secret

from .options import AwsKmsOptions


class _SourceCredentialProvider(CredentialProvider):  # type: ignore[misc]
    """Feeds a credential source into botocore's credential resolver."""

    METHOD = "aureus-credential-source"
    CANONICAL_NAME = "AureusCredentialSource"

    def __init__(self, source: CredentialSource) -> None:
        super().__init__()
        self._source = source

    def load(self) -> Any:
        maker = getattr(self._source, "botocore_credentials", None)
        if callable(maker):
            return maker()
        return generic_credentials(self._source)


def _reveal(value: object, name: str, source: CredentialSource) -> str | None:
    if value is None:
        return None
    revealed = value.reveal() if isinstance(value, Secret) else value
    if not isinstance(revealed, str) or not revealed:
        raise CredentialError(
            f"credential source {source.name!r} gave aws-kms an empty or non-text {name!r}"
        )
    return revealed


def _fetch(source: CredentialSource) -> dict[str, Any]:
    credentials = source.get_credentials()
    if credentials.kind != "aws":
        raise CredentialError(
            f"credential source {source.name!r} gives {credentials.kind!r} credentials; "
            "aws-kms needs kind 'aws' (access_key_id, secret_access_key, session_token)"
        )
    values = credentials.values
    access = _reveal(values.get("access_key_id"), "access_key_id", source)
    secret = _reveal(values.get("secret_access_key"), "secret_access_key", source)
    if access is None or secret is None:
        raise CredentialError(
            f"credential source {source.name!r} gave aws-kms no access_key_id or secret_access_key"
        )
    return {
        "access_key": access,
        "secret_key": secret,
        "token": _reveal(values.get("session_token"), "session_token", source),
        "expiry_time": credentials.expires_at.isoformat() if credentials.expires_at else None,
    }


def generic_credentials(source: CredentialSource) -> BotoCredentials:
    """Credentials for botocore from a generic source; refreshed before they expire."""
    first = _fetch(source)
    if first["expiry_time"] is None:
        return BotoCredentials(
            first["access_key"],
            first["secret_key"],
            first["token"],
            method=_SourceCredentialProvider.METHOD,
        )
    return RefreshableCredentials.create_from_metadata(
        metadata=first,
        refresh_using=lambda: _fetch(source),
        method=_SourceCredentialProvider.METHOD,
    )


def make_session(source: CredentialSource | None, region: str | None) -> boto3.Session:
    """A boto3 session using ``source`` (or boto3's default chain when ``None``)."""
    core = botocore.session.get_session()
    if source is not None:
        resolver = core.get_component("credential_provider")
        resolver.insert_before("env", _SourceCredentialProvider(source))
    return boto3.Session(botocore_session=core, region_name=region)


def client_config(options: AwsKmsOptions) -> Config:
    """Retries and timeouts from the options."""
    return Config(
        retries={"mode": options.retry_mode, "max_attempts": options.max_attempts},
        connect_timeout=options.connect_timeout,
        read_timeout=options.read_timeout,
    )


class KmsClients:
    """One KMS client per region, created on first use; clients are thread-safe."""

    def __init__(self, session: boto3.Session, options: AwsKmsOptions) -> None:
        self._session = session
        self._options = options
        self._config = client_config(options)
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()
        region = options.region or session.region_name
        self.default_region: str | None = region

    def region(self, region: str | None = None) -> str:
        """``region``, else the default region, else a :class:`ConfigError`."""
        chosen = region or self.default_region
        if not chosen:
            raise ConfigError(
                "no AWS region for aws-kms: set the provider option region, AWS_DEFAULT_REGION, "
                "or name the key by ARN"
            )
        return chosen

    def get(self, region: str | None = None) -> Any:
        """The KMS client for ``region`` (default: the provider's region)."""
        name = self.region(region)
        client = self._clients.get(name)
        if client is not None:
            return client
        with self._lock:
            client = self._clients.get(name)
            if client is None:
                client = self._session.client(
                    "kms",
                    region_name=name,
                    endpoint_url=self._options.endpoint_url,
                    config=self._config,
                )
                self._clients[name] = client
            return client

    def close(self) -> None:
        """Close every client's connection pool."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()
