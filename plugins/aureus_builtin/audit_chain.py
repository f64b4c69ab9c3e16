"""The audit-log verifier's former home: it lives in :mod:`aureus_core.audit.chain`.

The names that ``docs/audit.md`` documents for checking a log from Python
stay importable from here, for code written against this path.
"""

from __future__ import annotations

from aureus_core.audit.chain import (
    ChainError,
    MacSource,
    SignatureCheck,
    Verdict,
    public_key_check,
    verify_chain,
)

__all__ = [
    "ChainError",
    "MacSource",
    "SignatureCheck",
    "Verdict",
    "public_key_check",
    "verify_chain",
]
