"""Keep data keys out of google-cloud-kms's DEBUG log.

With DEBUG logging on for the ``google`` loggers, the Cloud KMS client's
transports log every request's and response's payload as JSON in the log
record's extra fields (``request`` / ``response`` for gRPC, ``httpRequest`` /
``httpResponse`` for REST): Encrypt's ``plaintext`` and Decrypt's answer are
data keys.  :func:`install` puts a filter on the Key Management Service
client's loggers that replaces those values with ``<redacted>`` (and any
``authorization`` header), in copies, before any handler sees the record.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from typing import Any

_SERVICE = "google.cloud.kms_v1.services.key_management_service"
LOGGERS = tuple(
    f"{_SERVICE}.{module}"
    for module in (
        "client",
        "async_client",
        "transports.grpc",
        "transports.grpc_asyncio",
        "transports.rest",
    )
)
"""The loggers of the client and its transports that write payloads."""
REDACTED = "<redacted>"
SENSITIVE = ("plaintext",)
"""The JSON members of Cloud KMS requests and responses that hold key material."""
_EXTRAS = ("request", "response", "httpRequest", "httpResponse")
_MEMBER = re.compile(rf'("(?:{"|".join(SENSITIVE)})"\s*:\s*)"[^"]*"')
_RAW_MEMBER = re.compile(_MEMBER.pattern.encode())
_lock = threading.Lock()


def redact(value: Any) -> Any:
    """``value`` with sensitive members' values (and ``authorization`` headers) replaced."""
    if isinstance(value, str):
        return _MEMBER.sub(rf'\1"{REDACTED}"', value)
    if isinstance(value, (bytes, bytearray)):
        return _RAW_MEMBER.sub(rf'\1"{REDACTED}"'.encode(), bytes(value))
    if isinstance(value, Mapping):
        return {
            key: REDACTED
            if isinstance(key, str) and key.lower() in ("authorization", *SENSITIVE)
            else redact(item)
            for key, item in value.items()
        }
    return value


class KmsPayloadRedactor(logging.Filter):
    """Replaces key material in a record's message, arguments and payload extras."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact ``record`` (copies of what it carries; the request sent is not touched)."""
        record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(arg) for arg in record.args)
        elif isinstance(record.args, Mapping):
            record.args = redact(record.args)
        for name in _EXTRAS:
            if name in record.__dict__:
                record.__dict__[name] = redact(record.__dict__[name])
        return True


def install() -> None:
    """Put one :class:`KmsPayloadRedactor` on each logger of :data:`LOGGERS` (idempotent)."""
    with _lock:
        for name in LOGGERS:
            logger = logging.getLogger(name)
            if not any(isinstance(f, KmsPayloadRedactor) for f in logger.filters):
                logger.addFilter(KmsPayloadRedactor())
