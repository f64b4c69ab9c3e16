"""Aureus key provider for PKCS#11 tokens and HSMs (scheme ``pkcs11``)."""

from __future__ import annotations

from .provider import PROVIDER_ID, Pkcs11KeyProvider
from .session import SessionPool, TokenSelector

__all__ = ["PROVIDER_ID", "Pkcs11KeyProvider", "SessionPool", "TokenSelector"]
