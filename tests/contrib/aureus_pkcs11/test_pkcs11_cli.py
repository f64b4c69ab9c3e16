"""The quick start of docs/pkcs11.md, run as a user would: the ``aureus`` command on SoftHSM2.

The plugin is found through its entry point (the installed distribution), the
PIN comes from an ``env`` credential source named in the configuration file,
and openssl checks the signature with the PEM that ``aureus keys public-key``
exports.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from aureus_pkcs11.softhsm import SoftHsm

TOKEN, PIN = "aureus-test", "4711-user"


def _aureus() -> str:
    beside = Path(sys.executable).with_name("aureus")
    found = str(beside) if beside.exists() else shutil.which("aureus")
    if found is None:
        pytest.fail("the aureus command is not installed next to this Python")
    return found


def test_quick_start_round_trip(softhsm: SoftHsm, tmp_path: Path) -> None:
    """Create keys on the token, encrypt and decrypt a file, sign and verify (also with openssl)."""
    config = tmp_path / "aureus.toml"
    config.write_text(
        f"""
[providers.pkcs11]
module = "{softhsm.module}"
token = "{TOKEN}"
credentials = "hsm-pin"

[credentials.hsm-pin]
source = "env"
variables = {{ pin = "DEMO_HSM_PIN" }}
""",
        encoding="utf-8",
    )
    env = {
        **os.environ,
        **softhsm.environment(),
        "AUREUS_CONFIG": str(config),
        "DEMO_HSM_PIN": PIN,
        "AUREUS_KEYSTORE": str(tmp_path / "keystore"),
    }
    for name in ("AUREUS_PKCS11_PIN", "AUREUS_PKCS11_MODULE", "AUREUS_PKCS11_TOKEN"):
        env.pop(name, None)
    aureus = _aureus()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [aureus, *args], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
        )

    plugins = run("plugins")
    assert plugins.returncode == 0, plugins.stderr
    assert "pkcs11" in plugins.stdout

    suffix = uuid.uuid4().hex[:8]
    payments, signer = f"payments-{suffix}", f"signer-{suffix}"
    created = run("keys", "create", f"pkcs11://{TOKEN}/{payments}", "--type", "aes-256")
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == f"pkcs11://{TOKEN}/{payments}"

    plain = tmp_path / "report.txt"
    plain.write_bytes(b"quarterly numbers\n" * 100)
    key = f"pkcs11://{TOKEN}/{payments}"
    encrypted = run(
        "encrypt", "--key", key, "--context", "purpose=demo", "-o", "report.aes", "report.txt"
    )
    assert encrypted.returncode == 0, encrypted.stderr
    assert b"quarterly numbers" not in (tmp_path / "report.aes").read_bytes()
    decrypted = run("decrypt", "--context", "purpose=demo", "-o", "report.out", "report.aes")
    assert decrypted.returncode == 0, decrypted.stderr
    assert (tmp_path / "report.out").read_bytes() == plain.read_bytes()
    wrong = run("decrypt", "--context", "purpose=other", "-o", "wrong.out", "report.aes")
    assert wrong.returncode == 1
    assert not (tmp_path / "wrong.out").exists()

    created = run("keys", "create", f"pkcs11://{TOKEN}/{signer}", "--type", "ed25519")
    assert created.returncode == 0, created.stderr
    signing_key = f"pkcs11://{TOKEN}/{signer}"
    signed = run("sign", "--key", signing_key, "report.txt")
    assert signed.returncode == 0, signed.stderr
    (tmp_path / "report.sig").write_text(signed.stdout, encoding="utf-8")
    verified = run("verify", "--key", signing_key, "--signature", "@report.sig", "report.txt")
    assert verified.returncode == 0, verified.stderr
    plain.write_bytes(plain.read_bytes() + b"tampered")
    refused = run("verify", "--key", signing_key, "--signature", "@report.sig", "report.txt")
    assert refused.returncode == 1

    exported = run("keys", "public-key", signing_key)
    assert exported.returncode == 0, exported.stderr
    (tmp_path / "signer.pem").write_text(exported.stdout, encoding="utf-8")

    (tmp_path / "report.bin").write_bytes(base64.b64decode(signed.stdout.strip()))
    plain.write_bytes(b"quarterly numbers\n" * 100)
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    checked = subprocess.run(
        [
            openssl,
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            "signer.pem",
            "-rawin",
            "-in",
            "report.txt",
            "-sigfile",
            "report.bin",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Signature Verified Successfully" in checked.stdout
