"""How PKCS#11 return codes become Aureus errors.

python-pkcs11 raises one exception class per ``CKR_*`` return value.  Each
class maps to the ``CKR_*`` name (kept in the message and in ``code``) and to
the Aureus error that tells the caller what to do.  Codes that mean the token
or the session went away are *reconnectable*: the session pool reconnects and
retries before giving up with :class:`~aureus_core.errors.ProviderUnavailable`.
"""

from __future__ import annotations

from pkcs11 import exceptions as p11

from aureus_core.errors import (
    AccessDenied,
    AureusError,
    ConfigError,
    CredentialError,
    KeyNotFound,
    ProviderError,
    ProviderUnavailable,
    Throttled,
    UnsupportedOperation,
)

from .naming import SCHEME as SCHEME  # defined there; re-exported for this package

CKR_NAMES: dict[type[p11.PKCS11Error], str] = {
    p11.AnotherUserAlreadyLoggedIn: "CKR_USER_ANOTHER_ALREADY_LOGGED_IN",
    p11.AttributeTypeInvalid: "CKR_ATTRIBUTE_TYPE_INVALID",
    p11.AttributeValueInvalid: "CKR_ATTRIBUTE_VALUE_INVALID",
    p11.AttributeReadOnly: "CKR_ATTRIBUTE_READ_ONLY",
    p11.AttributeSensitive: "CKR_ATTRIBUTE_SENSITIVE",
    p11.ArgumentsBad: "CKR_ARGUMENTS_BAD",
    p11.DataInvalid: "CKR_DATA_INVALID",
    p11.DataLenRange: "CKR_DATA_LEN_RANGE",
    p11.DomainParamsInvalid: "CKR_DOMAIN_PARAMS_INVALID",
    p11.DeviceError: "CKR_DEVICE_ERROR",
    p11.DeviceMemory: "CKR_DEVICE_MEMORY",
    p11.DeviceRemoved: "CKR_DEVICE_REMOVED",
    p11.EncryptedDataInvalid: "CKR_ENCRYPTED_DATA_INVALID",
    p11.EncryptedDataLenRange: "CKR_ENCRYPTED_DATA_LEN_RANGE",
    p11.FunctionCancelled: "CKR_FUNCTION_CANCELED",
    p11.FunctionFailed: "CKR_FUNCTION_FAILED",
    p11.FunctionRejected: "CKR_FUNCTION_REJECTED",
    p11.FunctionNotSupported: "CKR_FUNCTION_NOT_SUPPORTED",
    p11.KeyHandleInvalid: "CKR_KEY_HANDLE_INVALID",
    p11.KeyIndigestible: "CKR_KEY_INDIGESTIBLE",
    p11.KeyNeeded: "CKR_KEY_NEEDED",
    p11.KeyNotNeeded: "CKR_KEY_NOT_NEEDED",
    p11.KeyNotWrappable: "CKR_KEY_NOT_WRAPPABLE",
    p11.KeySizeRange: "CKR_KEY_SIZE_RANGE",
    p11.KeyTypeInconsistent: "CKR_KEY_TYPE_INCONSISTENT",
    p11.KeyUnextractable: "CKR_KEY_UNEXTRACTABLE",
    p11.GeneralError: "CKR_GENERAL_ERROR",
    p11.HostMemory: "CKR_HOST_MEMORY",
    p11.MechanismInvalid: "CKR_MECHANISM_INVALID",
    p11.MechanismParamInvalid: "CKR_MECHANISM_PARAM_INVALID",
    p11.ObjectHandleInvalid: "CKR_OBJECT_HANDLE_INVALID",
    p11.OperationActive: "CKR_OPERATION_ACTIVE",
    p11.OperationNotInitialized: "CKR_OPERATION_NOT_INITIALIZED",
    p11.PinExpired: "CKR_PIN_EXPIRED",
    p11.PinIncorrect: "CKR_PIN_INCORRECT",
    p11.PinInvalid: "CKR_PIN_INVALID",
    p11.PinLenRange: "CKR_PIN_LEN_RANGE",
    p11.PinLocked: "CKR_PIN_LOCKED",
    p11.PinTooWeak: "CKR_PIN_TOO_WEAK",
    p11.PublicKeyInvalid: "CKR_PUBLIC_KEY_INVALID",
    p11.RandomNoRNG: "CKR_RANDOM_NO_RNG",
    p11.RandomSeedNotSupported: "CKR_RANDOM_SEED_NOT_SUPPORTED",
    p11.SessionClosed: "CKR_SESSION_CLOSED",
    p11.SessionCount: "CKR_SESSION_COUNT",
    p11.SessionExists: "CKR_SESSION_EXISTS",
    p11.SessionHandleInvalid: "CKR_SESSION_HANDLE_INVALID",
    p11.SessionReadOnly: "CKR_SESSION_READ_ONLY",
    p11.SessionReadOnlyExists: "CKR_SESSION_READ_ONLY_EXISTS",
    p11.SessionReadWriteSOExists: "CKR_SESSION_READ_WRITE_SO_EXISTS",
    p11.SignatureLenRange: "CKR_SIGNATURE_LEN_RANGE",
    p11.SignatureInvalid: "CKR_SIGNATURE_INVALID",
    p11.SlotIDInvalid: "CKR_SLOT_ID_INVALID",
    p11.TemplateIncomplete: "CKR_TEMPLATE_INCOMPLETE",
    p11.TemplateInconsistent: "CKR_TEMPLATE_INCONSISTENT",
    p11.TokenNotPresent: "CKR_TOKEN_NOT_PRESENT",
    p11.TokenNotRecognised: "CKR_TOKEN_NOT_RECOGNIZED",
    p11.TokenWriteProtected: "CKR_TOKEN_WRITE_PROTECTED",
    p11.UnwrappingKeyHandleInvalid: "CKR_UNWRAPPING_KEY_HANDLE_INVALID",
    p11.UnwrappingKeySizeRange: "CKR_UNWRAPPING_KEY_SIZE_RANGE",
    p11.UnwrappingKeyTypeInconsistent: "CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT",
    p11.UserAlreadyLoggedIn: "CKR_USER_ALREADY_LOGGED_IN",
    p11.UserNotLoggedIn: "CKR_USER_NOT_LOGGED_IN",
    p11.UserPinNotInitialized: "CKR_USER_PIN_NOT_INITIALIZED",
    p11.UserTooManyTypes: "CKR_USER_TOO_MANY_TYPES",
    p11.WrappedKeyInvalid: "CKR_WRAPPED_KEY_INVALID",
    p11.WrappedKeyLenRange: "CKR_WRAPPED_KEY_LEN_RANGE",
    p11.WrappingKeyHandleInvalid: "CKR_WRAPPING_KEY_HANDLE_INVALID",
    p11.WrappingKeySizeRange: "CKR_WRAPPING_KEY_SIZE_RANGE",
    p11.WrappingKeyTypeInconsistent: "CKR_WRAPPING_KEY_TYPE_INCONSISTENT",
}
"""The ``CKR_*`` name behind each python-pkcs11 exception class."""

RECONNECTABLE: frozenset[type[p11.PKCS11Error]] = frozenset(
    {
        p11.DeviceError,
        p11.DeviceRemoved,
        p11.SessionClosed,
        p11.SessionHandleInvalid,
        p11.TokenNotPresent,
        p11.TokenNotRecognised,
        p11.SlotIDInvalid,
        p11.UserNotLoggedIn,
    }
)
"""Codes after which a new session (and, if need be, a new login) may succeed."""

_CREDENTIAL_HINTS: dict[type[p11.PKCS11Error], str] = {
    p11.PinIncorrect: (
        "the user PIN is wrong: check the credential source that supplies it "
        "(each failed login counts towards locking the token)"
    ),
    p11.PinLocked: (
        "the user PIN is locked after too many failed logins: the token's security "
        "officer must unlock or reset it (softhsm2-util, ykman, the vendor's tool)"
    ),
    p11.PinExpired: "the user PIN has expired: set a new one with the token's tool",
    p11.PinInvalid: "the PIN has characters the token does not accept",
    p11.PinLenRange: "the PIN is too short or too long for this token",
    p11.UserPinNotInitialized: (
        "the token has no user PIN yet: initialise it (softhsm2-util --init-token, "
        "pkcs11-tool --init-pin)"
    ),
    p11.AnotherUserAlreadyLoggedIn: "another user (the security officer?) is logged in",
    p11.UserTooManyTypes: "too many user types are logged in to the token",
}

_UNSUPPORTED = frozenset(
    {p11.MechanismInvalid, p11.MechanismParamInvalid, p11.FunctionNotSupported}
)
_DENIED = frozenset(
    {
        p11.AttributeSensitive,
        p11.KeyUnextractable,
        p11.KeyNotWrappable,
        p11.FunctionRejected,
        p11.TokenWriteProtected,
        p11.SessionReadOnly,
    }
)
_INVALID_REQUEST = frozenset(
    {
        p11.AttributeTypeInvalid,
        p11.AttributeValueInvalid,
        p11.AttributeReadOnly,
        p11.TemplateIncomplete,
        p11.TemplateInconsistent,
        p11.DomainParamsInvalid,
        p11.KeySizeRange,
        p11.KeyTypeInconsistent,
        p11.ArgumentsBad,
        p11.DataLenRange,
    }
)
_BUSY = frozenset({p11.SessionCount, p11.DeviceMemory, p11.HostMemory, p11.OperationActive})


def ckr_name(error: BaseException) -> str:
    """The ``CKR_*`` name of a python-pkcs11 error (or the class name if it has none)."""
    for klass in type(error).__mro__:
        if klass in CKR_NAMES:
            return CKR_NAMES[klass]
    detail = " ".join(str(arg) for arg in error.args if isinstance(arg, (int, str)))
    return f"CKR_UNKNOWN({type(error).__name__}{': ' + detail if detail else ''})"


def is_reconnectable(error: BaseException) -> bool:
    """Whether a new session or login may cure ``error``."""
    return type(error) in RECONNECTABLE


def translate(error: p11.PKCS11Error, *, operation: str, token: str) -> AureusError:
    """The Aureus error for ``error``, naming the operation, the token and the ``CKR_*`` code."""
    code = ckr_name(error)
    where = f"PKCS#11 {operation} on token {token!r} failed with {code}"
    kind = type(error)
    if kind in _CREDENTIAL_HINTS:
        return CredentialError(f"{where}: {_CREDENTIAL_HINTS[kind]}", code=code)
    if kind in RECONNECTABLE:
        return ProviderUnavailable(
            f"{where}: the token or its session went away; check that the token is "
            "present and the PKCS#11 module can reach it",
            provider=SCHEME,
            code=code,
        )
    if kind in _UNSUPPORTED:
        return UnsupportedOperation(
            SCHEME,
            operation,
            f"{code}: the token does not offer the mechanism or function this needs",
        )
    if kind in _DENIED:
        return AccessDenied(
            f"{where}: the token refused the request for this object", provider=SCHEME, code=code
        )
    if kind in _INVALID_REQUEST:
        return ConfigError(f"{where}: the token rejected the request's values", code=code)
    if kind in (p11.KeyHandleInvalid, p11.ObjectHandleInvalid):
        return KeyNotFound(f"{where}: the key object is gone", provider=SCHEME, code=code)
    if kind in _BUSY:
        return Throttled(f"{where}: the token is busy; retry later", provider=SCHEME, code=code)
    return ProviderError(where, provider=SCHEME, code=code)
