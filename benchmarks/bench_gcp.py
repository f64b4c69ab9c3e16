"""Cloud KMS provider overhead against the bare official client, on one emulator, in one run.

Rows, measured interleaved (round-robin, one batch per row per round), all
against the same in-process ``aureus_gcp.testing.CloudKmsEmulator`` (gRPC on
127.0.0.1, insecure channel) and the same key:

- ``client Encrypt``: ``KeyManagementServiceClient.encrypt`` of a 32-byte data
  key with the serialized context as additional data (the client's defaults);
- ``client Encrypt, CRC32C``: the same with the end-to-end checks Google
  documents (request checksums sent, ``verified_*`` flags, answer checksum and
  name checked), which the provider always does;
- ``aureus wrap``: the provider's ``wrap`` of the same;
- ``client Decrypt`` / ``client Decrypt, CRC32C`` / ``aureus unwrap``: the
  same for ``Decrypt`` of one ciphertext;
- ``client envelope 1 KiB``: what an envelope round trip needs at the least:
  a random data key, Encrypt, AES-256-GCM of 1 KiB, Decrypt, AES-256-GCM open
  (with the CRC32C checks);
- ``aureus encrypt+decrypt 1 KiB``: ``KeyStack.encrypt`` then ``decrypt`` of
  1 KiB (message format, key commitment, audit, circuit breaker included).

Each Aureus row is compared with the bare client row(s) before it: its
median over theirs, minus one.  The target is at most 10 % over the checked
client.  The emulator answers in well under a millisecond and shares the
process (and its GIL) with both sides; against Cloud KMS, whose calls take
milliseconds, the same absolute overhead is a far smaller share.

    python benchmarks/bench_gcp.py [--rounds 15] [--batch 40] [--quick]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import time
from collections.abc import Callable

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from aureus_core import KeyStack
from aureus_core.context import EncryptionContext
from aureus_core.keys import KeySpec, KeyType
from aureus_gcp.provider import crc32c
from aureus_gcp.testing import CloudKmsEmulator

CONTEXT = {"purpose": "benchmark", "tenant": "acme"}
TARGET = 0.10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--batch", type=int, default=40)
    parser.add_argument("--quick", action="store_true", help="3 rounds of 10 calls (CI smoke)")
    args, ignored = parser.parse_known_args()  # `nox -s bench -- ARGS` passes every script's
    if ignored:
        print(f"ignoring options for other benchmarks: {' '.join(ignored)}")
    if args.quick:
        args.rounds, args.batch = 3, 10

    with CloudKmsEmulator() as emulator:
        client = emulator.client()
        provider = emulator.provider(project="bench", location="global", key_ring="bench")
        ref = provider.create_key("bench", KeySpec(key_type=KeyType.AES_256)).ref
        name = ref.key_id
        context = EncryptionContext(CONTEXT)
        aad = context.serialize()
        aad_crc = crc32c(aad)
        stack = KeyStack(providers={"gcp-kms": provider})
        payload = os.urandom(1024)
        data_key = os.urandom(32)
        wrapped = provider.wrap(ref, data_key, context)
        blob = wrapped.encrypted.ciphertext

        def bare_encrypt(plaintext: bytes) -> bytes:
            request = {"name": name, "plaintext": plaintext, "additional_authenticated_data": aad}
            return bytes(client.encrypt(request=request).ciphertext)

        def bare_decrypt(ciphertext: bytes) -> bytes:
            request = {"name": name, "ciphertext": ciphertext, "additional_authenticated_data": aad}
            return bytes(client.decrypt(request=request).plaintext)

        def checked_encrypt(plaintext: bytes) -> bytes:
            request = {
                "name": name,
                "plaintext": plaintext,
                "plaintext_crc32c": crc32c(plaintext),
                "additional_authenticated_data": aad,
                "additional_authenticated_data_crc32c": aad_crc,
            }
            response = client.encrypt(request=request)
            ciphertext = bytes(response.ciphertext)
            if not (
                response.verified_plaintext_crc32c
                and response.verified_additional_authenticated_data_crc32c
                and response.name.startswith(name + "/")
                and response.ciphertext_crc32c == crc32c(ciphertext)
            ):
                raise RuntimeError("corrupted in transit")
            return ciphertext

        def checked_decrypt(ciphertext: bytes) -> bytes:
            request = {
                "name": name,
                "ciphertext": ciphertext,
                "ciphertext_crc32c": crc32c(ciphertext),
                "additional_authenticated_data": aad,
                "additional_authenticated_data_crc32c": aad_crc,
            }
            response = client.decrypt(request=request)
            plaintext = bytes(response.plaintext)
            if response.plaintext_crc32c != crc32c(plaintext):
                raise RuntimeError("corrupted in transit")
            return plaintext

        def bare_envelope() -> None:
            key = os.urandom(32)
            sealed_key = checked_encrypt(key)
            nonce = os.urandom(12)
            sealed = AESGCM(key).encrypt(nonce, payload, None)
            AESGCM(checked_decrypt(sealed_key)).decrypt(nonce, sealed, None)

        def aureus_envelope() -> None:
            stack.decrypt(stack.encrypt(payload, context=CONTEXT, keys=[ref]), keys=[ref])

        rows: dict[str, Callable[[], object]] = {
            "client Encrypt": lambda: bare_encrypt(data_key),
            "client Encrypt, CRC32C": lambda: checked_encrypt(data_key),
            "aureus wrap": lambda: provider.wrap(ref, data_key, context),
            "client Decrypt": lambda: bare_decrypt(blob),
            "client Decrypt, CRC32C": lambda: checked_decrypt(blob),
            "aureus unwrap": lambda: provider.unwrap(ref, wrapped.encrypted, context),
            "client envelope 1 KiB, CRC32C": bare_envelope,
            "aureus encrypt+decrypt 1 KiB": aureus_envelope,
        }
        samples: dict[str, list[float]] = {row: [] for row in rows}
        for call in rows.values():  # warm up the channel and caches
            for _ in range(5):
                call()
        gc.disable()
        try:
            for _ in range(args.rounds):
                for row, call in rows.items():
                    start = time.perf_counter()
                    for _ in range(args.batch):
                        call()
                    samples[row].append((time.perf_counter() - start) / args.batch)
                    gc.collect()
        finally:
            gc.enable()
        stack.close()
        client.transport.close()

    print(f"Cloud KMS emulator (127.0.0.1); {args.rounds} rounds x {args.batch} calls per row")
    print(f"{'row':<32} {'median':>10} {'min':>10} {'vs bare':>9} {'vs CRC32C':>10}")
    medians = {row: statistics.median(times) for row, times in samples.items()}
    verdicts = []
    baselines: list[str] = []
    for row, times in samples.items():
        shown = ""
        if row.startswith("aureus"):
            ratios = [medians[row] / medians[base] - 1 for base in baselines]
            shown = " ".join(f"{r * 100:>+8.1f}%" for r in ratios).rjust(20)
            verdicts.append(
                f"{row}: {ratios[-1] * 100:+.1f}% ({'ok' if ratios[-1] <= TARGET else 'OVER'})"
            )
            baselines = []
        else:
            baselines.append(row)
        print(f"{row:<32} {medians[row] * 1e3:>8.3f}ms {min(times) * 1e3:>8.3f}ms {shown}")
    print(f"target: overhead <= {TARGET * 100:.0f}% over the checked client")
    for verdict in verdicts:
        print("  " + verdict)


if __name__ == "__main__":
    main()
