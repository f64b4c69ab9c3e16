"""The ``aureus`` command line.

Each command module registers its commands on the root group when imported.
"""

from __future__ import annotations

from . import envelope, keys, plugins, signing
from .app import main

__all__ = ["envelope", "keys", "main", "plugins", "signing"]

if __name__ == "__main__":  # pragma: no cover
    main()
