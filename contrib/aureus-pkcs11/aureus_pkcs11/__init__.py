"""Aureus key provider for PKCS#11 tokens and HSMs (scheme ``pkcs11``).

The provider and its session pool (and with them python-pkcs11) are imported
on first access, so loading the plugin, which every ``aureus`` command does,
costs no more than its registrations.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .provider import PROVIDER_ID, Pkcs11KeyProvider
    from .session import SessionPool, TokenSelector

__all__ = ["PROVIDER_ID", "Pkcs11KeyProvider", "SessionPool", "TokenSelector"]

_MODULES = {
    "PROVIDER_ID": "provider",
    "Pkcs11KeyProvider": "provider",
    "SessionPool": "session",
    "TokenSelector": "session",
}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
