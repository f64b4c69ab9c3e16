"""The official AWS Encryption SDK decrypt test vectors, through the public API.

Every raw AES and raw RSA vector of ``v4-Net-4.0.1`` and ``valid-Net-4.0.0``
decrypts to its plaintext after the manifest's keys are imported with
:meth:`KeyStack.import_key` (their key namespace, key name and padding as the
manifest gives them); every vector of ``invalid-Net-4.0.0`` is refused; every
AWS KMS vector's header parses.  Source and licence: tests/data/esdk/README.md.
"""

from __future__ import annotations

import base64
import json
import zipfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from aureus_core import DecryptionError, KeyStack

DATA = Path(__file__).resolve().parents[2] / "data" / "esdk"
BUNDLES = {
    "v4": "v4-Net-4.0.1.zip",
    "valid": "valid-Net-4.0.0.zip",
    "invalid": "invalid-Net-4.0.0.zip",
}
EXPECTED_COUNTS = {
    "v4": {"raw-aes": 33, "raw-rsa": 66, "aws-kms": 33},
    "valid": {"raw-aes": 5},
    "invalid": {"raw-aes": 28},
}


@cache
def bundle(name: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, bytes]]:
    """``(manifest, keys, files)`` of one zip; ``files`` maps member paths to contents."""
    with zipfile.ZipFile(DATA / BUNDLES[name]) as archive:
        files = {info.filename: archive.read(info) for info in archive.infolist()}
    manifest = json.loads(files["manifest.json"])
    assert manifest["manifest"] == {"type": "awses-decrypt", "version": 4}
    assert manifest["keys"] == "file://keys.json"
    keys = json.loads(files["keys.json"])
    assert keys["manifest"] == {"type": "keys", "version": 3}
    return manifest, keys["keys"], files


def member(files: dict[str, bytes], uri: str) -> bytes:
    assert uri.startswith("file://"), uri
    return files[uri[len("file://") :]]


def kind(test: dict[str, Any]) -> str:
    """``raw-aes``, ``raw-rsa`` or ``aws-kms``: how the vector's data key is wrapped."""
    first = test["master-keys"][0]
    if first["type"] == "aws-kms":
        return "aws-kms"
    assert first["type"] == "raw", first
    return f"raw-{first['encryption-algorithm']}"


def padding(spec: dict[str, Any]) -> str:
    """A manifest master key's RSA padding in Aureus's spelling."""
    if spec["padding-algorithm"] == "pkcs1":
        return "pkcs1"
    assert spec["padding-algorithm"] == "oaep-mgf1", spec
    return f"oaep-{spec['padding-hash']}"


def vectors(name: str, *kinds: str) -> list[Any]:
    manifest, _, _ = bundle(name)
    return [
        pytest.param(name, test_name, id=f"{name}/{test_name}")
        for test_name, test in sorted(manifest["tests"].items())
        if kind(test) in kinds
    ]


def import_manifest_keys(stack: KeyStack, name: str) -> None:
    """Import every raw key the manifest's vectors name, each pinned to the padding they use.

    A key is imported once per key namespace, key name and padding; the
    manifests here never use one key with two paddings (asserted).
    """
    manifest, keys, _ = bundle(name)
    wanted: dict[tuple[str, str], dict[str, Any]] = {}
    for test in manifest["tests"].values():
        for spec in test["master-keys"]:
            if spec["type"] != "raw":
                continue
            slot = (spec["provider-id"], spec["key"])
            assert wanted.setdefault(slot, spec) == spec, "one key, two configurations"
    for number, ((namespace, key_id), spec) in enumerate(sorted(wanted.items()), start=1):
        key = keys[key_id]
        assert key["key-id"] == key_id  # the key name on the wire
        local_name = f"vector-{number}"
        if key["type"] == "symmetric":
            assert (key["algorithm"], key["encoding"]) == ("aes", "base64")
            stack.import_key(
                local_name,
                f"aes-{key['bits']}",
                raw=base64.b64decode(key["material"]),
                namespace=namespace,
                key_name=key_id,
            )
        else:
            assert (key["algorithm"], key["encoding"]) == ("rsa", "pem")
            assert key["type"] in ("private", "public")
            stack.import_key(
                local_name,
                f"rsa-{key['bits']}",
                pem=key["material"].encode("ascii"),
                namespace=namespace,
                key_name=key_id,
                padding=padding(spec),
            )


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, KeyStack]]:
    """One stack per bundle, its keys imported; the v1 suites are allowed to decrypt."""
    made: dict[str, KeyStack] = {}
    for name in BUNDLES:
        stack = KeyStack.from_dict(
            {
                "stack": {"commitment_policy": "require-encrypt-allow-decrypt"},
                "providers": {"local": {"keystore": str(tmp_path_factory.mktemp(name))}},
            }
        )
        import_manifest_keys(stack, name)
        made[name] = stack
    yield made
    for stack in made.values():
        stack.close()


@pytest.mark.parametrize("name", list(BUNDLES))
def test_every_vector_is_counted(name: str) -> None:
    """No vector is silently left out: the counts are the README's."""
    manifest, _, _ = bundle(name)
    counts: dict[str, int] = {}
    for test in manifest["tests"].values():
        counts[kind(test)] = counts.get(kind(test), 0) + 1
    assert counts == EXPECTED_COUNTS[name]


@pytest.mark.parametrize(("name", "test_name"), vectors("v4", "raw-aes", "raw-rsa"))
def test_raw_key_vectors_decrypt(stacks: dict[str, KeyStack], name: str, test_name: str) -> None:
    manifest, _, files = bundle(name)
    test = manifest["tests"][test_name]
    plaintext = stacks[name].decrypt(
        member(files, test["ciphertext"]), context=test["encryption-context"]
    )
    assert plaintext == member(files, test["result"]["output"]["plaintext"])


@pytest.mark.parametrize(("name", "test_name"), vectors("valid", "raw-aes"))
def test_valid_vectors_decrypt(stacks: dict[str, KeyStack], name: str, test_name: str) -> None:
    test_raw_key_vectors_decrypt(stacks, name, test_name)


@pytest.mark.parametrize(("name", "test_name"), vectors("invalid", "raw-aes"))
def test_invalid_vectors_are_refused(
    stacks: dict[str, KeyStack], name: str, test_name: str
) -> None:
    """Each is refused although the key that wrapped its data key is there."""
    manifest, _, files = bundle(name)
    test = manifest["tests"][test_name]
    message = member(files, test["ciphertext"])
    stack = stacks[name]
    [recipient] = stack.inspect(message).recipients  # the key that wrapped it is there
    [local_key] = stack.list_keys()
    assert (recipient.provider_id, recipient.key) == (
        dict(local_key.extra)["key_namespace"],
        dict(local_key.extra)["key_name"],
    )
    with pytest.raises(DecryptionError):
        stack.decrypt(message, context=test["encryption-context"])


@pytest.mark.parametrize(("name", "test_name"), vectors("v4", "aws-kms"))
def test_aws_kms_vector_headers_parse(
    stacks: dict[str, KeyStack], name: str, test_name: str
) -> None:
    manifest, keys, files = bundle(name)
    test = manifest["tests"][test_name]
    info = stacks[name].inspect(member(files, test["ciphertext"]))
    arn = keys[test["master-keys"][0]["key"]]["key-id"]
    assert [(r.provider_id, r.key) for r in info.recipients] == [("aws-kms", arn)]
    assert f"{info.suite_id:04x}" == test_name[:4]
    stored = dict(info.context)
    assert all(test["encryption-context"].get(k) == v for k, v in stored.items())
