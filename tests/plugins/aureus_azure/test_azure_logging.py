"""Nothing secret reaches the logs: bearer tokens, data keys, client secrets."""

from __future__ import annotations

import logging
import os
import secrets

import pytest

from aureus_azure.testing import KeyVaultEmulator
from aureus_core.context import EncryptionContext
from aureus_core.errors import CredentialError
from aureus_core.keyref import KeyRef
from aureus_core.keys import KeySpec, KeyType
from aureus_core.testing.leaks import assert_no_secret


def test_tokens_and_data_keys_are_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    token = "emulator-bearer-" + secrets.token_urlsafe(16)
    with KeyVaultEmulator(kind="managedhsm", token=token) as hsm:
        provider = hsm.provider()
        caplog.set_level(logging.DEBUG)
        ref = provider.create_key("logged", KeySpec(key_type=KeyType.AES_256)).ref
        data_key = os.urandom(32)
        wrapped = provider.wrap(ref, data_key, EncryptionContext())
        assert bytes(provider.unwrap(ref, wrapped.encrypted, EncryptionContext())) == data_key
        wrong = hsm.provider(credential=type(hsm.credential())("wrong-" + token))
        with pytest.raises(CredentialError) as refused:
            wrong.describe_key(KeyRef.parse("azure-kv://logged"))
        provider.close()
        wrong.close()
    text = caplog.text + " ".join(str(r.__dict__) for r in caplog.records)
    assert "Authorization" in text  # azure-core did log the request headers ...
    assert "REDACTED" in text  # ... with the token redacted
    assert_no_secret(text, [token, data_key], "the log")
    assert_no_secret(f"{refused.value!r} {refused.value}", [token], "the credential error")
