"""Errors a backend causes keep its own error code, config and credential errors too."""

from __future__ import annotations

import pytest

from aureus_core import KeyStack
from aureus_core.context import EncryptionContext
from aureus_core.datakey import EncryptedDataKey, WrappedKey
from aureus_core.errors import (
    ConfigError,
    CredentialError,
    DecryptionError,
    NotAMessage,
    ProviderError,
)
from aureus_core.interfaces import Capability, KeyProviderBase
from aureus_core.keyref import KeyRef


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


class _Refusing(KeyProviderBase):
    """Wraps anything; every unwrap is refused by its "service" with ``codes[key name]``."""

    scheme = "refusing"
    capabilities = frozenset({Capability.WRAP})

    def __init__(self, codes: dict[str, str]) -> None:
        self.codes = codes

    def wrap(self, key: KeyRef, data_key: bytes, context: EncryptionContext) -> WrappedKey:
        edk = EncryptedDataKey(
            provider_id="aureus-refusing", provider_info=key.key_id.encode(), ciphertext=b"c" * 48
        )
        return WrappedKey(key=key, encrypted=edk)

    def unwrap(
        self, key: KeyRef, encrypted: EncryptedDataKey, context: EncryptionContext
    ) -> bytearray:
        raise DecryptionError(code=self.codes[key.key_id])

    def owner_of(self, encrypted: EncryptedDataKey) -> KeyRef | None:
        if encrypted.provider_id != "aureus-refusing":
            return None
        return KeyRef.parse(f"refusing://{encrypted.provider_info.decode()}")


def test_the_stack_keeps_the_service_code_when_one_key_was_tried() -> None:
    """A decrypt through the stack that asked one key carries that service's code."""
    provider = _Refusing({"a": "InvalidCiphertextException"})
    with KeyStack(providers={"refusing": provider}) as stack:
        message = stack.encrypt(b"x", keys=["refusing://a"], context={"p": "1"})
        with pytest.raises(DecryptionError) as raised:
            stack.decrypt(message, keys=["refusing://a"])
    assert raised.value.code == "InvalidCiphertextException"
    assert "refusing://a (did not unwrap)" not in str(raised.value)  # one key: no list


def test_the_stack_gives_no_code_when_several_keys_failed_differently() -> None:
    """With two keys tried there is no one service code to report."""
    provider = _Refusing({"a": "InvalidCiphertextException", "b": "IncorrectKeyException"})
    with KeyStack(providers={"refusing": provider}) as stack:
        keys = ["refusing://a", "refusing://b"]
        message = stack.encrypt(b"x", keys=keys, context={"p": "1"})
        with pytest.raises(DecryptionError) as raised:
            stack.decrypt(message, keys=keys)
    assert raised.value.code is None
    assert "refusing://a (did not unwrap)" in str(raised.value)
    assert "refusing://b (did not unwrap)" in str(raised.value)


def test_every_public_error_is_exported_from_the_package() -> None:
    """A caller catches any Aureus error by importing it from ``aureus_core``."""
    import aureus_core
    from aureus_core import errors

    public = {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type)
        and issubclass(value, errors.AureusError)
        and not name.startswith("_")
    }
    assert public - set(aureus_core.__all__) == set()
