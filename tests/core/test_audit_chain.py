"""The chain verifier on its own: each check pinned by a log broken in exactly that one way.

Logs are written by the real ``jsonl`` sink, then edited here line by line; where
an edit needs valid hashes, the test recomputes them as an attacker without the
keys could (SHA-256 chains), so only the check under test can catch it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import attrs
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from aureus_builtin.jsonl_sink import JsonlAuditSink
from aureus_core.audit import derive_key
from aureus_core.audit.chain import (
    FORMAT_1,
    GENESIS,
    HEAD_FORMAT_1,
    RECORD_DOMAIN_2,
    ChainError,
    ChainParams,
    ChainVerifier,
    FileDecl,
    Verdict,
    canonical,
    chain_files,
    head_path,
    make_sig,
    parse_json,
    provider_signature_check,
    public_key_check,
    read_anchor,
    read_head,
    record_at,
    record_hash,
    rotated_files,
    rotated_path,
    sig_value,
    signed_bytes,
    verify_chain,
)
from aureus_core.errors import (
    AccessDenied,
    AureusError,
    ConfigError,
    CredentialError,
    KeyDisabled,
    KeyNotFound,
    ProviderUnavailable,
    SignatureError,
    Throttled,
    UnsupportedOperation,
)
from aureus_core.interfaces import KeyProvider, KeyProviderBase
from aureus_core.keyref import KeyRef
from aureus_core.keys import KeyMetadata, KeySpec, KeyState, KeyType, KeyVersion
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


def failure(verdict: Verdict) -> str:
    """The message of a verdict that must be a failure (``ok`` is exactly False)."""
    assert verdict.ok is False, verdict.message
    return verdict.message


# -- links and record kinds ---------------------------------------------------------------


def test_seq_0_must_link_to_zero(tmp_path: Path) -> None:
    """A rewritten chain whose first record links to something else is not a chain start."""
    path = tmp_path / "audit.jsonl"
    records = write_log(path, 3)
    records[0]["prev"] = "1" * 64
    rewrite(path, records, records[0]["file"]["log"])
    verdict = verify(path, no_head=True)
    assert not verdict.ok
    assert failure(verdict) == (
        "audit.jsonl line 1 (seq 0): seq 0 does not start a chain (its prev is not zero)"
    )


def test_a_later_file_on_its_own_needs_the_seq_the_log_is_kept_from(tmp_path: Path) -> None:
    """A chain checked from a rotated file onwards starts at seq > 0 with a non-zero prev:
    only ``from_seq`` at or past that seq says the files before it may be missing."""
    path = tmp_path / "audit.jsonl"
    sink = JsonlAuditSink(path, max_bytes=2048)
    for number in range(20):
        sink.emit(make_event(number))
    second = rotated_path(path, 2)
    first_seq = records_of(second)[0]["seq"]
    assert first_seq > 1
    assert records_of(second)[0]["prev"] != GENESIS
    assert failure(verify_chain([second], no_head=True)) == (
        f"audit.jsonl.000002 line 1 (seq {first_seq}): the log starts at seq {first_seq}, not "
        "at seq 0: its oldest records (whole files) were deleted, or not given; if files were "
        "removed on purpose (retention), say from which seq the log is kept (--from-seq)"
    )
    for kept in (first_seq, first_seq + 5):
        verdict = verify_chain([second], no_head=True, from_seq=kept)
        assert verdict.ok, verdict.message
        assert verdict.notes == (
            f"the chain starts at seq {first_seq} in audit.jsonl.000002: the log is kept from "
            f"seq {kept} (--from-seq), so the records before it and the link to them are not "
            "checked",
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
    assert failure(verdict) == (
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
    assert failure(verdict) == "audit.jsonl line 4 (seq 3): a checkpoint record without a signature"


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
    assert failure(verdict) == (
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
    assert failure(verdict) == "head file audit.jsonl.head names seq 3, but no log was given"


def test_a_head_whose_hash_disagrees_with_the_log_fails(tmp_path: Path) -> None:
    """Same seq, another hash (an unkeyed head can be edited freely)."""
    path = tmp_path / "audit.jsonl"
    write_log(path, 3)
    head = json.loads(head_path(path).read_bytes())
    head["hash"] = "ab" * 32
    head_path(path).write_bytes(canonical(head))
    verdict = verify(path)
    assert not verdict.ok
    assert failure(verdict) == (
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
    assert failure(verdict) == f"head file audit.jsonl.head is not valid ({problem}): it was edited"


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
    assert failure(refused) == (
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
    assert failure(verdict) == (
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


# -- duplicate members, and what a line must hold ------------------------------------------


def test_a_member_given_twice_is_refused_rather_than_read_one_way(tmp_path: Path) -> None:
    """Readers disagree on which of two ``event`` members counts; the verifier takes neither.

    The line carries a forged event first and the real one second, so a reader that keeps
    the first member and the hash (over the second) both look right to someone.
    """
    assert parse_json(b'{"seq":1}') == {"seq": 1}
    with pytest.raises(ValueError, match=r"^duplicate key 'event'$"):
        parse_json(b'{"event":{},"event":{}}')
    with pytest.raises(ValueError, match=r"^not a JSON object$"):
        parse_json(b"[1, 2]")
    path = tmp_path / "audit.jsonl"
    records = write_log(path, 2)
    forged = json.dumps({"outcome": "ok", "operation": "nothing-to-see"}, separators=(",", ":"))
    real = json.dumps(records[1]["event"], separators=(",", ":"))
    lines = path.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b'"event":', b'"event":' + forged.encode() + b',"event":', 1)
    assert real.encode() in lines[1]
    path.write_bytes(b"".join(lines))
    verdict = verify(path)
    assert not verdict.ok
    assert failure(verdict) == (
        "audit.jsonl line 2: not a valid audit record (duplicate key 'event'): the line was "
        "edited or inserted"
    )


@pytest.mark.parametrize(
    ("change", "bad"),
    [
        ({"seq": -1}, "seq"),
        ({"seq": True}, "seq"),
        ({"seq": "1"}, "seq"),
        ({"kind": "note"}, "kind"),
        ({"prev": "AB" * 32}, "prev"),
        ({"prev": None}, "prev"),
        ({"hash": "ab" * 31}, "hash"),
        ({"event": ["not", "an", "object"]}, "event"),
        ({"seq": None, "kind": None, "prev": 1, "hash": 2}, "seq, kind, prev, hash"),
    ],
)
def test_a_record_of_the_wrong_shape_is_named_with_each_bad_member(
    tmp_path: Path, change: dict[str, Any], bad: str
) -> None:
    path = tmp_path / "audit.jsonl"
    records = write_log(path, 2)
    lines = path.read_bytes().splitlines(keepends=True)
    lines[1] = json.dumps({**records[1], **change}).encode() + b"\n"
    path.write_bytes(b"".join(lines))
    verdict = verify(path)
    assert not verdict.ok
    assert failure(verdict) == (
        f"audit.jsonl line 2: not a valid audit record (bad {bad}): the line was edited or inserted"
    )


def test_a_line_that_is_not_json_is_named(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 2)
    with path.open("ab") as handle:
        handle.write(b"seq 3: nothing to see\n")
    verdict = verify(path)
    assert failure(verdict).startswith("audit.jsonl line 4: not a valid audit record (Expecting")
    assert verdict.message.endswith("): the line was edited or inserted")


# -- the file record ------------------------------------------------------------------------


GOOD_DECL: dict[str, Any] = {
    "format": "aureus-audit-jsonl/2",
    "index": 2,
    "log": "0f" * 16,
    "params": {
        "alg": "hmac-sha256",
        "mac_key": "local://audit-mac?version=3",
        "checkpoint_key": SIGNER,
        "checkpoint_every": 5,
    },
}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"format": "aureus-audit-jsonl/3"}, "format 'aureus-audit-jsonl/3' is neither "),
        ({"colour": "red"}, "unknown members colour"),
        ({"format": FORMAT_1}, "unknown members log"),
        ({"index": 0}, "index is not a positive whole number"),
        ({"index": True}, "index is not a positive whole number"),
        ({"index": "2"}, "index is not a positive whole number"),
        ({"log": "0F" * 16}, r"log is not a log ID \(32 hex digits\)"),
        ({"log": 15}, r"log is not a log ID \(32 hex digits\)"),
        ({"params": []}, "params is not an object"),
        ({"params": {"alg": "sha256", "salt": 1, "pepper": 2}}, "unknown params pepper, salt"),
        ({"params": {"alg": "md5"}}, "unknown hash algorithm 'md5' or a mac_key that does not"),
        ({"params": {"alg": "sha256", "mac_key": "local://m?version=1"}}, "unknown hash alg"),
        ({"params": {"alg": "hmac-sha256"}}, "unknown hash algorithm 'hmac-sha256' or a mac"),
        ({"params": {"alg": "hmac-sha256", "mac_key": "local://m"}}, "mac_key names no version"),
        (
            {"params": {"alg": "sha256", "checkpoint_key": SIGNER, "checkpoint_every": 0}},
            "checkpoint_every must be a positive whole number",
        ),
        (
            {"params": {"alg": "sha256", "checkpoint_key": SIGNER, "checkpoint_every": True}},
            "checkpoint_every must be a positive whole number",
        ),
        (
            {"params": {"alg": "sha256", "checkpoint_key": SIGNER}},
            "checkpoint_every must be a positive whole number",
        ),
        ({"params": {"alg": "sha256", "checkpoint_every": 5}}, "checkpoint_every without"),
    ],
)
def test_a_file_record_that_declares_nonsense_is_refused(
    change: dict[str, Any], problem: str
) -> None:
    decl = FileDecl.from_dict(GOOD_DECL)
    assert decl.to_dict() == GOOD_DECL
    assert decl.params.describe() == "HMAC-SHA-256 under local://audit-mac?version=3"
    assert decl.params.settings() == ("hmac-sha256", "local://audit-mac", SIGNER, 5)
    with pytest.raises(ValueError, match=f"^{problem}"):
        FileDecl.from_dict({**GOOD_DECL, **change})


def test_file_and_params_must_be_objects() -> None:
    with pytest.raises(ValueError, match=r"^file is not an object$"):
        FileDecl.from_dict(["format"])
    with pytest.raises(ValueError, match=r"^params is not an object$"):
        ChainParams.from_dict(None)
    plain = ChainParams.from_dict({"alg": "sha256"})
    assert (plain.describe(), plain.to_dict()) == ("SHA-256", {"alg": "sha256"})
    assert plain.settings() == ("sha256", None, None, None)


def test_a_log_whose_file_record_declares_nonsense_fails_verification(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    records = write_log(path, 2)
    records[0]["file"]["params"] = {"alg": "sha512"}
    rewrite(path, records, records[0]["file"]["log"])
    verdict = verify(path, no_head=True)
    assert failure(verdict) == (
        "audit.jsonl line 1 (seq 0): the file record is not valid (unknown hash algorithm "
        "'sha512' or a mac_key that does not fit it)"
    )


def test_a_file_that_lost_its_first_lines_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 3)
    path.write_bytes(b"".join(path.read_bytes().splitlines(keepends=True)[1:]))
    verdict = verify(path, no_head=True)
    assert failure(verdict) == (
        "audit.jsonl line 1 (seq 1): the file does not start with a file record: lines were "
        "removed from its start, or it is not an Aureus audit log"
    )


def test_an_empty_file_in_the_chain_is_refused(tmp_path: Path) -> None:
    """A rotated file truncated to nothing: without the check it would just be skipped."""
    path = tmp_path / "audit.jsonl"
    JsonlAuditSink(path, max_bytes=2048).emit(make_event(1))
    rotated_path(path, 1).write_bytes(b"")
    verdict = verify_chain([rotated_path(path, 1), path], no_head=True)
    assert not verdict.ok
    assert failure(verdict) == (
        "audit.jsonl.000001 is empty: it is not an audit log, or it was truncated"
    )


# -- links inside a file ----------------------------------------------------------------


def relinked(records: list[dict[str, Any]], log: str) -> bytes:
    """Each record rehashed in place (SHA-256), its seq and prev left as they are."""
    for record in records:
        record["hash"] = record_hash(record, None, log)
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


def test_a_deleted_record_is_named(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    records = write_log(path, 5)
    del records[2]
    path.write_bytes(relinked(records, records[0]["file"]["log"]))
    verdict = verify(path, no_head=True)
    assert failure(verdict) == (
        "audit.jsonl line 3 (seq 3): seq 2 missing before it: records were deleted"
    )


def test_deleted_records_are_named_as_a_range(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    records = write_log(path, 6)
    del records[2:5]
    path.write_bytes(relinked(records, records[0]["file"]["log"]))
    verdict = verify(path, no_head=True)
    assert failure(verdict) == (
        "audit.jsonl line 3 (seq 5): seq 2-4 missing before it: records were deleted"
    )


def test_a_deleted_record_is_told_from_garbage_further_on(tmp_path: Path) -> None:
    """Looking ahead for the missing seq reads past lines that are not records of it."""
    path = tmp_path / "audit.jsonl"
    records = write_log(path, 4)
    del records[2]
    garbage = b'{not json\n{"seq":2.0}\n{"seq":"2"}\n'
    path.write_bytes(relinked(records, records[0]["file"]["log"]) + garbage)
    verdict = verify(path, no_head=True)
    assert failure(verdict) == (
        "audit.jsonl line 3 (seq 3): seq 2 missing before it: records were deleted"
    )


def test_swapped_records_are_named_as_reordered(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    records = write_log(path, 5)
    records[2], records[3] = records[3], records[2]
    path.write_bytes(relinked(records, records[0]["file"]["log"]))
    verdict = verify(path, no_head=True)
    assert failure(verdict) == (
        "audit.jsonl line 3 (seq 3): out of order: seq 2 comes after it, at line 4: records "
        "were reordered"
    )


def test_records_swapped_far_into_a_log_are_named_as_reordered(tmp_path: Path) -> None:
    """Past seq 256 too: sequence numbers are compared by value."""
    path = tmp_path / "audit.jsonl"
    records = write_log(path, 303)
    records[300], records[301] = records[301], records[300]
    path.write_bytes(relinked(records, records[0]["file"]["log"]))
    verdict = verify(path, no_head=True)
    assert failure(verdict) == (
        "audit.jsonl line 301 (seq 301): out of order: seq 300 comes after it, at line 302: "
        "records were reordered"
    )


def test_a_record_moved_far_back_is_named_as_reordered(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    records = write_log(path, 6)
    records.append(records.pop(2))
    path.write_bytes(relinked(records, records[0]["file"]["log"]))
    verdict = verify(path, no_head=True)
    assert failure(verdict) == (
        "audit.jsonl line 3 (seq 3): out of order: seq 2 comes after it, at line 7: records "
        "were reordered"
    )


def test_a_duplicated_record_is_named(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    records = write_log(path, 4)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join([*lines[:3], lines[2], *lines[3:]]))
    verdict = verify(path, no_head=True)
    assert failure(verdict) == (
        "audit.jsonl line 4 (seq 2): seq 2 again after seq 2: a record was inserted, "
        "duplicated or moved here"
    )
    assert records[2]["seq"] == 2


def test_a_replaced_record_breaks_the_link_after_it(tmp_path: Path) -> None:
    """An edited event whose own hash was recomputed: the next record no longer links."""
    path = tmp_path / "audit.jsonl"
    records = write_log(path, 4)
    records[2]["event"]["outcome"] = "AccessDenied"
    path.write_bytes(relinked(records, records[0]["file"]["log"]))
    verdict = verify(path, no_head=True)
    assert failure(verdict) == (
        "audit.jsonl line 4 (seq 3): does not link to seq 2 before it: a record was inserted "
        "or replaced here, or the chain was rewritten from here"
    )


# -- links between files --------------------------------------------------------------------


def rotated_log(path: Path, events: int = 20, **options: Any) -> list[Path]:
    sink = JsonlAuditSink(path, max_bytes=2048, **options)
    for number in range(events):
        sink.emit(make_event(number))
    files = chain_files(path)
    assert len(files) >= 4
    return files


def test_files_are_checked_in_chain_order_whatever_order_they_are_given(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    files = rotated_log(path)
    verdict = verify_chain(list(reversed(files)), head=head_path(path))
    assert verdict.ok, verdict.message
    assert verdict.message.startswith(f"OK: {verdict.records} records (seq 0-")
    assert f"in {len(files)} files;" in verdict.message


def test_a_missing_middle_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    files = rotated_log(path)
    last_of_first = records_of(files[0])[-1]["seq"]
    first_of_third = records_of(files[2])[0]["seq"]
    verdict = verify_chain([files[0], *files[2:]], head=head_path(path))
    assert failure(verdict) == (
        f"audit.jsonl.000003 starts at seq {first_of_third}, but audit.jsonl.000001 ends at "
        f"seq {last_of_first}: records (or a whole file) between them are missing"
    )


def test_a_file_given_twice_under_another_name_is_named_as_overlap(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    files = rotated_log(path)
    copy = tmp_path / "audit.jsonl.000099"
    copy.write_bytes(files[1].read_bytes())
    first, last = records_of(files[1])[0]["seq"], records_of(files[1])[-1]["seq"]
    verdict = verify_chain([files[0], files[1], copy, *files[2:]], no_head=True)
    assert failure(verdict) == (
        f"audit.jsonl.000099 starts at seq {first}, but audit.jsonl.000002 already reached "
        f"seq {last}: the files overlap or come from different logs"
    )


def test_a_file_that_does_not_link_to_the_one_before_is_named(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    files = rotated_log(path)
    records = records_of(files[1])
    log = records[0]["file"]["log"]
    records[0]["prev"] = "ab" * 32
    rewrite_from = records[0]["seq"]
    for index, record in enumerate(records):
        if index:
            record["prev"] = records[index - 1]["hash"]
        record["hash"] = record_hash(record, None, log)
    files[1].write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in records))
    verdict = verify_chain(files, no_head=True)
    assert failure(verdict) == (
        f"audit.jsonl.000002 line 1 (seq {rewrite_from}): audit.jsonl.000002 does not continue "
        f"audit.jsonl.000001 (its first record does not link to seq {rewrite_from - 1}): the "
        "files come from different logs, or the file boundary was broken"
    )


def test_a_file_of_another_log_spliced_in_is_named(tmp_path: Path) -> None:
    """Two logs rotated alike: file 2 of the other log put in place of this log's file 2."""
    ours, theirs = tmp_path / "a" / "audit.jsonl", tmp_path / "b" / "audit.jsonl"
    files, other = rotated_log(ours), rotated_log(theirs)
    log_a, log_b = (records_of(f[0])[0]["file"]["log"] for f in (files, other))
    seq = records_of(other[1])[0]["seq"]
    verdict = verify_chain([files[0], other[1]], no_head=True)
    assert failure(verdict) == (
        f"audit.jsonl.000002 line 1 (seq {seq}): the file belongs to log {log_b}, but the "
        f"files before it to log {log_a}: files of another log were spliced in"
    )


# -- what the verifier reports ------------------------------------------------------------


def test_no_files_and_no_head_is_ok_with_no_records() -> None:
    verdict = verify_chain([], no_head=True)
    assert (verdict.ok, verdict.message, verdict.records, verdict.log) == (
        True,
        "OK: no records",
        0,
        None,
    )


def test_a_log_without_its_head_file_fails_unless_declared(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 2)
    verdict = verify_chain([path])
    assert not verdict.ok
    assert failure(verdict) == (
        "no head file was given: without it, a log cut back to any earlier checkpoint (or, "
        "unsigned, to any record) verifies. Give the log's head file (FILE.head), or declare "
        "that the log has none (--no-head)"
    )
    assert verify_chain([path], no_head=True).ok


def test_a_file_that_cannot_be_read_is_an_error_not_a_verdict(tmp_path: Path) -> None:
    missing = tmp_path / "audit.jsonl"
    with pytest.raises(ChainError, match=f"^cannot read {missing}: No such file or directory$"):
        verify_chain([missing], no_head=True)
    write_log(missing, 1)
    head_path(missing).unlink()
    head_path(missing).mkdir()
    with pytest.raises(ChainError, match=f"^cannot read {head_path(missing)}: Is a directory$"):
        verify(missing)


# -- keys the caller requires ----------------------------------------------------------------


MAC_KEY = "local://audit-mac"


@pytest.fixture
def keys(signer: LocalKeyProvider) -> LocalKeyProvider:
    """The signer's keystore with an aes-256 MAC key too."""
    signer.create_key("audit-mac", KeySpec(key_type=KeyType.AES_256))
    return signer


def keyed_log(path: Path, provider: KeyProvider, events: int = 3, every: int = 2) -> None:
    sink = JsonlAuditSink(
        path,
        hmac_key=MAC_KEY,
        checkpoint_key=SIGNER,
        checkpoint_every=every,
        providers=lambda _: provider,
    )
    for number in range(events):
        sink.emit(make_event(number))


def mac_with(provider: KeyProvider) -> Callable[[str, bytes], bytes]:
    return lambda uri, label: derive_key(lambda _: provider, KeyRef.parse(uri), label)[0]


def test_a_log_under_another_mac_key_is_not_the_log_expected(
    tmp_path: Path, keys: LocalKeyProvider
) -> None:
    path = tmp_path / "audit.jsonl"
    keyed_log(path, keys)
    keys.create_key("other-mac", KeySpec(key_type=KeyType.AES_256))
    mac = mac_with(keys)
    assert verify(path, mac_key=MAC_KEY, mac=mac).ok
    assert verify(path, mac_key=f"{MAC_KEY}?version=7", mac=mac).ok  # any version of it
    verdict = verify(path, mac_key="local://other-mac", mac=mac)
    assert failure(verdict) == (
        "audit.jsonl line 1 (seq 0): the file is chained under local://audit-mac?version=1, "
        "not local://other-mac: it is not the log you expect"
    )


def test_a_log_signed_by_another_checkpoint_key_is_refused(
    tmp_path: Path, keys: LocalKeyProvider
) -> None:
    path = tmp_path / "audit.jsonl"
    keyed_log(path, keys)
    mac, check = mac_with(keys), check_with(keys)
    assert verify(path, mac=mac, check_signature=check, checkpoint_key=SIGNER).ok
    for other in ("local://other", "local://a-signer"):  # names after and before it
        verdict = verify(path, mac=mac, check_signature=check, checkpoint_key=other)
        assert failure(verdict) == (
            f"audit.jsonl line 1 (seq 0): checkpoints are signed by local://audit-signer, not "
            f"{other}"
        )


def test_a_file_record_stripped_of_its_signature_is_refused_when_signatures_are_checked(
    tmp_path: Path, signer: LocalKeyProvider
) -> None:
    path = tmp_path / "audit.jsonl"
    sink = signed_sink(path, signer, every=5)
    sink.emit(make_event(1))
    records = records_of(path)
    del records[0]["sig"]
    rewrite(path, records, records[0]["file"]["log"])
    assert verify(path, no_head=True).ok  # nothing asked to check signatures
    verdict = verify(path, no_head=True, check_signature=check_with(signer))
    assert failure(verdict) == (
        "audit.jsonl line 1 (seq 0): the file record is not signed, but its params name a key"
    )


def test_a_checkpoint_removed_mid_log_is_caught_one_event_past_the_interval(
    tmp_path: Path, signer: LocalKeyProvider
) -> None:
    """Checkpoint after events 1-3 removed, the log renumbered: event 4 is the 4th unsigned."""
    path = tmp_path / "audit.jsonl"
    sink = signed_sink(path, signer, every=3)
    for number in range(7):
        sink.emit(make_event(number))
    records = records_of(path)
    assert [r["kind"] for r in records][4] == "checkpoint"
    del records[4]
    rewrite(path, records, records[0]["file"]["log"])
    check = check_with(signer)
    verdict = verify(path, no_head=True, check_signature=check)
    assert failure(verdict).startswith(
        "audit.jsonl line 5 (seq 4): 4 events since the last signed record, but the log "
        "promises a checkpoint every 3: checkpoint records were removed"
    )


def test_signed_records_are_counted_and_said_unchecked_without_a_key(
    tmp_path: Path, signer: LocalKeyProvider
) -> None:
    path = tmp_path / "audit.jsonl"
    sink = signed_sink(path, signer, every=2)
    for number in range(4):
        sink.emit(make_event(number))
    log = records_of(path)[0]["file"]["log"]
    unchecked = verify(path)
    assert unchecked.ok
    assert (unchecked.records, unchecked.events, unchecked.checkpoints) == (7, 4, 3)
    assert unchecked.message == (
        f"OK: 7 records (seq 0-6, 4 events) in 1 file; log {log}; SHA-256; 3 signed records "
        "not checked (pass --checkpoint-key or --public-key); head file matches"
    )
    checked = verify(path, check_signature=check_with(signer))
    assert checked.message == (
        f"OK: 7 records (seq 0-6, 4 events) in 1 file; log {log}; SHA-256; 3 signatures "
        "verified; head file matches"
    )


# -- signatures with public keys alone ----------------------------------------------------------


def test_ecdsa_checkpoints_verify_with_the_public_key_alone(tmp_path: Path) -> None:
    provider = LocalKeyProvider(tmp_path / "ks")
    provider.create_key("audit-signer", KeySpec(key_type=KeyType.ECDSA_P256))
    path = tmp_path / "audit.jsonl"
    sink = signed_sink(path, provider, every=2)
    for number in range(3):
        sink.emit(make_event(number))
    pem = provider.public_key(KeyRef.parse(SIGNER))
    provider.close()
    verdict = verify(path, check_signature=public_key_check([pem]))
    assert verdict.ok, verdict.message
    assert verdict.checkpoints == 2
    records = records_of(path)
    assert records[3]["kind"] == "checkpoint"
    records[3]["sig"]["value"] = "not base64!"
    rewrite(path, records, records[0]["file"]["log"])
    broken = verify(path, no_head=True, check_signature=public_key_check([pem]))
    assert failure(broken).startswith("audit.jsonl line 4 (seq 3): the signature does not verify")


def test_public_keys_that_cannot_check_checkpoints_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"^a --public-key file is not a PEM public key$"):
        public_key_check([b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"])
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(
        ConfigError, match=r"^checkpoint public keys must be Ed25519 or ECDSA keys$"
    ):
        public_key_check([pem])


def test_a_sig_value_must_be_strict_base64() -> None:
    assert sig_value({"value": "AAEC"}) == b"\x00\x01\x02"
    with pytest.raises(ValueError, match=r"^sig has no value$"):
        sig_value({"key": SIGNER})
    with pytest.raises(ValueError, match=r"^sig value is not base64$"):
        sig_value({"value": "AA EC"})


def test_a_signature_covers_the_log_id_and_the_record_without_hash_and_sig() -> None:
    record = {"seq": 4, "kind": "checkpoint", "prev": "ab" * 32, "hash": "cd" * 32, "sig": {}}
    body = b'{"kind":"checkpoint","prev":"' + b"ab" * 32 + b'","seq":4}'
    log = "0f" * 16
    assert signed_bytes(record, log) == (
        b"aureus-audit-checkpoint/2\n" + log.encode() + b"\n" + body
    )
    assert signed_bytes(record, None) == b"aureus-audit-checkpoint/1\n" + body


# -- a head file from elsewhere -----------------------------------------------------------------


def test_the_head_file_of_another_log_is_refused(tmp_path: Path) -> None:
    """Both logs end at the same seq; the head's log ID tells them apart."""
    ours, theirs = tmp_path / "a" / "audit.jsonl", tmp_path / "b" / "audit.jsonl"
    log_a = write_log(ours, 3)[0]["file"]["log"]
    log_b = write_log(theirs, 3)[0]["file"]["log"]
    head_path(ours).write_bytes(head_path(theirs).read_bytes())
    verdict = verify(ours)
    assert failure(verdict) == (
        f"head file audit.jsonl.head belongs to log {log_b}, but the log's last file to log "
        f"{log_a}: it is the head of another log"
    )


def test_a_format_1_head_on_a_format_2_log_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = write_log(path, 3)[0]["file"]["log"]
    head = json.loads(head_path(path).read_bytes())
    del head["log"]
    head["format"] = HEAD_FORMAT_1
    head_path(path).write_bytes(canonical(head))
    verdict = verify(path)
    assert failure(verdict) == (
        f"head file audit.jsonl.head belongs to no log (aureus-audit-head/1), but the log's "
        f"last file to log {log}: it is the head of another log"
    )


def test_a_format_2_head_on_a_format_1_log_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    format_1_log(path, 2)
    head = json.loads(head_path(path).read_bytes())
    head.update(format="aureus-audit-head/2", log="0f" * 16)
    head_path(path).write_bytes(canonical(head))
    verdict = verify(path, allow_format_1=True)
    assert failure(verdict) == (
        f"head file audit.jsonl.head belongs to log {'0f' * 16}, but the log's last file to "
        "no log (aureus-audit-jsonl/1): it is the head of another log"
    )


def test_an_hmac_log_head_whose_mac_is_missing_is_refused(
    tmp_path: Path, keys: LocalKeyProvider
) -> None:
    path = tmp_path / "audit.jsonl"
    keyed_log(path, keys)
    mac = mac_with(keys)
    assert verify(path, mac=mac).ok
    head = json.loads(head_path(path).read_bytes())
    del head["mac"]
    head_path(path).write_bytes(canonical(head))
    verdict = verify(path, mac=mac)
    assert failure(verdict) == (
        "head file audit.jsonl.head: its MAC does not match (HMAC-SHA-256 under "
        "local://audit-mac?version=1): it was edited or replaced"
    )


# -- the anchor ----------------------------------------------------------------------------------


GOOD_ANCHOR: dict[str, Any] = {
    "format": "aureus-audit-anchor/1",
    "log": "0f" * 16,
    "file": "audit.jsonl",
    "record": {"seq": 3, "kind": "checkpoint", "prev": "ab" * 32, "sig": {}, "hash": "cd" * 32},
}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"format": "aureus-audit-anchor/2"}, "format is not aureus-audit-anchor/1"),
        ({"log": "0F" * 16}, "log is not a log ID"),
        ({"log": None}, "log is not a log ID"),
        ({"record": "seq 3"}, "record is not an object"),
        ({"record": {**GOOD_ANCHOR["record"], "seq": -1}}, "the record's seq is not a whole"),
        ({"record": {**GOOD_ANCHOR["record"], "seq": True}}, "the record's seq is not a whole"),
        ({"record": {**GOOD_ANCHOR["record"], "seq": 3.0}}, "the record's seq is not a whole"),
        ({"record": {**GOOD_ANCHOR["record"], "hash": "CD" * 32}}, "the record's hash is not"),
        ({"record": {**GOOD_ANCHOR["record"], "hash": None}}, "the record's hash is not"),
        ({"record": {**GOOD_ANCHOR["record"], "kind": "event"}}, "the record is not a signed"),
        (
            {"record": {k: v for k, v in GOOD_ANCHOR["record"].items() if k != "sig"}},
            "the record is not a signed file or checkpoint record",
        ),
    ],
)
def test_an_anchor_entry_of_the_wrong_shape_is_named_by_its_line(
    tmp_path: Path, change: dict[str, Any], problem: str
) -> None:
    anchor = tmp_path / "audit.anchor"
    good = canonical(GOOD_ANCHOR) + b"\n"
    anchor.write_bytes(good)
    (mark,) = read_anchor(anchor)
    assert (mark.log, mark.seq, mark.hash, mark.line) == ("0f" * 16, 3, "cd" * 32, 1)
    assert mark.record == GOOD_ANCHOR["record"]
    anchor.write_bytes(good + canonical({**GOOD_ANCHOR, **change}) + b"\n" + good)
    with pytest.raises(ValueError, match=f"^line 2 is not an anchor entry \\({problem}"):
        read_anchor(anchor)


def anchor_of(tmp_path: Path, signer: LocalKeyProvider, events: int) -> tuple[Path, Path]:
    path = tmp_path / "logs" / "audit.jsonl"
    anchor = tmp_path / "elsewhere" / "audit.anchor"
    sink = JsonlAuditSink(
        path,
        checkpoint_key=SIGNER,
        checkpoint_every=2,
        max_bytes=2048,
        anchor=anchor,
        providers=lambda _: signer,
    )
    for number in range(events):
        sink.emit(make_event(number))
    return path, anchor


def test_an_anchor_that_cannot_be_read_is_an_error(
    tmp_path: Path, signer: LocalKeyProvider
) -> None:
    path, anchor = anchor_of(tmp_path, signer, 2)
    anchor.unlink()
    anchor.mkdir()
    with pytest.raises(ChainError, match=f"^cannot read anchor {anchor}: Is a directory$"):
        verify(path, anchor=anchor)


def test_an_anchor_without_a_log_fails(tmp_path: Path, signer: LocalKeyProvider) -> None:
    path, anchor = anchor_of(tmp_path, signer, 1)
    assert len(read_anchor(anchor)) == 1
    log = records_of(path)[0]["file"]["log"]
    verdict = verify_chain([], no_head=True, anchor=anchor)
    assert failure(verdict) == f"anchor audit.anchor names log {log}, but no log was given"


def test_a_format_1_log_cannot_be_checked_against_an_anchor(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    format_1_log(path, 2)
    anchor = tmp_path / "audit.anchor"
    anchor.write_bytes(canonical(GOOD_ANCHOR) + b"\n")
    verdict = verify(path, allow_format_1=True, anchor=anchor)
    assert failure(verdict) == (
        "the log was written by the older format aureus-audit-jsonl/1, which carries no log "
        "ID: it cannot be checked against anchor audit.anchor"
    )


def test_anchor_entries_before_the_seq_the_log_is_kept_from_are_noted_not_checked(
    tmp_path: Path, signer: LocalKeyProvider
) -> None:
    path, anchor = anchor_of(tmp_path, signer, 20)
    files = chain_files(path)
    assert len(files) >= 3
    first = records_of(files[-2])[0]["seq"]
    marks = read_anchor(anchor)
    before = sum(1 for mark in marks if mark.seq < first)
    assert 0 < before < len(marks)
    refused = verify_chain(files[-2:], head=head_path(path), anchor=anchor)
    assert failure(refused).endswith("say from which seq the log is kept (--from-seq)")
    verdict = verify_chain(files[-2:], head=head_path(path), anchor=anchor, from_seq=first)
    assert verdict.ok, verdict.message
    assert verdict.notes[-1] == (
        f"{before} anchor entries before seq {first} were not checked: the log is kept from "
        f"seq {first} (--from-seq)"
    )
    assert verdict.message.endswith(f"; anchor matches (seq {max(m.seq for m in marks)})")
    whole = verify_chain(files, head=head_path(path), anchor=anchor)
    assert whole.ok, whole.message
    assert whole.notes == ()


def test_the_anchors_latest_entry_is_the_highest_seq_not_the_last_line(
    tmp_path: Path, signer: LocalKeyProvider
) -> None:
    """Entries of a log cut and rolled back still count: the anchor keeps the highest seq."""
    path, anchor = anchor_of(tmp_path, signer, 6)
    lines = anchor.read_bytes().splitlines(keepends=True)
    end = max(r["seq"] for f in chain_files(path) for r in records_of(f) if "sig" in r)
    anchor.write_bytes(b"".join([*lines[1:], lines[0]]))  # the file record's entry last
    verdict = verify(path, anchor=anchor)
    assert verdict.ok, verdict.message
    assert verdict.message.endswith(f"; anchor matches (seq {end})")


# -- reading a log without checking it ------------------------------------------------------


def test_record_at_finds_a_record_in_whichever_file_holds_it(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    files = rotated_log(path)
    every = [record for file in files for record in records_of(file)]
    assert [r["seq"] for r in every] == list(range(len(every)))
    for record in every:
        assert record_at(path, record["seq"]) == record
    assert record_at(path, len(every)) is None
    rotated_path(path, 1).write_bytes(b"garbage\n")
    assert record_at(path, 1) is None
    assert record_at(path, len(every) - 1) == every[-1]


def test_rotated_files_are_this_logs_numbered_files_in_number_order(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    for name in (
        "audit.jsonl.000010",
        "audit.jsonl.000002",
        "audit.jsonl.1000000",
        "audit.jsonl.00001",  # five digits: not a rotated file
        "audit.jsonl.head",
        "audit.jsonl.000003.bak",
        "other.jsonl.000001",
        "xaudit.jsonl.000001",
    ):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in rotated_files(path)] == [
        "audit.jsonl.000002",
        "audit.jsonl.000010",
        "audit.jsonl.1000000",
    ]
    assert chain_files(path) == rotated_files(path)
    path.write_bytes(b"")
    assert chain_files(path) == [*rotated_files(path), path]
    assert rotated_files(tmp_path / "nowhere" / "audit.jsonl") == []


def test_checkpoints_signed_before_and_after_a_key_rotation_need_both_public_keys(
    tmp_path: Path, signer: LocalKeyProvider
) -> None:
    """One PEM per version: each signature is tried against every key given, in any order."""
    path = tmp_path / "audit.jsonl"
    sink = signed_sink(path, signer, every=2)
    for number in range(2):
        sink.emit(make_event(number))
    signer.rotate_key(KeyRef.parse(SIGNER))
    for number in range(2, 4):
        sink.emit(make_event(number))
    versions = [r["sig"]["version"] for r in records_of(path) if "sig" in r]
    assert versions == ["1", "1", "2"]
    old, new = (signer.public_key(KeyRef.parse(SIGNER).with_version(v)) for v in ("1", "2"))
    for pems in ([old, new], [new, old]):
        verdict = verify(path, check_signature=public_key_check(pems))
        assert verdict.ok, verdict.message
        assert verdict.checkpoints == 3
    only_new = verify(path, check_signature=public_key_check([new]))
    assert failure(only_new).startswith("audit.jsonl line 1 (seq 0): the signature does not")


# -- what each break says, word for word ------------------------------------------------------


def test_an_edited_record_is_named_with_how_the_file_is_chained(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 2)
    path.write_bytes(path.read_bytes().replace(b'"outcome":"ok"', b'"outcome":"no"', 1))
    assert failure(verify(path, no_head=True)) == (
        "audit.jsonl line 3 (seq 2): the record's hash does not match its content (SHA-256): "
        "the record was edited, or it comes from another log"
    )
    old = tmp_path / "old" / "audit.jsonl"
    old.parent.mkdir()
    format_1_log(old, 2)
    old.write_bytes(old.read_bytes().replace(b'"outcome": "ok"', b'"outcome": "no"', 1))
    assert failure(verify(old, no_head=True, allow_format_1=True)) == (
        "audit.jsonl line 3 (seq 2): the record's hash does not match its content (SHA-256, "
        "format 1): the record was edited, or it comes from another log"
    )


def test_a_torn_last_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 1)
    with path.open("ab") as handle:
        handle.write(b'{"seq":2,"kind":"ev')
    assert failure(verify(path)) == (
        "audit.jsonl line 3: the last line is incomplete: a writer stopped in the middle of an "
        "append (the next append repairs it), or the file was cut mid-record"
    )


def test_a_forged_signature_and_a_downgraded_log_are_named(
    tmp_path: Path, keys: LocalKeyProvider
) -> None:
    path = tmp_path / "audit.jsonl"
    keyed_log(path, keys)
    mac, check = mac_with(keys), check_with(keys)
    records = records_of(path)
    other = LocalKeyProvider(tmp_path / "other")
    other.create_key("audit-signer", KeySpec(key_type=KeyType.ED25519))
    log = records[0]["file"]["log"]
    forged = other.sign(KeyRef.parse(SIGNER), signed_bytes(records[3], log))
    other.close()
    assert records[3]["kind"] == "checkpoint"
    records[3]["sig"]["value"] = base64.b64encode(forged.value).decode()
    lines = path.read_bytes().splitlines(keepends=True)
    lines[3] = json.dumps(records[3]).encode() + b"\n"
    path.write_bytes(b"".join(lines))
    assert failure(verify(path, mac=mac, check_signature=check, no_head=True)).startswith(
        "audit.jsonl line 4 (seq 3): the record's hash does not match"  # HMAC: caught first
    )
    records[3]["hash"] = record_hash(records[3], None, log)  # as a SHA-256 log would allow
    lines[3] = json.dumps(records[3]).encode() + b"\n"
    path.write_bytes(b"".join(lines))
    downgraded = records_of(path)
    downgraded[0]["file"]["params"] = {
        "alg": "sha256",
        "checkpoint_key": SIGNER,
        "checkpoint_every": 2,
    }
    rewrite(path, downgraded, log)
    assert failure(verify(path, mac_key=MAC_KEY, mac=mac, no_head=True)) == (
        "audit.jsonl line 1 (seq 0): the file is chained with plain SHA-256, but HMAC under "
        "local://audit-mac was required: the log was downgraded and rewritten, or it is not "
        "the log you expect"
    )
    assert failure(verify(path, check_signature=check, no_head=True)) == (
        "audit.jsonl line 1 (seq 0): the signature does not verify: the records before it were "
        "altered, or the record was forged"
    )


def test_an_unreadable_file_is_an_error_before_any_verdict(tmp_path: Path) -> None:
    """Even without a head file (itself a failed verdict), a file that cannot be read is an
    error: the caller gave the wrong path, which says nothing about the log."""
    missing = tmp_path / "audit.jsonl"
    with pytest.raises(ChainError, match=r"No such file or directory$"):
        verify_chain([missing])


def test_the_verifier_used_directly_has_the_strict_defaults(tmp_path: Path) -> None:
    """No format 1 unless allowed, and no log without its head file unless declared."""
    path = tmp_path / "audit.jsonl"
    format_1_log(path, 2)
    verdict = ChainVerifier().verify(chain_files(path), head_path(path))
    assert failure(verdict).endswith("pass --allow-format-1 to check it with that format's rules")
    assert failure(ChainVerifier().verify(chain_files(path))).startswith("no head file was given")
    assert ChainVerifier(allow_format_1=True).verify(chain_files(path), head_path(path)).ok


@pytest.mark.parametrize("first", [b"{}", b'{"seq":"0","kind":"file"}', b'{"seq":null}'])
def test_a_file_whose_first_record_has_no_whole_seq_is_a_verdict_not_a_crash(
    tmp_path: Path, first: bytes
) -> None:
    path = tmp_path / "audit.jsonl"
    files = rotated_log(path)
    files[1].write_bytes(first + b"\n" + b"".join(files[1].read_bytes().splitlines(True)[1:]))
    verdict = verify_chain(files, head=head_path(path))
    assert failure(verdict).startswith("audit.jsonl.000002 line 1: not a valid audit record (bad")


def test_an_hmac_record_hash_covers_the_log_and_the_record(
    tmp_path: Path, keys: LocalKeyProvider
) -> None:
    path = tmp_path / "audit.jsonl"
    keyed_log(path, keys, events=1)
    record = records_of(path)[1]
    log = records_of(path)[0]["file"]["log"]
    chain_key = mac_with(keys)(
        f"{MAC_KEY}?version=1", b"aureus-audit-jsonl/chain-key/v2\n" + log.encode()
    )
    body = {k: v for k, v in record.items() if k != "hash"}
    content = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    by_hand = hmac.new(
        chain_key, b"aureus-audit-record/2\n" + log.encode() + b"\n" + content, hashlib.sha256
    ).hexdigest()
    assert record["hash"] == by_hand


def test_checkpoints_every_event_and_two_unknown_members_are_told_apart() -> None:
    params = {"alg": "sha256", "checkpoint_key": SIGNER, "checkpoint_every": 1}
    assert ChainParams.from_dict(params).checkpoint_every == 1
    with pytest.raises(ValueError, match=r"^unknown members colour, size$"):
        FileDecl.from_dict({**GOOD_DECL, "size": 1, "colour": "red"})


def test_a_line_with_nan_is_a_failed_verdict_not_a_crash(tmp_path: Path) -> None:
    """Python's JSON reader takes NaN; the hash (strict JSON) cannot, so it is refused first."""
    path = tmp_path / "audit.jsonl"
    write_log(path, 2)
    raw = path.read_bytes()
    path.write_bytes(raw.replace(b'"byte_count":100', b'"byte_count":NaN', 1))
    assert failure(verify(path)) == (
        "audit.jsonl line 3: not a valid audit record (NaN is not a JSON number): the line was "
        "edited or inserted"
    )
    with pytest.raises(ValueError, match=r"^-Infinity is not a JSON number$"):
        parse_json(b'{"seq":-Infinity}')


# -- retention: a log must be whole unless told from which seq it is kept ------------------


def relink(files: list[Path], head: Path) -> None:
    """Relink and rehash ``files`` in order as SHA-256, and the head with them (anyone can)."""
    previous: dict[str, Any] | None = None
    for file in files:
        records = records_of(file)
        for record in records:
            if previous is not None:
                record["prev"] = previous["hash"]
            record["hash"] = record_hash(record, None, records[0]["file"]["log"])
            previous = record
        file.write_bytes(b"".join(canonical(r) + b"\n" for r in records))
    assert previous is not None
    data = read_head(head)
    data.update(hash=previous["hash"], size=files[-1].stat().st_size)
    head.write_bytes(canonical(data))


def test_the_oldest_files_deleted_fail_unless_the_log_is_kept_from_a_later_seq(
    tmp_path: Path, signer: LocalKeyProvider
) -> None:
    """Deleting the oldest files leaves an intact chain from a later seq: whole, or declared."""
    path, anchor = anchor_of(tmp_path, signer, 20)
    files = chain_files(path)
    assert len(files) >= 4
    second, third = (records_of(f)[0]["seq"] for f in files[1:3])
    files[0].unlink()
    checked: dict[str, Any] = {
        "head": head_path(path),
        "anchor": anchor,
        "check_signature": check_with(signer),
    }
    assert failure(verify_chain(files[1:], **checked)) == (
        f"audit.jsonl.000002 line 1 (seq {second}): the log starts at seq {second}, not at "
        "seq 0: its oldest records (whole files) were deleted, or not given; if files were "
        "removed on purpose (retention), say from which seq the log is kept (--from-seq)"
    )
    kept = verify_chain(files[1:], from_seq=second, **checked)
    assert kept.ok, kept.message
    assert kept.message.startswith(f"OK: {kept.records} records (seq {second}-")
    files[1].unlink()  # one more file than retention removed
    assert failure(verify_chain(files[2:], from_seq=second, **checked)) == (
        f"audit.jsonl.000003 line 1 (seq {third}): the log starts at seq {third}, but it is "
        f"kept from seq {second} (--from-seq): seq {second}-{third - 1} (whole files) were "
        "deleted, or not given"
    )
    assert failure(verify_chain(files[2:], from_seq=third - 1, **checked)).endswith(
        f"(--from-seq): seq {third - 1} (whole files) were deleted, or not given"
    )
    assert verify_chain(files[2:], from_seq=third, **checked).ok


def test_the_first_record_kept_must_be_the_one_the_anchor_holds(
    tmp_path: Path, signer: LocalKeyProvider
) -> None:
    """Oldest files removed, the rest rewritten consistently (SHA-256): the anchor disagrees."""
    path, anchor = anchor_of(tmp_path, signer, 20)
    files = chain_files(path)
    first = records_of(files[1])[0]
    files[0].unlink()
    records = records_of(files[1])
    records[0]["time"] = "2020-01-01T00:00:00+00:00"
    files[1].write_bytes(b"".join(canonical(r) + b"\n" for r in records))
    relink(files[1:], head_path(path))
    assert verify_chain(files[1:], head=head_path(path), from_seq=first["seq"]).ok
    line = next(m.line for m in read_anchor(anchor) if m.seq == first["seq"])
    verdict = verify_chain(files[1:], head=head_path(path), anchor=anchor, from_seq=first["seq"])
    assert failure(verdict) == (
        f"seq {first['seq']} is not the record anchor audit.anchor line {line} records: the log "
        "was rewritten after it was anchored"
    )


def test_a_log_starting_at_seq_1_is_not_whole_by_default(tmp_path: Path) -> None:
    """Crafted (no writer starts a file at seq 1): whole means from seq 0, not from seq 1."""
    path = tmp_path / "audit.jsonl"
    records = write_log(path, 2)
    log = records[0]["file"]["log"]
    records = records[:2]
    records[0]["seq"], records[1]["seq"] = 1, 2
    records[0]["hash"] = record_hash(records[0], None, log)
    records[1]["prev"] = records[0]["hash"]
    records[1]["hash"] = record_hash(records[1], None, log)
    path.write_bytes(b"".join(canonical(r) + b"\n" for r in records))
    expected = "audit.jsonl line 1 (seq 1): the log starts at seq 1, not at seq 0: "
    assert failure(verify_chain([path], no_head=True)).startswith(expected)
    assert failure(ChainVerifier().verify([path], no_head=True)).startswith(expected)
    assert verify_chain([path], no_head=True, from_seq=1).ok


@pytest.mark.parametrize("value", [-1, True, 1.5, "3", None])
def test_the_seq_a_log_is_kept_from_must_be_a_whole_number(value: Any) -> None:
    with pytest.raises(ConfigError, match=r"^from_seq must be a whole number, not "):
        verify_chain([], no_head=True, from_seq=value)


# -- checking signatures through a key provider ----------------------------------------------


MESSAGE = b"aureus-audit-checkpoint/2\nsome record"


def signed(provider: KeyProvider, key: str = SIGNER) -> dict[str, str]:
    signature = provider.sign(KeyRef.parse(key), MESSAGE)
    return make_sig(signature.key_uri, signature.key_version, signature.algorithm, signature.value)


@pytest.mark.parametrize(
    "change",
    [
        {"version": "2"},  # a version the key does not have
        {"version": "0"},
        {"version": "x"},  # not a version the provider can parse
        {"version": ""},  # not a version at all
        {"version": "1&version=2"},
        {"version": 1},
        {"key": "local://other-signer"},
        {"key": "not a key URI"},
        {"key": None},
        {"value": "%%%"},
        {"value": base64.b64encode(bytes(64)).decode()},
        {"value": None},
    ],
)
def test_a_signature_that_cannot_be_checked_against_the_trusted_key_is_false(
    signer: LocalKeyProvider, change: dict[str, Any]
) -> None:
    """What a forger writes into a log or an anchor is a failed signature, never an error."""
    signer.create_key("other-signer", KeySpec(key_type=KeyType.ED25519))
    check = provider_signature_check(signer, SIGNER)
    sig = signed(signer)
    assert check(sig, MESSAGE) is True
    assert check(sig, MESSAGE + b"!") is False
    assert check({**sig, **change}, MESSAGE) is False


def test_a_checkpoint_key_pinned_to_a_version_trusts_that_version_alone(
    signer: LocalKeyProvider,
) -> None:
    old = signed(signer)
    signer.rotate_key(KeyRef.parse(SIGNER))
    new = signed(signer)
    assert (old["version"], new["version"]) == ("1", "2")
    for key, trusted in [(SIGNER, (True, True)), (f"{SIGNER}?version=1", (True, False))]:
        check = provider_signature_check(signer, key)
        assert (check(old, MESSAGE), check(new, MESSAGE)) == trusted
    check = provider_signature_check(signer, f"{SIGNER}?version=2")
    assert (check(old, MESSAGE), check(new, MESSAGE)) == (False, True)


class FailingProvider(KeyProviderBase):
    """A provider whose ``verify`` raises ``error``; its key has version 1 (or describe fails)."""

    scheme = "local"

    def __init__(self, error: Exception, describe_error: Exception | None = None) -> None:
        self.error, self.describe_error = error, describe_error

    def verify(self, key: KeyRef, message: bytes, signature: bytes) -> bool:
        raise self.error

    def describe_key(self, key: KeyRef) -> KeyMetadata:
        if self.describe_error is not None:
            raise self.describe_error
        now = datetime.now(timezone.utc)
        return KeyMetadata(
            ref=key,
            key_type=KeyType.ED25519,
            state=KeyState.ENABLED,
            created_at=now,
            current_version="1",
            versions=(KeyVersion(version="1", created_at=now),),
        )


NO_VERDICT = (
    r"^cannot check checkpoint signatures with local://audit-signer: {} \(the key provider "
    r"failed: this is no verdict on the log\)$"
)


@pytest.mark.parametrize(
    "error",
    [
        ProviderUnavailable("keystore unreachable"),
        AccessDenied("not allowed"),
        Throttled("slow down"),
        CredentialError("wrong passphrase"),
        KeyDisabled("version 1 is disabled"),
        KeyNotFound("version 1 is gone"),  # the key says it has version 1
        ConfigError("an AES key cannot verify"),  # nor is version 1 unparsable
        UnsupportedOperation("local", "verify"),
    ],
)
def test_a_provider_that_fails_is_an_error_not_a_failed_signature(
    signer: LocalKeyProvider, error: AureusError
) -> None:
    check = provider_signature_check(FailingProvider(error), SIGNER)
    with pytest.raises(ChainError, match=NO_VERDICT.format(f"{error}")):
        check(signed(signer), MESSAGE)
    for refusal in (SignatureError("bad"), ValueError("bad")):
        check = provider_signature_check(FailingProvider(refusal), SIGNER)
        assert check(signed(signer), MESSAGE) is False


def test_whether_a_version_exists_is_asked_only_when_the_provider_does_not_know_it(
    signer: LocalKeyProvider,
) -> None:
    """A version the key lacks is a forgery; if the provider cannot say, that is an error."""
    sig = {**signed(signer), "version": "7"}
    assert (
        provider_signature_check(FailingProvider(KeyNotFound("no 7")), SIGNER)(sig, MESSAGE)
        is False
    )
    assert (
        provider_signature_check(FailingProvider(ConfigError("bad 7")), SIGNER)(sig, MESSAGE)
        is False
    )
    down = FailingProvider(KeyNotFound("no 7"), describe_error=ProviderUnavailable("down"))
    with pytest.raises(ChainError, match=NO_VERDICT.format("down")):
        provider_signature_check(down, SIGNER)(sig, MESSAGE)
    for error in (ProviderUnavailable("down"), KeyDisabled("off")):
        failing = FailingProvider(error, describe_error=AssertionError("not asked"))
        with pytest.raises(ChainError):
            provider_signature_check(failing, SIGNER)(sig, MESSAGE)


def test_a_missing_disabled_or_unfit_trusted_key_is_an_error_with_a_real_keystore(
    signer: LocalKeyProvider,
) -> None:
    sig = signed(signer)
    with pytest.raises(ChainError, match=r"with local://nobody: no key local://nobody in "):
        provider_signature_check(signer, "local://nobody")(
            {**sig, "key": "local://nobody"}, MESSAGE
        )
    signer.create_key("audit-mac", KeySpec(key_type=KeyType.AES_256))
    with pytest.raises(ChainError, match=r"with local://audit-mac: .*no verdict on the log"):
        provider_signature_check(signer, "local://audit-mac")(
            {**sig, "key": "local://audit-mac"}, MESSAGE
        )
    signer.rotate_key(KeyRef.parse(SIGNER))
    signer.set_version_state(KeyRef.parse(f"{SIGNER}?version=1"), KeyState.DISABLED)
    check = provider_signature_check(signer, SIGNER)
    assert check({**sig, "value": base64.b64encode(bytes(64)).decode()}, MESSAGE) is False
    with pytest.raises(ChainError, match=r"no verdict on the log\)$"):
        check(sig, MESSAGE)  # a genuine signature by a version since disabled


def forge_sig(path: Path, change: dict[str, Any]) -> int:
    """Change the first checkpoint's ``sig`` in a SHA-256 log and relink it; its line number."""
    records = records_of(path)
    index = next(i for i, r in enumerate(records) if r["kind"] == "checkpoint")
    records[index]["sig"] = {**records[index]["sig"], **change}
    path.write_bytes(b"".join(canonical(r) + b"\n" for r in records))
    relink([path], head_path(path))
    return index + 1


@pytest.mark.parametrize(
    "change", [{"version": "2"}, {"version": "x"}, {"key": "garbage"}, {"key": 7}]
)
def test_a_checkpoint_naming_no_version_of_the_key_is_a_forgery_in_a_sha256_log(
    tmp_path: Path, signer: LocalKeyProvider, change: dict[str, Any]
) -> None:
    path = tmp_path / "audit.jsonl"
    sink = signed_sink(path, signer, every=2)
    for number in range(4):
        sink.emit(make_event(number))
    sink.close()
    check = provider_signature_check(signer, SIGNER)
    assert verify(path, check_signature=check).ok
    line = forge_sig(path, change)
    assert verify(path).ok  # the chain itself is consistent again
    assert failure(verify(path, check_signature=check)) == (
        f"audit.jsonl line {line} (seq {line - 1}): the signature does not verify: the records "
        "before it were altered, or the record was forged"
    )


@pytest.mark.parametrize(
    "change", [{"version": "2"}, {"version": "x"}, {"key": "garbage"}, {"value": "%"}]
)
def test_a_forged_anchor_entry_naming_no_version_is_called_an_edit(
    tmp_path: Path, signer: LocalKeyProvider, change: dict[str, Any]
) -> None:
    path, anchor = anchor_of(tmp_path, signer, 5)
    check = provider_signature_check(signer, SIGNER)
    assert verify(path, anchor=anchor, check_signature=check).ok
    last = json.loads(anchor.read_text().splitlines()[-1])
    end = last["record"]["seq"]
    record = {**last["record"], "seq": end + 40, "sig": {**last["record"]["sig"], **change}}
    with anchor.open("a") as out:
        out.write(json.dumps({**last, "record": record}) + "\n")
    lines = len(anchor.read_text().splitlines())
    tail = records_of(path)[-1]["seq"]
    assert failure(verify(path, anchor=anchor, check_signature=check)) == (
        f"anchor audit.anchor line {lines} records seq {end + 40}, past the log's end (seq "
        f"{tail}), but its signature does not verify: the anchor was edited (an entry forged or "
        "altered), so it cannot tell whether the log was rolled back"
    )


def test_a_provider_failing_mid_log_stops_verify_with_an_error(
    tmp_path: Path, signer: LocalKeyProvider
) -> None:
    path = tmp_path / "audit.jsonl"
    sink = signed_sink(path, signer, every=2)
    for number in range(4):
        sink.emit(make_event(number))
    check = provider_signature_check(FailingProvider(ProviderUnavailable("down")), SIGNER)
    with pytest.raises(ChainError, match=NO_VERDICT.format("down")):
        verify(path, check_signature=check)


def test_a_checkpoint_key_pinned_to_a_version_fails_the_other_versions_signatures(
    tmp_path: Path, signer: LocalKeyProvider
) -> None:
    """The pin holds whatever checks the signatures: the provider, or public keys."""
    path = tmp_path / "logs" / "audit.jsonl"
    anchor = tmp_path / "audit.anchor"
    sink = JsonlAuditSink(
        path, checkpoint_key=SIGNER, checkpoint_every=2, anchor=anchor, providers=lambda _: signer
    )
    for number in range(2):
        sink.emit(make_event(number))
    signer.rotate_key(KeyRef.parse(SIGNER))
    for number in range(2, 4):
        sink.emit(make_event(number))
    sink.close()
    versions = [(r["seq"], r["sig"]["version"]) for r in records_of(path) if "sig" in r]
    assert [v for _, v in versions] == ["1", "1", "2"]
    pems = [signer.public_key(KeyRef.parse(SIGNER).with_version(v)) for v in ("1", "2")]
    checks = [provider_signature_check(signer, SIGNER), public_key_check(pems)]
    for check in checks:
        assert verify(path, check_signature=check, checkpoint_key=SIGNER, anchor=anchor).ok
    for pinned, (seq, version) in [("2", versions[0]), ("1", versions[2])]:
        key = f"{SIGNER}?version={pinned}"
        for check in [provider_signature_check(signer, key), checks[1]]:
            verdict = verify(path, check_signature=check, checkpoint_key=key)
            assert failure(verdict).endswith(
                f"(seq {seq}): its signature names version '{version}' of local://audit-signer, "
                f"but only version {pinned} is trusted (the checkpoint key was given with "
                f"?version={pinned}): it was signed by a version you do not trust, or forged"
            )


def test_a_signature_that_is_not_an_object_fails_under_a_pinned_key_too(
    tmp_path: Path, signer: LocalKeyProvider
) -> None:
    path = tmp_path / "audit.jsonl"
    sink = signed_sink(path, signer, every=2)
    for number in range(2):
        sink.emit(make_event(number))
    sink.close()
    records = records_of(path)
    records[-1]["sig"] = "forged"
    path.write_bytes(b"".join(canonical(r) + b"\n" for r in records))
    relink([path], head_path(path))
    key = f"{SIGNER}?version=1"
    verdict = verify(
        path, check_signature=provider_signature_check(signer, key), checkpoint_key=key
    )
    assert failure(verdict) == (
        f"audit.jsonl line {len(records)} (seq {len(records) - 1}): the signature does not "
        "verify: the records before it were altered, or the record was forged"
    )


def test_a_forged_anchor_entry_by_an_untrusted_version_says_so(
    tmp_path: Path, signer: LocalKeyProvider
) -> None:
    path, anchor = anchor_of(tmp_path, signer, 5)
    key = f"{SIGNER}?version=1"
    check = provider_signature_check(signer, key)
    assert verify(path, anchor=anchor, check_signature=check, checkpoint_key=key).ok
    last = json.loads(anchor.read_text().splitlines()[-1])
    end = last["record"]["seq"]
    record = {**last["record"], "seq": end + 40, "sig": {**last["record"]["sig"], "version": "2"}}
    with anchor.open("a") as out:
        out.write(json.dumps({**last, "record": record}) + "\n")
    lines = len(anchor.read_text().splitlines())
    tail = records_of(path)[-1]["seq"]
    verdict = verify(path, anchor=anchor, check_signature=check, checkpoint_key=key)
    assert failure(verdict) == (
        f"anchor audit.anchor line {lines} records seq {end + 40}, past the log's end (seq "
        f"{tail}); its signature names version '2' of local://audit-signer, but only version 1 "
        "is trusted (the checkpoint key was given with ?version=1): the entry was forged, or "
        "signed by a version you do not trust, so it cannot tell whether the log was rolled back"
    )
