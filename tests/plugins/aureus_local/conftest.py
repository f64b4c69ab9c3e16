"""Fixtures for the local keystore provider tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from aureus_local import LocalKeyProvider

START = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)
"""Where the test clock starts."""

MakeProvider = Callable[..., LocalKeyProvider]
AdvanceClock = Callable[[timedelta], datetime]


@pytest.fixture
def keystore_dir(tmp_path: Path) -> Path:
    """A keystore directory that does not exist yet."""
    return tmp_path / "keystore"


@pytest.fixture
def advance_clock() -> AdvanceClock:
    """Move the providers' clock forward by a delta; returns the new time.

    ``advance_clock(timedelta(0))`` reads the clock.  It starts at ``START``.
    """
    now = [START]

    def advance(delta: timedelta) -> datetime:
        now[0] += delta
        return now[0]

    return advance


@pytest.fixture
def make_provider(keystore_dir: Path, advance_clock: AdvanceClock) -> Iterator[MakeProvider]:
    """Build providers on ``keystore_dir`` (or another directory) sharing the test clock."""
    made: list[LocalKeyProvider] = []

    def make(directory: Path | None = None, **kwargs: Any) -> LocalKeyProvider:
        kwargs.setdefault("clock", lambda: advance_clock(timedelta(0)))
        # Cheap scrypt (scrypt_log_n=10) is refused unless forced; the tests force it.
        kwargs.setdefault("insecure_kdf_for_tests", True)
        provider = LocalKeyProvider(directory or keystore_dir, **kwargs)
        made.append(provider)
        return provider

    yield make
    for provider in made:
        provider.close()


@pytest.fixture
def local_provider(make_provider: MakeProvider) -> LocalKeyProvider:
    """A key-file LocalKeyProvider on a fresh directory, on the test clock."""
    return make_provider()


@pytest.fixture(autouse=True)
def _fresh_name_memos() -> Iterator[None]:
    """Empty the memos of parsed key names around each test, so it sees the parser's answer.

    ``naming.parse_ref`` and the wrapped-key head parser keep what they parsed; a name
    parsed by an earlier test (or an earlier run in the same process, as in mutation
    testing) would otherwise be answered from the memo.
    """
    from aureus_local import naming, wrapping

    for memo in (naming.parse_ref, naming.key_ref, wrapping._parse_head_memo):
        memo.cache_clear()
    yield
    for memo in (naming.parse_ref, naming.key_ref, wrapping._parse_head_memo):
        memo.cache_clear()
