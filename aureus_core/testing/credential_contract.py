"""The credential-source contract: every test a :class:`CredentialSource` must pass.

Subclass :class:`CredentialSourceContract` and override the
``credential_source`` fixture, and ``held_secrets`` (the secrets the source
holds to get its credentials) unless it holds none beyond what it returns.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator, Mapping, Sequence

import pytest

from ..errors import CredentialError
from ..interfaces import Credentials, CredentialSource
from ..sensitive import Secret
from .concurrency import run_in_threads
from .leaks import MIN_CHECKABLE_LENGTH, assert_no_secret, find_secret, is_checkable

HeldSecret = str | bytes


class _Records(logging.Handler):
    """Every log record of every logger, formatted as a handler would write it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        self.texts: list[tuple[str, str, str]] = []
        """(logger, where, formatted text) of each record; where names its logger and level."""

    def emit(self, record: logging.LogRecord) -> None:
        where = f"a {record.levelname} record of logger {record.name!r}"
        self.texts.append((record.name, where, self.format(record)))


class _DebugLogs:
    """Capture every log record at DEBUG while the block runs."""

    def __init__(self) -> None:
        self.handler = _Records()

    def __enter__(self) -> list[tuple[str, str, str]]:
        root = logging.getLogger()
        self._level = root.level
        root.addHandler(self.handler)
        root.setLevel(logging.DEBUG)
        return self.handler.texts

    def __exit__(self, *exc: object) -> None:
        root = logging.getLogger()
        root.removeHandler(self.handler)
        root.setLevel(self._level)


def error_texts(error: BaseException) -> Iterator[tuple[str, str]]:
    """(where, text) of an error and each error in its chain: str, repr, traceback."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        name = type(current).__name__
        yield f"str({name})", str(current)
        yield f"repr({name})", repr(current)
        current = current.__cause__ or current.__context__
    yield "the formatted traceback", "".join(traceback.format_exception(error))


class CredentialSourceContract:
    """Conformance tests for a credential source.

    Override the ``credential_source`` fixture to return a source that can
    hand out credentials in the test environment, and ``held_secrets`` to
    return the secrets it holds to get them (a client secret, a PIN, a
    private key, a token it exchanges); a source that holds nothing beyond
    the values it returns sets ``holds_only_what_it_returns = True`` instead.
    Every secret, held or returned, is searched for in reprs, in log records
    (DEBUG and up) and in error messages, so each must be at least 8
    characters long: a shorter one fails the test (it would match by chance).

    Optional fixture ``failing_credential_source``: a source holding the
    same secrets whose ``get_credentials`` fails (a refused secret, an
    unreachable endpoint); without it the error test is skipped.

    ``concurrency_threads`` and ``concurrency_operations`` size the
    concurrency test.
    """

    holds_only_what_it_returns: bool = False
    """``True``: the source keeps no secret but the credentials it returns."""
    known_log_leaks: Mapping[str, str] = {}
    """Logger name to the reason its records are known to show a secret (a library's
    DEBUG log the plugin does not yet redact): a leak there makes the log tests an
    expected failure (xfail) with that reason instead of a failure; a leak anywhere else
    still fails."""
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

    @pytest.fixture
    def held_secrets(self) -> Sequence[HeldSecret] | None:
        """The secrets the source holds to get its credentials (client secret, PIN, key)."""
        return None

    @pytest.fixture
    def failing_credential_source(self) -> CredentialSource | None:
        """A source holding the same secrets whose get_credentials raises CredentialError."""
        return None

    @staticmethod
    def revealed(credentials: Credentials) -> list[str]:
        """Every secret value in ``credentials``, revealed."""
        return [str(value.reveal()) for value in credentials.values.values()]

    def secrets(
        self, credentials: Credentials, held_secrets: Sequence[HeldSecret] | None
    ) -> list[HeldSecret]:
        """The held and returned secrets to search for; fail if any is too short to search."""
        if held_secrets is None and not self.holds_only_what_it_returns:
            pytest.fail(
                f"{type(self).__name__} does not say which secrets the source holds, so "
                "nothing checks that its client secret, PIN or key stays hidden: override the "
                "held_secrets fixture to return them, or set holds_only_what_it_returns = True "
                "if the source keeps no secret but the credentials it returns",
                pytrace=False,
            )
        named: list[tuple[str, HeldSecret]] = [
            (f"credential value {name!r}", str(value.reveal()))
            for name, value in credentials.values.items()
        ]
        named += [(f"held secret #{n}", secret) for n, secret in enumerate(held_secrets or ())]
        for where, secret in named:
            if not is_checkable(secret):
                pytest.fail(
                    f"{where} is shorter than {MIN_CHECKABLE_LENGTH} characters, too short to "
                    "search for: give the test source longer secrets",
                    pytrace=False,
                )
        return [secret for _, secret in named]

    def _assert_no_secret_in_logs(
        self, records: list[tuple[str, str, str]], secrets: list[HeldSecret], call: str
    ) -> None:
        known = []
        for logger, where, text in records:
            if logger in self.known_log_leaks and find_secret(text, secrets) is not None:
                known.append(logger)
                continue
            assert_no_secret(text, secrets, f"{where} during {call}get_credentials")
        if known:
            names = sorted(set(known))
            reasons = "; ".join(f"{name}: {self.known_log_leaks[name]}" for name in names)
            pytest.xfail(f"a secret shows in loggers named in known_log_leaks ({reasons})")

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

    def test_no_secret_in_reprs(
        self, credential_source: CredentialSource, held_secrets: Sequence[HeldSecret] | None
    ) -> None:
        """No secret, held or returned, shows in the repr or str of the credentials or source."""
        credentials = self._check(credential_source.get_credentials())
        secrets = self.secrets(credentials, held_secrets)
        shown = {
            "repr(credentials)": repr(credentials),
            "str(credentials)": str(credentials),
            "repr(credentials.values)": repr(credentials.values),
            "repr(source)": repr(credential_source),
            "str(source)": str(credential_source),
        }
        for where, text in shown.items():
            assert_no_secret(text, secrets, where)

    def test_no_secret_in_logs(
        self, credential_source: CredentialSource, held_secrets: Sequence[HeldSecret] | None
    ) -> None:
        """No secret, held or returned, shows in any log record (DEBUG and up) of a call."""
        with _DebugLogs() as records:
            credentials = self._check(credential_source.get_credentials())
            self._check(credential_source.get_credentials())
        self._assert_no_secret_in_logs(records, self.secrets(credentials, held_secrets), "")

    def test_no_secret_in_errors(
        self,
        failing_credential_source: CredentialSource | None,
        credential_source: CredentialSource,
        held_secrets: Sequence[HeldSecret] | None,
    ) -> None:
        """A failing source raises CredentialError; no held secret shows in it or its logs.

        Searched: str and repr of the error and of each error in its chain,
        the formatted traceback, and every log record of the failed call.
        """
        if failing_credential_source is None:
            pytest.skip("no failing_credential_source fixture: the error messages are not checked")
        credentials = self._check(credential_source.get_credentials())
        secrets = self.secrets(credentials, held_secrets)
        with _DebugLogs() as records, pytest.raises(CredentialError) as raised:
            failing_credential_source.get_credentials()
        for where, text in error_texts(raised.value):
            assert_no_secret(text, secrets, f"{where} of the failed get_credentials")
        self._assert_no_secret_in_logs(records, secrets, "the failed ")
        assert_no_secret(repr(failing_credential_source), secrets, "repr(failing source)")

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
