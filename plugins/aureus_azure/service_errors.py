"""Map Key Vault answers and azure-core exceptions onto the Aureus error hierarchy.

404 is :class:`KeyNotFound`; 403 is :class:`AccessDenied`, or :class:`KeyDisabled`
when the service says the key is disabled; 409 :class:`KeyExists`; 429
:class:`Throttled`; 5xx and connection failures :class:`ProviderUnavailable`
(after azure-core's bounded retries); 401 :class:`CredentialError`.  The
service's error code is kept in ``.code``.
"""

from __future__ import annotations

import json
from typing import Any

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)

from aureus_core.errors import (
    AccessDenied,
    AureusError,
    CredentialError,
    KeyDisabled,
    KeyExists,
    KeyNotFound,
    ProviderError,
    ProviderUnavailable,
    Throttled,
)

from .naming import SCHEME

_MAX_MESSAGE = 300


def service_error(response: Any) -> tuple[str | None, str | None, str]:
    """The error code, inner error code and message in a Key Vault error body."""
    try:
        body = json.loads(response.text())
        error = body.get("error") or {}
        inner = error.get("innererror") or {}
        code = error.get("code")
        inner_code = inner.get("code") if isinstance(inner, dict) else None
        message = str(error.get("message") or "")
    except (ValueError, AttributeError, TypeError):
        code, inner_code, message = None, None, ""
    return code, inner_code, message[:_MAX_MESSAGE]


def from_status(status: int, body: Any, what: str) -> AureusError:
    """The Aureus error for a failed answer with ``status`` (``body``: the response)."""
    code, inner, message = service_error(body) if body is not None else (None, None, "")
    detail = f"{what}: Key Vault answered {status}" + (f" {code}" if code else "")
    if message:
        detail = f"{detail} ({message})"
    kept = code or str(status)
    if status == 401:
        return CredentialError(
            f"{detail}; the credentials were refused: check the credential source and tenant"
        )
    if status == 403:
        if "disabled" in f"{code} {inner} {message}".lower():
            return KeyDisabled(
                f"{detail}; enable the version if it is still needed",
                provider=SCHEME,
                code=inner or kept,
            )
        return AccessDenied(
            f"{detail}; grant the identity the Key Vault role or access policy for this operation",
            provider=SCHEME,
            code=kept,
        )
    if status == 404:
        return KeyNotFound(
            f"{detail}; check the vault, key name and version", provider=SCHEME, code=kept
        )
    if status == 409:
        return KeyExists(
            f"{detail}; the name is taken (possibly by a deleted key awaiting purge)",
            provider=SCHEME,
            code=kept,
        )
    if status == 429:
        return Throttled(f"{detail}; retry later", provider=SCHEME, code=kept)
    if status >= 500:
        return ProviderUnavailable(
            f"{detail}; the service is unavailable, retry later", provider=SCHEME, code=kept
        )
    return ProviderError(detail, provider=SCHEME, code=kept)


def from_exception(error: AzureError, what: str) -> AureusError:
    """The Aureus error for an exception raised by an Azure SDK client."""
    if isinstance(error, ClientAuthenticationError) and error.response is None:
        return CredentialError(f"{what}: could not get a token: {_first_line(error)}")
    if isinstance(error, HttpResponseError) and error.response is not None:
        return from_status(error.status_code or 0, error.response, what)
    if isinstance(error, (ServiceRequestError, ServiceResponseError)):
        return ProviderUnavailable(
            f"{what}: Key Vault could not be reached ({type(error).__name__}); "
            "check the network and the vault URL, then retry",
            provider=SCHEME,
            code=type(error).__name__,
        )
    return ProviderError(
        f"{what}: {_first_line(error)}", provider=SCHEME, code=type(error).__name__
    )


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:_MAX_MESSAGE]
