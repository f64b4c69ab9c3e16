"""A 2-of-3 key-group message over a local keystore, AWS KMS (moto) and Cloud KMS (emulator)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("boto3")
pytest.importorskip("moto")
pytest.importorskip("google.cloud.kms")

import grpc

from aureus_aws.testing import TEST_ENVIRONMENT, MotoServer
from aureus_core import KeyStack
from aureus_core.errors import DecryptionError

CONTEXT = {"tenant": "acme"}


@pytest.fixture
def moto(monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoServer]:
    """A moto server of this test alone: the test takes it down."""
    for name, value in TEST_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    server = MotoServer().start()
    try:
        yield server
    finally:
        server.kill()


def test_two_of_aws_gcp_and_local_survive_one_outage_and_fail_clearly_on_two(
    moto: MotoServer, gcp_kms: Any, tmp_path: Path
) -> None:
    ring = f"ring-{uuid.uuid4().hex[:12]}"
    config: dict[str, Any] = {
        "providers": {
            "local": {"keystore": str(tmp_path / "ks")},
            "aws-kms": {
                "region": "us-east-1",
                "endpoint_url": moto.url,
                "retries": {"max_attempts": 1},
                "connect_timeout": 1,
            },
            "gcp-kms": gcp_kms.provider_options(
                project="aureus-tests", location="global", key_ring=ring
            ),
        }
    }
    with KeyStack.from_dict(config) as setup:
        onprem = setup.create_key("local://onprem", "aes-256").uri
        aws = setup.create_key(f"aws-kms://alias/q-{uuid.uuid4().hex[:8]}", "aes-256").uri
        gcp = setup.create_key(f"gcp-kms://q-{uuid.uuid4().hex[:8]}", "aes-256").uri
    config["stack"] = {
        "threshold": 2,
        "key_groups": {"onprem": [onprem], "aws": [aws], "gcp": [gcp]},
    }
    with KeyStack.from_dict(config) as stack:
        message = stack.encrypt(b"two of three", context=CONTEXT)
        info = stack.inspect(message)
        assert info.key_groups is not None
        assert info.key_groups.groups == ("onprem", "aws", "gcp")
        assert [r.share_provider_id for r in info.recipients] == [
            "aureus-local",
            "aws-kms",
            "aureus-gcp-kms",
        ]
        assert stack.decrypt(message, context=CONTEXT) == b"two of three"
        # every pair of groups suffices
        for pair in ([onprem, aws], [onprem, gcp], [aws, gcp]):
            assert stack.decrypt(message, context=CONTEXT, keys=pair) == b"two of three"

        moto.kill()  # AWS is down: local and GCP still decrypt
        assert stack.decrypt(message, context=CONTEXT, keys=[aws, gcp, onprem]) == b"two of three"
        assert stack.decrypt(message, context=CONTEXT) == b"two of three"

        gcp_kms.fail(None, grpc.StatusCode.UNAVAILABLE)  # and GCP too
        with pytest.raises(DecryptionError) as caught:
            stack.decrypt(message, context=CONTEXT)
        text = str(caught.value)
        assert "needs key shares from 2 of its 3 key groups; reached 1 (onprem)" in text
        assert "not reached: aws: " in text
        assert "; gcp: " in text
