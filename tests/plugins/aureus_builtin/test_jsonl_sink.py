"""The jsonl audit sink: chain, HMAC, checkpoints, head file, rotation, recovery, processes."""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

import aureus_builtin
import aureus_core
import aureus_local
from aureus_builtin.audit_chain import (
    CHAIN_KEY_LABEL,
    GENESIS,
    ChainError,
    Verdict,
    chain_files,
    head_path,
    public_key_check,
    record_hash,
    rotated_path,
    sig_value,
    verify_chain,
)
from aureus_builtin.jsonl_sink import JsonlAuditSink
from aureus_core import KeyStack
from aureus_core.audit import AuditEvent, derive_key
from aureus_core.errors import AuditFailure, AuditSinkError, ConfigError
from aureus_core.interfaces import KeyProvider
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


def verify(path: Path, provider: KeyProvider | None = None, **kwargs: Any) -> Verdict:
    """Verify the whole log at ``path`` (with its head, if any), keyed through ``provider``."""
    if provider is not None:
        kwargs.setdefault("mac_key", MAC_KEY)
        kwargs.setdefault(
            "chain_key",
            lambda uri: derive_key(lookup(provider), KeyRef.parse(uri), CHAIN_KEY_LABEL)[0],
        )
        kwargs.setdefault("check_signature", check_with(provider))
    head = head_path(path) if head_path(path).exists() else None
    return verify_chain(chain_files(path), head=head, **kwargs)


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def keyed_sink(path: Path, provider: KeyProvider, **kwargs: Any) -> JsonlAuditSink:
    kwargs.setdefault("checkpoint_every", 5)
    return JsonlAuditSink(
        path, hmac_key=MAC_KEY, checkpoint_key=SIGNER, providers=lookup(provider), **kwargs
    )


# -- the contract ----------------------------------------------------------------------


class TestJsonlAuditSinkContract(AuditSinkContract):
    @pytest.fixture
    def audit_sink(self, tmp_path: Path) -> JsonlAuditSink:
        return JsonlAuditSink.from_options({"path": str(tmp_path / "audit.jsonl")})

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
        return keyed_sink(tmp_path / "audit.jsonl", keys, checkpoint_every=7, max_bytes=8192)

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
    assert records[0]["file"]["params"] == {"alg": "sha256"}
    for before, after in itertools.pairwise(records):
        assert after["prev"] == before["hash"]
    assert all(r["hash"] == record_hash(r, None) for r in records)
    assert records[1]["event"] == make_event(0).to_dict()
    assert list(records[1]) == ["seq", "kind", "prev", "event", "hash"]  # readable order
    head = json.loads(head_path(path).read_text())
    assert (head["seq"], head["hash"], head["size"]) == (
        3,
        records[-1]["hash"],
        path.stat().st_size,
    )
    assert "mac" not in head
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    verdict = verify(path)
    assert verdict.ok, verdict.message
    assert (verdict.records, verdict.events) == (4, 3)
    assert verdict.message == (
        "OK: 4 records (seq 0-3, 3 events) in 1 file; SHA-256; head file matches"
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
    assert all(r["hash"] != record_hash(r, None) for r in records)
    assert "mac" in json.loads(head_path(path).read_text())
    with pytest.raises(ChainError, match="pass --mac-key local://audit-mac"):
        verify(path)
    verdict = verify(path, keys)
    assert verdict.ok, verdict.message
    assert "HMAC-SHA-256 under local://audit-mac?version=1" in verdict.message


def test_a_rotated_mac_key_keeps_its_pinned_version_until_the_next_file(
    tmp_path: Path, keys: LocalKeyProvider
) -> None:
    path = tmp_path / "audit.jsonl"
    keyed_sink(path, keys).emit(make_event(1))
    keys.rotate_key(KeyRef.parse(MAC_KEY))
    sink = keyed_sink(path, keys, max_bytes=1500)
    for number in range(2, 8):
        sink.emit(make_event(number))
    pinned = [lines(f)[0]["file"]["params"]["mac_key"] for f in chain_files(path)]
    assert pinned[0] == "local://audit-mac?version=1"
    assert pinned[-1] == "local://audit-mac?version=2"
    verdict = verify(path, keys)
    assert verdict.ok, verdict.message


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
    assert wrong.message.startswith("audit.jsonl line 1 (seq 0): the signature does not verify")


def test_verify_refuses_a_log_whose_checkpoints_were_stripped(
    tmp_path: Path, keys: LocalKeyProvider
) -> None:
    """Rewritten without checkpoints (and as SHA-256), it fails once signatures are required."""
    path = tmp_path / "audit.jsonl"
    sink = keyed_sink(path, keys, checkpoint_every=3)
    for number in range(7):
        sink.emit(make_event(number))
    rewritten: list[dict[str, Any]] = []
    for record in lines(path):
        if record["kind"] == "checkpoint":
            continue
        record.pop("sig", None)
        if record["kind"] == "file":
            record["file"]["params"] = {"alg": "sha256"}
        record["seq"] = len(rewritten)
        record["prev"] = rewritten[-1]["hash"] if rewritten else GENESIS
        record["hash"] = record_hash(record, None)
        rewritten.append(record)
    path.write_text("".join(json.dumps(r) + "\n" for r in rewritten))
    head_path(path).unlink()
    assert verify(path).ok
    verdict = verify(path, keys, mac_key=None)
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
    assert verdict.message.startswith("the log was cut: head file audit.jsonl.head records seq 4")


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
    assert any("1 record(s) behind" in note for note in behind.notes)
    sink.emit(make_event(3))
    assert [r["seq"] for r in lines(path)] == [0, 1, 2, 3]
    assert verify(path).notes == ()


def test_a_torn_last_line_is_cut_off_by_the_next_append(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    sink = JsonlAuditSink(path)
    sink.emit(make_event(1))
    with path.open("ab") as handle:
        handle.write(b'{"seq":2,"kind":"ev')
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
    with pytest.raises(AuditSinkError, match="the log is missing but its head file says"):
        sink.emit(make_event(2))


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
    with pytest.raises(AuditSinkError, match="needs key providers for hmac_key"):
        sink.emit(make_event(1))


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
    """A copied log (no head file beside it) still verifies, and says what it cannot check."""
    path = tmp_path / "audit.jsonl"
    sink = keyed_sink(path, keys)
    for number in range(3):
        sink.emit(make_event(number))
    copy = tmp_path / "copy" / "audit.jsonl"
    copy.parent.mkdir()
    shutil.copy(path, copy)
    verdict = verify(copy, keys)
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
