"""The Cloud KMS emulator, driven through the official google-cloud-kms client over gRPC."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

pytest.importorskip("google.cloud.kms_v1", reason="needs the gcp extra")

import grpc
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils
from google.api_core import exceptions
from google.api_core.retry import Retry
from google.cloud import kms_v1
from google.cloud.kms_v1.services.key_management_service.transports import (
    KeyManagementServiceGrpcTransport,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from aureus_gcp.testing import CloudKmsEmulator, crc32c

Purpose = kms_v1.CryptoKey.CryptoKeyPurpose
Algorithm = kms_v1.CryptoKeyVersion.CryptoKeyVersionAlgorithm
State = kms_v1.CryptoKeyVersion.CryptoKeyVersionState
NO_RETRY: dict[str, Any] = {"retry": None, "timeout": 5.0}
START = datetime(2030, 1, 1, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def client(gcp_kms_emulator):
    kms = gcp_kms_emulator.client()
    yield kms
    kms.transport.close()


@pytest.fixture
def emulator(gcp_kms):
    return gcp_kms


@pytest.fixture(scope="module")
def clocked():
    """An emulator of its own whose clock starts at 2030-01-01 and moves only by advance()."""
    with CloudKmsEmulator(clock=lambda: START) as emulator:
        kms = emulator.client()
        yield emulator, kms
        kms.transport.close()


def new_ring(kms) -> str:
    parent = "projects/aureus-test/locations/global"
    ring = kms.create_key_ring(
        request={"parent": parent, "key_ring_id": f"ring-{uuid.uuid4().hex[:12]}", "key_ring": {}}
    )
    return str(ring.name)


def new_key(kms, purpose=Purpose.ENCRYPT_DECRYPT, algorithm=None, ring=None, **fields):
    template = {"algorithm": algorithm} if algorithm else {}
    template.update(fields.pop("version_template", {}))
    skip = fields.pop("skip_initial_version_creation", False)
    key = kms.create_crypto_key(
        request={
            "parent": ring or new_ring(kms),
            "crypto_key_id": fields.pop("key_id", "key"),
            "skip_initial_version_creation": skip,
            "crypto_key": {"purpose": purpose, "version_template": template, **fields},
        }
    )
    if not skip and purpose in (Purpose.ASYMMETRIC_SIGN, Purpose.ASYMMETRIC_DECRYPT):
        wait_generated(kms, version_of(key.name, 1))
    return key


def wait_generated(kms, version: str) -> None:
    """Poll, as a client of the real service must, until the version left PENDING_GENERATION."""
    deadline = time.monotonic() + 10
    while kms.get_crypto_key_version(name=version).state == State.PENDING_GENERATION:
        assert time.monotonic() < deadline, f"{version} is still being generated"
        time.sleep(0.01)


def call(method, fields):
    options = {name: fields.pop(name) for name in ("retry", "timeout") if name in fields}
    return method(request=fields, **(options or NO_RETRY))


def encrypt(kms, **fields):
    return call(kms.encrypt, fields)


def decrypt(kms, **fields):
    return call(kms.decrypt, fields)


def version_of(key_name: str, number: int) -> str:
    return f"{key_name}/cryptoKeyVersions/{number}"


# -- resources ----------------------------------------------------------------------


def test_key_ring_create_get_and_errors(client):
    name = new_ring(client)
    assert client.get_key_ring(name=name).name == name
    parent, ring_id = name.rsplit("/keyRings/", 1)
    with pytest.raises(exceptions.AlreadyExists, match=f"KeyRing {name} already exists"):
        client.create_key_ring(request={"parent": parent, "key_ring_id": ring_id}, **NO_RETRY)
    with pytest.raises(exceptions.InvalidArgument, match="key_ring_id"):
        client.create_key_ring(request={"parent": parent, "key_ring_id": "bad id!"}, **NO_RETRY)
    with pytest.raises(exceptions.NotFound, match=f"KeyRing {parent}/keyRings/nope not found"):
        client.get_key_ring(name=f"{parent}/keyRings/nope", **NO_RETRY)


def test_create_symmetric_key_has_enabled_primary(client):
    key = new_key(client, labels={"team": "aureus"})
    assert key.purpose == Purpose.ENCRYPT_DECRYPT
    assert key.primary.name == version_of(key.name, 1)
    assert key.primary.state == State.ENABLED
    assert key.primary.algorithm == Algorithm.GOOGLE_SYMMETRIC_ENCRYPTION
    assert key.version_template.protection_level == kms_v1.ProtectionLevel.SOFTWARE
    assert key.destroy_scheduled_duration == timedelta(days=30)
    assert dict(key.labels) == {"team": "aureus"}
    assert client.get_crypto_key(name=key.name) == key
    with pytest.raises(exceptions.AlreadyExists):
        new_key(client, ring=key.name.rsplit("/cryptoKeys/", 1)[0])


def test_create_key_validates_like_cloud_kms(client):
    ring = new_ring(client)
    with pytest.raises(exceptions.InvalidArgument, match="algorithm must be specified"):
        new_key(client, Purpose.ASYMMETRIC_SIGN, ring=ring)
    with pytest.raises(exceptions.InvalidArgument, match="not valid for purpose"):
        new_key(client, Purpose.ASYMMETRIC_SIGN, Algorithm.GOOGLE_SYMMETRIC_ENCRYPTION, ring=ring)
    with pytest.raises(exceptions.InvalidArgument, match="only be set for keys with purpose"):
        new_key(
            client,
            Purpose.ASYMMETRIC_SIGN,
            Algorithm.EC_SIGN_P256_SHA256,
            ring=ring,
            rotation_period=timedelta(days=30),
            next_rotation_time=datetime.now(timezone.utc),
        )
    with pytest.raises(exceptions.InvalidArgument, match="at least 24 hours"):
        new_key(
            client,
            ring=ring,
            rotation_period=timedelta(hours=1),
            next_rotation_time=datetime.now(timezone.utc),
        )
    with pytest.raises(exceptions.InvalidArgument, match="requires protection level HSM"):
        new_key(client, Purpose.ASYMMETRIC_SIGN, Algorithm.EC_SIGN_SECP256K1_SHA256, ring=ring)
    with pytest.raises(exceptions.NotFound, match="keyRings/missing not found"):
        new_key(client, ring="projects/p/locations/global/keyRings/missing")


def test_skip_initial_version_then_create_version(client):
    key = new_key(client, skip_initial_version_creation=True)
    assert "primary" not in key
    with pytest.raises(exceptions.FailedPrecondition, match="has no primary"):
        encrypt(client, name=key.name, plaintext=b"x", **NO_RETRY)
    version = client.create_crypto_key_version(parent=key.name, crypto_key_version={})
    assert version.name == version_of(key.name, 1)
    assert "primary" not in client.get_crypto_key(name=key.name)


def test_pagination_and_filters(client):
    ring = new_ring(client)
    for index in range(5):
        new_key(client, ring=ring, key_id=f"k{index}", labels={"index": str(index)})
    first = client.list_crypto_keys(request={"parent": ring, "page_size": 2}, **NO_RETRY)
    page = next(iter(first.pages))
    assert [k.name.rsplit("/", 1)[1] for k in page.crypto_keys] == ["k0", "k1"]
    assert page.next_page_token
    assert page.total_size == 5
    assert [k.name.rsplit("/", 1)[1] for k in first] == [f"k{i}" for i in range(5)]

    labelled = client.list_crypto_keys(request={"parent": ring, "filter": "labels.index=3"})
    assert [k.name.rsplit("/", 1)[1] for k in labelled] == ["k3"]
    with pytest.raises(exceptions.InvalidArgument, match="Invalid page token"):
        client.list_crypto_keys(request={"parent": ring, "page_token": "nonsense"}, **NO_RETRY)
    with pytest.raises(exceptions.InvalidArgument, match="Invalid filter"):
        client.list_crypto_keys(request={"parent": ring, "filter": "(labels)"}, **NO_RETRY)

    key = f"{ring}/cryptoKeys/k0"
    client.create_crypto_key_version(parent=key, crypto_key_version={"state": State.DISABLED})
    client.create_crypto_key_version(parent=key, crypto_key_version={})
    enabled = client.list_crypto_key_versions(request={"parent": key, "filter": "state=ENABLED"})
    assert [v.name for v in enabled] == [version_of(key, 1), version_of(key, 3)]
    disabled = client.list_crypto_key_versions(request={"parent": key, "filter": "state!=ENABLED"})
    assert [v.name for v in disabled] == [version_of(key, 2)]
    rings = client.list_key_rings(parent="projects/aureus-test/locations/global")
    assert ring in [r.name for r in rings]


def test_update_crypto_key_with_field_mask(client):
    key = new_key(client, labels={"a": "1"})
    update = {"name": key.name, "labels": {"b": "2"}, "rotation_period": timedelta(days=7)}
    updated = client.update_crypto_key(
        crypto_key=update, update_mask={"paths": ["labels"]}, **NO_RETRY
    )
    assert dict(updated.labels) == {"b": "2"}
    assert "rotation_period" not in updated
    with pytest.raises(exceptions.InvalidArgument, match="next_rotation_time must be set"):
        client.update_crypto_key(
            crypto_key=update, update_mask={"paths": ["rotation_period"]}, **NO_RETRY
        )
    with pytest.raises(exceptions.InvalidArgument, match="purpose cannot be updated"):
        client.update_crypto_key(crypto_key=update, update_mask={"paths": ["purpose"]}, **NO_RETRY)


# -- Encrypt / Decrypt ----------------------------------------------------------------


def test_encrypt_decrypt_round_trip_with_checksums(client):
    key = new_key(client)
    plaintext, aad = b"data key material", b"context"
    encrypted = client.encrypt(
        request={
            "name": key.name,
            "plaintext": plaintext,
            "additional_authenticated_data": aad,
            "plaintext_crc32c": crc32c(plaintext),
            "additional_authenticated_data_crc32c": crc32c(aad),
        }
    )
    assert encrypted.name == version_of(key.name, 1)
    assert encrypted.ciphertext_crc32c == crc32c(encrypted.ciphertext)
    assert encrypted.verified_plaintext_crc32c
    assert encrypted.verified_additional_authenticated_data_crc32c
    assert encrypted.protection_level == kms_v1.ProtectionLevel.SOFTWARE
    assert plaintext not in encrypted.ciphertext

    decrypted = client.decrypt(
        request={
            "name": key.name,
            "ciphertext": encrypted.ciphertext,
            "additional_authenticated_data": aad,
            "ciphertext_crc32c": crc32c(encrypted.ciphertext),
        }
    )
    assert decrypted.plaintext == plaintext
    assert decrypted.plaintext_crc32c == crc32c(plaintext)
    assert decrypted.used_primary


def test_verified_flags_false_without_request_checksums(client):
    key = new_key(client)
    encrypted = encrypt(client, name=key.name, plaintext=b"x")
    assert not encrypted.verified_plaintext_crc32c
    assert not encrypted.verified_additional_authenticated_data_crc32c


def test_encrypt_with_an_explicit_version(client):
    key = new_key(client)
    client.create_crypto_key_version(parent=key.name, crypto_key_version={})
    encrypted = encrypt(client, name=version_of(key.name, 2), plaintext=b"x")
    assert encrypted.name == version_of(key.name, 2)
    decrypted = decrypt(client, name=key.name, ciphertext=encrypted.ciphertext)
    assert decrypted.plaintext == b"x"
    assert not decrypted.used_primary


def test_decrypt_rejects_wrong_aad_and_corrupt_ciphertext(client):
    key = new_key(client)
    ciphertext = encrypt(
        client, name=key.name, plaintext=b"secret", additional_authenticated_data=b"right"
    ).ciphertext
    message = "Decryption failed: the ciphertext is invalid."
    with pytest.raises(exceptions.InvalidArgument, match=re.escape(message)):
        decrypt(
            client,
            name=key.name,
            ciphertext=ciphertext,
            additional_authenticated_data=b"wrong",
            **NO_RETRY,
        )
    flipped = ciphertext[:-1] + bytes([ciphertext[-1] ^ 1])
    for bad in (flipped, b"short", b"\x07" + ciphertext[1:]):
        with pytest.raises(exceptions.InvalidArgument, match=re.escape(message)):
            decrypt(
                client,
                name=key.name,
                ciphertext=bad,
                additional_authenticated_data=b"right",
                **NO_RETRY,
            )
    other = new_key(client)
    with pytest.raises(exceptions.InvalidArgument, match=re.escape(message)):
        decrypt(
            client,
            name=other.name,
            ciphertext=ciphertext,
            additional_authenticated_data=b"right",
            **NO_RETRY,
        )
    with pytest.raises(exceptions.InvalidArgument, match="not a CryptoKeyVersion"):
        decrypt(client, name=version_of(key.name, 1), ciphertext=ciphertext, **NO_RETRY)


def test_request_checksum_mismatch_is_invalid_argument(client):
    key = new_key(client)
    with pytest.raises(
        exceptions.InvalidArgument,
        match="The checksum in field plaintext_crc32c did not match the data in field plaintext",
    ):
        encrypt(client, name=key.name, plaintext=b"x", plaintext_crc32c=crc32c(b"y"), **NO_RETRY)
    ciphertext = encrypt(client, name=key.name, plaintext=b"x").ciphertext
    with pytest.raises(exceptions.InvalidArgument, match="field ciphertext_crc32c"):
        decrypt(client, name=key.name, ciphertext=ciphertext, ciphertext_crc32c=0, **NO_RETRY)


def test_size_limits(client):
    key = new_key(client)
    encrypt(client, name=key.name, plaintext=b"\0" * 65536)
    with pytest.raises(exceptions.InvalidArgument, match="no larger than 65536"):
        encrypt(client, name=key.name, plaintext=b"\0" * 65537, **NO_RETRY)
    with pytest.raises(exceptions.InvalidArgument, match="additional_authenticated_data"):
        encrypt(
            client,
            name=key.name,
            plaintext=b"x",
            additional_authenticated_data=b"\0" * 65537,
            **NO_RETRY,
        )
    hsm = new_key(client, version_template={"protection_level": kms_v1.ProtectionLevel.HSM})
    encrypted = encrypt(client, name=hsm.name, plaintext=b"\0" * 4096)
    assert encrypted.protection_level == kms_v1.ProtectionLevel.HSM
    with pytest.raises(exceptions.InvalidArgument, match="8192 bytes for HSM keys"):
        encrypt(
            client,
            name=hsm.name,
            plaintext=b"\0" * 4096,
            additional_authenticated_data=b"\0" * 4097,
            **NO_RETRY,
        )


@settings(max_examples=30, deadline=None)
@given(plaintext=st.binary(max_size=2048), aad=st.binary(max_size=256))
def test_round_trip_property(client, plaintext, aad):
    key = _PROPERTY_KEY.get("name") or _PROPERTY_KEY.setdefault("name", new_key(client).name)
    encrypted = encrypt(client, name=key, plaintext=plaintext, additional_authenticated_data=aad)
    decrypted = decrypt(
        client, name=key, ciphertext=encrypted.ciphertext, additional_authenticated_data=aad
    )
    assert decrypted.plaintext == plaintext
    assert decrypted.plaintext_crc32c == crc32c(plaintext)


_PROPERTY_KEY: dict[str, str] = {}


# -- version life cycle -----------------------------------------------------------------


def test_disabled_version_fails_precondition_and_can_be_reenabled(client):
    key = new_key(client)
    ciphertext = encrypt(client, name=key.name, plaintext=b"x").ciphertext
    version = version_of(key.name, 1)
    disabled = client.update_crypto_key_version(
        crypto_key_version={"name": version, "state": State.DISABLED},
        update_mask={"paths": ["state"]},
    )
    assert disabled.state == State.DISABLED
    expected = f"CryptoKeyVersion {version} is not enabled, current state is: DISABLED."
    with pytest.raises(exceptions.FailedPrecondition, match=re.escape(expected)):
        decrypt(client, name=key.name, ciphertext=ciphertext, **NO_RETRY)
    with pytest.raises(exceptions.FailedPrecondition, match=re.escape(expected)):
        encrypt(client, name=key.name, plaintext=b"x", **NO_RETRY)
    client.update_crypto_key_version(
        crypto_key_version={"name": version, "state": State.ENABLED},
        update_mask={"paths": ["state"]},
    )
    assert decrypt(client, name=key.name, ciphertext=ciphertext).plaintext == b"x"
    with pytest.raises(exceptions.InvalidArgument, match="cannot be updated"):
        client.update_crypto_key_version(
            crypto_key_version={"name": version}, update_mask={"paths": ["algorithm"]}, **NO_RETRY
        )


def test_new_version_becomes_primary_only_when_asked(client):
    key = new_key(client)
    old = encrypt(client, name=key.name, plaintext=b"old").ciphertext
    created = client.create_crypto_key_version(parent=key.name, crypto_key_version={})
    assert created.name == version_of(key.name, 2)
    assert created.state == State.ENABLED
    assert encrypt(client, name=key.name, plaintext=b"x").name == version_of(key.name, 1)

    updated = client.update_crypto_key_primary_version(name=key.name, crypto_key_version_id="2")
    assert updated.primary.name == version_of(key.name, 2)
    assert encrypt(client, name=key.name, plaintext=b"x").name == version_of(key.name, 2)
    decrypted = decrypt(client, name=key.name, ciphertext=old)
    assert (decrypted.plaintext, decrypted.used_primary) == (b"old", False)
    with pytest.raises(exceptions.NotFound, match="cryptoKeyVersions/9 not found"):
        client.update_crypto_key_primary_version(
            name=key.name, crypto_key_version_id="9", **NO_RETRY
        )


def test_destroy_restore_and_destruction_on_the_clock(clocked):
    emulator, kms = clocked
    key = new_key(kms)
    ciphertext = encrypt(kms, name=key.name, plaintext=b"x").ciphertext
    version = version_of(key.name, 1)

    scheduled = kms.destroy_crypto_key_version(name=version)
    assert scheduled.state == State.DESTROY_SCHEDULED
    assert scheduled.destroy_time == emulator.now() + timedelta(days=30)
    with pytest.raises(exceptions.FailedPrecondition, match="DESTROY_SCHEDULED"):
        decrypt(kms, name=key.name, ciphertext=ciphertext, **NO_RETRY)
    with pytest.raises(exceptions.FailedPrecondition, match="cannot be destroyed"):
        kms.destroy_crypto_key_version(name=version, **NO_RETRY)

    restored = kms.restore_crypto_key_version(name=version)
    assert restored.state == State.DISABLED
    assert "destroy_time" not in restored

    kms.destroy_crypto_key_version(name=version)
    emulator.advance(timedelta(days=29))
    assert kms.get_crypto_key_version(name=version).state == State.DESTROY_SCHEDULED
    emulator.advance(timedelta(days=1))
    destroyed = kms.get_crypto_key_version(name=version)
    assert destroyed.state == State.DESTROYED
    assert destroyed.destroy_event_time == START + timedelta(days=30)
    with pytest.raises(exceptions.FailedPrecondition, match="current state is: DESTROYED"):
        decrypt(kms, name=key.name, ciphertext=ciphertext, **NO_RETRY)
    with pytest.raises(exceptions.FailedPrecondition, match="not scheduled for destruction"):
        kms.restore_crypto_key_version(name=version, **NO_RETRY)


def test_custom_destroy_duration(clocked):
    emulator, kms = clocked
    key = new_key(kms, destroy_scheduled_duration=timedelta(days=1))
    scheduled = kms.destroy_crypto_key_version(name=version_of(key.name, 1))
    assert scheduled.destroy_time == emulator.now() + timedelta(days=1)


def test_automatic_rotation_on_the_clock(clocked):
    emulator, kms = clocked
    first_rotation = emulator.now() + timedelta(days=1)
    key = new_key(kms, rotation_period=timedelta(days=1), next_rotation_time=first_rotation)
    assert key.next_rotation_time == first_rotation
    emulator.advance(timedelta(days=2, hours=1))
    rotated = kms.get_crypto_key(name=key.name)
    assert rotated.primary.name == version_of(key.name, 3)
    assert rotated.next_rotation_time == first_rotation + timedelta(days=2)
    versions = list(kms.list_crypto_key_versions(parent=key.name))
    assert [v.create_time for v in versions[1:]] == [
        first_rotation,
        first_rotation + timedelta(days=1),
    ]


# -- asymmetric keys --------------------------------------------------------------------


def public_key(kms, version):
    answer = kms.get_public_key(name=version)
    assert answer.pem_crc32c == crc32c(answer.pem.encode())
    assert answer.name == version
    return answer, serialization.load_pem_public_key(answer.pem.encode())


def sign(kms, version, *, digest=None, data=None):
    request = {"name": version}
    if digest is not None:
        kind, value = digest
        request.update(digest={kind: value}, digest_crc32c=crc32c(value))
    if data is not None:
        request.update(data=data, data_crc32c=crc32c(data))
    answer = kms.asymmetric_sign(request=request, **NO_RETRY)
    assert answer.name == version
    assert answer.signature_crc32c == crc32c(answer.signature)
    assert answer.verified_digest_crc32c == (digest is not None)
    assert answer.verified_data_crc32c == (data is not None)
    return answer.signature


def openssl_verify(tmp_path, pem: str, signature: bytes, data: bytes, *options: str) -> None:
    (tmp_path / "pub.pem").write_text(pem)
    (tmp_path / "sig.der").write_bytes(signature)
    (tmp_path / "data").write_bytes(data)
    result = subprocess.run(
        [
            "openssl",
            "dgst",
            "-sha256",
            "-verify",
            "pub.pem",
            *options,
            "-signature",
            "sig.der",
            "data",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Verified OK" in result.stdout


def test_ec_p256_signature_verifies_with_cryptography_and_openssl(client, tmp_path):
    key = new_key(client, Purpose.ASYMMETRIC_SIGN, Algorithm.EC_SIGN_P256_SHA256)
    version = version_of(key.name, 1)
    assert "primary" not in key
    answer, public = public_key(client, version)
    assert answer.algorithm == Algorithm.EC_SIGN_P256_SHA256
    data = b"message to sign"
    signature = sign(client, version, digest=("sha256", hashlib.sha256(data).digest()))
    utils.decode_dss_signature(signature)  # DER
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    openssl_verify(tmp_path, answer.pem, signature, data)


def test_rsa_pss_signature_verifies_with_cryptography_and_openssl(client, tmp_path):
    key = new_key(client, Purpose.ASYMMETRIC_SIGN, Algorithm.RSA_SIGN_PSS_2048_SHA256)
    version = version_of(key.name, 1)
    answer, public = public_key(client, version)
    data = b"message to sign"
    signature = sign(client, version, digest=("sha256", hashlib.sha256(data).digest()))
    assert isinstance(public, rsa.RSAPublicKey)
    assert public.key_size == 2048
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    public.verify(signature, data, pss, hashes.SHA256())
    openssl_verify(
        tmp_path,
        answer.pem,
        signature,
        data,
        "-sigopt",
        "rsa_padding_mode:pss",
        "-sigopt",
        "rsa_pss_saltlen:-1",
    )


def test_other_signing_algorithms(client):
    data = b"payload"
    ring = new_ring(client)
    p384 = new_key(client, Purpose.ASYMMETRIC_SIGN, Algorithm.EC_SIGN_P384_SHA384, ring=ring)
    version = version_of(p384.name, 1)
    signature = sign(client, version, digest=("sha384", hashlib.sha384(data).digest()))
    public_key(client, version)[1].verify(signature, data, ec.ECDSA(hashes.SHA384()))
    # data instead of a digest: the service hashes it
    signature = sign(client, version, data=data)
    public_key(client, version)[1].verify(signature, data, ec.ECDSA(hashes.SHA384()))

    pkcs1 = new_key(
        client,
        Purpose.ASYMMETRIC_SIGN,
        Algorithm.RSA_SIGN_PKCS1_2048_SHA256,
        ring=ring,
        key_id="pkcs1",
    )
    version = version_of(pkcs1.name, 1)
    signature = sign(client, version, digest=("sha256", hashlib.sha256(data).digest()))
    public = public_key(client, version)[1]
    public.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())

    edwards = new_key(
        client, Purpose.ASYMMETRIC_SIGN, Algorithm.EC_SIGN_ED25519, ring=ring, key_id="ed"
    )
    version = version_of(edwards.name, 1)
    signature = sign(client, version, data=data)
    public = public_key(client, version)[1]
    assert isinstance(public, ed25519.Ed25519PublicKey)
    public.verify(signature, data)
    with pytest.raises(exceptions.InvalidArgument, match="signs data, not a digest"):
        sign(client, version, digest=("sha256", hashlib.sha256(data).digest()))


def test_sign_rejects_mismatched_digests(client):
    key = new_key(client, Purpose.ASYMMETRIC_SIGN, Algorithm.EC_SIGN_P256_SHA256)
    version = version_of(key.name, 1)
    with pytest.raises(exceptions.InvalidArgument, match="digest type sha384 does not match"):
        sign(client, version, digest=("sha384", hashlib.sha384(b"x").digest()))
    with pytest.raises(exceptions.InvalidArgument, match="must be 32 bytes"):
        sign(client, version, digest=("sha256", b"too short"))
    with pytest.raises(exceptions.InvalidArgument, match="field digest_crc32c"):
        client.asymmetric_sign(
            request={"name": version, "digest": {"sha256": b"\0" * 32}, "digest_crc32c": 1},
            **NO_RETRY,
        )
    with pytest.raises(exceptions.InvalidArgument, match="Either digest or data"):
        client.asymmetric_sign(request={"name": version}, **NO_RETRY)


def test_asymmetric_ops_need_an_enabled_version_and_the_right_purpose(client):
    signing = new_key(client, Purpose.ASYMMETRIC_SIGN, Algorithm.EC_SIGN_P256_SHA256)
    version = version_of(signing.name, 1)
    client.update_crypto_key_version(
        crypto_key_version={"name": version, "state": State.DISABLED},
        update_mask={"paths": ["state"]},
    )
    with pytest.raises(exceptions.FailedPrecondition, match="is not enabled"):
        sign(client, version, digest=("sha256", b"\0" * 32))
    with pytest.raises(exceptions.FailedPrecondition, match="is not enabled"):
        client.get_public_key(name=version, **NO_RETRY)
    with pytest.raises(exceptions.FailedPrecondition, match="requires a CryptoKey with purpose"):
        encrypt(client, name=signing.name, plaintext=b"x", **NO_RETRY)
    symmetric = new_key(client)
    with pytest.raises(exceptions.FailedPrecondition, match="purpose ASYMMETRIC_SIGN"):
        sign(client, version_of(symmetric.name, 1), digest=("sha256", b"\0" * 32))
    with pytest.raises(exceptions.InvalidArgument, match="valid CryptoKeyVersion"):
        client.asymmetric_sign(request={"name": signing.name}, **NO_RETRY)


def test_asymmetric_decrypt_rsa_oaep(client):
    key = new_key(client, Purpose.ASYMMETRIC_DECRYPT, Algorithm.RSA_DECRYPT_OAEP_2048_SHA256)
    version = version_of(key.name, 1)
    public = public_key(client, version)[1]
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    ciphertext = public.encrypt(b"wrapped secret", oaep)
    answer = client.asymmetric_decrypt(
        request={"name": version, "ciphertext": ciphertext, "ciphertext_crc32c": crc32c(ciphertext)}
    )
    assert answer.plaintext == b"wrapped secret"
    assert answer.plaintext_crc32c == crc32c(b"wrapped secret")
    assert answer.verified_ciphertext_crc32c
    with pytest.raises(exceptions.InvalidArgument, match="Decryption failed"):
        client.asymmetric_decrypt(name=version, ciphertext=b"\0" * 256, **NO_RETRY)


def test_public_key_der_format(client):
    key = new_key(client, Purpose.ASYMMETRIC_SIGN, Algorithm.EC_SIGN_P256_SHA256)
    answer = client.get_public_key(
        request={
            "name": version_of(key.name, 1),
            "public_key_format": kms_v1.PublicKey.PublicKeyFormat.DER,
        }
    )
    assert answer.public_key.crc32c_checksum == crc32c(answer.public_key.data)
    der = serialization.load_der_public_key(answer.public_key.data)
    assert der == serialization.load_pem_public_key(answer.pem.encode())


def test_mac_sign_and_verify(client):
    key = new_key(client, Purpose.MAC, Algorithm.HMAC_SHA256)
    version = version_of(key.name, 1)
    signed = client.mac_sign(
        request={"name": version, "data": b"abc", "data_crc32c": crc32c(b"abc")}
    )
    assert len(signed.mac) == 32
    assert signed.mac_crc32c == crc32c(signed.mac)
    assert signed.verified_data_crc32c
    good = client.mac_verify(name=version, data=b"abc", mac=signed.mac)
    assert good.success
    assert good.verified_success_integrity
    assert not client.mac_verify(name=version, data=b"abd", mac=signed.mac).success


def test_generate_random_bytes(client):
    answer = client.generate_random_bytes(
        location="projects/p/locations/global",
        length_bytes=32,
        protection_level=kms_v1.ProtectionLevel.HSM,
    )
    assert len(answer.data) == 32
    assert answer.data_crc32c == crc32c(answer.data)
    with pytest.raises(exceptions.InvalidArgument, match="HSM only"):
        client.generate_random_bytes(
            location="projects/p/locations/global", length_bytes=32, protection_level=0, **NO_RETRY
        )


def test_methods_not_emulated_answer_unimplemented(client):
    with pytest.raises(exceptions.MethodNotImplemented):
        client.raw_encrypt(
            request={"name": "projects/p/locations/l/keyRings/r/cryptoKeys/k"}, **NO_RETRY
        )


# -- hooks ----------------------------------------------------------------------------------


def test_fail_n_times_then_recover(emulator, client):
    key = new_key(client)
    emulator.fail("Encrypt", grpc.StatusCode.UNAVAILABLE, times=2, message="try later")
    for _ in range(2):
        with pytest.raises(exceptions.ServiceUnavailable, match="try later"):
            encrypt(client, name=key.name, plaintext=b"x", **NO_RETRY)
    assert encrypt(client, name=key.name, plaintext=b"x", **NO_RETRY).ciphertext
    emulator.fail("Encrypt", grpc.StatusCode.UNAVAILABLE, times=2)
    retry = Retry(initial=0.01, maximum=0.02, multiplier=1.0, timeout=5.0)
    assert encrypt(client, name=key.name, plaintext=b"x", retry=retry, timeout=5.0).ciphertext
    codes = [call.code for call in emulator.calls if call.method == "Encrypt"][-3:]
    assert codes == [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.OK]


def test_fail_every_rpc_until_cleared(emulator, client):
    key = new_key(client)
    emulator.fail(None, grpc.StatusCode.RESOURCE_EXHAUSTED)
    for _ in range(3):
        with pytest.raises(exceptions.ResourceExhausted, match="injected fault"):
            client.get_crypto_key(name=key.name, **NO_RETRY)
    emulator.clear_faults()
    assert client.get_crypto_key(name=key.name, **NO_RETRY).name == key.name
    with pytest.raises(ValueError, match="unknown RPC"):
        emulator.fail("Encrpyt", grpc.StatusCode.UNAVAILABLE)


def test_corrupt_checksums(emulator, client):
    key = new_key(client)
    emulator.corrupt_checksums("Encrypt", times=1)
    client.get_crypto_key(name=key.name)  # no checksum: does not use up the corruption
    bad = encrypt(client, name=key.name, plaintext=b"x", plaintext_crc32c=crc32c(b"x"))
    assert bad.ciphertext_crc32c != crc32c(bad.ciphertext)
    assert not bad.verified_plaintext_crc32c
    good = encrypt(client, name=key.name, plaintext=b"x", plaintext_crc32c=crc32c(b"x"))
    assert good.ciphertext_crc32c == crc32c(good.ciphertext)
    assert good.verified_plaintext_crc32c

    emulator.corrupt_checksums()
    decrypted = decrypt(client, name=key.name, ciphertext=good.ciphertext)
    assert decrypted.plaintext == b"x"
    assert decrypted.plaintext_crc32c != crc32c(b"x")
    signing = new_key(client, Purpose.ASYMMETRIC_SIGN, Algorithm.EC_SIGN_P256_SHA256)
    answer = client.get_public_key(name=version_of(signing.name, 1))
    assert answer.pem_crc32c != crc32c(answer.pem.encode())


def test_policy_denies_with_cloud_kms_message(emulator, client):
    key = new_key(client)
    seen = []

    def policy(method, resource, metadata):
        seen.append((method, resource, metadata.get("x-goog-request-params")))
        return method != "Encrypt"

    emulator.set_policy(policy)
    expected = (
        f"Permission 'cloudkms.cryptoKeyVersions.useToEncrypt' denied on resource "
        f"'{key.name}' (or it may not exist)."
    )
    with pytest.raises(exceptions.PermissionDenied, match=re.escape(expected)):
        encrypt(client, name=key.name, plaintext=b"x", **NO_RETRY)
    assert client.get_crypto_key(name=key.name).name == key.name
    assert seen[0] == ("Encrypt", key.name, f"name={key.name}")
    emulator.set_policy(None)
    assert encrypt(client, name=key.name, plaintext=b"x").ciphertext


def test_calls_record_a_hash_of_the_token_never_the_token(emulator, client):
    key = new_key(client)
    token = f"secret-{uuid.uuid4().hex}"
    client.get_crypto_key(name=key.name, metadata=[("authorization", f"Bearer {token}")])
    call = emulator.calls[-1]
    assert (call.method, call.resource, call.code) == (
        "GetCryptoKey",
        key.name,
        grpc.StatusCode.OK,
    )
    digest = hashlib.sha256(token.encode()).hexdigest()
    assert call.metadata["authorization"] == f"sha256:{digest}"
    assert token not in repr(emulator.calls)
    assert emulator.last_authorization() == token


def test_local_transport_carries_call_credentials():
    with CloudKmsEmulator(transport="local") as emulator:
        assert emulator.provider_options()["channel"] == "local"
        emulator.create_key("projects/p/locations/global/keyRings/r/cryptoKeys/k")
        credentials = grpc.composite_channel_credentials(
            grpc.local_channel_credentials(grpc.LocalConnectionType.LOCAL_TCP),
            grpc.access_token_call_credentials("local-token"),
        )
        channel = grpc.secure_channel(emulator.endpoint, credentials)
        kms = kms_v1.KeyManagementServiceClient(
            transport=KeyManagementServiceGrpcTransport(channel=channel)
        )
        try:
            key = kms.get_crypto_key(name="projects/p/locations/global/keyRings/r/cryptoKeys/k")
        finally:
            channel.close()
        assert key.primary.state == State.ENABLED
        assert emulator.last_authorization() == "local-token"


def test_reset_and_options():
    with CloudKmsEmulator() as emulator:
        name = emulator.create_key("projects/p/locations/l/keyRings/r/cryptoKeys/k")
        emulator.fail(None, grpc.StatusCode.INTERNAL)
        emulator.reset()
        kms = emulator.client()
        try:
            with pytest.raises(exceptions.NotFound):
                kms.get_crypto_key(name=name, **NO_RETRY)
        finally:
            kms.transport.close()
        assert [call.method for call in emulator.calls] == ["GetCryptoKey"]
        assert emulator.provider_options(timeout=9.0) == {
            "endpoint": emulator.endpoint,
            "channel": "insecure",
            "timeout": 9.0,
            "retry_deadline": 1.0,
            "retry_initial": 0.01,
            "retry_maximum": 0.05,
        }
    with pytest.raises(ValueError, match="loopback"):
        CloudKmsEmulator(host="0.0.0.0")  # noqa: S104
    with pytest.raises(ValueError, match="transport"):
        CloudKmsEmulator(transport="quic")
    with pytest.raises(RuntimeError, match="not running"):
        _ = CloudKmsEmulator().endpoint
    with pytest.raises(ValueError, match="only moves forward"):
        CloudKmsEmulator().advance(timedelta(seconds=-1))


def test_provider_fixture_points_at_the_emulator(gcp_kms_provider, gcp_kms):
    from aureus_gcp import GcpKmsProvider

    assert isinstance(gcp_kms_provider, GcpKmsProvider)
    assert gcp_kms.provider_options()["endpoint"] == gcp_kms.endpoint


def test_python_dash_m_runs_the_emulator():
    key = "projects/p/locations/global/keyRings/cli/cryptoKeys/k"
    process = subprocess.Popen(
        [sys.executable, "-m", "aureus_gcp.testing", "--port", "0", "--key", key],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        endpoint = process.stdout.readline().strip()
        assert re.fullmatch(r"127\.0\.0\.1:\d+", endpoint), endpoint
        channel = grpc.insecure_channel(endpoint)
        try:
            kms = kms_v1.KeyManagementServiceClient(
                transport=KeyManagementServiceGrpcTransport(channel=channel)
            )
            ciphertext = encrypt(kms, name=key, plaintext=b"cli", **NO_RETRY).ciphertext
            assert decrypt(kms, name=key, ciphertext=ciphertext, **NO_RETRY).plaintext == b"cli"
        finally:
            channel.close()
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr
    assert "listening on" in stderr


# -- what the real service answers that the emulator used to leave UNIMPLEMENTED ------


def test_locations_import_jobs_and_iam_answer_as_the_service_does(client):
    from google.iam.v1 import policy_pb2  # type: ignore[import-untyped]

    answer = client.list_locations(request={"name": "projects/aureus-test"})
    ids = [location.location_id for location in answer.locations]
    assert ids[0] == "global"
    assert {"us", "europe", "us-central1"} <= set(ids)
    metadata = kms_v1.LocationMetadata.deserialize(answer.locations[0].metadata.value)
    assert metadata.hsm_available
    found = client.get_location(request={"name": "projects/aureus-test/locations/europe-west1"})
    assert found.display_name == "Belgium"
    with pytest.raises(exceptions.NotFound, match="nowhere"):
        client.get_location(request={"name": "projects/aureus-test/locations/nowhere"}, **NO_RETRY)

    key = new_key(client)
    ring = key.name.split("/cryptoKeys/")[0]
    assert list(client.list_import_jobs(request={"parent": ring})) == []
    with pytest.raises(exceptions.NotFound):
        client.list_import_jobs(request={"parent": ring + "-missing"}, **NO_RETRY)

    empty = client.get_iam_policy(request={"resource": key.name})
    assert list(empty.bindings) == []
    assert empty.etag
    binding = policy_pb2.Binding(role="roles/cloudkms.viewer", members=["user:a@example.com"])
    policy = policy_pb2.Policy(bindings=[binding], etag=empty.etag)
    stored = client.set_iam_policy(request={"resource": key.name, "policy": policy})
    assert stored.etag != empty.etag
    assert client.get_iam_policy(request={"resource": key.name}).bindings[0].role == (
        "roles/cloudkms.viewer"
    )
    with pytest.raises(exceptions.Aborted, match="concurrent policy changes"):  # stale etag
        client.set_iam_policy(request={"resource": key.name, "policy": policy}, **NO_RETRY)
    asked = ["cloudkms.cryptoKeyVersions.useToEncrypt"]
    granted = client.test_iam_permissions(request={"resource": key.name, "permissions": asked})
    assert list(granted.permissions) == asked
    with pytest.raises(exceptions.NotFound):
        client.get_iam_policy(request={"resource": key.name + "-missing"}, **NO_RETRY)


def test_asymmetric_versions_are_pending_generation_until_generated():
    with CloudKmsEmulator(generation_delay=60) as slow:
        kms = slow.client()
        try:
            key = kms.create_crypto_key(
                request={
                    "parent": new_ring(kms),
                    "crypto_key_id": "slow",
                    "crypto_key": {
                        "purpose": Purpose.ASYMMETRIC_SIGN,
                        "version_template": {"algorithm": Algorithm.EC_SIGN_P256_SHA256},
                    },
                }
            )
            version = version_of(key.name, 1)
            assert kms.get_crypto_key_version(name=version).state == State.PENDING_GENERATION
            with pytest.raises(exceptions.FailedPrecondition, match="PENDING_GENERATION"):
                kms.asymmetric_sign(
                    request={"name": version, "digest": {"sha256": b"\0" * 32}}, **NO_RETRY
                )
            symmetric = new_key(kms)  # symmetric versions are ENABLED at once
            assert symmetric.primary.state == State.ENABLED
        finally:
            kms.transport.close()


def test_clock_advances_stay_with_the_test(gcp_kms, gcp_kms_isolated):
    before = gcp_kms.now()
    gcp_kms_isolated.advance(timedelta(days=400))
    assert gcp_kms.now() - before < timedelta(minutes=1)  # the shared emulator did not move
    assert gcp_kms_isolated.now() - before >= timedelta(days=400)
    gcp_kms.advance(timedelta(days=30))
    assert gcp_kms.now() - before >= timedelta(days=30)
    gcp_kms.reset_clock()  # what the gcp_kms fixture does after every test
    assert gcp_kms.now() - before < timedelta(minutes=1)
