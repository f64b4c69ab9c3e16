"""The chain verifier on its own: each check pinned by a log broken in exactly that one way.

Logs are written by the real ``jsonl`` sink, then edited here line by line; where
an edit needs valid hashes, the test recomputes them as an attacker without the
keys could (SHA-256 chains), so only the check under test can catch it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest

from aureus_builtin.jsonl_sink import JsonlAuditSink
from aureus_core.audit.chain import (
    FORMAT_1,
    GENESIS,
    HEAD_FORMAT_1,
    RECORD_DOMAIN_2,
    Verdict,
    canonical,
    chain_files,
    head_path,
    read_head,
    record_hash,
    rotated_path,
    sig_value,
    verify_chain,
)
from aureus_core.interfaces import KeyProvider
from aureus_core.keyref import KeyRef
from aureus_core.keys import KeySpec, KeyType
from aureus_core.testing import make_event
from aureus_local import LocalKeyProvider

SIGNER = "local://audit-signer"


@pytest.fixture
def signer(tmp_path: Path) -> Iterator[LocalKeyProvider]:
    """A keystore with an ed25519 checkpoint key."""
    provider = LocalKeyProvider(tmp_path / "ks")
    provider.create_key("audit-signer", KeySpec(key_type=KeyType.ED25519))
    yield provider
    provider.close()


def check_with(provider: KeyProvider) -> Callable[[Mapping[str, Any], bytes], bool]:
    def check(sig: Mapping[str, Any], message: bytes) -> bool:
        ref = KeyRef.parse(sig["key"]).with_version(sig["version"])
        return provider.verify(ref, message, sig_value(sig))

    return check


def signed_sink(path: Path, provider: KeyProvider, every: int) -> JsonlAuditSink:
    """A SHA-256 chain with checkpoints signed every ``every`` events."""
    return JsonlAuditSink(
        path, checkpoint_key=SIGNER, checkpoint_every=every, providers=lambda _: provider
    )


def write_log(path: Path, count: int, **options: Any) -> list[dict[str, Any]]:
    sink = JsonlAuditSink(path, **options)
    for number in range(count):
        sink.emit(make_event(number))
    return records_of(path)


def records_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def rewrite(path: Path, records: list[dict[str, Any]], log: str | None) -> None:
    """Renumber, relink and rehash ``records`` as SHA-256 (what anyone can do), and write them."""
    for index, record in enumerate(records):
        record["seq"] = index
        record["prev"] = records[index - 1]["hash"] if index else record["prev"]
        record["hash"] = record_hash(record, None, log)
    path.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in records))


def verify(path: Path, **kwargs: Any) -> Verdict:
    if not kwargs.get("no_head"):
        kwargs.setdefault("head", head_path(path))
    return verify_chain(chain_files(path), **kwargs)


# -- links and record kinds ---------------------------------------------------------------


def test_seq_0_must_link_to_zero(tmp_path: Path) -> None:
    """A rewritten chain whose first record links to something else is not a chain start."""
    path = tmp_path / "audit.jsonl"
    records = write_log(path, 3)
    records[0]["prev"] = "1" * 64
    rewrite(path, records, records[0]["file"]["log"])
    verdict = verify(path, no_head=True)
    assert not verdict.ok
    assert verdict.message == (
        "audit.jsonl line 1 (seq 0): seq 0 does not start a chain (its prev is not zero)"
    )


def test_a_later_file_on_its_own_starts_with_a_note_not_a_failure(tmp_path: Path) -> None:
    """A chain checked from a rotated file onwards starts at seq > 0 with a non-zero prev."""
    path = tmp_path / "audit.jsonl"
    sink = JsonlAuditSink(path, max_bytes=2048)
    for number in range(20):
        sink.emit(make_event(number))
    second = rotated_path(path, 2)
    first_seq = records_of(second)[0]["seq"]
    assert first_seq > 0
    assert records_of(second)[0]["prev"] != GENESIS
    verdict = verify_chain([second], no_head=True)
    assert verdict.ok, verdict.message
    assert verdict.notes == (
        f"the chain starts at seq {first_seq} in audit.jsonl.000002: the files before it were "
        "not given, so the link to them is not checked",
    )


def test_a_file_record_in_the_middle_of_a_file_is_refused(tmp_path: Path) -> None:
    """A file record (from another file, hashes recomputed) inserted after line 2."""
    path = tmp_path / "audit.jsonl"
    records = write_log(path, 4)
    log = records[0]["file"]["log"]
    inserted = json.loads(json.dumps(records[0]))
    records.insert(2, inserted)
    rewrite(path, records, log)
    head_path(path).unlink()
    verdict = verify(path, no_head=True)
    assert not verdict.ok
    assert verdict.message == (
        "audit.jsonl line 3 (seq 2): a file record in the middle of a file: lines from another "
        "log or file were inserted here"
    )


def test_a_checkpoint_without_a_signature_is_refused_even_unchecked(
    tmp_path: Path, signer: LocalKeyProvider
) -> None:
    """Its signature stripped and the hashes recomputed; no signature checking asked for."""
    path = tmp_path / "audit.jsonl"
    sink = signed_sink(path, signer, every=2)
    for number in range(5):
        sink.emit(make_event(number))
    records = records_of(path)
    assert records[3]["kind"] == "checkpoint"
    del records[3]["sig"]
    rewrite(path, records, records[0]["file"]["log"])
    verdict = verify(path, no_head=True)
    assert not verdict.ok
    assert verdict.message == "audit.jsonl line 4 (seq 3): a checkpoint record without a signature"


def test_a_cut_exactly_one_interval_after_the_last_signature_is_caught(
    tmp_path: Path, signer: LocalKeyProvider
) -> None:
    """Events 4-6 then checkpoint 7: cutting that checkpoint leaves exactly every=3 unsigned."""
    path = tmp_path / "audit.jsonl"
    sink = signed_sink(path, signer, every=3)
    for number in range(6):
        sink.emit(make_event(number))
    kinds = [r["kind"] for r in records_of(path)]
    assert kinds == ["file", "event", "event", "event", "checkpoint", *["event"] * 3, "checkpoint"]
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-1]))
    check = check_with(signer)
    verdict = verify(path, no_head=True, check_signature=check)
    assert not verdict.ok
    assert verdict.message == (
        "the log ends at seq 7 with 3 events after the last signed record (seq 4), but a "
        "checkpoint is due every 3: records after seq 4 were replaced or removed"
    )
    path.write_bytes(b"".join(lines[:-2]))  # two events after it: the checkpoint is not due yet
    assert verify(path, no_head=True, check_signature=check).ok


# -- the head file -------------------------------------------------------------------------


def test_a_head_file_without_a_log_fails(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 3)
    verdict = verify_chain([], head=head_path(path))
    assert not verdict.ok
    assert verdict.message == "head file audit.jsonl.head names seq 3, but no log was given"


def test_a_head_whose_hash_disagrees_with_the_log_fails(tmp_path: Path) -> None:
    """Same seq, another hash (an unkeyed head can be edited freely)."""
    path = tmp_path / "audit.jsonl"
    write_log(path, 3)
    head = json.loads(head_path(path).read_bytes())
    head["hash"] = "ab" * 32
    head_path(path).write_bytes(canonical(head))
    verdict = verify(path)
    assert not verdict.ok
    assert verdict.message == (
        "head file audit.jsonl.head records another hash for seq 3 than the log has: the log "
        "was rewritten up to seq 3, or the head is from another log"
    )


GOOD_HEAD: dict[str, Any] = {
    "format": "aureus-audit-head/2",
    "file": "audit.jsonl",
    "log": "0f" * 16,
    "index": 1,
    "seq": 3,
    "hash": "ab" * 32,
    "size": 900,
    "unsigned": 3,
}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"format": "aureus-audit-head/9"}, "not an Aureus audit head file"),
        ({"index": -1}, "index is not a whole number"),
        ({"seq": True}, "seq is not a whole number"),
        ({"size": "900"}, "size is not a whole number"),
        ({"unsigned": None}, "unsigned is not a whole number"),
        ({"hash": "AB" * 32}, "hash is not a SHA-256 hex digest"),
        ({"file": 1}, "file is not a name"),
        ({"log": "not-an-id"}, "log is not a log ID"),
        ({"format": HEAD_FORMAT_1}, f"a {HEAD_FORMAT_1} head names no log"),
    ],
)
def test_read_head_refuses_a_head_of_the_wrong_shape(
    tmp_path: Path, change: dict[str, Any], problem: str
) -> None:
    target = tmp_path / "audit.jsonl.head"
    target.write_bytes(canonical(GOOD_HEAD))
    assert read_head(target) == GOOD_HEAD
    target.write_bytes(canonical({**GOOD_HEAD, **change}))
    with pytest.raises(ValueError, match=f"^{problem}$"):
        read_head(target)
    (tmp_path / "audit.jsonl").write_bytes(b"")
    verdict = verify(tmp_path / "audit.jsonl")
    assert verdict.message == f"head file audit.jsonl.head is not valid ({problem}): it was edited"


# -- encoding --------------------------------------------------------------------------


def test_non_ascii_fields_are_escaped_and_hashed_as_ascii(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    event = attrs.evolve(make_event(1), principal="zoë@東京")
    JsonlAuditSink(path).emit(event)
    raw = path.read_bytes()
    raw.decode("ascii")  # every byte is ASCII
    line = raw.splitlines()[1]
    assert b'"principal":"zo\\u00eb@\\u6771\\u4eac"' in line
    record = json.loads(line)
    assert record["event"]["principal"] == "zoë@東京"
    log = records_of(path)[0]["file"]["log"]
    body = {k: v for k, v in record.items() if k != "hash"}
    by_hand = json.dumps(body, sort_keys=True, separators=(",", ":")).encode("ascii")
    assert b"\\u00eb" in by_hand
    digest = hashlib.sha256(RECORD_DOMAIN_2 + log.encode() + b"\n" + by_hand).hexdigest()
    assert record["hash"] == digest
    assert verify(path).ok


# -- the older format ------------------------------------------------------------------------


def format_1_log(path: Path, events: int) -> list[dict[str, Any]]:
    """A SHA-256 log in format 1, built record by record as an older writer wrote it."""
    records: list[dict[str, Any]] = [
        {
            "seq": 0,
            "kind": "file",
            "prev": GENESIS,
            "time": "2026-01-01T00:00:00+00:00",
            "file": {"format": FORMAT_1, "index": 1, "params": {"alg": "sha256"}},
        }
    ]
    for number in range(events):
        records.append(
            {"seq": 0, "kind": "event", "prev": "", "event": make_event(number).to_dict()}
        )
    for index, record in enumerate(records):
        record["seq"] = index
        if index:
            record["prev"] = records[index - 1]["hash"]
        record["hash"] = record_hash(record, None, None)
    path.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in records))
    head = {
        "format": HEAD_FORMAT_1,
        "file": path.name,
        "index": 1,
        "seq": records[-1]["seq"],
        "hash": records[-1]["hash"],
        "size": path.stat().st_size,
        "unsigned": events,
    }
    head_path(path).write_bytes(canonical(head) + b"\n")
    return records


def test_a_format_1_log_fails_unless_its_format_is_allowed(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    format_1_log(path, 3)
    refused = verify(path)
    assert not refused.ok
    assert refused.message == (
        "audit.jsonl line 1 (seq 0): the file was written by an older format "
        "(aureus-audit-jsonl/1), which carries no log ID, so files of another log under the same "
        "MAC key would verify in its place: pass --allow-format-1 to check it with that format's "
        "rules"
    )
    allowed = verify(path, allow_format_1=True)
    assert allowed.ok, allowed.message
    assert allowed.message == (
        "OK: 4 records (seq 0-3, 3 events) in 1 file; SHA-256; head file matches"
    )
    assert allowed.log is None


def test_a_writer_continues_a_format_1_log_in_a_new_format_2_file(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    old = format_1_log(path, 3)
    JsonlAuditSink(path).emit(make_event(9))
    first, second = chain_files(path)
    assert first == rotated_path(path, 1)
    new = records_of(second)
    assert new[0]["file"]["format"] == "aureus-audit-jsonl/2"
    assert (new[0]["seq"], new[0]["prev"], new[0]["file"]["index"]) == (4, old[-1]["hash"], 2)
    verdict = verify(path, allow_format_1=True)
    assert verdict.ok, verdict.message
    assert verdict.log == new[0]["file"]["log"]
    assert not verify(path).ok


def test_a_format_1_file_after_format_2_files_is_refused(tmp_path: Path) -> None:
    """Format 2 never goes back: an older-format file later in the chain was put there."""
    path = tmp_path / "audit.jsonl"
    records = write_log(path, 2)
    log = records[0]["file"]["log"]
    tail = {
        "seq": 3,
        "kind": "file",
        "prev": records[-1]["hash"],
        "time": "2026-01-01T00:00:00+00:00",
        "file": {"format": FORMAT_1, "index": 2, "params": {"alg": "sha256"}},
    }
    tail["hash"] = record_hash(tail, None, None)
    later = rotated_path(path, 2)
    later.write_bytes(json.dumps(tail).encode() + b"\n")
    verdict = verify_chain([path, later], no_head=True, allow_format_1=True)
    assert not verdict.ok
    assert verdict.message == (
        f"audit.jsonl.000002 line 1 (seq 3): a file of the older format {FORMAT_1} after files "
        f"of log {log}: files were replaced"
    )


def test_the_documented_verifier_path_of_the_builtin_plugin_still_imports() -> None:
    """Code written against ``aureus_builtin.audit_chain`` gets the core's verifier."""
    import aureus_builtin.audit_chain as former
    import aureus_core.audit.chain as chain

    assert former.verify_chain is chain.verify_chain
    assert former.Verdict is chain.Verdict
    assert former.public_key_check is chain.public_key_check
