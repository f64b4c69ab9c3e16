"""The Aureus conformance kit: contract test suites for plugin authors.

Subclass a contract in your own test module and override its one fixture::

    class TestJsonKeysProvider(KeyProviderContract):
        @pytest.fixture
        def provider(self, tmp_path):
            return JsonKeysProvider(tmp_path / "keys.json")

This package needs pytest and nothing else (``pip install 'aureus-kms[kit]'``);
``import aureus_core`` does not import it.  See ``docs/plugin-kit.md``.
"""

from __future__ import annotations

import pytest

# Before the contract modules are imported, so that their asserts explain failures.
pytest.register_assert_rewrite(
    "aureus_core.testing.audit_contract",
    "aureus_core.testing.cache_contract",
    "aureus_core.testing.credential_contract",
    "aureus_core.testing.leaks",
    "aureus_core.testing.provider_contract",
)

from .audit_capture import capture_audit  # noqa: E402
from .audit_contract import AuditSinkContract, RecordedEvents, make_event  # noqa: E402
from .cache_contract import CacheBackendContract, make_entry  # noqa: E402
from .clock import FakeClock  # noqa: E402
from .credential_contract import CredentialSourceContract  # noqa: E402
from .latency import LatencyProvider  # noqa: E402
from .leaks import assert_no_secret  # noqa: E402
from .provider_contract import KeyProviderContract  # noqa: E402
from .public_keys import verify_with_public_key  # noqa: E402

__all__ = [
    "AuditSinkContract",
    "CacheBackendContract",
    "CredentialSourceContract",
    "FakeClock",
    "KeyProviderContract",
    "LatencyProvider",
    "RecordedEvents",
    "assert_no_secret",
    "capture_audit",
    "make_entry",
    "make_event",
    "verify_with_public_key",
]
