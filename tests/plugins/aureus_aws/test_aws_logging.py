"""No data key reaches the log, even with botocore's DEBUG logging on.

botocore logs every request body (``botocore.endpoint``) and response body
(``botocore.parsers``) at DEBUG; for KMS they hold ``Plaintext``.  The
provider installs a redacting filter on those loggers.
"""

from __future__ import annotations

import logging
import os
import uuid
from typing import Any

import pytest

from aureus_core.context import EncryptionContext
from aureus_core.keys import KeySpec, KeyType
from aureus_core.testing.leaks import assert_no_secret

BODY_LOGGERS = ("botocore.endpoint", "botocore.parsers")


def test_data_keys_are_not_in_botocore_debug_logs(
    make_provider: Any, caplog: pytest.LogCaptureFixture
) -> None:
    provider = make_provider()
    key = provider.create_key(f"log-{uuid.uuid4().hex[:8]}", KeySpec(key_type=KeyType.AES_256))
    caplog.set_level(logging.DEBUG)
    context = EncryptionContext({"purpose": "logging"})
    data_key = os.urandom(32)
    wrapped = provider.wrap(key.ref, data_key, context)  # Encrypt: Plaintext in the request
    assert bytes(provider.unwrap(wrapped.key, wrapped.encrypted, context)) == data_key  # answer
    generated, _ = provider.generate_data_key(key.ref, 32, context)  # in the answer
    bodies = [r for r in caplog.records if r.name in BODY_LOGGERS and "Plaintext" in r.getMessage()]
    # botocore did log the bodies (Encrypt's request, Decrypt's and GenerateDataKey's answers) ...
    assert len(bodies) >= 3
    assert all(
        '"Plaintext": "<redacted>"' in r.getMessage() for r in bodies
    )  # ... with the values redacted
    text = caplog.text + " ".join(str(r.__dict__) for r in caplog.records)
    assert_no_secret(text, [data_key, bytes(generated)], "the botocore DEBUG log")


def test_the_filter_is_installed_once_per_logger(make_provider: Any) -> None:
    from aureus_aws.log_redaction import LOGGERS, KmsBodyRedactor

    assert set(LOGGERS) == set(BODY_LOGGERS)
    make_provider()
    make_provider()
    for name in LOGGERS:
        filters = logging.getLogger(name).filters
        assert sum(isinstance(f, KmsBodyRedactor) for f in filters) == 1


def test_redaction_copies_and_keeps_the_rest() -> None:
    from aureus_aws.log_redaction import redact

    request = {"body": b'{"KeyId": "k", "Plaintext": "c2VjcmV0/+=="}', "url_path": "/"}
    logged = redact(request)
    assert logged == {"body": b'{"KeyId": "k", "Plaintext": "<redacted>"}', "url_path": "/"}
    assert request["body"] == b'{"KeyId": "k", "Plaintext": "c2VjcmV0/+=="}'  # still sent as is
    assert redact('{"PrivateKeyPlaintext":"x","CiphertextBlob":"y"}') == (
        '{"PrivateKeyPlaintext":"<redacted>","CiphertextBlob":"y"}'
    )
