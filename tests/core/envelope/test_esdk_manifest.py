"""Aureus messages as an SDK decrypt manifest, read back by the official SDK from the files alone.

The reader here knows nothing of Aureus: it loads ``manifest.json`` and
``keys.json`` as any implementation's vector runner would, builds the
official SDK's raw master keys (or, for required encryption context, the
Material Providers Library's raw AES keyring) from each test's
``master-keys``, and compares the plaintext with the manifest's.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import aws_encryption_sdk
import pytest
from aws_encryption_sdk.identifiers import CommitmentPolicy, EncryptionKeyType, WrappingAlgorithm
from aws_encryption_sdk.internal.crypto.wrapping_keys import WrappingKey
from aws_encryption_sdk.key_providers.raw import RawMasterKey
from cryptography.exceptions import InvalidTag

from aureus_core.testing.esdk_manifest import default_cases, main, write_manifest

FRAME = 256

_RSA = {
    ("pkcs1", None): WrappingAlgorithm.RSA_PKCS1,
    ("oaep-mgf1", "sha1"): WrappingAlgorithm.RSA_OAEP_SHA1_MGF1,
    ("oaep-mgf1", "sha256"): WrappingAlgorithm.RSA_OAEP_SHA256_MGF1,
    ("oaep-mgf1", "sha384"): WrappingAlgorithm.RSA_OAEP_SHA384_MGF1,
    ("oaep-mgf1", "sha512"): WrappingAlgorithm.RSA_OAEP_SHA512_MGF1,
}
_AES = {
    128: WrappingAlgorithm.AES_128_GCM_IV12_TAG16_NO_PADDING,
    192: WrappingAlgorithm.AES_192_GCM_IV12_TAG16_NO_PADDING,
    256: WrappingAlgorithm.AES_256_GCM_IV12_TAG16_NO_PADDING,
}


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("manifest") / "aureus-vectors"
    write_manifest(root, frame_length=FRAME)
    return root


def _file(root: Path, uri: str) -> bytes:
    assert uri.startswith("file://")
    return (root / uri[len("file://") :]).read_bytes()


def _master_key(spec: dict[str, Any], keys: dict[str, Any]) -> RawMasterKey:
    key = keys[spec["key"]]
    if spec["encryption-algorithm"] == "aes":
        wrapping = WrappingKey(
            wrapping_algorithm=_AES[key["bits"]],
            wrapping_key=base64.b64decode(key["material"]),
            wrapping_key_type=EncryptionKeyType.SYMMETRIC,
        )
    else:
        algorithm = _RSA[(spec["padding-algorithm"], spec.get("padding-hash"))]
        wrapping = WrappingKey(
            wrapping_algorithm=algorithm,
            wrapping_key=key["material"].encode(),
            wrapping_key_type=EncryptionKeyType.PRIVATE,
        )
    return RawMasterKey(
        provider_id=spec["provider-id"], key_id=key["key-id"].encode(), wrapping_key=wrapping
    )


def _required_context_cmm(spec: dict[str, Any], keys: dict[str, Any]) -> Any:
    mpl = pytest.importorskip("aws_cryptographic_material_providers.mpl")
    from aws_cryptographic_material_providers.mpl.config import MaterialProvidersConfig
    from aws_cryptographic_material_providers.mpl.models import (
        AesWrappingAlg,
        CreateDefaultCryptographicMaterialsManagerInput,
        CreateRawAesKeyringInput,
    )

    providers = mpl.AwsCryptographicMaterialProviders(config=MaterialProvidersConfig())
    key = keys[spec["key"]]
    assert key["bits"] == 256
    keyring = providers.create_raw_aes_keyring(
        CreateRawAesKeyringInput(
            key_namespace=spec["provider-id"],
            key_name=key["key-id"],
            wrapping_key=base64.b64decode(key["material"]),
            wrapping_alg=AesWrappingAlg.ALG_AES256_GCM_IV12_TAG16,
        )
    )
    return providers.create_default_cryptographic_materials_manager(
        CreateDefaultCryptographicMaterialsManagerInput(keyring=keyring)
    )


def _tests(root: Path) -> list[Any]:
    manifest = json.loads((root / "manifest.json").read_text())
    return sorted(manifest["tests"].items())


def test_the_manifest_has_every_case_and_the_sdk_format(written: Path) -> None:
    manifest = json.loads((written / "manifest.json").read_text())
    keys = json.loads((written / "keys.json").read_text())
    assert manifest["manifest"] == {"type": "awses-decrypt", "version": 4}
    assert keys["manifest"] == {"type": "keys", "version": 3}
    assert set(manifest["tests"]) == {case.name for case in default_cases(FRAME)}
    suites = {_file(written, t["ciphertext"])[1:3] for t in manifest["tests"].values()}
    assert suites == {b"\x04\x78", b"\x05\x78"}
    sizes = {
        len(_file(written, t["result"]["output"]["plaintext"])) for t in manifest["tests"].values()
    }
    assert {0, 1, FRAME - 1, FRAME, FRAME + 1} <= sizes
    assert any(len(t["master-keys"]) == 2 for t in manifest["tests"].values())
    assert any(t["cmm"] == "RequiredEncryptionContext" for t in manifest["tests"].values())


def test_the_official_sdk_decrypts_every_message_from_the_files(written: Path) -> None:
    keys = json.loads((written / "keys.json").read_text())["keys"]
    client = aws_encryption_sdk.EncryptionSDKClient(
        commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
    )
    decrypted = 0
    for name, test in _tests(written):
        ciphertext = _file(written, test["ciphertext"])
        expected = _file(written, test["result"]["output"]["plaintext"])
        for spec in test["master-keys"]:  # every recipient decrypts alone
            if test["cmm"] == "RequiredEncryptionContext":
                cmm = _required_context_cmm(spec, keys)
                stored = {k: v for k, v in test["encryption-context"].items() if k != "tenant"}
                plaintext, header = client.decrypt(
                    source=ciphertext,
                    materials_manager=cmm,
                    encryption_context={"tenant": test["encryption-context"]["tenant"]},
                )
            else:
                stored = test["encryption-context"]
                plaintext, header = client.decrypt(
                    source=ciphertext, key_provider=_master_key(spec, keys)
                )
            assert plaintext == expected, name
            for context_key, value in stored.items():
                assert header.encryption_context[context_key] == value, name
            decrypted += 1
    assert decrypted == sum(len(t["master-keys"]) for _, t in _tests(written))


def test_a_required_context_message_needs_the_pair(written: Path) -> None:
    keys = json.loads((written / "keys.json").read_text())["keys"]
    client = aws_encryption_sdk.EncryptionSDKClient(
        commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
    )
    name, test = next((n, t) for n, t in _tests(written) if t["cmm"] != "Default")
    ciphertext = _file(written, test["ciphertext"])
    # The SDK's raw master key cannot supply the pair: the header tag does not verify.
    with pytest.raises((aws_encryption_sdk.exceptions.AWSEncryptionSDKClientError, InvalidTag)):
        client.decrypt(source=ciphertext, key_provider=_master_key(test["master-keys"][0], keys))
    assert b"acme" not in ciphertext, name  # the required value is not stored


def test_the_command_line_refuses_a_directory_in_use(tmp_path: Path, capsys) -> None:
    (tmp_path / "x").write_text("taken")
    with pytest.raises(FileExistsError, match="not empty"):
        write_manifest(tmp_path)
    assert main([]) == 2
    assert "usage" in capsys.readouterr().err
