import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def test_keys_lifecycle(run):
    result = run("keys", "create", "payments", "--type", "aes-256", "--description", "cards")
    assert result.exit_code == 0
    assert result.stdout.strip() == "local://payments"
    assert run("keys", "rotate", "local://payments").stdout.strip() == (
        "local://payments is now at version 2"
    )
    listing = run("keys", "list").stdout
    assert listing.startswith("local://payments  aes-256  v2  enabled")
    described = json.loads(run("keys", "describe", "local://payments", "--json").stdout)
    assert described["current_version"] == "2"
    assert [v["version"] for v in described["versions"]] == ["1", "2"]
    assert described["description"] == "cards"
    text = run("keys", "describe", "local://payments").stdout
    assert "current version: 2" in text


def test_create_twice_is_a_clear_error_unless_if_not_exists(run):
    run("keys", "create", "k", "--type", "ed25519")
    result = run("keys", "create", "k", "--type", "ed25519")
    assert result.exit_code == 2
    assert result.stderr.startswith("aureus: error: ")
    assert "Traceback" not in result.stderr
    again = run("keys", "create", "k", "--type", "ed25519", "--if-not-exists")
    assert (again.exit_code, again.stdout.strip()) == (0, "local://k")
    wrong = run("keys", "create", "k", "--type", "aes-256", "--if-not-exists")
    assert wrong.exit_code == 2
    assert "exists with type ed25519" in wrong.stderr


@pytest.mark.parametrize("key_type", ["ed25519", "ecdsa-p256"])
def test_sign_verify_exit_codes(run, tmp_path, key_type):
    run("keys", "create", "signer", "--type", key_type)
    message = tmp_path / "msg.txt"
    message.write_bytes(b"hello aureus\n")
    signed = run("sign", "--key", "local://signer", str(message))
    assert signed.exit_code == 0
    signature = signed.stdout.strip()
    base64.b64decode(signature, validate=True)
    ok = run("verify", "--key", "local://signer", "--signature", signature, str(message))
    assert ok.exit_code == 0
    message.write_bytes(b"hello aureus!\n")
    bad = run("verify", "--key", "local://signer", "--signature", signature, str(message))
    assert bad.exit_code == 1
    assert "INVALID" in bad.stderr
    garbage = run("verify", "--key", "local://signer", "--signature", "!!!", str(message))
    assert garbage.exit_code == 2
    missing = run("verify", "--key", "local://nope", "--signature", signature, str(message))
    assert missing.exit_code == 2


def test_sign_stdin_output_file_and_json(run, tmp_path):
    run("keys", "create", "s", "--type", "ed25519")
    out = tmp_path / "sig.bin"
    assert run("sign", "--key", "local://s", "-o", str(out), input=b"data").exit_code == 0
    assert len(out.read_bytes()) == 64
    assert (
        run("verify", "--key", "local://s", "--signature", f"@{out}", "-", input=b"data").exit_code
        == 0
    )
    record = run("sign", "--key", "local://s", "--json", input=b"data").stdout
    (tmp_path / "sig.json").write_text(record)
    assert json.loads(record)["key_version"] == "1"
    sig = f"@{tmp_path / 'sig.json'}"
    result = run("verify", "--key", "local://s", "--signature", sig, "-", input=b"data")
    assert result.exit_code == 0


def test_verify_never_trusts_the_key_a_record_names(run, tmp_path):
    """A record signed by a scratch key is not valid for a stack that trusts another key."""
    run("keys", "create", "release", "--type", "ed25519")
    run("keys", "create", "scratch", "--type", "ed25519")
    forged = run("sign", "--key", "local://scratch", "--json", input=b"evil build").stdout
    (tmp_path / "forged.json").write_text(forged)
    sig = f"@{tmp_path / 'forged.json'}"

    no_anchor = run("verify", "--signature", sig, "-", input=b"evil build")
    assert no_anchor.exit_code == 2
    assert "no trusted key to verify against" in no_anchor.stderr
    assert "--key URI" in no_anchor.stderr

    wrong = run("verify", "--key", "local://release", "--signature", sig, "-", input=b"evil build")
    assert wrong.exit_code == 1
    assert "local://scratch" in wrong.stderr
    assert "not a trusted key" in wrong.stderr

    (tmp_path / "aureus.toml").write_text('[stack]\nsigning_key = "local://release"\n')
    configured = run(
        "--config", "aureus.toml", "verify", "--signature", sig, "-", input=b"evil build"
    )
    assert configured.exit_code == 1
    # Either trusted key may be named; the one the record names must be among them.
    both = ["--key", "local://release", "--key", "local://scratch"]
    assert run("verify", *both, "--signature", sig, "-", input=b"evil build").exit_code == 0


def test_import_and_public_key(run, tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    private = ed25519.Ed25519PrivateKey.generate()
    pem = tmp_path / "k.pem"
    pem.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    result = run("keys", "import", "imported", "--type", "ed25519", "--pem-file", str(pem))
    assert result.stdout.strip() == "local://imported"
    public = run("keys", "public-key", "local://imported").stdout.encode()
    assert public == private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    raw = tmp_path / "aes.bin"
    raw.write_bytes(os.urandom(31))
    short = run("keys", "import", "aes", "--type", "aes-256", "--raw-key-file", str(raw))
    assert short.exit_code == 2
    assert "32" in short.stderr
    neither = run("keys", "import", "aes", "--type", "aes-256")
    assert neither.exit_code == 2


def test_plugins_listing(run):
    result = run("plugins", "--json")
    plugins = {p["name"]: p for p in json.loads(result.stdout)}
    assert plugins["local"]["status"] == "loaded"
    assert plugins["local"]["registers"] == {"key_providers": ["local"]}
    lines = run("plugins").stdout.splitlines()
    assert any(line.startswith("local  0.1.0  loaded  (key providers: local)") for line in lines)
    # Each register(description=...) is shown under its plugin, with its kind.
    described = "local keystore directory: AES-256 wrapping, Ed25519 and ECDSA P-256 signing"
    assert plugins["local"]["descriptions"] == {"key_providers": {"local": described}}
    local = lines.index(next(line for line in lines if line.startswith("local  ")))
    assert lines[local + 1] == f"    key provider local: {described}"
    assert "    cache backend memory: in-process LRU of data keys" in "\n".join(lines)
    assert "    audit sink memory: keeps events in a list (tests)" in lines


def test_bad_config_is_one_line(run, tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("[nonsense]\n")
    result = run("--config", str(config), "keys", "list")
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert "unknown section(s) nonsense" in result.stderr


OPENSSL_CHECKS = {
    "ed25519": [
        "openssl",
        "pkeyutl",
        "-verify",
        "-pubin",
        "-inkey",
        "pub.pem",
        "-rawin",
        "-in",
        "msg.txt",
        "-sigfile",
        "sig.bin",
    ],
    "ecdsa-p256": [
        "openssl",
        "dgst",
        "-sha256",
        "-verify",
        "pub.pem",
        "-signature",
        "sig.bin",
        "msg.txt",
    ],
}


@pytest.mark.parametrize("key_type", ["ed25519", "ecdsa-p256"])
def test_installed_command_and_openssl_interop(tmp_path, key_type):
    """The real console script, end to end, checked by openssl."""
    env = {**os.environ, "AUREUS_KEYSTORE": str(tmp_path / "ks")}
    env.pop("AUREUS_CONFIG", None)
    aureus = str(Path(sys.executable).with_name("aureus"))

    def cli(*args, check=True):
        return subprocess.run(
            [aureus, *args], cwd=tmp_path, env=env, capture_output=True, text=True, check=check
        )

    (tmp_path / "msg.txt").write_bytes(b"release artifact\n")
    assert cli("keys", "create", "k", "--type", key_type).stdout.strip() == "local://k"
    signature = cli("sign", "--key", "local://k", "msg.txt").stdout.strip()
    (tmp_path / "sig.bin").write_bytes(base64.b64decode(signature))
    (tmp_path / "pub.pem").write_text(cli("keys", "public-key", "local://k").stdout)
    assert cli("verify", "--key", "local://k", "--signature", signature, "msg.txt").returncode == 0
    checked = subprocess.run(OPENSSL_CHECKS[key_type], cwd=tmp_path, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Verified OK" in checked.stdout or "Signature Verified Successfully" in checked.stdout
    (tmp_path / "msg.txt").write_bytes(b"release artifact!\n")
    changed = cli("verify", "--key", "local://k", "--signature", signature, "msg.txt", check=False)
    assert changed.returncode == 1
    rejected = subprocess.run(OPENSSL_CHECKS[key_type], cwd=tmp_path, capture_output=True)
    assert rejected.returncode != 0


def test_replicate_on_a_provider_without_replicas_says_so(run):
    run("keys", "create", "single", "--type", "aes-256")
    result = run("keys", "replicate", "local://single", "--region", "eu-west-1")
    assert result.exit_code == 2
    assert "provider 'local' does not support replicate_key" in result.stderr
    missing = run("keys", "replicate", "local://single")
    assert missing.exit_code == 2
    assert "--region" in missing.stderr
