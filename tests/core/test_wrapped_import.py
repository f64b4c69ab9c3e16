"""Wrapped import in the core: the offline wrap, its fingerprint check, the stack and the CLI.

The provider side is covered by the conformance kit (local and PKCS#11) and by
tests/plugins/aureus_local/test_local_wrapped_import.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap_with_padding

from aureus_core import AsyncKeyStack, KeyStack
from aureus_core.errors import ConfigError, ImportRefused
from aureus_core.interfaces import KeyMaterial
from aureus_core.keys import KeyType
from aureus_core.sensitive import Secret
from aureus_core.testing.audit_capture import capture_audit
from aureus_core.testing.key_material import fresh_material
from aureus_core.wrapped_import import (
    RSA_OAEP_SHA1_AES_KWP,
    RSA_OAEP_SHA256_AES_KWP,
    decode_material,
    unwrap_for_import,
    wrap_for_import,
    wrapping_key_fingerprint,
)


@pytest.fixture(scope="module")
def wrapping_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=3072)


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_fingerprint_is_sha256_of_the_der_and_accepts_other_spellings(
    wrapping_key: rsa.RSAPrivateKey,
) -> None:
    der = wrapping_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = hashlib.sha256(der).hexdigest()
    assert wrapping_key_fingerprint(_pem(wrapping_key)) == f"sha256:{digest}"
    colons = "SHA256:" + ":".join(digest[i : i + 2] for i in range(0, 64, 2)).upper()
    key = os.urandom(32)
    for spelling in (digest, colons, f"  sha256:{digest}\n"):
        blob = wrap_for_import(
            "aes-256",
            KeyMaterial(format="raw", data=Secret(key)),
            wrapping_public_key=_pem(wrapping_key),
            algorithm=RSA_OAEP_SHA256_AES_KWP,
            expected_fingerprint=spelling,
        )
        opened = unwrap_for_import(blob, wrapping_key, RSA_OAEP_SHA256_AES_KWP, "0" * 32)
        assert bytes(opened) == key


@pytest.mark.parametrize("algorithm", [RSA_OAEP_SHA1_AES_KWP, RSA_OAEP_SHA256_AES_KWP])
def test_blob_layout_is_oaep_then_rfc5649(wrapping_key: rsa.RSAPrivateKey, algorithm: str) -> None:
    """The bytes open with plain cryptography calls: RSA-OAEP head, AES-KWP tail."""
    key = os.urandom(32)
    blob = wrap_for_import(
        KeyType.AES_256,
        KeyMaterial(format="raw", data=Secret(key)),
        wrapping_public_key=_pem(wrapping_key),
        algorithm=algorithm,
        expected_fingerprint=wrapping_key_fingerprint(_pem(wrapping_key)),
    )
    assert len(blob) == 384 + 40
    digest = hashes.SHA1() if algorithm == RSA_OAEP_SHA1_AES_KWP else hashes.SHA256()  # noqa: S303
    ephemeral = wrapping_key.decrypt(
        blob[:384], padding.OAEP(mgf=padding.MGF1(digest), algorithm=digest, label=None)
    )
    assert aes_key_unwrap_with_padding(ephemeral, blob[384:]) == key


@pytest.mark.parametrize("size", [5, 16, 24, 31, 33])
def test_a_one_time_key_that_is_not_aes_256_is_the_one_refusal(
    wrapping_key: rsa.RSAPrivateKey, size: int
) -> None:
    """The OAEP part holds the one-time AES-256 key. Another length, built byte by byte by
    whoever holds the public wrapping key, gets the same refusal as any other failure.
    Before, 5 bytes escaped as cryptography's ValueError, and 16 or 24 bytes were used."""
    from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding

    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    one_time = os.urandom(size)
    tail = (
        aes_key_wrap_with_padding(one_time, os.urandom(32)) if size in (16, 24) else os.urandom(40)
    )
    blob = wrapping_key.public_key().encrypt(one_time, oaep) + tail
    with pytest.raises(ImportRefused) as refused:
        unwrap_for_import(blob, wrapping_key, RSA_OAEP_SHA256_AES_KWP, "0" * 32)
    assert str(refused.value) == (
        f"the wrapped key material does not open with the wrapping key of import token "
        f"{'0' * 32}: it was wrapped for another token's key, or altered on the way; wrap the "
        "key again with this token's wrapping key"
    )


def test_private_keys_travel_as_pkcs8_der(wrapping_key: rsa.RSAPrivateKey) -> None:
    material = fresh_material(KeyType.ECDSA_P384)
    blob = wrap_for_import(
        KeyType.ECDSA_P384,
        material,
        wrapping_public_key=_pem(wrapping_key),
        algorithm=RSA_OAEP_SHA256_AES_KWP,
        expected_fingerprint=wrapping_key_fingerprint(_pem(wrapping_key)),
    )
    opened = unwrap_for_import(blob, wrapping_key, RSA_OAEP_SHA256_AES_KWP, "0" * 32)
    assert bytes(opened).startswith(b"\x30")  # DER SEQUENCE
    decoded = decode_material(KeyType.ECDSA_P384, bytes(opened))
    original = serialization.load_pem_private_key(material.data.reveal(), password=None)
    again = serialization.load_pem_private_key(decoded.data.reveal(), password=None)
    assert isinstance(original, ec.EllipticCurvePrivateKey)
    assert isinstance(again, ec.EllipticCurvePrivateKey)
    assert original.private_numbers() == again.private_numbers()
    with pytest.raises(ImportRefused, match="not an ecdsa-p256 key"):
        decode_material(KeyType.ECDSA_P256, bytes(opened))


def test_bad_material_and_bad_wrapping_keys_are_refused(wrapping_key: rsa.RSAPrivateKey) -> None:
    pem = _pem(wrapping_key)
    good = wrapping_key_fingerprint(pem)

    def wrap(key_type: str, material: KeyMaterial, public: bytes = pem, fp: str = good) -> bytes:
        return wrap_for_import(
            key_type,
            material,
            wrapping_public_key=public,
            algorithm=RSA_OAEP_SHA256_AES_KWP,
            expected_fingerprint=fp,
        )

    with pytest.raises(ConfigError, match="32 bytes, not 31"):
        wrap("aes-256", KeyMaterial(format="raw", data=Secret(os.urandom(31))))
    with pytest.raises(ConfigError, match="not an ecdsa-p256 key"):
        wrap("ecdsa-p256", fresh_material(KeyType.ED25519))
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
    with pytest.raises(ConfigError, match="at least 2048"):
        wrap("aes-256", fresh_material(KeyType.AES_256), _pem(small))
    curve = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(ConfigError, match="not an RSA public key"):
        wrap("aes-256", fresh_material(KeyType.AES_256), _pem(curve))
    with pytest.raises(ConfigError, match="do not wrap key material for it"):
        wrap("aes-256", fresh_material(KeyType.AES_256), fp="sha256:" + "ab" * 32)
    with pytest.raises(ConfigError, match="unknown wrapping algorithm"):
        wrap_for_import(
            "aes-256",
            fresh_material(KeyType.AES_256),
            wrapping_public_key=pem,
            algorithm="rsa-pkcs1-aes-kw",
            expected_fingerprint=good,
        )


def test_wrapped_material_always_names_its_token() -> None:
    with pytest.raises(ValueError, match="import token"):
        KeyMaterial(format="wrapped", data=Secret(b"x"))
    with pytest.raises(ValueError, match="import token"):
        KeyMaterial(format="raw", data=Secret(b"x"), import_token="0" * 32)


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> KeyStack:
    monkeypatch.setenv("AUREUS_KEYSTORE", str(tmp_path / "ks"))
    monkeypatch.delenv("AUREUS_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    return KeyStack()


def test_stack_round_trip_is_audited_without_secrets(stack: KeyStack) -> None:
    key = os.urandom(32)
    with capture_audit() as events:
        parameters = stack.import_parameters("moved", "aes-256")
        blob = wrap_for_import(
            "aes-256",
            KeyMaterial(format="raw", data=Secret(key)),
            wrapping_public_key=parameters.wrapping_public_key,
            algorithm=parameters.wrapping_algorithm,
            expected_fingerprint=parameters.fingerprint,
        )
        metadata = stack.import_key(
            "moved", "aes-256", wrapped=blob, import_token=parameters.import_token
        )
    assert metadata.uri == "local://moved"
    assert parameters.key_uri == "local://moved"
    outcomes = [e for e in events if e["phase"] == "outcome"]
    assert [e["operation"] for e in outcomes] == ["import_params", "import"]
    text = json.dumps(events)
    assert parameters.import_token in text
    assert parameters.fingerprint in text
    assert key.hex() not in text
    assert blob.hex()[:64] not in text
    assert "PUBLIC KEY" not in text
    encrypted = stack.encrypt(b"after the move", keys=["local://moved"])
    assert stack.decrypt(encrypted) == b"after the move"


def test_stack_refuses_inconsistent_import_arguments(stack: KeyStack) -> None:
    with pytest.raises(ConfigError, match="needs the import_token"):
        stack.import_key("k", "aes-256", wrapped=b"x" * 424)
    with pytest.raises(ConfigError, match="exactly one"):
        stack.import_key("k", "aes-256", raw=os.urandom(32), wrapped=b"x", import_token="0" * 32)
    with pytest.raises(ConfigError, match="32 lowercase hex"):
        stack.import_key("k", "aes-256", wrapped=b"x" * 424, import_token="../../etc/passwd")


def test_cli_import_params_wrap_and_import(run, tmp_path: Path) -> None:
    started = run("keys", "import-params", "signer", "--type", "ed25519", "-o", "wrapping.pem")
    assert started.exit_code == 0, started.stderr
    fields = dict(line.split(":", 1) for line in started.stdout.splitlines()[:6])
    token = fields["import token"].strip()
    fingerprint = fields["fingerprint"].strip()
    assert fields["algorithm"].strip() == RSA_OAEP_SHA256_AES_KWP
    assert fingerprint == wrapping_key_fingerprint((tmp_path / "wrapping.pem").read_bytes())
    assert f"--import-token {token}" in started.stdout
    material = fresh_material(KeyType.ED25519)
    (tmp_path / "signer.pem").write_bytes(material.data.reveal())
    wrap = (
        "keys", "wrap-for-import", "--type", "ed25519", "--wrapping-key", "wrapping.pem",
        "--algorithm", RSA_OAEP_SHA256_AES_KWP, "--pem-file", "signer.pem", "-o", "wrapped.bin",
    )  # fmt: skip
    substituted = run(*wrap, "--fingerprint", "sha256:" + "1" * 64)
    assert substituted.exit_code == 2
    assert "do not wrap key material for it" in substituted.stderr
    assert not (tmp_path / "wrapped.bin").exists()
    assert run(*wrap, "--fingerprint", fingerprint).exit_code == 0
    as_json = json.loads(
        run("keys", "import-params", "other", "--type", "aes-256", "-o", "o.pem", "--json").stdout
    )
    assert as_json["key_uri"] == "local://other"
    assert as_json["wrapping_public_key"] == (tmp_path / "o.pem").read_text()
    wrong_token = run(
        "keys", "import", "signer", "--type", "ed25519",
        "--wrapped", "wrapped.bin", "--import-token", as_json["import_token"],
    )  # fmt: skip
    assert wrong_token.exit_code == 2
    assert "issued for key 'other'" in wrong_token.stderr
    no_token = run("keys", "import", "signer", "--type", "ed25519", "--wrapped", "wrapped.bin")
    assert no_token.exit_code == 2
    imported = run(
        "keys", "import", "signer", "--type", "ed25519",
        "--wrapped", "wrapped.bin", "--import-token", token,
    )  # fmt: skip
    assert imported.exit_code == 0, imported.stderr
    assert imported.stdout.strip() == "local://signer"
    private = serialization.load_pem_private_key(material.data.reveal(), password=None)
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert run("keys", "public-key", "local://signer").stdout.encode() == public


def test_async_stack_mirrors_the_wrapped_import(stack: KeyStack) -> None:
    async def main() -> None:
        async with AsyncKeyStack(stack) as aio:
            parameters = await aio.import_parameters("async-moved", "aes-256")
            blob = wrap_for_import(
                "aes-256",
                fresh_material(KeyType.AES_256),
                wrapping_public_key=parameters.wrapping_public_key,
                algorithm=parameters.wrapping_algorithm,
                expected_fingerprint=parameters.fingerprint,
            )
            metadata = await aio.import_key(
                "async-moved", "aes-256", wrapped=blob, import_token=parameters.import_token
            )
            assert metadata.uri == "local://async-moved"

    asyncio.run(main())
