"""Envelope encryption round trips: Aureus against raw AES-GCM, the AWS Encryption SDK and Tink.

Everything is measured in one process, in one run, on the same payload bytes,
so the ratios (not the absolute times) are what to read.  A round trip is one
encrypt followed by one decrypt of the whole payload; its result is checked
against the payload once, outside the timed loop.

    .venv/bin/python benchmarks/bench_envelope.py                 # full table + targets
    .venv/bin/python benchmarks/bench_envelope.py --quick         # CI smoke
    .venv/bin/python benchmarks/bench_envelope.py --sweep-frame-length
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import gc
import hmac
import importlib.metadata
import io
import json
import math
import os
import platform
import re
import resource
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA512
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from aureus_core import KeyStack
from aureus_core.context import EncryptionContext
from aureus_core.envelope.message import DEFAULT_FRAME_LENGTH
from aureus_core.errors import DecryptionError

KIB = 1024
MIB = 1024 * 1024
DEFAULT_SIZES = (KIB, 64 * KIB, MIB, 16 * MIB)
SWEEP_FRAME_LENGTHS = (4 * KIB, 16 * KIB, 64 * KIB, 256 * KIB, MIB, 4 * MIB)
CONTEXT = {"purpose": "benchmark", "tenant": "acme"}
"""Encryption context on every Aureus/SDK encrypt (Tink: its JSON as associated data)."""
KEY_NAME = "bench"

RoundTrip = Callable[[], bytes]
"""Encrypts the payload, decrypts the result and returns the plaintext."""


# -- machine facts -------------------------------------------------------------


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _cpu_info() -> tuple[str, set[str]]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown", set()
    model = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    flags = re.search(r"^flags\s*:\s*(.+)$", text, re.MULTILINE)
    return (
        model.group(1).strip() if model else platform.processor() or "unknown",
        set(flags.group(1).split()) if flags else set(),
    )


def _openssl_version() -> str:
    try:
        from cryptography.hazmat.backends.openssl.backend import backend

        return str(backend.openssl_version_text())
    except Exception as error:  # the private location moves between releases
        return f"unknown ({type(error).__name__})"


def machine_facts() -> dict[str, Any]:
    """What the numbers depend on: interpreter, CPU, crypto library versions."""
    model, flags = _cpu_info()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    return {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "cpu": model,
        "cpu_features": {
            "aes-ni": "aes" in flags,
            "pclmulqdq": "pclmulqdq" in flags,
            "vaes": "vaes" in flags,
            "avx512f": "avx512f" in flags,
            "sha-ni": "sha_ni" in flags,
        },
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "cryptography": _version("cryptography"),
        "openssl": _openssl_version(),
        "aureus-kms": _version("aureus-kms"),
        "aws-encryption-sdk": _version("aws-encryption-sdk"),
        "tink": _version("tink"),
        "load_average_at_start": _load_average(),
        "malloc_env": {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")},
    }


M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3


def steady_malloc() -> str:
    """Ask glibc to keep freed big buffers for reuse instead of returning them to the kernel.

    By default a freed buffer of more than a few MiB goes back to the kernel
    (munmap, or trimming the heap top), and the next one page-faults in again,
    4 KiB at a time.  Whether that happens depends on allocation order, so it
    can favour one implementation by luck.  With this, big buffers are reused
    and the table measures the libraries rather than the kernel's page faults.
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        ok = libc.mallopt(M_MMAP_THRESHOLD, 32 * MIB) and libc.mallopt(M_TRIM_THRESHOLD, 1 << 30)
    except (OSError, AttributeError):
        ok = 0
    if not ok:
        return ""  # not glibc: nothing to tune, the facts line says "glibc defaults"
    return "mallopt(M_MMAP_THRESHOLD=32 MiB, M_TRIM_THRESHOLD=1 GiB)"


def _load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


LOAD_WARNING = 0.5


def print_load_warning(label: str, load: float | None) -> None:
    if load is not None and load > LOAD_WARNING:
        print(
            f"WARNING: load average {load} {label}: other processes compete for the CPU, so "
            "absolute numbers are low and noisy; ratios are less affected (cells of one size "
            "are interleaved) but rerun on an idle machine before trusting them"
        )


def print_machine_facts(facts: dict[str, Any]) -> None:
    features = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in facts["cpu_features"].items())
    print(f"Python        {facts['python']} on {facts['platform']}")
    print(f"CPU           {facts['cpu']}")
    print(f"              {facts['cores']} cores ({facts['usable_cores']} usable); {features}")
    print(f"cryptography  {facts['cryptography']} ({facts['openssl']})")
    print(
        f"aureus-kms    {facts['aureus-kms']};  aws-encryption-sdk {facts['aws-encryption-sdk']};"
        f"  tink {facts['tink']}"
    )
    malloc = " ".join(f"{k}={v}" for k, v in facts["malloc_env"].items()) or "glibc defaults"
    if facts.get("malloc_tuning"):
        malloc = f"{facts['malloc_tuning']}; --glibc-malloc to leave it alone"
    print(f"Load, malloc  1-min load average {facts['load_average_at_start']}; {malloc}")
    print_load_warning("at start", facts["load_average_at_start"])


# -- sizes ---------------------------------------------------------------------

_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]?)(?:i?b)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """``4096``, ``4K``, ``64KiB``, ``16M``, ``1G`` (binary units) to bytes."""
    match = _SIZE.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 4096, 64K, 16M)")
    number, unit = int(match.group(1)), match.group(2).lower()
    value = number * {"": 1, "k": KIB, "m": MIB, "g": 1024 * MIB}[unit]
    if value < 1:
        raise argparse.ArgumentTypeError("sizes must be at least 1 byte")
    return value


def parse_sizes(text: str) -> list[int]:
    return [parse_size(part) for part in text.split(",") if part.strip()]


def size_label(size: int) -> str:
    for unit, name in ((MIB, "MiB"), (KIB, "KiB")):
        if size >= unit and size % unit == 0:
            return f"{size // unit} {name}"
    return f"{size} B"


def time_label(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


# -- timing --------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """How long each cell is measured."""

    min_time: float = 0.5
    """Keep sampling until at least this many seconds were timed ..."""
    min_samples: int = 7
    """... and at least this many samples were taken ..."""
    max_time: float = 4.0
    """... unless this many seconds passed and at least ``floor_samples`` were taken."""
    floor_samples: int = 3
    warmup_time: float = 0.1
    warmup_ops: int = 2
    sample_target: float = 0.002
    """Fast operations are timed in batches so one sample lasts about this long."""

    @classmethod
    def quick(cls) -> Timing:
        return cls(
            min_time=0.1, min_samples=3, max_time=1.0, floor_samples=2, warmup_time=0.02,
            warmup_ops=1,
        )  # fmt: skip


@dataclass
class Measurement:
    """One cell: an implementation on one payload size."""

    implementation: str
    label: str
    size: int
    ops: int
    samples: int
    median_s: float
    """Median per-round-trip time over the samples (a sample is a batch of ``batch`` ops)."""
    min_s: float
    max_s: float
    batch: int
    capped: bool
    """True when the time cap ended sampling before the usual minimums."""
    faults_per_op: float
    """Minor page faults per round trip: fresh memory the kernel had to map (4 KiB each)."""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        return 1.0 / self.median_s

    @property
    def mb_per_s(self) -> float:
        return self.size / self.median_s / 1e6


@dataclass
class _Cell:
    implementation: str
    label: str
    size: int
    round_trip: RoundTrip
    batch: int = 1
    samples: list[float] = field(default_factory=list)
    timed: float = 0.0
    faults: int = 0
    capped: bool = False

    def done(self, timing: Timing) -> bool:
        if self.timed >= timing.min_time and len(self.samples) >= timing.min_samples:
            return True
        if self.timed >= timing.max_time and len(self.samples) >= timing.floor_samples:
            self.capped = True
            return True
        return False


def _warm_up(cell: _Cell, timing: Timing) -> None:
    """Run a few round trips untimed; size the batch so one sample lasts ``sample_target``."""
    started = time.perf_counter()
    ops = 0
    while ops < timing.warmup_ops or time.perf_counter() - started < timing.warmup_time:
        cell.round_trip()
        ops += 1
        if time.perf_counter() - started > timing.max_time / 4:
            break
    estimate = (time.perf_counter() - started) / ops
    cell.batch = max(1, min(100_000, math.ceil(timing.sample_target / max(estimate, 1e-9))))


def measure_group(cells: Sequence[_Cell], timing: Timing) -> list[Measurement]:
    """Time several cells interleaved, round-robin, until each satisfies the timing policy.

    Each round takes one sample (a batch of round trips) from every cell still
    running, so load from other processes that comes and goes during the
    group hits every implementation alike instead of whichever ran then.
    The garbage collector is off while a sample is timed, on in between.
    """
    gc.collect()
    for cell in cells:
        _warm_up(cell, timing)
    active = list(cells)
    while active:
        for cell in list(active):
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            gc.disable()
            try:
                t0 = time.perf_counter()
                for _ in range(cell.batch):
                    cell.round_trip()
                elapsed = time.perf_counter() - t0
            finally:
                gc.enable()
            cell.faults += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
            cell.samples.append(elapsed / cell.batch)
            cell.timed += elapsed
            if cell.done(timing):
                active.remove(cell)
                print(
                    f"  {cell.label:<30} {size_label(cell.size):>7}  "
                    f"{time_label(statistics.median(cell.samples)):>10}  "
                    f"({len(cell.samples) * cell.batch} round trips)",
                    file=sys.stderr,
                    flush=True,
                )
    return [
        Measurement(
            implementation=cell.implementation,
            label=cell.label,
            size=cell.size,
            ops=len(cell.samples) * cell.batch,
            samples=len(cell.samples),
            median_s=statistics.median(cell.samples),
            min_s=min(cell.samples),
            max_s=max(cell.samples),
            batch=cell.batch,
            capped=cell.capped,
            faults_per_op=cell.faults / (len(cell.samples) * cell.batch),
        )
        for cell in cells
    ]


# -- implementations -----------------------------------------------------------


@dataclass(frozen=True)
class Implementation:
    """One row family of the table."""

    key: str
    label: str
    make: Callable[[bytes], RoundTrip]
    sdk_peer: str | None = None
    """The SDK row an Aureus row is compared with (same algorithm suite)."""
    max_size: int | None = None
    """Sizes above this are not measured (a per-message reference, not a bulk one)."""


class Fixtures:
    """One AES-256 wrapping key, imported into a local keystore and handed to the SDK."""

    def __init__(self, workdir: Path, frame_length: int) -> None:
        self.frame_length = frame_length
        self.key_bytes = os.urandom(32)
        self.stack = KeyStack.local(workdir / "keystore", wrapping_keys=[f"local://{KEY_NAME}"])
        metadata = self.stack.import_key(KEY_NAME, "aes-256", raw=self.key_bytes)
        self.key_version = metadata.current_version
        # The same keystore behind a memory data-key cache (1000 messages per data key).
        self.cached_stack = KeyStack.from_dict(
            {
                "stack": {"wrapping_keys": [f"local://{KEY_NAME}"]},
                "providers": {"local": {"keystore": str(workdir / "keystore")}},
                "cache": {"backend": "memory", "max_messages": 1000},
            }
        )
        self.notes: list[str] = []

    def close(self) -> None:
        self.stack.close()
        self.cached_stack.close()

    # Raw AES-GCM: one call per direction, fresh random nonce, nothing else.
    def raw_aesgcm(self, payload: bytes) -> RoundTrip:
        aead = AESGCM(self.key_bytes)

        def round_trip() -> bytes:
            nonce = os.urandom(12)
            return aead.decrypt(nonce, aead.encrypt(nonce, payload, None), None)

        return round_trip

    def crypto_floor(self, payload: bytes) -> RoundTrip:
        """Only the primitive calls a one-recipient, one-frame 0x0478 round trip must make.

        Random data key, message ID and wrapping IV; wrap and unwrap the data
        key; two HKDF-SHA512 derivations per side (data key and commitment);
        header tag and check; the payload in one AES-GCM call each way.  No
        parsing, no serialization, no key lookup: the best any implementation
        of the format could do from Python with these primitives.
        """
        wrapping = self.key_bytes
        context = json.dumps(CONTEXT).encode()
        header = bytes(160)  # about the size of a real header with this context

        def keys(data_key: bytes, message_id: bytes) -> tuple[bytes, bytes]:
            derived = [
                HKDF(algorithm=SHA512(), length=32, salt=message_id, info=info).derive(data_key)
                for info in (b"\x04\x78DERIVEKEY", b"COMMITKEY")
            ]
            return derived[0], derived[1]

        def round_trip() -> bytes:
            data_key, message_id, iv = os.urandom(32), os.urandom(32), os.urandom(12)
            wrapped = AESGCM(wrapping).encrypt(iv, data_key, context)
            key, _ = keys(data_key, message_id)
            writer = AESGCM(key)
            tag = writer.encrypt(bytes(12), b"", header)
            body = writer.encrypt(bytes(8) + b"\0\0\0\1", payload, message_id)
            key, _ = keys(AESGCM(wrapping).decrypt(iv, wrapped, context), message_id)
            reader = AESGCM(key)
            reader.decrypt(bytes(12), tag, header)
            return reader.decrypt(bytes(8) + b"\0\0\0\1", body, message_id)

        return round_trip

    def format_floor(self, payload: bytes) -> RoundTrip:
        """The real 0x0478 message written and read in flat Python, one local key, no layers.

        What Python alone costs for the format: the crypto floor's primitive
        calls plus building and parsing the actual header, wrapped data key and
        frames with ``struct``, with the format's own checks (suite, layout,
        commitment, header tag, frame numbers and lengths) and none of
        Aureus's (key lookup and usability, wrap limits, usage counters,
        breaker, audit and telemetry hooks, limits, context validation).  Its
        messages decrypt with Aureus (checked once below), so the row measures
        the format, not a shortcut of it.
        """
        wrapping = AESGCM(self.key_bytes)
        frame_length = self.frame_length
        context = EncryptionContext.coerce(CONTEXT).serialize()
        info_head = f"{KEY_NAME}:{self.key_version}".encode() + struct.pack(">II", 128, 12)
        provider = b"aureus-local"
        head, u16, u32, tail = (
            struct.Struct(">BH32sH"), struct.Struct(">H"), struct.Struct(">I"),
            struct.Struct(">BI"),
        )  # fmt: skip
        aad_tail, frame_iv = struct.Struct(">IQ"), struct.Struct(">8xI")
        regular, final = b"AWSKMSEncryptionClient Frame", b"AWSKMSEncryptionClient Final Frame"

        def keys(data_key: bytes, message_id: bytes) -> tuple[bytes, bytes]:
            prk = hmac.digest(message_id, data_key, "sha512")
            derived = hmac.digest(prk, b"\x04\x78DERIVEKEY\x01", "sha512")[:32]
            return derived, hmac.digest(prk, b"COMMITKEY\x01", "sha512")[:32]

        def encrypt(plaintext: bytes) -> bytes:
            fresh = os.urandom(76)
            data_key, message_id, iv = fresh[:32], fresh[32:64], fresh[64:]
            wrapped = wrapping.encrypt(iv, data_key, context)
            info = info_head + iv
            key, commitment = keys(data_key, message_id)
            header = b"".join((
                head.pack(2, 0x0478, message_id, len(context)), context, b"\0\1",
                u16.pack(len(provider)), provider, u16.pack(len(info)), info,
                u16.pack(len(wrapped)), wrapped, tail.pack(2, frame_length), commitment,
            ))  # fmt: skip
            aead = AESGCM(key)
            parts = [header, aead.encrypt(bytes(12), b"", header)]
            view, sequence, pos = memoryview(plaintext), 1, 0
            while len(plaintext) - pos >= frame_length:  # regular frames (a full last one too)
                nonce = frame_iv.pack(sequence)
                aad = message_id + regular + aad_tail.pack(sequence, frame_length)
                chunk = view[pos : pos + frame_length]
                parts += (u32.pack(sequence), nonce, aead.encrypt(nonce, chunk, aad))
                sequence, pos = sequence + 1, pos + frame_length
            nonce, rest = frame_iv.pack(sequence), len(plaintext) - pos
            aad = message_id + final + aad_tail.pack(sequence, rest)
            parts += (b"\xff\xff\xff\xff", u32.pack(sequence), nonce, u32.pack(rest))
            parts.append(aead.encrypt(nonce, view[pos:], aad))
            return b"".join(parts)

        def decrypt(message: bytes) -> bytes:
            data = memoryview(message)
            version, suite, message_id, length = head.unpack_from(data, 0)
            pos = head.size + length
            if version != 2 or suite != 0x0478 or bytes(data[head.size : pos]) != context:
                raise DecryptionError()
            if u16.unpack_from(data, pos)[0] != 1:
                raise DecryptionError()
            fields = []
            pos += 2
            for _ in range(3):
                (length,) = u16.unpack_from(data, pos)
                fields.append(bytes(data[pos + 2 : pos + 2 + length]))
                pos += 2 + length
            content, length = tail.unpack_from(data, pos)
            commitment = data[pos + 5 : pos + 37]
            header, pos = data[: pos + 37], pos + 37
            if fields[0] != provider or fields[1][:-12] != info_head or content != 2:
                raise DecryptionError()
            data_key = wrapping.decrypt(fields[1][-12:], fields[2], context)
            key, expected = keys(data_key, message_id)
            if length != frame_length or not hmac.compare_digest(expected, commitment):
                raise DecryptionError()
            aead = AESGCM(key)
            aead.decrypt(bytes(12), data[pos : pos + 16], header)
            out, sequence, pos = [], 1, pos + 16
            while True:
                (number,) = u32.unpack_from(data, pos)
                last = number == 0xFFFFFFFF
                if last:
                    pos += 4
                    (number,) = u32.unpack_from(data, pos)
                if number != sequence:
                    raise DecryptionError()
                nonce = data[pos + 4 : pos + 16]
                if last:
                    (size,) = u32.unpack_from(data, pos + 16)
                    pos += 20
                    if size > frame_length or pos + size + 16 != len(data):
                        raise DecryptionError()
                else:
                    size, pos = frame_length, pos + 16
                aad = message_id + (final if last else regular) + aad_tail.pack(sequence, size)
                out.append(aead.decrypt(nonce, data[pos : pos + size + 16], aad))
                if last:
                    return b"".join(out)
                sequence, pos = sequence + 1, pos + size + 16

        sample = encrypt(payload[:100])
        if self.stack.decrypt(sample) != payload[:100] or decrypt(sample) != payload[:100]:
            raise AssertionError("the format floor's message does not decrypt with Aureus")

        def round_trip() -> bytes:
            return decrypt(encrypt(payload))

        return round_trip

    def aureus_one_shot(self, payload: bytes, *, signed: bool = False) -> RoundTrip:
        stack, length = self.stack, self.frame_length

        def round_trip() -> bytes:
            message = stack.encrypt(payload, context=CONTEXT, signed=signed, frame_length=length)
            return stack.decrypt(message)

        return round_trip

    def aureus_cached(self, payload: bytes) -> RoundTrip:
        """One-shot round trips through a memory data-key cache: no wrap or unwrap per message."""
        stack, length = self.cached_stack, self.frame_length

        def round_trip() -> bytes:
            return stack.decrypt(stack.encrypt(payload, context=CONTEXT, frame_length=length))

        return round_trip

    def aureus_signed(self, payload: bytes) -> RoundTrip:
        return self.aureus_one_shot(payload, signed=True)

    def aureus_stream(self, payload: bytes) -> RoundTrip:
        stack, length = self.stack, self.frame_length

        def round_trip() -> bytes:
            sealed = io.BytesIO()
            stack.encrypt_stream(io.BytesIO(payload), sealed, context=CONTEXT, frame_length=length)
            opened = io.BytesIO()
            stack.decrypt_stream(io.BytesIO(sealed.getvalue()), opened)
            return opened.getvalue()

        return round_trip

    def _sdk_master_key(self) -> Any:
        from aws_encryption_sdk.identifiers import EncryptionKeyType, WrappingAlgorithm
        from aws_encryption_sdk.internal.crypto.wrapping_keys import WrappingKey
        from aws_encryption_sdk.key_providers.raw import RawMasterKey

        # The raw AES keyring layout of a local key: see tests/core/envelope/test_interop.py.
        return RawMasterKey(
            provider_id="aureus-local",
            key_id=f"{KEY_NAME}:{self.key_version}".encode(),
            wrapping_key=WrappingKey(
                wrapping_algorithm=WrappingAlgorithm.AES_256_GCM_IV12_TAG16_NO_PADDING,
                wrapping_key=self.key_bytes,
                wrapping_key_type=EncryptionKeyType.SYMMETRIC,
            ),
        )

    @staticmethod
    def _sdk_client() -> Any:
        import aws_encryption_sdk
        from aws_encryption_sdk.identifiers import CommitmentPolicy

        return aws_encryption_sdk.EncryptionSDKClient(
            commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
        )

    def sdk(self, payload: bytes, *, signed: bool, own_default: bool = False) -> RoundTrip:
        from aws_encryption_sdk.identifiers import Algorithm

        client, master_key = self._sdk_client(), self._sdk_master_key()
        # own_default: the SDK's own default frame length (4 KiB), what its users get.
        framing = {} if own_default else {"frame_length": self.frame_length}
        algorithm = (
            Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384
            if signed
            else Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY
        )

        def round_trip() -> bytes:
            message, _ = client.encrypt(
                source=payload,
                key_provider=master_key,
                encryption_context=CONTEXT,
                algorithm=algorithm,
                **framing,
            )
            plaintext, _ = client.decrypt(source=message, key_provider=master_key)
            return bytes(plaintext)

        return round_trip

    def sdk_unsigned(self, payload: bytes) -> RoundTrip:
        return self.sdk(payload, signed=False)

    def sdk_signed(self, payload: bytes) -> RoundTrip:
        return self.sdk(payload, signed=True)

    def sdk_own_default(self, payload: bytes) -> RoundTrip:
        return self.sdk(payload, signed=False, own_default=True)

    def check_interop(self) -> None:
        """The SDK must read an Aureus message made with these key bytes, or nothing compares."""
        for signed in (False, True):
            message = self.stack.encrypt(b"interop", context=CONTEXT, signed=signed)
            plaintext, _ = self._sdk_client().decrypt(
                source=message, key_provider=self._sdk_master_key()
            )
            if plaintext != b"interop":
                raise SystemExit("the AWS Encryption SDK does not read Aureus messages")

    def tink_aead(self, payload: bytes) -> RoundTrip:
        import tink
        from tink import aead

        aead.register()
        handle = tink.new_keyset_handle(aead.aead_key_templates.AES256_GCM)
        primitive = handle.primitive(aead.Aead)
        associated = json.dumps(CONTEXT, sort_keys=True).encode()

        def round_trip() -> bytes:
            return bytes(primitive.decrypt(primitive.encrypt(payload, associated), associated))

        return round_trip

    def implementations(self) -> list[Implementation]:
        """Every row family, skipping (with a note) libraries that are not installed."""
        rows = [Implementation("raw", "raw AES-GCM (cryptography)", self.raw_aesgcm)]
        if _installed("tink"):
            rows.append(Implementation("tink", "Tink AEAD AES256_GCM", self.tink_aead))
        else:
            self.notes.append("tink is not installed: its row is skipped")
        rows += [
            Implementation("floor", "crypto floor 0x0478 (ref.)", self.crypto_floor, "sdk"),
            Implementation(
                "format", "format floor 0x0478 (ref.)", self.format_floor, "sdk", max_size=64 * KIB
            ),
            Implementation("aureus", "Aureus one-shot 0x0478", self.aureus_one_shot, "sdk"),
            Implementation(
                "aureus-cached", "Aureus one-shot, cached key", self.aureus_cached, "sdk"
            ),
            Implementation("aureus-stream", "Aureus stream 0x0478", self.aureus_stream, "sdk"),
            Implementation(
                "aureus-signed", "Aureus one-shot 0x0578", self.aureus_signed, "sdk-signed"
            ),
        ]
        if _installed("aws_encryption_sdk"):
            self.check_interop()
            rows += [
                Implementation("sdk", "AWS Encryption SDK 0x0478", self.sdk_unsigned),
                Implementation("sdk-signed", "AWS Encryption SDK 0x0578", self.sdk_signed),
                Implementation("sdk-default", "SDK 0x0478, own 4 KiB frames", self.sdk_own_default),
            ]
        else:
            self.notes.append("aws-encryption-sdk is not installed: its rows and targets skipped")
        return rows


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def prepare(implementation: Implementation, payload: bytes, label: str | None = None) -> _Cell:
    """Build a cell's round trip and check it once, outside any timing."""
    round_trip = implementation.make(payload)
    if round_trip() != payload:
        raise SystemExit(f"{implementation.label}: round trip of {len(payload)} bytes differs")
    return _Cell(implementation.key, label or implementation.label, len(payload), round_trip)


# -- main table ----------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A goal from the performance brief and whether this run met it."""

    name: str
    ratio: float | None
    goal: float

    @property
    def verdict(self) -> str:
        if self.ratio is None:
            return "n/a"
        return "PASS" if self.ratio >= self.goal else "MISS"


def _find(results: Sequence[Measurement], key: str, size: int) -> Measurement | None:
    return next((r for r in results if r.implementation == key and r.size == size), None)


def annotate(results: Sequence[Measurement], rows: Sequence[Implementation]) -> None:
    """Add each row's ratio to raw AES-GCM and, for Aureus rows, to its SDK peer."""
    peers = {row.key: row.sdk_peer for row in rows}
    for result in results:
        raw = _find(results, "raw", result.size)
        result.extra["vs_raw"] = raw.median_s / result.median_s if raw else None
        peer_key = peers.get(result.implementation)
        peer = _find(results, peer_key, result.size) if peer_key else None
        result.extra["vs_sdk"] = peer.median_s / result.median_s if peer else None
        result.extra["sdk_peer"] = peer_key if peer else None


def targets(results: Sequence[Measurement]) -> list[Target]:
    def ratio(key: str, size: int, base: str) -> float | None:
        mine, other = _find(results, key, size), _find(results, base, size)
        return other.median_s / mine.median_s if mine and other else None

    return [
        Target("1 KiB round trip, Aureus one-shot, local key >= 6x the SDK (0x0478)",
               ratio("aureus", KIB, "sdk"), 6.0),
        Target("1 KiB round trip, Aureus one-shot, cached data key >= 10x the SDK (0x0478)",
               ratio("aureus-cached", KIB, "sdk"), 10.0),
        Target("16 MiB round trip, Aureus one-shot >= 0.90 of raw AES-GCM throughput",
               ratio("aureus", 16 * MIB, "raw"), 0.90),
        Target("16 MiB round trip, Aureus streaming >= 0.80 of raw AES-GCM throughput",
               ratio("aureus-stream", 16 * MIB, "raw"), 0.80),
        Target("1 KiB round trip, Aureus signed (0x0578) >= 2x the SDK",
               ratio("aureus-signed", KIB, "sdk-signed"), 2.0),
        Target("16 MiB round trip, Aureus signed (0x0578) >= 2x the SDK",
               ratio("aureus-signed", 16 * MIB, "sdk-signed"), 2.0),
    ]  # fmt: skip


def _ratio(value: float | None, suffix: str = "") -> str:
    return "—" if value is None else f"{value:.2f}{suffix}"


def print_table(results: Sequence[Measurement]) -> None:
    header = (
        f"{'implementation':<28} {'size':>7} {'n':>7} {'median':>10} "
        f"{'round trips/s':>13} {'MB/s':>9} {'vs raw':>7} {'Aureus/SDK':>10} {'faults/rt':>9}"
    )
    print(header)
    print("-" * len(header))
    previous = None
    for r in sorted(results, key=lambda r: (r.size, _ORDER.get(r.implementation, 99))):
        if previous is not None and r.size != previous:
            print()
        previous = r.size
        n = f"{r.ops}{'*' if r.capped else ''}"
        print(
            f"{r.label:<28} {size_label(r.size):>7} {n:>7} {time_label(r.median_s):>10} "
            f"{r.per_second:>13,.1f} {r.mb_per_s:>9,.1f} {_ratio(r.extra['vs_raw']):>7} "
            f"{_ratio(r.extra['vs_sdk'], 'x'):>10} {r.faults_per_op:>9,.0f}"
        )
    print(
        "faults/rt = minor page faults per round trip (fresh 4 KiB pages mapped by the kernel); "
        "should be ~0 unless\n--glibc-malloc is given; then, at large sizes, they and not AES "
        "can dominate (see the README)"
    )
    if any(r.capped for r in results):
        print(
            "* time cap reached: fewer round trips than the usual minimum were timed "
            "(slow implementation at a large size)"
        )


_ORDER = {key: i for i, key in enumerate(
    ["raw", "tink", "floor", "format", "aureus", "aureus-cached", "aureus-stream",
     "aureus-signed", "sdk", "sdk-signed"]
)}  # fmt: skip


def run_main(
    args: argparse.Namespace, fixtures: Fixtures, timing: Timing
) -> tuple[list[Measurement], list[Target]]:
    rows = fixtures.implementations()
    results: list[Measurement] = []
    print(f"measuring {len(rows)} implementations x {len(args.sizes)} sizes ...", file=sys.stderr)
    for size in args.sizes:
        payload = os.urandom(size)  # the same bytes for every implementation
        cells = [
            prepare(row, payload) for row in rows if row.max_size is None or size <= row.max_size
        ]
        results += measure_group(cells, timing)
        del payload
    annotate(results, rows)
    print()
    print_table(results)
    goals = targets(results)
    print()
    print("Targets")
    for goal in goals:
        shown = "not measured" if goal.ratio is None else f"{goal.ratio:.2f}x"
        print(f"  {goal.verdict:<4}  {goal.name}: {shown} (goal {goal.goal:g}x)")
    for text, mine, base in (
        ("1 KiB, ceiling for goals 1-2: crypto floor vs the SDK", ("floor", KIB), "sdk"),
        ("1 KiB, format floor (flat Python, no Aureus layers) vs the SDK", ("format", KIB), "sdk"),
        ("16 MiB, Aureus one-shot vs the SDK (0x0478)", ("aureus", 16 * MIB), "sdk"),
        (
            "16 MiB, Aureus one-shot vs the SDK at its own 4 KiB frames",
            ("aureus", 16 * MIB),
            "sdk-default",
        ),
        (
            "1 KiB, Aureus one-shot vs the SDK at its own 4 KiB frames",
            ("aureus", KIB),
            "sdk-default",
        ),
    ):
        found, other = _find(results, *mine), _find(results, base, mine[1])
        if found and other:
            print(f"  info  {text}: {other.median_s / found.median_s:.2f}x")
    return results, goals


# -- frame-length sweep --------------------------------------------------------


def message_overhead(stack: KeyStack, size: int, frame_length: int) -> int:
    """Bytes a message adds to a ``size``-byte payload (header, frame headers, tags)."""
    return len(stack.encrypt(bytes(size), context=CONTEXT, frame_length=frame_length)) - size


def run_sweep(fixtures: Fixtures, timing: Timing) -> list[dict[str, Any]]:
    """Aureus at each frame length, interleaved with raw AES-GCM on the same 16 MiB payload."""
    big, small = os.urandom(16 * MIB), os.urandom(KIB)
    raw = Implementation("raw", "raw AES-GCM (cryptography)", fixtures.raw_aesgcm)
    one_shot = Implementation("one_shot", "one-shot", fixtures.aureus_one_shot)
    stream = Implementation("stream", "stream", fixtures.aureus_stream)
    rows: list[dict[str, Any]] = []
    for length in SWEEP_FRAME_LENGTHS:
        fixtures.frame_length = length  # read when each round trip is built
        tag = f", frame {size_label(length)}"
        cells = [prepare(raw, big)] + [
            prepare(implementation, payload, implementation.label + tag)
            for implementation in (one_shot, stream)
            for payload in (big, small)
        ]
        row: dict[str, Any] = {"frame_length": length}
        for result in measure_group(cells, timing):
            name = f"{result.implementation}_{'16mib' if result.size == 16 * MIB else '1kib'}"
            row[name] = {**asdict(result), "mb_per_s": result.mb_per_s}
        for mode in ("one_shot", "stream"):
            row[f"{mode}_16mib_vs_raw"] = (
                row["raw_16mib"]["median_s"] / row[f"{mode}_16mib"]["median_s"]
            )
        row["overhead_16mib_bytes"] = message_overhead(fixtures.stack, 16 * MIB, length)
        rows.append(row)
    print()
    raw_mb = [16 * MIB / row["raw_16mib"]["median_s"] / 1e6 for row in rows]
    print(
        "Frame-length sweep: Aureus 0x0478, local aes-256 key; 'vs raw' against raw AES-GCM on "
        f"the same 16 MiB payload, measured interleaved in each row ({min(raw_mb):,.0f} to "
        f"{max(raw_mb):,.0f} MB/s)"
    )
    header = (
        f"{'frame length':>12} | {'one-shot 16 MiB':>22} | {'stream 16 MiB':>22} | "
        f"{'one-shot 1 KiB':>14} | {'stream 1 KiB':>14} | {'16 MiB overhead':>15}"
    )
    print(header)
    print(
        f"{'':>12} | {'MB/s':>12} {'vs raw':>9} | {'MB/s':>12} {'vs raw':>9} | "
        f"{'round trips/s':>14} | {'round trips/s':>14} | {'bytes':>15}"
    )
    print("-" * len(header))
    for row in rows:
        one_mb = 16 * MIB / row["one_shot_16mib"]["median_s"] / 1e6
        stream_mb = 16 * MIB / row["stream_16mib"]["median_s"] / 1e6
        marker = "  (default)" if row["frame_length"] == DEFAULT_FRAME_LENGTH else ""
        print(
            f"{size_label(row['frame_length']):>12} | "
            f"{one_mb:>12,.1f} {row['one_shot_16mib_vs_raw']:>9.2f} | "
            f"{stream_mb:>12,.1f} {row['stream_16mib_vs_raw']:>9.2f} | "
            f"{1 / row['one_shot_1kib']['median_s']:>14,.1f} | "
            f"{1 / row['stream_1kib']['median_s']:>14,.1f} | "
            f"{row['overhead_16mib_bytes']:>15,}{marker}"
        )
    return rows


# -- entry point ---------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="short timing, for a CI smoke run")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write every number here")
    parser.add_argument(
        "--frame-length",
        type=parse_size,
        default=DEFAULT_FRAME_LENGTH,
        metavar="N",
        help=f"frame length for Aureus and the SDK (default: Aureus's, {DEFAULT_FRAME_LENGTH})",
    )
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        default=list(DEFAULT_SIZES),
        metavar="LIST",
        help="payload sizes, comma-separated (default: 1K,64K,1M,16M)",
    )
    parser.add_argument(
        "--glibc-malloc",
        action="store_true",
        help="leave glibc's malloc tuning alone (see the README: big buffers then page-fault "
        "in on every use or not, depending on the process's allocation history)",
    )
    parser.add_argument(
        "--sweep-frame-length",
        action="store_true",
        help="instead of the main table, time Aureus at frame lengths "
        + ", ".join(size_label(n) for n in SWEEP_FRAME_LENGTHS),
    )
    return parser.parse_args(argv)


@contextmanager
def _fixtures(frame_length: int) -> Iterator[Fixtures]:
    with tempfile.TemporaryDirectory(prefix="aureus-bench-") as workdir:
        fixtures = Fixtures(Path(workdir), frame_length)
        try:
            yield fixtures
        finally:
            fixtures.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    timing = Timing.quick() if args.quick else Timing()
    facts = machine_facts()
    if not args.glibc_malloc:
        facts["malloc_tuning"] = steady_malloc()
    print_machine_facts(facts)
    print(
        f"Timing        median per round trip; >= {timing.min_time:g} s and >= "
        f"{timing.min_samples} samples per cell after warm-up (cap {timing.max_time:g} s)"
        f"{'; --quick' if args.quick else ''}"
    )
    report: dict[str, Any] = {"machine": facts, "timing": asdict(timing)}
    started = time.perf_counter()
    with _fixtures(args.frame_length) as fixtures:
        if args.sweep_frame_length:
            print("Mode          frame-length sweep (Aureus only, local aes-256 key, 0x0478)")
            report["sweep"] = run_sweep(fixtures, timing)
        else:
            print(
                f"Frame length  {args.frame_length} bytes for Aureus AND the SDK "
                f"(Aureus's default is {DEFAULT_FRAME_LENGTH}; the SDK's own is 4096)"
            )
            print(
                "Round trip    encrypt + decrypt of the whole payload; MB/s = payload bytes "
                "(10^6) / round-trip time"
            )
            results, goals = run_main(args, fixtures, timing)
            report["frame_length"] = args.frame_length
            report["results"] = [
                {**asdict(r), "per_second": r.per_second, "mb_per_s": r.mb_per_s} for r in results
            ]
            report["targets"] = [{**asdict(g), "verdict": g.verdict} for g in goals]
        for note in fixtures.notes:
            print(f"note: {note}")
    elapsed = time.perf_counter() - started
    report["elapsed_s"] = elapsed
    report["load_average_at_end"] = _load_average()
    print(
        f"\n(total {elapsed:.1f} s; 1-min load average at the end {report['load_average_at_end']}"
        ", counting this benchmark's own busy core)"
    )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
