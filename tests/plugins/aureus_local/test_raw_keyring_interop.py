"""Raw keyring keys against the official AWS Encryption SDK, in both directions.

Aureus writes with raw AES (128/192/256) and raw RSA keys (every padding)
under user-chosen key namespaces and key names, and the SDK's raw master keys
configured with the same namespace, name and algorithm decrypt; the SDK
writes and Aureus decrypts.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import aws_encryption_sdk
import pytest
from aws_encryption_sdk.identifiers import CommitmentPolicy, EncryptionKeyType, WrappingAlgorithm
from aws_encryption_sdk.internal.crypto.wrapping_keys import WrappingKey
from aws_encryption_sdk.key_providers.raw import RawMasterKey
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from aureus_core import DecryptionError, KeyStack

FRAME = 1024
SIZES = [0, 1, FRAME - 1, FRAME, FRAME + 1, 3 * FRAME, 3 * FRAME + 7]
AES = {
    "aes-128": WrappingAlgorithm.AES_128_GCM_IV12_TAG16_NO_PADDING,
    "aes-192": WrappingAlgorithm.AES_192_GCM_IV12_TAG16_NO_PADDING,
    "aes-256": WrappingAlgorithm.AES_256_GCM_IV12_TAG16_NO_PADDING,
}
RSA = {
    "pkcs1": WrappingAlgorithm.RSA_PKCS1,
    "oaep-sha1": WrappingAlgorithm.RSA_OAEP_SHA1_MGF1,
    "oaep-sha256": WrappingAlgorithm.RSA_OAEP_SHA256_MGF1,
    "oaep-sha384": WrappingAlgorithm.RSA_OAEP_SHA384_MGF1,
    "oaep-sha512": WrappingAlgorithm.RSA_OAEP_SHA512_MGF1,
}
NAMESPACE = "acme-raw"
VECTORS = Path(__file__).resolve().parents[2] / "data" / "esdk" / "v4-Net-4.0.1.zip"


def pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.fixture(scope="module")
def rsa_keys() -> dict[int, rsa.RSAPrivateKey]:
    return {bits: rsa.generate_private_key(65537, bits) for bits in (2048, 3072)}


@pytest.fixture(scope="module")
def aes_keys() -> dict[str, bytes]:
    return {"aes-128": os.urandom(16), "aes-192": os.urandom(24), "aes-256": os.urandom(32)}


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
    aes_keys: dict[str, bytes],
    rsa_keys: dict[int, rsa.RSAPrivateKey],
) -> Iterator[KeyStack]:
    """Every raw key type imported: ``local://<type>`` and ``local://rsa-<padding>``."""
    keystore = tmp_path_factory.mktemp("raw") / "ks"
    with KeyStack.local(keystore) as stack:
        for key_type, material in aes_keys.items():
            stack.import_key(
                key_type, key_type, raw=material, namespace=NAMESPACE, key_name=f"orders-{key_type}"
            )
        for padding in RSA:
            stack.import_key(
                f"rsa-{padding}",
                "rsa-2048",
                pem=pem(rsa_keys[2048]),
                namespace=NAMESPACE,
                key_name=f"partner-{padding}",
                padding=padding,
            )
        stack.import_key(
            "rsa-3072",
            "rsa-3072",
            pem=pem(rsa_keys[3072]),
            namespace="other-ns",
            key_name="big",
            padding="oaep-sha256",
        )
        yield stack


def sdk_aes(key_type: str, material: bytes) -> RawMasterKey:
    return RawMasterKey(
        provider_id=NAMESPACE,
        key_id=f"orders-{key_type}".encode(),
        wrapping_key=WrappingKey(
            wrapping_algorithm=AES[key_type],
            wrapping_key=material,
            wrapping_key_type=EncryptionKeyType.SYMMETRIC,
        ),
    )


def sdk_rsa(
    padding: str, key: rsa.RSAPrivateKey, *, namespace: str = NAMESPACE, name: str = ""
) -> RawMasterKey:
    return RawMasterKey(
        provider_id=namespace,
        key_id=(name or f"partner-{padding}").encode(),
        wrapping_key=WrappingKey(
            wrapping_algorithm=RSA[padding],
            wrapping_key=pem(key),
            wrapping_key_type=EncryptionKeyType.PRIVATE,
        ),
    )


def sdk() -> aws_encryption_sdk.EncryptionSDKClient:
    return aws_encryption_sdk.EncryptionSDKClient(
        commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
    )


def payload(size: int) -> bytes:
    return bytes(i % 251 for i in range(size))


@pytest.mark.parametrize("signed", [False, True], ids=["0x0478", "0x0578"])
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("key_type", list(AES))
def test_sdk_decrypts_raw_aes(
    stack: KeyStack, aes_keys: dict[str, bytes], key_type: str, size: int, signed: bool
) -> None:
    context = {"tenant": "acme", "ünï": "cödé"}
    message = stack.encrypt(
        payload(size),
        keys=[f"local://{key_type}"],
        context=context,
        signed=signed,
        frame_length=FRAME,
    )
    info = stack.inspect(message)
    assert [(r.provider_id, r.key) for r in info.recipients] == [(NAMESPACE, f"orders-{key_type}")]
    plaintext, header = sdk().decrypt(
        source=message, key_provider=sdk_aes(key_type, aes_keys[key_type])
    )
    assert plaintext == payload(size)
    assert header.algorithm.algorithm_id == (0x0578 if signed else 0x0478)
    assert {k: v for k, v in header.encryption_context.items() if k in context} == context


@pytest.mark.parametrize("signed", [False, True], ids=["0x0478", "0x0578"])
@pytest.mark.parametrize("size", [0, FRAME, FRAME + 1])
@pytest.mark.parametrize("padding", list(RSA))
def test_sdk_decrypts_raw_rsa(
    stack: KeyStack,
    rsa_keys: dict[int, rsa.RSAPrivateKey],
    padding: str,
    size: int,
    signed: bool,
) -> None:
    message = stack.encrypt(
        payload(size), keys=[f"local://rsa-{padding}"], signed=signed, frame_length=FRAME
    )
    info = stack.inspect(message)
    assert [(r.provider_id, r.key) for r in info.recipients] == [(NAMESPACE, f"partner-{padding}")]
    plaintext, _ = sdk().decrypt(source=message, key_provider=sdk_rsa(padding, rsa_keys[2048]))
    assert plaintext == payload(size)


def test_sdk_decrypts_multi_recipient_with_any_one_key(
    stack: KeyStack, aes_keys: dict[str, bytes], rsa_keys: dict[int, rsa.RSAPrivateKey]
) -> None:
    keys = ["local://aes-192", "local://rsa-oaep-sha384", "local://rsa-3072"]
    message = stack.encrypt(payload(FRAME * 2 + 5), keys=keys, frame_length=FRAME)
    assert [r.key for r in stack.inspect(message).recipients] == [
        "orders-aes-192",
        "partner-oaep-sha384",
        "big",
    ]
    for provider in (
        sdk_aes("aes-192", aes_keys["aes-192"]),
        sdk_rsa("oaep-sha384", rsa_keys[2048]),
        sdk_rsa("oaep-sha256", rsa_keys[3072], namespace="other-ns", name="big"),
    ):
        assert sdk().decrypt(source=message, key_provider=provider)[0] == payload(FRAME * 2 + 5)


@pytest.mark.parametrize("size", [0, FRAME + 1])
@pytest.mark.parametrize("key_type", list(AES))
def test_aureus_decrypts_sdk_raw_aes(
    stack: KeyStack, aes_keys: dict[str, bytes], key_type: str, size: int
) -> None:
    message, _ = sdk().encrypt(
        source=payload(size),
        key_provider=sdk_aes(key_type, aes_keys[key_type]),
        encryption_context={"order": "42"},
        frame_length=FRAME,
    )
    assert stack.decrypt(message, context={"order": "42"}) == payload(size)
    assert stack.decrypt(message, keys=[f"local://{key_type}"]) == payload(size)


@pytest.mark.parametrize("padding", list(RSA))
def test_aureus_decrypts_sdk_raw_rsa(
    stack: KeyStack, rsa_keys: dict[int, rsa.RSAPrivateKey], padding: str
) -> None:
    message, _ = sdk().encrypt(
        source=payload(FRAME + 1),
        key_provider=sdk_rsa(padding, rsa_keys[2048]),
        frame_length=FRAME,
    )
    assert stack.decrypt(message, keys=[f"local://rsa-{padding}"]) == payload(FRAME + 1)


def test_public_key_only_encrypts_for_the_holder_of_the_private_key(
    tmp_path: Path, rsa_keys: dict[int, rsa.RSAPrivateKey]
) -> None:
    """A partner's public key is enough to write to them; it cannot read back."""
    public = (
        rsa_keys[2048]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with KeyStack.local(tmp_path / "ks") as stack:
        metadata = stack.import_key(
            "partner",
            "rsa-2048",
            pem=public,
            namespace="partner-ns",
            key_name="inbox",
            padding="oaep-sha256",
        )
        assert dict(metadata.extra)["private_key"] == "no (wrap only)"
        message = stack.encrypt(b"for the partner", keys=["local://partner"])
        plaintext, _ = sdk().decrypt(
            source=message,
            key_provider=sdk_rsa(
                "oaep-sha256", rsa_keys[2048], namespace="partner-ns", name="inbox"
            ),
        )
        assert plaintext == b"for the partner"
        with pytest.raises(DecryptionError, match="could be unwrapped"):
            stack.decrypt(message)


def test_sdk_decrypts_with_the_official_vectors_rsa_4096_key(tmp_path: Path) -> None:
    """The 4096-bit key of the official test vectors, both paddings they use."""
    with zipfile.ZipFile(VECTORS) as archive:
        keys = json.loads(archive.read("keys.json"))["keys"]
    private = keys["rsa-4096-private"]["material"].encode("ascii")
    loaded = serialization.load_pem_private_key(private, password=None)
    assert isinstance(loaded, rsa.RSAPrivateKey)
    with KeyStack.local(tmp_path / "ks") as stack:
        for padding in ("oaep-sha512", "pkcs1"):
            stack.import_key(
                f"v-{padding}",
                "rsa-4096",
                pem=private,
                namespace="aws-raw-vectors-persistant",
                key_name=f"rsa-4096-{padding}",
                padding=padding,
            )
            message = stack.encrypt(
                payload(FRAME + 1), keys=[f"local://v-{padding}"], signed=True, frame_length=FRAME
            )
            provider = sdk_rsa(
                padding,
                loaded,
                namespace="aws-raw-vectors-persistant",
                name=f"rsa-4096-{padding}",
            )
            assert sdk().decrypt(source=message, key_provider=provider)[0] == payload(FRAME + 1)
