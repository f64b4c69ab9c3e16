"""Keep data keys and credentials out of botocore's DEBUG log.

With DEBUG logging on, botocore logs every request's body (``botocore.endpoint``:
"Making request for ... with params") and every response's body
(``botocore.parsers``: "Response body").  For KMS those bodies hold plaintext
data keys (``Encrypt``'s ``Plaintext``; ``GenerateDataKey`` and ``Decrypt``
answer with one); for STS, the web identity token sent and the temporary keys
received (``SecretAccessKey``, ``SessionToken``).  :func:`install` puts a
filter on those two loggers that replaces the value of every member the KMS
and STS service models mark sensitive (and the session token, which STS's
model does not mark) before any handler sees the record, in the three shapes
they are logged in: KMS's JSON (``"Plaintext": "..."``), STS's query
parameters (a dict, or ``WebIdentityToken=...``) and STS's XML answers
(``<SecretAccessKey>...</SecretAccessKey>``).  The tests pin that it still does
with the installed botocore.
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
_FALLBACK_MEMBERS = (
    "Plaintext",
    "PrivateKeyPlaintext",
    "SharedSecret",
    "KeyStorePassword",
    "SecretAccessKey",
    "SessionToken",
    "WebIdentityToken",
    "SAMLAssertion",
)
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
    """Names of the KMS and STS members the service models mark sensitive, and a few more."""
    found = set(_FALLBACK_MEMBERS)
    session = botocore.session.get_session()
    for service in ("kms", "sts"):
        model = session.get_service_model(service)
        for operation in model.operation_names:
            operation_model = model.operation_model(operation)
            for shape in (operation_model.input_shape, operation_model.output_shape):
                if shape is not None:
                    _sensitive(shape, shape.name, found, set())
    return frozenset(found)


_Rule = tuple[re.Pattern[str], str]


@functools.cache
def _rules() -> tuple[list[_Rule], list[tuple[re.Pattern[bytes], bytes]]]:
    names = "|".join(sorted(map(re.escape, sensitive_members())))
    shapes = [
        (rf'("(?:{names})"\s*:\s*)"[^"]*"', rf'\1"{REDACTED}"'),  # JSON (KMS)
        (rf"(<({names})>)[^<]*(</\2>)", rf"\1{REDACTED}\3"),  # XML answers (STS)
        (rf"(\b(?:{names})=)[^&\s'\"]*", rf"\1{REDACTED}"),  # query parameters (STS)
    ]
    text = [(re.compile(pattern), replacement) for pattern, replacement in shapes]
    raw = [(re.compile(p.encode()), r.encode()) for p, r in shapes]
    return text, raw


def redact(value: Any) -> Any:
    """``value`` with sensitive members' values replaced; other values as they are."""
    text_rules, bytes_rules = _rules()
    if isinstance(value, str):
        for pattern, replacement in text_rules:
            value = pattern.sub(replacement, value)
        return value
    if isinstance(value, (bytes, bytearray)):
        data = bytes(value)
        for raw_pattern, raw_replacement in bytes_rules:
            data = raw_pattern.sub(raw_replacement, data)
        return data
    if isinstance(value, Mapping):  # botocore's request_dict, and a query body inside it
        names = sensitive_members()
        return {key: REDACTED if key in names else redact(item) for key, item in value.items()}
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
