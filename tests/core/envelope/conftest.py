from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from aureus_core import KeyStack


@pytest.fixture
def raw_keys() -> dict[str, bytes]:
    """Known AES key bytes, imported into the keystore so the official SDK can use them too."""
    return {"alpha": os.urandom(32), "beta": os.urandom(32), "gamma": os.urandom(32)}


@pytest.fixture
def stack(tmp_path: Path, raw_keys: dict[str, bytes]) -> Iterator[KeyStack]:
    with KeyStack.local(tmp_path / "ks", wrapping_keys=["local://alpha"]) as stack:
        for name, material in raw_keys.items():
            stack.import_key(name, "aes-256", raw=material)
        yield stack
