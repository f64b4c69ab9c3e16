from pathlib import Path

import pytest

from aureus_core import ConfigError, KeyRef
from aureus_core.config import StackConfig

GOOD = """
[stack]
default_provider = "local"
wrapping_keys = ["local://payments", "local://backup"]
signing_key = "local://signer?version=2"

[providers.local]
keystore = "keys"
credentials = "pass"

[credentials.pass]
source = "env"
variables = { passphrase = "MY_PASSPHRASE" }

[cache]
backend = "memory"
capacity = 10

[audit]
required = false
[[audit.sinks]]
type = "logging"
level = "INFO"
"""


def test_full_file(tmp_path: Path):
    path = tmp_path / "aureus.toml"
    path.write_text(GOOD)
    config = StackConfig.from_file(path)
    assert config.wrapping_keys == (
        KeyRef.parse("local://payments"),
        KeyRef.parse("local://backup"),
    )
    assert config.signing_key == KeyRef(scheme="local", key_id="signer", version="2")
    assert config.providers["local"]["keystore"] == str(tmp_path / "keys")
    assert config.credentials["pass"].name == "env"
    assert config.credentials["pass"].options == {"variables": {"passphrase": "MY_PASSPHRASE"}}
    assert config.cache is not None
    assert (config.cache.name, dict(config.cache.options)) == ("memory", {"capacity": 10})
    assert [s.name for s in config.audit_sinks] == ["logging"]
    assert config.audit_required is False
    assert config.source == str(path)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"stak": {}}, r"unknown section\(s\) stak"),
        ({"stack": {"wrapping_key": []}}, r"\[stack\] unknown key\(s\) wrapping_key"),
        ({"stack": {"wrapping_keys": ["payments"]}}, r"\[stack\] 'payments' is not a key URI"),
        ({"stack": {"signing_key": 3}}, "key URIs must be strings"),
        ({"providers": {"local": {"credentials": "x"}}}, r"names no \[credentials.x\] table"),
        ({"credentials": {"x": {"variables": {}}}}, r"\[credentials.x\] needs source"),
        ({"audit": {"required": "yes"}}, "required must be true or false"),
        ({"audit": {"sinks": [{"level": "x"}]}}, r"\[audit.sinks.0\] needs type"),
        ({"audit": {"sink": []}}, r"unknown key\(s\) sink"),
        ({"providers": {"local": 3}}, r"\[providers.local\] must be a table"),
    ],
)
def test_errors_name_the_place(data, message):
    with pytest.raises(ConfigError, match=message):
        StackConfig.from_dict(data, source="cfg.toml")


def test_unreadable_files(tmp_path: Path):
    with pytest.raises(ConfigError, match="does not exist"):
        StackConfig.from_file(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[stack\n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        StackConfig.from_file(bad)


def test_single_wrapping_key_string_is_accepted():
    config = StackConfig.from_dict({"stack": {"wrapping_keys": "local://a"}})
    assert config.wrapping_keys == (KeyRef.parse("local://a"),)


def test_repr_never_shows_credential_values():
    config = StackConfig.from_dict(
        {"credentials": {"p": {"source": "static", "values": {"passphrase": "s3cr3t-pass"}}}}
    )
    assert "s3cr3t-pass" not in repr(config)
    assert "values" in repr(config.credentials["p"])


def test_path_options_of_any_plugin_resolve_against_the_config_file(tmp_path: Path):
    """keystore/path/file and *_file, *_path, *_dir are paths; other options stay as written."""
    path = tmp_path / "conf" / "aureus.toml"
    path.parent.mkdir()
    path.write_text(
        """
[providers.acme]
ca_file = "certs/ca.pem"
state_dir = "state"
socket_path = "/run/acme.sock"
profile = "certs/not-a-path"

[credentials.acme]
source = "acme-token"
token_file = "token"

[cache]
backend = "disk"
path = "cache.db"
"""
    )
    config = StackConfig.from_file(path)
    base = tmp_path / "conf"
    acme = config.providers["acme"]
    assert acme["ca_file"] == str(base / "certs" / "ca.pem")
    assert acme["state_dir"] == str(base / "state")
    assert acme["socket_path"] == "/run/acme.sock"  # absolute: unchanged
    assert acme["profile"] == "certs/not-a-path"
    assert config.credentials["acme"].options["token_file"] == str(base / "token")
    assert config.cache is not None
    assert config.cache.options["path"] == str(base / "cache.db")
    from_dict = StackConfig.from_dict({"providers": {"acme": {"ca_file": "certs/ca.pem"}}})
    assert from_dict.providers["acme"]["ca_file"] == "certs/ca.pem"  # no file, no base directory
