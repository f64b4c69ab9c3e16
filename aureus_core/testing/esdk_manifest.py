"""Write Aureus messages as an AWS Encryption SDK decrypt manifest, for other readers.

The official SDKs exchange cross-language test vectors as an ``awses-decrypt``
manifest (version 4): ``manifest.json`` lists each ciphertext with the master
keys that can decrypt it, the encryption context and the expected plaintext;
``keys.json`` (``keys`` version 3) holds the key material.  This module writes
one such directory from messages Aureus encrypts with raw AES and raw RSA
keys, so any implementation's vector runner can check that it reads what
Aureus writes::

    python -m aureus_core.testing.esdk_manifest OUT_DIR

The cases: both suites Aureus writes (``0x0478``, ``0x0578``); every raw AES
key size and every raw RSA padding; plaintext sizes around the frame boundary
and empty; a message for two recipients (either decrypts); and required
encryption context (``"cmm": "RequiredEncryptionContext"``, whose
``encryption-context`` is what the reader must supply).  The keys are fresh
for every directory: the manifest is test data, never a place for real keys.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

NAMESPACE = "interop-vectors"
"""The key namespace (provider ID) every key of a written manifest uses."""
AES_BITS = (128, 192, 256)
RSA_PADDINGS: Mapping[str, tuple[str, str | None]] = {
    "pkcs1": ("pkcs1", None),
    "oaep-sha1": ("oaep-mgf1", "sha1"),
    "oaep-sha256": ("oaep-mgf1", "sha256"),
    "oaep-sha384": ("oaep-mgf1", "sha384"),
    "oaep-sha512": ("oaep-mgf1", "sha512"),
}
"""Aureus's padding name -> the manifest's ``padding-algorithm`` and ``padding-hash``."""


@attrs.frozen(kw_only=True)
class Case:
    """One message of the manifest."""

    name: str
    keys: tuple[str, ...]
    """Manifest key IDs of the recipients (each decrypts alone)."""
    size: int
    signed: bool
    context: Mapping[str, str] = attrs.field(factory=dict)
    required: tuple[str, ...] = ()
    """Context keys authenticated but not stored (required encryption context)."""


def default_cases(frame_length: int) -> list[Case]:
    """The cases :func:`write_manifest` writes by default."""
    sizes = (0, 1, frame_length - 1, frame_length, frame_length + 1, 3 * frame_length + 7)
    context = {"purpose": "interop", "tenant": "acme"}
    cases: list[Case] = []
    for signed in (False, True):
        suite = "0578" if signed else "0478"
        for size in sizes:
            cases.append(
                Case(
                    name=f"{suite}-aes-256-{size}",
                    keys=("aes-256",),
                    size=size,
                    signed=signed,
                    context=context,
                )
            )
        for bits in AES_BITS[:-1]:
            cases.append(
                Case(
                    name=f"{suite}-aes-{bits}",
                    keys=(f"aes-{bits}",),
                    size=frame_length + 1,
                    signed=signed,
                    context=context,
                )
            )
        for padding in RSA_PADDINGS:
            cases.append(
                Case(
                    name=f"{suite}-rsa-{padding}",
                    keys=(f"rsa-{padding}",),
                    size=frame_length + 1,
                    signed=signed,
                    context=context,
                )
            )
        cases.append(
            Case(
                name=f"{suite}-two-recipients",
                keys=("aes-256", "rsa-oaep-sha256"),
                size=2 * frame_length,
                signed=signed,
                context=context,
            )
        )
        cases.append(
            Case(
                name=f"{suite}-required-context",
                keys=("aes-256",),
                size=frame_length + 1,
                signed=signed,
                context=context,
                required=("tenant",),
            )
        )
    return cases


def write_manifest(
    directory: str | os.PathLike[str],
    *,
    frame_length: int = 1024,
    cases: Sequence[Case] | None = None,
    rsa_bits: int = 2048,
) -> dict[str, Any]:
    """Write an ``awses-decrypt`` manifest of Aureus messages into ``directory``.

    Returns the manifest (also written as ``manifest.json``).  ``directory``
    is created; it must be empty if it exists.
    """
    from ..stack import KeyStack

    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise FileExistsError(f"{root} is not empty: write a manifest into a new directory")
    (root / "ciphertexts").mkdir()
    (root / "plaintexts").mkdir()
    chosen = list(cases) if cases is not None else default_cases(frame_length)

    aes = {f"aes-{bits}": os.urandom(bits // 8) for bits in AES_BITS}
    private = rsa.generate_private_key(65537, rsa_bits)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    keys_json: dict[str, Any] = {}
    for key_id, material in aes.items():
        keys_json[key_id] = {
            "decrypt": True,
            "encrypt": True,
            "type": "symmetric",
            "key-id": key_id,
            "algorithm": "aes",
            "bits": len(material) * 8,
            "encoding": "base64",
            "material": base64.b64encode(material).decode("ascii"),
        }
    for padding in RSA_PADDINGS:
        keys_json[f"rsa-{padding}"] = {
            "decrypt": True,
            "encrypt": True,
            "type": "private",
            "key-id": f"rsa-{padding}",
            "algorithm": "rsa",
            "bits": rsa_bits,
            "encoding": "pem",
            "material": pem.decode("ascii"),
        }

    tests: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as keystore, KeyStack.local(keystore) as stack:
        for key_id, material in aes.items():
            stack.import_key(key_id, key_id, raw=material, namespace=NAMESPACE, key_name=key_id)
        for padding in RSA_PADDINGS:
            stack.import_key(
                f"rsa-{padding}",
                f"rsa-{rsa_bits}",
                pem=pem,
                namespace=NAMESPACE,
                key_name=f"rsa-{padding}",
                padding=padding,
            )
        for case in chosen:
            plaintext = os.urandom(case.size)
            message = stack.encrypt(
                plaintext,
                keys=[f"local://{key}" for key in case.keys],
                context=dict(case.context),
                required_context=list(case.required),
                signed=case.signed,
                frame_length=frame_length,
            )
            (root / "ciphertexts" / case.name).write_bytes(message)
            (root / "plaintexts" / case.name).write_bytes(plaintext)
            tests[case.name] = {
                "description": _describe(case, frame_length),
                "ciphertext": f"file://ciphertexts/{case.name}",
                "master-keys": [_master_key(key) for key in case.keys],
                "cmm": "RequiredEncryptionContext" if case.required else "Default",
                "encryption-context": dict(case.context),
                "result": {"output": {"plaintext": f"file://plaintexts/{case.name}"}},
            }
    manifest = {
        "manifest": {"type": "awses-decrypt", "version": 4},
        "client": {"name": "aureus", "version": _version()},
        "keys": "file://keys.json",
        "tests": tests,
    }
    (root / "keys.json").write_text(
        json.dumps({"manifest": {"type": "keys", "version": 3}, "keys": keys_json}, indent=2)
    )
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def _master_key(key_id: str) -> dict[str, str]:
    spec = {"type": "raw", "key": key_id, "provider-id": NAMESPACE}
    if key_id.startswith("aes-"):
        return {**spec, "encryption-algorithm": "aes"}
    algorithm, digest = RSA_PADDINGS[key_id[len("rsa-") :]]
    spec = {**spec, "encryption-algorithm": "rsa", "padding-algorithm": algorithm}
    return {**spec, "padding-hash": digest} if digest else spec


def _describe(case: Case, frame_length: int) -> str:
    suite = "0x0578 (signed)" if case.signed else "0x0478"
    parts = [suite, f"{case.size} bytes in {frame_length}-byte frames", " + ".join(case.keys)]
    if case.required:
        parts.append(f"required context keys {', '.join(case.required)}")
    return "; ".join(parts)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("aureus-kms")
    except PackageNotFoundError:
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m aureus_core.testing.esdk_manifest OUT_DIR``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m aureus_core.testing.esdk_manifest OUT_DIR", file=sys.stderr)
        return 2
    manifest = write_manifest(args[0])
    print(f"{len(manifest['tests'])} messages written to {args[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
