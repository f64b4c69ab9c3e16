"""Rollback and swap of the keystore files: the generation counter, the pins, the state file.

The attacks: restoring an older ``keystore.json`` (it brings back rotated,
disabled or destroyed versions and lower minimums), and replacing both
``master.key`` and ``keystore.json`` with a pair the attacker made, so that
new data keys get wrapped under a key the attacker knows.
"""

from __future__ import annotations

import base64
import errno
import json
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import filelock
import pytest

from aureus_core.context import EncryptionContext
from aureus_core.errors import ConfigError, KeyDisabled, KeystoreCorrupted, ProviderUnavailable
from aureus_core.keyref import KeyRef
from aureus_core.keys import KeySpec, KeyState
from aureus_local import LocalKeyProvider, generations, wrapping
from aureus_local.generations import GenerationState
from aureus_local.keystore import DEFAULT_RECHECK_INTERVAL, Keystore, forget_seen_generations
from aureus_local.sealing import Sealer

MakeProvider = Callable[..., LocalKeyProvider]
CONTEXT = EncryptionContext(app="rollback")
DATA_KEY = bytes(range(32))


def ref(uri: str) -> KeyRef:
    return KeyRef.parse(uri)


def stored(directory: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((directory / "keystore.json").read_text())
    return result


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def test_every_write_raises_the_authenticated_generation(
    local_provider: LocalKeyProvider, keystore_dir: Path
) -> None:
    local_provider.create_key("payments", KeySpec(key_type="aes-256"))
    assert stored(keystore_dir)["generation"] == 1
    local_provider.rotate_key(ref("local://payments"))
    local_provider.set_version_state(ref("local://payments?version=1"), KeyState.DISABLED)
    assert stored(keystore_dir)["generation"] == 3
    local_provider.wrap(ref("local://payments"), DATA_KEY, CONTEXT)  # reserves wraps: a write
    assert stored(keystore_dir)["generation"] == 4
    assert local_provider.keystore_info().generation == 4

    # The generation is under the MAC: raising it by hand breaks the integrity check.
    document = stored(keystore_dir)
    document["generation"] = 10**6
    (keystore_dir / "keystore.json").write_text(json.dumps(document))
    with pytest.raises(KeystoreCorrupted, match=r"integrity check \(HMAC\) failed"):
        LocalKeyProvider(keystore_dir).list_keys()


def test_a_running_process_refuses_an_older_keystore_json(
    local_provider: LocalKeyProvider, keystore_dir: Path
) -> None:
    local_provider.create_key("payments", KeySpec(key_type="aes-256"))
    backup = (keystore_dir / "keystore.json").read_bytes()  # generation 1: version 1 enabled
    old = local_provider.wrap(ref("local://payments"), DATA_KEY, CONTEXT)
    local_provider.rotate_key(ref("local://payments"))
    local_provider.set_version_state(ref("local://payments?version=1"), KeyState.DISABLED)
    with pytest.raises(KeyDisabled):
        local_provider.unwrap(old.key, old.encrypted, CONTEXT)

    (keystore_dir / "keystore.json").write_bytes(backup)  # the rollback
    # Within recheck_interval the process keeps the newer document it verified (version 1
    # stays disabled); from then on the older file is refused.
    with pytest.raises(KeyDisabled):
        local_provider.unwrap(old.key, old.encrypted, CONTEXT)
    time.sleep(DEFAULT_RECHECK_INTERVAL)
    with pytest.raises(KeystoreCorrupted) as refused:
        local_provider.unwrap(old.key, old.encrypted, CONTEXT)
    assert refused.value.code == "rollback"
    assert refused.value.provider == "local"
    assert str(refused.value) == (
        f"keystore file {keystore_dir / 'keystore.json'} was refused: it is at generation 1, "
        "but this process has already seen generation 4: it is an older copy (a restored "
        "backup, or a rollback that brings back rotated, disabled or destroyed key "
        "versions). Nothing was changed; restore the newest keystore.json; if you restored "
        "this older one on purpose, lower min_generation and remove its entry from the "
        "state file, then restart this process"
    )
    with pytest.raises(KeystoreCorrupted, match="it is an older copy"):
        local_provider.create_key("more", KeySpec(key_type="aes-256"))
    assert (keystore_dir / "keystore.json").read_bytes() == backup  # nothing was written


def test_a_keystore_opened_again_in_the_same_process_is_held_to_what_it_saw(
    make_provider: MakeProvider, keystore_dir: Path
) -> None:
    """The generation floor is the process's, not one provider object's. Before, a
    LocalKeyProvider made after the rollback (an application that rebuilds its stack or
    reloads its configuration) accepted the older copy and unwrapped with a version that
    had been disabled since."""
    context = EncryptionContext(app="rollback")
    first = make_provider()
    first.create_key("k", KeySpec(key_type="aes-256"))
    old = first.wrap(ref("local://k"), bytes(32), context)
    first.rotate_key(ref("local://k"))
    backup = (keystore_dir / "keystore.json").read_bytes()  # version 1 still enabled
    first.set_version_state(ref("local://k?version=1"), KeyState.DISABLED)
    first.close()
    (keystore_dir / "keystore.json").write_bytes(backup)
    second = make_provider()
    with pytest.raises(
        KeystoreCorrupted,
        match="it is at generation 3, but this process has already seen generation 5",
    ):
        second.unwrap(old.key, old.encrypted, context)
    assert (keystore_dir / "keystore.json").read_bytes() == backup  # nothing was written


def test_a_generation_only_read_is_remembered_by_the_process_too(
    make_provider: MakeProvider, keystore_dir: Path
) -> None:
    """Another process wrote generation 3; this one only read it. A provider made here after
    the file was rolled back is still held to generation 3 (not only to what this process
    wrote)."""
    writer = make_provider()
    writer.create_key("k", KeySpec(key_type="aes-256"))
    backup = (keystore_dir / "keystore.json").read_bytes()
    writer.rotate_key(ref("local://k"))
    writer.rotate_key(ref("local://k"))
    writer.close()
    forget_seen_generations()  # the writer was another process
    reader = make_provider()
    assert reader.describe_key(ref("local://k")).current_version == "3"
    (keystore_dir / "keystore.json").write_bytes(backup)
    with pytest.raises(KeystoreCorrupted, match="but this process has already seen generation 3"):
        make_provider().describe_key(ref("local://k"))


def test_the_state_file_refuses_an_older_keystore_json_across_restarts(
    make_provider: MakeProvider, keystore_dir: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state" / "keystores.json"
    first = make_provider(state_file=state)
    first.create_key("payments", KeySpec(key_type="aes-256"))
    backup = (keystore_dir / "keystore.json").read_bytes()
    first.rotate_key(ref("local://payments"))
    first.set_min_decryption_version(ref("local://payments"), "2")
    first.close()
    keystore_id = first.keystore_info().keystore_id
    recorded = json.loads(state.read_text())
    assert recorded == {
        "format": "aureus-local-keystore-state",
        "format_version": 1,
        "keystores": {keystore_id: {"generation": 3}},
    }
    assert oct(state.stat().st_mode & 0o777) == "0o600"

    (keystore_dir / "keystore.json").write_bytes(backup)
    forget_seen_generations()  # a restart: the new process has seen nothing
    with pytest.raises(KeystoreCorrupted) as refused:
        make_provider(state_file=state).describe_key(ref("local://payments"))
    # The state file's own remedy: no process to restart, it is a new one.
    assert str(refused.value).endswith(
        f"but {state} records 3: it is an older copy (a restored backup, or a rollback that "
        "brings back rotated, disabled or destroyed key versions). Nothing was changed; "
        "restore the newest keystore.json; if you restored this older one on purpose, lower "
        "min_generation and remove its entry from the state file"
    )
    # Without the state file a fresh process cannot tell: the documented limit.
    forget_seen_generations()
    assert make_provider().describe_key(ref("local://payments")).current_version == "1"


def test_min_generation_pins_a_floor(make_provider: MakeProvider, keystore_dir: Path) -> None:
    writer = make_provider()
    writer.create_key("payments", KeySpec(key_type="aes-256"))
    backup = (keystore_dir / "keystore.json").read_bytes()
    writer.rotate_key(ref("local://payments"))
    pin = writer.keystore_info().generation
    assert make_provider(min_generation=pin).list_keys()[0].current_version == "2"
    (keystore_dir / "keystore.json").write_bytes(backup)
    with pytest.raises(KeystoreCorrupted) as refused:
        make_provider(min_generation=pin).list_keys()
    assert str(refused.value).endswith(
        "but the configuration pins min_generation 2: it is an older copy (a restored backup, "
        "or a rollback that brings back rotated, disabled or destroyed key versions). Nothing "
        "was changed; restore the newest keystore.json; if you restored this older one on "
        "purpose, lower min_generation and remove its entry from the state file"
    )


def hostile_pair(victim_id: str, attacker_key: bytes, known_material: bytes) -> tuple[bytes, bytes]:
    """An attacker's own ``master.key`` and ``keystore.json``: the victim's ID and key name,
    a generation far ahead, and wrapping material the attacker knows."""
    sealer = Sealer(attacker_key)
    nonce, ciphertext = sealer.seal(
        known_material, keystore_id=victim_id, name="payments", version=1, key_type="aes-256"
    )
    now = datetime(2030, 1, 1, tzinfo=timezone.utc).isoformat()
    document: dict[str, Any] = {
        "format": "aureus-local-keystore",
        "format_version": 3,
        "keystore_id": victim_id,
        "created_at": now,
        "generation": 10**9,
        "master_key": {"source": "key-file"},
        "verifier": b64(sealer.verifier()),
        "keys": {
            "payments": {
                "type": "aes-256",
                "created_at": now,
                "description": "",
                "labels": {},
                "current_version": 1,
                "min_decryption_version": None,
                "versions": [
                    {
                        "version": 1,
                        "created_at": now,
                        "origin": "generated",
                        "state": "enabled",
                        "messages": 0,
                        "bytes": 0,
                        "wraps_reserved": 0,
                        "nonce": b64(nonce),
                        "ciphertext": b64(ciphertext),
                    }
                ],
            }
        },
    }
    document["mac"] = b64(sealer.mac(document))
    return attacker_key, json.dumps(document, indent=2).encode()


def test_a_swapped_master_key_and_keystore_are_refused_by_the_fingerprint_pin(
    make_provider: MakeProvider, keystore_dir: Path
) -> None:
    victim = make_provider()
    victim.create_key("payments", KeySpec(key_type="aes-256"))
    info = victim.keystore_info()
    victim.close()

    known = secrets.token_bytes(32)
    master, document = hostile_pair(info.keystore_id, secrets.token_bytes(32), known)
    (keystore_dir / "master.key").write_bytes(master)
    (keystore_dir / "keystore.json").write_bytes(document)

    # The essential step of the attack: an unpinned stack accepts the pair and wraps new
    # data keys under material the attacker knows (the random ID alone does not help, it
    # is readable in the file and was copied).
    fooled = make_provider(keystore_id=info.keystore_id)
    wrapped = fooled.wrap(ref("local://payments"), DATA_KEY, CONTEXT)
    assert wrapping.unwrap(known, "payments", 1, wrapped.encrypted, CONTEXT) == DATA_KEY

    pinned = make_provider(keystore_id=info.keystore_id, fingerprint=info.fingerprint)
    with pytest.raises(KeystoreCorrupted) as refused:
        pinned.wrap(ref("local://payments"), DATA_KEY, CONTEXT)
    assert refused.value.code == "identity-mismatch"
    message = str(refused.value)
    assert f"but the configuration pins {info.fingerprint}" in message
    assert "sealed under another master key" in message
    assert known.hex() not in message


def test_another_keystore_is_refused_by_the_id_pin(
    make_provider: MakeProvider, tmp_path: Path
) -> None:
    first = make_provider(tmp_path / "one")
    first.create_key("k", KeySpec(key_type="ed25519"))
    other = make_provider(tmp_path / "two")
    other.create_key("k", KeySpec(key_type="ed25519"))
    pin = first.keystore_info().keystore_id
    with pytest.raises(KeystoreCorrupted, match=f"but the configuration pins {pin}"):
        make_provider(tmp_path / "two", keystore_id=pin).list_keys()


def test_a_pinned_keystore_is_never_recreated_in_place(
    make_provider: MakeProvider, keystore_dir: Path
) -> None:
    writer = make_provider()
    writer.create_key("k", KeySpec(key_type="aes-256"))
    info = writer.keystore_info()
    (keystore_dir / "keystore.json").unlink()
    for pinned in (
        make_provider(keystore_id=info.keystore_id),
        make_provider(fingerprint=info.fingerprint),
        make_provider(min_generation=1),
        writer,  # it has seen generation 1
    ):
        with pytest.raises(KeystoreCorrupted) as refused:
            pinned.create_key("fresh", KeySpec(key_type="aes-256"))
        assert str(refused.value) == (
            f"keystore {keystore_dir} has no keystore.json, but it existed: the configuration "
            "pins it (keystore_id, keystore_fingerprint or min_generation) or this process has "
            "read it. Restore keystore.json (with its master.key, if any) from a backup; to "
            "start a new keystore here, remove the pins"
        )
        assert refused.value.code == "missing"
        assert refused.value.provider == "local"
        assert not (keystore_dir / "keystore.json").exists()
        if pinned is not writer:  # a pinned keystore does not pass for an empty one either
            with pytest.raises(KeystoreCorrupted, match=r"has no keystore\.json, but it existed"):
                pinned.list_keys()


def test_pins_are_checked_when_configured(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="keystore_id must be 32 lowercase hex digits"):
        LocalKeyProvider(tmp_path, keystore_id="not-an-id")
    with pytest.raises(ConfigError, match="min_generation must be a whole number"):
        LocalKeyProvider(tmp_path, min_generation=-1)


def test_the_state_file_only_ever_rises_under_concurrent_writers(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    states = [GenerationState(path, lock_timeout=30) for _ in range(4)]
    errors: list[BaseException] = []

    def record(state: GenerationState, values: range) -> None:
        try:
            for value in values:
                state.record("a" * 32, value)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [
        threading.Thread(target=record, args=(s, range(i, 200, 4))) for i, s in enumerate(states)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert states[0].seen("a" * 32) == 199
    assert states[0].record("a" * 32, 5) == 199  # never lowered
    (tmp_path / ".state.json.0123456789abcdef.tmp").write_text('{"keystores": {')  # a crash's
    assert states[1].record("b" * 32, 7) == 7
    assert json.loads(path.read_text())["keystores"] == {
        "a" * 32: {"generation": 199},
        "b" * 32: {"generation": 7},
    }
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_a_damaged_state_file_is_a_clear_error(make_provider: MakeProvider, tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    make_provider().create_key("k", KeySpec(key_type="aes-256"))
    state.write_text('{"format": "aureus-local-keystore-state", "format_version": 1, ')
    with pytest.raises(KeystoreCorrupted, match=f"the keystore state file {state} is damaged"):
        make_provider(state_file=state).list_keys()


def test_old_format_documents_count_as_generation_0(
    make_provider: MakeProvider, keystore_dir: Path
) -> None:
    writer = make_provider()
    writer.create_key("k", KeySpec(key_type="aes-256"))
    writer.close()
    document = stored(keystore_dir)
    document.pop("mac")
    document["format_version"] = 2
    del document["generation"]
    for version in document["keys"]["k"]["versions"]:
        del version["wraps_reserved"]
    sealer = Sealer((keystore_dir / "master.key").read_bytes())
    document["mac"] = b64(sealer.mac(document))
    (keystore_dir / "keystore.json").write_text(json.dumps(document))
    forget_seen_generations()  # a new process, after an upgrade of Aureus
    reader = make_provider()
    assert reader.keystore_info().generation == 0
    with pytest.raises(KeystoreCorrupted, match="min_generation 1"):
        make_provider(min_generation=1).list_keys()
    reader.rotate_key(ref("local://k"))
    assert (stored(keystore_dir)["format_version"], stored(keystore_dir)["generation"]) == (3, 1)


def test_a_write_by_another_process_is_seen_within_the_recheck_interval(
    make_provider: MakeProvider, keystore_dir: Path
) -> None:
    interval = 1.0
    reader = make_provider(recheck_interval=interval)
    reader.create_key("payments", KeySpec(key_type="aes-256"))
    wrapped = reader.wrap(ref("local://payments"), DATA_KEY, CONTEXT)
    reader.rotate_key(ref("local://payments"))
    assert reader.unwrap(wrapped.key, wrapped.encrypted, CONTEXT) == DATA_KEY

    disable = (  # another process disables version 1
        "import sys; from aureus_core.keyref import KeyRef; from aureus_core.keys import KeyState; "
        "from aureus_local import LocalKeyProvider; "
        "p = LocalKeyProvider(sys.argv[1], insecure_kdf_for_tests=True); "
        "p.set_version_state(KeyRef.parse('local://payments?version=1'), KeyState.DISABLED); "
        "p.close()"
    )
    subprocess.run([sys.executable, "-c", disable, str(keystore_dir)], check=True)
    done = time.monotonic()
    while True:
        try:
            reader.unwrap(wrapped.key, wrapped.encrypted, CONTEXT)
        except KeyDisabled:
            break
        assert time.monotonic() - done < interval + 1.0, "the disable was not seen in time"
        time.sleep(0.01)


def test_a_write_through_this_process_is_seen_at_once(
    make_provider: MakeProvider,
) -> None:
    reader = make_provider(recheck_interval=60)
    reader.create_key("payments", KeySpec(key_type="aes-256"))
    wrapped = reader.wrap(ref("local://payments"), DATA_KEY, CONTEXT)
    reader.rotate_key(ref("local://payments"))
    assert reader.unwrap(wrapped.key, wrapped.encrypted, CONTEXT) == DATA_KEY
    make_provider().set_version_state(ref("local://payments?version=1"), KeyState.DISABLED)
    with pytest.raises(KeyDisabled):
        reader.unwrap(wrapped.key, wrapped.encrypted, CONTEXT)


# -- the state file itself ---------------------------------------------------------

KEYSTORE_ID = "c" * 32


def _state_with(entry: object) -> bytes:
    """A state file in the right shape apart from ``entry``, the one keystore's entry."""
    return json.dumps(
        {
            "format": "aureus-local-keystore-state",
            "format_version": 1,
            "keystores": {KEYSTORE_ID: entry},
        }
    ).encode()


_NOT_STATE = "not a keystore state file"
_BAD = f"bad generation for {KEYSTORE_ID!r}"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"\xff\xfe", "'utf-8' codec can't decode byte 0xff in position 0: invalid start byte"),
        (b"", "Expecting value: line 1 column 1 (char 0)"),
        (b"[]", _NOT_STATE),
        (b'{"format": "aureus-local-keystore", "format_version": 1, "keystores": {}}', _NOT_STATE),
        (
            b'{"format": "aureus-local-keystore-state", "format_version": 2, "keystores": {}}',
            _NOT_STATE,
        ),
        (b'{"format": "aureus-local-keystore-state", "keystores": {}}', _NOT_STATE),
        # The version is the integer 1: true and 1.0 compare equal to it, and are refused.
        (
            b'{"format": "aureus-local-keystore-state", "format_version": true, "keystores": {}}',
            _NOT_STATE,
        ),
        (
            b'{"format": "aureus-local-keystore-state", "format_version": 1.0, "keystores": {}}',
            _NOT_STATE,
        ),
        (
            b'{"format": "aureus-local-keystore-state", "format_version": 1, "keystores": []}',
            _NOT_STATE,
        ),
        (b'{"format": "aureus-local-keystore-state", "format_version": 1}', _NOT_STATE),
        (_state_with(5), _BAD),
        (_state_with({}), _BAD),
        (_state_with({"generation": "5"}), _BAD),
        (_state_with({"generation": True}), _BAD),
        (_state_with({"generation": 1.0}), _BAD),
        (_state_with({"generation": -1}), _BAD),
        (_state_with({"generation": 2**63}), _BAD),
        # A long ID: the reason is cut at 100 characters.
        (
            _state_with({"generation": -1}).replace(KEYSTORE_ID.encode(), b"e" * 200),
            ("bad generation for '" + "e" * 200)[:100],
        ),
    ],
)
def test_a_state_file_in_any_other_shape_is_refused_and_left_alone(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(content)
    state = GenerationState(path, lock_timeout=5)

    for attempt in (lambda: state.seen(KEYSTORE_ID), lambda: state.record(KEYSTORE_ID, 9)):
        with pytest.raises(KeystoreCorrupted) as refused:
            attempt()
        message = str(refused.value)
        assert message.startswith(f"the keystore state file {path} is damaged ({reason}): ")
        assert message.endswith(
            "): it only records the highest keystore generation seen, so delete it, or "
            "restore it, knowing that until it records a generation again, an older "
            "keystore.json would not be detected"
        )
        assert refused.value.provider == "local"
    assert path.read_bytes() == content  # a damaged file is never overwritten


@pytest.mark.parametrize("generation", [0, 1, 2**63 - 1])
def test_a_state_file_holds_generations_from_0_to_2_63_minus_1(
    tmp_path: Path, generation: int
) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(_state_with({"generation": generation}))
    state = GenerationState(path, lock_timeout=5)

    assert state.seen(KEYSTORE_ID) == generation
    assert state.seen("d" * 32) == 0
    assert state.record(KEYSTORE_ID, generation) == generation


def test_recording_a_generation_no_higher_than_the_file_leaves_the_file_as_it_is(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.json"
    state = GenerationState(path, lock_timeout=5)
    assert state.record(KEYSTORE_ID, 4) == 4
    before = path.stat()
    content = path.read_bytes()

    assert state.record(KEYSTORE_ID, 4) == 4
    assert state.record(KEYSTORE_ID, 3) == 4
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert path.read_bytes() == content
    assert state.record(KEYSTORE_ID, 5) == 5
    assert path.stat().st_ino != before.st_ino  # a raise is a new file, renamed into place


def test_the_state_file_is_written_whole_in_a_private_new_directory(tmp_path: Path) -> None:
    path = tmp_path / "private" / "deeper" / "state.json"
    GenerationState(path, lock_timeout=5).record(KEYSTORE_ID, 12)

    assert oct(path.parent.stat().st_mode & 0o777) == "0o700"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert oct(path.with_name("state.json.lock").stat().st_mode & 0o777) == "0o600"
    assert path.read_text() == (
        "{\n"
        '  "format": "aureus-local-keystore-state",\n'
        '  "format_version": 1,\n'
        '  "keystores": {\n'
        f'    "{KEYSTORE_ID}": {{\n'
        '      "generation": 12\n'
        "    }\n"
        "  }\n"
        "}\n"
    )
    assert sorted(p.name for p in path.parent.iterdir()) == ["state.json", "state.json.lock"]


@pytest.mark.parametrize("where", [".", "sub"])
def test_a_state_file_inside_the_keystore_directory_is_refused(
    make_provider: MakeProvider, keystore_dir: Path, where: str
) -> None:
    """A state file rolled back with the keystore it guards cannot tell the copy is old."""
    state = keystore_dir / where / "keystores.json"
    with pytest.raises(ConfigError) as refused:
        make_provider(state_file=state)
    assert str(refused.value) == (
        f"the local keystore's state_file {state} is inside the keystore directory "
        f"{keystore_dir.resolve()}: whoever can roll the keystore back there (or restore the "
        "directory from a backup) rolls the state file back with it; put it outside the "
        "keystore directory and out of its backups"
    )
    # Beside the keystore directory, not in it, is where it belongs.
    make_provider(state_file=keystore_dir.parent / "state" / "keystores.json").list_keys()


def test_a_state_file_under_a_file_is_a_configuration_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    path = blocker / "state.json"
    state = GenerationState(path, lock_timeout=5)

    with pytest.raises(ConfigError) as refused:
        state.record(KEYSTORE_ID, 1)
    assert str(refused.value) == (
        f"the keystore state file {path} cannot be read or created: {blocker} is not a "
        "directory; point the local provider's state_file option elsewhere"
    )


def test_a_state_file_locked_by_another_writer_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    holder = filelock.FileLock(str(tmp_path / "state.json.lock"))
    state = GenerationState(path, lock_timeout=0.05)
    with holder, pytest.raises(ProviderUnavailable) as refused:
        state.record(KEYSTORE_ID, 1)
    assert str(refused.value) == (
        f"the keystore state file {path} stayed locked for 0.05 s (state.json.lock): "
        "retry, or look for a stuck process"
    )
    assert refused.value.provider == "local"
    assert not path.exists()
    assert state.record(KEYSTORE_ID, 1) == 1  # the lock was released: the next one works


def test_identity_refusals_name_the_pin_and_the_remedy(
    make_provider: MakeProvider, tmp_path: Path
) -> None:
    first = make_provider(tmp_path / "one")
    first.create_key("k", KeySpec(key_type="aes-256"))
    other = make_provider(tmp_path / "two")
    other.create_key("k", KeySpec(key_type="aes-256"))
    pinned, found = first.keystore_info(), other.keystore_info()
    path = tmp_path / "two" / "keystore.json"

    with pytest.raises(KeystoreCorrupted) as refused:
        make_provider(tmp_path / "two", keystore_id=pinned.keystore_id).list_keys()
    assert refused.value.code == "identity-mismatch"
    assert str(refused.value) == (
        f"keystore file {path} was refused: its keystore_id is {found.keystore_id}, but the "
        f"configuration pins {pinned.keystore_id}: this is another keystore, or it was "
        "replaced. Nothing was changed; point the keystore option at the pinned keystore, "
        "or restore it from a backup"
    )

    with pytest.raises(KeystoreCorrupted) as refused:
        make_provider(tmp_path / "two", fingerprint=pinned.fingerprint).list_keys()
    assert refused.value.code == "identity-mismatch"
    assert str(refused.value) == (
        f"keystore file {path} was refused: its fingerprint is {found.fingerprint}, but the "
        f"configuration pins {pinned.fingerprint}: it is sealed under another master key, so "
        "it (and its master.key or passphrase) was replaced, unless its passphrase was "
        "changed since the pin was taken. Nothing was changed; restore the pinned keystore "
        "from a backup; only if you changed the passphrase yourself, update "
        "keystore_fingerprint (`aureus keys keystore-info`)"
    )
    # Both pins that match: the keystore opens.
    same = make_provider(
        tmp_path / "two", keystore_id=found.keystore_id, fingerprint=found.fingerprint
    )
    assert [m.uri for m in same.list_keys()] == ["local://k"]


def test_a_state_file_that_cannot_be_written_stops_reads_but_not_a_write_that_landed(
    make_provider: MakeProvider,
    keystore_dir: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    state = blocker / "state.json"
    writer = make_provider(state_file=state)
    with caplog.at_level("WARNING", logger="aureus_local.keystore"):
        writer.create_key("k", KeySpec(key_type="aes-256"))  # the write itself lands
    assert stored(keystore_dir)["generation"] == 1
    assert [r.getMessage() for r in caplog.records if "not updated" in r.getMessage()] == [
        f"keystore state file {state} not updated: the keystore state file {state} cannot be "
        f"read or created: {blocker} is not a directory; point the local provider's state_file "
        "option elsewhere"
    ]
    # A fresh process must record what it loads before trusting it: it refuses.
    with pytest.raises(ConfigError, match="cannot be read or created"):
        make_provider(state_file=state).list_keys()


def test_the_first_generation_of_a_new_keystore_is_recorded(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    state = GenerationState(path, lock_timeout=5)
    assert repr(state) == f"GenerationState({str(path)!r})"

    assert state.record(KEYSTORE_ID, 1) == 1
    assert json.loads(path.read_text())["keystores"] == {KEYSTORE_ID: {"generation": 1}}
    assert GenerationState(path, lock_timeout=5).seen(KEYSTORE_ID) == 1


def test_a_state_write_that_fails_reports_its_own_error_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.json"
    state = GenerationState(path, lock_timeout=5)
    state.record(KEYSTORE_ID, 3)
    before = path.read_bytes()

    def disk_full(target: Path, content: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(target))

    # The fault at the one place the disk can refuse: creating the temporary file.
    monkeypatch.setattr(generations, "write_new_file", disk_full)
    with pytest.raises(OSError, match="No space left on device") as failed:
        state.record(KEYSTORE_ID, 4)
    assert failed.value.errno == errno.ENOSPC
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json", "state.json.lock"]


def test_a_load_whose_generation_cannot_be_recorded_is_refused(
    make_provider: MakeProvider, keystore_dir: Path, tmp_path: Path
) -> None:
    writer = make_provider()
    writer.create_key("k", KeySpec(key_type="aes-256"))
    writer.rotate_key(ref("local://k"))
    state = tmp_path / "state.json"
    keystore = Keystore(keystore_dir, state_file=state, lock_timeout=0.05)

    # Trusting a document this process could not record would let the next restart accept
    # an older copy: the load fails instead, and is retried once the state file is free.
    with (
        filelock.FileLock(str(tmp_path / "state.json.lock")),
        pytest.raises(ProviderUnavailable, match="stayed locked"),
    ):
        keystore.snapshot()
    assert not state.exists()
    snapshot = keystore.snapshot()
    assert snapshot is not None
    assert snapshot.document.generation == 2
    assert GenerationState(state, lock_timeout=5).seen(snapshot.document.keystore_id) == 2
