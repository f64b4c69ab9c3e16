"""Sign and wrap operations per second: the PKCS#11 provider on SoftHSM2 against the local provider.

Both providers run in this process, in one run, interleaved (round-robin, one
batch per row per round), on keys of the same types:

- ``wrap``: wrap a fresh 32-byte data key under an AES-256 key with a
  two-pair encryption context;
- ``unwrap``: unwrap one such wrapped key;
- ``sign ed25519`` / ``sign ecdsa-p256``: sign a 1 KiB message;
- ``verify ed25519``: verify one such signature;
- ``wrap, 4 threads``: four threads wrapping at once (total operations per
  second), which shows what the per-module lock costs (see docs/pkcs11.md).

Each row reports the median operations per second over the rounds and the
SoftHSM2/local ratio.  SoftHSM2 is a software token on the same CPU: a real
HSM adds its network or USB round trip to every operation.

Needs ``pip install ./contrib/aureus-pkcs11`` and SoftHSM2 (``apt-get install
softhsm2``); without them it says so and exits 0.

    python benchmarks/bench_pkcs11.py [--rounds 9] [--batch 200] [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from aureus_core.context import EncryptionContext
from aureus_core.interfaces import KeyProvider
from aureus_core.keyref import KeyRef
from aureus_core.keys import KeySpec, KeyType
from aureus_core.sensitive import Secret

CONTEXT = EncryptionContext({"purpose": "benchmark", "tenant": "acme"})
MESSAGE = os.urandom(1024)
PIN = "bench-pin"


def _providers(directory: Path) -> tuple[KeyProvider, KeyProvider] | str:
    try:
        from aureus_pkcs11 import Pkcs11KeyProvider, SessionPool, TokenSelector
        from aureus_pkcs11.softhsm import SoftHsm
    except ImportError:
        return "aureus-pkcs11 is not installed (pip install ./contrib/aureus-pkcs11)"
    from aureus_core.errors import ConfigError
    from aureus_local import LocalKeyProvider

    try:
        hsm = SoftHsm(directory / "softhsm")
    except ConfigError as error:
        return str(error)
    hsm.create_token("bench", pin=PIN, so_pin="bench-so-pin")
    os.environ.update(hsm.environment())
    pool = SessionPool(TokenSelector(module=hsm.module, label="bench"), Secret(PIN))
    return Pkcs11KeyProvider(pool), LocalKeyProvider(directory / "keystore")


def _rate(operation: Callable[[], object], batch: int) -> float:
    start = time.perf_counter()
    for _ in range(batch):
        operation()
    return batch / (time.perf_counter() - start)


def _threaded_rate(operation: Callable[[], object], batch: int, threads: int) -> float:
    def worker() -> None:
        for _ in range(batch // threads):
            operation()

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for future in [pool.submit(worker) for _ in range(threads)]:
            future.result()
    return (batch // threads) * threads / (time.perf_counter() - start)


def _rows(provider: KeyProvider, scheme_prefix: str) -> dict[str, Callable[[int], float]]:
    def key(name: str, key_type: KeyType) -> KeyRef:
        metadata = provider.create_key(f"{scheme_prefix}{name}", KeySpec(key_type=key_type))
        return metadata.ref.with_version(None)

    aes, ed, ec = (
        key("bench-aes", KeyType.AES_256),
        key("bench-ed", KeyType.ED25519),
        key("bench-ec", KeyType.ECDSA_P256),
    )
    wrapped = provider.wrap(aes, os.urandom(32), CONTEXT).encrypted
    signature = provider.sign(ed, MESSAGE).value
    return {
        "wrap": lambda n: _rate(lambda: provider.wrap(aes, os.urandom(32), CONTEXT), n),
        "unwrap": lambda n: _rate(lambda: provider.unwrap(aes, wrapped, CONTEXT), n),
        "sign ed25519": lambda n: _rate(lambda: provider.sign(ed, MESSAGE), n),
        "sign ecdsa-p256": lambda n: _rate(lambda: provider.sign(ec, MESSAGE), n),
        "verify ed25519": lambda n: _rate(lambda: provider.verify(ed, MESSAGE, signature), n),
        "wrap, 4 threads": lambda n: _threaded_rate(
            lambda: provider.wrap(aes, os.urandom(32), CONTEXT), n, 4
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="3 rounds of 40 calls (CI smoke)")
    args, ignored = parser.parse_known_args()  # `nox -s bench -- ARGS` passes every script's
    if ignored:
        print(f"ignoring options for other benchmarks: {' '.join(ignored)}")
    if args.quick:
        args.rounds, args.batch = 3, 40
    with tempfile.TemporaryDirectory(prefix="aureus-bench-pkcs11-") as scratch:
        made = _providers(Path(scratch))
        if isinstance(made, str):
            print(f"bench_pkcs11: skipped: {made}")
            return
        hsm, local = made
        try:
            rows = {"softhsm2": _rows(hsm, ""), "local": _rows(local, "")}
            names = list(rows["local"])
            rates: dict[tuple[str, str], list[float]] = {
                (side, name): [] for side in rows for name in names
            }
            for _ in range(args.rounds):
                for name in names:
                    for side in rows:
                        rates[(side, name)].append(rows[side][name](args.batch))
        finally:
            hsm.close()
            local.close()
    print(
        f"python {sys.version.split()[0]}, {args.rounds} rounds of {args.batch} calls, median ops/s"
    )
    print("| operation | SoftHSM2 (pkcs11) | local | SoftHSM2 / local |")
    print("| --- | --- | --- | --- |")
    for name in names:
        token = statistics.median(rates[("softhsm2", name)])
        plain = statistics.median(rates[("local", name)])
        print(f"| {name} | {token:,.0f} | {plain:,.0f} | {token / plain:.2f} |")


if __name__ == "__main__":
    main()
