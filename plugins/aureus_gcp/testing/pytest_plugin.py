"""pytest fixtures for testing against an emulated Google Cloud KMS (entry point ``pytest11``).

- ``gcp_kms_emulator``: a running :class:`~aureus_gcp.testing.CloudKmsEmulator`
  (insecure transport), shared by the session;
- ``gcp_kms``: that emulator with faults and the policy hook cleared before the
  test and its clock back at real time before and after it (what a test's
  ``advance()`` did to its own keys stays); keys are *not* reset, so give each
  test its own key names;
- ``gcp_kms_isolated``: an emulator of the test's own (own keys, own clock),
  stopped after it;
- ``gcp_kms_provider``: a ``gcp-kms`` provider pointed at ``gcp_kms`` with
  millisecond retries, closed after the test;
- ``gcp_sts``: a running :class:`~aureus_gcp.testing.FakeSts` for the test.

This module is loaded into every pytest run where Aureus is installed, so it
imports the google packages only inside the fixtures: without the ``gcp``
extra, using a fixture skips the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

_REASON = "needs the gcp extra: pip install 'aureus-kms[gcp]'"


@pytest.fixture(scope="session")
def gcp_kms_emulator() -> Iterator[Any]:
    """A Cloud KMS emulator on 127.0.0.1 for the whole session (see ``.endpoint``)."""
    pytest.importorskip("google.cloud.kms_v1", reason=_REASON)
    from aureus_gcp.testing.emulator import CloudKmsEmulator

    with CloudKmsEmulator() as emulator:
        yield emulator


@pytest.fixture
def gcp_kms(gcp_kms_emulator: Any) -> Iterator[Any]:
    """The session's emulator with no faults, no checksum corruption, no policy, no advance."""
    gcp_kms_emulator.clear_faults()
    gcp_kms_emulator.set_policy(None)
    gcp_kms_emulator.reset_clock()
    yield gcp_kms_emulator
    gcp_kms_emulator.reset_clock()  # a test's advance() never reaches the next test


@pytest.fixture
def gcp_kms_isolated() -> Iterator[Any]:
    """A Cloud KMS emulator for this test alone: its own keys and its own clock."""
    pytest.importorskip("google.cloud.kms_v1", reason=_REASON)
    from aureus_gcp.testing.emulator import CloudKmsEmulator

    with CloudKmsEmulator() as emulator:
        yield emulator


@pytest.fixture
def gcp_kms_provider(gcp_kms: Any) -> Iterator[Any]:
    """A ``gcp-kms`` provider for the emulator (retries bounded to a few ms)."""
    provider = gcp_kms.provider()
    try:
        yield provider
    finally:
        close = getattr(provider, "close", None)
        if close is not None:
            close()


@pytest.fixture
def gcp_sts() -> Iterator[Any]:
    """A fake Google STS (and IAM Credentials) on http://127.0.0.1 (see ``.token_url``)."""
    pytest.importorskip("google.auth", reason=_REASON)
    from aureus_gcp.testing.sts import FakeSts

    with FakeSts() as sts:
        yield sts
