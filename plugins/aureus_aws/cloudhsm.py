"""CloudHSM custom key stores: create, connect and check them, and create keys in them.

Every operation that uses a store checks that it is ``CONNECTED`` first and
otherwise raises :class:`~aureus_core.errors.ProviderUnavailable` naming the
store, its state, KMS's connection error code and what to do.  moto does not
implement custom key stores; these paths are tested against botocore's
``Stubber`` with the real request and response shapes (see docs/aws.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import attrs

from aureus_core.errors import KeyNotFound, ProviderUnavailable
from aureus_core.keys import KeyMetadata, KeySpec, KeyType
from aureus_core.sensitive import Secret

from .errors import kms_errors
from .naming import SCHEME
from .provider import AwsKmsProvider

CONNECTED = "CONNECTED"
_ADVICE = {
    "DISCONNECTED": "connect it with aureus_aws.cloudhsm.connect_key_store",
    "CONNECTING": "wait for the connection to finish (it can take 20 minutes)",
    "FAILED": "fix the cause named by the connection error code, disconnect it, then connect "
    "it again",
    "DISCONNECTING": "wait, then connect it again",
}


@attrs.frozen(kw_only=True)
class KeyStoreStatus:
    """What ``DescribeCustomKeyStores`` says about one store."""

    store_id: str
    name: str
    state: str
    cluster_id: str | None = None
    connection_error: str | None = None

    @property
    def connected(self) -> bool:
        """Whether KMS can use the store now."""
        return self.state == CONNECTED


def check_key_store(client: Any, store_id: str) -> KeyStoreStatus:
    """The store's state (``DescribeCustomKeyStores``); :class:`KeyNotFound` if absent."""
    with kms_errors("DescribeCustomKeyStores", f"custom key store {store_id}"):
        stores = client.describe_custom_key_stores(CustomKeyStoreId=store_id)["CustomKeyStores"]
    if not stores:
        raise KeyNotFound(f"no custom key store {store_id}", provider=SCHEME)
    store = stores[0]
    return KeyStoreStatus(
        store_id=str(store["CustomKeyStoreId"]),
        name=str(store.get("CustomKeyStoreName", "")),
        state=str(store.get("ConnectionState", "UNKNOWN")),
        cluster_id=store.get("CloudHsmClusterId"),
        connection_error=store.get("ConnectionErrorCode"),
    )


def require_connected(client: Any, store_id: str) -> KeyStoreStatus:
    """The store's status if it is connected; else :class:`ProviderUnavailable` saying why."""
    status = check_key_store(client, store_id)
    if not status.connected:
        error = f" (connection error {status.connection_error})" if status.connection_error else ""
        advice = _ADVICE.get(status.state, "check it in the KMS console")
        raise ProviderUnavailable(
            f"CloudHSM key store {status.store_id} ({status.name}) is {status.state}{error}, "
            f"not {CONNECTED}: {advice}",
            provider=SCHEME,
            code=status.connection_error or status.state,
        )
    return status


def create_key_store(
    client: Any, name: str, cluster_id: str, trust_anchor_pem: str, kmsuser_password: Secret[str]
) -> str:
    """``CreateCustomKeyStore`` for a CloudHSM cluster; returns the new store's ID.

    ``kmsuser_password`` is the password of the ``kmsuser`` crypto user in the
    cluster; it is revealed only in the request.
    """
    with kms_errors("CreateCustomKeyStore", f"custom key store {name}"):
        response = client.create_custom_key_store(
            CustomKeyStoreName=name,
            CloudHsmClusterId=cluster_id,
            TrustAnchorCertificate=trust_anchor_pem,
            KeyStorePassword=kmsuser_password.reveal(),
            CustomKeyStoreType="AWS_CLOUDHSM",
        )
    return str(response["CustomKeyStoreId"])


def connect_key_store(
    client: Any,
    store_id: str,
    *,
    wait: float = 0.0,
    poll: float = 10.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> KeyStoreStatus:
    """``ConnectCustomKeyStore``; with ``wait`` seconds, poll until it is connected.

    Raises :class:`ProviderUnavailable` if the store ends ``FAILED`` or is not
    connected when ``wait`` runs out.
    """
    status = check_key_store(client, store_id)
    if status.connected:
        return status
    with kms_errors("ConnectCustomKeyStore", f"custom key store {store_id}"):
        client.connect_custom_key_store(CustomKeyStoreId=store_id)
    deadline = clock() + wait
    while True:
        status = check_key_store(client, store_id)
        if status.connected or status.state == "FAILED" or clock() >= deadline:
            break
        sleep(poll)
    if wait > 0 or status.state == "FAILED":
        return require_connected(client, store_id)
    return status


def create_hsm_key(
    provider: AwsKmsProvider, name: str, store_id: str, description: str = ""
) -> KeyMetadata:
    """A symmetric key with ``Origin=AWS_CLOUDHSM`` in a connected store, named ``alias/<name>``."""
    spec = KeySpec(
        key_type=KeyType.AES_256,
        description=description,
        options={"custom_key_store_id": store_id},
    )
    return provider.create_key(name, spec)
