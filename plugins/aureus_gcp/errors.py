"""Cloud KMS errors mapped onto the Aureus hierarchy, keeping the gRPC status name in ``.code``.

| gRPC status | Aureus error |
| --- | --- |
| NOT_FOUND | KeyNotFound |
| PERMISSION_DENIED | AccessDenied |
| FAILED_PRECONDITION | KeyDisabled (a version's state), GcpConfigError (a key's purpose) |
| ALREADY_EXISTS | KeyExists |
| RESOURCE_EXHAUSTED | Throttled (after the retries) |
| UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL, UNKNOWN, ABORTED | ProviderUnavailable (retried) |
| UNAUTHENTICATED, a failed token refresh | CredentialError (:class:`GcpCredentialError`) |
| INVALID_ARGUMENT | DecryptionError when unwrapping, else :class:`GcpConfigError` |
| a wrong checksum in an answer | :class:`ResponseCorrupted` (a ProviderUnavailable) |

Messages carry the operation, the key and what the service said; never a
token, a data key or a plaintext.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from google.api_core import exceptions as api_exceptions
from google.auth import exceptions as auth_exceptions

from aureus_core.errors import (
    AccessDenied,
    AureusError,
    ConfigError,
    CredentialError,
    DecryptionError,
    KeyDisabled,
    KeyExists,
    KeyNotFound,
    ProviderError,
    ProviderUnavailable,
    Throttled,
)

from .naming import SCHEME

_MAX_DETAIL = 300
PLUGIN_METADATA_FAILURE = "metadata from plugin failed"
"""What gRPC says when the call credentials (the token refresh) raised."""


class GcpConfigError(ConfigError):
    """Cloud KMS refused a request as invalid (INVALID_ARGUMENT, OUT_OF_RANGE …)."""


class GcpCredentialError(CredentialError):
    """No usable Google credentials, or Cloud KMS did not accept them."""


class ResponseCorrupted(ProviderUnavailable):
    """An answer failed its CRC32C integrity check: it was damaged in transit.

    Nothing from the answer is used; the operation may simply be retried.
    """


def status_name(error: api_exceptions.GoogleAPICallError) -> str:
    """The gRPC status name of an API error (``NOT_FOUND`` …), else its class name."""
    status = getattr(error, "grpc_status_code", None)
    name = getattr(status, "name", None)
    return str(name) if name else type(error).__name__


def _detail(error: BaseException) -> str:
    text = getattr(error, "message", None) or str(error)
    lines = str(text).strip().splitlines()
    return (lines[0] if lines else "")[:_MAX_DETAIL]


def is_state_refusal(error: api_exceptions.GoogleAPICallError) -> bool:
    """Whether a FAILED_PRECONDITION is about a key version's state (disabled, destroyed …)."""
    text = _detail(error).lower()
    return any(word in text for word in ("state", "disabled", "destroy", "not enabled"))


def translate(
    error: BaseException,
    operation: str,
    subject: str,
    *,
    unwrap: bool = False,
    attempts: int = 1,
    state_refusal: bool = False,
) -> BaseException:
    """The Aureus error for an exception raised by ``operation`` on ``subject``.

    ``unwrap`` marks a data-key decryption, where an invalid ciphertext or
    additional data is the opaque :class:`DecryptionError`.  ``attempts`` is
    how many times the call was tried.  ``state_refusal`` marks a call on a
    key version (Encrypt, Decrypt, AsymmetricSign, GetPublicKey), whose every
    FAILED_PRECONDITION is the version's state.  Other exceptions come back
    unchanged.
    """
    where = f"Cloud KMS {operation} on {subject}"
    tried = f" after {attempts} attempts" if attempts > 1 else ""
    if isinstance(error, api_exceptions.RetryError):
        cause = error.cause
        if cause is not None and cause is not error:
            return translate(
                cause,
                operation,
                subject,
                unwrap=unwrap,
                attempts=attempts,
                state_refusal=state_refusal,
            )
        return ProviderUnavailable(
            f"{where}: no answer{tried} within the retry deadline; Cloud KMS is failing or "
            "unreachable, retry later",
            provider=SCHEME,
            code="DEADLINE_EXCEEDED",
        )
    if isinstance(error, auth_exceptions.GoogleAuthError):
        return GcpCredentialError(
            f"{where}: could not obtain Google credentials ({type(error).__name__}: "
            f"{_detail(error)}); check the credential source or Application Default "
            "Credentials",
            code=type(error).__name__,
        )
    if not isinstance(error, api_exceptions.GoogleAPICallError):
        return error
    code = status_name(error)
    said = f"{where}: {_detail(error) or code} ({code})"
    if isinstance(error, api_exceptions.InvalidArgument) and "crc32c" in _detail(error).lower():
        return corrupted(operation, subject, f"Cloud KMS refused a request checksum ({code})")
    if isinstance(error, api_exceptions.InvalidArgument) and unwrap:
        return DecryptionError(code=code)
    if isinstance(error, api_exceptions.Unauthenticated) or (
        PLUGIN_METADATA_FAILURE in _detail(error).lower()
    ):
        return GcpCredentialError(
            f"{said}; Cloud KMS did not accept the credentials: refresh or fix the credential "
            "source",
            code=code,
        )
    if isinstance(error, api_exceptions.PermissionDenied):
        return AccessDenied(
            f"{said}; grant the caller a role with the cloudkms permission for this operation "
            "on the key (e.g. roles/cloudkms.cryptoKeyEncrypterDecrypter)",
            provider=SCHEME,
            code=code,
        )
    if isinstance(error, api_exceptions.NotFound):
        return KeyNotFound(
            f"{said}; check the project, location, key ring, key and version",
            provider=SCHEME,
            code=code,
        )
    if isinstance(error, api_exceptions.AlreadyExists):
        return KeyExists(f"{said}; choose another name", provider=SCHEME, code=code)
    if isinstance(error, api_exceptions.FailedPrecondition):
        if "purpose" in _detail(error).lower():
            return GcpConfigError(
                f"{said}; the key is of the wrong kind for this operation (wrapping keys "
                "encrypt, signing keys sign)",
                code=code,
            )
        if state_refusal or is_state_refusal(error):
            return KeyDisabled(
                f"{said}; enable (or restore) the key version if it is still needed",
                provider=SCHEME,
                code=code,
            )
        return ProviderError(said, provider=SCHEME, code=code)
    if isinstance(error, api_exceptions.TooManyRequests):  # RESOURCE_EXHAUSTED
        return Throttled(
            f"{said}{tried}; retry later or raise the Cloud KMS quota", provider=SCHEME, code=code
        )
    if isinstance(
        error,
        (
            api_exceptions.ServiceUnavailable,
            api_exceptions.DeadlineExceeded,
            api_exceptions.InternalServerError,
            api_exceptions.Unknown,
            api_exceptions.Aborted,
        ),
    ):
        return ProviderUnavailable(
            f"{said}{tried}; Cloud KMS is failing or unreachable: check the endpoint and the "
            "network, retry later",
            provider=SCHEME,
            code=code,
        )
    if isinstance(error, (api_exceptions.InvalidArgument, api_exceptions.BadRequest)):
        return GcpConfigError(said, code=code)
    return ProviderError(said, provider=SCHEME, code=code)


@contextmanager
def kms_errors(
    operation: str,
    subject: str,
    *,
    unwrap: bool = False,
    attempts: list[int] | None = None,
    state_refusal: bool = False,
) -> Iterator[None]:
    """Translate Google API and auth errors raised inside the block (see :func:`translate`).

    ``attempts``, if given, is a one-element list the block updates with the
    number of attempts made.
    """
    try:
        yield
    except AureusError:
        raise
    except Exception as error:
        count = attempts[0] if attempts else 1
        mapped = translate(
            error,
            operation,
            subject,
            unwrap=unwrap,
            attempts=count,
            state_refusal=state_refusal,
        )
        if mapped is error:
            raise
        raise mapped from None


def corrupted(operation: str, subject: str, what: str) -> ResponseCorrupted:
    """The error for an answer that failed its integrity check."""
    return ResponseCorrupted(
        f"Cloud KMS {operation} on {subject}: {what}; the request or response was corrupted "
        "in transit and nothing from it was used. The operation may be retried.",
        provider=SCHEME,
        code="DATA_LOSS",
    )
