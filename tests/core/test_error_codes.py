"""Errors a backend causes keep its own error code, config and credential errors too."""

from __future__ import annotations

import pytest

from aureus_core.errors import (
    ConfigError,
    CredentialError,
    DecryptionError,
    NotAMessage,
    ProviderError,
)


@pytest.mark.parametrize("kind", [ConfigError, CredentialError])
def test_config_and_credential_errors_carry_an_optional_code(
    kind: type[ConfigError] | type[CredentialError],
) -> None:
    plain = kind("bad option 'x'; fix it")
    coded = kind("refused as invalid", code="ValidationException")
    assert (str(plain), getattr(plain, "code", "absent")) == ("bad option 'x'; fix it", None)
    assert (str(coded), getattr(coded, "code", "absent")) == (
        "refused as invalid",
        "ValidationException",
    )


def test_provider_errors_keep_provider_and_code() -> None:
    error = ProviderError("down", provider="aws-kms", code="KMSInternalException")
    assert (error.provider, error.code) == ("aws-kms", "KMSInternalException")


def test_decryption_errors_carry_an_optional_code_and_stay_opaque() -> None:
    plain, refused = DecryptionError(), DecryptionError(code="InvalidCiphertextException")
    assert (str(plain), plain.code) == (
        "the message could not be decrypted and authenticated",
        None,
    )
    assert (str(refused), refused.code) == (str(plain), "InvalidCiphertextException")
    assert NotAMessage("this is text, not a message").code is None
