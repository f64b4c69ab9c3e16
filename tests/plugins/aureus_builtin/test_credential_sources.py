from __future__ import annotations

import pytest

from aureus_builtin.credential_sources import EnvCredentialSource, StaticCredentialSource
from aureus_core.errors import ConfigError, CredentialError
from aureus_core.interfaces import CredentialSource
from aureus_core.testing import CredentialSourceContract

PASSPHRASE = "correct horse battery staple"
TOKEN = "s3cr3t-t0ken-value-0123456789"


class TestEnvCredentialSourceContract(CredentialSourceContract):
    holds_only_what_it_returns = True  # it reads the variables at each call

    @pytest.fixture
    def credential_source(self, monkeypatch: pytest.MonkeyPatch) -> CredentialSource:
        monkeypatch.setenv("AUREUS_TEST_PASSPHRASE", PASSPHRASE)
        monkeypatch.setenv("AUREUS_TEST_TOKEN", TOKEN)
        return EnvCredentialSource.from_options(
            {"variables": {"passphrase": "AUREUS_TEST_PASSPHRASE", "token": "AUREUS_TEST_TOKEN"}}
        )

    @pytest.fixture
    def failing_credential_source(self, credential_source: CredentialSource) -> CredentialSource:
        """The passphrase is set, the token is not: the error must not show the passphrase."""
        return EnvCredentialSource(
            {"passphrase": "AUREUS_TEST_PASSPHRASE", "token": "AUREUS_TEST_MISSING_TOKEN"}
        )


class TestStaticCredentialSourceContract(CredentialSourceContract):
    holds_only_what_it_returns = True

    @pytest.fixture
    def credential_source(self) -> CredentialSource:
        return StaticCredentialSource.from_options(
            {"values": {"passphrase": PASSPHRASE, "token": TOKEN}}
        )


def test_env_values_are_read_on_each_call():
    environ = {"PASS": "first-passphrase"}
    source = EnvCredentialSource({"passphrase": "PASS"}, environ=environ)
    assert source.get_credentials().values["passphrase"].reveal() == "first-passphrase"
    environ["PASS"] = "second-passphrase"
    credentials = source.get_credentials()
    assert (credentials.kind, credentials.values["passphrase"].reveal()) == (
        "env",
        "second-passphrase",
    )


def test_env_missing_variable_is_named_and_no_value_is_shown():
    source = EnvCredentialSource(
        {"passphrase": "AUREUS_MISSING_PASSPHRASE", "token": "PRESENT", "key": "EMPTY"},
        environ={"PRESENT": TOKEN, "EMPTY": ""},
    )
    with pytest.raises(CredentialError) as error:
        source.get_credentials()
    message = str(error.value)
    assert message == (
        "environment variable(s) AUREUS_MISSING_PASSPHRASE (for 'passphrase'), EMPTY (for 'key') "
        "not set or empty: set them, or change the env credential source's 'variables'"
    )
    assert TOKEN not in message


def test_env_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AUREUS_KEYSTORE_PASSPHRASE", PASSPHRASE)
    source = EnvCredentialSource.from_options(
        {"variables": {"passphrase": "AUREUS_KEYSTORE_PASSPHRASE"}}
    )
    assert source.get_credentials().values["passphrase"].reveal() == PASSPHRASE
    assert repr(source) == (
        "EnvCredentialSource(variables={'passphrase': 'AUREUS_KEYSTORE_PASSPHRASE'})"
    )


def test_static_values_are_secret():
    source = StaticCredentialSource({"passphrase": PASSPHRASE})
    value = source.get_credentials().values["passphrase"]
    assert (repr(value), value.reveal()) == ("<secret>", PASSPHRASE)
    assert repr(source) == "StaticCredentialSource(names=['passphrase'])"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "the env credential source needs the option 'variables'"),
        (
            {"variables": "AUREUS_PASSPHRASE"},
            "option 'variables' of the env credential source must be a table of names to "
            "environment variable names, not str",
        ),
        ({"variables": {}}, "option 'variables' of the env credential source may not be empty"),
        (
            {"variables": {"passphrase": 7}},
            "option 'variables' of the env credential source: the value of 'passphrase' must "
            "be a string, not int",
        ),
        (
            {"variables": {"": "X"}},
            "option 'variables' of the env credential source has an empty or non-string name",
        ),
        (
            {"variables": {"passphrase": "X"}, "prefix": "AUREUS_"},
            "unknown option(s) for the env credential source: prefix; it accepts variables",
        ),
    ],
)
def test_env_option_errors(options, message):
    with pytest.raises(ConfigError) as error:
        EnvCredentialSource.from_options(options)
    assert str(error.value) == message


def test_static_option_errors_never_show_values():
    with pytest.raises(ConfigError) as error:
        StaticCredentialSource.from_options({"values": {"passphrase": PASSPHRASE, "pin": 123456}})
    assert str(error.value) == (
        "option 'values' of the static credential source: the value of 'pin' must be a "
        "string, not int"
    )
    with pytest.raises(ConfigError) as error:
        StaticCredentialSource.from_options({"value": {"passphrase": PASSPHRASE}})
    assert PASSPHRASE not in str(error.value)
    assert "unknown option(s) for the static credential source: value" in str(error.value)
