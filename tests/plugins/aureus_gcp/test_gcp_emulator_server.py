"""The Cloud KMS emulator from outside: command-line server, TLS, clients in other processes.

Each client runs in a process of its own, because gRPC reads
``GRPC_DEFAULT_SSL_ROOTS_FILE_PATH`` once per process: that is how a user's
test suite trusts the emulator's CA without changing how it builds clients.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

# Configured the usual way: an api_endpoint and anonymous credentials, nothing else.
OFFICIAL_CLIENT = textwrap.dedent(
    """
    import os, sys
    from google.api_core import exceptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import kms

    client = kms.KeyManagementServiceClient(
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": os.environ["CLOUDKMS_EMULATOR_HOST"]},
    )
    project = "projects/user-project"
    ring = client.create_key_ring(
        request={"parent": f"{project}/locations/global", "key_ring_id": "ring"}
    )
    key = client.create_crypto_key(
        request={
            "parent": ring.name,
            "crypto_key_id": "key",
            "crypto_key": {"purpose": kms.CryptoKey.CryptoKeyPurpose.ENCRYPT_DECRYPT},
        }
    )
    sealed = client.encrypt(request={"name": key.name, "plaintext": b"sample"})
    assert client.decrypt(
        request={"name": key.name, "ciphertext": sealed.ciphertext}
    ).plaintext == b"sample"
    answer = client.list_locations(request={"name": project})
    locations = [l.location_id for l in answer.locations]
    assert "global" in locations and "europe-west1" in locations, locations
    policy = client.get_iam_policy(request={"resource": key.name})
    assert list(policy.bindings) == [] and policy.etag, policy
    assert list(client.list_import_jobs(request={"parent": ring.name})) == []
    print("official client ok")
    """
)

# The provider's default channel ("tls"), trusting the CA through the environment only.
PROVIDER = textwrap.dedent(
    """
    import os
    from google.auth.credentials import AnonymousCredentials
    from aureus_core import KeyStack
    from aureus_core.keys import KeySpec, KeyType
    from aureus_gcp import GcpKmsProvider
    from aureus_gcp.options import GcpKmsOptions

    options = GcpKmsOptions.from_mapping({
        "endpoint": os.environ["CLOUDKMS_EMULATOR_HOST"],
        "project": "user-project", "location": "global", "key_ring": "aureus",
        "retry_deadline": 2.0, "timeout": 10.0,
    })
    assert options.channel == "tls"
    provider = GcpKmsProvider(options, credentials=AnonymousCredentials())
    wrap = provider.create_key("wrapping", KeySpec(key_type=KeyType.AES_256))
    signer = provider.create_key("signing", KeySpec(key_type=KeyType.ECDSA_P256))
    assert signer.state.value == "enabled", signer.state  # waited out PENDING_GENERATION
    with KeyStack(providers={"gcp-kms": provider}) as stack:
        message = stack.encrypt(b"over tls", keys=[wrap.ref])
        assert stack.decrypt(message) == b"over tls"
    signature = provider.sign(signer.ref, b"signed over tls")
    assert provider.verify(signer.ref, b"signed over tls", signature.value)

    import asyncio
    from aureus_core import AsyncKeyStack

    async def native():  # the async client over the same TLS channel settings
        async with AsyncKeyStack(KeyStack(providers={"gcp-kms": provider}), own=True) as aio:
            sealed = await aio.encrypt(b"native over tls", keys=[wrap.ref])
            assert await aio.decrypt(sealed) == b"native over tls"
            signed = await aio.sign(b"native", key=signer.ref)
            assert await aio.verify(b"native", signed, key=signer.ref)
            assert len(provider._connection._async_clients) == 1  # grpc.aio, not a thread
        assert len(provider._connection._async_clients) == 0  # closed with the stack

    asyncio.run(native())
    provider.close()
    print("provider ok")
    """
)


# The same client without the CA: the handshake must fail (the certificate is checked).
UNTRUSTING_CLIENT = textwrap.dedent(
    """
    import os
    from google.api_core import exceptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import kms

    client = kms.KeyManagementServiceClient(
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": os.environ["CLOUDKMS_EMULATOR_HOST"]},
    )
    try:
        client.list_key_rings(
            request={"parent": "projects/p/locations/global"}, retry=None, timeout=5
        )
    except exceptions.ServiceUnavailable as error:
        print("refused:", type(error).__name__)
    """
)


class _Server:
    def __init__(self, process: subprocess.Popen[str], endpoint: str, env: dict[str, str]):
        self.process, self.endpoint, self.env = process, endpoint, env


def _start(*arguments: str) -> _Server:
    process = subprocess.Popen(
        [sys.executable, "-m", "aureus_gcp.testing", "--port", "0", *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    endpoint = process.stdout.readline().strip()
    env: dict[str, str] = {}
    for line in iter(process.stdout.readline, "\n"):
        name, _, value = line.strip().partition("=")
        env[name] = value
    return _Server(process, endpoint, env)


@pytest.fixture
def tls_server() -> Iterator[_Server]:
    server = _start("--transport", "tls")
    try:
        yield server
    finally:
        if server.process.poll() is None:
            server.process.kill()
        server.process.communicate(timeout=10)


def _client(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GRPC_")}
    return subprocess.run(
        [sys.executable, "-c", script],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_tls_server_serves_the_official_client_and_the_providers_default_channel(
    tls_server: _Server,
) -> None:
    assert tls_server.endpoint.startswith("127.0.0.1:")
    env = tls_server.env
    assert env["CLOUDKMS_EMULATOR_HOST"] == tls_server.endpoint
    ca_file = Path(env["GRPC_DEFAULT_SSL_ROOTS_FILE_PATH"])
    assert ca_file.read_text().startswith("-----BEGIN CERTIFICATE-----")

    official = _client(OFFICIAL_CLIENT, env)
    assert official.returncode == 0, official.stderr
    assert "official client ok" in official.stdout

    provider = _client(PROVIDER, env)
    assert provider.returncode == 0, provider.stderr
    assert "provider ok" in provider.stdout

    # without the CA the handshake fails: the client really checks the certificate
    untrusting = _client(UNTRUSTING_CLIENT, {"CLOUDKMS_EMULATOR_HOST": tls_server.endpoint})
    assert untrusting.returncode == 0, untrusting.stderr
    assert "refused: ServiceUnavailable" in untrusting.stdout

    tls_server.process.send_signal(signal.SIGTERM)
    assert tls_server.process.wait(10) == 0
    assert not ca_file.exists()


def test_insecure_server_prints_its_endpoint_and_stops_on_sigterm() -> None:
    server = _start()
    try:
        assert server.env == {"CLOUDKMS_EMULATOR_HOST": server.endpoint}
        from google.cloud import kms_v1
        from google.cloud.kms_v1.services.key_management_service.transports import (
            KeyManagementServiceGrpcTransport,
        )

        from aureus_gcp.testing.server import client_channel

        channel = client_channel(server.endpoint, "insecure")
        client = kms_v1.KeyManagementServiceClient(
            transport=KeyManagementServiceGrpcTransport(channel=channel)
        )
        answer = client.list_locations(request={"name": "projects/x"})
        names = [loc.name for loc in answer.locations]
        assert names[0] == "projects/x/locations/global"
        client.transport.close()
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(10) == 0
    finally:
        if server.process.poll() is None:
            server.process.kill()
        server.process.communicate(timeout=10)
