"""The cache, credential and audit contracts notice broken implementations."""

from __future__ import annotations

import textwrap

import pytest

from aureus_core.testing import AuditSinkContract, CacheBackendContract, CredentialSourceContract

pytest_plugins = ["pytester"]


def contract_tests(contract: type) -> set[str]:
    return {name for name in dir(contract) if name.startswith("test_")}


def failed_and_passed(pytester: pytest.Pytester, source: str) -> tuple[set[str], set[str]]:
    pytester.makepyfile(test_subject=textwrap.dedent(source))
    recorder = pytester.inline_run("-p", "no:cacheprovider")
    passed, _, failed = recorder.listoutcomes()
    return (
        {r.nodeid.rpartition("::")[2].partition("[")[0] for r in failed},
        {r.nodeid.rpartition("::")[2].partition("[")[0] for r in passed},
    )


NEEDS_SHARED_STORE = {
    "test_processes_share_one_data_key_per_window",
    "test_outage_falls_back_to_the_provider",
    "test_store_holds_no_data_key",  # for a backend that keeps its entries elsewhere
}


CACHE = """
import threading

import pytest

from aureus_core.testing import CacheBackendContract


class DictCache:
    def __init__(self):
        self.entries = {}
        self.lock = threading.Lock()

    def get(self, key):
        with self.lock:
            return self.entries.get(key)

    def put(self, key, entry):
        with self.lock:
            old = self.entries.get(key)
            self.entries[key] = entry
        if old is not None and old is not entry:
            old.wipe()

    def evict(self, key):
        with self.lock:
            entry = self.entries.pop(key, None)
        if entry is not None:
            entry.wipe()

    def clear(self):
        with self.lock:
            entries, self.entries = list(self.entries.values()), {}
        for entry in entries:
            entry.wipe()

    def __len__(self):
        return len(self.entries)


class TestCache(CacheBackendContract):
    distinct_keys = 2**12

    @pytest.fixture
    def cache_backend(self):
        return Broken()
"""


def test_a_correct_cache_passes(pytester: pytest.Pytester):
    failed, passed = failed_and_passed(pytester, CACHE + "\nBroken = DictCache\n")
    assert failed == set()
    assert passed == contract_tests(CacheBackendContract) - NEEDS_SHARED_STORE


def test_cache_that_loses_use_counts_fails(pytester: pytest.Pytester):
    """A backend handing out copies loses each use's count: a key outlives max_messages."""
    failed, _ = failed_and_passed(
        pytester,
        CACHE
        + """
import attrs

class Broken(DictCache):
    def get(self, key):
        entry = super().get(key)
        return None if entry is None else attrs.evolve(entry, material=bytearray(entry.material))
""",
    )
    assert {
        "test_single_flight_under_threads",
        "test_single_flight_under_the_byte_limit",
    } <= failed


def test_cache_that_never_wipes_fails(pytester: pytest.Pytester):
    failed, _ = failed_and_passed(
        pytester,
        CACHE
        + """
class Broken(DictCache):
    def __init__(self):
        super().__init__()
        self.kept = []

    def put(self, key, entry):
        with self.lock:
            self.entries[key] = entry

    def evict(self, key):
        with self.lock:
            self.entries.pop(key, None)

    def clear(self):
        with self.lock:
            self.entries.clear()
""",
    )
    assert failed == {
        "test_put_replaces_and_wipes_the_old_entry",
        "test_evict_removes_and_wipes",
        "test_clear_empties_and_wipes",
    }


def test_cache_that_wipes_an_entry_put_twice_fails(pytester: pytest.Pytester):
    failed, _ = failed_and_passed(
        pytester,
        CACHE
        + """
class Broken(DictCache):
    def put(self, key, entry):
        with self.lock:
            old = self.entries.get(key)
            self.entries[key] = entry
        if old is not None:
            old.wipe()
""",
    )
    assert failed == {"test_put_same_entry_again_keeps_it"}


def test_cache_whose_repr_shows_material_fails(pytester: pytest.Pytester):
    failed, _ = failed_and_passed(
        pytester,
        CACHE
        + """
class Broken(DictCache):
    def __repr__(self):
        return repr({k: bytes(e.material) for k, e in self.entries.items()})
""",
    )
    assert failed == {"test_material_never_in_repr"}


def test_null_cache_that_wipes_what_it_is_given_fails(pytester: pytest.Pytester):
    failed, passed = failed_and_passed(
        pytester,
        CACHE
        + """
class Broken:
    def get(self, key):
        return None

    def put(self, key, entry):
        entry.wipe()

    def evict(self, key):
        pass

    def clear(self):
        pass

    def __len__(self):
        return 0


TestCache.stores_entries = False
""",
    )
    assert failed == {"test_put_then_get"}
    assert "test_evict_removes_and_wipes" in passed


CREDENTIALS = """
import pytest

from aureus_core.errors import CredentialError
from aureus_core.interfaces import Credentials
from aureus_core.sensitive import Secret
from aureus_core.testing import CredentialSourceContract

TOKEN = "token-value-0123456789abcdef"


class Source:
    name = "test"

    def get_credentials(self):
        return Credentials(kind="token", values={"token": Secret(TOKEN)})


class Refused:
    name = "refused"

    def get_credentials(self):
        raise CredentialError("the token service refused the request: check the client ID")


class TestSource(CredentialSourceContract):
    holds_only_what_it_returns = True

    @pytest.fixture
    def credential_source(self):
        return Broken()

    @pytest.fixture
    def failing_credential_source(self):
        return Refused()
"""


def test_a_correct_credential_source_passes(pytester: pytest.Pytester):
    failed, passed = failed_and_passed(pytester, CREDENTIALS + "\nBroken = Source\n")
    assert failed == set()
    assert passed == contract_tests(CredentialSourceContract)


@pytest.mark.parametrize(
    "leak", ["TOKEN", "TOKEN.encode().hex()", "__import__('base64').b64encode(TOKEN.encode())"]
)
def test_credential_source_whose_repr_shows_the_secret_fails(pytester: pytest.Pytester, leak: str):
    failed, _ = failed_and_passed(
        pytester,
        CREDENTIALS
        + f"""
class Broken(Source):
    def __repr__(self):
        return f"Broken({{{leak}}})"
""",
    )
    assert failed == {"test_no_secret_in_reprs"}


def test_credentials_with_plain_values_fail(pytester: pytest.Pytester):
    failed, passed = failed_and_passed(
        pytester,
        CREDENTIALS
        + """
class Broken(Source):
    def get_credentials(self):
        return Credentials(kind="token", values={"token": TOKEN})
""",
    )
    assert failed == {
        "test_get_credentials_returns_credentials",
        "test_no_secret_in_reprs",
        "test_no_secret_in_logs",
        "test_no_secret_in_errors",
        "test_repeated_calls_agree",
        "test_concurrent_calls",
    }
    assert passed == {"test_satisfies_the_protocol", "test_name_is_a_non_empty_string"}


AUDIT = """
import contextlib
import threading

import pytest

from aureus_core.errors import AuditSinkError
from aureus_core.testing import AuditSinkContract


class ListSink:
    def __init__(self):
        self.events = []
        self.closed = False
        self.broken = False
        self.lock = threading.Lock()

    def store(self, event):
        if self.broken:
            raise AuditSinkError("the list is full")
        self.events.append(event)

    def emit(self, event):
        if self.closed:
            raise AuditSinkError("closed")
        with self.lock:
            self.store(event)

    def close(self):
        self.closed = True


class TestSink(AuditSinkContract):
    @pytest.fixture
    def audit_sink(self):
        return Broken()

    @pytest.fixture
    def break_store(self, audit_sink):
        @contextlib.contextmanager
        def broken():
            audit_sink.broken = True
            yield
            audit_sink.broken = False

        return broken

    @pytest.fixture
    def recorded_events(self, audit_sink):
        return lambda: [e.to_dict() for e in audit_sink.events]
"""


def test_a_correct_audit_sink_passes(pytester: pytest.Pytester):
    failed, passed = failed_and_passed(pytester, AUDIT + "\nBroken = ListSink\n")
    assert failed == set()
    assert passed == contract_tests(AuditSinkContract)


def test_audit_sink_that_reorders_events_fails(pytester: pytest.Pytester):
    failed, _ = failed_and_passed(
        pytester,
        AUDIT
        + """
class Broken(ListSink):
    def emit(self, event):
        if self.closed:
            raise AuditSinkError("closed")
        with self.lock:
            self.events.insert(0, event)
""",
    )
    assert failed == {
        "test_emit_many",
        "test_read_back_in_order",
        "test_emit_from_threads",
        "test_broken_store_raises_audit_sink_error",  # it bypasses the store that breaks
    }


def test_audit_sink_that_drops_events_fails(pytester: pytest.Pytester):
    failed, _ = failed_and_passed(
        pytester,
        AUDIT
        + """
class Broken(ListSink):
    def emit(self, event):
        if event.outcome == "ok":
            super().emit(event)
""",
    )
    assert failed == {
        "test_emit_many",
        "test_read_back_in_order",
        "test_emit_from_threads",
        "test_close_is_idempotent",
        "test_emit_after_close_raises_audit_sink_error",
        "test_broken_store_raises_audit_sink_error",
    }


def test_audit_sink_whose_close_is_not_idempotent_fails(pytester: pytest.Pytester):
    failed, _ = failed_and_passed(
        pytester,
        AUDIT
        + """
class Broken(ListSink):
    def close(self):
        if self.closed:
            raise RuntimeError("already closed")
        self.closed = True
""",
    )
    assert failed == {"test_close_is_idempotent"}


def test_audit_sink_that_records_after_close_fails(pytester: pytest.Pytester):
    failed, _ = failed_and_passed(
        pytester,
        AUDIT
        + """
class Broken(ListSink):
    def emit(self, event):
        with self.lock:
            self.events.append(event)
""",
    )
    assert failed == {
        "test_close_is_idempotent",
        "test_emit_after_close_raises_audit_sink_error",
        "test_broken_store_raises_audit_sink_error",  # it bypasses the store that breaks
    }


NO_READ_BACK = AUDIT.replace(
    "return lambda: [e.to_dict() for e in audit_sink.events]", "return None"
)


def test_audit_sink_without_read_back_fails_the_read_back_tests(pytester: pytest.Pytester):
    """A missing recorded_events fixture is a failure that says what to do, not a skip."""
    pytester.makepyfile(test_subject=textwrap.dedent(NO_READ_BACK) + "\nBroken = ListSink\n")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4, failed=3)
    result.stdout.fnmatch_lines(["*override recorded_events to return a function*"])


def test_audit_sink_marked_unreadable_skips_the_read_back_tests(pytester: pytest.Pytester):
    pytester.makepyfile(
        test_subject=textwrap.dedent(NO_READ_BACK)
        + "\nBroken = ListSink\nTestSink.readable = False\n"
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(passed=6, skipped=1)
    result.stdout.fnmatch_lines(["*this sink cannot be read back (readable = False)*"])
