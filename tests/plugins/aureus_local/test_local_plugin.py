"""The local provider built from configuration: its options, their errors, and the passphrase.

What ``[providers.local]`` and a credential source give ``create_provider``, what it refuses
word for word, and where it says a passphrase came from (never the passphrase itself).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aureus_builtin.credential_sources import EnvCredentialSource, StaticCredentialSource
from aureus_core.errors import ConfigError, CredentialError
from aureus_core.interfaces import Credentials, ProviderSettings
from aureus_core.keys import KeySpec
from aureus_core.sensitive import Secret
from aureus_local import plugin
from aureus_local.plugin import OPTIONS, create_provider

PASSPHRASE = "correct horse battery staple"
CHEAP = {"scrypt_log_n": 10, "insecure_kdf_for_tests": True}


def build(tmp_path: Path, credentials: Any = None, **options: Any) -> Any:
    options.setdefault("keystore", str(tmp_path / "ks"))
    return create_provider(ProviderSettings(options=options, credentials=credentials))


class PlainCredentials:
    """A third party's source that hands out a plain string, not a Secret."""

    name = "plain"

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = values

    def get_credentials(self) -> Credentials:
        return Credentials(kind=self.name, values=self._values)


def test_an_unknown_option_is_named_with_the_ones_accepted(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        build(tmp_path, colour="red", keystore_dir="x")
    assert str(caught.value) == (
        "unknown option(s) for the local provider: colour, keystore_dir; it accepts "
        f"{', '.join(OPTIONS)}"
    )
    assert ", ".join(OPTIONS).startswith("keystore, scrypt_log_n, insecure_kdf_for_tests")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"keystore": ""}, "the local provider's 'keystore' option must be a directory path"),
        ({"keystore": 7}, "the local provider's 'keystore' option must be a directory path"),
        (
            {"scrypt_log_n": "ten"},
            "the local provider's 'scrypt_log_n' must be a whole number, not 'ten'",
        ),
        (
            {"min_generation": 1.5},
            "the local provider's 'min_generation' must be a whole number, not 1.5",
        ),
        (
            {"min_generation": True},
            "the local provider's 'min_generation' must be a whole number, not True",
        ),
        (
            {"recheck_interval": "soon"},
            "the local provider's 'recheck_interval' must be a number of seconds, not 'soon'",
        ),
        (
            {"recheck_interval": True},
            "the local provider's 'recheck_interval' must be a number of seconds, not True",
        ),
        (
            {"insecure_kdf_for_tests": "yes"},
            "the local provider's 'insecure_kdf_for_tests' must be true or false, not 'yes'",
        ),
        ({"keystore_id": 5}, "the local provider's 'keystore_id' must be a string, not 5"),
        ({"state_file": ""}, "the local provider's 'state_file' must be a file path"),
    ],
)
def test_a_bad_option_is_refused_by_name(
    tmp_path: Path, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        build(tmp_path, **options)
    assert str(caught.value) == message


def test_the_options_reach_the_keystore(tmp_path: Path) -> None:
    provider = build(
        tmp_path,
        min_generation="0",  # a whole number may be written as digits
        recheck_interval=0.5,
        state_file=str(tmp_path / "state.json"),
        **CHEAP,
    )
    assert provider.keystore._recheck_interval == 0.5
    provider.create_key("k", KeySpec(key_type="aes-256"))
    assert (tmp_path / "state.json").exists()
    assert build(tmp_path).keystore._recheck_interval == 0.05  # the default


def test_the_passphrase_comes_from_the_environment_without_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUREUS_KEYSTORE_PASSPHRASE", PASSPHRASE)
    build(tmp_path, **CHEAP).create_key("k", KeySpec(key_type="aes-256"))
    monkeypatch.setenv("AUREUS_KEYSTORE_PASSPHRASE", "another")
    with pytest.raises(CredentialError) as caught:
        build(tmp_path, **CHEAP).list_keys()
    assert str(caught.value) == (
        f"wrong passphrase for keystore {tmp_path / 'ks'}: check the environment variable "
        "AUREUS_KEYSTORE_PASSPHRASE, where it came from"
    )


@pytest.mark.parametrize(
    ("credentials", "source"),
    [
        (
            EnvCredentialSource({"passphrase": "MY_PASS"}, environ={"MY_PASS": "another"}),
            "the environment variable MY_PASS (credential source 'env')",
        ),
        (
            StaticCredentialSource({"passphrase": "another"}),
            "the 'passphrase' of credential source 'static'",
        ),
        (
            PlainCredentials({"passphrase": "another"}),
            "the 'passphrase' of credential source 'plain'",
        ),
    ],
)
def test_a_wrong_passphrase_names_where_it_came_from(
    tmp_path: Path, credentials: Any, source: str
) -> None:
    build(tmp_path, StaticCredentialSource({"passphrase": PASSPHRASE}), **CHEAP).create_key(
        "k", KeySpec(key_type="aes-256")
    )
    with pytest.raises(CredentialError) as caught:
        build(tmp_path, credentials, **CHEAP).list_keys()
    assert str(caught.value) == (
        f"wrong passphrase for keystore {tmp_path / 'ks'}: check {source}, where it came from"
    )
    assert "another" not in str(caught.value)


def test_a_plain_string_passphrase_from_a_third_party_source_opens_the_keystore(
    tmp_path: Path,
) -> None:
    build(tmp_path, PlainCredentials({"passphrase": PASSPHRASE}), **CHEAP).create_key(
        "k", KeySpec(key_type="aes-256")
    )
    reader = build(tmp_path, StaticCredentialSource({"passphrase": PASSPHRASE}), **CHEAP)
    assert [m.uri for m in reader.list_keys()] == ["local://k"]
    secret = plugin.passphrase(PlainCredentials({"passphrase": PASSPHRASE}))
    assert isinstance(secret, Secret)
    assert secret.reveal() == PASSPHRASE


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {},
            "credential source 'plain' gave the local provider no 'passphrase' value: add one, "
            "or remove the credentials to use a key file",
        ),
        (
            {"passphrase": ""},
            "the 'passphrase' from credential source 'plain' must be a non-empty string",
        ),
        (
            {"passphrase": Secret("")},
            "the 'passphrase' from credential source 'plain' must be a non-empty string",
        ),
        (
            {"passphrase": 1234},
            "the 'passphrase' from credential source 'plain' must be a non-empty string",
        ),
    ],
)
def test_a_missing_or_empty_passphrase_is_refused(
    tmp_path: Path, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(CredentialError) as caught:
        build(tmp_path, PlainCredentials(values), **CHEAP)
    assert str(caught.value) == message


def test_paths_in_options_may_start_at_the_home_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    provider = build(tmp_path, keystore="~/ks", state_file="~/state/seen.json")
    provider.create_key("k", KeySpec(key_type="aes-256"))
    assert (tmp_path / "ks" / "keystore.json").exists()
    assert (tmp_path / "state" / "seen.json").exists()
