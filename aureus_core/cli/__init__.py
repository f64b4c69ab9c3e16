"""The ``aureus`` command line.

Each command module registers its commands on the root group when imported;
the root group imports a module when its command is asked for
(``app.COMMAND_MODULES``), so ``aureus encrypt`` does not import the code of
``aureus keys`` or ``aureus audit``.
"""

from __future__ import annotations

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
