"""Errors mapped onto the Aureus hierarchy (gRPC status kept), bounded retries, CRC32C checks."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable

import grpc
import pytest
from google.api_core import exceptions as api_exceptions
from google.auth import exceptions as auth_exceptions

from aureus_core import KeyStack
from aureus_core.context import EncryptionContext
from aureus_core.datakey import EncryptedDataKey
from aureus_core.errors import (
    AccessDenied,
    CredentialError,
    DecryptionError,
    KeyDisabled,
    KeyExists,
    KeyNotFound,
    ProviderError,
    ProviderUnavailable,
    Throttled,
)
from aureus_core.keyref import KeyRef
from aureus_core.keys import KeySpec, KeyState, KeyType
from aureus_core.testing.leaks import assert_no_secret
from aureus_gcp import GcpKmsProvider
from aureus_gcp.errors import GcpConfigError, GcpCredentialError, ResponseCorrupted, translate
from aureus_gcp.provider import CREATE_LABEL, retryable
from aureus_gcp.testing import CloudKmsEmulator

CONTEXT = EncryptionContext({"purpose": "errors"})
SUBJECT = "gcp-kms://projects/p/locations/global/keyRings/r/cryptoKeys/k"


def _wrapping_key(provider: GcpKmsProvider) -> KeyRef:
    name = f"err-{uuid.uuid4().hex[:10]}"
    return provider.create_key(name, KeySpec(key_type=KeyType.AES_256)).ref


def _calls(emulator: CloudKmsEmulator, method: str) -> int:
    return sum(1 for call in emulator.calls if call.method == method)


# -- translation, without a server ---------------------------------------------------


@pytest.mark.parametrize(
    ("error", "expected", "code"),
    [
        (api_exceptions.NotFound("no such key"), KeyNotFound, "NOT_FOUND"),
        (api_exceptions.PermissionDenied("denied"), AccessDenied, "PERMISSION_DENIED"),
        (
            api_exceptions.FailedPrecondition("version is not enabled, current state is: DISABLED"),
            KeyDisabled,
            "FAILED_PRECONDITION",
        ),
        (
            api_exceptions.FailedPrecondition("Encrypt requires a CryptoKey with purpose X"),
            GcpConfigError,
            "FAILED_PRECONDITION",
        ),
        (api_exceptions.FailedPrecondition("something else"), ProviderError, "FAILED_PRECONDITION"),
        (api_exceptions.AlreadyExists("exists"), KeyExists, "ALREADY_EXISTS"),
        (api_exceptions.ResourceExhausted("quota"), Throttled, "RESOURCE_EXHAUSTED"),
        (api_exceptions.ServiceUnavailable("down"), ProviderUnavailable, "UNAVAILABLE"),
        (api_exceptions.DeadlineExceeded("slow"), ProviderUnavailable, "DEADLINE_EXCEEDED"),
        (api_exceptions.InternalServerError("oops"), ProviderUnavailable, "INTERNAL"),
        (api_exceptions.Unknown("?"), ProviderUnavailable, "UNKNOWN"),
        (api_exceptions.Aborted("conflict"), ProviderUnavailable, "ABORTED"),
        (api_exceptions.Unauthenticated("bad token"), GcpCredentialError, "UNAUTHENTICATED"),
        (api_exceptions.InvalidArgument("bad request"), GcpConfigError, "INVALID_ARGUMENT"),
        (api_exceptions.OutOfRange("too far"), GcpConfigError, "OUT_OF_RANGE"),
        (api_exceptions.Cancelled("gone"), ProviderError, "CANCELLED"),
        (
            api_exceptions.ServiceUnavailable("Getting metadata from plugin failed with error: x"),
            GcpCredentialError,
            "UNAVAILABLE",
        ),
        (
            api_exceptions.InvalidArgument("The checksum in field ciphertext_crc32c did not match"),
            ResponseCorrupted,
            "DATA_LOSS",
        ),
        (auth_exceptions.RefreshError("invalid_grant"), GcpCredentialError, "RefreshError"),
        (
            auth_exceptions.DefaultCredentialsError("none found"),
            GcpCredentialError,
            "DefaultCredentialsError",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_translation(error: Exception, expected: type[Exception], code: str) -> None:
    mapped = translate(error, "Encrypt", SUBJECT)
    assert type(mapped) is expected
    assert getattr(mapped, "code", None) == code
    assert "Encrypt" in str(mapped)
    if expected is not ResponseCorrupted:
        assert SUBJECT in str(mapped)


def test_invalid_argument_on_unwrap_is_opaque() -> None:
    mapped = translate(
        api_exceptions.InvalidArgument("Decryption failed: the ciphertext is invalid."),
        "Decrypt",
        SUBJECT,
        unwrap=True,
    )
    assert type(mapped) is DecryptionError
    assert "ciphertext is invalid" not in str(mapped)
    assert mapped.code == "INVALID_ARGUMENT"


def test_any_precondition_on_a_version_is_key_disabled() -> None:
    mapped = translate(
        api_exceptions.FailedPrecondition("?"), "Decrypt", SUBJECT, state_refusal=True
    )
    assert type(mapped) is KeyDisabled


def test_a_spent_retry_is_mapped_through_its_cause() -> None:
    spent = api_exceptions.RetryError("deadline", api_exceptions.ServiceUnavailable("down"))
    mapped = translate(spent, "Encrypt", SUBJECT, attempts=7)
    assert type(mapped) is ProviderUnavailable
    assert mapped.code == "UNAVAILABLE"
    assert "after 7 attempts" in str(mapped)


def test_other_exceptions_are_left_alone() -> None:
    error = ValueError("x")
    assert translate(error, "Encrypt", SUBJECT) is error


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        (api_exceptions.ServiceUnavailable("down"), True),
        (api_exceptions.DeadlineExceeded("slow"), True),
        (api_exceptions.ResourceExhausted("quota"), True),
        (api_exceptions.InternalServerError("oops"), False),
        (api_exceptions.NotFound("no"), False),
        (api_exceptions.InvalidArgument("bad"), False),
        (
            api_exceptions.ServiceUnavailable("Getting metadata from plugin failed with error"),
            False,
        ),
    ],
)
def test_what_is_retried(error: Exception, retried: bool) -> None:
    assert retryable(error) is retried


# -- against the emulator ------------------------------------------------------------


def test_unavailable_is_provider_unavailable_after_bounded_retries(
    gcp_kms: CloudKmsEmulator, gcp_provider: GcpKmsProvider
) -> None:
    ref = _wrapping_key(gcp_provider)
    before = _calls(gcp_kms, "Encrypt")
    gcp_kms.fail("Encrypt", grpc.StatusCode.UNAVAILABLE)
    started = time.monotonic()
    with pytest.raises(ProviderUnavailable) as raised:
        gcp_provider.wrap(ref, os.urandom(32), CONTEXT)
    elapsed = time.monotonic() - started
    attempts = _calls(gcp_kms, "Encrypt") - before
    assert elapsed < 2.0
    assert raised.value.code == "UNAVAILABLE"
    assert raised.value.provider == "gcp-kms"
    assert attempts > 2  # retried, within retry_deadline = 1 s of 10-50 ms pauses
    assert f"after {attempts} attempts" in str(raised.value)


def test_a_transient_unavailable_is_retried_away(
    gcp_kms: CloudKmsEmulator, gcp_provider: GcpKmsProvider
) -> None:
    ref = _wrapping_key(gcp_provider)
    before = _calls(gcp_kms, "Encrypt")
    gcp_kms.fail("Encrypt", grpc.StatusCode.UNAVAILABLE, times=2)
    wrapped = gcp_provider.wrap(ref, b"k" * 32, CONTEXT)
    assert _calls(gcp_kms, "Encrypt") - before == 3
    assert bytes(gcp_provider.unwrap(ref, wrapped.encrypted, CONTEXT)) == b"k" * 32


def test_no_retry_deadline_means_one_attempt(
    gcp_kms: CloudKmsEmulator, make_gcp_provider: Callable[..., GcpKmsProvider]
) -> None:
    provider = make_gcp_provider(retry_deadline=0)
    ref = _wrapping_key(provider)
    before = _calls(gcp_kms, "Encrypt")
    gcp_kms.fail("Encrypt", grpc.StatusCode.DEADLINE_EXCEEDED)
    with pytest.raises(ProviderUnavailable) as raised:
        provider.wrap(ref, os.urandom(32), CONTEXT)
    assert raised.value.code == "DEADLINE_EXCEEDED"
    assert _calls(gcp_kms, "Encrypt") - before == 1


def test_resource_exhausted_is_throttled(
    gcp_kms: CloudKmsEmulator, make_gcp_provider: Callable[..., GcpKmsProvider]
) -> None:
    provider = make_gcp_provider(retry_deadline=0.2)
    ref = _wrapping_key(provider)
    gcp_kms.fail(None, grpc.StatusCode.RESOURCE_EXHAUSTED, message="Quota exceeded")
    with pytest.raises(Throttled) as raised:
        provider.describe_key(ref)
    assert raised.value.code == "RESOURCE_EXHAUSTED"
    assert "Quota exceeded" in str(raised.value)


def test_internal_is_provider_unavailable_without_retries(
    gcp_kms: CloudKmsEmulator, gcp_provider: GcpKmsProvider
) -> None:
    ref = _wrapping_key(gcp_provider)
    before = _calls(gcp_kms, "GetCryptoKey")
    gcp_kms.fail("GetCryptoKey", grpc.StatusCode.INTERNAL)
    with pytest.raises(ProviderUnavailable) as raised:
        gcp_provider.describe_key(ref)
    assert raised.value.code == "INTERNAL"
    assert _calls(gcp_kms, "GetCryptoKey") - before == 1


def test_unauthenticated_is_a_credential_error(
    gcp_kms: CloudKmsEmulator, gcp_provider: GcpKmsProvider
) -> None:
    ref = _wrapping_key(gcp_provider)
    gcp_kms.fail(None, grpc.StatusCode.UNAUTHENTICATED, message="Request had invalid credentials.")
    with pytest.raises(CredentialError) as raised:
        gcp_provider.wrap(ref, os.urandom(32), CONTEXT)
    assert raised.value.code == "UNAUTHENTICATED"


def test_unreachable_endpoint_is_provider_unavailable_quickly(
    make_gcp_provider: Callable[..., GcpKmsProvider],
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    provider = make_gcp_provider(endpoint=f"127.0.0.1:{port}", timeout=0.5, retry_deadline=0.5)
    started = time.monotonic()
    with pytest.raises(ProviderUnavailable) as raised:
        provider.describe_key(KeyRef.parse("gcp-kms://nowhere"))
    assert time.monotonic() - started < 3.0
    assert raised.value.code in ("UNAVAILABLE", "DEADLINE_EXCEEDED")


def test_missing_keys_and_versions_are_key_not_found(gcp_provider: GcpKmsProvider) -> None:
    with pytest.raises(KeyNotFound) as raised:
        gcp_provider.describe_key(KeyRef.parse("gcp-kms://no-such-key"))
    assert raised.value.code == "NOT_FOUND"
    assert "no-such-key" in str(raised.value)
    ref = _wrapping_key(gcp_provider)
    with pytest.raises(KeyNotFound):
        gcp_provider.wrap(ref.with_version("7"), os.urandom(32), CONTEXT)


def test_permission_denied_by_policy_is_access_denied(
    gcp_kms: CloudKmsEmulator, gcp_provider: GcpKmsProvider
) -> None:
    ref = _wrapping_key(gcp_provider)
    wrapped = gcp_provider.wrap(ref, os.urandom(32), CONTEXT)
    gcp_kms.set_policy(lambda method, resource, metadata: method not in ("Encrypt", "Decrypt"))
    with pytest.raises(AccessDenied) as raised:
        gcp_provider.wrap(ref, os.urandom(32), CONTEXT)
    assert raised.value.code == "PERMISSION_DENIED"
    assert "cloudkms.cryptoKeyVersions.useToEncrypt" in str(raised.value)
    with pytest.raises(AccessDenied):  # not the message's fault: not a DecryptionError
        gcp_provider.unwrap(ref, wrapped.encrypted, CONTEXT)
    assert gcp_provider.describe_key(ref).uri == ref.uri


def test_a_disabled_version_is_key_disabled(gcp_provider: GcpKmsProvider) -> None:
    ref = _wrapping_key(gcp_provider)
    old = gcp_provider.wrap(ref, b"d" * 32, CONTEXT)
    gcp_provider.rotate_key(ref)
    gcp_provider.set_version_state(ref.with_version("1"), KeyState.DISABLED)
    with pytest.raises(KeyDisabled) as raised:
        gcp_provider.unwrap(ref, old.encrypted, CONTEXT)
    assert raised.value.code == "FAILED_PRECONDITION"
    assert f"{ref.key_id} version 1" in str(raised.value)
    with pytest.raises(KeyDisabled):
        gcp_provider.wrap(ref.with_version("1"), os.urandom(32), CONTEXT)


def test_tampered_ciphertext_and_wrong_context_are_decryption_errors(
    gcp_provider: GcpKmsProvider,
) -> None:
    ref = _wrapping_key(gcp_provider)
    edk = gcp_provider.wrap(ref, os.urandom(32), CONTEXT).encrypted
    tampered = EncryptedDataKey(
        provider_id=edk.provider_id,
        provider_info=edk.provider_info,
        ciphertext=edk.ciphertext[:-1] + bytes([edk.ciphertext[-1] ^ 1]),
    )
    with pytest.raises(DecryptionError) as raised:
        gcp_provider.unwrap(ref, tampered, CONTEXT)
    assert str(raised.value) == str(DecryptionError())
    assert raised.value.code == "INVALID_ARGUMENT"
    with pytest.raises(DecryptionError):
        gcp_provider.unwrap(ref, edk, EncryptionContext({"purpose": "other"}))
    other = _wrapping_key(gcp_provider)
    with pytest.raises(DecryptionError):  # names another key: refused before any call
        gcp_provider.unwrap(other, edk, CONTEXT)


def test_wrong_kinds_of_keys(gcp_provider: GcpKmsProvider, new_name) -> None:
    wrapping = _wrapping_key(gcp_provider)
    signing = gcp_provider.create_key(new_name("sig"), KeySpec(key_type=KeyType.ECDSA_P256)).ref
    with pytest.raises(GcpConfigError, match="purpose"):
        gcp_provider.wrap(signing, os.urandom(32), CONTEXT)
    for pinned in (wrapping, wrapping.with_version("1")):
        with pytest.raises(GcpConfigError, match="not a signing key"):
            gcp_provider.sign(pinned, b"m")
        with pytest.raises(GcpConfigError, match="not a signing key"):
            gcp_provider.public_key(pinned)


@pytest.mark.parametrize("method", ["Encrypt", "Decrypt"])
def test_corrupted_wrap_answers_are_refused(
    gcp_kms: CloudKmsEmulator, gcp_provider: GcpKmsProvider, method: str
) -> None:
    ref = _wrapping_key(gcp_provider)
    data_key = os.urandom(32)
    wrapped = gcp_provider.wrap(ref, data_key, CONTEXT)
    gcp_kms.corrupt_checksums(method, times=1)
    call = {
        "Encrypt": lambda: gcp_provider.wrap(ref, data_key, CONTEXT),
        "Decrypt": lambda: gcp_provider.unwrap(ref, wrapped.encrypted, CONTEXT),
    }[method]
    with pytest.raises(ResponseCorrupted) as raised:
        call()
    message = str(raised.value)
    assert "corrupted in transit" in message
    assert "may be retried" in message
    assert raised.value.code == "DATA_LOSS"
    assert isinstance(raised.value, ProviderUnavailable)
    assert_no_secret(f"{raised.value!r} {message}", [data_key], "the integrity error")
    # the corruption was one answer: trying again works
    assert bytes(gcp_provider.unwrap(ref, wrapped.encrypted, CONTEXT)) == data_key


def test_a_corrupted_decrypt_never_returns_the_plaintext(
    gcp_kms: CloudKmsEmulator, gcp_provider: GcpKmsProvider
) -> None:
    ref = _wrapping_key(gcp_provider)
    wrapped = gcp_provider.wrap(ref, b"p" * 32, CONTEXT)
    gcp_kms.corrupt_checksums("Decrypt")
    with KeyStack(providers={"gcp-kms": gcp_provider}) as stack:
        gcp_kms.clear_faults()
        message = stack.encrypt(b"secret payload", keys=[ref])
        gcp_kms.corrupt_checksums("Decrypt")
        with pytest.raises(ProviderUnavailable):
            stack.decrypt(message)
        with pytest.raises(ResponseCorrupted):
            gcp_provider.unwrap(ref, wrapped.encrypted, CONTEXT)


@pytest.mark.parametrize("method", ["AsymmetricSign", "GetPublicKey"])
def test_corrupted_signing_answers_are_refused(
    gcp_kms: CloudKmsEmulator, gcp_provider: GcpKmsProvider, method: str, new_name
) -> None:
    ref = gcp_provider.create_key(new_name("sig"), KeySpec(key_type=KeyType.ECDSA_P256)).ref
    gcp_kms.corrupt_checksums(method, times=1)
    with pytest.raises(ResponseCorrupted, match="corrupted in transit"):
        gcp_provider.sign(ref, b"message")
    signature = gcp_provider.sign(ref, b"message")  # nothing corrupted was cached
    assert gcp_provider.verify(ref, b"message", signature.value) is True


@pytest.mark.parametrize("method", ["Encrypt", "AsymmetricSign"])
def test_a_wrong_answer_checksum_is_refused_even_when_the_request_was_verified(
    gcp_kms: CloudKmsEmulator, gcp_provider: GcpKmsProvider, method: str, new_name
) -> None:
    """The service verified the request; the answer's bytes were damaged on the way back."""
    call: Callable[[], object]
    if method == "Encrypt":
        ref = _wrapping_key(gcp_provider)
        call = lambda: gcp_provider.wrap(ref, b"k" * 32, CONTEXT)  # noqa: E731
        what = "the ciphertext does not match its checksum"
    else:
        ref = gcp_provider.create_key(new_name("sig"), KeySpec(key_type=KeyType.ECDSA_P256)).ref
        call = lambda: gcp_provider.sign(ref, b"message")  # noqa: E731
        what = "the signature does not match its checksum"
    gcp_kms.corrupt_checksums(method, times=1, flags=False)
    with pytest.raises(ResponseCorrupted, match="corrupted in transit") as raised:
        call()
    assert what in str(raised.value)
    assert call() is not None  # one damaged answer; the next is sound


def test_a_create_retried_after_a_lost_answer_finds_its_own_key(
    gcp_kms: CloudKmsEmulator,
    gcp_provider: GcpKmsProvider,
    ring_options: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    new_name,
) -> None:
    """The first attempt made the key but its answer was lost: ALREADY_EXISTS is ours.

    The emulator fails a call instead of answering it, so the test plays the
    lost answer: it makes the key (with this request's label) and fails the
    first CreateCryptoKey with UNAVAILABLE; the retry then sees ALREADY_EXISTS.
    """
    nonce = uuid.UUID(int=7)
    monkeypatch.setattr("aureus_gcp.provider.uuid.uuid4", lambda: nonce)
    gcp_provider.create_key(new_name("ring-maker"), KeySpec(key_type=KeyType.AES_256))
    ring = "projects/{project}/locations/{location}/keyRings/{key_ring}".format(**ring_options)
    for label, outcome in ((nonce.hex, "ours"), ("someone-else", "theirs")):
        name = new_name(outcome)
        gcp_kms.create_key(f"{ring}/cryptoKeys/{name}", labels={CREATE_LABEL: label})
        gcp_kms.fail("CreateCryptoKey", grpc.StatusCode.UNAVAILABLE, times=1)
        if outcome == "ours":
            created = gcp_provider.create_key(name, KeySpec(key_type=KeyType.AES_256))
            assert created.uri.endswith(f"/cryptoKeys/{name}")
            assert CREATE_LABEL not in dict(created.labels)
        else:
            with pytest.raises(KeyExists, match="already exists"):
                gcp_provider.create_key(name, KeySpec(key_type=KeyType.AES_256))


def test_a_stack_raises_provider_unavailable_and_recovers(
    gcp_kms: CloudKmsEmulator, gcp_provider: GcpKmsProvider
) -> None:
    """Through KeyStack (and its circuit breaker)."""
    ref = _wrapping_key(gcp_provider)
    with KeyStack(providers={"gcp-kms": gcp_provider}) as stack:
        message = stack.encrypt(b"payload", keys=[ref])
        gcp_kms.fail(None, grpc.StatusCode.UNAVAILABLE)
        started = time.monotonic()
        with pytest.raises(ProviderUnavailable):
            stack.encrypt(b"payload", keys=[ref])
        assert time.monotonic() - started < 2.0
        gcp_kms.clear_faults()
        assert stack.decrypt(message) == b"payload"
