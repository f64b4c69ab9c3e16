"""Envelope encryption through KeyStack with the gcp-kms provider, against the emulator."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aureus_core import KeyStack
from aureus_core.context import EncryptionContext
from aureus_core.errors import DecryptionError, KeyDisabled
from aureus_core.keys import KeySpec, KeyState, KeyType
from aureus_gcp import PROVIDER_ID, GcpKmsProvider
from aureus_gcp.testing import CloudKmsEmulator

CONTEXT = {"tenant": "acme", "purpose": "envelope-test"}
AES = KeySpec(key_type=KeyType.AES_256)
PAYLOAD = b"the quick brown fox jumps over the lazy dog " * 30


@pytest.fixture
def config(
    gcp_kms: CloudKmsEmulator, ring_options: dict[str, str], tmp_path: Path
) -> dict[str, Any]:
    """A stack configuration: gcp-kms on the emulator and a local keystore."""
    return {
        "providers": {
            "gcp-kms": gcp_kms.provider_options(**ring_options),
            "local": {"keystore": str(tmp_path / "keystore")},
        }
    }


def _toml(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


@pytest.mark.parametrize("signed", [False, True], ids=["0x0478", "0x0578"])
def test_multi_recipient_round_trip_with_a_local_key(
    config: dict[str, Any], new_name: Callable[[str], str], signed: bool
) -> None:
    with KeyStack.from_dict(config) as stack:
        cloud = stack.create_key(f"gcp-kms://{new_name('env')}", "aes-256")
        local = stack.create_key(f"local://{new_name('dr')}", "aes-256")
        keys = [cloud.uri, local.uri]
        message = stack.encrypt(PAYLOAD, context=CONTEXT, keys=keys, signed=signed)
        recipients = stack.inspect(message).recipients
        assert recipients[0].provider_id == PROVIDER_ID == "aureus-gcp-kms"
        assert recipients[0].key == f"{cloud.ref.key_id}/cryptoKeyVersions/1"
        for strict in ([cloud.uri], [local.uri]):  # either recipient alone decrypts
            assert stack.decrypt(message, context=CONTEXT, keys=strict) == PAYLOAD
        assert stack.decrypt(message) == PAYLOAD  # discovery
        with pytest.raises(DecryptionError):
            stack.decrypt(message, context={"tenant": "other"})
        tampered = bytearray(message)
        tampered[len(tampered) // 2] ^= 1
        with pytest.raises(DecryptionError):
            stack.decrypt(bytes(tampered))


def test_a_stack_from_a_toml_file(
    config: dict[str, Any], new_name: Callable[[str], str], tmp_path: Path
) -> None:
    with KeyStack.from_dict(config) as setup:
        key = setup.create_key(f"gcp-kms://{new_name('toml')}", "aes-256")
    gcp = config["providers"]["gcp-kms"]
    lines = ["[stack]", f"wrapping_keys = [{_toml(key.uri)}]", "", "[providers.gcp-kms]"]
    lines += [f"{name} = {_toml(value)}" for name, value in gcp.items()]
    path = tmp_path / "aureus.toml"
    path.write_text("\n".join(lines) + "\n")
    with KeyStack.from_config(path) as stack:
        message = stack.encrypt(PAYLOAD, context=CONTEXT)
        assert stack.decrypt(message, context=CONTEXT, keys=[key.uri]) == PAYLOAD
        assert stack.inspect(message).recipients[0].key.endswith("/cryptoKeyVersions/1")


def test_a_rotated_key_still_decrypts_old_messages(
    gcp_provider: GcpKmsProvider, new_name: Callable[[str], str]
) -> None:
    ref = gcp_provider.create_key(new_name("rot"), AES).ref
    with KeyStack(providers={"gcp-kms": gcp_provider}) as stack:
        old = stack.encrypt(b"before rotation", context=CONTEXT, keys=[ref])
        rotated = stack.rotate_key(ref)
        assert rotated.current_version == "2"
        new = stack.encrypt(b"after rotation", context=CONTEXT, keys=[ref])
        assert stack.inspect(old).recipients[0].key.endswith("/cryptoKeyVersions/1")
        assert stack.inspect(new).recipients[0].key.endswith("/cryptoKeyVersions/2")
        assert stack.decrypt(old, context=CONTEXT) == b"before rotation"
        assert stack.decrypt(new, context=CONTEXT) == b"after rotation"
        gcp_provider.set_version_state(ref.with_version("1"), KeyState.DISABLED)
        with pytest.raises((KeyDisabled, DecryptionError)):
            stack.decrypt(old, context=CONTEXT)
        assert stack.decrypt(new, context=CONTEXT) == b"after rotation"
        gcp_provider.set_version_state(ref.with_version("1"), KeyState.ENABLED)
        assert stack.decrypt(old, context=CONTEXT) == b"before rotation"


def test_the_official_client_decrypts_a_wrapped_data_key(
    gcp_kms: CloudKmsEmulator, gcp_provider: GcpKmsProvider, new_name: Callable[[str], str]
) -> None:
    """The wrap is plain Cloud KMS: Decrypt with the serialized context as AAD returns the key."""
    ref = gcp_provider.create_key(new_name("interop"), AES).ref
    context = EncryptionContext(CONTEXT)
    data_key = os.urandom(32)
    wrapped = gcp_provider.wrap(ref, data_key, context)
    assert wrapped.encrypted.provider_info == f"{ref.key_id}/cryptoKeyVersions/1".encode()
    assert gcp_provider.owner_of(wrapped.encrypted) == wrapped.key == ref.with_version("1")
    client = gcp_kms.client()
    try:
        answer = client.decrypt(
            request={
                "name": ref.key_id,
                "ciphertext": wrapped.encrypted.ciphertext,
                "additional_authenticated_data": context.serialize(),
            }
        )
        assert answer.plaintext == data_key
        # and what the official client encrypts, Aureus unwraps
        made = client.encrypt(
            request={
                "name": ref.key_id,
                "plaintext": data_key,
                "additional_authenticated_data": context.serialize(),
            }
        )
    finally:
        client.transport.close()
    edk = type(wrapped.encrypted)(
        provider_id=PROVIDER_ID, provider_info=made.name.encode(), ciphertext=made.ciphertext
    )
    assert bytes(gcp_provider.unwrap(ref, edk, context)) == data_key


def test_two_providers_share_nothing_but_the_service(
    gcp_kms: CloudKmsEmulator, make_gcp_provider: Callable[..., GcpKmsProvider], new_name
) -> None:
    writer, reader = make_gcp_provider(), make_gcp_provider()
    ref = writer.create_key(new_name("shared"), AES).ref
    with KeyStack(providers={"gcp-kms": writer}) as stack:
        message = stack.encrypt(PAYLOAD, context=CONTEXT, keys=[ref])
    with KeyStack(providers={"gcp-kms": reader}) as stack:
        assert stack.decrypt(message, context=CONTEXT) == PAYLOAD
