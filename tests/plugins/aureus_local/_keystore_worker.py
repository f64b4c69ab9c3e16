"""A separate process that writes to a keystore, for the concurrency and crash tests.

Run as ``python _keystore_worker.py MODE DIRECTORY PREFIX COUNT``:

- ``create``: wait for a line on stdin (a start barrier), then create COUNT keys
  named ``PREFIX-0`` ... and print ``create NAME`` after each;
- ``churn``: create and rotate keys, COUNT operations (0: until killed), printing
  ``create NAME`` or ``rotate NAME VERSION`` once each operation has returned;
- ``wrap``: wrap COUNT data keys with ``local://PREFIX`` (an existing aes-256
  key), printing ``wrapped N`` after each, then SIGKILL itself: a crash that
  skips every clean-up;
- ``passphrase``: re-seal the keystore under ``AUREUS_TEST_NEW_PASSPHRASE`` and
  print ``changed`` (PREFIX and COUNT are ignored).

With ``AUREUS_TEST_KILL_AT_FSYNC=N`` the process SIGKILLs itself just before
its N-th ``os.fsync`` call: a crash at an exact point in the write protocol.
The passphrase, if any, comes from ``AUREUS_KEYSTORE_PASSPHRASE``.
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import sys
from typing import TYPE_CHECKING

from aureus_core.context import EncryptionContext
from aureus_core.interfaces import ProviderSettings
from aureus_core.keyref import KeyRef
from aureus_core.keys import KeySpec
from aureus_core.sensitive import Secret
from aureus_local import create_provider

if TYPE_CHECKING:
    from _typeshed import FileDescriptorLike

KEY_TYPES = ("aes-256", "ed25519", "ecdsa-p256")


def kill_at_fsync(target: int) -> None:
    """Make the ``target``-th ``os.fsync`` call kill this process instead."""
    real_fsync = os.fsync
    calls = itertools.count(1)

    def fsync(fd: FileDescriptorLike) -> None:
        if next(calls) == target:
            os.kill(os.getpid(), signal.SIGKILL)
        real_fsync(fd)

    os.fsync = fsync


def report(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(mode: str, directory: str, prefix: str, count: int) -> None:
    target = int(os.environ.get("AUREUS_TEST_KILL_AT_FSYNC", "0"))
    if target:
        kill_at_fsync(target)
    provider = create_provider(
        ProviderSettings(
            options={"keystore": directory, "scrypt_log_n": 10, "insecure_kdf_for_tests": True}
        )
    )
    if mode == "wrap":
        for i in range(1, count + 1):
            provider.wrap(KeyRef.parse(f"local://{prefix}"), bytes(32), EncryptionContext())
            report(f"wrapped {i}")
        os.kill(os.getpid(), signal.SIGKILL)
    if mode == "passphrase":
        provider.change_passphrase(Secret(os.environ["AUREUS_TEST_NEW_PASSPHRASE"]))
        report("changed")
        return
    if mode == "create":
        sys.stdin.readline()
        for i in range(count):
            name = f"{prefix}-{i}"
            provider.create_key(name, KeySpec(key_type=KEY_TYPES[i % 3]))
            report(f"create {name}")
        return
    rng = random.Random(prefix)  # noqa: S311 (a reproducible test schedule, not crypto)
    mine: list[str] = []
    steps = itertools.count() if count == 0 else range(count)
    for i in steps:
        if mine and rng.random() < 0.4:
            name = rng.choice(mine)
            meta = provider.rotate_key(KeyRef.parse(f"local://{name}"))
            report(f"rotate {name} {meta.current_version}")
        else:
            name = f"{prefix}-{i}"
            provider.create_key(name, KeySpec(key_type=KEY_TYPES[i % 3]))
            mine.append(name)
            report(f"create {name}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
