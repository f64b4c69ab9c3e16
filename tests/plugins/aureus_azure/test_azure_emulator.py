"""The Key Vault emulator as a user's own client sees it: identifiers, errors, server mode."""

from __future__ import annotations

import base64
import json
import logging
import os
import signal
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.core.rest import HttpRequest
from azure.keyvault.keys import KeyClient
from azure.keyvault.keys.crypto import CryptographyClient, KeyWrapAlgorithm

from aureus_azure import AzureKeyVaultProvider
from aureus_azure.testing import EmulatorCredential, KeyVaultEmulator
from aureus_core import KeyStack
from aureus_core.context import EncryptionContext
from aureus_core.keys import KeyPurpose, KeySpec, KeyType

WRAP = KeySpec(key_type=KeyType.RSA_2048, options={"purpose": "wrap"})


def _crypto_client(emulator: KeyVaultEmulator, kid: str) -> CryptographyClient:
    return CryptographyClient(
        kid,
        emulator.credential(),
        verify_challenge_resource=False,
        connection_verify=emulator.ca_file,
        retry_total=0,
    )


def test_the_ids_aureus_reports_are_the_ids_the_official_client_reports(
    vault_provider: AzureKeyVaultProvider, azure_key_vault: KeyVaultEmulator
) -> None:
    """A kid from Aureus names the served URL, so CryptographyClient can use it as it is."""
    name = f"ids-{os.urandom(4).hex()}"
    metadata = vault_provider.create_key(name, WRAP)
    assert metadata.ref.uri == f"azure-kv://{azure_key_vault.host}/keys/{name}"
    assert azure_key_vault.host == azure_key_vault.url.removeprefix("https://")
    data_key = os.urandom(32)
    wrapped = vault_provider.wrap(metadata.ref, data_key, EncryptionContext())
    kid = wrapped.encrypted.provider_info.decode()
    official = azure_key_vault.key_client(retry_total=0).get_key(name)
    assert kid == official.id  # https://127.0.0.1:PORT/keys/NAME/VERSION
    crypto = _crypto_client(azure_key_vault, kid)
    unwrapped = crypto.unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, wrapped.encrypted.ciphertext)
    assert unwrapped.key == data_key
    assert unwrapped.key_id == kid


def test_a_wrong_token_gets_the_services_answer_not_missing_token(
    azure_key_vault: KeyVaultEmulator,
) -> None:
    azure_key_vault.clear_faults()
    client = azure_key_vault.key_client(EmulatorCredential("not-the-token"), retry_total=0)
    with pytest.raises(ClientAuthenticationError) as refused:
        client.get_key("anything")
    assert refused.value.status_code == 401
    assert "[BearerReadAccessTokenFailed] Error validating token: 'S2S12005'." in str(refused.value)
    assert "missing a Bearer" not in str(refused.value)
    # no token at all is still answered with the challenge and AKV10000
    context = ssl.create_default_context(cafile=azure_key_vault.ca_file)
    with pytest.raises(urllib.error.HTTPError) as bare:
        urllib.request.urlopen(f"{azure_key_vault.url}/keys", context=context)  # noqa: S310
    assert bare.value.code == 401
    with bare.value:
        body = json.loads(bare.value.read())
    assert body["error"]["message"].startswith("AKV10000:")
    assert bare.value.headers["WWW-Authenticate"].startswith('Bearer authorization="https://')


def test_oct_hsm_unwrap_warning_is_the_sdks_local_attempt(
    azure_managed_hsm: KeyVaultEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    """The SDK tries oct keys locally first; without key material it falls back (and warns).

    A Managed HSM never releases an oct-HSM key's bytes (no ``k`` in the JWK),
    as the emulator does not either; azure-keyvault-keys then builds its local
    AES key from random bytes, so a local unwrap fails, is logged as a
    warning, and the service unwraps.  Aureus's provider calls the service
    directly and never logs it.
    """
    provider = azure_managed_hsm.provider()
    metadata = provider.create_key(f"oct-{os.urandom(4).hex()}", KeySpec(key_type=KeyType.AES_256))
    data_key = os.urandom(32)
    caplog.set_level(logging.WARNING)
    with KeyStack(providers={"azure-kv": provider}) as stack:
        message = stack.encrypt(b"hsm", keys=[metadata.ref])
        assert stack.decrypt(message) == b"hsm"
    wrapped = provider.wrap(metadata.ref, data_key, EncryptionContext())
    assert provider.unwrap(metadata.ref, wrapped.encrypted, EncryptionContext()) == data_key
    assert "Local unwrap operation failed" not in caplog.text  # Aureus: no warning
    provider.close()

    jwk = azure_managed_hsm.key_client(retry_total=0).get_key(metadata.ref.key_id.split("/")[-1])
    assert jwk.key.kty == "oct-HSM"
    assert jwk.key.k is None  # the real service's shape: the key bytes never leave
    crypto = _crypto_client(azure_managed_hsm, wrapped.encrypted.provider_info.decode())
    result = crypto.unwrap_key(KeyWrapAlgorithm.aes_256, wrapped.encrypted.ciphertext)
    assert result.key == data_key  # the service answered ...
    assert "Local unwrap operation failed" in caplog.text  # ... after the SDK's local try

    # The SDK's wrap takes the same local path, silently, under its random key:
    # the HSM never saw the request and cannot unwrap the result.
    before = len(azure_managed_hsm.requests)
    local = crypto.wrap_key(KeyWrapAlgorithm.aes_256, data_key)
    assert not [r for r in azure_managed_hsm.requests[before:] if r[1].endswith("/wrapkey")]
    key_name = metadata.ref.key_id.split("/")[-1]
    response = azure_managed_hsm.key_client(retry_total=0).send_request(
        HttpRequest(
            "POST",
            f"/keys/{key_name}/unwrapkey",
            json={"alg": "A256KW", "value": base64.urlsafe_b64encode(local.encrypted_key).decode()},
        )
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BadParameter"


# -- server mode -------------------------------------------------------------------


class _Server:
    def __init__(self, process: subprocess.Popen[str], endpoint: str, env: dict[str, str]):
        self.process, self.endpoint, self.env = process, endpoint, env


@pytest.fixture
def azure_server() -> Iterator[_Server]:
    process = subprocess.Popen(
        [sys.executable, "-m", "aureus_azure.testing", "--kind", "managedhsm"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        endpoint = process.stdout.readline().strip()
        env: dict[str, str] = {}
        for line in iter(process.stdout.readline, "\n"):
            name, _, value = line.strip().partition("=")
            env[name] = value
        yield _Server(process, endpoint, env)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)  # reaps it and closes the pipes


def test_server_mode_serves_the_official_client_and_stops_cleanly_on_sigterm(
    azure_server: _Server,
) -> None:
    env = azure_server.env
    assert azure_server.endpoint.startswith("https://127.0.0.1:")
    assert env["AZURE_KEYVAULT_URL"] == azure_server.endpoint
    ca_file = Path(env["REQUESTS_CA_BUNDLE"])
    assert ca_file.read_text().startswith("-----BEGIN CERTIFICATE-----")
    # the SDK's own sample, with only the URL, the credential and the CA changed
    credential = EmulatorCredential(env["AZURE_KEYVAULT_TOKEN"])
    options = {"verify_challenge_resource": False, "connection_verify": str(ca_file)}
    client = KeyClient(vault_url=env["AZURE_KEYVAULT_URL"], credential=credential, **options)
    key = client.create_oct_key("sample-oct", size=256, hardware_protected=True)
    rsa_key = client.create_rsa_key("sample-rsa", size=2048, hardware_protected=True)
    assert key.id.startswith(azure_server.endpoint + "/keys/sample-oct/")
    crypto = CryptographyClient(rsa_key.id, credential, **options)
    wrapped = crypto.wrap_key(KeyWrapAlgorithm.rsa_oaep_256, b"k" * 32)
    assert crypto.unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, wrapped.encrypted_key).key == b"k" * 32

    # Aureus pointed at the same server, by the environment the server printed
    provider = AzureKeyVaultProvider(
        credential=credential,
        vault=azure_server.endpoint,
        managed_hsm=True,
        connection_verify=str(ca_file),
        verify_challenge_resource=False,
        retry_total=0,
    )
    ref = provider.create_key("aureus-oct", KeySpec(key_type=KeyType.AES_256)).ref
    assert ref.uri == f"azure-kv://{azure_server.endpoint.removeprefix('https://')}/keys/aureus-oct"
    provider.close()

    with pytest.raises(HttpResponseError, match=r"not found"):
        client.get_key("never-created")

    azure_server.process.send_signal(signal.SIGTERM)
    assert azure_server.process.wait(10) == 0
    assert not ca_file.exists()  # the certificate went with the server


def test_managed_hsm_option_declares_a_loopback_vault_an_hsm() -> None:
    from aureus_azure.plugin import create_provider
    from aureus_core.errors import ConfigError
    from aureus_core.interfaces import ProviderSettings

    plain = create_provider(ProviderSettings(options={"vault": "127.0.0.1:8443"}))
    hsm = create_provider(
        ProviderSettings(options={"vault": "127.0.0.1:8443", "managed_hsm": True})
    )
    assert KeyType.AES_256 not in plain.key_types
    assert KeyType.AES_256 in hsm.key_types
    with pytest.raises(ConfigError, match="managed_hsm"):
        create_provider(ProviderSettings(options={"vault": "127.0.0.1:8443", "managed_hsm": "yes"}))


def test_metadata_purpose_is_the_keys_own_not_its_types(
    vault_provider: AzureKeyVaultProvider,
) -> None:
    """An RSA key created to wrap reports wrap (its type alone would say sign)."""
    suffix = os.urandom(4).hex()
    wrapping = vault_provider.create_key(f"rsa-wrap-{suffix}", WRAP)
    signing = vault_provider.create_key(f"rsa-sign-{suffix}", KeySpec(key_type=KeyType.RSA_2048))
    assert KeyType.RSA_2048.purpose is KeyPurpose.SIGN
    assert wrapping.purpose is KeyPurpose.WRAP
    assert vault_provider.describe_key(wrapping.ref).purpose is KeyPurpose.WRAP
    assert vault_provider.describe_key(wrapping.ref).to_dict()["purpose"] == "wrap"
    assert signing.purpose is KeyPurpose.SIGN
    listed = {m.uri: m.purpose for m in vault_provider.list_keys()}
    assert listed[wrapping.uri] is KeyPurpose.WRAP
    assert listed[signing.uri] is KeyPurpose.SIGN
