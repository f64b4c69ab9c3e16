"""The key-provider contract: every test a :class:`KeyProvider` must pass.

Subclass :class:`KeyProviderContract` in a test module (as
``class TestMyProvider(KeyProviderContract)``) and override the ``provider``
fixture.  Tests that need a capability or key type the provider does not
declare are skipped with the reason.  The lifecycle tests (disable, minimum
decryption version, destroy) run for providers that declare ``lifecycle``.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import traceback
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

import attrs
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ..aio import AsyncKeyStack
from ..config import StackConfig
from ..context import EncryptionContext
from ..datakey import EncryptedDataKey, WrappedKey
from ..errors import (
    AureusError,
    ConfigError,
    DecryptionError,
    ImportRefused,
    KeyDisabled,
    KeyExists,
    KeyNotFound,
    SignatureError,
    UnsupportedOperation,
)
from ..interfaces import Capability, GeneratesDataKeys, KeyMaterial, KeyProvider
from ..keyref import KeyRef
from ..keys import KeyMetadata, KeyPurpose, KeySpec, KeyState, KeyType
from ..proxy import ProviderProxy, native_async
from ..sensitive import Secret
from ..signature import Signature
from ..stack import KeyStack
from ..wrapped_import import (
    IMPORT_TOKEN_LIFETIME,
    WRAPPING_ALGORITHMS,
    ImportParameters,
    check_import_token,
    wrap_for_import,
    wrapping_key_fingerprint,
)
from .concurrency import run_in_threads
from .key_material import fresh_material, original_public_key
from .leaks import assert_no_secret, find_secret
from .log_capture import capture_every_log_record
from .public_keys import verify_with_public_key

SIGNING_TYPES = tuple(t for t in KeyType if t.purpose is KeyPurpose.SIGN)
WRAPPING_TYPES = tuple(t for t in KeyType if t.purpose is KeyPurpose.WRAP)
# Cheapest first, for tests that need some key and do not care which.
_BY_COST = (
    KeyType.AES_256,
    KeyType.ED25519,
    KeyType.ECDSA_P256,
    KeyType.ECDSA_P384,
    KeyType.RSA_2048,
    KeyType.RSA_3072,
    KeyType.RSA_4096,
)

CAPABILITY_METHODS: dict[Capability, tuple[str, ...]] = {
    Capability.WRAP: ("wrap", "unwrap"),
    Capability.GENERATE_DATA_KEY: ("generate_data_key",),
    Capability.REPLICATE: ("replicate_key",),
    Capability.SIGN: ("sign", "verify"),
    Capability.PUBLIC_KEY: ("public_key",),
    Capability.CREATE: ("create_key",),
    Capability.DESCRIBE: ("describe_key",),
    Capability.LIST: ("list_keys",),
    Capability.ROTATE: ("rotate_key",),
    Capability.IMPORT: ("import_key",),
    Capability.MAC: ("mac",),
    Capability.LIFECYCLE: ("set_version_state",),
    Capability.MIN_DECRYPTION_VERSION: ("set_min_decryption_version",),
    Capability.DESTROY_VERSION: ("destroy_version",),
    Capability.WRAPPED_IMPORT: ("import_parameters",),
}
"""The provider methods each capability stands for.

``versions`` has no method of its own, so the contract cannot call it.
``generate_data_key`` and ``replicate_key`` are optional methods (the
:class:`~aureus_core.interfaces.GeneratesDataKeys` and
:class:`~aureus_core.interfaces.ReplicatesKeys` protocols): a provider that
does not declare them may leave them out altogether.
"""

_OPTIONAL_METHODS = frozenset({"generate_data_key", "replicate_key", "import_parameters"})

KEYED_OPERATIONS: dict[str, Capability] = {
    "describe_key": Capability.DESCRIBE,
    "rotate_key": Capability.ROTATE,
    "public_key": Capability.PUBLIC_KEY,
    "sign": Capability.SIGN,
    "verify": Capability.SIGN,
    "wrap": Capability.WRAP,
    "mac": Capability.MAC,
}
"""Operations that take a key reference, for the unknown-key and bad-reference tests."""

MESSAGE = b"the Aureus conformance kit signs this message"
MALFORMED_SIGNATURES = (b"", b"\x00" * 3)


_IMPORTABLE = tuple(t for t in _BY_COST if t not in (KeyType.AES_128, KeyType.AES_192))
"""Key types the wrapped-import tests try (each is skipped where the provider refuses it)."""


IV_REUSE_WRAPS = 64
"""How many times the IV test wraps one data key under one key and context."""
KEYSTREAM_WRAPS = 12
"""How many different data keys the keystream test wraps (it compares every pair)."""


def _type_id(key_type: KeyType) -> str:
    return key_type.value


def _xor(one: bytes, other: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(one, other, strict=False))


def _random_keys(count: int) -> list[bytes]:
    return [os.urandom(32) for _ in range(count)]


@attrs.frozen
class OptOut:
    """A security knob set away from its default, with the reason the backend needs it.

    ``wrap_binds_context = OptOut("Key Vault's wrap takes no additional data: ...")``.
    The tests the opt-out skips print the reason as their skip reason.  A bare
    ``False`` is no opt-out: the kit fails, asking for the reason.
    """

    reason: str = attrs.field()

    @reason.validator
    def _says_why(self, _: attrs.Attribute[str], value: str) -> None:
        if not isinstance(value, str) or not value.strip():
            raise ValueError("OptOut needs a reason: a sentence saying why the backend needs it")


SECURITY_KNOBS = ("wrap_binds_context", "wrap_is_randomized")
"""Knobs that switch off a security check: ``True`` (the default), or an :class:`OptOut`."""


class KeyProviderContract:
    """Conformance tests for a key provider.

    Override the ``provider`` fixture to return the provider under test: a
    fresh one, or at least one in which new uniquely named keys can be created.
    Optional knobs, as class attributes or method overrides:

    - ``names_are_chosen_by_caller``: ``False`` if ``create_key`` does not use the
      given name as an identity (the duplicate-name test is then skipped);
    - ``missing_version``: a version identifier that no key has;
    - ``wrap_binds_context``: ``OptOut(reason)`` for a backend whose wrap takes
      no additional data (Azure Key Vault), so unwrapping under another context
      cannot fail there; the context-binding checks are then skipped, printing
      the reason.  A bare ``False`` fails: an opt-out of a security check must
      say why;
    - ``wrap_is_randomized``: ``OptOut(reason)`` for a backend whose wrap is a
      deterministic key wrap with no IV (AES-KW): the test that one data key
      never wraps to the same bytes twice is skipped, printing the reason;
      the repeated-keystream test still runs;
    - ``leaking_loggers``: ``{"logger.name": OptOut(reason)}`` for a backend SDK
      logger known to write secrets at ``DEBUG`` that the provider does not
      redact yet: the leak test then ends as an expected failure (XFAIL)
      printing the reason when that logger (or a child) shows a secret;
    - ``mac_key_type``: the key type the MAC tests create (aes-256 by default);
    - ``wrapped_keys_name_a_version``: ``False`` for a backend whose wrapped
      keys do not say which version wrapped them (AWS KMS): ``wrap``,
      ``generate_data_key`` and ``owner_of`` then name the key unpinned, and
      the tests check that instead of the current version;
    - ``signing_keys_rotate``: ``False`` for a backend that rotates only
      wrapping keys (AWS KMS): ``rotate_key`` on a signing key must then raise
      :class:`UnsupportedOperation` naming ``rotate_key``;
    - ``concurrency_threads`` / ``concurrency_operations`` /
      ``concurrency_keys_per_thread``: the size of the concurrency tests;
    - :meth:`key_spec`, :meth:`create_test_key`, :meth:`missing_key_ref`: how
      test keys are specified and created, and how an absent key is named;
    - the ``reopen_provider`` fixture: a function returning another provider
      object on the same store, for the IV test across provider objects.

    A reference with another scheme is accepted as rejected with either
    :class:`ConfigError` or :class:`KeyNotFound`.
    """

    names_are_chosen_by_caller: bool = True
    wrap_binds_context: bool | OptOut = True
    wrap_is_randomized: bool | OptOut = True
    leaking_loggers: Mapping[str, OptOut] = {}
    missing_version: str = "999999"
    concurrency_threads: int = 8
    concurrency_operations: int = 12
    concurrency_keys_per_thread: int = 2
    mac_key_type: KeyType = KeyType.AES_256
    wrapped_keys_name_a_version: bool = True
    signing_keys_rotate: bool = True

    # -- fixtures ------------------------------------------------------------

    @pytest.fixture
    def provider(self) -> KeyProvider:
        """The provider under test: override this fixture in your subclass."""
        pytest.fail(
            f"{type(self).__name__} must override the 'provider' fixture to return the "
            "KeyProvider under test",
            pytrace=False,
        )

    @pytest.fixture
    def key_name(self) -> str:
        """A key name no other test uses."""
        return f"contract-{uuid.uuid4().hex[:12]}"

    @pytest.fixture
    def reopen_provider(self) -> Callable[[], KeyProvider] | None:
        """Override: a function that opens another provider object on the same store.

        As a second process or a restart would open it, while the first is
        still in use.  Without it the IV test across provider objects is
        skipped, saying so.
        """
        return None

    # -- hooks a subclass may override -----------------------------------------

    def key_spec(self, key_type: KeyType) -> KeySpec:
        """The spec of the keys the tests create."""
        return KeySpec(key_type=key_type, description="created by the Aureus conformance kit")

    def create_test_key(self, provider: KeyProvider, key_type: KeyType, name: str) -> KeyMetadata:
        """Create a key for a test (skipping the test if the provider cannot)."""
        self.require(provider, Capability.CREATE)
        self.require_key_type(provider, key_type)
        return provider.create_key(name, self.key_spec(key_type))

    def advance_clock(self, provider: KeyProvider, delta: timedelta) -> None:
        """Move the provider's clock forward (to expire import tokens); skips unless overridden."""
        pytest.skip(
            f"{type(self).__name__} does not override advance_clock: give the provider a "
            "test clock to check that expired import tokens are refused"
        )

    def wrap_with_material(
        self, material: bytes, key: KeyRef, data_key: bytes, context: EncryptionContext
    ) -> EncryptedDataKey | None:
        """An encrypted data key made, outside the provider, as ``key`` with ``material`` would.

        Implement it from the provider's documented wrapped-key layout so the
        wrapped-import test checks that the imported key unwraps what the
        original key wrapped; ``None`` (the default) leaves that check out.
        """
        return None

    def missing_key_ref(self, provider: KeyProvider, name: str) -> KeyRef:
        """A well-formed reference to a key that does not exist."""
        return KeyRef(scheme=provider.scheme, key_id=name)

    # -- helpers -------------------------------------------------------------

    @staticmethod
    def require(provider: KeyProvider, *capabilities: Capability) -> None:
        """Skip the test unless the provider declares every one of ``capabilities``."""
        missing = [c.value for c in capabilities if c not in provider.capabilities]
        if missing:
            pytest.skip(f"provider {provider.scheme!r} does not declare {', '.join(missing)}")

    @staticmethod
    def require_key_type(provider: KeyProvider, key_type: KeyType) -> None:
        """Skip the test unless the provider declares ``key_type``."""
        if key_type not in provider.key_types:
            pytest.skip(f"provider {provider.scheme!r} does not declare key type {key_type.value}")

    @staticmethod
    def cheapest_key_type(provider: KeyProvider, purpose: KeyPurpose | None = None) -> KeyType:
        """The quickest declared key type to create (of ``purpose``, if given), or skip."""
        for key_type in _BY_COST:
            if key_type in provider.key_types and purpose in (None, key_type.purpose):
                return key_type
        wanted = f"{purpose.value} " if purpose else ""
        pytest.skip(f"provider {provider.scheme!r} declares no {wanted}key type")

    @staticmethod
    def ref_of(metadata: KeyMetadata) -> KeyRef:
        """The unpinned reference of a described key."""
        return metadata.ref.with_version(None)

    def opt_out_reason(self, knob: str) -> str | None:
        """The reason the subclass gives for opting out of security knob ``knob``, or ``None``.

        Fails the test for a knob set to anything but ``True`` or an :class:`OptOut`.
        """
        value = getattr(self, knob)
        if isinstance(value, OptOut):
            return value.reason
        if value is True:
            return None
        pytest.fail(
            f"{type(self).__name__}.{knob} = {value!r}: a security check is opted out of only "
            f"with a reason: {knob} = OptOut('why the backend cannot meet it')",
            pytrace=False,
        )

    def _binds_context(self) -> bool:
        return self.opt_out_reason("wrap_binds_context") is None

    def _require_context_binding(self, provider: KeyProvider) -> None:
        reason = self.opt_out_reason("wrap_binds_context")
        if reason is not None:
            pytest.skip(f"provider {provider.scheme!r} opts out of wrap_binds_context: {reason}")

    def _foreign_edk(
        self, template: EncryptedDataKey | None = None, provider_id: str = "someone-else"
    ) -> EncryptedDataKey:
        return EncryptedDataKey(
            provider_id=provider_id,
            provider_info=template.provider_info if template else b"contract-key",
            ciphertext=template.ciphertext if template else os.urandom(48),
        )

    @staticmethod
    def _look_alike_ids(own: str) -> list[str]:
        """Provider IDs that are not ``own`` but resemble it or another well-known one."""
        candidates = ["someone-else", "aws-kms", "aureus-other", own + "x", own.upper(), own[:-1]]
        return [i for i in dict.fromkeys(candidates) if i and i != own]

    # -- declarations --------------------------------------------------------

    def test_declarations_have_the_right_types(self, provider: KeyProvider) -> None:
        """Scheme, capabilities and key types are declared with the interface's types."""
        assert isinstance(provider, KeyProvider)
        assert isinstance(provider.scheme, str)
        KeyRef(scheme=provider.scheme, key_id="declared")  # a valid URI scheme
        assert isinstance(provider.capabilities, frozenset)
        assert all(isinstance(c, Capability) for c in provider.capabilities)
        assert isinstance(provider.key_types, frozenset)
        assert all(isinstance(t, KeyType) for t in provider.key_types)

    @pytest.mark.parametrize("capability", list(CAPABILITY_METHODS), ids=lambda c: c.value)
    def test_undeclared_capability_is_unsupported_operation(
        self, provider: KeyProvider, capability: Capability, key_name: str
    ) -> None:
        """Each method of an undeclared capability raises UnsupportedOperation naming it."""
        if capability in provider.capabilities:
            pytest.skip(
                f"provider {provider.scheme!r} declares {capability.value}: nothing to check"
            )
        ref = self.missing_key_ref(provider, key_name)
        key_type = min(provider.key_types, key=_BY_COST.index, default=KeyType.AES_256)
        edk = EncryptedDataKey(provider_id="contract", provider_info=b"x", ciphertext=b"y" * 48)
        context = EncryptionContext({"purpose": "contract"})
        calls: dict[str, Callable[[], object]] = {
            "wrap": lambda: provider.wrap(ref, os.urandom(32), context),
            "unwrap": lambda: provider.unwrap(ref, edk, context),
            "sign": lambda: provider.sign(ref, MESSAGE),
            "verify": lambda: provider.verify(ref, MESSAGE, b"\x00" * 64),
            "public_key": lambda: provider.public_key(ref),
            "create_key": lambda: provider.create_key(key_name, KeySpec(key_type=key_type)),
            "describe_key": lambda: provider.describe_key(ref),
            "list_keys": lambda: provider.list_keys(),
            "rotate_key": lambda: provider.rotate_key(ref),
            "import_key": lambda: provider.import_key(
                key_name,
                KeySpec(key_type=KeyType.AES_256),
                KeyMaterial(format="raw", data=Secret(os.urandom(32))),
            ),
            "mac": lambda: provider.mac(ref, MESSAGE),
            "generate_data_key": lambda: provider.generate_data_key(  # type: ignore[attr-defined]
                ref, 32, context
            ),
            "replicate_key": lambda: provider.replicate_key(  # type: ignore[attr-defined]
                ref, "contract-region-1"
            ),
            "import_parameters": lambda: provider.import_parameters(  # type: ignore[attr-defined]
                key_name, KeySpec(key_type=key_type)
            ),
            "set_version_state": lambda: provider.set_version_state(
                ref.with_version("1"), KeyState.DISABLED
            ),
            "set_min_decryption_version": lambda: provider.set_min_decryption_version(ref, "1"),
            "destroy_version": lambda: provider.destroy_version(
                ref.with_version("1"), confirm=True
            ),
        }
        for method in CAPABILITY_METHODS[capability]:
            if method in _OPTIONAL_METHODS and not hasattr(provider, method):
                continue
            try:
                calls[method]()
            except UnsupportedOperation as error:
                message = str(error)
                assert provider.scheme in message, (
                    f"{method}: the UnsupportedOperation message does not name the provider "
                    f"scheme {provider.scheme!r}: {message!r}"
                )
                assert method in message or capability.value in message, (
                    f"{method}: the UnsupportedOperation message names neither {method!r} nor "
                    f"{capability.value!r}: {message!r}"
                )
            except Exception as error:
                pytest.fail(
                    f"{method} raised {type(error).__name__} although the provider does not "
                    f"declare {capability.value}; raise UnsupportedOperation instead"
                )
            else:
                pytest.fail(
                    f"{method} succeeded although the provider does not declare "
                    f"{capability.value}: declare the capability or raise UnsupportedOperation"
                )

    def test_security_opt_outs_state_their_reasons(self, provider: KeyProvider) -> None:
        """Each security knob is ``True`` or an ``OptOut`` with a reason; never a bare ``False``."""
        for knob in SECURITY_KNOBS:
            self.opt_out_reason(knob)
        for logger, opt_out in self.leaking_loggers.items():
            assert isinstance(opt_out, OptOut), (
                f"leaking_loggers[{logger!r}] = {opt_out!r}: give OptOut('why it is not redacted')"
            )

    def _leak_opt_out(self, logger: str) -> str | None:
        """The declared leaking logger ``logger`` is (or descends from), or ``None``."""
        for name in self.leaking_loggers:
            if logger == name or logger.startswith(name + "."):
                return name
        return None

    def test_undeclared_key_type_is_refused(self, provider: KeyProvider, key_name: str) -> None:
        """Creating a key of an undeclared type raises UnsupportedOperation or ConfigError."""
        self.require(provider, Capability.CREATE)
        undeclared = [t for t in KeyType if t not in provider.key_types]
        if not undeclared:
            pytest.skip(f"provider {provider.scheme!r} declares every key type")
        for number, key_type in enumerate(undeclared):
            with pytest.raises((UnsupportedOperation, ConfigError)):
                provider.create_key(f"{key_name}-{number}", KeySpec(key_type=key_type))

    # -- create, describe, list ------------------------------------------------

    def _check_metadata(
        self, provider: KeyProvider, metadata: KeyMetadata, key_type: KeyType
    ) -> None:
        assert isinstance(metadata, KeyMetadata)
        assert metadata.uri.startswith(f"{provider.scheme}://")
        assert metadata.key_type is key_type
        assert metadata.state is KeyState.ENABLED
        versions = [v.version for v in metadata.versions]
        assert metadata.current_version in versions, (
            f"current version {metadata.current_version!r} is not among versions {versions}"
        )
        for stamp in (metadata.created_at, *(v.created_at for v in metadata.versions)):
            assert stamp.tzinfo is not None
            assert stamp.utcoffset() == timedelta(0)

    @pytest.mark.parametrize("key_type", list(KeyType), ids=_type_id)
    def test_create_returns_metadata(
        self, provider: KeyProvider, key_type: KeyType, key_name: str
    ) -> None:
        """create_key returns metadata for an enabled key of the requested type."""
        metadata = self.create_test_key(provider, key_type, key_name)
        self._check_metadata(provider, metadata, key_type)

    @pytest.mark.parametrize("key_type", list(KeyType), ids=_type_id)
    def test_describe_matches_create(
        self, provider: KeyProvider, key_type: KeyType, key_name: str
    ) -> None:
        """describe_key returns what create_key returned."""
        self.require(provider, Capability.DESCRIBE)
        created = self.create_test_key(provider, key_type, key_name)
        described = provider.describe_key(self.ref_of(created))
        self._check_metadata(provider, described, key_type)
        assert described.uri == created.uri
        assert described.current_version == created.current_version
        assert [v.version for v in described.versions] == [v.version for v in created.versions]

    def test_list_includes_created_key(self, provider: KeyProvider, key_name: str) -> None:
        """list_keys shows a key just created."""
        self.require(provider, Capability.LIST)
        created = self.create_test_key(provider, self.cheapest_key_type(provider), key_name)
        listed = provider.list_keys()
        assert all(isinstance(m, KeyMetadata) for m in listed)
        assert created.uri in [m.uri for m in listed]

    def test_create_twice_is_key_exists(self, provider: KeyProvider, key_name: str) -> None:
        """A second key under the same name raises KeyExists."""
        if not self.names_are_chosen_by_caller:
            pytest.skip("this provider does not use caller-chosen names as identities")
        key_type = self.cheapest_key_type(provider)
        self.create_test_key(provider, key_type, key_name)
        with pytest.raises(KeyExists):
            provider.create_key(key_name, self.key_spec(key_type))

    # -- signing -------------------------------------------------------------

    def _signing_key(self, provider: KeyProvider, key_type: KeyType, name: str) -> KeyMetadata:
        self.require(provider, Capability.SIGN)
        return self.create_test_key(provider, key_type, name)

    @pytest.mark.parametrize("key_type", SIGNING_TYPES, ids=_type_id)
    def test_sign_verify_round_trip(
        self, provider: KeyProvider, key_type: KeyType, key_name: str
    ) -> None:
        """A signature verifies, and says which key, version and algorithm made it."""
        metadata = self._signing_key(provider, key_type, key_name)
        ref = self.ref_of(metadata)
        signature = provider.sign(ref, MESSAGE)
        assert isinstance(signature, Signature)
        assert isinstance(signature.value, bytes)
        assert signature.value
        assert signature.key_version == metadata.current_version
        assert KeyRef.parse(signature.key_uri).with_version(None).uri == metadata.uri
        assert isinstance(signature.algorithm, str)
        assert signature.algorithm
        assert provider.verify(ref, MESSAGE, signature.value) is True
        pinned = ref.with_version(signature.key_version)
        assert provider.verify(pinned, MESSAGE, signature.value) is True

    @pytest.mark.parametrize("key_type", SIGNING_TYPES, ids=_type_id)
    def test_verify_wrong_message_is_false(
        self, provider: KeyProvider, key_type: KeyType, key_name: str
    ) -> None:
        """A valid signature over another message does not verify."""
        ref = self.ref_of(self._signing_key(provider, key_type, key_name))
        signature = provider.sign(ref, MESSAGE)
        assert provider.verify(ref, MESSAGE + b".", signature.value) is False
        assert provider.verify(ref, b"", signature.value) is False

    @pytest.mark.parametrize("key_type", SIGNING_TYPES, ids=_type_id)
    def test_verify_tampered_signature_is_not_true(
        self, provider: KeyProvider, key_type: KeyType, key_name: str
    ) -> None:
        """A signature with one byte changed is refused (False or SignatureError)."""
        ref = self.ref_of(self._signing_key(provider, key_type, key_name))
        value = bytearray(provider.sign(ref, MESSAGE).value)
        value[len(value) // 2] ^= 0x01
        try:
            result = provider.verify(ref, MESSAGE, bytes(value))
        except SignatureError:
            return
        assert result is False

    @pytest.mark.parametrize("malformed", MALFORMED_SIGNATURES, ids=["empty", "three-zeros"])
    @pytest.mark.parametrize("key_type", SIGNING_TYPES, ids=_type_id)
    def test_verify_malformed_signature_is_signature_error(
        self, provider: KeyProvider, key_type: KeyType, malformed: bytes, key_name: str
    ) -> None:
        """A signature that cannot be one raises SignatureError rather than returning."""
        ref = self.ref_of(self._signing_key(provider, key_type, key_name))
        with pytest.raises(SignatureError):
            provider.verify(ref, MESSAGE, malformed)

    @pytest.mark.parametrize("key_type", SIGNING_TYPES, ids=_type_id)
    def test_verify_with_another_key_is_false(
        self, provider: KeyProvider, key_type: KeyType, key_name: str
    ) -> None:
        """A signature by one key does not verify under another key of the same type."""
        one = self.ref_of(self._signing_key(provider, key_type, key_name))
        other = self.ref_of(self.create_test_key(provider, key_type, key_name + "-other"))
        signature = provider.sign(one, MESSAGE)
        assert provider.verify(other, MESSAGE, signature.value) is False
        assert provider.verify(one, MESSAGE, signature.value) is True

    @pytest.mark.parametrize("key_type", SIGNING_TYPES, ids=_type_id)
    def test_public_key_verifies_signature(
        self, provider: KeyProvider, key_type: KeyType, key_name: str
    ) -> None:
        """The exported PEM verifies the provider's signature with cryptography alone."""
        self.require(provider, Capability.PUBLIC_KEY)
        ref = self.ref_of(self._signing_key(provider, key_type, key_name))
        pem = provider.public_key(ref)
        assert isinstance(pem, bytes)
        assert pem.startswith(b"-----BEGIN PUBLIC KEY-----")
        signature = provider.sign(ref, MESSAGE)
        assert verify_with_public_key(pem, key_type, signature, MESSAGE) is True
        assert verify_with_public_key(pem, key_type, signature, MESSAGE + b".") is False

    # -- wrapping --------------------------------------------------------------

    def _wrapping_key(self, provider: KeyProvider, key_type: KeyType, name: str) -> KeyMetadata:
        self.require(provider, Capability.WRAP)
        return self.create_test_key(provider, key_type, name)

    @staticmethod
    def _context(name: str) -> EncryptionContext:
        return EncryptionContext({"purpose": "conformance", "key": name})

    def _check_wrapping_ref(self, key: KeyRef, metadata: KeyMetadata) -> None:
        """``key`` names the wrapping key, pinned to its current version if the backend can."""
        assert key.with_version(None).uri == metadata.uri
        if self.wrapped_keys_name_a_version:
            assert key.version == metadata.current_version, (
                f"the wrapped key names version {key.version!r}, not the current version "
                f"{metadata.current_version!r} (set wrapped_keys_name_a_version = False if "
                "the backend's wrapped keys do not say which version wrapped them)"
            )
        else:
            assert key.version is None, (
                f"wrapped_keys_name_a_version is False, but the wrapped key names version "
                f"{key.version!r}"
            )

    @pytest.mark.parametrize("key_type", WRAPPING_TYPES, ids=_type_id)
    def test_wrap_unwrap_round_trip(
        self, provider: KeyProvider, key_type: KeyType, key_name: str
    ) -> None:
        """A wrapped data key unwraps to the same bytes, as a bytearray."""
        metadata = self._wrapping_key(provider, key_type, key_name)
        ref, context, data_key = self.ref_of(metadata), self._context(key_name), os.urandom(32)
        wrapped = provider.wrap(ref, data_key, context)
        assert isinstance(wrapped, WrappedKey)
        assert wrapped.key.scheme == provider.scheme
        self._check_wrapping_ref(wrapped.key, metadata)
        edk = wrapped.encrypted
        assert isinstance(edk.provider_id, str)
        assert edk.provider_id
        assert isinstance(edk.ciphertext, bytes)
        assert data_key not in edk.ciphertext
        unwrapped = provider.unwrap(ref, edk, context)
        assert isinstance(unwrapped, bytearray)
        assert bytes(unwrapped) == data_key
        assert bytes(provider.unwrap(wrapped.key, edk, context)) == data_key

    @pytest.mark.parametrize("key_type", WRAPPING_TYPES, ids=_type_id)
    def test_generate_data_key_round_trip(
        self, provider: KeyProvider, key_type: KeyType, key_name: str
    ) -> None:
        """A generated data key has the asked length, is fresh, and unwraps to the same bytes."""
        self.require(provider, Capability.GENERATE_DATA_KEY)
        assert isinstance(provider, GeneratesDataKeys), (
            "the provider declares generate-data-key but has no generate_data_key method"
        )
        metadata = self._wrapping_key(provider, key_type, key_name)
        ref, context = self.ref_of(metadata), self._context(key_name)
        first, wrapped = provider.generate_data_key(ref, 32, context)
        second, _ = provider.generate_data_key(ref, 32, context)
        assert isinstance(first, bytearray)
        assert len(first) == 32
        assert first != second, "two generated data keys are equal"
        assert isinstance(wrapped, WrappedKey)
        self._check_wrapping_ref(wrapped.key, metadata)
        assert bytes(first) not in wrapped.encrypted.ciphertext
        assert bytes(provider.unwrap(ref, wrapped.encrypted, context)) == bytes(first)
        if self._binds_context():
            with pytest.raises(DecryptionError):
                provider.unwrap(ref, wrapped.encrypted, self._context(key_name + "-other"))

    @pytest.mark.parametrize("key_type", WRAPPING_TYPES, ids=_type_id)
    def test_unwrap_with_other_context_is_decryption_error(
        self, provider: KeyProvider, key_type: KeyType, key_name: str
    ) -> None:
        """The encryption context is bound into the wrap, even after a successful unwrap.

        The data key is first unwrapped under the right context, so a provider
        that remembers unwraps by the wrapped key's bytes (a cache keyed
        without the context) fails here too.
        """
        self._require_context_binding(provider)
        ref = self.ref_of(self._wrapping_key(provider, key_type, key_name))
        context, data_key = self._context(key_name), os.urandom(32)
        wrapped = provider.wrap(ref, data_key, context)
        assert bytes(provider.unwrap(ref, wrapped.encrypted, context)) == data_key
        assert bytes(provider.unwrap(wrapped.key, wrapped.encrypted, context)) == data_key
        for other in (self._context(key_name + "-other"), EncryptionContext()):
            for key in (ref, wrapped.key):
                with pytest.raises(DecryptionError):
                    provider.unwrap(key, wrapped.encrypted, other)

    @pytest.mark.parametrize("key_type", WRAPPING_TYPES, ids=_type_id)
    def test_unwrap_tampered_ciphertext_is_decryption_error(
        self, provider: KeyProvider, key_type: KeyType, key_name: str
    ) -> None:
        """Flipping any one ciphertext byte (first, middle, last) fails to unwrap."""
        ref = self.ref_of(self._wrapping_key(provider, key_type, key_name))
        context = self._context(key_name)
        edk = provider.wrap(ref, os.urandom(32), context).encrypted
        size = len(edk.ciphertext)
        for position in sorted({0, size // 2, size - 1}):
            tampered = bytearray(edk.ciphertext)
            tampered[position] ^= 0x01
            changed = EncryptedDataKey(
                provider_id=edk.provider_id,
                provider_info=edk.provider_info,
                ciphertext=bytes(tampered),
            )
            with pytest.raises(DecryptionError):
                provider.unwrap(ref, changed, context)

    @pytest.mark.parametrize("key_type", WRAPPING_TYPES, ids=_type_id)
    def test_unwrap_with_another_key_is_decryption_error(
        self, provider: KeyProvider, key_type: KeyType, key_name: str
    ) -> None:
        """A data key wrapped by one key does not unwrap under another."""
        first = self.ref_of(self._wrapping_key(provider, key_type, key_name))
        second = self.ref_of(self.create_test_key(provider, key_type, key_name + "-b"))
        context = self._context(key_name)
        wrapped = provider.wrap(first, os.urandom(32), context)
        with pytest.raises(DecryptionError):
            provider.unwrap(second, wrapped.encrypted, context)

    @pytest.mark.parametrize("key_type", WRAPPING_TYPES, ids=_type_id)
    def test_unwrap_pinned_to_another_version_is_decryption_error(
        self, provider: KeyProvider, key_type: KeyType, key_name: str
    ) -> None:
        """A reference pinned to one version does not open what another version wrapped."""
        self.require(provider, Capability.WRAP, Capability.ROTATE, Capability.VERSIONS)
        ref = self.ref_of(self._wrapping_key(provider, key_type, key_name))
        context = self._context(key_name)
        old = provider.wrap(ref, os.urandom(32), context)
        rotated = provider.rotate_key(ref)
        new = provider.wrap(ref, os.urandom(32), context)
        newer = ref.with_version(rotated.current_version)
        assert old.key != newer
        with pytest.raises(DecryptionError):
            provider.unwrap(newer, old.encrypted, context)
        with pytest.raises(DecryptionError):
            provider.unwrap(old.key, new.encrypted, context)

    def _keystream_reuse(
        self, wraps: Sequence[tuple[bytes, EncryptedDataKey]]
    ) -> tuple[int, int] | None:
        """The first pair of wraps of different data keys that share a keystream, or ``None``.

        Two AES-GCM (or any stream-cipher) wraps under one key and IV satisfy
        ``c1 XOR c2 == d1 XOR d2`` at the data key's offset: that is looked for
        in every 32-byte window at one offset of ``provider_info || ciphertext``.
        """
        for (i, (d1, e1)), (j, (d2, e2)) in itertools.combinations(enumerate(wraps), 2):
            if d1 == d2:
                continue
            combined = _xor(e1.provider_info + e1.ciphertext, e2.provider_info + e2.ciphertext)
            if _xor(d1, d2) in combined:
                return i, j
        return None

    def test_wrap_of_one_data_key_is_never_repeated(
        self, provider: KeyProvider, key_name: str
    ) -> None:
        """One data key wrapped 64 times under one key and context gives 64 different results.

        A repeated (provider_info, ciphertext) pair means a repeated IV (or
        nonce).  A backend whose wrap is a deterministic key wrap with no IV
        (AES-KW) opts out with ``wrap_is_randomized = OptOut(reason)``;
        :meth:`test_wraps_never_share_a_keystream` still runs for it.
        """
        key_type = self.cheapest_key_type(provider, KeyPurpose.WRAP)
        reason = self.opt_out_reason("wrap_is_randomized")
        if reason is not None:
            pytest.skip(f"provider {provider.scheme!r} opts out of wrap_is_randomized: {reason}")
        ref = self.ref_of(self._wrapping_key(provider, key_type, key_name))
        context, data_key = self._context(key_name), os.urandom(32)
        same = [provider.wrap(ref, data_key, context).encrypted for _ in range(IV_REUSE_WRAPS)]
        distinct = {(e.provider_info, e.ciphertext) for e in same}
        assert len(distinct) == IV_REUSE_WRAPS, (
            f"{IV_REUSE_WRAPS} wraps of one data key gave {len(distinct)} different wrapped keys: "
            "an IV (or nonce) was used twice"
        )

    def test_wraps_never_share_a_keystream(self, provider: KeyProvider, key_name: str) -> None:
        """Wraps of different data keys never show the signature of a repeated keystream.

        For every pair of wraps ``d1 -> e1``, ``d2 -> e2`` under one key and
        context, no 32-byte window at one offset of ``provider_info ||
        ciphertext`` has ``e1 XOR e2 == d1 XOR d2`` (see :meth:`_keystream_reuse`).
        """
        key_type = self.cheapest_key_type(provider, KeyPurpose.WRAP)
        ref = self.ref_of(self._wrapping_key(provider, key_type, key_name))
        context = self._context(key_name)
        wraps = [
            (d, provider.wrap(ref, d, context).encrypted) for d in _random_keys(KEYSTREAM_WRAPS)
        ]
        reused = self._keystream_reuse(wraps)
        assert reused is None, (
            f"wraps {reused} of different data keys share a keystream: an IV was used twice"
        )

    def test_wrap_never_repeats_an_iv_across_provider_objects(
        self,
        provider: KeyProvider,
        reopen_provider: Callable[[], KeyProvider] | None,
        key_name: str,
    ) -> None:
        """Two provider objects on one store (two processes, a restart) never share an IV.

        A counter IV that starts again in every provider object passes the
        one-object test and fails here.  Needs the ``reopen_provider`` fixture.
        """
        key_type = self.cheapest_key_type(provider, KeyPurpose.WRAP)
        if reopen_provider is None:
            pytest.skip(
                f"{type(self).__name__} does not override the reopen_provider fixture: IV "
                "uniqueness across provider objects on one store is not checked"
            )
        ref = self.ref_of(self._wrapping_key(provider, key_type, key_name))
        context, data_key = self._context(key_name), os.urandom(32)
        count = KEYSTREAM_WRAPS // 2
        wraps = [(d, provider.wrap(ref, d, context).encrypted) for d in (data_key,) * 2]
        wraps += [(d, provider.wrap(ref, d, context).encrypted) for d in _random_keys(count)]
        second = reopen_provider()
        try:
            assert second is not provider, "reopen_provider returned the same object"
            opened = second.unwrap(ref, wraps[0][1], context)  # the same store
            assert bytes(opened) == data_key
            wraps += [(d, second.wrap(ref, d, context).encrypted) for d in (data_key,) * 2]
            wraps += [(d, second.wrap(ref, d, context).encrypted) for d in _random_keys(count)]
        finally:
            second.close()
        if self.opt_out_reason("wrap_is_randomized") is None:
            distinct = {(e.provider_info, e.ciphertext) for _, e in wraps}
            assert len(distinct) == len(wraps), "two provider objects made the same wrapped key"
        reused = self._keystream_reuse(wraps)
        assert reused is None, (
            f"wraps {reused} of different data keys share a keystream: an IV was used twice "
            "(by two provider objects on one store)"
        )

    @pytest.mark.parametrize("key_type", WRAPPING_TYPES, ids=_type_id)
    def test_owner_of_names_the_pinned_wrapping_key(
        self, provider: KeyProvider, key_type: KeyType, key_name: str
    ) -> None:
        """owner_of returns the wrapping key, pinned to the version that wrapped."""
        metadata = self._wrapping_key(provider, key_type, key_name)
        wrapped = provider.wrap(self.ref_of(metadata), os.urandom(32), self._context(key_name))
        owner = provider.owner_of(wrapped.encrypted)
        assert owner is not None
        assert owner == wrapped.key
        self._check_wrapping_ref(owner, metadata)

    def test_foreign_encrypted_data_key_is_not_ours(
        self, provider: KeyProvider, key_name: str
    ) -> None:
        """owner_of is None for another provider's EDK, and unwrap refuses it.

        The provider ID alone decides: our own provider info and ciphertext
        under a look-alike ID (``aws-kms``, ``aureus-other``, our ID with a
        letter added or taken away, our ID upper-cased) are not ours.
        """
        if Capability.WRAP not in provider.capabilities:
            assert provider.owner_of(self._foreign_edk()) is None
            return
        key_type = self.cheapest_key_type(provider, KeyPurpose.WRAP)
        ref = self.ref_of(self.create_test_key(provider, key_type, key_name))
        context = self._context(key_name)
        ours = provider.wrap(ref, os.urandom(32), context).encrypted
        for provider_id in self._look_alike_ids(ours.provider_id):
            foreign = self._foreign_edk(ours, provider_id)
            assert provider.owner_of(foreign) is None, f"owner_of claims ID {provider_id!r}"
            with pytest.raises(DecryptionError):
                provider.unwrap(ref, foreign, context)

    def test_wrong_purpose_key_is_config_error(self, provider: KeyProvider, key_name: str) -> None:
        """Signing with a wrapping key, wrapping with a signing key: ConfigError naming the key.

        The same for ``public_key`` of a wrapping key and ``mac`` with a signing
        key, when declared.  Unwrapping with a signing key stays a
        DecryptionError, like every unwrap failure.
        """
        self.require(provider, Capability.WRAP, Capability.SIGN)
        wrap_type = self.cheapest_key_type(provider, KeyPurpose.WRAP)
        sign_type = self.cheapest_key_type(provider, KeyPurpose.SIGN)
        wrapping = self.ref_of(self.create_test_key(provider, wrap_type, key_name))
        signing = self.ref_of(self.create_test_key(provider, sign_type, key_name + "-sign"))
        context, data_key = self._context(key_name), os.urandom(32)
        calls: dict[str, tuple[KeyRef, Callable[[], object]]] = {
            "sign with a wrapping key": (wrapping, lambda: provider.sign(wrapping, MESSAGE)),
            "wrap with a signing key": (
                signing,
                lambda: provider.wrap(signing, data_key, context),
            ),
        }
        if Capability.PUBLIC_KEY in provider.capabilities:
            calls["public_key of a wrapping key"] = (
                wrapping,
                lambda: provider.public_key(wrapping),
            )
        if Capability.MAC in provider.capabilities:
            calls["mac with a signing key"] = (signing, lambda: provider.mac(signing, MESSAGE))
        for what, (ref, call) in calls.items():
            message = ""
            try:
                call()
            except ConfigError as error:
                message = str(error)
            except Exception as error:
                pytest.fail(
                    f"{what} raised {type(error).__name__}; raise ConfigError naming the key, "
                    "its purpose and what to use instead"
                )
            else:
                pytest.fail(f"{what} succeeded: refuse a key of the wrong purpose")
            assert ref.key_id in message or ref.uri in message, (
                f"{what}: the ConfigError does not name the key {ref.uri}: {message}"
            )
        wrapped = provider.wrap(wrapping, data_key, context)
        with pytest.raises(DecryptionError):
            provider.unwrap(signing, wrapped.encrypted, context)

    # -- wrapped import --------------------------------------------------------

    def _import_job(
        self, provider: KeyProvider, key_type: KeyType, name: str, *, new_version: bool = False
    ) -> ImportParameters:
        """Import parameters for ``name`` (skip if the provider offers none for ``key_type``)."""
        self.require(provider, Capability.WRAPPED_IMPORT)
        self.require_key_type(provider, key_type)
        try:
            return provider.import_parameters(  # type: ignore[attr-defined,no-any-return]
                name, self.key_spec(key_type), new_version=new_version
            )
        except UnsupportedOperation as error:
            pytest.skip(f"provider {provider.scheme!r} does not import {key_type.value}: {error}")

    @staticmethod
    def _wrapped(
        parameters: ImportParameters, material: KeyMaterial, *, fingerprint: str | None = None
    ) -> KeyMaterial:
        blob = wrap_for_import(
            parameters.key_type,
            material,
            wrapping_public_key=parameters.wrapping_public_key,
            algorithm=parameters.wrapping_algorithm,
            expected_fingerprint=fingerprint or parameters.fingerprint,
        )
        return KeyMaterial(
            format="wrapped", data=Secret(blob), import_token=parameters.import_token
        )

    def _import_wrapped(
        self,
        provider: KeyProvider,
        name: str,
        key_type: KeyType,
        wrapped: KeyMaterial,
        *,
        new_version: bool = False,
    ) -> KeyMetadata:
        return provider.import_key(name, self.key_spec(key_type), wrapped, new_version=new_version)

    @pytest.mark.parametrize("key_type", _IMPORTABLE, ids=_type_id)
    def test_wrapped_import_round_trip(
        self, provider: KeyProvider, key_type: KeyType, key_name: str
    ) -> None:
        """Material wrapped for the provider's token imports, and works as the original key.

        A signing key's signatures verify under the original public key; a
        wrapping key round-trips, and unwraps what :meth:`wrap_with_material`
        made with the original bytes where the subclass implements it.
        """
        parameters = self._import_job(provider, key_type, key_name)
        assert parameters.key_type is key_type
        assert parameters.new_version is False
        assert parameters.key_uri.startswith(f"{provider.scheme}://")
        assert parameters.wrapping_algorithm in WRAPPING_ALGORITHMS
        assert parameters.fingerprint == wrapping_key_fingerprint(parameters.wrapping_public_key)
        check_import_token(parameters.import_token)
        original = fresh_material(key_type)
        metadata = self._import_wrapped(
            provider, key_name, key_type, self._wrapped(parameters, original)
        )
        assert metadata.key_type is key_type
        ref = self.ref_of(metadata)
        if key_type.purpose is KeyPurpose.SIGN:
            signature = provider.sign(ref, MESSAGE)
            public = original_public_key(key_type, original)
            assert verify_with_public_key(public, key_type, signature, MESSAGE) is True
            if Capability.PUBLIC_KEY in provider.capabilities:
                assert provider.public_key(ref) == public
            return
        context, data_key = self._context(key_name), os.urandom(32)
        wrapped = provider.wrap(ref, data_key, context)
        assert bytes(provider.unwrap(ref, wrapped.encrypted, context)) == data_key
        pinned = ref.with_version(metadata.current_version)
        made = self.wrap_with_material(original.data.reveal(), pinned, data_key, context)
        if made is not None:
            assert provider.owner_of(made) == pinned
            assert bytes(provider.unwrap(pinned, made, context)) == data_key

    def test_wrapped_import_is_single_use(self, provider: KeyProvider, key_name: str) -> None:
        """A blob imported once is refused the second time (its token is used up)."""
        key_type = self._cheapest_importable(provider)
        parameters = self._import_job(provider, key_type, key_name)
        wrapped = self._wrapped(parameters, fresh_material(key_type))
        self._import_wrapped(provider, key_name, key_type, wrapped)
        with pytest.raises(ImportRefused) as refused:
            self._import_wrapped(provider, key_name, key_type, wrapped, new_version=True)
        assert parameters.import_token in str(refused.value)
        assert "used" in str(refused.value)

    def test_wrapped_import_refuses_material_for_another_token(
        self, provider: KeyProvider, key_name: str
    ) -> None:
        """Material wrapped for one token's key opens with no other token, nor into another key."""
        key_type = self._cheapest_importable(provider)
        other_name = f"{key_name}-other"
        mine = self._import_job(provider, key_type, key_name)
        other = self._import_job(provider, key_type, other_name)
        assert mine.import_token != other.import_token
        assert mine.fingerprint != other.fingerprint
        blob = self._wrapped(mine, fresh_material(key_type))
        swapped = attrs.evolve(blob, import_token=other.import_token)
        with pytest.raises(ImportRefused) as refused:
            self._import_wrapped(provider, other_name, key_type, swapped)
        assert other.import_token in str(refused.value)
        assert "another token" in str(refused.value)
        with pytest.raises(ImportRefused) as wrong_key:  # the token binds the key name
            self._import_wrapped(provider, other_name, key_type, blob)
        assert "issued for key" in str(wrong_key.value)
        metadata = self._import_wrapped(provider, key_name, key_type, blob)
        assert metadata.key_type is key_type

    def test_wrapped_import_refuses_a_tampered_blob(
        self, provider: KeyProvider, key_name: str
    ) -> None:
        """One flipped byte in either part is refused; the token survives for the real blob."""
        key_type = self._cheapest_importable(provider)
        parameters = self._import_job(provider, key_type, key_name)
        wrapped = self._wrapped(parameters, fresh_material(key_type))
        blob = wrapped.data.reveal()
        for position in (0, len(blob) // 2, len(blob) - 1):
            tampered = bytearray(blob)
            tampered[position] ^= 0x01
            bad = attrs.evolve(wrapped, data=Secret(bytes(tampered)))
            with pytest.raises(ImportRefused) as refused:
                self._import_wrapped(provider, key_name, key_type, bad)
            assert "does not open" in str(refused.value)
        truncated = attrs.evolve(wrapped, data=Secret(blob[:-8]))
        with pytest.raises(ImportRefused):
            self._import_wrapped(provider, key_name, key_type, truncated)
        assert self._import_wrapped(provider, key_name, key_type, wrapped).key_type is key_type

    def test_wrapped_import_refuses_an_expired_token(
        self, provider: KeyProvider, key_name: str
    ) -> None:
        """Once the token's lifetime has passed (:meth:`advance_clock`), its import is refused."""
        key_type = self._cheapest_importable(provider)
        parameters = self._import_job(provider, key_type, key_name)
        wrapped = self._wrapped(parameters, fresh_material(key_type))
        self.advance_clock(provider, IMPORT_TOKEN_LIFETIME + timedelta(minutes=1))
        with pytest.raises(ImportRefused) as refused:
            self._import_wrapped(provider, key_name, key_type, wrapped)
        message = str(refused.value)
        assert parameters.import_token in message
        assert "expired" in message or "unknown" in message

    def test_wrap_for_import_refuses_a_substituted_wrapping_key(
        self, provider: KeyProvider, key_name: str
    ) -> None:
        """The offline wrap checks the fingerprint: a key swapped in transit is refused."""
        key_type = self._cheapest_importable(provider)
        genuine = self._import_job(provider, key_type, key_name)
        attacker = rsa.generate_private_key(public_exponent=65537, key_size=3072)
        swapped = attrs.evolve(
            genuine,
            wrapping_public_key=attacker.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        )
        with pytest.raises(ConfigError) as refused:
            self._wrapped(swapped, fresh_material(key_type), fingerprint=genuine.fingerprint)
        assert genuine.fingerprint in str(refused.value)

    def _cheapest_importable(self, provider: KeyProvider) -> KeyType:
        self.require(provider, Capability.WRAPPED_IMPORT)
        for key_type in _IMPORTABLE:
            if key_type in provider.key_types:
                return key_type
        pytest.skip(f"provider {provider.scheme!r} declares no importable key type")

    # -- MACs ------------------------------------------------------------------

    def _mac_key(self, provider: KeyProvider, name: str) -> KeyMetadata:
        self.require(provider, Capability.MAC)
        return self.create_test_key(provider, self.mac_key_type, name)

    def test_mac_is_deterministic(self, provider: KeyProvider, key_name: str) -> None:
        """The same key and message give the same MAC, a new message another."""
        ref = self.ref_of(self._mac_key(provider, key_name))
        first = provider.mac(ref, MESSAGE)
        assert isinstance(first, bytes)
        assert len(first) >= 16
        assert provider.mac(ref, MESSAGE) == first
        assert provider.mac(ref, MESSAGE + b".") != first

    def test_mac_depends_on_the_key(self, provider: KeyProvider, key_name: str) -> None:
        """Two keys give different MACs of one message."""
        one = self.ref_of(self._mac_key(provider, key_name))
        other = self.ref_of(self._mac_key(provider, key_name + "-other"))
        assert provider.mac(one, MESSAGE) != provider.mac(other, MESSAGE)

    def test_mac_follows_the_pinned_version(self, provider: KeyProvider, key_name: str) -> None:
        """A pinned version keeps its MAC after a rotation; the new version has another."""
        metadata = self._mac_key(provider, key_name)
        self.require(provider, Capability.ROTATE, Capability.VERSIONS)
        ref = self.ref_of(metadata)
        before = provider.mac(ref, MESSAGE)
        rotated = provider.rotate_key(ref)
        assert provider.mac(ref, MESSAGE) != before
        assert provider.mac(ref.with_version(rotated.current_version), MESSAGE) != before
        assert provider.mac(ref.with_version(metadata.current_version), MESSAGE) == before

    # -- rotation and versions -------------------------------------------------

    @pytest.mark.parametrize("key_type", list(KeyType), ids=_type_id)
    def test_rotate_adds_a_current_version(
        self, provider: KeyProvider, key_type: KeyType, key_name: str
    ) -> None:
        """Rotation makes a new version current and keeps the old one listed."""
        self.require(provider, Capability.ROTATE)
        before = self.create_test_key(provider, key_type, key_name)
        if key_type.purpose is KeyPurpose.SIGN and not self.signing_keys_rotate:
            with pytest.raises(UnsupportedOperation, match="rotate_key"):
                provider.rotate_key(self.ref_of(before))
            return
        after = provider.rotate_key(self.ref_of(before))
        self._check_metadata(provider, after, key_type)
        assert after.uri == before.uri
        assert after.current_version != before.current_version
        assert before.current_version in [v.version for v in after.versions]
        if Capability.DESCRIBE in provider.capabilities:
            assert provider.describe_key(self.ref_of(before)).current_version == (
                after.current_version
            )

    @pytest.mark.parametrize("key_type", SIGNING_TYPES, ids=_type_id)
    def test_old_signatures_verify_after_rotation(
        self, provider: KeyProvider, key_type: KeyType, key_name: str
    ) -> None:
        """Signatures of the old version verify under the pinned old version."""
        self.require(provider, Capability.ROTATE, Capability.VERSIONS)
        ref = self.ref_of(self._signing_key(provider, key_type, key_name))
        old = provider.sign(ref, MESSAGE)
        rotated = provider.rotate_key(ref)
        new = provider.sign(ref, MESSAGE)
        assert new.key_version == rotated.current_version != old.key_version
        assert provider.verify(ref.with_version(old.key_version), MESSAGE, old.value) is True
        assert provider.verify(ref.with_version(new.key_version), MESSAGE, new.value) is True
        if Capability.PUBLIC_KEY in provider.capabilities:
            old_pem = provider.public_key(ref.with_version(old.key_version))
            assert verify_with_public_key(old_pem, key_type, old, MESSAGE) is True

    def _rotated_signing_key(
        self, provider: KeyProvider, key_type: KeyType, name: str
    ) -> tuple[KeyRef, KeyMetadata, KeyMetadata]:
        """A signing key with two versions: its reference, its first and its rotated metadata."""
        self.require(provider, Capability.ROTATE, Capability.VERSIONS)
        if not self.signing_keys_rotate:
            pytest.skip("signing keys do not rotate on this backend (signing_keys_rotate)")
        first = self._signing_key(provider, key_type, name)
        ref = self.ref_of(first)
        return ref, first, provider.rotate_key(ref)

    @pytest.mark.parametrize("key_type", SIGNING_TYPES, ids=_type_id)
    def test_a_version_does_not_verify_another_versions_signature(
        self, provider: KeyProvider, key_type: KeyType, key_name: str
    ) -> None:
        """After a rotation, neither version verifies a signature of the other."""
        self.require(provider, Capability.SIGN)
        ref, first, rotated = self._rotated_signing_key(provider, key_type, key_name)
        old_pin = ref.with_version(first.current_version)
        new_pin = ref.with_version(rotated.current_version)
        old, new = provider.sign(old_pin, MESSAGE), provider.sign(ref, MESSAGE)
        assert new.key_version == rotated.current_version
        assert provider.verify(old_pin, MESSAGE, new.value) is False
        assert provider.verify(new_pin, MESSAGE, old.value) is False
        assert provider.verify(new_pin, MESSAGE, new.value) is True

    @pytest.mark.parametrize("key_type", SIGNING_TYPES, ids=_type_id)
    def test_sign_pinned_to_an_old_version_signs_with_it(
        self, provider: KeyProvider, key_type: KeyType, key_name: str
    ) -> None:
        """``sign(key?version=old)`` signs with the old version and reports it.

        The signature verifies under the pinned old version (and its public
        key), not under the current one.
        """
        self.require(provider, Capability.SIGN)
        ref, first, rotated = self._rotated_signing_key(provider, key_type, key_name)
        old_pin = ref.with_version(first.current_version)
        signature = provider.sign(old_pin, MESSAGE)
        assert signature.key_version == first.current_version
        assert provider.verify(old_pin, MESSAGE, signature.value) is True
        current = ref.with_version(rotated.current_version)
        assert provider.verify(current, MESSAGE, signature.value) is False
        if Capability.PUBLIC_KEY in provider.capabilities:
            old_pem = provider.public_key(old_pin)
            assert verify_with_public_key(old_pem, key_type, signature, MESSAGE) is True
            assert old_pem != provider.public_key(current)

    @pytest.mark.parametrize("key_type", WRAPPING_TYPES, ids=_type_id)
    def test_old_wraps_unwrap_after_rotation(
        self, provider: KeyProvider, key_type: KeyType, key_name: str
    ) -> None:
        """Data keys wrapped under the old version unwrap under the pinned old version."""
        self.require(provider, Capability.ROTATE, Capability.VERSIONS)
        ref = self.ref_of(self._wrapping_key(provider, key_type, key_name))
        context, data_key = self._context(key_name), os.urandom(32)
        old = provider.wrap(ref, data_key, context)
        rotated = provider.rotate_key(ref)
        new = provider.wrap(ref, data_key, context)
        assert new.key.version == rotated.current_version != old.key.version
        assert old.key.version is not None
        assert provider.owner_of(old.encrypted) == old.key
        assert bytes(provider.unwrap(old.key, old.encrypted, context)) == data_key
        assert bytes(provider.unwrap(new.key, new.encrypted, context)) == data_key

    # -- key-version lifecycle ---------------------------------------------------

    def _versioned_key(
        self, provider: KeyProvider, purpose: KeyPurpose, name: str, *also: Capability
    ) -> tuple[KeyRef, KeyMetadata]:
        """A key of ``purpose`` with a lifecycle (skip unless it and ``also`` are declared)."""
        self.require(provider, Capability.LIFECYCLE, Capability.ROTATE, Capability.VERSIONS, *also)
        self.require(provider, Capability.WRAP if purpose is KeyPurpose.WRAP else Capability.SIGN)
        metadata = self.create_test_key(provider, self.cheapest_key_type(provider, purpose), name)
        return self.ref_of(metadata), metadata

    @staticmethod
    def _assert_names(error: AureusError, ref: KeyRef, version: str) -> None:
        message = str(error)
        assert ref.key_id in message, f"the error does not name the key {ref.uri}: {message!r}"
        assert version in message, f"the error does not name version {version}: {message!r}"

    def test_lifecycle_disabled_version_refuses_unwrap(
        self, provider: KeyProvider, key_name: str
    ) -> None:
        """A disabled version's data keys raise KeyDisabled until it is enabled again."""
        ref, _ = self._versioned_key(provider, KeyPurpose.WRAP, key_name)
        context, data_key = self._context(key_name), os.urandom(32)
        old = provider.wrap(ref, data_key, context)
        provider.rotate_key(ref)
        assert old.key.version is not None
        disabled = provider.set_version_state(old.key, KeyState.DISABLED)
        assert disabled.version_info(old.key.version).state is KeyState.DISABLED
        with pytest.raises(KeyDisabled) as refused:
            provider.unwrap(old.key, old.encrypted, context)
        self._assert_names(refused.value, ref, old.key.version)
        fresh = provider.wrap(ref, data_key, context)  # the current version is unaffected
        assert bytes(provider.unwrap(fresh.key, fresh.encrypted, context)) == data_key
        enabled = provider.set_version_state(old.key, KeyState.ENABLED)
        assert enabled.version_info(old.key.version).state is KeyState.ENABLED
        assert bytes(provider.unwrap(old.key, old.encrypted, context)) == data_key

    def test_lifecycle_disabled_version_refuses_verify(
        self, provider: KeyProvider, key_name: str
    ) -> None:
        """Verifying with a disabled version raises KeyDisabled rather than answering."""
        ref, _ = self._versioned_key(provider, KeyPurpose.SIGN, key_name)
        old = provider.sign(ref, MESSAGE)
        provider.rotate_key(ref)
        pinned = ref.with_version(old.key_version)
        provider.set_version_state(pinned, KeyState.DISABLED)
        with pytest.raises(KeyDisabled) as refused:
            provider.verify(pinned, MESSAGE, old.value)
        self._assert_names(refused.value, ref, old.key_version)
        new = provider.sign(ref, MESSAGE)
        assert provider.verify(ref.with_version(new.key_version), MESSAGE, new.value) is True
        provider.set_version_state(pinned, KeyState.ENABLED)
        assert provider.verify(pinned, MESSAGE, old.value) is True

    def test_lifecycle_current_version_cannot_be_disabled(
        self, provider: KeyProvider, key_name: str
    ) -> None:
        """Disabling the current version is a ConfigError that changes nothing."""
        ref, metadata = self._versioned_key(provider, KeyPurpose.WRAP, key_name)
        current = ref.with_version(metadata.current_version)
        with pytest.raises(ConfigError, match="rotate"):
            provider.set_version_state(current, KeyState.DISABLED)
        if Capability.DESCRIBE in provider.capabilities:
            after = provider.describe_key(ref)
            assert after.version_info(metadata.current_version).state is KeyState.ENABLED

    def test_lifecycle_min_decryption_version(self, provider: KeyProvider, key_name: str) -> None:
        """Versions below the minimum raise KeyDisabled naming the minimum; others unwrap."""
        ref, _ = self._versioned_key(
            provider, KeyPurpose.WRAP, key_name, Capability.MIN_DECRYPTION_VERSION
        )
        context, data_key = self._context(key_name), os.urandom(32)
        wrapped = [provider.wrap(ref, data_key, context)]
        for _ in range(2):
            provider.rotate_key(ref)
            wrapped.append(provider.wrap(ref, data_key, context))
        first, middle = wrapped[0].key.version, wrapped[1].key.version
        assert first is not None
        assert middle is not None
        metadata = provider.set_min_decryption_version(ref, middle)
        assert metadata.min_decryption_version == middle
        with pytest.raises(KeyDisabled) as refused:
            provider.unwrap(wrapped[0].key, wrapped[0].encrypted, context)
        self._assert_names(refused.value, ref, first)
        assert middle in str(refused.value), "the error does not name the minimum version"
        for item in wrapped[1:]:
            assert bytes(provider.unwrap(item.key, item.encrypted, context)) == data_key
        lowered = provider.set_min_decryption_version(ref, first)
        assert lowered.min_decryption_version == first
        assert bytes(provider.unwrap(wrapped[0].key, wrapped[0].encrypted, context)) == data_key

    def test_lifecycle_destroy_needs_confirm_and_spares_the_current_version(
        self, provider: KeyProvider, key_name: str
    ) -> None:
        """destroy_version refuses without confirm=True and for the current version."""
        ref, _ = self._versioned_key(
            provider, KeyPurpose.WRAP, key_name, Capability.DESTROY_VERSION
        )
        context, data_key = self._context(key_name), os.urandom(32)
        old = provider.wrap(ref, data_key, context)
        rotated = provider.rotate_key(ref)
        assert old.key.version is not None
        provider.set_version_state(old.key, KeyState.DISABLED)
        with pytest.raises(ConfigError, match="confirm"):
            provider.destroy_version(old.key)
        provider.set_version_state(old.key, KeyState.ENABLED)  # nothing was destroyed
        assert bytes(provider.unwrap(old.key, old.encrypted, context)) == data_key
        with pytest.raises(ConfigError):
            provider.destroy_version(ref.with_version(rotated.current_version), confirm=True)
        provider.set_version_state(old.key, KeyState.DISABLED)
        destroyed = provider.destroy_version(old.key, confirm=True)
        assert destroyed.version_info(old.key.version).state is KeyState.DESTROYED
        assert destroyed.current_version == rotated.current_version
        # A provider that authenticates a wrapped key before reporting the
        # version's state cannot authenticate one of a destroyed version, and
        # may answer with the same opaque DecryptionError as for a forgery.
        with pytest.raises((KeyDisabled, DecryptionError)):
            provider.unwrap(old.key, old.encrypted, context)
        with pytest.raises((KeyDisabled, ConfigError)):
            provider.set_version_state(old.key, KeyState.ENABLED)
        fresh = provider.wrap(ref, data_key, context)
        assert bytes(provider.unwrap(fresh.key, fresh.encrypted, context)) == data_key

    def test_lifecycle_verify_below_minimum_is_key_disabled(
        self, provider: KeyProvider, key_name: str
    ) -> None:
        """Verifying with a version below the minimum decryption version raises KeyDisabled."""
        if not self.signing_keys_rotate:
            pytest.skip("signing keys do not rotate on this backend (signing_keys_rotate)")
        ref, _ = self._versioned_key(
            provider, KeyPurpose.SIGN, key_name, Capability.MIN_DECRYPTION_VERSION
        )
        old = provider.sign(ref, MESSAGE)
        rotated = provider.rotate_key(ref)
        pinned = ref.with_version(old.key_version)
        provider.set_min_decryption_version(ref, rotated.current_version)
        with pytest.raises(KeyDisabled) as refused:
            provider.verify(pinned, MESSAGE, old.value)
        self._assert_names(refused.value, ref, old.key_version)
        provider.set_min_decryption_version(ref, old.key_version)
        assert provider.verify(pinned, MESSAGE, old.value) is True

    def _lifecycle_use(
        self, provider: KeyProvider, operation: str, name: str
    ) -> tuple[KeyRef, KeyMetadata, Callable[[KeyRef], object]]:
        """A versioned key for ``operation`` (wrap, sign or mac) and a call of it on a pin."""
        if operation == "mac":
            self.require(provider, Capability.MAC, Capability.LIFECYCLE)
            self.require(provider, Capability.ROTATE, Capability.VERSIONS)
            metadata = self.create_test_key(provider, self.mac_key_type, name)
            return self.ref_of(metadata), metadata, lambda pin: provider.mac(pin, MESSAGE)
        if operation == "sign":
            if not self.signing_keys_rotate:
                pytest.skip("signing keys do not rotate on this backend (signing_keys_rotate)")
            ref, metadata = self._versioned_key(provider, KeyPurpose.SIGN, name)
            return ref, metadata, lambda pin: provider.sign(pin, MESSAGE)
        ref, metadata = self._versioned_key(provider, KeyPurpose.WRAP, name)
        context = self._context(name)
        return ref, metadata, lambda pin: provider.wrap(pin, os.urandom(32), context)

    @pytest.mark.parametrize("operation", ["wrap", "sign", "mac"])
    def test_lifecycle_pinned_unusable_version_is_refused(
        self, provider: KeyProvider, operation: str, key_name: str
    ) -> None:
        """wrap, sign and mac pinned to a disabled (or below-minimum) version raise KeyDisabled.

        Enabled again (the minimum lowered again), the version works.
        """
        ref, metadata, use = self._lifecycle_use(provider, operation, key_name)
        old = metadata.current_version
        pinned = ref.with_version(old)
        provider.rotate_key(ref)
        use(pinned)  # a pinned old version may be used while it is enabled
        provider.set_version_state(pinned, KeyState.DISABLED)
        with pytest.raises(KeyDisabled) as refused:
            use(pinned)
        self._assert_names(refused.value, ref, old)
        provider.set_version_state(pinned, KeyState.ENABLED)
        use(pinned)
        if Capability.MIN_DECRYPTION_VERSION not in provider.capabilities:
            return
        current = provider.rotate_key(ref).current_version
        provider.set_min_decryption_version(ref, current)
        with pytest.raises(KeyDisabled) as below:
            use(pinned)
        self._assert_names(below.value, ref, old)
        provider.set_min_decryption_version(ref, old)
        use(pinned)

    def test_lifecycle_destroyed_signing_version_is_not_used(
        self, provider: KeyProvider, key_name: str
    ) -> None:
        """A destroyed signing version verifies nothing; public_key and sign raise KeyDisabled."""
        if not self.signing_keys_rotate:
            pytest.skip("signing keys do not rotate on this backend (signing_keys_rotate)")
        ref, _ = self._versioned_key(
            provider, KeyPurpose.SIGN, key_name, Capability.DESTROY_VERSION
        )
        old = provider.sign(ref, MESSAGE)
        rotated = provider.rotate_key(ref)
        pinned = ref.with_version(old.key_version)
        provider.set_version_state(pinned, KeyState.DISABLED)
        provider.destroy_version(pinned, confirm=True)
        try:
            verified = provider.verify(pinned, MESSAGE, old.value)
        except KeyDisabled:
            pass
        else:
            assert verified is False, "a destroyed version still verifies its signature"
        if Capability.PUBLIC_KEY in provider.capabilities:
            with pytest.raises(KeyDisabled):
                provider.public_key(pinned)
        with pytest.raises(KeyDisabled):
            provider.sign(pinned, MESSAGE)
        new = provider.sign(ref, MESSAGE)  # the current version is unaffected
        assert new.key_version == rotated.current_version
        assert provider.verify(ref.with_version(new.key_version), MESSAGE, new.value) is True

    def test_usage_counters_count_wraps(self, provider: KeyProvider, key_name: str) -> None:
        """If a provider reports usage counters, a wrap adds to the current version's."""
        self.require(provider, Capability.DESCRIBE)
        metadata = self._wrapping_key(
            provider, self.cheapest_key_type(provider, KeyPurpose.WRAP), key_name
        )
        before = metadata.current.messages
        if before is None:
            pytest.skip(f"provider {provider.scheme!r} does not count key usage")
        ref = self.ref_of(metadata)
        for _ in range(3):
            provider.wrap(ref, os.urandom(32), self._context(key_name))
        after = provider.describe_key(ref).current.messages
        assert after is not None
        assert after >= before + 3

    # -- unknown keys and bad references ---------------------------------------

    @staticmethod
    def _call(provider: KeyProvider, operation: str, ref: KeyRef) -> object:
        if operation == "describe_key":
            return provider.describe_key(ref)
        if operation == "rotate_key":
            return provider.rotate_key(ref)
        if operation == "public_key":
            return provider.public_key(ref)
        if operation == "sign":
            return provider.sign(ref, MESSAGE)
        if operation == "verify":
            return provider.verify(ref, MESSAGE, b"\x00" * 64)
        if operation == "mac":
            return provider.mac(ref, MESSAGE)
        return provider.wrap(ref, os.urandom(32), EncryptionContext())

    @pytest.mark.parametrize("operation", list(KEYED_OPERATIONS))
    def test_unknown_key_is_key_not_found(
        self, provider: KeyProvider, operation: str, key_name: str
    ) -> None:
        """Operations on a key that does not exist raise KeyNotFound."""
        self.require(provider, KEYED_OPERATIONS[operation])
        with pytest.raises(KeyNotFound):
            self._call(provider, operation, self.missing_key_ref(provider, key_name))

    @pytest.mark.parametrize("key_type", list(KeyType), ids=_type_id)
    def test_unknown_version_is_key_not_found(
        self, provider: KeyProvider, key_type: KeyType, key_name: str
    ) -> None:
        """Pinning a version the key does not have raises KeyNotFound."""
        metadata = self.create_test_key(provider, key_type, key_name)
        pinned = self.ref_of(metadata).with_version(self.missing_version)
        if key_type.purpose is KeyPurpose.WRAP:
            operations = ["describe_key", "wrap"]
        else:
            operations = ["describe_key", "public_key", "sign", "verify"]
        checked = [op for op in operations if KEYED_OPERATIONS[op] in provider.capabilities]
        if not checked:
            pytest.skip(f"provider {provider.scheme!r} offers no operation to check this with")
        for operation in checked:
            with pytest.raises(KeyNotFound):
                self._call(provider, operation, pinned)

    def test_other_scheme_is_refused(self, provider: KeyProvider, key_name: str) -> None:
        """A reference with another scheme raises ConfigError or KeyNotFound."""
        scheme = "contract-other" if provider.scheme != "contract-other" else "contract-else"
        ref = KeyRef(scheme=scheme, key_id=key_name)
        checked = [op for op, cap in KEYED_OPERATIONS.items() if cap in provider.capabilities]
        if not checked:
            pytest.skip(f"provider {provider.scheme!r} offers no operation that takes a key")
        for operation in checked:
            with pytest.raises((ConfigError, KeyNotFound)):
                self._call(provider, operation, ref)

    # -- concurrency -----------------------------------------------------------

    def test_concurrent_sign_and_verify(self, provider: KeyProvider, key_name: str) -> None:
        """Signing and verifying from many threads at once gives correct results."""
        key_type = self.cheapest_key_type(provider, KeyPurpose.SIGN)
        metadata = self._signing_key(provider, key_type, key_name)
        ref = self.ref_of(metadata)

        def task(thread: int, operation: int) -> tuple[bool, bool, str]:
            message = f"{thread}:{operation}".encode()
            signature = provider.sign(ref, message)
            good = provider.verify(ref, message, signature.value)
            bad = provider.verify(ref, message + b"!", signature.value)
            return good, bad, signature.key_version

        results = run_in_threads(
            task, threads=self.concurrency_threads, operations=self.concurrency_operations
        )
        assert len(results) == self.concurrency_threads * self.concurrency_operations
        assert [r for r in results if r != (True, False, metadata.current_version)] == []

    def test_concurrent_wrap_and_unwrap(self, provider: KeyProvider, key_name: str) -> None:
        """Wrapping and unwrapping from many threads at once gives correct results."""
        key_type = self.cheapest_key_type(provider, KeyPurpose.WRAP)
        ref = self.ref_of(self._wrapping_key(provider, key_type, key_name))

        def task(thread: int, operation: int) -> bool:
            data_key = os.urandom(32)
            context = EncryptionContext({"thread": str(thread), "operation": str(operation)})
            wrapped = provider.wrap(ref, data_key, context)
            return bytes(provider.unwrap(ref, wrapped.encrypted, context)) == data_key

        results = run_in_threads(
            task, threads=self.concurrency_threads, operations=self.concurrency_operations
        )
        assert results == [True] * (self.concurrency_threads * self.concurrency_operations)

    def test_concurrent_create(self, provider: KeyProvider, key_name: str) -> None:
        """Creating distinct keys from many threads at once creates every one of them."""
        key_type = self.cheapest_key_type(provider)

        def task(thread: int, operation: int) -> str:
            name = f"{key_name}-{thread}-{operation}"
            return self.create_test_key(provider, key_type, name).uri

        uris = run_in_threads(
            task, threads=self.concurrency_threads, operations=self.concurrency_keys_per_thread
        )
        assert len(set(uris)) == self.concurrency_threads * self.concurrency_keys_per_thread
        if Capability.LIST in provider.capabilities:
            assert set(uris) <= {m.uri for m in provider.list_keys()}
        if Capability.DESCRIBE in provider.capabilities:
            for uri in uris:
                assert provider.describe_key(KeyRef.parse(uri)).uri == uri

    # -- async: AsyncKeyStack drives every provider (through its thread pool, or
    # -- awaiting the provider's native coroutines when it offers them) ---------

    async_calls: int = 8
    """How many encrypts the async tests run at once on one event loop."""

    def test_async_concurrent_round_trips_to_two_keys(
        self, provider: KeyProvider, key_name: str
    ) -> None:
        """Encrypts to two keys at once from one event loop; each key alone decrypts each."""
        key_type = self.cheapest_key_type(provider, KeyPurpose.WRAP)
        refs = [
            self.ref_of(self._wrapping_key(provider, key_type, f"{key_name}-{n}")) for n in (1, 2)
        ]
        payloads = [os.urandom(n * 37) for n in range(self.async_calls)]

        async def main() -> None:
            stack = KeyStack(
                config=StackConfig(default_provider=provider.scheme),
                providers={provider.scheme: provider},
            )
            async with AsyncKeyStack(stack, own=True) as aio:
                messages = await asyncio.gather(
                    *(
                        aio.encrypt(p, keys=refs, context={"n": str(i)})
                        for i, p in enumerate(payloads)
                    )
                )
                for ref in refs:
                    opened = await asyncio.gather(*(aio.decrypt(m, keys=[ref]) for m in messages))
                    assert opened == payloads

        asyncio.run(main())

    def test_async_sign_and_verify(self, provider: KeyProvider, key_name: str) -> None:
        """Signatures made concurrently through the async stack verify, only for their message."""
        key_type = self.cheapest_key_type(provider, KeyPurpose.SIGN)
        ref = self.ref_of(self._signing_key(provider, key_type, key_name))

        async def main() -> None:
            stack = KeyStack(
                config=StackConfig(default_provider=provider.scheme),
                providers={provider.scheme: provider},
            )
            async with AsyncKeyStack(stack, own=True) as aio:
                messages = [f"message {i}".encode() for i in range(self.async_calls)]
                signatures = await asyncio.gather(*(aio.sign(m, key=ref) for m in messages))
                checks = await asyncio.gather(
                    *(aio.verify(m, s, key=ref) for m, s in zip(messages, signatures, strict=True))
                )
                assert checks == [True] * len(messages)
                assert not await aio.verify(b"another message", signatures[0], key=ref)

        asyncio.run(main())

    def _native(self, provider: KeyProvider) -> Any:
        if not native_async(provider):
            pytest.skip(
                f"provider {provider.scheme!r} offers no native coroutines: "
                "the thread-pool async tests cover it"
            )
        return provider

    @staticmethod
    def _run_native(provider: Any, main: Callable[[], Awaitable[None]]) -> None:
        """Run ``main`` on a fresh event loop, then release what the provider opened on it."""

        async def outer() -> None:
            try:
                await main()
            finally:
                await provider.aclose()

        asyncio.run(outer())

    def test_native_wrap_and_unwrap_match_the_blocking_ones(
        self, provider: KeyProvider, key_name: str
    ) -> None:
        """``awrap``/``aunwrap`` interoperate with ``wrap``/``unwrap`` and keep their errors."""
        native = self._native(provider)
        key_type = self.cheapest_key_type(provider, KeyPurpose.WRAP)
        ref = self.ref_of(self._wrapping_key(provider, key_type, key_name))
        context, data_key = self._context(key_name), os.urandom(32)

        async def main() -> None:
            wrapped = await native.awrap(ref, data_key, context)
            assert isinstance(wrapped, WrappedKey)
            assert wrapped.key.with_version(None) == ref
            assert bytes(provider.unwrap(wrapped.key, wrapped.encrypted, context)) == data_key
            blocking = provider.wrap(ref, data_key, context)
            opened = await native.aunwrap(blocking.key, blocking.encrypted, context)
            assert isinstance(opened, bytearray)
            assert bytes(opened) == data_key
            if self._binds_context():
                other = EncryptionContext({**context, "purpose": "another"})
                with pytest.raises(DecryptionError):
                    await native.aunwrap(wrapped.key, wrapped.encrypted, other)
            tampered = attrs.evolve(
                wrapped.encrypted,
                ciphertext=bytes([wrapped.encrypted.ciphertext[0] ^ 1])
                + wrapped.encrypted.ciphertext[1:],
            )
            with pytest.raises(DecryptionError):
                await native.aunwrap(wrapped.key, tampered, context)

        self._run_native(native, main)

    def test_native_sign_verify_and_public_key_match_the_blocking_ones(
        self, provider: KeyProvider, key_name: str
    ) -> None:
        """``asign``/``averify``/``apublic_key`` agree with their blocking twins."""
        native = self._native(provider)
        key_type = self.cheapest_key_type(provider, KeyPurpose.SIGN)
        ref = self.ref_of(self._signing_key(provider, key_type, key_name))

        async def main() -> None:
            signature = await native.asign(ref, b"native message")
            assert isinstance(signature, Signature)
            pinned = ref.with_version(signature.key_version)
            assert provider.verify(pinned, b"native message", signature.value)
            blocking = provider.sign(ref, b"blocking message")
            assert await native.averify(pinned, b"blocking message", blocking.value)
            assert not await native.averify(pinned, b"another message", blocking.value)
            if Capability.PUBLIC_KEY in provider.capabilities:
                assert await native.apublic_key(pinned) == provider.public_key(pinned)

        self._run_native(native, main)

    def test_a_cancelled_native_call_leaves_the_provider_usable(
        self, provider: KeyProvider, key_name: str
    ) -> None:
        """Cancelling ``aunwrap``/``awrap`` raises CancelledError; the next calls still work."""
        native = self._native(provider)
        key_type = self.cheapest_key_type(provider, KeyPurpose.WRAP)
        ref = self.ref_of(self._wrapping_key(provider, key_type, key_name))
        context, data_key = self._context(key_name), os.urandom(32)
        wrapped = provider.wrap(ref, data_key, context)

        async def main() -> None:
            for _ in range(3):
                calls = [
                    asyncio.ensure_future(native.aunwrap(wrapped.key, wrapped.encrypted, context)),
                    asyncio.ensure_future(native.awrap(ref, data_key, context)),
                ]
                await asyncio.sleep(0)
                for call in calls:
                    call.cancel()
                results = await asyncio.gather(*calls, return_exceptions=True)
                for result in results:  # cancelled, or finished before the cancel arrived
                    assert isinstance(result, (asyncio.CancelledError, bytearray, WrappedKey))
                    if isinstance(result, bytearray):
                        assert bytes(result) == data_key
            opened = await native.aunwrap(wrapped.key, wrapped.encrypted, context)
            assert bytes(opened) == data_key
            assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []

        self._run_native(native, main)

    def test_the_async_stack_awaits_native_coroutines(
        self, provider: KeyProvider, key_name: str
    ) -> None:
        """AsyncKeyStack sends a native provider's wraps, unwraps and signs to its coroutines."""
        self._native(provider)
        key_type = self.cheapest_key_type(provider, KeyPurpose.WRAP)
        refs = [
            self.ref_of(self._wrapping_key(provider, key_type, f"{key_name}-{n}")) for n in (1, 2)
        ]
        counted = _NativeCounter(provider)

        async def main() -> None:
            stack = KeyStack(
                config=StackConfig(default_provider=provider.scheme),
                providers={provider.scheme: counted},
            )
            async with AsyncKeyStack(stack, own=True) as aio:
                message = await aio.encrypt(b"native", keys=refs, context={"k": "v"})
                assert counted.native.get("wrap", 0) + counted.native.get(
                    "generate_data_key", 0
                ) == len(refs)
                assert await aio.decrypt(message, keys=[refs[1]], context={"k": "v"}) == b"native"
                assert counted.native.get("unwrap", 0) >= 1
                assert counted.blocking == {}  # nothing went through a thread

        asyncio.run(main())

    # -- secrets and lifecycle -------------------------------------------------

    def test_no_data_key_in_reprs(self, provider: KeyProvider, key_name: str) -> None:
        """Neither the provider nor what it returns shows a data key it handled."""
        key_type = self.cheapest_key_type(provider, KeyPurpose.WRAP)
        metadata = self._wrapping_key(provider, key_type, key_name)
        ref, context, data_key = self.ref_of(metadata), self._context(key_name), os.urandom(32)
        wrapped = provider.wrap(ref, data_key, context)
        provider.unwrap(ref, wrapped.encrypted, context)
        shown = {
            "repr(provider)": repr(provider),
            "str(provider)": str(provider),
            "repr(wrapped key)": repr(wrapped),
            "repr(metadata)": repr(metadata),
            "repr(owner_of)": repr(provider.owner_of(wrapped.encrypted)),
        }
        # A failed unwrap: under another context, or (where the wrap binds no
        # context) of a tampered wrapped key.
        edk, failing_context = wrapped.encrypted, EncryptionContext({"purpose": "other"})
        if not self._binds_context():
            tampered = bytes([edk.ciphertext[0] ^ 1]) + edk.ciphertext[1:]
            edk, failing_context = attrs.evolve(edk, ciphertext=tampered), context
        with pytest.raises(DecryptionError) as failure:
            provider.unwrap(ref, edk, failing_context)
        shown["decryption error"] = f"{failure.value!r} {failure.value}"
        for where, text in shown.items():
            assert_no_secret(text, [data_key], where)

    def _known_material(
        self, provider: KeyProvider, purpose: KeyPurpose, name: str
    ) -> tuple[KeyMetadata, list[bytes]]:
        """A key of ``purpose``: imported from known material where ``import`` is declared.

        Returns the key and the material's byte forms a leak would show
        (nothing for a created key, whose material the test cannot know).
        """
        key_type = self.cheapest_key_type(provider, purpose)
        if Capability.IMPORT not in provider.capabilities or key_type not in _IMPORTABLE:
            return self.create_test_key(provider, key_type, name), []
        material = fresh_material(key_type)
        try:
            metadata = provider.import_key(name, self.key_spec(key_type), material)
        except UnsupportedOperation:  # declares import, but not of raw or PEM material
            return self.create_test_key(provider, key_type, name), []
        known = [material.data.reveal()]
        if material.format == "pem":
            private = serialization.load_pem_private_key(known[0], password=None)
            known.append(
                private.private_bytes(
                    serialization.Encoding.DER,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
            if key_type is KeyType.ED25519:
                known.append(
                    private.private_bytes(
                        serialization.Encoding.Raw,
                        serialization.PrivateFormat.Raw,
                        serialization.NoEncryption(),
                    )
                )
        return metadata, known

    @staticmethod
    def _error_text(expected: type[AureusError], call: Callable[[], object]) -> str:
        """The full text of the ``expected`` error ``call`` raises (chain and reprs included)."""
        with pytest.raises(expected) as raised:
            call()
        error = raised.value
        return f"{error!r}\n{''.join(traceback.format_exception(error))}"

    def _exercise_lifecycle(
        self, provider: KeyProvider, name: str, secrets: list[bytes], errors: dict[str, str]
    ) -> None:
        """Rotate, disable, set a minimum and destroy a version; record the KeyDisabled."""
        if not {Capability.LIFECYCLE, Capability.ROTATE, Capability.VERSIONS} <= set(
            provider.capabilities
        ):
            return
        ref, _ = self._versioned_key(provider, KeyPurpose.WRAP, name)
        context, data_key = self._context(name), os.urandom(32)
        secrets.append(data_key)
        old = provider.wrap(ref, data_key, context)
        rotated = provider.rotate_key(ref)
        provider.set_version_state(old.key, KeyState.DISABLED)
        errors["KeyDisabled (disabled version)"] = self._error_text(
            KeyDisabled, lambda: provider.unwrap(old.key, old.encrypted, context)
        )
        provider.set_version_state(old.key, KeyState.ENABLED)
        if Capability.MIN_DECRYPTION_VERSION in provider.capabilities:
            provider.set_min_decryption_version(ref, rotated.current_version)
            errors["KeyDisabled (below the minimum)"] = self._error_text(
                KeyDisabled, lambda: provider.unwrap(old.key, old.encrypted, context)
            )
            assert old.key.version is not None
            provider.set_min_decryption_version(ref, old.key.version)
        if Capability.DESTROY_VERSION in provider.capabilities:
            provider.set_version_state(old.key, KeyState.DISABLED)
            provider.destroy_version(old.key, confirm=True)

    def test_no_secret_in_logs_errors_or_reprs(self, provider: KeyProvider, key_name: str) -> None:
        """No data key or known key material shows in logs, error texts or the provider's repr.

        Where ``import`` is declared the keys are imported from known bytes.
        Every log record of every logger, at ``DEBUG``, is captured while the
        test wraps, unwraps, signs, verifies, computes a MAC, imports and runs
        the lifecycle operations; the texts of a forced DecryptionError and
        KeyDisabled and ``repr(provider)`` are searched too, for each secret
        raw, as hex and as base64 (:func:`~aureus_core.testing.leaks.assert_no_secret`).
        """
        self.require(provider, Capability.WRAP)
        secrets: list[bytes] = []
        errors: dict[str, str] = {}
        with capture_every_log_record() as logged:
            metadata, known = self._known_material(provider, KeyPurpose.WRAP, key_name)
            secrets += known
            ref, context, data_key = self.ref_of(metadata), self._context(key_name), os.urandom(32)
            secrets.append(data_key)
            wrapped = provider.wrap(ref, data_key, context)
            assert bytes(provider.unwrap(ref, wrapped.encrypted, context)) == data_key
            # Shown now, while the known key is the last one used, and again at the end.
            shown = {"repr(provider) after the wrap": f"{provider!r} {provider}"}
            edk = wrapped.encrypted
            tampered = attrs.evolve(
                edk, ciphertext=bytes([edk.ciphertext[0] ^ 1]) + edk.ciphertext[1:]
            )
            errors["DecryptionError (tampered)"] = self._error_text(
                DecryptionError, lambda: provider.unwrap(ref, tampered, context)
            )
            if self._binds_context():
                errors["DecryptionError (another context)"] = self._error_text(
                    DecryptionError, lambda: provider.unwrap(ref, edk, EncryptionContext())
                )
            if Capability.GENERATE_DATA_KEY in provider.capabilities:
                generated, _ = provider.generate_data_key(  # type: ignore[attr-defined]
                    ref, 32, context
                )
                secrets.append(bytes(generated))
            if Capability.MAC in provider.capabilities and metadata.key_type is self.mac_key_type:
                provider.mac(ref, MESSAGE)
            if Capability.SIGN in provider.capabilities:
                signing, known = self._known_material(provider, KeyPurpose.SIGN, key_name + "-sign")
                secrets += known
                signature = provider.sign(self.ref_of(signing), MESSAGE)
                assert provider.verify(self.ref_of(signing), MESSAGE, signature.value) is True
                shown["repr(provider) after the signature"] = f"{provider!r} {provider}"
            self._exercise_lifecycle(provider, key_name + "-life", secrets, errors)
        known_leaks: dict[str, str] = {}
        for logger, where, text in logged:
            declared = self._leak_opt_out(logger)
            if declared is not None and find_secret(text, secrets) is not None:
                known_leaks[declared] = self.leaking_loggers[declared].reason
                continue
            assert_no_secret(text, secrets, where)
        for what, text in errors.items():
            assert_no_secret(text, secrets, f"the {what} text")
        shown["repr(provider) at the end"] = f"{provider!r} {provider}"
        for where, text in shown.items():
            assert_no_secret(text, secrets, where)
        if known_leaks:
            pytest.xfail(
                "everything else is clean, but declared leaking loggers showed a secret: "
                + "; ".join(f"{name!r} ({reason})" for name, reason in known_leaks.items())
            )

    def test_close_can_be_called_twice(self, provider: KeyProvider) -> None:
        """close() releases resources and may be called more than once."""
        provider.close()
        provider.close()


class _NativeCounter(ProviderProxy):
    """Counts which provider calls arrive as native coroutines and which as blocking calls."""

    __slots__ = ("blocking", "native")

    def __init__(self, provider: KeyProvider) -> None:
        super().__init__(provider)
        self.native: dict[str, int] = {}
        self.blocking: dict[str, int] = {}

    def _call(
        self,
        method: str,
        key: KeyRef | None,
        function: Callable[..., Any],
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        if method != "owner_of":
            self.blocking[method] = self.blocking.get(method, 0) + 1
        return function(*args, **kwargs)

    async def _acall(
        self,
        method: str,
        key: KeyRef | None,
        function: Callable[..., Awaitable[Any]],
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        self.native[method] = self.native.get(method, 0) + 1
        return await function(*args, **kwargs)
