"""Test helpers for the gcp plugin: a Cloud KMS emulator over gRPC, a fake Google STS.

The helpers need the ``gcp`` extra and are imported on first access, so the
pytest plugin in this package loads without it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .emulator import CloudKmsEmulator, EmulatorCall, crc32c
    from .sts import FakeSts

_EXPORTS = {
    "CloudKmsEmulator": ".emulator",
    "EmulatorCall": ".emulator",
    "crc32c": ".emulator",
    "FakeSts": ".sts",
}
__all__ = ["CloudKmsEmulator", "EmulatorCall", "FakeSts", "crc32c"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
