"""The CLI: key groups in inspect, and k-of-n bundles collected across machines."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from click.testing import Result

Run = Callable[..., Result]


def test_sign_add_to_and_verify_with_a_pinned_policy(run: Run, tmp_path: Path) -> None:
    for name in ("alice", "bob", "carol"):
        assert run("keys", "create", name, "--type", "ed25519").exit_code == 0
    policy = tmp_path / "release-policy.json"
    policy.write_text(
        json.dumps(
            {
                "format": "aureus-signing-policy/1",
                "name": "release",
                "threshold": 2,
                "keys": ["local://alice", "local://bob", "local://carol"],
            }
        )
    )
    pin = hashlib.sha256(policy.read_bytes()).hexdigest()
    artifact = tmp_path / "artifact.tar"
    artifact.write_bytes(b"release bits")

    # alice signs on her machine and creates the bundle
    first = run(
        "sign",
        "--policy",
        str(policy),
        "--add-to",
        "bundle.json",
        "--key",
        "local://alice",
        str(artifact),
    )
    assert first.exit_code == 0, first.output
    assert "1 signature(s)" in first.stderr
    short = run("verify", "--policy", str(policy), "--policy-sha256", pin, "bundle.json")
    assert short.exit_code == 1
    assert (
        "bundle INVALID: 1 of the 2 required signatures (signed: local://alice; "
        "missing: local://bob, local://carol)" in short.stderr
    )

    # bob adds his; the artifact must be the bundle's payload
    other = tmp_path / "other.tar"
    other.write_bytes(b"other bits")
    wrong = run(
        "sign",
        "--policy",
        str(policy),
        "--add-to",
        "bundle.json",
        "--key",
        "local://bob",
        str(other),
    )
    assert wrong.exit_code == 1
    assert "is not the payload of bundle" in wrong.stderr
    second = run("sign", "--policy", str(policy), "--add-to", "bundle.json", "--key", "local://bob")
    assert second.exit_code == 0, second.output
    good = run("verify", "--policy", str(policy), "--policy-sha256", pin, "bundle.json")
    assert good.exit_code == 0, good.stderr
    assert (
        "bundle valid: 2 of the 2 required signatures (signed: local://alice, local://bob; "
        "missing: local://carol)" in good.stderr
    )

    # a key outside the policy is refused when signing
    outsider = run(
        "sign", "--policy", str(policy), "--add-to", "bundle.json", "--key", "local://mallory"
    )
    assert outsider.exit_code != 0
    assert "is not one of the keys of signing policy 'release'" in outsider.stderr

    # the attacker who hands over the bundle also swaps the policy file for k = 1
    policy.write_text(policy.read_text().replace('"threshold": 2', '"threshold": 1'))
    lowered = run("verify", "--policy", str(policy), "--policy-sha256", pin, "bundle.json")
    assert lowered.exit_code == 2
    assert "is not pinned" in lowered.stderr
    unpinned = run("verify", "--policy", str(policy), "bundle.json")
    assert unpinned.exit_code == 2
    assert "policy_pins" in unpinned.stderr


def test_inspect_shows_key_groups_and_threshold(run: Run, tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        assert run("keys", "create", name, "--type", "aes-256").exit_code == 0
    config = tmp_path / "aureus.toml"
    config.write_text(
        '[stack]\nthreshold = 2\n[stack.key_groups]\naws = ["local://a"]\ngcp = ["local://b"]\n'
        f'hsm = ["local://c"]\n[providers.local]\nkeystore = "{tmp_path / "ks"}"\n'
    )
    (tmp_path / "plain.txt").write_bytes(b"quorum")
    encrypted = run("--config", str(config), "encrypt", "plain.txt", "-o", "msg.aur")
    assert encrypted.exit_code == 0, encrypted.output
    shown = run("inspect", "msg.aur")
    assert "key groups:     any 2 of 3 (aws, gcp, hsm) together can decrypt" in shown.stdout
    assert "the AWS Encryption SDK cannot read this message" in shown.stdout
    assert "aureus-quorum  group gcp (share 2)  aureus-local  b:1" in shown.stdout
    decrypted = run("--config", str(config), "decrypt", "msg.aur")
    assert decrypted.exit_code == 0, decrypted.output
    assert decrypted.stdout_bytes == b"quorum"
    one = run("--config", str(config), "decrypt", "--key", "local://b", "msg.aur")
    assert one.exit_code != 0
    assert "reached 1 (gcp)" in one.stderr


def test_encrypt_and_rewrap_with_groups_on_the_command_line(run: Run, tmp_path: Path) -> None:
    for name in ("a", "b", "c", "d"):
        assert run("keys", "create", name, "--type", "aes-256").exit_code == 0
    (tmp_path / "plain.txt").write_bytes(b"groups")
    made = run(
        "encrypt", "--group", "x=local://a", "--group", "y=local://b,local://c",
        "--threshold", "2", "plain.txt", "-o", "msg.aur",
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    assert "any 2 of 2 (x, y)" in run("inspect", "msg.aur").stdout
    assert run("decrypt", "--key", "local://a", "--key", "local://c", "msg.aur").stdout_bytes == (
        b"groups"
    )
    # rewrap to 2 of 3 groups: a fresh split under a fresh message ID
    moved = run(
        "rewrap", "--group", "p=local://a", "--group", "q=local://b", "--group", "r=local://d",
        "--threshold", "2", "-o", "new.aur", "msg.aur",
    )  # fmt: skip
    assert moved.exit_code == 0, moved.output
    assert "any 2 of 3 (p, q, r)" in run("inspect", "new.aur").stdout
    assert run("decrypt", "--key", "local://b", "--key", "local://d", "new.aur").stdout_bytes == (
        b"groups"
    )
    refused = run("decrypt", "--key", "local://d", "new.aur")
    assert refused.exit_code == 1
    assert "reached 1 (r)" in refused.stderr
    both = run(
        "encrypt", "--key", "local://a", "--group", "x=local://b", "--threshold", "1", "plain.txt"
    )
    assert both.exit_code == 2
    assert "not both" in both.stderr
