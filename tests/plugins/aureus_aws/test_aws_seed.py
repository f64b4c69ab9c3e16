"""Seed envelopes made as the seed's JavaScript made them, on moto's KMS, then migrated.

The envelope is built step by step like the seed's ``envelopeEncrypt``: KMS
``GenerateDataKey`` (AES_256) with the caller's encryption context, AES-256-GCM
of the data under the plaintext key with a random 12-byte IV and no AAD, and
the JSON ``{encrypted, encryptedDataKey, iv, authTag, keyId}`` in base64.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from aureus_aws.testing import MotoServer
from aureus_core import KeyStack
from aureus_core.cli import main
from aureus_core.errors import DecryptionError
from aureus_core.plugins import get_host

CONTEXT = {"intentId": "intent-1", "service": "bridge"}
MOTO_ACCOUNT = "123456789012"
"""moto's default account, which holds the seed's keys: inside the reader's discovery scope."""


@pytest.fixture(autouse=True)
def _needs_the_aws_kms_provider() -> None:
    if "aws-kms" not in get_host().key_providers:
        pytest.skip("the aws-kms provider is not registered (plugins/aureus_aws/provider.py)")


def seed_envelope(kms_client: Any, key_arn: str, data: bytes, context: dict[str, str]) -> bytes:
    """What the seed's ``envelopeEncrypt(data, context)`` returned, as JSON."""
    generated = kms_client.generate_data_key(
        KeyId=key_arn, KeySpec="AES_256", EncryptionContext=context
    )
    iv = os.urandom(12)
    sealed = AESGCM(generated["Plaintext"]).encrypt(iv, data, None)
    return json.dumps(
        {
            "encrypted": base64.b64encode(sealed[:-16]).decode(),
            "encryptedDataKey": base64.b64encode(generated["CiphertextBlob"]).decode(),
            "iv": base64.b64encode(iv).decode(),
            "authTag": base64.b64encode(sealed[-16:]).decode(),
            "keyId": key_arn,
        }
    ).encode()


@pytest.fixture
def key_arn(kms_client: Any) -> str:
    arn: str = kms_client.create_key(Description="seed envelope key")["KeyMetadata"]["Arn"]
    return arn


@pytest.fixture
def config(tmp_path: Path, moto_server: MotoServer) -> dict[str, Any]:
    return {
        "stack": {"wrapping_keys": ["local://current"]},
        "providers": {
            "aws-kms": {
                "endpoint_url": moto_server.url,
                "region": "us-east-1",
                "discovery": {"accounts": [MOTO_ACCOUNT]},
            },
            "local": {"keystore": str(tmp_path / "ks")},
        },
    }


@pytest.fixture
def stack(config: dict[str, Any]) -> Iterator[KeyStack]:
    with KeyStack.from_dict(config) as stack:
        stack.create_key("current", "aes-256")
        yield stack


@pytest.fixture
def run(
    tmp_path: Path, config: dict[str, Any], stack: KeyStack, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Result]:
    """``aureus --config aureus.toml ...`` in-process, on the same keystore and moto."""
    aws, local = config["providers"]["aws-kms"], config["providers"]["local"]
    (tmp_path / "aureus.toml").write_text(
        '[stack]\nwrapping_keys = ["local://current"]\n'
        f'[providers.aws-kms]\nendpoint_url = "{aws["endpoint_url"]}"\nregion = "us-east-1"\n'
        f'discovery = {{ accounts = ["{MOTO_ACCOUNT}"] }}\n'
        f'[providers.local]\nkeystore = "{local["keystore"]}"\n'
    )
    monkeypatch.chdir(tmp_path)

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(main, ["--config", "aureus.toml", *args], catch_exceptions=False)

    return invoke


def test_decrypt_seed_through_kms(stack: KeyStack, kms_client: Any, key_arn: str) -> None:
    data = "payload from the JavaScript bridge ✓".encode()
    envelope = seed_envelope(kms_client, key_arn, data, CONTEXT)
    assert stack.decrypt_seed(envelope, context=CONTEXT) == data


@pytest.mark.parametrize(
    "context",
    [None, {"intentId": "intent-2", "service": "bridge"}, {"intentId": "intent-1"}],
    ids=["none", "other-value", "missing-pair"],
)
def test_decrypt_seed_with_the_wrong_context_fails(
    stack: KeyStack, kms_client: Any, key_arn: str, context: dict[str, str] | None
) -> None:
    envelope = seed_envelope(kms_client, key_arn, b"payload", CONTEXT)
    with pytest.raises(DecryptionError):
        stack.decrypt_seed(envelope, context=context)


def test_cli_migrate_then_decrypt(
    run: Callable[..., Result], stack: KeyStack, kms_client: Any, key_arn: str, tmp_path: Path
) -> None:
    data = os.urandom(70_000)
    (tmp_path / "seed.json").write_bytes(seed_envelope(kms_client, key_arn, data, CONTEXT))
    migrated = run(
        "migrate", "--context", "intentId=intent-1", "--context", "service=bridge",
        "-o", "msg.aes", "seed.json",
    )  # fmt: skip
    assert migrated.exit_code == 0, migrated.output
    message = (tmp_path / "msg.aes").read_bytes()
    assert stack.decrypt(message, context=CONTEXT) == data

    decrypted = run("decrypt", "--context", "intentId=intent-1", "-o", "out.bin", "msg.aes")
    assert decrypted.exit_code == 0, decrypted.output
    assert (tmp_path / "out.bin").read_bytes() == data
    # The context is now bound to the message: a different one is refused.
    refused = run("decrypt", "--context", "intentId=intent-2", "msg.aes")
    assert refused.exit_code == 1


def test_cli_migrate_wrong_context_exits_1(
    run: Callable[..., Result], kms_client: Any, key_arn: str, tmp_path: Path
) -> None:
    (tmp_path / "seed.json").write_bytes(seed_envelope(kms_client, key_arn, b"p", CONTEXT))
    result = run("migrate", "--context", "intentId=intent-1", "-o", "msg.aes", "seed.json")
    assert result.exit_code == 1
    assert "could not be decrypted" in result.stderr
    assert not (tmp_path / "msg.aes").exists()


def test_migrate_seed_onto_the_kms_key_itself(
    stack: KeyStack, kms_client: Any, key_arn: str
) -> None:
    envelope = seed_envelope(kms_client, key_arn, b"now an ESDK message", CONTEXT)
    message = stack.migrate_seed(envelope, context=CONTEXT, keys=[f"aws-kms://{key_arn}"])
    info = stack.inspect(message)
    assert [r.provider_id for r in info.recipients] == ["aws-kms"]
    assert stack.decrypt(message, context=CONTEXT, keys=[f"aws-kms://{key_arn}"]) == (
        b"now an ESDK message"
    )


def test_migrate_with_oidc_credentials(
    tmp_path: Path, moto_server: MotoServer, kms_client: Any, key_arn: str
) -> None:
    """The provider authenticates with the ``oidc`` source's refreshable credentials."""
    if "oidc" not in get_host().credential_sources:
        pytest.skip("the oidc credential source is not registered yet (plugin.py)")
    token = tmp_path / "token"
    token.write_text(
        "eyJhbGciOiJSUzI1NiJ9.e30." + base64.urlsafe_b64encode(os.urandom(32)).decode()
    )
    config = {
        "stack": {"wrapping_keys": ["local://current"]},
        "providers": {
            "aws-kms": {
                "endpoint_url": moto_server.url,
                "region": "us-east-1",
                "credentials": "web",
                "discovery": {"accounts": [MOTO_ACCOUNT]},
            },
            "local": {"keystore": str(tmp_path / "ks")},
        },
        "credentials": {
            "web": {
                "source": "oidc",
                "role_arn": "arn:aws:iam::123456789012:role/bridge",
                "token_file": str(token),
                "endpoint_url": moto_server.url,
            }
        },
    }
    envelope = seed_envelope(kms_client, key_arn, b"via web identity", CONTEXT)
    with KeyStack.from_dict(config) as stack:
        stack.create_key("current", "aes-256")
        message = stack.migrate_seed(envelope, context=CONTEXT)
        assert stack.decrypt(message, context=CONTEXT) == b"via web identity"


def test_a_seed_key_outside_the_discovery_scope_is_never_contacted(
    tmp_path: Path, moto_server: MotoServer, kms_client: Any, key_arn: str
) -> None:
    """A seed envelope's keyId is the envelope's author's choice, as in a message."""
    config: dict[str, Any] = {
        "stack": {"wrapping_keys": ["local://current"]},
        "providers": {
            "aws-kms": {"endpoint_url": moto_server.url, "region": "us-east-1"},
            "local": {"keystore": str(tmp_path / "ks")},
        },
    }
    envelope = seed_envelope(kms_client, key_arn, b"chosen key", CONTEXT)
    with KeyStack.from_dict(config) as stack:
        calls: list[str] = []
        provider: Any = stack.provider("aws-kms")
        provider.client().meta.events.register(
            "before-call.kms.*", lambda model, **_: calls.append(model.name)
        )
        with pytest.raises(DecryptionError, match=f"account {MOTO_ACCOUNT} .* is outside"):
            stack.decrypt_seed(envelope, context=CONTEXT)
        assert calls == []
    config["stack"]["wrapping_keys"] = ["local://current", f"aws-kms://{key_arn}"]
    with KeyStack.from_dict(config) as stack:
        assert stack.decrypt_seed(envelope, context=CONTEXT) == b"chosen key"
