"""SoftHSM2 tokens in a directory of their own, for tests, benchmarks and the quick start.

:class:`SoftHsm` writes a ``softhsm2.conf`` whose token directory lies under a
directory you choose and creates tokens there with ``softhsm2-util``.  SoftHSM
reads ``SOFTHSM2_CONF`` when the module is initialised, so point the
environment at :attr:`SoftHsm.config` before the first provider loads it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from aureus_core.errors import ConfigError

MODULE_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
    "/opt/homebrew/lib/softhsm/libsofthsm2.so",
)


def find_module() -> str | None:
    """The SoftHSM2 PKCS#11 library on this machine, if installed."""
    from_env = os.environ.get("AUREUS_SOFTHSM2_MODULE")
    if from_env:
        return from_env
    return next((path for path in MODULE_CANDIDATES if Path(path).is_file()), None)


class SoftHsm:
    """A SoftHSM2 configuration whose tokens live in ``directory/tokens``."""

    def __init__(self, directory: Path) -> None:
        util = shutil.which("softhsm2-util")
        module = find_module()
        if util is None or module is None:
            raise ConfigError(
                "SoftHSM2 is not installed: apt-get install softhsm2 (Debian/Ubuntu), "
                "brew install softhsm (macOS)"
            )
        self.util = util
        self.module = module
        self.directory = directory
        self.tokens = directory / "tokens"
        self.tokens.mkdir(parents=True, exist_ok=True)
        self.config = directory / "softhsm2.conf"
        self.config.write_text(
            f"directories.tokendir = {self.tokens}\nobjectstore.backend = file\n"
            "log.level = ERROR\nslots.removable = false\n",
            encoding="utf-8",
        )

    def environment(self) -> dict[str, str]:
        """The environment variables that make SoftHSM2 use this configuration."""
        return {"SOFTHSM2_CONF": str(self.config)}

    def create_token(self, label: str, *, pin: str, so_pin: str) -> None:
        """Initialise a new token labelled ``label`` in the next free slot."""
        subprocess.run(
            [
                self.util,
                "--init-token",
                "--free",
                "--label",
                label,
                "--pin",
                pin,
                "--so-pin",
                so_pin,
            ],
            check=True,
            capture_output=True,
            env={**os.environ, **self.environment()},
        )
