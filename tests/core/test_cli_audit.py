"""``aureus audit verify`` and ``tail`` on logs written by real ``aureus`` runs, then tampered with.

The logs come from the installed console script run as subprocesses with
``AUREUS_AUDIT_LOG`` set (or a config file with an HMAC-chained, checkpointed,
rotating jsonl sink); each test copies a pristine log and breaks it one way.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from aureus_builtin.jsonl_sink import JsonlAuditSink
from aureus_core.audit.chain import GENESIS, canonical, chain_files, head_path, record_hash
from aureus_core.cli import main
from aureus_core.errors import ProviderUnavailable
from aureus_core.keyref import KeyRef
from aureus_core.keys import KeySpec, KeyType
from aureus_core.testing import make_event
from aureus_local import LocalKeyProvider

AUREUS = str(Path(sys.executable).with_name("aureus"))
CONFIG = """\
[providers.local]
keystore = "ks"

[[audit.sinks]]
type = "jsonl"
path = "logs/audit.jsonl"
hmac_key = "local://audit-mac"
checkpoint_key = "local://audit-signer"
checkpoint_every = 2
max_bytes = 2500
"""

pytestmark = pytest.mark.skipif(os.name != "posix", reason="runs the console script")

Cli = Callable[..., "subprocess.CompletedProcess[str]"]


def make_cli(directory: Path, **extra_env: str) -> Cli:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUREUS_")}
    env.update(AUREUS_KEYSTORE=str(directory / "ks"), **extra_env)

    def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [AUREUS, *args], cwd=directory, env=env, capture_output=True, text=True, check=check
        )

    return cli


@pytest.fixture(scope="module")
def plain_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory whose ``audit.jsonl`` (SHA-256 chain) was written by six aureus runs."""
    directory = tmp_path_factory.mktemp("plain")
    cli = make_cli(directory, AUREUS_AUDIT_LOG=str(directory / "audit.jsonl"))
    cli("keys", "create", "signer", "--type", "ed25519")
    (directory / "msg.txt").write_text("release 1.0\n")
    cli("sign", "--key", "local://signer", "msg.txt")
    cli("keys", "rotate", "local://signer")
    cli("sign", "--key", "local://signer", "msg.txt")
    cli("keys", "describe", "local://signer")
    cli("keys", "list")
    return directory


@pytest.fixture(scope="module")
def keyed_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two logs written by aureus runs: HMAC chain, checkpoints every 2, rotated at 2500 bytes."""
    directory = tmp_path_factory.mktemp("keyed")
    setup = make_cli(directory)
    setup("keys", "create", "audit-mac", "--type", "aes-256")
    setup("keys", "create", "audit-signer", "--type", "ed25519")
    setup("keys", "create", "signer", "--type", "ecdsa-p256")
    (directory / "signer.pem").write_text(
        setup("keys", "public-key", "local://audit-signer").stdout
    )
    (directory / "msg.txt").write_text("release 1.0\n")
    for name in ("one", "two"):
        (directory / f"{name}.toml").write_text(
            CONFIG.replace("logs/audit.jsonl", f"{name}/audit.jsonl")
        )
        cli = make_cli(directory, AUREUS_CONFIG=str(directory / f"{name}.toml"))
        for _ in range(3):
            cli("sign", "--key", "local://signer", "msg.txt")
            cli("keys", "describe", "local://signer")
        cli("keys", "rotate", "local://signer")
    return directory


@pytest.fixture
def plain(plain_log: Path, tmp_path: Path) -> Path:
    """A fresh copy of the plain log (with its head file)."""
    for name in ("audit.jsonl", "audit.jsonl.head"):
        shutil.copy(plain_log / name, tmp_path / name)
    return tmp_path / "audit.jsonl"


@pytest.fixture
def keyed(keyed_logs: Path, tmp_path: Path) -> Path:
    """A fresh copy of the keyed directory; logs in one/ and two/."""
    target = tmp_path / "keyed"
    shutil.copytree(keyed_logs, target)
    return target


def verify(*args: str, cwd: Path | None = None) -> Result:
    runner = CliRunner(env={"AUREUS_AUDIT_LOG": None, "AUREUS_CONFIG": None})
    if cwd is None:
        return runner.invoke(main, ["audit", "verify", *args], catch_exceptions=False)
    old = Path.cwd()
    os.chdir(cwd)
    try:
        return runner.invoke(
            main,
            ["--config", "one.toml", "audit", "verify", *args],
            catch_exceptions=False,
        )
    finally:
        os.chdir(old)


def read(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


def write(path: Path, lines: list[str]) -> None:
    path.write_text("".join(lines))


def log_id(path: Path) -> str:
    """The log ID a log file's first record declares."""
    log: str = json.loads(read(path)[0])["file"]["log"]
    return log


def failure(result: Result) -> str:
    assert result.exit_code == 1, result.output
    first = result.stdout.splitlines()[0]
    assert first.startswith("FAILED: ")
    return first.removeprefix("FAILED: ")


# -- an intact log ---------------------------------------------------------------------


def test_an_intact_log_verifies(plain: Path) -> None:
    result = verify(str(plain))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"OK: 11 records (seq 0-10, 10 events) in 1 file; log {log_id(plain)}; SHA-256; "
        "head file matches"
    ]
    records = [json.loads(line) for line in read(plain)]
    assert [(r["event"]["operation"], r["event"]["phase"]) for r in records[1:5]] == [
        ("create", "request"),
        ("create", "outcome"),
        ("sign", "request"),
        ("sign", "outcome"),
    ]
    assert "release" not in plain.read_text()


def test_the_installed_command_exits_0_1_and_2(plain: Path, tmp_path: Path) -> None:
    cli = make_cli(tmp_path)
    assert cli("audit", "verify", str(plain)).returncode == 0
    lines = read(plain)
    lines[3] = lines[3].replace('"sign"', '"list"')
    write(plain, lines)
    broken = cli("audit", "verify", str(plain), check=False)
    assert broken.returncode == 1
    assert broken.stdout.startswith("FAILED: audit.jsonl line 4 (seq 3): the record's hash")
    missing = cli("audit", "verify", str(tmp_path / "nope.jsonl"), check=False)
    assert missing.returncode == 2
    assert missing.stderr.startswith("aureus: error: cannot read")


# -- tampering -------------------------------------------------------------------------------


def test_an_edited_field_is_caught(plain: Path) -> None:
    lines = read(plain)
    lines[4] = lines[4].replace('"outcome":"ok"', '"outcome":"AccessDenied"')
    write(plain, lines)
    assert failure(verify(str(plain))) == (
        "audit.jsonl line 5 (seq 4): the record's hash does not match its content (SHA-256): "
        "the record was edited, or it comes from another log"
    )


def test_a_deleted_line_is_caught(plain: Path) -> None:
    lines = read(plain)
    del lines[6]
    write(plain, lines)
    assert failure(verify(str(plain))) == (
        "audit.jsonl line 7 (seq 7): seq 6 missing before it: records were deleted"
    )


def test_an_inserted_line_is_caught(plain: Path) -> None:
    lines = read(plain)
    lines.insert(8, lines[3])
    write(plain, lines)
    assert failure(verify(str(plain))) == (
        "audit.jsonl line 9 (seq 3): seq 3 again after seq 7: a record was inserted, duplicated "
        "or moved here"
    )


def test_a_forged_line_is_caught(plain: Path) -> None:
    """A new record with a correct SHA-256 hash still breaks the links around it."""
    lines = read(plain)
    previous = json.loads(lines[5])
    forged: dict[str, Any] = {
        "seq": 6,
        "kind": "event",
        "prev": previous["hash"],
        "event": {"operation": "describe", "outcome": "ok", "phase": "outcome"},
    }
    forged["hash"] = record_hash(forged, None, log_id(plain))
    lines.insert(6, json.dumps(forged) + "\n")
    write(plain, lines)
    assert failure(verify(str(plain))) == (
        "audit.jsonl line 8 (seq 6): seq 6 again after seq 6: a record was inserted, duplicated "
        "or moved here"
    )


def test_swapped_lines_are_caught(plain: Path) -> None:
    lines = read(plain)
    lines[5], lines[6] = lines[6], lines[5]
    write(plain, lines)
    assert failure(verify(str(plain))) == (
        "audit.jsonl line 6 (seq 6): out of order: seq 5 comes after it, at line 7: records were "
        "reordered"
    )


def test_a_cut_tail_is_caught_with_the_head_file(plain: Path) -> None:
    write(plain, read(plain)[:-2])
    assert failure(verify(str(plain))) == (
        "the log was cut: head file audit.jsonl.head records seq 10, but the log ends at seq 8 "
        "(audit.jsonl line 9): the records after seq 8 were removed"
    )
    unchecked = verify(str(plain), "--no-head")
    assert unchecked.exit_code == 0
    head = plain.with_name("audit.jsonl.head")
    assert failure(verify(str(plain), str(head))).startswith("the log was cut")


def test_a_cut_tail_stops_the_next_run(plain: Path) -> None:
    write(plain, read(plain)[:-2])
    cli = make_cli(plain.parent, AUREUS_AUDIT_LOG=str(plain))
    refused = cli("keys", "create", "later", "--type", "ed25519", check=False)
    assert refused.returncode == 2
    assert "the log is shorter than its head file says" in refused.stderr
    assert "the operation was not run because auditing is required" in refused.stderr
    assert "local://later" not in make_cli(plain.parent)("keys", "list").stdout


# -- the HMAC chain, checkpoints and rotation ---------------------------------------------------

KEYED = ("--mac-key", "local://audit-mac", "--checkpoint-key", "local://audit-signer")


def files_of(log_dir: Path) -> list[str]:
    return sorted(
        str(p.relative_to(log_dir.parent)) for p in log_dir.iterdir() if not p.name.startswith(".")
    )


def test_a_rotated_keyed_log_verifies(keyed: Path) -> None:
    files = files_of(keyed / "one")
    assert "one/audit.jsonl.000001" in files
    assert "one/audit.jsonl.head" in files
    result = verify(*files, *KEYED, cwd=keyed)
    assert result.exit_code == 0, result.output
    message = result.stdout.splitlines()[0]
    assert message.startswith("OK: ")
    assert "HMAC-SHA-256 under local://audit-mac?version=1" in message
    assert "signatures verified; head file matches" in message
    offline = verify(
        *files, "--mac-key", "local://audit-mac", "--public-key", "signer.pem", cwd=keyed
    )
    assert offline.exit_code == 0, offline.output


def test_a_keyed_log_needs_its_mac_key(keyed: Path) -> None:
    result = verify(*files_of(keyed / "one"), cwd=keyed)
    assert result.exit_code == 2
    assert "pass --mac-key local://audit-mac to verify it" in result.stderr


def test_hmac_catches_an_edit_with_recomputed_sha256_hashes(keyed: Path) -> None:
    log = keyed / "one" / "audit.jsonl"
    records = [json.loads(line) for line in read(log)]
    log_of = records[0]["file"]["log"]
    records[2]["event"]["outcome"] = (
        "ok" if records[2]["event"]["outcome"] != "ok" else "KeyDisabled"
    )
    for index in range(2, len(records)):
        records[index]["prev"] = records[index - 1]["hash"]
        records[index]["hash"] = record_hash(records[index], None, log_of)
    write(log, [json.dumps(r) + "\n" for r in records])
    message = failure(verify(*files_of(keyed / "one"), *KEYED, cwd=keyed))
    seq = records[2]["seq"]
    assert message == (
        f"audit.jsonl line 3 (seq {seq}): the record's hash does not match its content "
        "(HMAC-SHA-256 under local://audit-mac?version=1): the record was edited, or it comes "
        "from another log"
    )


def test_hmac_catches_a_log_rewritten_as_sha256(keyed: Path) -> None:
    log = keyed / "one" / "audit.jsonl.000001"
    records = [json.loads(line) for line in read(log)]
    records[0]["file"]["params"]["alg"] = "sha256"
    del records[0]["file"]["params"]["mac_key"]
    for index, record in enumerate(records):
        record["prev"] = records[index - 1]["hash"] if index else GENESIS
        record["hash"] = record_hash(record, None, records[0]["file"]["log"])
    write(log, [json.dumps(r) + "\n" for r in records])
    assert failure(verify(*files_of(keyed / "one"), *KEYED, cwd=keyed)) == (
        "audit.jsonl.000001 line 1 (seq 0): the file is chained with plain SHA-256, but HMAC "
        "under local://audit-mac was required: the log was downgraded and rewritten, or it is "
        "not the log you expect"
    )


def test_spliced_files_are_caught(keyed: Path) -> None:
    """The first file of one log with the rest of another: they name different log IDs."""
    two = files_of(keyed / "two")
    spliced = ["one/audit.jsonl.000001", *[f for f in two if not f.endswith(".000001")]]
    message = failure(verify(*spliced, *KEYED, cwd=keyed))
    one_id, two_id = log_id(keyed / "one" / "audit.jsonl"), log_id(keyed / "two" / "audit.jsonl")
    assert one_id != two_id
    seq = json.loads(read(keyed / "two" / "audit.jsonl.000002")[0])["seq"]
    assert message == (
        f"audit.jsonl.000002 line 1 (seq {seq}): "
        f"the file belongs to log {two_id}, but the files before it to log {one_id}: files of "
        "another log were spliced in"
    )


def test_a_broken_file_boundary_is_caught(keyed: Path) -> None:
    first = keyed / "one" / "audit.jsonl.000001"
    last = json.loads(read(first)[-1])
    write(first, read(first)[:-1])
    message = failure(verify(*files_of(keyed / "one"), *KEYED, cwd=keyed))
    assert message == (
        f"audit.jsonl.000002 starts at seq {last['seq'] + 1}, but audit.jsonl.000001 ends at seq "
        f"{last['seq'] - 1}: records (or a whole file) between them are missing"
    )


def test_a_missing_middle_file_is_caught(keyed: Path) -> None:
    files = files_of(keyed / "one")
    files.remove("one/audit.jsonl.000002")
    assert "records (or a whole file) between them are missing" in failure(
        verify(*files, *KEYED, cwd=keyed)
    )


def test_a_removed_checkpoint_is_caught(keyed: Path) -> None:
    """A checkpoint in the middle of a file (not the last line: that is a file boundary)."""
    log, index = next(
        (path, i)
        for path in sorted((keyed / "one").glob("audit.jsonl*"))
        for i, line in enumerate(read(path)[:-1])
        if '"kind":"checkpoint"' in line
    )
    lines = read(log)
    del lines[index]
    write(log, lines)
    message = failure(verify(*files_of(keyed / "one"), *KEYED, cwd=keyed))
    assert message.startswith(f"{log.name} line {index + 1} ")
    assert message.endswith("missing before it: records were deleted")


# -- the head file, the anchor and the older format --------------------------------------------


def test_a_missing_head_file_fails_unless_declared(keyed: Path) -> None:
    """The head deleted and the log cut back to its first signed record: no longer a mere note."""
    log = keyed / "one" / "audit.jsonl"
    write(log, read(log)[:1])
    (keyed / "one" / "audit.jsonl.head").unlink()
    files = files_of(keyed / "one")
    result = verify(*files, *KEYED, cwd=keyed)
    assert failure(result) == (
        "head file one/audit.jsonl.head does not exist: it was deleted, perhaps to hide a cut "
        "tail; if the log really has none, declare it (--no-head)"
    )
    declared = verify(*files, *KEYED, "--no-head", cwd=keyed)
    assert declared.exit_code == 0, declared.output
    assert declared.stdout.splitlines()[-1] == (
        "note: --no-head without --anchor: a log cut back to an earlier checkpoint would verify"
    )


def test_an_anchor_catches_a_rollback_verify_and_the_next_run(tmp_path: Path) -> None:
    """A log cut back with its older head restored: consistent on disk, older than its anchor."""
    anchor = tmp_path / "anchors" / "audit.anchor"
    (tmp_path / "one.toml").write_text(CONFIG.replace("max_bytes = 2500", f'anchor = "{anchor}"'))
    cli = make_cli(tmp_path, AUREUS_CONFIG=str(tmp_path / "one.toml"))
    setup = make_cli(tmp_path)
    setup("keys", "create", "audit-mac", "--type", "aes-256")
    setup("keys", "create", "audit-signer", "--type", "ed25519")
    setup("keys", "create", "signer", "--type", "ed25519")
    (tmp_path / "msg.txt").write_text("release 1.0\n")
    cli("sign", "--key", "local://signer", "msg.txt")
    log, head = tmp_path / "logs" / "audit.jsonl", tmp_path / "logs" / "audit.jsonl.head"
    saved = (log.read_bytes(), head.read_bytes())
    cli("sign", "--key", "local://signer", "msg.txt")
    anchored = len(anchor.read_text().splitlines())
    verified = verify("logs/audit.jsonl", *KEYED, "--anchor", str(anchor), cwd=tmp_path)
    assert verified.exit_code == 0, verified.output
    log.write_bytes(saved[0])
    head.write_bytes(saved[1])
    assert verify("logs/audit.jsonl", *KEYED, cwd=tmp_path).exit_code == 0
    end = json.loads(saved[1])["seq"]
    latest = json.loads(anchor.read_text().splitlines()[-1])["record"]["seq"]
    assert failure(verify("logs/audit.jsonl", *KEYED, "--anchor", str(anchor), cwd=tmp_path)) == (
        f"the log was rolled back: it ends at seq {end}, but anchor audit.anchor line "
        f"{anchored} records seq {latest}: records after seq {end} were removed (and the head "
        "file replaced by an older one, or deleted)"
    )
    refused = cli("sign", "--key", "local://signer", "msg.txt", check=False)
    assert refused.returncode == 2
    assert f"but its anchor {anchor} says it reached seq {latest}" in refused.stderr


# -- retention, forged signatures, failing providers, pinned versions ----------------------------


def written_log(directory: Path, events: int, rotate_signer_at: int = -1, **options: Any) -> Path:
    """logs/audit.jsonl written in process with keys in ks/ (one.toml names them for verify)."""
    (directory / "one.toml").write_text('[providers.local]\nkeystore = "ks"\n')
    keys = LocalKeyProvider(directory / "ks", insecure_kdf_for_tests=True)
    keys.create_key("audit-mac", KeySpec(key_type=KeyType.AES_256))
    keys.create_key("audit-signer", KeySpec(key_type=KeyType.ED25519))
    path = directory / "logs" / "audit.jsonl"
    sink = JsonlAuditSink(
        path,
        checkpoint_key="local://audit-signer",
        checkpoint_every=2,
        providers=lambda _: keys,
        **options,
    )
    for number in range(events):
        if number == rotate_signer_at:
            keys.rotate_key(KeyRef.parse("local://audit-signer"))
        sink.emit(make_event(number))
    sink.close()
    keys.close()
    return path


def test_deleting_the_oldest_files_fails_unless_told_where_the_log_is_kept_from(
    keyed: Path,
) -> None:
    (keyed / "one" / "audit.jsonl.000001").unlink()
    files = files_of(keyed / "one")
    second = json.loads(read(keyed / "one" / "audit.jsonl.000002")[0])["seq"]
    assert failure(verify(*files, *KEYED, cwd=keyed)) == (
        f"audit.jsonl.000002 line 1 (seq {second}): the log starts at seq {second}, not at seq "
        "0: its oldest records (whole files) were deleted, or not given; if files were removed "
        "on purpose (retention), say from which seq the log is kept (--from-seq)"
    )
    kept = verify(*files, *KEYED, "--from-seq", str(second), cwd=keyed)
    assert kept.exit_code == 0, kept.output
    assert f"note: the chain starts at seq {second} in audit.jsonl.000002: the log is kept " in (
        kept.stdout
    )
    assert failure(verify(*files, *KEYED, "--from-seq", str(second - 1), cwd=keyed)).endswith(
        f"but it is kept from seq {second - 1} (--from-seq): seq {second - 1} (whole files) "
        "were deleted, or not given"
    )
    assert verify(*files, *KEYED, "--from-seq", "-1", cwd=keyed).exit_code == 2


def test_an_anchored_log_missing_its_oldest_file_fails_against_the_anchor_too(
    tmp_path: Path,
) -> None:
    anchor = tmp_path / "elsewhere" / "audit.anchor"
    path = written_log(tmp_path, 12, hmac_key="local://audit-mac", anchor=anchor, max_bytes=3000)
    files = chain_files(path)
    assert len(files) >= 3
    files[0].unlink()
    names = [str(f.relative_to(tmp_path)) for f in files[1:]]
    second = json.loads(read(files[1])[0])["seq"]
    args = [*names, *KEYED, "--anchor", str(anchor)]
    assert "the log starts at seq" in failure(verify(*args, cwd=tmp_path))
    kept = verify(*args, "--from-seq", str(second), cwd=tmp_path)
    assert kept.exit_code == 0, kept.output
    assert "anchor entries before seq" in kept.stdout


@pytest.mark.parametrize("change", [{"version": "2"}, {"version": "x"}, {"key": "garbage"}])
def test_a_forged_anchor_entry_naming_no_version_is_an_edited_anchor_not_an_error(
    tmp_path: Path, change: dict[str, str]
) -> None:
    anchor = tmp_path / "elsewhere" / "audit.anchor"
    written_log(tmp_path, 5, hmac_key="local://audit-mac", anchor=anchor)
    args = ["logs/audit.jsonl", *KEYED, "--anchor", str(anchor)]
    assert verify(*args, cwd=tmp_path).exit_code == 0
    last = json.loads(read(anchor)[-1])
    record = dict(last["record"], seq=last["record"]["seq"] + 40)
    record["sig"] = {**record["sig"], **change}
    anchor.write_text(anchor.read_text() + json.dumps(dict(last, record=record)) + "\n")
    message = failure(verify(*args, cwd=tmp_path))
    assert message.startswith(f"anchor audit.anchor line {len(read(anchor))} records seq ")
    assert "its signature does not verify: the anchor was edited" in message


def test_a_forged_checkpoint_in_a_sha256_log_is_a_verdict_not_an_error(tmp_path: Path) -> None:
    """A SHA-256 chain can be relinked by anyone: only the signature can tell."""
    path = written_log(tmp_path, 4)
    records = [json.loads(line) for line in read(path)]
    log = records[0]["file"]["log"]
    index = next(i for i, r in enumerate(records) if r["kind"] == "checkpoint")
    records[index]["sig"]["version"] = "2"
    for number, record in enumerate(records):
        if number:
            record["prev"] = records[number - 1]["hash"]
        record["hash"] = record_hash(record, None, log)
    write(path, [canonical(r).decode() + "\n" for r in records])
    head = json.loads(head_path(path).read_text())
    head.update(hash=records[-1]["hash"], size=path.stat().st_size)
    head_path(path).write_text(json.dumps(head))
    assert verify("logs/audit.jsonl", cwd=tmp_path).exit_code == 0
    signed = verify("logs/audit.jsonl", "--checkpoint-key", "local://audit-signer", cwd=tmp_path)
    assert failure(signed) == (
        f"audit.jsonl line {index + 1} (seq {index}): the signature does not verify: the records "
        "before it were altered, or the record was forged"
    )


def test_a_failing_key_provider_is_an_error_never_a_verdict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written_log(tmp_path, 4)

    def unreachable(*_: Any) -> bool:
        raise ProviderUnavailable("the keystore is unreachable")

    monkeypatch.setattr(LocalKeyProvider, "verify", unreachable)
    result = verify("logs/audit.jsonl", "--checkpoint-key", "local://audit-signer", cwd=tmp_path)
    assert result.exit_code == 2, result.output
    assert "FAILED" not in result.stdout
    assert result.stderr == (
        "aureus: error: cannot check checkpoint signatures with local://audit-signer: the "
        "keystore is unreachable (the key provider failed: this is no verdict on the log)\n"
    )


def test_a_checkpoint_key_pinned_to_a_version_counts_only_its_signatures(tmp_path: Path) -> None:
    path = written_log(tmp_path, 4, rotate_signer_at=2)
    versions = [(r["seq"], r["sig"]["version"]) for r in map(json.loads, read(path)) if "sig" in r]
    assert [v for _, v in versions] == ["1", "1", "2"]
    key = "local://audit-signer"
    assert verify("logs/audit.jsonl", "--checkpoint-key", key, cwd=tmp_path).exit_code == 0
    for pinned, (seq, version) in [("2", versions[0]), ("1", versions[2])]:
        result = verify(
            "logs/audit.jsonl", "--checkpoint-key", f"{key}?version={pinned}", cwd=tmp_path
        )
        assert failure(result) == (
            f"audit.jsonl line {seq + 1} (seq {seq}): its signature names version '{version}' of "
            f"{key}, but only version {pinned} is trusted (the checkpoint key was given with "
            f"?version={pinned}): it was signed by a version you do not trust, or forged"
        )


def test_a_format_1_log_needs_allow_format_1(plain: Path) -> None:
    """The plain log rewritten as the older writer wrote it: no log ID, format-1 hashes."""
    records = [json.loads(line) for line in read(plain)]
    del records[0]["file"]["log"]
    records[0]["file"]["format"] = "aureus-audit-jsonl/1"
    for index, record in enumerate(records):
        record["prev"] = records[index - 1]["hash"] if index else GENESIS
        record["hash"] = record_hash(record, None, None)
    write(plain, [json.dumps(r) + "\n" for r in records])
    head = json.loads(plain.with_name("audit.jsonl.head").read_text())
    del head["log"]
    head.update(format="aureus-audit-head/1", hash=records[-1]["hash"], size=plain.stat().st_size)
    plain.with_name("audit.jsonl.head").write_text(json.dumps(head))
    assert "written by an older format (aureus-audit-jsonl/1)" in failure(verify(str(plain)))
    allowed = verify(str(plain), "--allow-format-1")
    assert allowed.exit_code == 0, allowed.output
    assert allowed.stdout.startswith("OK: 11 records (seq 0-10, 10 events) in 1 file; SHA-256;")


# -- the failure mode ------------------------------------------------------------------------


def test_an_unwritable_audit_log_stops_the_command(tmp_path: Path) -> None:
    (tmp_path / "not-a-dir").write_text("")
    cli = make_cli(tmp_path, AUREUS_AUDIT_LOG=str(tmp_path / "not-a-dir" / "audit.jsonl"))
    refused = cli("keys", "create", "k", "--type", "ed25519", check=False)
    assert refused.returncode == 2
    assert refused.stderr.startswith(
        "aureus: error: no audit sink could record the request for create"
    )
    assert "cannot append to audit log" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert make_cli(tmp_path)("keys", "list").stdout == ""
    (tmp_path / "lenient.toml").write_text(
        '[providers.local]\nkeystore = "ks"\n[audit]\nrequired = false\n'
    )
    lenient = make_cli(
        tmp_path,
        AUREUS_AUDIT_LOG=str(tmp_path / "not-a-dir" / "audit.jsonl"),
        AUREUS_CONFIG=str(tmp_path / "lenient.toml"),
    )
    assert lenient("keys", "create", "k", "--type", "ed25519").stdout.strip() == "local://k"


def test_commands_running_together_share_one_chain(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    cli = make_cli(tmp_path, AUREUS_AUDIT_LOG=str(log))
    cli("keys", "create", "s", "--type", "ed25519")
    (tmp_path / "m.txt").write_text("m")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUREUS_")}
    env.update(AUREUS_KEYSTORE=str(tmp_path / "ks"), AUREUS_AUDIT_LOG=str(log))
    running = [
        subprocess.Popen(
            [AUREUS, "sign", "--key", "local://s", "m.txt"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for _ in range(6)
    ]
    for process in running:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
    result = verify(str(log))
    assert result.exit_code == 0, result.output
    assert "(seq 0-14, 14 events)" in result.stdout


# -- tail --------------------------------------------------------------------------------------


def test_tail_shows_the_last_records(plain: Path) -> None:
    runner = CliRunner()
    shown = runner.invoke(main, ["audit", "tail", "-n", "3", str(plain)], catch_exceptions=False)
    assert shown.exit_code == 0
    rows = shown.stdout.splitlines()
    assert len(rows) == 3
    assert rows[-1].split()[2:7] == ["10", "list", "outcome", "ok", "-"]
    as_json = runner.invoke(main, ["audit", "tail", "-n", "1", "--json", str(plain)])
    assert json.loads(as_json.stdout)["seq"] == 10


def test_tail_marks_files_and_checkpoints(keyed: Path) -> None:
    shown = CliRunner().invoke(
        main, ["audit", "tail", "-n", "50", str(keyed / "one" / "audit.jsonl.000001")]
    )
    assert shown.exit_code == 0
    assert shown.stdout.startswith("--- seq 0: file 1 (local://audit-mac?version=1) signed by ")
    assert "checkpoint signed by local://audit-signer v1 ---" in shown.stdout
