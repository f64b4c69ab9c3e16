"""The provider contract notices broken providers: each defect fails exactly its tests.

Every case runs the whole KeyProviderContract in-process (pytester) against
the reference provider of test_reference_provider.py with one thing broken.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

REFERENCE_SOURCE = Path(__file__).with_name("test_reference_provider.py").read_text()

HEADER = """
import os

import pytest
from reference_impl import ReferenceProvider

from aureus_core.errors import UnsupportedOperation
from aureus_core.interfaces import Capability
from aureus_core.testing import KeyProviderContract


class TestBroken(KeyProviderContract):
    @pytest.fixture
    def provider(self):
        return Broken()
"""


class Outcomes:
    """Test names (the part after the last ``::``) by outcome, from one inline run."""

    def __init__(self, pytester: pytest.Pytester, broken: str) -> None:
        pytester.makepyfile(reference_impl=REFERENCE_SOURCE)
        pytester.makepyfile(test_subject=HEADER + textwrap.dedent(broken))
        self.recorder = pytester.inline_run("-p", "no:cacheprovider")
        passed, skipped, failed = self.recorder.listoutcomes()
        self.passed = {r.nodeid.rpartition("::")[2] for r in passed}
        self.skipped = {r.nodeid.rpartition("::")[2] for r in skipped}
        self.failed = {r.nodeid.rpartition("::")[2] for r in failed}

    def message(self, name: str) -> str:
        """The failure report of one test."""
        for report in self.recorder.getfailures():
            if report.nodeid.endswith(f"::{name}"):
                return str(report.longrepr)
        raise AssertionError(f"{name} did not fail")


def test_the_unbroken_reference_provider_passes(pytester: pytest.Pytester):
    outcomes = Outcomes(pytester, "class Broken(ReferenceProvider):\n    pass\n")
    assert outcomes.failed == set()
    assert len(outcomes.passed) >= 35
    assert "test_sign_verify_round_trip[ed25519]" in outcomes.passed
    assert "test_sign_verify_round_trip[rsa-2048]" in outcomes.skipped


@pytest.mark.parametrize(
    ("capability", "method", "error"),
    [
        ("ROTATE", "rotate_key", "AttributeError"),
        ("LIST", "list_keys", "NotImplementedError"),
        ("DESCRIBE", "describe_key", "KeyError"),
    ],
)
def test_undeclared_capability_raising_another_error_fails(
    pytester: pytest.Pytester, capability: str, method: str, error: str
):
    outcomes = Outcomes(
        pytester,
        f"""
        class Broken(ReferenceProvider):
            capabilities = ReferenceProvider.capabilities - {{Capability.{capability}}}

            def {method}(self, *args, **kwargs):
                raise {error}("{method}")
        """,
    )
    name = f"test_undeclared_capability_is_unsupported_operation[{capability.lower()}]"
    assert outcomes.failed == {name}
    assert f"{method} raised {error} although the provider does not declare" in (
        outcomes.message(name)
    )


def test_undeclared_capability_that_works_anyway_fails(pytester: pytest.Pytester):
    outcomes = Outcomes(
        pytester,
        """
        class Broken(ReferenceProvider):
            capabilities = ReferenceProvider.capabilities - {Capability.LIST}
        """,
    )
    name = "test_undeclared_capability_is_unsupported_operation[list]"
    assert outcomes.failed == {name}
    assert "list_keys succeeded although the provider does not declare list" in (
        outcomes.message(name)
    )
    assert "test_list_includes_created_key" in outcomes.skipped


def test_unsupported_operation_must_name_the_scheme(pytester: pytest.Pytester):
    outcomes = Outcomes(
        pytester,
        """
        class Broken(ReferenceProvider):
            capabilities = ReferenceProvider.capabilities - {Capability.LIST}

            def list_keys(self):
                raise UnsupportedOperation("some-provider", "list_keys")
        """,
    )
    name = "test_undeclared_capability_is_unsupported_operation[list]"
    assert outcomes.failed == {name}
    assert "does not name the provider scheme 'reference'" in outcomes.message(name)


def test_verify_that_accepts_any_message_fails(pytester: pytest.Pytester):
    outcomes = Outcomes(
        pytester,
        """
        class Broken(ReferenceProvider):
            def verify(self, key, message, signature):
                super().verify(key, message, signature)  # malformed ones still raise
                return True
        """,
    )
    assert outcomes.failed == {
        "test_verify_wrong_message_is_false[ed25519]",
        "test_verify_tampered_signature_is_not_true[ed25519]",
        "test_verify_with_another_key_is_false[ed25519]",
        "test_a_version_does_not_verify_another_versions_signature[ed25519]",
        "test_sign_pinned_to_an_old_version_signs_with_it[ed25519]",
        "test_concurrent_sign_and_verify",
        "test_async_sign_and_verify",
    }


def test_verify_that_returns_false_for_malformed_signatures_fails(pytester: pytest.Pytester):
    outcomes = Outcomes(
        pytester,
        """
        class Broken(ReferenceProvider):
            def verify(self, key, message, signature):
                if len(signature) != 64:
                    return False
                return super().verify(key, message, signature)
        """,
    )
    assert outcomes.failed == {
        "test_verify_malformed_signature_is_signature_error[ed25519-empty]",
        "test_verify_malformed_signature_is_signature_error[ed25519-three-zeros]",
    }


def test_wrap_that_ignores_the_context_fails(pytester: pytest.Pytester):
    outcomes = Outcomes(
        pytester,
        """
        from aureus_core.context import EncryptionContext

        class Broken(ReferenceProvider):
            def wrap(self, key, data_key, context):
                return super().wrap(key, data_key, EncryptionContext())

            def unwrap(self, key, encrypted, context):
                return super().unwrap(key, encrypted, EncryptionContext())
        """,
    )
    assert outcomes.failed == {
        "test_unwrap_with_other_context_is_decryption_error[aes-256]",
        "test_no_data_key_in_reprs",
        "test_no_secret_in_logs_errors_or_reprs",
    }


def test_owner_of_that_claims_foreign_keys_fails(pytester: pytest.Pytester):
    outcomes = Outcomes(
        pytester,
        """
        import attrs
        from reference_impl import PROVIDER_ID

        class Broken(ReferenceProvider):
            def owner_of(self, encrypted):
                return super().owner_of(attrs.evolve(encrypted, provider_id=PROVIDER_ID))
        """,
    )
    assert outcomes.failed == {"test_foreign_encrypted_data_key_is_not_ours"}


def test_rotation_that_loses_old_versions_fails(pytester: pytest.Pytester):
    outcomes = Outcomes(
        pytester,
        """
        from reference_impl import _new_version

        class Broken(ReferenceProvider):
            def rotate_key(self, key):
                metadata = super().rotate_key(key)
                versions = self._keys[key.key_id][1]
                versions[:-1] = [_new_version(metadata.key_type) for _ in versions[:-1]]
                return metadata
        """,
    )
    assert outcomes.failed == {
        "test_old_signatures_verify_after_rotation[ed25519]",
        "test_old_wraps_unwrap_after_rotation[aes-256]",
    }


def test_create_that_overwrites_fails_unless_names_are_not_identities(
    pytester: pytest.Pytester,
):
    broken = textwrap.dedent(
        """
        class Broken(ReferenceProvider):
            def create_key(self, name, spec):
                self._keys.pop(name, None)
                return super().create_key(name, spec)
        """
    )
    assert Outcomes(pytester, broken).failed == {"test_create_twice_is_key_exists"}
    opted_out = Outcomes(pytester, broken + "\nTestBroken.names_are_chosen_by_caller = False\n")
    assert opted_out.failed == set()
    assert "test_create_twice_is_key_exists" in opted_out.skipped


def test_unknown_version_that_falls_back_to_current_fails(pytester: pytest.Pytester):
    outcomes = Outcomes(
        pytester,
        """
        class Broken(ReferenceProvider):
            def _material(self, ref):
                if ref.version == "999999":
                    ref = ref.with_version(None)
                return super()._material(ref)
        """,
    )
    assert outcomes.failed == {
        "test_unknown_version_is_key_not_found[aes-256]",
        "test_unknown_version_is_key_not_found[ed25519]",
    }


def test_leaky_repr_fails_without_showing_the_secret(pytester: pytest.Pytester):
    outcomes = Outcomes(
        pytester,
        """
        class Broken(ReferenceProvider):
            last = b""

            def wrap(self, key, data_key, context):
                type(self).last = bytes(data_key)
                return super().wrap(key, data_key, context)

            def __repr__(self):
                return f"Broken(last={self.last.hex()})"
        """,
    )
    assert outcomes.failed == {
        "test_no_data_key_in_reprs",
        "test_no_secret_in_logs_errors_or_reprs",
    }
    message = outcomes.message("test_no_data_key_in_reprs")
    assert "repr(provider) shows a secret value (as hex)" in message
    assert "secrets = [" not in message


def test_missing_provider_fixture_is_reported(pytester: pytest.Pytester):
    pytester.makepyfile(
        """
        from aureus_core.testing import KeyProviderContract

        class TestForgotten(KeyProviderContract):
            pass
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-k", "declarations")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*TestForgotten must override the 'provider' fixture*"])


GENERATING = """
        from aureus_core.interfaces import Capability

        class Generating(ReferenceProvider):
            capabilities = ReferenceProvider.capabilities | {Capability.GENERATE_DATA_KEY}

            def generate_data_key(self, key, length, context):
                data_key = bytearray(os.urandom(length))
                return data_key, self.wrap(key, bytes(data_key), context)
"""


def test_a_correct_generate_data_key_passes(pytester: pytest.Pytester):
    broken = GENERATING + "\n        class Broken(Generating):\n            pass\n"
    outcomes = Outcomes(pytester, broken)
    assert outcomes.failed == set()
    assert "test_generate_data_key_round_trip[aes-256]" in outcomes.passed


def test_generate_data_key_returning_a_fixed_key_fails(pytester: pytest.Pytester):
    outcomes = Outcomes(
        pytester,
        GENERATING
        + """
        class Broken(Generating):
            def generate_data_key(self, key, length, context):
                data_key = bytearray(b"k" * length)
                return data_key, self.wrap(key, bytes(data_key), context)
        """,
    )
    assert outcomes.failed == {"test_generate_data_key_round_trip[aes-256]"}
    assert "two generated data keys are equal" in outcomes.message(
        "test_generate_data_key_round_trip[aes-256]"
    )


def test_declared_generate_data_key_without_the_method_fails(pytester: pytest.Pytester):
    outcomes = Outcomes(
        pytester,
        """
        class Broken(ReferenceProvider):
            capabilities = ReferenceProvider.capabilities | {Capability.GENERATE_DATA_KEY}
        """,
    )
    assert outcomes.failed == {
        "test_generate_data_key_round_trip[aes-256]",
        "test_async_concurrent_round_trips_to_two_keys",  # the stack's encrypt needs it too
        "test_no_secret_in_logs_errors_or_reprs",  # it generates a data key too
    }
    assert "has no generate_data_key method" in outcomes.message(
        "test_generate_data_key_round_trip[aes-256]"
    )


def test_wrapped_keys_without_a_version_fail_unless_the_knob_says_so(
    pytester: pytest.Pytester,
):
    """A provider whose wraps name no version fails, with the knob to set in the message."""
    outcomes = Outcomes(
        pytester,
        """
        class Broken(ReferenceProvider):
            def wrap(self, key, data_key, context):
                wrapped = super().wrap(key, data_key, context)
                unpinned = wrapped.key.with_version(None)
                return type(wrapped)(key=unpinned, encrypted=wrapped.encrypted)
        """,
    )
    name = "test_wrap_unwrap_round_trip[aes-256]"
    assert name in outcomes.failed
    assert "set wrapped_keys_name_a_version = False" in outcomes.message(name)


def test_the_no_version_knob_checks_the_wraps_really_name_none(pytester: pytest.Pytester):
    """With wrapped_keys_name_a_version = False, a pinned wrapped key fails the kit."""
    outcomes = Outcomes(
        pytester,
        """
        class Broken(ReferenceProvider):
            pass

        TestBroken.wrapped_keys_name_a_version = False
        """,
    )
    name = "test_wrap_unwrap_round_trip[aes-256]"
    assert name in outcomes.failed
    assert "wrapped_keys_name_a_version is False, but the wrapped key names version" in (
        outcomes.message(name)
    )


def test_signing_keys_that_do_not_rotate_need_the_knob(pytester: pytest.Pytester):
    """With signing_keys_rotate = False, rotate_key on a signing key must be refused."""
    outcomes = Outcomes(
        pytester,
        """
        class Broken(ReferenceProvider):
            pass

        TestBroken.signing_keys_rotate = False
        """,
    )
    assert "test_rotate_adds_a_current_version[ed25519]" in outcomes.failed
    assert "test_rotate_adds_a_current_version[aes-256]" in outcomes.passed
    refusing = Outcomes(
        pytester,
        """
        class Broken(ReferenceProvider):
            def rotate_key(self, key):
                if self.describe_key(key).key_type.value != "aes-256":
                    raise UnsupportedOperation("reference", "rotate_key", "wrapping keys only")
                return super().rotate_key(key)

        TestBroken.signing_keys_rotate = False
        """,
    )
    assert "test_rotate_adds_a_current_version[ed25519]" in refusing.passed


NATIVE = """
class Native(ReferenceProvider):
    async def awrap(self, key, data_key, context):
        return self.wrap(key, data_key, context)

    async def aunwrap(self, key, encrypted, context):
        return self.unwrap(key, encrypted, context)

    async def agenerate_data_key(self, key, length, context):
        return self.generate_data_key(key, length, context)

    async def asign(self, key, message):
        return self.sign(key, message)

    async def averify(self, key, message, signature):
        return self.verify(key, message, signature)

    async def apublic_key(self, key):
        return self.public_key(key)

    async def aclose(self):
        pass
"""
NATIVE_TESTS = {
    "test_native_wrap_and_unwrap_match_the_blocking_ones",
    "test_native_sign_verify_and_public_key_match_the_blocking_ones",
    "test_a_cancelled_native_call_leaves_the_provider_usable",
    "test_the_async_stack_awaits_native_coroutines",
}


def test_a_native_provider_runs_the_native_checks_and_passes(pytester: pytest.Pytester):
    outcomes = Outcomes(pytester, NATIVE + "\nclass Broken(Native):\n    pass\n")
    assert outcomes.failed == set()
    assert outcomes.passed >= NATIVE_TESTS


def test_a_native_unwrap_that_ignores_tampering_fails(pytester: pytest.Pytester):
    outcomes = Outcomes(
        pytester,
        NATIVE
        + """
class Broken(Native):
    async def aunwrap(self, key, encrypted, context):
        try:
            return self.unwrap(key, encrypted, context)
        except Exception:
            return bytearray(32)  # a made-up data key instead of the error
""",
    )
    assert outcomes.failed == {"test_native_wrap_and_unwrap_match_the_blocking_ones"}
    assert "DecryptionError" in outcomes.message(
        "test_native_wrap_and_unwrap_match_the_blocking_ones"
    )


def test_a_native_sign_that_signs_something_else_fails(pytester: pytest.Pytester):
    outcomes = Outcomes(
        pytester,
        NATIVE
        + """
class Broken(Native):
    async def asign(self, key, message):
        return self.sign(key, message + b"!")
""",
    )
    # the async stack's signatures come from asign too, so its async test fails as well
    assert outcomes.failed == {
        "test_native_sign_verify_and_public_key_match_the_blocking_ones",
        "test_async_sign_and_verify",
    }
