"""The credential-source contract: every test a :class:`CredentialSource` must pass.

Subclass :class:`CredentialSourceContract` and override the
``credential_source`` fixture.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from ..interfaces import Credentials, CredentialSource
from ..sensitive import Secret
from .concurrency import run_in_threads
from .leaks import MIN_CHECKABLE_LENGTH, assert_no_secret, is_checkable


class CredentialSourceContract:
    """Conformance tests for a credential source.

    Override the ``credential_source`` fixture to return a source that can
    hand out credentials in the test environment.  Secret values shorter
    than 8 characters are not searched for in reprs (they would match by
    chance); give the fixture longer ones.  ``concurrency_threads`` and
    ``concurrency_operations`` size the concurrency test.
    """

    concurrency_threads: int = 8
    concurrency_operations: int = 10

    @pytest.fixture
    def credential_source(self) -> CredentialSource:
        """The credential source under test: override this fixture in your subclass."""
        pytest.fail(
            f"{type(self).__name__} must override the 'credential_source' fixture to return "
            "the CredentialSource under test",
            pytrace=False,
        )

    @staticmethod
    def revealed(credentials: Credentials) -> list[str]:
        """Every secret value in ``credentials``, revealed."""
        return [str(value.reveal()) for value in credentials.values.values()]

    def _check(self, credentials: object) -> Credentials:
        assert isinstance(credentials, Credentials), (
            f"get_credentials returned {type(credentials).__name__}, not Credentials"
        )
        assert isinstance(credentials.kind, str)
        assert credentials.kind
        assert isinstance(credentials.values, Mapping)
        for name, value in credentials.values.items():
            assert isinstance(name, str)
            assert name
            assert isinstance(value, Secret), f"credential value {name!r} is not wrapped in Secret"
        if credentials.expires_at is not None:
            assert credentials.expires_at.utcoffset() is not None, "expires_at must be tz-aware"
        return credentials

    def test_satisfies_the_protocol(self, credential_source: CredentialSource) -> None:
        """The source has the attributes and methods of CredentialSource."""
        assert isinstance(credential_source, CredentialSource)

    def test_name_is_a_non_empty_string(self, credential_source: CredentialSource) -> None:
        """``name`` identifies the source in error messages."""
        assert isinstance(credential_source.name, str)
        assert credential_source.name.strip()

    def test_get_credentials_returns_credentials(self, credential_source: CredentialSource) -> None:
        """get_credentials returns Credentials whose values are all Secret."""
        self._check(credential_source.get_credentials())

    def test_no_secret_in_reprs(self, credential_source: CredentialSource) -> None:
        """No secret value shows in the repr or str of the credentials or the source."""
        credentials = self._check(credential_source.get_credentials())
        secrets = [s for s in self.revealed(credentials) if is_checkable(s)]
        if not secrets:
            pytest.skip(
                f"the credentials hold no secret value of at least {MIN_CHECKABLE_LENGTH} "
                "characters to search for"
            )
        shown = {
            "repr(credentials)": repr(credentials),
            "str(credentials)": str(credentials),
            "repr(credentials.values)": repr(credentials.values),
            "repr(source)": repr(credential_source),
            "str(source)": str(credential_source),
        }
        for where, text in shown.items():
            assert_no_secret(text, secrets, where)

    def test_repeated_calls_agree(self, credential_source: CredentialSource) -> None:
        """Calling again gives credentials of the same kind with the same value names."""
        first = self._check(credential_source.get_credentials())
        for _ in range(3):
            again = self._check(credential_source.get_credentials())
            assert again.kind == first.kind
            assert set(again.values) == set(first.values)

    def test_concurrent_calls(self, credential_source: CredentialSource) -> None:
        """Many threads can ask for credentials at once."""
        expected = self._check(credential_source.get_credentials())

        def task(thread: int, operation: int) -> tuple[str, frozenset[str]]:
            credentials = self._check(credential_source.get_credentials())
            return credentials.kind, frozenset(credentials.values)

        results = run_in_threads(
            task, threads=self.concurrency_threads, operations=self.concurrency_operations
        )
        assert set(results) == {(expected.kind, frozenset(expected.values))}
        assert len(results) == self.concurrency_threads * self.concurrency_operations
