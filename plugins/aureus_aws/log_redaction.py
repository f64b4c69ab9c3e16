"""Keep data keys out of botocore's DEBUG log.

With DEBUG logging on, botocore logs every request's body (``botocore.endpoint``:
"Making request for ... with params") and every response's body
(``botocore.parsers``: "Response body").  For KMS those bodies hold plaintext
data keys (``Encrypt``'s ``Plaintext``; ``GenerateDataKey`` and ``Decrypt``
answer with one).  :func:`install` puts a filter on those two loggers that
replaces the value of every member the KMS service model marks sensitive
before any handler sees the record.  It matches the awsJson text KMS speaks
(``"Plaintext": "..."``), whatever the message format; the tests pin that it
still does with the installed botocore.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from collections.abc import Mapping
from typing import Any

import botocore.session

LOGGERS = ("botocore.endpoint", "botocore.parsers")
"""The botocore loggers that write request and response bodies."""
REDACTED = "<redacted>"
_FALLBACK_MEMBERS = ("Plaintext", "PrivateKeyPlaintext", "SharedSecret", "KeyStorePassword")
_lock = threading.Lock()


def _sensitive(shape: Any, name: str, found: set[str], seen: set[str]) -> None:
    if shape.metadata.get("sensitive"):
        found.add(name)
    if shape.name in seen:
        return
    seen.add(shape.name)
    if shape.type_name == "structure":
        for member, member_shape in shape.members.items():
            _sensitive(member_shape, member, found, seen)
    elif shape.type_name == "list":
        _sensitive(shape.member, name, found, seen)


@functools.cache
def sensitive_members() -> frozenset[str]:
    """Names of the KMS request and response members the service model marks sensitive."""
    found = set(_FALLBACK_MEMBERS)
    model = botocore.session.get_session().get_service_model("kms")
    for operation in model.operation_names:
        operation_model = model.operation_model(operation)
        for shape in (operation_model.input_shape, operation_model.output_shape):
            if shape is not None:
                _sensitive(shape, shape.name, found, set())
    return frozenset(found)


@functools.cache
def _patterns() -> tuple[re.Pattern[str], re.Pattern[bytes]]:
    names = "|".join(sorted(map(re.escape, sensitive_members())))
    text = rf'("(?:{names})"\s*:\s*)"[^"]*"'
    return re.compile(text), re.compile(text.encode("ascii"))


def redact(value: Any) -> Any:
    """``value`` with sensitive KMS members' values replaced; other values as they are."""
    text_pattern, bytes_pattern = _patterns()
    if isinstance(value, str):
        return text_pattern.sub(rf'\1"{REDACTED}"', value)
    if isinstance(value, (bytes, bytearray)):
        return bytes_pattern.sub(rf'\1"{REDACTED}"'.encode("ascii"), bytes(value))
    if isinstance(value, Mapping):  # botocore's request_dict: redact its body, leave the rest
        return {key: redact(item) for key, item in value.items()}
    return value


class KmsBodyRedactor(logging.Filter):
    """Replaces sensitive KMS members in a record's message and arguments; drops nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact ``record`` in place (the live request is never touched: copies are logged)."""
        record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(arg) for arg in record.args)
        elif isinstance(record.args, Mapping):
            record.args = redact(record.args)
        return True


def install() -> None:
    """Put one :class:`KmsBodyRedactor` on each logger of :data:`LOGGERS` (idempotent)."""
    with _lock:
        for name in LOGGERS:
            logger = logging.getLogger(name)
            if not any(isinstance(f, KmsBodyRedactor) for f in logger.filters):
                logger.addFilter(KmsBodyRedactor())
