"""Fixtures for the AWS plugin: one moto server per test session, over real HTTP.

moto stands in for AWS KMS and STS; its gaps (see DEVELOPERS.md) are filled by
the tests that need real behaviour, each saying so where it does.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from aureus_aws.testing import TEST_ENVIRONMENT, MotoServer


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """A moto server on 127.0.0.1 shared by the session (tests use unique key names)."""
    with MotoServer() as server:
        yield server


@pytest.fixture(autouse=True)
def aws_test_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Test credentials and region; no profile or config file from the machine leaks in."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in TEST_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def kms_client(moto_server: MotoServer) -> Any:
    """A plain boto3 KMS client on the moto server (for setting up and checking)."""
    return boto3.client("kms", region_name="us-east-1", endpoint_url=moto_server.url)


@pytest.fixture(scope="module")
def private_moto() -> Iterator[MotoServer]:
    """A moto server for one module alone, which its tests may reset."""
    with MotoServer() as server:
        yield server


@pytest.fixture
def make_provider(moto_server: MotoServer) -> Iterator[Any]:
    """Build AwsKmsProviders on the shared moto server (closed after the test)."""
    from aureus_aws import AwsKmsOptions, AwsKmsProvider

    made: list[AwsKmsProvider] = []

    def make(**options: Any) -> AwsKmsProvider:
        settings = {"region": "us-east-1", "endpoint_url": moto_server.url, **options}
        provider = AwsKmsProvider(AwsKmsOptions.from_mapping(settings))
        made.append(provider)
        return provider

    yield make
    for provider in made:
        provider.close()


@pytest.fixture
def provider(make_provider: Any) -> Any:
    """An AwsKmsProvider in us-east-1 on the shared moto server."""
    return make_provider()


@pytest.fixture
def real_errors_session() -> boto3.Session:
    """A boto3 session whose KMS clients see real KMS's error for a damaged ciphertext."""

    def _real_damaged_ciphertext_error(parsed: dict[str, Any], **_: Any) -> None:
        # moto gap: moto reads the key ID out of its own ciphertext blob, so a blob whose
        # first bytes were changed makes it answer AccessDeniedException (with no message).
        # Real KMS answers a damaged blob with InvalidCiphertextException.  The provider
        # must not turn a real AccessDenied into a decryption failure, so this test-only
        # hook supplies the real answer.  It is only installed on moto servers that enforce
        # no key policies, where Decrypt has no other reason to deny access.
        error = parsed.get("Error", {})
        if error.get("Code") == "AccessDeniedException":
            error["Code"] = "InvalidCiphertextException"

    session = boto3.Session(region_name="us-east-1")
    session.events.register("after-call.kms.Decrypt", _real_damaged_ciphertext_error)
    return session
