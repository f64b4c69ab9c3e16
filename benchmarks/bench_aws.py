"""AWS KMS provider overhead against bare boto3 calls, on one moto server, in one run.

Rows, measured interleaved (round-robin, one batch per row per round), all
against the same ``python -m moto.server`` on 127.0.0.1 and the same key:

- ``boto3 GenerateDataKey``: ``client.generate_data_key`` (32 bytes, context);
- ``aureus generate_data_key``: the provider's ``generate_data_key`` (the wrap
  of a message's first key);
- ``boto3 Decrypt`` / ``aureus unwrap``: KMS ``Decrypt`` of the same blob, bare
  and through the provider (strict: key pinned, reply checked);
- ``boto3 GDK+Decrypt+AES-GCM 1 KiB``: what an envelope round trip needs at the
  least: one GenerateDataKey, one Decrypt, AES-256-GCM of 1 KiB both ways;
- ``aureus encrypt+decrypt 1 KiB``: ``KeyStack.encrypt`` then ``decrypt`` of
  1 KiB (message format, commitment, audit, circuit breaker included).

The overhead column is the Aureus row's median over its boto3 row's median,
minus one; the target is at most 10 %.

    python benchmarks/bench_aws.py [--rounds 15] [--batch 40] [--quick]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import time
from collections.abc import Callable

import boto3
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from aureus_aws import AwsKmsOptions, AwsKmsProvider
from aureus_aws.testing import TEST_ENVIRONMENT, MotoServer
from aureus_core import KeyStack
from aureus_core.context import EncryptionContext
from aureus_core.keys import KeySpec, KeyType

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
    os.environ.update(TEST_ENVIRONMENT)

    with MotoServer() as server:
        client = boto3.client("kms", region_name="us-east-1", endpoint_url=server.url)
        options = AwsKmsOptions.from_mapping({"region": "us-east-1", "endpoint_url": server.url})
        provider = AwsKmsProvider(options)
        ref = provider.create_key("bench", KeySpec(key_type=KeyType.AES_256)).ref
        arn = ref.key_id
        context = EncryptionContext(CONTEXT)
        stack = KeyStack(providers={"aws-kms": provider})
        payload = os.urandom(1024)
        _, wrapped = provider.generate_data_key(ref, 32, context)
        blob = wrapped.encrypted.ciphertext

        def bare_envelope() -> None:
            made = client.generate_data_key(KeyId=arn, NumberOfBytes=32, EncryptionContext=CONTEXT)
            nonce = os.urandom(12)
            sealed = AESGCM(made["Plaintext"]).encrypt(nonce, payload, None)
            opened = client.decrypt(
                KeyId=arn, CiphertextBlob=made["CiphertextBlob"], EncryptionContext=CONTEXT
            )
            AESGCM(opened["Plaintext"]).decrypt(nonce, sealed, None)

        def aureus_envelope() -> None:
            stack.decrypt(stack.encrypt(payload, context=CONTEXT, keys=[ref]), keys=[ref])

        rows: dict[str, Callable[[], object]] = {
            "boto3 GenerateDataKey": lambda: client.generate_data_key(
                KeyId=arn, NumberOfBytes=32, EncryptionContext=CONTEXT
            ),
            "aureus generate_data_key": lambda: provider.generate_data_key(ref, 32, context),
            "boto3 Decrypt": lambda: client.decrypt(
                KeyId=arn, CiphertextBlob=blob, EncryptionContext=CONTEXT
            ),
            "aureus unwrap": lambda: provider.unwrap(ref, wrapped.encrypted, context),
            "boto3 GDK+Decrypt+AES-GCM 1 KiB": bare_envelope,
            "aureus encrypt+decrypt 1 KiB": aureus_envelope,
        }
        samples: dict[str, list[float]] = {name: [] for name in rows}
        for call in rows.values():  # warm up connections and caches
            for _ in range(5):
                call()
        gc.disable()
        try:
            for _ in range(args.rounds):
                for name, call in rows.items():
                    start = time.perf_counter()
                    for _ in range(args.batch):
                        call()
                    samples[name].append((time.perf_counter() - start) / args.batch)
                    gc.collect()
        finally:
            gc.enable()
        stack.close()
        client.close()

    print(f"AWS KMS on moto (127.0.0.1); {args.rounds} rounds x {args.batch} calls per row")
    print(f"{'row':<34} {'median':>10} {'min':>10} {'overhead':>10}")
    pairs = list(rows)
    verdicts = []
    for bare, ours in zip(pairs[::2], pairs[1::2], strict=True):
        base = statistics.median(samples[bare])
        for name in (bare, ours):
            median = statistics.median(samples[name])
            overhead = median / base - 1
            shown = "" if name == bare else f"{overhead * 100:>+9.1f}%"
            print(f"{name:<34} {median * 1e3:>8.2f}ms {min(samples[name]) * 1e3:>8.2f}ms {shown}")
        ratio = statistics.median(samples[ours]) / base - 1
        verdicts.append(f"{ours}: {ratio * 100:+.1f}% ({'ok' if ratio <= TARGET else 'OVER'})")
    print(f"target: overhead <= {TARGET * 100:.0f}%")
    for verdict in verdicts:
        print("  " + verdict)


if __name__ == "__main__":
    main()
