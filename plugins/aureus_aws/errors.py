"""AWS errors mapped onto the Aureus hierarchy, keeping the AWS error code in ``.code``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    HTTPClientError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

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


class KmsConfigError(ConfigError):
    """KMS refused a request as invalid, or a custom key store is misconfigured."""


class KmsCredentialError(CredentialError):
    """AWS did not accept the credentials in use (unknown, expired or malformed)."""


THROTTLING = frozenset(
    {
        "ThrottlingException",
        "LimitExceededException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "Throttling",
    }
)
UNAVAILABLE = frozenset(
    {
        "KMSInternalException",
        "DependencyTimeoutException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalError",
    }
)
BAD_CIPHERTEXT = frozenset({"InvalidCiphertextException", "IncorrectKeyException"})
BAD_CREDENTIALS = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "ExpiredTokenException",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
    }
)
STORE_STATE = frozenset(
    {
        "CustomKeyStoreInvalidStateException",
        "CloudHsmClusterNotActiveException",
        "CloudHsmClusterNotFoundException",
    }
)
STORE_CONFIG = frozenset(
    {
        "CustomKeyStoreNotFoundException",
        "CustomKeyStoreNameInUseException",
        "CustomKeyStoreHasCMKsException",
        "CloudHsmClusterInvalidConfigurationException",
        "CloudHsmClusterNotRelatedException",
        "CloudHsmClusterInUseException",
        "IncorrectTrustAnchorException",
    }
)
INVALID_REQUEST = frozenset(
    {
        "ValidationException",
        "InvalidArnException",
        "InvalidAliasNameException",
        "InvalidKeyUsageException",
        "UnsupportedOperationException",
        "InvalidGrantTokenException",
        "MalformedPolicyDocumentException",
        "TagException",
    }
)
_STORE_ADVICE = (
    "check the key store with aureus_aws.cloudhsm.check_key_store and connect it with "
    "connect_key_store (the CloudHSM cluster needs at least one active HSM)"
)


def translate(error: Exception, operation: str, subject: str, *, unwrap: bool = False) -> Exception:
    """The Aureus error for a botocore error raised by ``operation`` on ``subject``.

    ``unwrap`` marks a data-key decryption, where an invalid ciphertext or the
    wrong key is the opaque :class:`DecryptionError`.  Errors that are not
    botocore's are returned unchanged.
    """
    where = f"AWS KMS {operation} on {subject}"
    if isinstance(error, ClientError):
        return _client_error(error, where, unwrap=unwrap)
    if isinstance(error, (BotoConnectionError, HTTPClientError)):
        code = type(error).__name__
        return ProviderUnavailable(
            f"{where}: the KMS endpoint could not be reached ({code}) after the configured "
            "retries; check the network, the endpoint_url option and the region",
            provider=SCHEME,
            code=code,
        )
    if isinstance(error, (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError)):
        return KmsCredentialError(
            f"{where}: no usable AWS credentials ({type(error).__name__}); configure a "
            "credential source for aws-kms or the standard AWS environment",
            code=type(error).__name__,
        )
    if isinstance(error, NoRegionError):
        return KmsConfigError(
            f"{where}: no AWS region; set the aws-kms option region or AWS_DEFAULT_REGION",
            code="NoRegionError",
        )
    if isinstance(error, ParamValidationError):
        return KmsConfigError(f"{where}: invalid request: {error}", code="ParamValidationError")
    if isinstance(error, BotoCoreError):
        return ProviderError(f"{where} failed: {error}", provider=SCHEME, code=type(error).__name__)
    return error


def _client_error(error: ClientError, where: str, *, unwrap: bool) -> Exception:
    info = error.response.get("Error", {})
    code = str(info.get("Code", "Unknown"))
    text = str(info.get("Message", "")).strip()
    status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    said = f"{where}: {text} ({code})" if text else f"{where}: {code}"
    if code in BAD_CIPHERTEXT and unwrap:
        return DecryptionError(code=code)
    if code == "AccessDeniedException":
        return AccessDenied(
            f"{said}; grant the caller kms:{_action(where)} on the key (key policy or IAM)",
            provider=SCHEME,
            code=code,
        )
    if code == "NotFoundException":
        return KeyNotFound(
            f"{said}; check the key ARN or alias and the region", provider=SCHEME, code=code
        )
    if code == "DisabledException":
        return KeyDisabled(f"{said}; enable the key to use it", provider=SCHEME, code=code)
    if code == "KMSInvalidStateException":
        lowered = text.lower()
        if "pending" in lowered and "delet" in lowered:
            return KeyDisabled(
                f"{said}; the key is scheduled for deletion: cancel the deletion to use it",
                provider=SCHEME,
                code=code,
            )
        if "disabled" in lowered:
            return KeyDisabled(f"{said}; enable the key to use it", provider=SCHEME, code=code)
        if "custom key store" in lowered or "unavailable" in lowered:
            return ProviderUnavailable(f"{said}; {_STORE_ADVICE}", provider=SCHEME, code=code)
        return KeyDisabled(
            f"{said}; the key is not usable in its current state", provider=SCHEME, code=code
        )
    if code in THROTTLING:
        return Throttled(
            f"{said}; retry later or raise the KMS request quota", provider=SCHEME, code=code
        )
    if code == "AlreadyExistsException":
        return KeyExists(f"{said}; choose another name", provider=SCHEME, code=code)
    if code in STORE_STATE:
        return ProviderUnavailable(f"{said}; {_STORE_ADVICE}", provider=SCHEME, code=code)
    if code in STORE_CONFIG:
        return KmsConfigError(f"{said}; fix the custom key store configuration", code=code)
    if code in BAD_CREDENTIALS:
        return KmsCredentialError(f"{said}; refresh or fix the AWS credentials", code=code)
    if code in INVALID_REQUEST:
        return KmsConfigError(said, code=code)
    if code in UNAVAILABLE or status >= 500:
        return ProviderUnavailable(
            f"{said}; AWS KMS is failing, retry later", provider=SCHEME, code=code
        )
    return ProviderError(said, provider=SCHEME, code=code)


def _action(where: str) -> str:
    # "AWS KMS Decrypt on ..." -> "Decrypt"
    return where.split(" ", 3)[2]


@contextmanager
def kms_errors(operation: str, subject: str, *, unwrap: bool = False) -> Iterator[None]:
    """Translate botocore errors raised inside the block (see :func:`translate`)."""
    try:
        yield
    except AureusError:
        raise
    except Exception as error:
        mapped = translate(error, operation, subject, unwrap=unwrap)
        if mapped is error:
            raise
        raise mapped from None
