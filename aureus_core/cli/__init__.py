"""The ``aureus`` command line.

Each command module registers its commands on the root group when imported.
"""

from __future__ import annotations

from . import audit, envelope, keys, migrate, plugins, rewrap, rotation, signing
from .app import main

__all__ = [
    "audit",
    "envelope",
    "keys",
    "main",
    "migrate",
    "plugins",
    "rewrap",
    "rotation",
    "signing",
]

if __name__ == "__main__":  # pragma: no cover
    main()
