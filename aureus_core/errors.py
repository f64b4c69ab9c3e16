"""The Aureus error hierarchy.

Every error raised by Aureus or by a well-behaved plugin derives from
:class:`AureusError`.  Messages say what failed and what to do about it; they
never contain key material, data keys or plaintext.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

_CALLER: contextvars.ContextVar[str] = contextvars.ContextVar("aureus_caller", default="api")


def hint(api: str, cli: str) -> str:
    """A remedy in the caller's terms: ``api`` for Python callers, ``cli`` under ``aureus``."""
    return cli if _CALLER.get() == "cli" else api


@contextmanager
def speaking_to_cli() -> Iterator[None]:
    """Within this block, :func:`hint` gives command-line remedies (the ``aureus`` command)."""
    token = _CALLER.set("cli")
    try:
        yield
    finally:
        _CALLER.reset(token)


class AureusError(Exception):
    """Root of every error Aureus raises."""


class ConfigError(AureusError):
    """A configuration file, dict or argument is invalid.

    ``code`` keeps a backend's error code when a service refused a request as
    invalid (an AWS error code, a gRPC status name).
    """

    def __init__(self, message: str = "", *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class PluginError(AureusError):
    """A plugin could not be loaded, or registered something invalid."""


class DuplicateRegistration(PluginError):
    """Two plugins registered the same scheme or name."""


class CredentialError(AureusError):
    """Credentials are missing, expired or wrong (including a wrong passphrase).

    ``code`` keeps the service's error code when it refused the credentials.
    """

    def __init__(self, message: str = "", *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class ProviderError(AureusError):
    """A key provider failed to carry out an operation.

    ``code`` keeps the provider's own error code (an AWS error code, an HTTP
    status) when there is one, so callers can act on it.
    """

    def __init__(
        self, message: str, *, provider: str | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.code = code


class ProviderUnavailable(ProviderError):
    """The provider's backend cannot be reached, or its store is broken."""


class Throttled(ProviderError):
    """The provider refused the request for rate reasons; retry later."""


class AccessDenied(ProviderError):
    """The credentials in use may not perform this operation on this key."""


class KeyNotFound(ProviderError):
    """No key (or key version) exists under the given reference."""


class KeyDisabled(ProviderError):
    """The key or key version exists but is disabled, pending deletion or destroyed."""


class KeyExists(ProviderError):
    """A key with that name already exists."""


class ImportRefused(ProviderError):
    """Wrapped key material was refused.

    Its import token is unknown, used up, expired or issued for another key, or
    the material does not open with the token's wrapping key.
    """


class KeystoreCorrupted(ProviderUnavailable):
    """A keystore file cannot be parsed or fails its integrity check."""


class UnsupportedOperation(AureusError):
    """The provider does not offer the requested operation or key type."""

    def __init__(self, provider: str, operation: str, hint: str | None = None) -> None:
        message = f"provider {provider!r} does not support {operation}"
        if hint:
            message = f"{message}; {hint}"
        super().__init__(message)
        self.provider = provider
        self.operation = operation


class DecryptionError(AureusError):
    """A message or wrapped key failed to authenticate or decrypt.

    One opaque type for every cause (tampering, truncation, wrong context,
    unknown key), as Fernet's ``InvalidToken``: the caller cannot learn which
    check failed.
    """

    def __init__(
        self, message: str = "the message could not be decrypted and authenticated"
    ) -> None:
        super().__init__(message)


class NotAMessage(DecryptionError):
    """The input is not an encrypted message at all (its first bytes say so).

    Raised before any key is used, from bytes anyone can read, so it tells an
    attacker nothing; the command line exits 2 for it and keeps 1 for
    authentication failures.
    """


class SignatureError(AureusError):
    """A signature is malformed, or the key cannot be used to sign or verify it."""


class AuditFailure(AureusError):
    """No audit sink could record an event while auditing is required."""


class AuditSinkError(AureusError):
    """An audit sink could not record an event: its log is unwritable, damaged or tampered with."""
