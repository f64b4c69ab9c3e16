"""Envelope encryption through KeyStack with the azure-kv provider, against the emulator."""

from __future__ import annotations

import base64
import os

import pytest
from azure.core.rest import HttpRequest

from aureus_azure import PROVIDER_ID, AzureKeyVaultProvider
from aureus_azure.testing import KeyVaultEmulator
from aureus_core import KeyStack
from aureus_core.context import EncryptionContext
from aureus_core.errors import ConfigError, DecryptionError, KeyDisabled
from aureus_core.keyref import KeyRef
from aureus_core.keys import KeySpec, KeyState, KeyType

CONTEXT = {"tenant": "acme", "purpose": "envelope-test"}


def _wrap_key(provider: AzureKeyVaultProvider, name: str, key_type: KeyType) -> KeyRef:
    options = {"purpose": "wrap"} if key_type is not KeyType.AES_256 else {}
    metadata = provider.create_key(name, KeySpec(key_type=key_type, options=options))
    return metadata.ref


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@pytest.mark.parametrize(
    ("vault", "key_type", "algorithm"),
    [("vault", KeyType.RSA_2048, "RSA-OAEP-256"), ("hsm", KeyType.AES_256, "A256KW")],
)
def test_envelope_round_trip_and_an_independent_sdk_client_unwraps(
    request: pytest.FixtureRequest, vault: str, key_type: KeyType, algorithm: str
) -> None:
    emulator: KeyVaultEmulator = request.getfixturevalue(
        "azure_key_vault" if vault == "vault" else "azure_managed_hsm"
    )
    provider = emulator.provider()
    ref = _wrap_key(provider, f"envelope-{vault}-{os.urandom(4).hex()}", key_type)
    assert ref.uri.startswith(f"azure-kv://{emulator.host}/keys/envelope-")
    with KeyStack(providers={"azure-kv": provider}) as stack:
        message = stack.encrypt(b"attack at dawn", context=CONTEXT, keys=[ref])
        assert stack.decrypt(message, context=CONTEXT) == b"attack at dawn"
    # a second stack with its own provider and SDK client decrypts what the first wrote
    with KeyStack(providers={"azure-kv": emulator.provider()}) as other:
        assert other.decrypt(message) == b"attack at dawn"

    # ... and a plain KeyClient, knowing nothing of Aureus, unwraps a wrapped data key
    data_key = os.urandom(32)
    wrapped = provider.wrap(ref, data_key, EncryptionContext(CONTEXT))
    assert wrapped.encrypted.provider_id == PROVIDER_ID == "aureus-azure-kv"
    kid = wrapped.encrypted.provider_info.decode()
    assert kid == f"https://{emulator.host}/keys/{ref.key_id.split('/')[-1]}/{wrapped.key.version}"
    assert provider.owner_of(wrapped.encrypted) == wrapped.key
    independent = emulator.key_client(retry_total=0)
    name, version = kid.split("/")[-2:]
    response = independent.send_request(
        HttpRequest(
            "POST",
            f"/keys/{name}/{version}/unwrapkey",
            json={"alg": algorithm, "value": _b64url(wrapped.encrypted.ciphertext)},
        )
    )
    assert response.status_code == 200
    value = response.json()["value"]
    assert base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)) == data_key
    independent.close()
    provider.close()


def test_rotated_key_still_decrypts_old_messages(hsm_provider: AzureKeyVaultProvider) -> None:
    ref = _wrap_key(hsm_provider, f"rotating-{os.urandom(4).hex()}", KeyType.AES_256)
    with KeyStack(providers={"azure-kv": hsm_provider}) as stack:
        old = stack.encrypt(b"before rotation", context=CONTEXT, keys=[ref])
        before = hsm_provider.describe_key(ref).current_version
        rotated = hsm_provider.rotate_key(ref)
        assert rotated.current_version != before
        assert [v.version for v in rotated.versions] == [before, rotated.current_version]
        new = stack.encrypt(b"after rotation", context=CONTEXT, keys=[ref])
        assert stack.decrypt(old, context=CONTEXT) == b"before rotation"
        assert stack.decrypt(new, context=CONTEXT) == b"after rotation"
        # a disabled old version refuses with KeyDisabled naming it
        hsm_provider.set_version_state(ref.with_version(before), KeyState.DISABLED)
        with pytest.raises((KeyDisabled, DecryptionError)):
            stack.decrypt(old, context=CONTEXT)
        hsm_provider.set_version_state(ref.with_version(before), KeyState.ENABLED)
        assert stack.decrypt(old, context=CONTEXT) == b"before rotation"


def test_the_context_is_protected_by_the_header_not_the_wrap(
    vault_provider: AzureKeyVaultProvider,
) -> None:
    """Key Vault's wrap takes no AAD; a changed context still fails, at the header."""
    ref = _wrap_key(vault_provider, f"context-{os.urandom(4).hex()}", KeyType.RSA_2048)
    data_key = os.urandom(32)
    wrapped = vault_provider.wrap(ref, data_key, EncryptionContext(CONTEXT))
    assert bytes(vault_provider.unwrap(ref, wrapped.encrypted, EncryptionContext())) == data_key
    with KeyStack(providers={"azure-kv": vault_provider}) as stack:
        message = stack.encrypt(b"bound", context=CONTEXT, keys=[ref])
        tampered = message.replace(b"acme", b"acmf")
        assert tampered != message
        with pytest.raises(DecryptionError):
            stack.decrypt(tampered)
        with pytest.raises(DecryptionError):
            stack.decrypt(message, context={"tenant": "other"})


def test_signing_keys_do_not_wrap(vault_provider: AzureKeyVaultProvider) -> None:
    ref = vault_provider.create_key(
        f"signer-{os.urandom(4).hex()}", KeySpec(key_type=KeyType.RSA_2048)
    ).ref
    with pytest.raises(ConfigError, match="purpose=wrap"):
        vault_provider.wrap(ref, os.urandom(32), EncryptionContext())


def test_unwrap_refuses_a_data_key_of_another_key(vault_provider: AzureKeyVaultProvider) -> None:
    first = _wrap_key(vault_provider, f"first-{os.urandom(4).hex()}", KeyType.RSA_3072)
    second = _wrap_key(vault_provider, f"second-{os.urandom(4).hex()}", KeyType.RSA_2048)
    wrapped = vault_provider.wrap(first, os.urandom(32), EncryptionContext())
    with pytest.raises(DecryptionError):
        vault_provider.unwrap(second, wrapped.encrypted, EncryptionContext())
    tampered = wrapped.encrypted.ciphertext[:-1] + bytes([wrapped.encrypted.ciphertext[-1] ^ 1])
    with pytest.raises(DecryptionError):
        vault_provider.unwrap(
            first,
            type(wrapped.encrypted)(
                provider_id=PROVIDER_ID,
                provider_info=wrapped.encrypted.provider_info,
                ciphertext=tampered,
            ),
            EncryptionContext(),
        )


def test_a_stack_from_a_dict_round_trips_and_rotation_keeps_old_messages(
    azure_managed_hsm: KeyVaultEmulator,
) -> None:
    creator = azure_managed_hsm.provider()
    ref = _wrap_key(creator, f"from-dict-{os.urandom(4).hex()}", KeyType.AES_256)
    config = azure_managed_hsm.stack_config(wrapping_keys=(ref.uri,))
    with KeyStack.from_dict(config) as stack:
        old = stack.encrypt(b"first", context=CONTEXT)
        creator.rotate_key(ref)
    with KeyStack.from_dict(config) as stack:
        new = stack.encrypt(b"second", context=CONTEXT)
        assert stack.decrypt(old, context=CONTEXT) == b"first"
        assert stack.decrypt(new, context=CONTEXT) == b"second"
    creator.close()
