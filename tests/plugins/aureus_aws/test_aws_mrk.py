"""Multi-Region keys: a replica in the provider's region decrypts what the primary wrapped."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse

from aureus_aws import KmsArn
from aureus_aws.naming import same_key
from aureus_core import KeyStack
from aureus_core.errors import DecryptionError
from aureus_core.keyref import KeyRef
from aureus_core.keys import KeySpec, KeyType

PAYLOAD = b"replicated " * 40


@pytest.fixture
def multi_region_kms(moto_server: Any) -> Any:
    """Give moto real multi-Region key behaviour, for the clients a test names.

    moto gap: moto cannot use multi-Region keys across regions.  Its server answers
    ReplicateKey with a 500, and its ciphertext format keeps only 36 characters of
    the key ID, so it cannot decrypt anything a 40-character ``mrk-`` key wrapped,
    even in the primary's own region.  Real KMS shares one key material between a
    primary and its replicas.  This test-only hook supplies that: calls naming any
    region's ARN of the key are served, with moto's real cryptography, by one
    ordinary moto key holding the shared material, and the answer names the ARN
    of the region asked, as KMS does.
    """
    backing_client = boto3.client("kms", region_name="us-east-1", endpoint_url=moto_server.url)
    backing = backing_client.create_key(Description="shared MRK material")["KeyMetadata"]["Arn"]
    seen: list[tuple[str, str]] = []

    def install(client: Any, key_id: str) -> list[tuple[str, str]]:
        def serve(params: dict[str, Any], model: Any, **_: Any) -> Any:
            request = json.loads(params["body"] or b"{}")
            asked = KmsArn.parse(str(request.get("KeyId", "")))
            if asked is None or asked.resource_id != key_id:
                return None  # not the multi-Region key: moto answers
            seen.append((model.name, str(asked)))
            context = request.get("EncryptionContext", {})
            if model.name == "GenerateDataKey":
                body = backing_client.generate_data_key(
                    KeyId=backing,
                    NumberOfBytes=request["NumberOfBytes"],
                    EncryptionContext=context,
                )
            elif model.name == "Encrypt":
                body = backing_client.encrypt(
                    KeyId=backing,
                    Plaintext=base64.b64decode(request["Plaintext"]),
                    EncryptionContext=context,
                )
            elif model.name == "Decrypt":
                body = backing_client.decrypt(
                    KeyId=backing,
                    CiphertextBlob=base64.b64decode(request["CiphertextBlob"]),
                    EncryptionContext=context,
                )
            else:
                return None
            body["KeyId"] = str(asked)
            return AWSResponse("", 200, {}, None), body

        client.meta.events.register("before-call.kms.*", serve)
        return seen

    return install


def test_same_key_is_multi_region_aware() -> None:
    east = KmsArn.parse(
        "arn:aws:kms:us-east-1:111122223333:key/mrk-0123456789abcdef0123456789abcdef"
    )
    assert east is not None
    assert same_key(east, east.in_region("eu-west-1"))
    elsewhere = KmsArn.parse(str(east).replace("111122223333", "444455556666"))
    assert elsewhere is not None
    assert not same_key(east, elsewhere.in_region("eu-west-1"))
    single = KmsArn.parse(
        "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    )
    assert single is not None
    assert not same_key(single, single.in_region("eu-west-1"))


def test_replica_decrypts_what_the_primary_wrapped(
    make_provider: Any, multi_region_kms: Any
) -> None:
    east = make_provider(region="us-east-1")
    spec = KeySpec(key_type=KeyType.AES_256, options={"multi_region": "true"})
    primary = east.create_key(f"mrk-{uuid.uuid4().hex[:8]}", spec)
    assert dict(primary.extra)["multi_region"] == "true"
    key_id = KmsArn.parse(primary.ref.key_id).resource_id  # type: ignore[union-attr]
    seen = multi_region_kms(east.client(), key_id)
    with KeyStack(providers={"aws-kms": east}) as stack:
        message = stack.encrypt(PAYLOAD, keys=[primary.ref])

    west = make_provider(region="us-west-2")
    multi_region_kms(west.client("us-west-2"), key_id)
    replica = KeyRef(scheme="aws-kms", key_id=primary.ref.key_id.replace("us-east-1", "us-west-2"))
    with KeyStack(providers={"aws-kms": west}) as stack:
        assert stack.decrypt(message, keys=[replica]) == PAYLOAD
        assert seen == [("GenerateDataKey", primary.ref.key_id), ("Decrypt", replica.key_id)]
        # Strict mode names the replica the provider's region holds, not the primary.
        with pytest.raises(DecryptionError):
            stack.decrypt(message, keys=[primary.ref])
