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
