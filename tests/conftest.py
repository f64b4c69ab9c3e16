"""Fixtures for the whole test suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True, scope="session")
def _no_audit_log_from_the_environment() -> Iterator[None]:
    """A developer's ``AUREUS_AUDIT_LOG`` must not add a jsonl sink to every test's stack."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("AUREUS_AUDIT_LOG", raising=False)
        yield
