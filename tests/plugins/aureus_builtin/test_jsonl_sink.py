"""The jsonl audit sink: chain, HMAC, checkpoints, head file, rotation, recovery, processes."""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import attrs
import filelock
import pytest

import aureus_builtin
import aureus_core
import aureus_local
from aureus_builtin.jsonl_sink import JsonlAuditSink
from aureus_core import KeyStack
from aureus_core.audit import AuditEvent, derive_key
from aureus_core.audit.chain import (
    CHAIN_KEY_LABEL,
    GENESIS,
    ChainError,
    Verdict,
    canonical,
    chain_files,
    chain_key_label,
    head_mac,
    head_path,
    public_key_check,
    record_hash,
    rotated_path,
    sig_value,
    verify_chain,
)
from aureus_core.errors import AuditFailure, AuditSinkError, ConfigError
from aureus_core.interfaces import Capability, KeyProvider
from aureus_core.keyref import KeyRef
from aureus_core.keys import KeySpec, KeyType
from aureus_core.testing import AuditSinkContract, make_event
from aureus_local import LocalKeyProvider

WORKER = Path(__file__).with_name("_audit_worker.py")
MAC_KEY = "local://audit-mac"
SIGNER = "local://audit-signer"


@pytest.fixture
def keys(tmp_path: Path) -> Iterator[LocalKeyProvider]:
    """A keystore with an aes-256 MAC key and an ed25519 checkpoint key."""
    provider = LocalKeyProvider(tmp_path / "ks")
    provider.create_key("audit-mac", KeySpec(key_type=KeyType.AES_256))
    provider.create_key("audit-signer", KeySpec(key_type=KeyType.ED25519))
    yield provider
    provider.close()


def lookup(provider: KeyProvider) -> Callable[[str], KeyProvider]:
    def providers(scheme: str) -> KeyProvider:
        assert scheme == "local"
        return provider

    return providers


def check_with(provider: KeyProvider) -> Callable[[Mapping[str, Any], bytes], bool]:
    def check(sig: Mapping[str, Any], message: bytes) -> bool:
        ref = KeyRef.parse(sig["key"]).with_version(sig["version"])
        return provider.verify(ref, message, sig_value(sig))

    return check


def mac_with(provider: KeyProvider) -> Callable[[str, bytes], bytes]:
    """The verifier's MAC source: the provider's MAC under a pinned key URI."""
    return lambda uri, label: derive_key(lookup(provider), KeyRef.parse(uri), label)[0]


def verify(path: Path, provider: KeyProvider | None = None, **kwargs: Any) -> Verdict:
    """Verify the whole log at ``path`` with its head file, keyed through ``provider``."""
    if provider is not None:
        kwargs.setdefault("mac_key", MAC_KEY)
        kwargs.setdefault("mac", mac_with(provider))
        kwargs.setdefault("check_signature", check_with(provider))
    if not kwargs.get("no_head"):
        kwargs.setdefault("head", head_path(path))
    return verify_chain(chain_files(path), **kwargs)


def failure(verdict: Verdict) -> str:
    """The message of a verdict that must be a failure (``ok`` is exactly False)."""
    assert verdict.ok is False, verdict.message
    return verdict.message


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def keyed_sink(path: Path, provider: KeyProvider, **kwargs: Any) -> JsonlAuditSink:
    kwargs.setdefault("checkpoint_every", 5)
    return JsonlAuditSink(
        path, hmac_key=MAC_KEY, checkpoint_key=SIGNER, providers=lookup(provider), **kwargs
    )


def emit_until_the_first_rotation(path: Path, sink: JsonlAuditSink) -> tuple[int, bytes]:
    """Emit events until the log rotates once: the events emitted and the head before the last."""
    number = 0
    while True:
        old_head = head_path(path).read_bytes() if head_path(path).exists() else None
        sink.emit(make_event(number))
        number += 1
        if rotated_path(path, 1).exists():
            break
    assert old_head is not None
    return number, old_head


# -- the contract ----------------------------------------------------------------------


@pytest.fixture
def log_directory_gone(tmp_path: Path) -> Callable[[], AbstractContextManager[None]]:
    """Break the contract's log store: its directory moved away, a file in its place."""

    @contextmanager
    def broken() -> Iterator[None]:
        directory = tmp_path / "log"
        directory.rename(tmp_path / "log.away")
        directory.write_text("not a directory")
        try:
            yield
        finally:
            directory.unlink()
            (tmp_path / "log.away").rename(directory)

    return broken


class TestJsonlAuditSinkContract(AuditSinkContract):
    @pytest.fixture
    def audit_sink(self, tmp_path: Path) -> JsonlAuditSink:
        return JsonlAuditSink.from_options({"path": str(tmp_path / "log" / "audit.jsonl")})

    @pytest.fixture
    def break_store(
        self, log_directory_gone: Callable[[], AbstractContextManager[None]]
    ) -> Callable[[], AbstractContextManager[None]]:
        return log_directory_gone

    @pytest.fixture
    def recorded_events(
        self, audit_sink: JsonlAuditSink
    ) -> Callable[[], Sequence[Mapping[str, object]]]:
        return audit_sink.read_events

    @pytest.fixture(autouse=True)
    def chain_stays_intact(self, audit_sink: JsonlAuditSink) -> Iterator[None]:
        yield
        if audit_sink.path.exists():
            verdict = verify(audit_sink.path)
            assert verdict.ok, verdict.message


class TestKeyedRotatingJsonlAuditSinkContract(AuditSinkContract):
    """The same contract with an HMAC chain, checkpoints and rotation across small files."""

    @pytest.fixture
    def audit_sink(self, tmp_path: Path, keys: LocalKeyProvider) -> JsonlAuditSink:
        return keyed_sink(
            tmp_path / "log" / "audit.jsonl", keys, checkpoint_every=7, max_bytes=8192
        )

    @pytest.fixture
    def break_store(
        self, log_directory_gone: Callable[[], AbstractContextManager[None]]
    ) -> Callable[[], AbstractContextManager[None]]:
        return log_directory_gone

    @pytest.fixture
    def recorded_events(
        self, audit_sink: JsonlAuditSink
    ) -> Callable[[], Sequence[Mapping[str, object]]]:
        return audit_sink.read_events

    @pytest.fixture(autouse=True)
    def chain_stays_intact(
        self, audit_sink: JsonlAuditSink, keys: LocalKeyProvider
    ) -> Iterator[None]:
        yield
        if audit_sink.path.exists():
            verdict = verify(audit_sink.path, keys)
            assert verdict.ok, verdict.message


# -- the chain -------------------------------------------------------------------------


def test_records_link_and_the_head_names_the_last(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "audit.jsonl"
    sink = JsonlAuditSink(path)
    for number in range(3):
        sink.emit(make_event(number))
    records = lines(path)
    assert [(r["seq"], r["kind"]) for r in records] == [
        (0, "file"),
        (1, "event"),
        (2, "event"),
        (3, "event"),
    ]
    assert records[0]["prev"] == GENESIS
    log = records[0]["file"]["log"]
    assert re.fullmatch("[0-9a-f]{32}", log)
    assert records[0]["file"] == {
        "format": "aureus-audit-jsonl/2",
        "index": 1,
        "log": log,
        "params": {"alg": "sha256"},
    }
    for before, after in itertools.pairwise(records):
        assert after["prev"] == before["hash"]
    assert all(r["hash"] == record_hash(r, None, log) for r in records)
    assert records[1]["event"] == make_event(0).to_dict()
    assert list(records[1]) == ["seq", "kind", "prev", "event", "hash"]  # readable order
    head = json.loads(head_path(path).read_text())
    assert (head["seq"], head["hash"], head["size"], head["log"]) == (
        3,
        records[-1]["hash"],
        path.stat().st_size,
        log,
    )
    assert "mac" not in head
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    verdict = verify(path)
    assert verdict.ok, verdict.message
    assert (verdict.records, verdict.events, verdict.log) == (4, 3, log)
    assert verdict.message == (
        f"OK: 4 records (seq 0-3, 3 events) in 1 file; log {log}; SHA-256; head file matches"
    )


def test_rotation_continues_the_chain_across_files(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    sink = JsonlAuditSink(path, max_bytes=2048)
    events = [make_event(number) for number in range(30)]
    for event in events:
        sink.emit(event)
    files = chain_files(path)
    assert len(files) >= 4
    assert files[:2] == [rotated_path(path, 1), rotated_path(path, 2)]
    for before, after in itertools.pairwise(files):
        last, first = lines(before)[-1], lines(after)[0]
        assert first["kind"] == "file"
        assert (first["seq"], first["prev"]) == (last["seq"] + 1, last["hash"])
    assert all(f.stat().st_size <= 2048 for f in files)
    assert sink.read_events() == [e.to_dict() for e in events]
    verdict = verify(path)
    assert verdict.ok, verdict.message
    assert f"in {len(files)} files" in verdict.message


def test_hmac_chain_needs_the_key_to_check(tmp_path: Path, keys: LocalKeyProvider) -> None:
    path = tmp_path / "audit.jsonl"
    sink = keyed_sink(path, keys)
    for number in range(3):
        sink.emit(make_event(number))
    records = lines(path)
    assert records[0]["file"]["params"] == {
        "alg": "hmac-sha256",
        "mac_key": "local://audit-mac?version=1",
        "checkpoint_key": SIGNER,
        "checkpoint_every": 5,
    }
    log = records[0]["file"]["log"]
    assert all(r["hash"] != record_hash(r, None, log) for r in records)
    assert "mac" in json.loads(head_path(path).read_text())
    with pytest.raises(ChainError, match="pass --mac-key local://audit-mac"):
        verify(path)
    verdict = verify(path, keys)
    assert verdict.ok, verdict.message
    assert "HMAC-SHA-256 under local://audit-mac?version=1" in verdict.message


def test_a_rotated_mac_key_starts_a_new_file_under_the_new_version(
    tmp_path: Path, keys: LocalKeyProvider
) -> None:
    """The running writer notices the rotation at its next key check and changes chain key."""
    path = tmp_path / "audit.jsonl"
    sink = keyed_sink(path, keys, key_check_interval=0)
    sink.emit(make_event(1))
    keys.rotate_key(KeyRef.parse(MAC_KEY))
    sink.emit(make_event(2))
    sink.emit(make_event(3))
    first, second = chain_files(path)
    assert first == rotated_path(path, 1)
    old, new = lines(first), lines(second)
    assert old[0]["file"]["params"]["mac_key"] == "local://audit-mac?version=1"
    assert new[0]["file"]["params"]["mac_key"] == "local://audit-mac?version=2"
    assert (new[0]["seq"], new[0]["prev"]) == (old[-1]["seq"] + 1, old[-1]["hash"])
    assert new[0]["file"]["log"] == old[0]["file"]["log"]
    log = old[0]["file"]["log"]
    for version, records in (("1", old), ("2", new)):
        pinned = KeyRef.parse(MAC_KEY).with_version(version)
        chain_key = derive_key(lookup(keys), pinned, chain_key_label(log))[0]
        assert all(r["hash"] == record_hash(r, chain_key, log) for r in records)
    verdict = verify(path, keys)
    assert verdict.ok, verdict.message
    assert "HMAC-SHA-256 under local://audit-mac?version=2" in verdict.message


def test_the_old_versions_chain_key_cannot_forge_records_after_a_rotation(
    tmp_path: Path, keys: LocalKeyProvider
) -> None:
    """Whoever derived the version-1 chain key once cannot rewrite what version 2 chains."""
    path = tmp_path / "audit.jsonl"
    sink = keyed_sink(path, keys, key_check_interval=0)
    sink.emit(make_event(1))
    keys.rotate_key(KeyRef.parse(MAC_KEY))
    sink.emit(make_event(2))
    active = lines(path)
    log = active[0]["file"]["log"]
    stolen = derive_key(lookup(keys), KeyRef.parse(f"{MAC_KEY}?version=1"), chain_key_label(log))
    edited = active[1]
    assert edited["kind"] == "event"
    edited["event"]["outcome"] = "AccessDenied"
    edited["hash"] = record_hash(edited, stolen[0], log)
    path.write_text("".join(json.dumps(r) + "\n" for r in active))
    verdict = verify(path, keys, no_head=True)
    assert not verdict.ok
    assert failure(verdict).startswith(
        f"audit.jsonl line 2 (seq {edited['seq']}): the record's hash does not match its content "
        "(HMAC-SHA-256 under local://audit-mac?version=2)"
    )


def test_writers_that_see_a_rotation_at_different_times_agree_on_one_file(
    tmp_path: Path, keys: LocalKeyProvider
) -> None:
    """A writer that has not rechecked the key yet follows the file a newer writer started."""
    path = tmp_path / "audit.jsonl"
    slow = keyed_sink(path, keys, key_check_interval=3600)
    slow.emit(make_event(1))
    keys.rotate_key(KeyRef.parse(MAC_KEY))
    keyed_sink(path, keys, key_check_interval=0).emit(make_event(2))
    slow.emit(make_event(3))
    slow.emit(make_event(4))
    assert [lines(f)[0]["file"]["params"]["mac_key"] for f in chain_files(path)] == [
        "local://audit-mac?version=1",
        "local://audit-mac?version=2",
    ]
    assert verify(path, keys).ok


def test_checkpoints_are_signed_every_n_events(tmp_path: Path, keys: LocalKeyProvider) -> None:
    path = tmp_path / "audit.jsonl"
    sink = keyed_sink(path, keys, checkpoint_every=4)
    for number in range(9):
        sink.emit(make_event(number))
    kinds = [r["kind"] for r in lines(path)]
    assert kinds == ["file", *["event"] * 4, "checkpoint", *["event"] * 4, "checkpoint", "event"]
    records = lines(path)
    assert records[0]["sig"]["key"] == SIGNER
    assert records[5]["sig"]["algorithm"] == "ed25519"
    verdict = verify(path, keys)
    assert verdict.ok, verdict.message
    assert "3 signatures verified" in verdict.message
    pem = keys.public_key(KeyRef.parse(SIGNER))
    offline = verify(path, keys, check_signature=public_key_check([pem]))
    assert offline.ok, offline.message
    other = LocalKeyProvider(tmp_path / "other")
    other.create_key("k", KeySpec(key_type=KeyType.ED25519))
    wrong = verify(
        path, keys, check_signature=public_key_check([other.public_key(KeyRef.parse("local://k"))])
    )
    assert not wrong.ok
    assert failure(wrong).startswith("audit.jsonl line 1 (seq 0): the signature does not verify")


def test_verify_refuses_a_log_whose_checkpoints_were_stripped(
    tmp_path: Path, keys: LocalKeyProvider
) -> None:
    """Rewritten without checkpoints (and as SHA-256), it fails once signatures are required."""
    path = tmp_path / "audit.jsonl"
    sink = keyed_sink(path, keys, checkpoint_every=3)
    for number in range(7):
        sink.emit(make_event(number))
    rewritten: list[dict[str, Any]] = []
    log = lines(path)[0]["file"]["log"]
    for record in lines(path):
        if record["kind"] == "checkpoint":
            continue
        record.pop("sig", None)
        if record["kind"] == "file":
            record["file"]["params"] = {"alg": "sha256"}
        record["seq"] = len(rewritten)
        record["prev"] = rewritten[-1]["hash"] if rewritten else GENESIS
        record["hash"] = record_hash(record, None, log)
        rewritten.append(record)
    path.write_text("".join(json.dumps(r) + "\n" for r in rewritten))
    head_path(path).unlink()
    assert verify(path, no_head=True).ok
    verdict = verify(path, keys, mac_key=None, no_head=True)
    assert not verdict.ok
    assert "declares no checkpoint key, but signed checkpoints were required" in verdict.message


# -- the head file and recovery ---------------------------------------------------------


def test_a_cut_log_stops_the_sink(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    sink = JsonlAuditSink(path)
    for number in range(4):
        sink.emit(make_event(number))
    content = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(content[:-1]))
    with pytest.raises(
        AuditSinkError, match="cannot be continued: the log is shorter than its head"
    ):
        sink.emit(make_event(9))
    verdict = verify(path)
    assert not verdict.ok
    assert failure(verdict).startswith("the log was cut: head file audit.jsonl.head records seq 4")


def test_an_edited_head_stops_an_hmac_sink(tmp_path: Path, keys: LocalKeyProvider) -> None:
    path = tmp_path / "audit.jsonl"
    sink = keyed_sink(path, keys)
    for number in range(3):
        sink.emit(make_event(number))
    head = json.loads(head_path(path).read_text())
    head["unsigned"] = 0
    head_path(path).write_text(json.dumps(head))
    with pytest.raises(AuditSinkError, match=r"the MAC of its head file audit\.jsonl\.head"):
        sink.emit(make_event(9))
    assert "its MAC does not match" in verify(path, keys).message


def test_a_deleted_head_stops_the_sink(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    sink = JsonlAuditSink(path)
    for number in range(4):
        sink.emit(make_event(number))
    head_path(path).unlink()
    with pytest.raises(AuditSinkError, match=r"head file audit\.jsonl\.head is missing"):
        sink.emit(make_event(9))


def test_a_writer_that_died_before_its_first_head_is_recovered(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    JsonlAuditSink(path).emit(make_event(1))
    head_path(path).unlink()
    JsonlAuditSink(path).emit(make_event(2))
    assert verify(path).ok


def test_a_head_left_behind_is_caught_up(tmp_path: Path) -> None:
    """A writer stopped between its append and its head update: the next one adopts the record."""
    path = tmp_path / "audit.jsonl"
    sink = JsonlAuditSink(path)
    sink.emit(make_event(1))
    old_head = head_path(path).read_bytes()
    sink.emit(make_event(2))
    head_path(path).write_bytes(old_head)
    behind = verify(path)
    assert behind.ok, behind.message
    assert behind.notes == (
        "the head file is 1 record(s) behind the log: a writer stopped between an append and "
        "its head update; the next append brings it up to date",
    )
    sink.emit(make_event(3))
    assert [r["seq"] for r in lines(path)] == [0, 1, 2, 3]
    assert verify(path).notes == ()


def test_a_torn_last_line_is_cut_off_by_the_next_append(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    sink = JsonlAuditSink(path)
    sink.emit(make_event(1))
    with path.open("ab") as handle:
        handle.write(b'{"seq":2,"kind":"ev')
    assert sink.read_events() == [make_event(1).to_dict()]  # reading skips the torn line
    torn = verify(path)
    assert not torn.ok
    assert "the last line is incomplete" in torn.message
    sink.emit(make_event(2))
    assert verify(path).ok
    assert [r["seq"] for r in lines(path)] == [0, 1, 2]


def test_records_appended_behind_the_sinks_back_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    sink = JsonlAuditSink(path)
    sink.emit(make_event(1))
    with path.open("ab") as handle:
        handle.write(b'{"seq":2,"kind":"event","prev":"00","event":{},"hash":"00"}\n')
    with pytest.raises(AuditSinkError, match="does not continue the chain"):
        sink.emit(make_event(2))


def test_a_rotation_interrupted_after_the_rename_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    JsonlAuditSink(path).emit(make_event(1))
    path.rename(rotated_path(path, 1))
    JsonlAuditSink(path).emit(make_event(2))
    assert [f.name for f in chain_files(path)] == ["audit.jsonl.000001", "audit.jsonl"]
    assert verify(path).ok


def test_a_deleted_log_is_not_silently_restarted(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    sink = JsonlAuditSink(path)
    sink.emit(make_event(1))
    path.unlink()
    with pytest.raises(AuditSinkError) as error:
        sink.emit(make_event(2))
    assert str(error.value).startswith(
        f"audit log {path} cannot be continued: the log is missing but its head file says it "
        "reached seq 1: it was deleted or moved; restore it. Run"
    )


def test_new_settings_start_a_new_file_in_the_same_chain(
    tmp_path: Path, keys: LocalKeyProvider
) -> None:
    path = tmp_path / "audit.jsonl"
    JsonlAuditSink(path).emit(make_event(1))
    keyed_sink(path, keys).emit(make_event(2))
    files = chain_files(path)
    assert [lines(f)[0]["file"]["params"]["alg"] for f in files] == ["sha256", "hmac-sha256"]
    assert verify(path, keys, mac_key=None, check_signature=None).ok
    downgrade = verify(path, keys)
    assert not downgrade.ok
    assert "chained with plain SHA-256, but HMAC under local://audit-mac" in downgrade.message


def test_batch_sync_writes_every_event(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    sink = JsonlAuditSink(path, sync="batch", sync_every=4)
    for number in range(10):
        sink.emit(make_event(number))
    sink.close()
    assert len(sink.read_events()) == 10
    assert verify(path).ok
    with pytest.raises(AuditSinkError, match="is closed"):
        sink.emit(make_event(11))


def test_an_unwritable_location_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    sink = JsonlAuditSink(tmp_path / "file" / "audit.jsonl")
    with pytest.raises(AuditSinkError, match=r"cannot append to audit log .*file/audit\.jsonl"):
        sink.emit(make_event(1))


def test_keys_need_providers(tmp_path: Path) -> None:
    sink = JsonlAuditSink(tmp_path / "audit.jsonl", hmac_key=MAC_KEY)
    with pytest.raises(AuditSinkError) as error:
        sink.emit(make_event(1))
    assert str(error.value) == (
        f"audit log {sink.path}: the jsonl audit sink needs key providers for hmac_key and "
        "checkpoint_key: build it through a KeyStack, or pass providers="
    )


def test_a_signing_key_cannot_be_the_mac_key(tmp_path: Path, keys: LocalKeyProvider) -> None:
    sink = JsonlAuditSink(tmp_path / "audit.jsonl", hmac_key=SIGNER, providers=lookup(keys))
    with pytest.raises(AuditSinkError, match="cannot compute MACs: use an aes-256 key"):
        sink.emit(make_event(1))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, 'the jsonl audit sink needs path = "<log file>"'),
        ({"path": "a", "sync": "always"}, "sync must be 'record' or 'batch'"),
        (
            {"path": "a", "max_bytes": 0},
            "option 'max_bytes' of the jsonl audit sink must be at least 1",
        ),
        (
            {"path": "a", "checkpoint_every": "x"},
            "'checkpoint_every' of the jsonl audit sink must be a whole",
        ),
        (
            {"path": "a", "lock_timeout": -1},
            "'lock_timeout' of the jsonl audit sink must be seconds",
        ),
        ({"path": "a", "hmac_key": "not a uri"}, ""),
        ({"path": "a", "colour": "red"}, "unknown option(s) for the jsonl audit sink: colour"),
    ],
)
def test_option_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        JsonlAuditSink.from_options(options)
    assert message in str(error.value)


# -- through a stack, and across processes ---------------------------------------------------


def test_a_stack_hands_its_providers_to_the_sink(tmp_path: Path) -> None:
    with KeyStack.local(tmp_path / "ks") as setup:
        setup.create_key("audit-mac", "aes-256")
        setup.create_key("audit-signer", "ed25519")
    config = {
        "providers": {"local": {"keystore": str(tmp_path / "ks")}},
        "audit": {
            "sinks": [
                {
                    "type": "jsonl",
                    "path": str(tmp_path / "audit.jsonl"),
                    "hmac_key": MAC_KEY,
                    "checkpoint_key": SIGNER,
                    "checkpoint_every": 2,
                }
            ]
        },
    }
    with KeyStack.from_dict(config) as stack:
        stack.create_key("k", "ed25519")
        stack.sign(b"m", key="local://k")
        provider = stack.provider("local")
        verdict = verify(tmp_path / "audit.jsonl", provider)
    assert verdict.ok, verdict.message
    assert verdict.events == 4


def test_a_missing_mac_key_refuses_every_operation(tmp_path: Path) -> None:
    config = {
        "providers": {"local": {"keystore": str(tmp_path / "ks")}},
        "audit": {
            "sinks": [{"type": "jsonl", "path": str(tmp_path / "a.jsonl"), "hmac_key": MAC_KEY}]
        },
    }
    with KeyStack.from_dict(config) as stack, pytest.raises(AuditFailure) as error:
        stack.create_key("audit-mac", "aes-256")
    assert "the operation was not run" in str(error.value)
    assert "local://audit-mac" in str(error.value)


def worker_env() -> dict[str, str]:
    env = dict(os.environ)
    roots = {
        str(Path(module.__file__ or "").resolve().parents[1])
        for module in (aureus_core, aureus_local, aureus_builtin)
    }
    env["PYTHONPATH"] = os.pathsep.join([*sorted(roots), env.get("PYTHONPATH", "")])
    for name in ("AUREUS_AUDIT_LOG", "AUREUS_CONFIG", "AUREUS_KEYSTORE_PASSPHRASE"):
        env.pop(name, None)
    return env


@pytest.mark.skipif(os.name != "posix", reason="needs fork/exec")
@pytest.mark.parametrize("keyed", [False, True], ids=["sha256", "hmac-checkpoints"])
def test_processes_appending_together_keep_one_chain(
    tmp_path: Path, keys: LocalKeyProvider, keyed: bool
) -> None:
    keys.create_key("signer", KeySpec(key_type=KeyType.ED25519))
    log = tmp_path / "logs" / "audit.jsonl"
    options = ["max_bytes=6000"]
    if keyed:
        options += [f"hmac_key={MAC_KEY}", f"checkpoint_key={SIGNER}", "checkpoint_every=9"]
    workers = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(tmp_path / "ks"), str(log), f"w{n}", "12", *options],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=worker_env(),
            text=True,
        )
        for n in range(4)
    ]
    try:
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        for worker in workers:
            out, err = worker.communicate(timeout=120)
            assert worker.returncode == 0, err
            assert out.split("\n")[-2] == "signed 11"
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.communicate()
    verdict = verify(log, keys) if keyed else verify(log)
    assert verdict.ok, verdict.message
    assert verdict.events == 4 * 12 * 2
    assert len(chain_files(log)) > 1
    events = aureus_builtin.JsonlAuditSink(log).read_events()
    for n in range(4):
        mine = [e for e in events if e.get("labels", {}).get("worker") == f"w{n}"]
        assert [e["phase"] for e in mine] == ["request", "outcome"] * 12
        assert all(
            a["request_id"] == b["request_id"] for a, b in zip(mine[::2], mine[1::2], strict=True)
        )


def test_shutil_copy_of_a_log_verifies_elsewhere(tmp_path: Path, keys: LocalKeyProvider) -> None:
    """A copied log without its head file fails, unless the caller declares it has none."""
    path = tmp_path / "audit.jsonl"
    sink = keyed_sink(path, keys)
    for number in range(3):
        sink.emit(make_event(number))
    copy = tmp_path / "copy" / "audit.jsonl"
    copy.parent.mkdir()
    shutil.copy(path, copy)
    missing = verify(copy, keys)
    assert not missing.ok
    assert failure(missing).startswith(f"head file {head_path(copy)} does not exist")
    assert "declare it (--no-head)" in missing.message
    verdict = verify(copy, keys, no_head=True)
    assert verdict.ok, verdict.message
    assert "head file" not in verdict.message
    assert base64.b64decode(lines(copy)[0]["sig"]["value"])


def test_events_are_recorded_as_the_stack_emits_them(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    sink = JsonlAuditSink(path)
    event = AuditEvent(operation="encrypt", context_keys=("tenant",), byte_count=5)
    sink.emit(event)
    assert sink.read_events() == [event.to_dict()]
    assert repr(sink) == f"JsonlAuditSink(path={str(path)!r}, sha256)"


# -- rollback, log identity and the anchor -----------------------------------------------


def anchored_sink(path: Path, provider: KeyProvider, anchor: Path, **kwargs: Any) -> JsonlAuditSink:
    kwargs.setdefault("checkpoint_every", 2)
    return keyed_sink(path, provider, anchor=anchor, **kwargs)


def anchored_log(
    tmp_path: Path, provider: KeyProvider, *, events: int
) -> tuple[Path, Path, JsonlAuditSink]:
    """A keyed log in ``logs/`` with its anchor in ``elsewhere/``, after ``events`` events."""
    path = tmp_path / "logs" / "audit.jsonl"
    anchor = tmp_path / "elsewhere" / "audit.anchor"
    sink = anchored_sink(path, provider, anchor)
    for number in range(events):
        sink.emit(make_event(number))
    return path, anchor, sink


def snapshot(path: Path) -> dict[Path, bytes]:
    """The log's files and head as they are now (what an attacker keeps to roll back to)."""
    return {p: p.read_bytes() for p in [*chain_files(path), head_path(path)]}


def roll_back(path: Path, saved: dict[Path, bytes]) -> None:
    """Put the saved files back and remove files created since: the log cut, its head older."""
    for extra in set(chain_files(path)) - set(saved):
        extra.unlink()
    for target, content in saved.items():
        target.write_bytes(content)


def test_the_running_writer_refuses_a_rolled_back_log(tmp_path: Path) -> None:
    """Cut back, with the head file of that moment restored: the writer remembers how far it got."""
    path = tmp_path / "audit.jsonl"
    sink = JsonlAuditSink(path)
    for number in range(3):
        sink.emit(make_event(number))
    saved = snapshot(path)
    for number in range(3, 6):
        sink.emit(make_event(number))
    roll_back(path, saved)
    assert verify(path).ok  # consistent on disk: only something outside the log can tell
    with pytest.raises(AuditSinkError) as refused:
        sink.emit(make_event(9))
    assert str(refused.value).startswith(
        f"audit log {path} cannot be continued: this writer appended up to seq 6, but the log "
        "now ends at seq 3: it was rolled back (cut, and given an older head file) or replaced"
    )
    assert len(lines(path)) == 4


def test_the_running_writer_refuses_a_log_swapped_for_another(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    other = tmp_path / "other" / "audit.jsonl"
    sink = JsonlAuditSink(path)
    for number in range(3):
        sink.emit(make_event(number))
        JsonlAuditSink(other).emit(make_event(number))
    JsonlAuditSink(other).emit(make_event(3))
    for name in ("audit.jsonl", "audit.jsonl.head"):
        shutil.copy(other.with_name(name), path.with_name(name))
    with pytest.raises(AuditSinkError, match=r"the files now belong to log [0-9a-f]{32}"):
        sink.emit(make_event(9))


def test_the_anchor_receives_every_signed_record(tmp_path: Path, keys: LocalKeyProvider) -> None:
    path, anchor, _sink = anchored_log(tmp_path, keys, events=5)
    signed = [r for r in lines(path) if "sig" in r]
    assert [r["kind"] for r in signed] == ["file", "checkpoint", "checkpoint"]
    log = signed[0]["file"]["log"]
    entries = [json.loads(line) for line in anchor.read_text().splitlines()]
    assert entries == [
        {"format": "aureus-audit-anchor/1", "log": log, "file": "audit.jsonl", "record": r}
        for r in signed
    ]
    assert oct(anchor.stat().st_mode & 0o777) == "0o600"
    verdict = verify(path, keys, anchor=anchor)
    assert verdict.ok, verdict.message
    assert verdict.message.endswith("; head file matches; anchor matches (seq 6)")


def test_a_rolled_back_log_fails_against_its_anchor(tmp_path: Path, keys: LocalKeyProvider) -> None:
    """The rollback the head file cannot see: log cut back and the head of that time restored."""
    path, anchor, sink = anchored_log(tmp_path, keys, events=3)
    saved = snapshot(path)  # ends at seq 4 (event 3 after checkpoint 3)
    for number in range(3, 8):
        sink.emit(make_event(number))
    roll_back(path, saved)
    assert verify(path, keys).ok  # without the anchor the rollback is invisible
    verdict = verify(path, keys, anchor=anchor)
    assert not verdict.ok
    assert failure(verdict) == (
        "the log was rolled back: it ends at seq 4, but anchor audit.anchor line 5 records seq "
        "12: records after seq 4 were removed (and the head file replaced by an older one, or "
        "deleted)"
    )
    reopened = anchored_sink(path, keys, anchor)
    with pytest.raises(AuditSinkError) as refused:
        reopened.emit(make_event(9))
    assert f"it ends at seq 4, but its anchor {anchor} says it reached seq 12: it was rolled " in (
        str(refused.value)
    )
    assert "move the log, its head file and its anchor aside" in str(refused.value)


def test_a_log_cut_to_its_first_checkpoint_with_the_head_deleted_fails(
    tmp_path: Path, keys: LocalKeyProvider
) -> None:
    path, anchor, _sink = anchored_log(tmp_path, keys, events=6)
    content = path.read_bytes().splitlines(keepends=True)
    first_checkpoint = next(i for i, r in enumerate(lines(path)) if r["kind"] == "checkpoint")
    path.write_bytes(b"".join(content[: first_checkpoint + 1]))
    head_path(path).unlink()
    missing = verify(path, keys)
    assert not missing.ok
    assert "does not exist: it was deleted, perhaps to hide a cut tail" in missing.message
    assert verify(path, keys, no_head=True).ok  # declared headless, the cut is invisible ...
    anchored = verify(path, keys, no_head=True, anchor=anchor)  # ... but not to the anchor
    assert not anchored.ok
    assert failure(anchored).startswith("the log was rolled back: it ends at seq 3, but anchor")


def test_a_forged_anchor_entry_past_the_end_is_called_a_forgery_not_a_rollback(
    tmp_path: Path, keys: LocalKeyProvider
) -> None:
    """Someone who can write only the anchor appends its last entry again with a later seq."""
    path, anchor, sink = anchored_log(tmp_path, keys, events=5)
    sink.close()
    assert verify(path, keys, anchor=anchor).ok
    last = json.loads(anchor.read_text().splitlines()[-1])
    forged = dict(last, record=dict(last["record"], seq=last["record"]["seq"] + 40))
    with anchor.open("a") as out:
        out.write(json.dumps(forged) + "\n")
    verdict = verify(path, keys, anchor=anchor)
    assert verdict.ok is False
    assert "its signature does not verify: the anchor was edited" in verdict.message
    assert not verdict.message.startswith("the log was rolled back")


def test_a_rewritten_log_does_not_hold_the_anchored_checkpoint(
    tmp_path: Path, keys: LocalKeyProvider
) -> None:
    """A SHA-256 log with signed checkpoints, rewritten whole (and its head): long enough, wrong."""
    path = tmp_path / "logs" / "audit.jsonl"
    anchor = tmp_path / "elsewhere" / "audit.anchor"
    sink = JsonlAuditSink(
        path, checkpoint_key=SIGNER, checkpoint_every=2, anchor=anchor, providers=lookup(keys)
    )
    for number in range(4):
        sink.emit(make_event(number))
    records = lines(path)
    log = records[0]["file"]["log"]
    records[1]["event"]["outcome"] = "ok-edited"
    for before, record in itertools.pairwise(records):
        record["prev"] = before["hash"]
        record["hash"] = record_hash(record, None, log)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    head = json.loads(head_path(path).read_text())
    head.update(hash=records[-1]["hash"], size=path.stat().st_size)
    head_path(path).write_text(json.dumps(head))
    assert verify(path).ok  # unsigned checks pass: the chain is consistent
    verdict = verify(path, anchor=anchor)
    assert not verdict.ok
    assert failure(verdict) == (
        "seq 3 is not the record anchor audit.anchor line 2 records: the log was rewritten "
        "after it was anchored"
    )
    with pytest.raises(AuditSinkError, match="seq 6 is not the record its anchor"):
        JsonlAuditSink(
            path, checkpoint_key=SIGNER, checkpoint_every=2, anchor=anchor, providers=lookup(keys)
        ).emit(make_event(9))


def test_another_log_under_the_same_keys_does_not_pass_for_this_one(
    tmp_path: Path, keys: LocalKeyProvider
) -> None:
    """Both logs are intact and keyed alike; swapped, the anchor and the log IDs tell them apart."""
    path = tmp_path / "a" / "audit.jsonl"
    anchor = tmp_path / "anchors" / "a.anchor"
    other = tmp_path / "b" / "audit.jsonl"
    sink = anchored_sink(path, keys, anchor)
    other_sink = anchored_sink(other, keys, tmp_path / "anchors" / "b.anchor")
    for number in range(4):
        sink.emit(make_event(number))
    for number in range(6):
        other_sink.emit(make_event(number))
    ours, theirs = lines(path)[0]["file"]["log"], lines(other)[0]["file"]["log"]
    assert ours != theirs
    for name in ("audit.jsonl", "audit.jsonl.head"):
        shutil.copy(other.with_name(name), path.with_name(name))
    assert verify(path, keys).ok  # an intact log, just not this one
    verdict = verify(path, keys, anchor=anchor)
    assert not verdict.ok
    assert failure(verdict) == (
        f"anchor a.anchor line 1 belongs to log {ours}, but this is log {theirs}: the log was "
        "replaced by another one, or the anchor is not this log's"
    )
    with pytest.raises(
        AuditSinkError, match=re.escape(f"its anchor {anchor} belongs to log {ours}")
    ):
        anchored_sink(path, keys, anchor).emit(make_event(9))


def test_one_logs_chain_key_neither_verifies_nor_forges_another(
    tmp_path: Path, keys: LocalKeyProvider
) -> None:
    """Two logs under one MAC key version have different chain keys."""
    first, second = tmp_path / "a" / "audit.jsonl", tmp_path / "b" / "audit.jsonl"
    for path in (first, second):
        keyed_sink(path, keys).emit(make_event(1))
    log_a, log_b = (lines(p)[0]["file"]["log"] for p in (first, second))
    pinned = KeyRef.parse(f"{MAC_KEY}?version=1")
    key_a = derive_key(lookup(keys), pinned, chain_key_label(log_a))[0]
    key_b = derive_key(lookup(keys), pinned, chain_key_label(log_b))[0]
    assert key_a != key_b
    records = lines(second)
    records[1]["event"]["outcome"] = "AccessDenied"
    records[1]["hash"] = record_hash(records[1], key_a, log_b)  # forged with log a's key
    second.write_text("".join(json.dumps(r) + "\n" for r in records))
    verdict = verify(second, keys, no_head=True)
    assert not verdict.ok
    assert "line 2 (seq 1): the record's hash does not match its content" in verdict.message


def test_a_deleted_log_is_refused_while_its_anchor_remembers_it(
    tmp_path: Path, keys: LocalKeyProvider
) -> None:
    path, anchor, _sink = anchored_log(tmp_path, keys, events=3)
    for file in [*chain_files(path), head_path(path)]:
        file.unlink()
    with pytest.raises(AuditSinkError) as refused:
        anchored_sink(path, keys, anchor).emit(make_event(9))
    assert f"there is no log, but its anchor {anchor} says log " in str(refused.value)
    assert "to start a new log on purpose, move the anchor aside too" in str(refused.value)
    assert not path.exists()


def test_a_torn_anchor_line_is_skipped_and_then_removed(
    tmp_path: Path, keys: LocalKeyProvider
) -> None:
    path, anchor, sink = anchored_log(tmp_path, keys, events=3)
    whole = anchor.read_bytes()
    assert len(whole.splitlines()) == 2
    with anchor.open("ab") as handle:
        handle.write(b'{"format":"aureus-audit-anchor/1","log":"')
    assert verify(path, keys, anchor=anchor).ok
    sink.emit(make_event(3))
    assert anchor.read_bytes().startswith(whole)
    entries = [json.loads(line) for line in anchor.read_text().splitlines()]
    assert [e["record"]["kind"] for e in entries] == ["file", "checkpoint", "checkpoint"]
    assert verify(path, keys, anchor=anchor).ok


def test_a_damaged_anchor_line_fails(tmp_path: Path, keys: LocalKeyProvider) -> None:
    path = tmp_path / "logs" / "audit.jsonl"
    anchor = tmp_path / "elsewhere" / "audit.anchor"
    sink = anchored_sink(path, keys, anchor)
    sink.emit(make_event(1))
    content = anchor.read_text()
    anchor.write_text(content.replace('"kind":"file"', '"kind":"event"'))
    verdict = verify(path, keys, anchor=anchor)
    assert failure(verdict) == (
        "anchor audit.anchor is damaged: line 1 is not an anchor entry (the record is not a "
        "signed file or checkpoint record): it was edited"
    )
    with pytest.raises(AuditSinkError, match=r"its anchor .* is damaged"):
        anchored_sink(path, keys, anchor).emit(make_event(2))
    anchor.write_text("")
    assert failure(verify(path, keys, anchor=anchor)) == (
        "anchor audit.anchor holds no entries: a writer records the first one when it creates "
        "the log, so it was emptied, or it is not an anchor"
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"path": "/srv/a/audit.jsonl", "anchor": "/srv/b/audit.anchor"},
            "anchor receives its signed checkpoints: set checkpoint_key too",
        ),
        (
            {"path": "/srv/a/audit.jsonl", "anchor": "b/audit.anchor", "checkpoint_key": SIGNER},
            "option 'anchor' of the jsonl audit sink must be an absolute path",
        ),
        (
            {"path": "/srv/a/audit.jsonl", "anchor": "/srv/a/x.anchor", "checkpoint_key": SIGNER},
            "anchor /srv/a/x.anchor is inside the log's directory",
        ),
        (
            {"path": "/srv/a/audit.jsonl", "anchor": "/srv/a/b/x", "checkpoint_key": SIGNER},
            "is inside the log's directory",
        ),
        (
            {"path": "a", "key_check_interval": -1},
            "'key_check_interval' of the jsonl audit sink must be seconds >= 0",
        ),
    ],
)
def test_anchor_option_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        JsonlAuditSink.from_options(options)


# -- temp files of killed writers -----------------------------------------------------------


def test_a_killed_writers_head_temp_file_is_removed_on_open(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    JsonlAuditSink(path).emit(make_event(1))
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    pid = int(dead.stdout)
    abandoned = tmp_path / f".audit.jsonl.head.{pid}.tmp"
    abandoned.write_bytes(b'{"format":"aureus-audit-head/2"')  # as a writer killed mid-write
    unrelated = [tmp_path / ".audit.jsonl.head.tmp", tmp_path / ".other.jsonl.head.1.tmp"]
    for file in unrelated:
        file.write_bytes(b"keep")
    JsonlAuditSink(path).emit(make_event(2))
    assert not abandoned.exists()
    assert all(file.read_bytes() == b"keep" for file in unrelated)
    assert verify(path).ok


# -- logs of the older format ------------------------------------------------------------


def test_an_hmac_log_of_the_older_format_verifies_and_is_continued(
    tmp_path: Path, keys: LocalKeyProvider
) -> None:
    """Format 1 (one chain key per MAC key version for every log), built as the old writer did."""
    path = tmp_path / "audit.jsonl"
    pinned = f"{MAC_KEY}?version=1"
    old_key = derive_key(lookup(keys), KeyRef.parse(pinned), CHAIN_KEY_LABEL)[0]
    records: list[dict[str, Any]] = [
        {
            "seq": 0,
            "kind": "file",
            "prev": GENESIS,
            "time": "2026-01-01T00:00:00+00:00",
            "file": {
                "format": "aureus-audit-jsonl/1",
                "index": 1,
                "params": {"alg": "hmac-sha256", "mac_key": pinned},
            },
        }
    ]
    for number in range(2):
        records.append(
            {"seq": number + 1, "kind": "event", "prev": "", "event": make_event(number).to_dict()}
        )
    for index, record in enumerate(records):
        if index:
            record["prev"] = records[index - 1]["hash"]
        record["hash"] = record_hash(record, old_key, None)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    head: dict[str, Any] = {
        "format": "aureus-audit-head/1",
        "file": "audit.jsonl",
        "index": 1,
        "seq": 2,
        "hash": records[-1]["hash"],
        "size": path.stat().st_size,
        "unsigned": 2,
    }
    head["mac"] = head_mac(head, old_key)
    head_path(path).write_text(json.dumps(head))
    kwargs: dict[str, Any] = {"check_signature": None}
    assert "written by an older format" in verify(path, keys, **kwargs).message
    allowed = verify(path, keys, allow_format_1=True, **kwargs)
    assert allowed.ok, allowed.message
    JsonlAuditSink(path, hmac_key=MAC_KEY, providers=lookup(keys)).emit(make_event(7))
    old, new = (lines(f) for f in chain_files(path))
    assert new[0]["file"]["format"] == "aureus-audit-jsonl/2"
    assert (new[0]["seq"], new[0]["prev"]) == (3, old[-1]["hash"])
    continued = verify(path, keys, allow_format_1=True, **kwargs)
    assert continued.ok, continued.message
    assert continued.log == new[0]["file"]["log"]


# -- what the writer refuses, and how it recovers ------------------------------------------------


def test_a_non_event_is_refused_by_its_type(tmp_path: Path) -> None:
    sink = JsonlAuditSink(tmp_path / "audit.jsonl")
    with pytest.raises(TypeError) as error:
        sink.emit({"operation": "encrypt"})  # type: ignore[arg-type]
    assert str(error.value) == "an audit sink records AuditEvent objects, not dict"
    assert not sink.path.exists()


def test_a_negative_key_check_interval_is_refused() -> None:
    with pytest.raises(ConfigError) as error:
        JsonlAuditSink("/srv/a/audit.jsonl", key_check_interval=-0.5)
    assert str(error.value) == "key_check_interval of the jsonl audit sink must be seconds >= 0"


def test_a_relative_anchor_option_is_refused_with_where_it_belongs() -> None:
    with pytest.raises(ConfigError) as error:
        JsonlAuditSink.from_options(
            {"path": "/srv/a/audit.jsonl", "anchor": "b/x.anchor", "checkpoint_key": SIGNER}
        )
    assert str(error.value) == (
        "option 'anchor' of the jsonl audit sink must be an absolute path, not 'b/x.anchor': "
        "the anchor lives outside the log's directory, on another file system or share"
    )


def test_a_log_locked_by_another_writer_for_too_long_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    holder = filelock.FileLock(str(tmp_path / ".audit.jsonl.lock"), thread_local=False)
    with holder:
        sink = JsonlAuditSink(path, lock_timeout=0.05)
        with pytest.raises(AuditSinkError) as error:
            sink.emit(make_event(1))
    assert str(error.value) == (
        f"audit log {path} stayed locked by another writer for 0.05 s (.audit.jsonl.lock): "
        "retry, or look for a stuck process"
    )
    assert not path.exists()
    sink.emit(make_event(1))
    assert verify(path).ok


def test_repr_names_the_mac_key_never_a_secret(tmp_path: Path, keys: LocalKeyProvider) -> None:
    sink = keyed_sink(tmp_path / "audit.jsonl", keys)
    assert (
        repr(sink)
        == f"JsonlAuditSink(path={str(tmp_path / 'audit.jsonl')!r}, hmac under {MAC_KEY})"
    )


def test_a_pinned_mac_key_version_is_used_as_given(tmp_path: Path, keys: LocalKeyProvider) -> None:
    """Pinned to version 1, the writer keeps chaining under it after the key rotates."""
    path = tmp_path / "audit.jsonl"
    keys.rotate_key(KeyRef.parse(MAC_KEY))
    sink = JsonlAuditSink(
        path, hmac_key=f"{MAC_KEY}?version=1", providers=lookup(keys), key_check_interval=0
    )
    sink.emit(make_event(1))
    sink.emit(make_event(2))
    assert len(chain_files(path)) == 1
    assert lines(path)[0]["file"]["params"]["mac_key"] == f"{MAC_KEY}?version=1"
    assert verify(path, keys, check_signature=None).ok


def test_a_checkpoint_key_whose_provider_cannot_sign_is_refused(
    tmp_path: Path, keys: LocalKeyProvider
) -> None:
    """A keystore that offers every capability but signing (as a wrap-only KMS would)."""

    class WrapOnly(LocalKeyProvider):
        capabilities = LocalKeyProvider.capabilities - {Capability.SIGN}

    provider = WrapOnly(tmp_path / "ks")
    sink = JsonlAuditSink(
        tmp_path / "audit.jsonl", checkpoint_key=SIGNER, providers=lookup(provider)
    )
    with pytest.raises(AuditSinkError) as error:
        sink.emit(make_event(1))
    assert str(error.value).endswith(
        f"checkpoint_key {SIGNER}: provider 'local' cannot sign; use a signing key such as a "
        "local ed25519 key"
    )
    provider.close()


def test_rotation_stops_rather_than_overwrite_a_rotated_file(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    JsonlAuditSink(path).emit(make_event(1))
    squatter = rotated_path(path, 1)
    squatter.write_bytes(b"someone else's file\n")
    with pytest.raises(AuditSinkError) as error:
        JsonlAuditSink(path, max_bytes=1).emit(make_event(2))
    assert str(error.value) == (
        f"cannot rotate audit log {path}: audit.jsonl.000001 exists already; move it aside "
        "after running `aureus audit verify`"
    )
    assert squatter.read_bytes() == b"someone else's file\n"
    assert [r["seq"] for r in lines(path)] == [0, 1]


def test_an_empty_log_left_by_a_writer_that_died_at_once_is_started_afresh(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_bytes(b"")
    JsonlAuditSink(path).emit(make_event(1))
    assert [(r["seq"], r["kind"]) for r in lines(path)] == [(0, "file"), (1, "event")]
    assert verify(path).ok


def test_rotated_files_without_the_active_log_and_head_are_not_restarted(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    sink = JsonlAuditSink(path, max_bytes=2048)
    for number in range(12):
        sink.emit(make_event(number))
    path.unlink()
    head_path(path).unlink()
    with pytest.raises(AuditSinkError) as error:
        JsonlAuditSink(path).emit(make_event(99))
    assert str(error.value).startswith(
        f"audit log {path} cannot be continued: rotated files exist but the active log and its "
        "head file are missing: they were deleted. Run `aureus audit verify"
    )
    assert not path.exists()


def test_a_damaged_head_file_stops_the_sink(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    JsonlAuditSink(path).emit(make_event(1))
    head_path(path).write_bytes(b'{"format":"aureus-audit-head/2"}')
    with pytest.raises(AuditSinkError) as error:
        JsonlAuditSink(path).emit(make_event(2))
    assert str(error.value).startswith(
        f"audit log {path} cannot be continued: its head file is damaged (index is not a whole "
        "number). Run"
    )


def test_the_head_file_of_another_log_stops_the_sink(tmp_path: Path) -> None:
    ours, theirs = tmp_path / "a" / "audit.jsonl", tmp_path / "b" / "audit.jsonl"
    for path in (ours, theirs):
        JsonlAuditSink(path).emit(make_event(1))
    head_path(ours).write_bytes(head_path(theirs).read_bytes())
    log_a, log_b = (lines(p)[0]["file"]["log"] for p in (ours, theirs))
    with pytest.raises(AuditSinkError) as error:
        JsonlAuditSink(ours).emit(make_event(2))
    assert f"its head file audit.jsonl.head belongs to another log ({log_b}) than file 1 " in (
        str(error.value)
    )
    assert f"({log_a})" in str(error.value)


@pytest.mark.parametrize(
    ("first", "problem"),
    [
        (b'{"seq":0,"kind":"event"}', "the first record is not a file record"),
        (b'{"seq":-1,"kind":"file"}', "bad seq"),
        (b'{"seq":true,"kind":"file"}', "bad seq"),
        (b'{"seq":0,"kind":"file","file":{"format":"x"}}', "format 'x' is neither"),
        (b"not json", "Expecting value"),
    ],
)
def test_an_active_file_without_a_valid_file_record_stops_the_sink(
    tmp_path: Path, first: bytes, problem: str
) -> None:
    path = tmp_path / "audit.jsonl"
    JsonlAuditSink(path).emit(make_event(1))
    content = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(first + b"\n" + b"".join(content[1:]))
    with pytest.raises(AuditSinkError) as error:
        JsonlAuditSink(path).emit(make_event(2))
    assert str(error.value).startswith(
        f"audit log {path} cannot be continued: audit.jsonl does not start with a valid file "
        f"record ({problem}"
    )


def test_a_record_replayed_after_the_head_is_refused(tmp_path: Path) -> None:
    """The last record appended again: a valid hash, but not the next seq."""
    path = tmp_path / "audit.jsonl"
    sink = JsonlAuditSink(path)
    sink.emit(make_event(1))
    size = path.stat().st_size
    with path.open("ab") as handle:
        handle.write(path.read_bytes().splitlines(keepends=True)[-1])
    with pytest.raises(AuditSinkError) as error:
        sink.emit(make_event(2))
    assert str(error.value).startswith(
        f"audit log {path} cannot be continued: record 1 after byte {size} (expected seq 2) "
        "does not continue the chain: the log was altered. Run"
    )


def test_a_line_of_garbage_after_the_head_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    sink = JsonlAuditSink(path)
    sink.emit(make_event(1))
    for garbage in (b"not json\n", b"{}\n"):
        head = head_path(path).read_bytes()
        with path.open("ab") as handle:
            handle.write(garbage)
        with pytest.raises(
            AuditSinkError, match=r"record 1 after byte \d+ \(expected seq 2\) does"
        ):
            sink.emit(make_event(2))
        path.write_bytes(path.read_bytes()[: -len(garbage)])
        assert head_path(path).read_bytes() == head
    sink.emit(make_event(2))
    assert verify(path).ok


def test_a_record_appended_without_the_mac_key_is_refused(
    tmp_path: Path, keys: LocalKeyProvider
) -> None:
    """Well formed, linked and SHA-256 hashed, as anyone without the MAC key could write it."""
    path = tmp_path / "audit.jsonl"
    sink = keyed_sink(path, keys)
    sink.emit(make_event(1))
    last = lines(path)[-1]
    log = lines(path)[0]["file"]["log"]
    forged: dict[str, Any] = {
        "seq": last["seq"] + 1,
        "kind": "event",
        "prev": last["hash"],
        "event": make_event(7).to_dict(),
    }
    forged["hash"] = record_hash(forged, None, log)
    with path.open("a") as handle:
        handle.write(json.dumps(forged) + "\n")
    with pytest.raises(AuditSinkError, match=r"record 1 after byte \d+ \(expected seq 2\) does"):
        sink.emit(make_event(2))


def test_records_after_a_head_left_behind_are_adopted_and_a_torn_line_cut(
    tmp_path: Path,
) -> None:
    """Head two records behind, one whole record and a torn one after it: keep one, drop one."""
    path = tmp_path / "audit.jsonl"
    sink = JsonlAuditSink(path)
    sink.emit(make_event(1))
    old_head = head_path(path).read_bytes()
    sink.emit(make_event(2))
    whole = path.read_bytes()
    with path.open("ab") as handle:
        handle.write(b'{"seq":3,"kind":"ev')
    head_path(path).write_bytes(old_head)
    JsonlAuditSink(path).emit(make_event(3))
    assert path.read_bytes().startswith(whole)
    assert [r["seq"] for r in lines(path)] == [0, 1, 2, 3]
    head = json.loads(head_path(path).read_bytes())
    assert (head["seq"], head["size"]) == (3, path.stat().st_size)
    assert verify(path).ok


def test_catching_up_measures_the_file_so_rotation_still_happens_on_time(tmp_path: Path) -> None:
    """The size a writer adopts from records behind the head is the file's, for max_bytes."""
    path = tmp_path / "audit.jsonl"
    sink = JsonlAuditSink(path)
    for number in range(3):
        sink.emit(make_event(number))
    old_head = head_path(path).read_bytes()
    sink.emit(make_event(3))
    sink.emit(make_event(4))
    head_path(path).write_bytes(old_head)
    size = path.stat().st_size
    event = make_event(5)
    limit = size + len(canonical(event.to_dict())) + 200 - 1  # the next event no longer fits
    JsonlAuditSink(path, max_bytes=limit).emit(event)
    assert [f.name for f in chain_files(path)] == ["audit.jsonl.000001", "audit.jsonl"]
    assert rotated_path(path, 1).stat().st_size == size
    assert verify(path).ok


def test_catching_up_counts_events_since_the_last_checkpoint(
    tmp_path: Path, keys: LocalKeyProvider
) -> None:
    """A checkpoint among the records behind the head resets the count: the next one is on time."""
    path = tmp_path / "audit.jsonl"
    sink = keyed_sink(path, keys, checkpoint_every=3)
    sink.emit(make_event(1))
    sink.emit(make_event(2))
    old_head = head_path(path).read_bytes()
    sink.emit(make_event(3))  # the third event: its checkpoint follows
    head_path(path).write_bytes(old_head)
    later = keyed_sink(path, keys, checkpoint_every=3)
    for number in range(4, 8):
        later.emit(make_event(number))
    kinds = [r["kind"] for r in lines(path)]
    assert kinds == ["file", *["event"] * 3, "checkpoint", *["event"] * 3, "checkpoint", "event"]
    assert verify(path, keys).ok


def test_a_head_behind_by_a_rotation_is_caught_up_across_the_files(tmp_path: Path) -> None:
    """A writer stopped after starting file 2 but before its head update: the next one goes on."""
    path = tmp_path / "audit.jsonl"
    sink = JsonlAuditSink(path, max_bytes=2048)
    number, old_head = emit_until_the_first_rotation(path, sink)
    assert json.loads(old_head)["index"] == 1
    head_path(path).write_bytes(old_head)
    behind = verify(path)
    assert behind.ok, behind.message
    JsonlAuditSink(path, max_bytes=2048).emit(make_event(number))
    head = json.loads(head_path(path).read_bytes())
    assert (head["index"], head["seq"]) == (2, lines(path)[-1]["seq"])
    assert verify(path).ok


def test_a_head_behind_by_a_rotation_still_needs_its_mac_and_its_file(
    tmp_path: Path, keys: LocalKeyProvider
) -> None:
    path = tmp_path / "audit.jsonl"
    sink = keyed_sink(path, keys, max_bytes=2048)
    number, old_head = emit_until_the_first_rotation(path, sink)
    edited = json.loads(old_head)
    edited["unsigned"] = 0
    head_path(path).write_bytes(canonical(edited))
    with pytest.raises(AuditSinkError, match=r"the MAC of its head file audit\.jsonl\.head"):
        keyed_sink(path, keys, max_bytes=2048).emit(make_event(number))
    head_path(path).write_bytes(old_head)
    rotated_path(path, 1).rename(tmp_path / "moved")
    with pytest.raises(AuditSinkError) as error:
        keyed_sink(path, keys, max_bytes=2048).emit(make_event(number))
    assert (
        "cannot be continued: its head file names file 1, but audit.jsonl.000001 is missing: it "
        "was deleted or moved; restore it. Run"
    ) in str(error.value)
    (tmp_path / "moved").rename(rotated_path(path, 1))
    keyed_sink(path, keys, max_bytes=2048).emit(make_event(number))
    assert verify(path, keys).ok


def test_a_head_two_files_behind_stops_the_sink(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    sink = JsonlAuditSink(path, max_bytes=2048)
    old_head = None
    for number in range(40):
        sink.emit(make_event(number))
        if number == 0:
            old_head = head_path(path).read_bytes()
    assert len(chain_files(path)) >= 3
    assert old_head is not None
    head_path(path).write_bytes(old_head)
    index = lines(path)[0]["file"]["index"]
    with pytest.raises(AuditSinkError) as error:
        JsonlAuditSink(path, max_bytes=2048).emit(make_event(99))
    assert f"the head file names file 1 but the active log is file {index}. Run" in str(error.value)


def test_after_a_crash_between_rename_and_new_file_the_head_mac_is_checked(
    tmp_path: Path, keys: LocalKeyProvider
) -> None:
    """Active file renamed away and no new one yet: the head names the rotated file's end."""
    path = tmp_path / "audit.jsonl"
    keyed_sink(path, keys).emit(make_event(1))
    path.rename(rotated_path(path, 1))
    head = json.loads(head_path(path).read_bytes())
    good = head_path(path).read_bytes()
    head["unsigned"] = 0
    head_path(path).write_bytes(canonical(head))
    with pytest.raises(AuditSinkError, match=r"the MAC of its head file audit\.jsonl\.head"):
        keyed_sink(path, keys).emit(make_event(2))
    head_path(path).write_bytes(good)
    keyed_sink(path, keys).emit(make_event(2))
    assert [f.name for f in chain_files(path)] == ["audit.jsonl.000001", "audit.jsonl"]
    assert verify(path, keys).ok


def test_an_empty_anchor_at_open_is_filled_from_then_on(
    tmp_path: Path, keys: LocalKeyProvider
) -> None:
    path = tmp_path / "logs" / "audit.jsonl"
    anchor = tmp_path / "elsewhere" / "audit.anchor"
    anchor.parent.mkdir()
    anchor.write_bytes(b"")
    anchored_sink(path, keys, anchor).emit(make_event(1))
    entries = [json.loads(line) for line in anchor.read_text().splitlines()]
    assert [e["record"]["kind"] for e in entries] == ["file"]
    assert verify(path, keys, anchor=anchor).ok


def test_closing_a_batch_sink_whose_log_was_moved_still_closes(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    sink = JsonlAuditSink(path, sync="batch", sync_every=50)
    sink.emit(make_event(1))
    path.rename(tmp_path / "moved.jsonl")
    sink.close()
    sink.close()
    with pytest.raises(AuditSinkError, match="is closed"):
        sink.emit(make_event(2))


def test_a_checkpoint_torn_off_by_a_crash_is_signed_before_the_next_event(
    tmp_path: Path, keys: LocalKeyProvider
) -> None:
    """The third event and its checkpoint go out in one write; a crash keeps only part of it.

    The next writer cuts the torn checkpoint and adopts the whole event, leaving three
    unsigned events: the checkpoint they are owed comes first, so the log still verifies.
    """
    path = tmp_path / "audit.jsonl"
    sink = keyed_sink(path, keys, checkpoint_every=3)
    sink.emit(make_event(1))
    sink.emit(make_event(2))
    old_head = head_path(path).read_bytes()
    sink.emit(make_event(3))
    data = path.read_bytes()
    checkpoint_starts = data.rstrip(b"\n").rfind(b"\n") + 1
    assert json.loads(data[checkpoint_starts:])["kind"] == "checkpoint"
    path.write_bytes(data[: checkpoint_starts + 40])  # what reached the disk
    head_path(path).write_bytes(old_head)  # the head update never happened
    later = keyed_sink(path, keys, checkpoint_every=3)
    later.emit(make_event(4))
    records = lines(path)
    kinds = [r["kind"] for r in records]
    assert kinds == ["file", *["event"] * 3, "checkpoint", "event"]
    assert records[5]["event"] == make_event(4).to_dict()
    later.emit(make_event(5))
    later.emit(make_event(6))  # the third event since the overdue checkpoint: the next one
    assert [r["kind"] for r in lines(path)][5:] == [*["event"] * 3, "checkpoint"]
    verdict = verify(path, keys)
    assert verdict.ok, verdict.message
    assert "; 3 signatures verified;" in verdict.message  # the file record, two checkpoints


def big_event(number: int) -> AuditEvent:
    """An event whose line is several times the 4 KiB a writer first reads back."""
    return attrs.evolve(make_event(number), details=(("note", "x" * 20_000),))


def test_a_rollback_that_other_writers_appended_past_is_still_refused(tmp_path: Path) -> None:
    """Cut back with an older head, then another writer appends beyond where this one was.

    The log is longer again, so only the record this writer wrote tells: it is gone.
    """
    path = tmp_path / "audit.jsonl"
    sink = JsonlAuditSink(path)
    for number in range(3):
        sink.emit(make_event(number))
    saved = snapshot(path)
    for number in range(3, 6):
        sink.emit(make_event(number))
    roll_back(path, saved)
    other = JsonlAuditSink(path)
    for number in range(10, 16):
        other.emit(make_event(number))
    assert lines(path)[-1]["seq"] == 9
    assert verify(path).ok  # a consistent log: nothing on disk tells
    with pytest.raises(AuditSinkError) as refused:
        sink.emit(make_event(99))
    assert str(refused.value).startswith(
        f"audit log {path} cannot be continued: this writer appended seq 6, but the log (now "
        "at seq 9) holds another record there: it was rolled back (cut, and given an older "
        "head file) and appended to since, or rewritten. Run"
    )
    assert lines(path)[-1]["seq"] == 9


def test_a_rollback_to_a_shorter_file_that_others_appended_past_is_refused(
    tmp_path: Path,
) -> None:
    """This writer's last line was long; the rolled-back file never grew back to its end."""
    path = tmp_path / "audit.jsonl"
    sink = JsonlAuditSink(path)
    sink.emit(make_event(0))
    saved = snapshot(path)
    sink.emit(big_event(1))
    end = path.stat().st_size
    roll_back(path, saved)
    other = JsonlAuditSink(path)
    for number in range(10, 13):
        other.emit(make_event(number))
    assert path.stat().st_size < end
    with pytest.raises(AuditSinkError, match="this writer appended seq 2, but the log"):
        sink.emit(make_event(99))


def test_a_rotated_file_holding_this_writers_record_must_still_be_there(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    sink = JsonlAuditSink(path, max_bytes=2048)
    sink.emit(make_event(0))
    other = JsonlAuditSink(path, max_bytes=2048)
    for number in range(1, 12):
        other.emit(make_event(number))
    assert len(chain_files(path)) >= 3
    rotated_path(path, 1).rename(tmp_path / "elsewhere")
    with pytest.raises(AuditSinkError, match="this writer appended seq 1, but the log"):
        sink.emit(make_event(99))


def test_writers_taking_turns_across_rotations_and_long_lines_go_on(tmp_path: Path) -> None:
    """The check reads back each writer's own last line, wherever rotation moved it."""
    path = tmp_path / "audit.jsonl"
    first = JsonlAuditSink(path, max_bytes=30_000)
    second = JsonlAuditSink(path, max_bytes=30_000)
    for number in range(12):
        first.emit(big_event(number) if number % 3 == 0 else make_event(number))
        second.emit(make_event(100 + number))
        if number % 4 == 3:
            second.emit(big_event(200 + number))
    assert len(chain_files(path)) >= 3
    verdict = verify(path)
    assert verdict.ok, verdict.message
    assert verdict.events == 27


def test_a_writer_finds_its_record_in_a_file_another_writer_rotated_before_crashing(
    tmp_path: Path,
) -> None:
    """The other writer renamed the active file away and died before starting the next."""
    path = tmp_path / "audit.jsonl"
    first = JsonlAuditSink(path)
    first.emit(make_event(1))
    JsonlAuditSink(path).emit(make_event(2))
    path.rename(rotated_path(path, 1))  # the rename of a rotation, then the crash
    first.emit(make_event(3))
    assert [f.name for f in chain_files(path)] == ["audit.jsonl.000001", "audit.jsonl"]
    assert [(r["seq"], r["kind"]) for r in lines(path)] == [(3, "file"), (4, "event")]
    assert verify(path).ok


def test_an_append_that_signs_two_records_writes_two_anchor_lines(
    tmp_path: Path, keys: LocalKeyProvider
) -> None:
    """A new log with a checkpoint every event: file record and checkpoint in one append."""
    path = tmp_path / "logs" / "audit.jsonl"
    anchor = tmp_path / "elsewhere" / "deeper" / "audit.anchor"
    anchored_sink(path, keys, anchor, checkpoint_every=1).emit(make_event(1))
    assert [r["kind"] for r in lines(path)] == ["file", "event", "checkpoint"]
    raw = anchor.read_bytes().splitlines(keepends=True)
    assert [json.loads(line)["record"]["kind"] for line in raw] == ["file", "checkpoint"]
    assert all(line.startswith(b'{"format":"aureus-audit-anchor/1"') for line in raw)
    assert oct(anchor.parent.stat().st_mode & 0o777) == "0o700"
    assert verify(path, keys, anchor=anchor).ok


def test_catching_up_events_only_counts_them_toward_the_next_checkpoint(
    tmp_path: Path, keys: LocalKeyProvider
) -> None:
    path = tmp_path / "audit.jsonl"
    sink = keyed_sink(path, keys, checkpoint_every=3)
    sink.emit(make_event(1))
    old_head = head_path(path).read_bytes()
    sink.emit(make_event(2))
    head_path(path).write_bytes(old_head)  # one event behind
    keyed_sink(path, keys, checkpoint_every=3).emit(make_event(3))
    assert [r["kind"] for r in lines(path)] == ["file", "event", "event", "event", "checkpoint"]
    assert verify(path, keys).ok


def test_a_rollback_rewritten_to_the_same_length_is_refused(tmp_path: Path) -> None:
    """Records re-appended with other content of the same length.

    Where this writer's last record ended, a line with its seq ends again, with another hash.
    """
    path = tmp_path / "audit.jsonl"
    sink = JsonlAuditSink(path)
    for number in range(3):
        sink.emit(make_event(number))
    saved = snapshot(path)
    for number in range(3, 6):
        sink.emit(make_event(number))
    ours = path.read_bytes()
    roll_back(path, saved)
    other = JsonlAuditSink(path)
    for number in range(3, 7):
        other.emit(attrs.evolve(make_event(number), principal="contract-principaX"))
    now = path.read_bytes()
    assert now[: len(ours)] != ours
    assert now[len(ours) - 1 : len(ours)] == b"\n"  # a line still ends where ours did ...
    assert json.loads(now[: len(ours)].splitlines()[-1])["seq"] == 6  # ... and is seq 6
    with pytest.raises(AuditSinkError, match="this writer appended seq 6, but the log"):
        sink.emit(make_event(99))


def test_options_reach_the_sink(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    sink = JsonlAuditSink.from_options(
        {
            "path": str(path),
            "sync": "batch",
            "sync_every": 7,
            "lock_timeout": 0.05,
            "key_check_interval": 0.5,
            "max_bytes": 4096,
        }
    )
    assert (sink.path, sink.sync, sink.sync_every, sink.max_bytes) == (path, "batch", 7, 4096)
    assert sink.key_check_interval == 0.5
    assert (
        JsonlAuditSink.from_options({"path": "a", "key_check_interval": 0}).key_check_interval == 0
    )
    holder = filelock.FileLock(str(tmp_path / ".audit.jsonl.lock"), thread_local=False)
    with holder, pytest.raises(AuditSinkError, match=r"another writer for 0\.05 s"):
        sink.emit(make_event(1))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, 'the jsonl audit sink needs path = "<log file>" (or set AUREUS_AUDIT_LOG)'),
        (
            {"path": "a", "lock_timeout": 0},
            "option 'lock_timeout' of the jsonl audit sink must be seconds > 0",
        ),
        (
            {"path": "a", "lock_timeout": "30"},
            "option 'lock_timeout' of the jsonl audit sink must be seconds > 0",
        ),
        (
            {"path": "a", "lock_timeout": True},
            "option 'lock_timeout' of the jsonl audit sink must be seconds > 0",
        ),
        (
            {"path": "a", "key_check_interval": "60"},
            "option 'key_check_interval' of the jsonl audit sink must be seconds >= 0",
        ),
        (
            {"path": "a", "key_check_interval": False},
            "option 'key_check_interval' of the jsonl audit sink must be seconds >= 0",
        ),
    ],
)
def test_option_errors_say_exactly_what_is_wrong(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        JsonlAuditSink.from_options(options)
    assert str(error.value) == message


def test_a_short_lock_timeout_is_allowed(tmp_path: Path) -> None:
    sink = JsonlAuditSink.from_options({"path": str(tmp_path / "a.jsonl"), "lock_timeout": 0.5})
    sink.emit(make_event(1))
    assert verify(sink.path).ok


def test_a_refusal_says_what_to_move_aside_without_an_anchor(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    JsonlAuditSink(path).emit(make_event(1))
    head_path(path).write_bytes(b"{}")
    with pytest.raises(AuditSinkError) as error:
        JsonlAuditSink(path).emit(make_event(2))
    assert str(error.value) == (
        f"audit log {path} cannot be continued: its head file is damaged (not an Aureus audit "
        f"head file). Run `aureus audit verify {path}`, keep the files for investigation, and "
        "move the log and its head file aside to start a new chain"
    )


def test_a_checkpoint_record_carries_its_time_and_the_signing_key_version(
    tmp_path: Path, keys: LocalKeyProvider
) -> None:
    path = tmp_path / "audit.jsonl"
    sink = keyed_sink(path, keys, checkpoint_every=1)
    keys.rotate_key(KeyRef.parse(SIGNER))
    sink.emit(make_event(1))
    checkpoint = lines(path)[-1]
    assert list(lines(path)[0]) == ["seq", "kind", "prev", "time", "file", "sig", "hash"]
    assert datetime.fromisoformat(lines(path)[0]["time"]).utcoffset() == timedelta(0)
    assert list(checkpoint) == ["seq", "kind", "prev", "time", "sig", "hash"]
    assert checkpoint["kind"] == "checkpoint"
    stamped = datetime.fromisoformat(checkpoint["time"])
    assert stamped.utcoffset() == timedelta(0)
    assert abs(datetime.now(timezone.utc) - stamped) < timedelta(minutes=5)
    sig = checkpoint["sig"]
    assert (sig["key"], sig["version"], sig["algorithm"]) == (SIGNER, "2", "ed25519")
    assert verify(path, keys).ok


def test_an_event_that_fills_the_file_exactly_to_max_bytes_stays_in_it(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    JsonlAuditSink(path).emit(make_event(0))
    event = make_event(1)
    room = path.stat().st_size + len(canonical(event.to_dict())) + 200
    JsonlAuditSink(path, max_bytes=room).emit(event)
    assert chain_files(path) == [path]
    JsonlAuditSink(path, max_bytes=room).emit(make_event(2))
    assert len(chain_files(path)) == 2


def test_a_dead_writers_head_temp_file_is_removed_at_the_next_rotation(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    sink = JsonlAuditSink(path, max_bytes=2048)
    sink.emit(make_event(0))
    abandoned = tmp_path / ".audit.jsonl.head.999999.tmp"
    abandoned.write_bytes(b"{")
    sink.emit(make_event(1))  # no rotation: a running writer does not look
    assert abandoned.exists()
    number = 2
    while len(chain_files(path)) == 1:
        sink.emit(make_event(number))
        number += 1
    assert not abandoned.exists()
    assert verify(path).ok


def test_a_writer_rechecks_the_mac_key_version_only_every_key_check_interval(
    tmp_path: Path, keys: LocalKeyProvider
) -> None:
    path = tmp_path / "audit.jsonl"
    sink = keyed_sink(path, keys, key_check_interval=3600)
    sink.emit(make_event(1))
    keys.rotate_key(KeyRef.parse(MAC_KEY))
    sink.emit(make_event(2))
    sink.emit(make_event(3))
    assert chain_files(path) == [path]
    assert lines(path)[0]["file"]["params"]["mac_key"] == f"{MAC_KEY}?version=1"
    assert verify(path, keys).ok


def test_the_head_file_is_private_to_the_owner(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    JsonlAuditSink(path).emit(make_event(1))
    assert oct(head_path(path).stat().st_mode & 0o777) == "0o600"


def test_a_format_1_head_beside_a_format_2_file_stops_the_writer(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    JsonlAuditSink(path).emit(make_event(1))
    log = lines(path)[0]["file"]["log"]
    head = json.loads(head_path(path).read_bytes())
    del head["log"]
    head["format"] = "aureus-audit-head/1"
    head_path(path).write_bytes(canonical(head))
    with pytest.raises(AuditSinkError) as error:
        JsonlAuditSink(path).emit(make_event(2))
    assert (
        f"its head file audit.jsonl.head belongs to another log (format 1) than file 1 ({log})"
    ) in str(error.value)


def test_a_new_writer_continues_an_intact_anchored_log(
    tmp_path: Path, keys: LocalKeyProvider
) -> None:
    """Opening checks the log against the anchor's latest record, and it is there."""
    path = tmp_path / "logs" / "audit.jsonl"
    anchor = tmp_path / "elsewhere" / "audit.anchor"
    anchored_sink(path, keys, anchor).emit(make_event(1))
    anchored_sink(path, keys, anchor).emit(make_event(2))
    anchored_sink(path, keys, anchor).emit(make_event(3))
    assert verify(path, keys, anchor=anchor).ok


def test_a_first_append_of_three_records_without_its_head_is_recovered(
    tmp_path: Path, keys: LocalKeyProvider
) -> None:
    """File record, event and checkpoint (every event) written, the head never: not a cut."""
    path = tmp_path / "logs" / "audit.jsonl"
    anchor = tmp_path / "elsewhere" / "audit.anchor"
    anchored_sink(path, keys, anchor, checkpoint_every=1, max_bytes=100_000).emit(make_event(1))
    assert len(lines(path)) == 3
    head_path(path).unlink()
    anchored_sink(path, keys, anchor, checkpoint_every=1, max_bytes=100_000).emit(make_event(2))
    kinds = [r["kind"] for r in lines(path)]
    assert kinds == ["file", "event", "checkpoint", "event", "checkpoint"]
    assert verify(path, keys, anchor=anchor).ok


def test_a_record_after_the_head_must_link_to_it(tmp_path: Path) -> None:
    """Right seq and a valid SHA-256 hash, but it does not link to the head's record."""
    path = tmp_path / "audit.jsonl"
    sink = JsonlAuditSink(path)
    sink.emit(make_event(1))
    log = lines(path)[0]["file"]["log"]
    stray: dict[str, Any] = {
        "seq": 2,
        "kind": "event",
        "prev": "00" * 32,
        "event": make_event(5).to_dict(),
    }
    stray["hash"] = record_hash(stray, None, log)
    with path.open("a") as handle:
        handle.write(json.dumps(stray) + "\n")
    with pytest.raises(AuditSinkError, match=r"record 1 after byte \d+ \(expected seq 2\) does"):
        sink.emit(make_event(2))


def test_a_new_file_after_a_head_left_behind_must_link_to_the_head(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    sink = JsonlAuditSink(path, max_bytes=2048)
    number, old_head = emit_until_the_first_rotation(path, sink)
    head_path(path).write_bytes(old_head)
    records = lines(path)
    log = records[0]["file"]["log"]
    records[0]["prev"] = "00" * 32
    for index, record in enumerate(records):
        if index:
            record["prev"] = records[index - 1]["hash"]
        record["hash"] = record_hash(record, None, log)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    with pytest.raises(AuditSinkError, match=r"record 1 after byte 0 \(expected seq \d+\) does"):
        JsonlAuditSink(path, max_bytes=2048).emit(make_event(number))


def test_a_running_writer_refuses_a_log_deleted_behind_it(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    sink = JsonlAuditSink(path)
    sink.emit(make_event(1))
    path.unlink()
    head_path(path).unlink()
    with pytest.raises(AuditSinkError) as error:
        sink.emit(make_event(2))
    assert str(error.value).startswith(
        f"audit log {path} cannot be continued: this writer appended up to seq 1, but the log "
        "now is gone: it was rolled back (cut, and given an older head file) or replaced. If it "
        "was moved aside on purpose, restart the process to start a new log. Run"
    )
    assert not path.exists()


def test_a_write_that_sends_a_checkpoint_to_the_anchor_is_synced_first(
    tmp_path: Path, keys: LocalKeyProvider
) -> None:
    """With batched syncs, the log still reaches the disk before its anchor names a record."""
    path = tmp_path / "logs" / "audit.jsonl"
    sink = anchored_sink(
        path, keys, tmp_path / "elsewhere" / "audit.anchor", sync="batch", sync_every=1000
    )
    sink.emit(make_event(0))  # the new file: written and synced by itself
    synced: list[bool] = []
    write = sink._write

    def spy(data: bytes, *, sync: bool) -> int:
        synced.append(sync)
        return write(data, sync=sync)

    sink._write = spy  # type: ignore[method-assign]
    for number in range(1, 5):
        sink.emit(make_event(number))
    # checkpoint_every=2: the second and fourth appends carry a signed checkpoint.
    assert synced == [True, False, True, False]
    assert [r["kind"] for r in lines(path)].count("checkpoint") == 2


def test_a_file_holding_only_its_file_record_is_not_rotated_again_past_seq_256(
    tmp_path: Path,
) -> None:
    """An oversized event goes into a file that holds nothing but its file record yet.

    Such a file is left by a crash that tore the first append after a rotation; sequence
    numbers past 256 make sure the check compares numbers, not objects.
    """
    path = tmp_path / "audit.jsonl"
    limit = 512 * 1024

    def oversized(number: int) -> AuditEvent:
        return attrs.evolve(make_event(number), details=(("blob", "x" * limit),))

    sink = JsonlAuditSink(path, max_bytes=limit, sync="batch", sync_every=1000)
    for number in range(300):
        sink.emit(make_event(number))
    old_head = head_path(path).read_bytes()
    sink.emit(oversized(300))  # rotates: the active file is its file record and this event
    assert rotated_path(path, 1).exists()
    # The crash: the event after the file record torn off, the head file not yet moved on.
    path.write_bytes(path.read_bytes().split(b"\n")[0] + b"\n")
    head_path(path).write_bytes(old_head)
    writer = JsonlAuditSink(path, max_bytes=limit, sync="batch", sync_every=1000)
    writer.emit(oversized(301))
    assert not rotated_path(path, 2).exists()
    records = lines(path)
    assert [r["kind"] for r in records] == ["file", "event"]
    assert records[0]["seq"] > 256
    assert records[1]["event"] == oversized(301).to_dict()
    verdict = verify(path)
    assert verdict.ok, verdict.message
