"""SourceOptions: the option checks every credential plugin shares; no value in any message."""

from __future__ import annotations

import pytest

from aureus_core.errors import ConfigError
from aureus_core.options import SourceOptions


def test_unknown_options_are_named_with_what_is_accepted() -> None:
    with pytest.raises(ConfigError) as refused:
        SourceOptions("oidc", {"role": "hunter2", "token_file": "t"}, ("token_file", "role_arn"))
    assert str(refused.value) == (
        "unknown option(s) for credential source 'oidc': role; it accepts role_arn, token_file"
    )
    with pytest.raises(ConfigError, match="options of credential source 'oidc' must be a table"):
        SourceOptions("oidc", ["token_file"], ())  # type: ignore[arg-type]


def test_string_falls_back_to_the_environment_and_reports_what_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    options = SourceOptions("oidc", {"token_file": "/t"}, ("token_file", "role_arn"))
    assert options.string("token_file") == "/t"
    monkeypatch.setenv("ROLE", "arn:role")
    assert options.required("role_arn", "ROLE") == "arn:role"
    monkeypatch.delenv("ROLE")
    assert options.string("role_arn", "ROLE") is None
    with pytest.raises(ConfigError) as missing:
        options.required("role_arn", "ROLE")
    expected = "credential source 'oidc' needs the option 'role_arn' (or set ROLE)"
    assert str(missing.value) == expected


@pytest.mark.parametrize("value", ["", 3, ["s3cret"]])
def test_a_bad_string_is_refused_without_showing_it(value: object) -> None:
    options = SourceOptions("iam", {"profile": value}, ("profile",))
    with pytest.raises(ConfigError) as refused:
        options.string("profile")
    assert str(refused.value) == (
        "option 'profile' of credential source 'iam' must be a non-empty string"
    )


def test_flags_are_booleans_only() -> None:
    options = SourceOptions("adc", {"on": True, "bad": "yes"}, ("on", "bad"))
    assert (options.flag("on"), options.flag("absent"), options.flag("absent", True)) == (
        True,
        False,
        True,
    )
    with pytest.raises(ConfigError, match="option 'bad' of credential source 'adc' must be true"):
        options.flag("bad")
