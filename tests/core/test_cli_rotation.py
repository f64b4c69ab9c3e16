"""``aureus keys status|enforce|disable|enable|min-version|destroy``: output and exit codes."""

import json
from datetime import datetime, timedelta


def created_at(run, uri):
    described = json.loads(run("keys", "describe", uri, "--json").stdout)
    return datetime.fromisoformat(described["versions"][-1]["created_at"])


def test_status_with_no_keys(run):
    result = run("keys", "status")
    assert result.exit_code == 0
    assert result.stdout == "policy: rotate after 90 days, expire after 365 days\nno keys\n"
    data = json.loads(run("keys", "status", "--json").stdout)
    assert data == {
        "policy": {
            "interval_days": 90.0,
            "max_age_days": 365.0,
            "max_messages": None,
            "max_bytes": None,
            "retire_after_max_age": False,
        },
        "keys": [],
    }


def test_status_shows_age_due_and_expired_and_exits_0(run):
    run("keys", "create", "pay", "--type", "aes-256")
    born = created_at(run, "local://pay")
    later = (born + timedelta(days=100)).isoformat()
    result = run("keys", "status", "--now", later)
    assert result.exit_code == 0
    next_rotation = (born + timedelta(days=90)).date().isoformat()
    assert result.stdout.splitlines()[1:] == [
        f"local://pay  v1  ROTATE  age 100 days  next rotation {next_rotation}  "
        "0 messages, 0 bytes",
        "  interval: version 1 is 100 days old, at or past the rotation interval of 90 days",
    ]
    expired = run("keys", "status", "--now", (born + timedelta(days=400)).isoformat())
    assert expired.exit_code == 0
    assert "local://pay  v1  EXPIRED  age 400 days" in expired.stdout
    fresh = run("keys", "status", "--now", (born + timedelta(days=1)).isoformat())
    assert "local://pay  v1  ok  age 1 day" in fresh.stdout
    assert "interval:" not in fresh.stdout

    data = json.loads(run("keys", "status", "--json", "--now", later).stdout)
    (key,) = data["keys"]
    assert key["uri"] == "local://pay"
    assert key["current_version"] == "1"
    assert key["min_decryption_version"] is None
    assert (key["should_rotate"], key["expired"]) == (True, False)
    assert key["age_seconds"] == 100 * 86400
    assert key["next_rotation"] == (born + timedelta(days=90)).isoformat()
    assert (key["messages"], key["bytes"]) == (0, 0)


def test_enforce_dry_run_then_for_real(run):
    run("keys", "create", "pay", "--type", "aes-256")
    run("keys", "create", "sig", "--type", "ed25519")
    born = created_at(run, "local://sig")
    later = (born + timedelta(days=120)).isoformat()

    dry = run("keys", "enforce", "--dry-run", "--json", "--now", later)
    assert dry.exit_code == 0
    actions = json.loads(dry.stdout)
    assert [
        (a["key_uri"], a["action"], a["from_version"], a["to_version"], a["applied"])
        for a in actions
    ] == [
        ("local://pay", "rotate", "1", None, False),
        ("local://sig", "rotate", "1", None, False),
    ]
    assert (
        json.loads(run("keys", "describe", "local://pay", "--json").stdout)["current_version"]
        == "1"
    )

    text = run("keys", "enforce", "--dry-run", "--now", later)
    assert text.stdout.splitlines()[0].startswith(
        "local://pay: rotate from version 1 to a new version (dry run): interval: version 1 is"
    )
    done = run("keys", "enforce", "--now", later)
    assert done.exit_code == 0
    assert done.stdout.splitlines()[0].startswith(
        "local://pay: rotate from version 1 to 2: interval: version 1 is"
    )
    assert run("keys", "list").stdout.splitlines()[0].startswith("local://pay  aes-256  v2")
    again = run("keys", "enforce")
    assert (again.exit_code, again.stdout) == (
        0,
        "nothing to do: every key is within the rotation policy\n",
    )


def test_usage_limits_from_the_config_file(run, tmp_path, monkeypatch):
    config = tmp_path / "aureus.toml"
    config.write_text(
        '[providers.local]\nkeystore = "ks"\n\n'
        "[rotation]\ninterval_days = 30\nmax_age_days = 60\nmax_messages = 2\n"
    )
    monkeypatch.setenv("AUREUS_CONFIG", str(config))
    run("keys", "create", "signer", "--type", "ed25519")
    message = tmp_path / "msg.txt"
    message.write_bytes(b"release 1.0\n")
    for _ in range(2):
        assert run("sign", "--key", "local://signer", str(message)).exit_code == 0
    status = run("keys", "status")
    assert status.stdout.splitlines() == [
        "policy: rotate after 30 days, expire after 60 days, or 2 messages",
        status.stdout.splitlines()[1],
        "  messages: version 1 was used for 2 messages, at or past the limit of 2",
    ]
    assert "ROTATE" in status.stdout.splitlines()[1]
    assert "2 messages, 24 bytes" in status.stdout
    enforced = json.loads(run("keys", "enforce", "--json").stdout)
    assert [(a["action"], a["to_version"], a["applied"]) for a in enforced] == [
        ("rotate", "2", True)
    ]
    text = run("keys", "describe", "local://signer").stdout
    assert "    1      enabled" in text
    assert "2 messages, 24 bytes" in text


def test_bad_rotation_config_is_exit_2(run, tmp_path, monkeypatch):
    config = tmp_path / "aureus.toml"
    config.write_text("[rotation]\ninterval_days = 400\n")
    monkeypatch.setenv("AUREUS_CONFIG", str(config))
    result = run("keys", "status")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"aureus: error: {config}: [rotation] rotation policy interval")
    assert "Traceback" not in result.stderr


def test_bad_now_is_a_usage_error(run):
    result = run("keys", "status", "--now", "next tuesday")
    assert result.exit_code == 2
    assert "is not an ISO 8601 time" in result.stderr


def test_disable_enable_min_version_and_destroy(run, tmp_path):
    run("keys", "create", "pay", "--type", "aes-256")
    plain = tmp_path / "plain.txt"
    plain.write_bytes(b"card data")
    assert run("encrypt", "--key", "local://pay", "-o", "old.aes", str(plain)).exit_code == 0
    run("keys", "rotate", "local://pay")

    current = run("keys", "disable", "local://pay?version=2")
    assert current.exit_code == 2
    assert "is the current version of local://pay and cannot be disabled: rotate first" in (
        current.stderr
    )

    disabled = run("keys", "disable", "local://pay?version=1")
    assert (disabled.exit_code, disabled.stdout) == (0, "local://pay version 1 is now disabled\n")
    refused = run("decrypt", "-o", "out.txt", "old.aes")
    assert refused.exit_code == 1
    assert "local://pay version 1 is disabled" in refused.stderr
    enabled = run("keys", "enable", "local://pay?version=1")
    assert (enabled.exit_code, enabled.stdout) == (0, "local://pay version 1 is now enabled\n")
    assert run("decrypt", "-o", "out.txt", "old.aes").exit_code == 0

    minimum = run("keys", "min-version", "local://pay", "2")
    assert (minimum.exit_code, minimum.stdout) == (
        0,
        "local://pay: minimum decryption version is now 2\n",
    )
    assert "min decryption:  2" in run("keys", "describe", "local://pay").stdout
    described = json.loads(run("keys", "describe", "local://pay", "--json").stdout)
    assert described["min_decryption_version"] == "2"
    below = run("decrypt", "-o", "out.txt", "old.aes")
    assert below.exit_code == 1
    assert "local://pay version 1 is below the minimum decryption version 2" in below.stderr
    too_high = run("keys", "min-version", "local://pay", "3")
    assert too_high.exit_code == 2
    assert "has no version 3" in too_high.stderr

    unconfirmed = run("keys", "destroy", "local://pay?version=1")
    assert unconfirmed.exit_code == 2
    assert "not destroying local://pay?version=1 without confirmation" in unconfirmed.stderr
    assert "--yes" in unconfirmed.stderr
    described = json.loads(run("keys", "describe", "local://pay", "--json").stdout)
    assert described["versions"][0]["state"] == "enabled"

    destroyed = run("keys", "destroy", "local://pay?version=1", "--yes")
    assert (destroyed.exit_code, destroyed.stdout) == (0, "local://pay version 1 is destroyed\n")
    described = json.loads(run("keys", "describe", "local://pay", "--json").stdout)
    assert [v["state"] for v in described["versions"]] == ["destroyed", "enabled"]
    run("keys", "min-version", "local://pay", "1")
    gone = run("decrypt", "-o", "out.txt", "old.aes")
    assert gone.exit_code == 1
    # Nothing is left to authenticate its data key with: the same answer as for a forgery.
    assert "destroyed" not in gone.stderr
    assert "could not be decrypted" in gone.stderr
    current_destroy = run("keys", "destroy", "local://pay?version=2", "--yes")
    assert current_destroy.exit_code == 2
    assert "is the current version" in current_destroy.stderr


def test_destroy_of_an_enabled_version_says_to_disable_first(run):
    run("keys", "create", "pay", "--type", "aes-256")
    run("keys", "rotate", "local://pay")
    result = run("keys", "destroy", "local://pay?version=1", "--yes")
    assert result.exit_code == 2
    assert "disable it first (`aureus keys disable 'local://pay?version=1'`)" in result.stderr
    unpinned = run("keys", "disable", "local://pay")
    assert unpinned.exit_code == 2
    assert "name the version to enable or disable: local://pay?version=N" in unpinned.stderr
