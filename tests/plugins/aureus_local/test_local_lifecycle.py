"""Key-version lifecycle and usage counters of the local provider.

Disable and enable, the minimum decryption version, destroy (with its rules
and confirmation), and the usage counters: counted in memory, flushed at most
every interval or N uses, merged across providers and processes, kept across
reopening, and covered by the keystore's HMAC.
"""

from __future__ import annotations

import base64
import itertools
import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

import aureus_core
import aureus_local
from aureus_core import KeyStack
from aureus_core.context import EncryptionContext
from aureus_core.errors import (
    ConfigError,
    DecryptionError,
    KeyDisabled,
    KeyNotFound,
    KeystoreCorrupted,
    ProviderUnavailable,
)
from aureus_core.keyref import KeyRef
from aureus_core.keys import KeySpec, KeyState
from aureus_core.testing.provider_contract import KeyProviderContract
from aureus_local import LocalKeyProvider
from aureus_local.document import MAX_COUNT, SEALED_SIZE
from aureus_local.keystore import forget_seen_generations
from aureus_local.sealing import Sealer

MakeProvider = Callable[..., LocalKeyProvider]
CONTEXT = EncryptionContext(app="lifecycle")
DATA_KEY = bytes(range(32))


def ref(uri: str) -> KeyRef:
    return KeyRef.parse(uri)


def keystore_json(directory: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((directory / "keystore.json").read_text())
    return result


def resign(directory: Path, document: dict[str, Any]) -> None:
    """Write ``document`` with a valid MAC (what only the master key's holder can do)."""
    document.pop("mac", None)
    sealer = Sealer((directory / "master.key").read_bytes())
    document["mac"] = base64.b64encode(sealer.mac(document)).decode()
    (directory / "keystore.json").write_text(json.dumps(document, indent=1))


class Ticker:
    """A monotonic clock for the flush schedule that moves only when told."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ticker() -> Ticker:
    return Ticker()


@pytest.fixture
def provider(make_provider: MakeProvider, ticker: Ticker) -> LocalKeyProvider:
    """A provider whose counters flush only when the ticker or 1000 uses say so."""
    return make_provider(monotonic=ticker)


@pytest.fixture
def payments(provider: LocalKeyProvider) -> list[Any]:
    """local://payments at version 3, with a data key wrapped under each version."""
    provider.create_key("payments", KeySpec(key_type="aes-256"))
    wrapped = [provider.wrap(ref("local://payments"), DATA_KEY, CONTEXT)]
    for _ in range(2):
        provider.rotate_key(ref("local://payments"))
        wrapped.append(provider.wrap(ref("local://payments"), DATA_KEY, CONTEXT))
    return wrapped


def unwrap(provider: LocalKeyProvider, wrapped: Any) -> bytes:
    return bytes(provider.unwrap(wrapped.key, wrapped.encrypted, CONTEXT))


# -- disable and enable ------------------------------------------------------------------------


def test_disable_refuses_every_use_of_the_version_until_enabled(
    provider: LocalKeyProvider, payments: list[Any]
) -> None:
    meta = provider.set_version_state(ref("local://payments?version=1"), KeyState.DISABLED)
    assert [v.state for v in meta.versions] == [
        KeyState.DISABLED,
        KeyState.ENABLED,
        KeyState.ENABLED,
    ]
    assert provider.describe_key(ref("local://payments")) == meta
    expected = (
        "local://payments version 1 is disabled (no minimum decryption version is set); "
        "enable it with `aureus keys enable 'local://payments?version=1'` if it is still needed"
    )
    for use in (
        lambda: provider.unwrap(payments[0].key, payments[0].encrypted, CONTEXT),
        lambda: provider.unwrap(ref("local://payments"), payments[0].encrypted, CONTEXT),
        lambda: provider.wrap(ref("local://payments?version=1"), DATA_KEY, CONTEXT),
        lambda: provider.mac(ref("local://payments?version=1"), b"m"),
    ):
        with pytest.raises(KeyDisabled) as refused:
            use()
        assert str(refused.value) == expected
    assert [unwrap(provider, w) for w in payments[1:]] == [DATA_KEY, DATA_KEY]

    enabled = provider.set_version_state(ref("local://payments?version=1"), KeyState.ENABLED)
    assert enabled.version_info("1").state is KeyState.ENABLED
    assert unwrap(provider, payments[0]) == DATA_KEY


def test_a_disabled_versions_refusal_names_the_minimum_when_one_is_set(
    provider: LocalKeyProvider, payments: list[Any]
) -> None:
    provider.set_min_decryption_version(ref("local://payments"), "1")
    provider.set_version_state(ref("local://payments?version=2"), KeyState.DISABLED)
    with pytest.raises(KeyDisabled) as refused:
        unwrap(provider, payments[1])
    assert str(refused.value) == (
        "local://payments version 2 is disabled (the minimum decryption version is 1); "
        "enable it with `aureus keys enable 'local://payments?version=2'` if it is still needed"
    )


def test_disabled_signing_version_refuses_verify_but_exports_its_public_key(
    provider: LocalKeyProvider,
) -> None:
    provider.create_key("signer", KeySpec(key_type="ed25519"))
    old = provider.sign(ref("local://signer"), b"release")
    provider.rotate_key(ref("local://signer"))
    pinned = ref("local://signer?version=1")
    provider.set_version_state(pinned, KeyState.DISABLED)
    with pytest.raises(KeyDisabled, match=r"^local://signer version 1 is disabled"):
        provider.verify(pinned, b"release", old.value)
    with pytest.raises(KeyDisabled, match="version 1 is disabled"):
        provider.sign(pinned, b"release")
    assert provider.public_key(pinned).startswith(b"-----BEGIN PUBLIC KEY-----")
    assert provider.sign(ref("local://signer"), b"x").key_version == "2"


def test_the_current_version_cannot_be_disabled(
    provider: LocalKeyProvider, payments: list[Any], keystore_dir: Path
) -> None:
    before = (keystore_dir / "keystore.json").read_bytes()
    with pytest.raises(ConfigError) as refused:
        provider.set_version_state(ref("local://payments?version=3"), KeyState.DISABLED)
    assert str(refused.value) == (
        "local://payments?version=3 is the current version of local://payments and cannot be "
        "disabled: rotate first (`aureus keys rotate local://payments`), then disable this version"
    )
    assert (keystore_dir / "keystore.json").read_bytes() == before


@pytest.mark.parametrize(
    ("uri", "state", "error", "message"),
    [
        (
            "local://payments",
            KeyState.DISABLED,
            ConfigError,
            r"^name the version to enable or disable: local://payments\?version=N "
            r"\(`aureus keys describe` lists the versions\)$",
        ),
        ("local://payments?version=9", KeyState.DISABLED, KeyNotFound, "has no version 9"),
        ("local://nope?version=1", KeyState.DISABLED, KeyNotFound, "no key local://nope"),
        (
            "local://payments?version=1",
            KeyState.DESTROYED,
            ConfigError,
            r"^a key version can be set to enabled or disabled, not destroyed; to destroy one, "
            r"use destroy_version \(`aureus keys destroy`\)$",
        ),
        ("local://payments?version=1", "frozen", ValueError, "frozen"),
    ],
)
def test_set_version_state_errors(
    provider: LocalKeyProvider,
    payments: list[Any],
    uri: str,
    state: Any,
    error: type[Exception],
    message: str,
) -> None:
    with pytest.raises(error, match=message):
        provider.set_version_state(ref(uri), state)


def test_setting_the_same_state_writes_nothing(
    provider: LocalKeyProvider, payments: list[Any], keystore_dir: Path
) -> None:
    provider.flush_usage()
    before = (keystore_dir / "keystore.json").read_bytes()
    provider.set_version_state(ref("local://payments?version=1"), KeyState.ENABLED)
    provider.set_min_decryption_version(ref("local://payments"), "2")
    after = (keystore_dir / "keystore.json").read_bytes()
    assert after != before
    provider.set_min_decryption_version(ref("local://payments"), "2")
    assert (keystore_dir / "keystore.json").read_bytes() == after


# -- the minimum decryption version ------------------------------------------------------------


def test_min_decryption_version_refuses_older_versions(
    provider: LocalKeyProvider, payments: list[Any], make_provider: MakeProvider
) -> None:
    meta = provider.set_min_decryption_version(ref("local://payments"), "3")
    assert meta.min_decryption_version == "3"
    assert [v.state for v in meta.versions] == [KeyState.ENABLED] * 3
    # The writer and a provider that reads the minimum from the file both refuse.
    for old, reader in itertools.product(payments[:2], (provider, make_provider())):
        with pytest.raises(KeyDisabled) as refused:
            unwrap(reader, old)
        number = old.key.version
        assert str(refused.value) == (
            f"local://payments version {number} is below the minimum decryption version 3; "
            f"lower the minimum with `aureus keys min-version local://payments {number}` if it "
            "is still needed"
        )
    assert unwrap(provider, payments[2]) == DATA_KEY
    lowered = provider.set_min_decryption_version(ref("local://payments"), "2")
    assert lowered.min_decryption_version == "2"
    assert unwrap(provider, payments[1]) == DATA_KEY
    with pytest.raises(KeyDisabled, match="below the minimum decryption version 2"):
        unwrap(provider, payments[0])


@pytest.mark.parametrize(
    ("uri", "version", "error", "message"),
    [
        ("local://payments", "4", KeyNotFound, "has no version 4"),
        (
            "local://payments",
            "0",
            ConfigError,
            "^invalid minimum decryption version '0' for local://payments: local key versions "
            "are whole numbers counting from 1$",
        ),
        (
            "local://payments",
            "two",
            ConfigError,
            "^invalid minimum decryption version 'two' for local://payments: local key versions "
            "are whole numbers counting from 1$",
        ),
        (
            "local://payments?version=2",
            "2",
            ConfigError,
            r"^local://payments\?version=2: name the key without \?version= and give the "
            "minimum version separately$",
        ),
    ],
)
def test_min_decryption_version_errors(
    provider: LocalKeyProvider,
    payments: list[Any],
    uri: str,
    version: str,
    error: type[Exception],
    message: str,
) -> None:
    with pytest.raises(error, match=message):
        provider.set_min_decryption_version(ref(uri), version)


def test_min_decryption_version_never_above_the_current(
    provider: LocalKeyProvider, payments: list[Any], keystore_dir: Path
) -> None:
    # Today the newest version is always current; a document where it is not
    # (valid, and MAC'd) shows the rule is enforced, not just implied.
    document = keystore_json(keystore_dir)
    document["keys"]["payments"]["current_version"] = 2
    resign(keystore_dir, document)
    with pytest.raises(ConfigError) as refused:
        provider.set_min_decryption_version(ref("local://payments"), "3")
    assert str(refused.value) == (
        "the minimum decryption version of local://payments cannot be 3: the current version "
        "is 2, and a higher minimum would refuse the version that encrypts and signs; "
        "rotate first"
    )
    assert (
        provider.set_min_decryption_version(ref("local://payments"), "2").min_decryption_version
        == "2"
    )


def test_the_stack_reports_why_a_message_no_longer_decrypts(tmp_path: Path) -> None:
    with KeyStack.local(tmp_path / "ks") as stack:
        stack.create_key("payments", "aes-256")
        message = stack.encrypt(b"card data", keys=["local://payments"])
        stack.rotate_key("local://payments")
        stack.set_min_decryption_version("local://payments", "2")
        with pytest.raises(DecryptionError) as refused:
            stack.decrypt(message)
        assert "local://payments version 1 is below the minimum decryption version 2" in str(
            refused.value
        )
        stack.set_min_decryption_version("local://payments", "1")
        assert stack.decrypt(message) == b"card data"


# -- destroy -------------------------------------------------------------------------------------


def test_destroy_needs_a_disabled_or_retired_version_and_confirmation(
    provider: LocalKeyProvider, payments: list[Any], keystore_dir: Path
) -> None:
    old = ref("local://payments?version=1")
    before = (keystore_dir / "keystore.json").read_bytes()
    with pytest.raises(ConfigError) as not_yet:
        provider.destroy_version(old, confirm=True)
    assert str(not_yet.value) == (
        "local://payments?version=1 is enabled and no minimum decryption version is set, so it "
        "may still be needed: disable it first (`aureus keys disable "
        "'local://payments?version=1'`) or raise the minimum above it, make sure nothing fails "
        "without it, then destroy it"
    )
    with pytest.raises(ConfigError) as current:
        provider.destroy_version(ref("local://payments?version=3"), confirm=True)
    assert str(current.value) == (
        "local://payments?version=3 is the current version of local://payments and cannot be "
        "destroyed: rotate first, then disable this version (or raise the minimum decryption "
        "version above it) and destroy it"
    )
    with pytest.raises(ConfigError) as unpinned:
        provider.destroy_version(ref("local://payments"), confirm=True)
    assert str(unpinned.value) == (
        "name the version to destroy: local://payments?version=N "
        "(`aureus keys describe` lists the versions)"
    )
    assert (keystore_dir / "keystore.json").read_bytes() == before

    provider.set_version_state(old, KeyState.DISABLED)
    disabled = (keystore_dir / "keystore.json").read_bytes()
    with pytest.raises(ConfigError) as unconfirmed:
        provider.destroy_version(old)
    assert str(unconfirmed.value) == (
        "not destroying local://payments?version=1 without confirmation: destroying erases its "
        "key material for good, and nothing it wrapped or signed can be unwrapped or verified "
        "again; pass confirm=True"
    )
    assert (keystore_dir / "keystore.json").read_bytes() == disabled

    sealed = keystore_json(keystore_dir)["keys"]["payments"]["versions"][0]["ciphertext"]
    meta = provider.destroy_version(old, confirm=True)
    assert [v.state for v in meta.versions] == [
        KeyState.DESTROYED,
        KeyState.ENABLED,
        KeyState.ENABLED,
    ]
    stored = keystore_json(keystore_dir)["keys"]["payments"]["versions"][0]
    assert (stored["state"], stored["nonce"], stored["ciphertext"]) == ("destroyed", None, None)
    assert sealed not in (keystore_dir / "keystore.json").read_text()
    # Nothing is left to authenticate the wrapped key with: an opaque failure, like a forgery.
    with pytest.raises(DecryptionError) as refused:
        unwrap(provider, payments[0])
    assert str(refused.value) == "the message could not be decrypted and authenticated"
    for state in (KeyState.ENABLED, KeyState.DISABLED):
        with pytest.raises(ConfigError) as gone:
            provider.set_version_state(old, state)
        assert str(gone.value) == (
            "local://payments?version=1 was destroyed: its material is gone, so it can be "
            "neither enabled nor disabled"
        )
    assert provider.destroy_version(old, confirm=True) == provider.describe_key(old)
    assert [unwrap(provider, w) for w in payments[1:]] == [DATA_KEY, DATA_KEY]


def test_a_version_below_the_minimum_may_be_destroyed_while_enabled(
    provider: LocalKeyProvider, payments: list[Any], make_provider: MakeProvider
) -> None:
    other = make_provider()  # another process's view, with the material already decrypted
    assert unwrap(other, payments[0]) == DATA_KEY
    provider.set_min_decryption_version(ref("local://payments"), "2")
    meta = provider.destroy_version(ref("local://payments?version=1"), confirm=True)
    assert meta.version_info("1").state is KeyState.DESTROYED
    provider.set_min_decryption_version(ref("local://payments"), "1")
    for reader in (provider, other, make_provider()):
        with pytest.raises(DecryptionError):
            unwrap(reader, payments[0])
        assert reader.describe_key(ref("local://payments")).version_info("1").state is (
            KeyState.DESTROYED
        )


def test_a_destroyed_signing_version_has_no_public_key(provider: LocalKeyProvider) -> None:
    provider.create_key("signer", KeySpec(key_type="ecdsa-p256"))
    provider.rotate_key(ref("local://signer"))
    provider.set_version_state(ref("local://signer?version=1"), KeyState.DISABLED)
    provider.destroy_version(ref("local://signer?version=1"), confirm=True)
    provider.set_min_decryption_version(ref("local://signer"), "1")
    with pytest.raises(KeyDisabled) as gone:
        provider.public_key(ref("local://signer?version=1"))
    assert str(gone.value) == (
        "local://signer version 1 was destroyed (the minimum decryption version is 1); its "
        "material is gone, so what it wrapped or signed can no longer be unwrapped or verified"
    )


def test_a_tampered_destroyed_record_with_material_is_corrupt(
    provider: LocalKeyProvider, payments: list[Any], keystore_dir: Path
) -> None:
    provider.set_version_state(ref("local://payments?version=1"), KeyState.DISABLED)
    sealed = keystore_json(keystore_dir)["keys"]["payments"]["versions"][0]
    provider.destroy_version(ref("local://payments?version=1"), confirm=True)
    document = keystore_json(keystore_dir)
    document["keys"]["payments"]["versions"][0].update(
        nonce=sealed["nonce"], ciphertext=sealed["ciphertext"]
    )
    resign(keystore_dir, document)
    with pytest.raises(KeystoreCorrupted, match="is destroyed but still holds material"):
        provider.list_keys()


# -- usage counters ------------------------------------------------------------------------------


def stored_counts(directory: Path, name: str) -> list[tuple[int, int]]:
    versions = keystore_json(directory)["keys"][name]["versions"]
    return [(v["messages"], v["bytes"]) for v in versions]


def counts(provider: LocalKeyProvider, name: str) -> list[tuple[int | None, int | None]]:
    return [(v.messages, v.bytes) for v in provider.describe_key(ref(f"local://{name}")).versions]


def test_wraps_and_signatures_are_counted_at_once_and_stored_later(
    provider: LocalKeyProvider, keystore_dir: Path, ticker: Ticker
) -> None:
    provider.create_key("w", KeySpec(key_type="aes-256"))
    provider.create_key("s", KeySpec(key_type="ed25519"))
    for _ in range(5):
        provider.wrap(ref("local://w"), DATA_KEY, CONTEXT)
    provider.sign(ref("local://s"), b"x" * 10)
    provider.sign(ref("local://s"), b"y" * 7)
    provider.unwrap(
        ref("local://w"), provider.wrap(ref("local://w"), DATA_KEY, CONTEXT).encrypted, CONTEXT
    )
    provider.verify(ref("local://s"), b"m", b"\x00" * 64)
    provider.mac(ref("local://w"), b"m")
    assert counts(provider, "w") == [(6, 0)]  # unwraps and MACs are not counted
    assert counts(provider, "s") == [(2, 17)]
    assert stored_counts(keystore_dir, "w") == [(0, 0)]  # not written yet

    ticker.now += 0.999
    provider.wrap(ref("local://w"), DATA_KEY, CONTEXT)
    assert stored_counts(keystore_dir, "w") == [(0, 0)]
    ticker.now += 0.001
    provider.wrap(ref("local://w"), DATA_KEY, CONTEXT)  # one second since the last flush
    assert stored_counts(keystore_dir, "w") == [(8, 0)]
    assert stored_counts(keystore_dir, "s") == [(2, 17)]
    assert counts(provider, "w") == [(8, 0)]


def test_counts_flush_every_n_uses(make_provider: MakeProvider, keystore_dir: Path) -> None:
    provider = make_provider(monotonic=Ticker(), usage_flush_operations=4)
    provider.create_key("w", KeySpec(key_type="aes-256"))
    seen = []
    for _ in range(9):
        provider.wrap(ref("local://w"), DATA_KEY, CONTEXT)
        seen.append(stored_counts(keystore_dir, "w")[0][0])
    assert seen == [0, 0, 0, 4, 4, 4, 4, 8, 8]


def test_no_fsync_per_wrap(
    provider: LocalKeyProvider, monkeypatch: pytest.MonkeyPatch, keystore_dir: Path
) -> None:
    provider.create_key("w", KeySpec(key_type="aes-256"))
    calls: list[int] = []
    real = os.fsync

    def counting_fsync(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    for _ in range(200):
        provider.wrap(ref("local://w"), DATA_KEY, CONTEXT)
    # Only the durable reservations of the AES-GCM wrap count are written, in
    # doubling blocks (16 + 32 + 64 + 128 wraps): four writes of two fsyncs each.
    assert len(calls) == 8
    stored = keystore_json(keystore_dir)["keys"]["w"]["versions"][0]["wraps_reserved"]
    assert stored == 16 + 32 + 64 + 128
    provider.flush_usage()
    assert len(calls) == 10  # the new file, then its directory: one write for 200 counts
    assert stored_counts(keystore_dir, "w") == [(200, 0)]


def test_other_writes_carry_the_counts(provider: LocalKeyProvider, keystore_dir: Path) -> None:
    provider.create_key("w", KeySpec(key_type="aes-256"))
    for _ in range(3):
        provider.wrap(ref("local://w"), DATA_KEY, CONTEXT)
    rotated = provider.rotate_key(ref("local://w"))
    assert stored_counts(keystore_dir, "w") == [(3, 0), (0, 0)]
    assert [(v.messages, v.bytes) for v in rotated.versions] == [(3, 0), (0, 0)]
    provider.wrap(ref("local://w"), DATA_KEY, CONTEXT)
    provider.create_key("other", KeySpec(key_type="aes-256"))
    assert stored_counts(keystore_dir, "w") == [(3, 0), (1, 0)]


def test_counts_survive_close_and_reopen(make_provider: MakeProvider, keystore_dir: Path) -> None:
    first = make_provider(monotonic=Ticker())
    first.create_key("w", KeySpec(key_type="aes-256"))
    for _ in range(7):
        first.wrap(ref("local://w"), DATA_KEY, CONTEXT)
    first.close()
    assert stored_counts(keystore_dir, "w") == [(7, 0)]
    again = make_provider(monotonic=Ticker())
    assert counts(again, "w") == [(7, 0)]
    again.wrap(ref("local://w"), DATA_KEY, CONTEXT)
    again.close()
    assert counts(make_provider(), "w") == [(8, 0)]


def test_two_providers_add_their_counts(make_provider: MakeProvider, keystore_dir: Path) -> None:
    one, two = make_provider(monotonic=Ticker()), make_provider(monotonic=Ticker())
    one.create_key("w", KeySpec(key_type="aes-256"))
    for _ in range(3):
        one.wrap(ref("local://w"), DATA_KEY, CONTEXT)
    for _ in range(4):
        two.wrap(ref("local://w"), DATA_KEY, CONTEXT)
    one.flush_usage()
    assert stored_counts(keystore_dir, "w") == [(3, 0)]
    assert counts(two, "w") == [(7, 0)]  # what is stored, plus its own unflushed 4
    two.flush_usage()
    assert stored_counts(keystore_dir, "w") == [(7, 0)]
    one.wrap(ref("local://w"), DATA_KEY, CONTEXT)
    one.close()
    two.close()
    assert counts(make_provider(), "w") == [(8, 0)]


WORKER = textwrap.dedent(
    """
    import sys
    from aureus_core.context import EncryptionContext
    from aureus_core.keyref import KeyRef
    from aureus_local import LocalKeyProvider

    provider = LocalKeyProvider(sys.argv[1], usage_flush_operations=int(sys.argv[3]))
    key = KeyRef.parse("local://w")
    for _ in range(int(sys.argv[2])):
        provider.wrap(key, bytes(32), EncryptionContext(app="worker"))
        provider.sign(KeyRef.parse("local://s"), b"abc")
    provider.close()
    """
)


@pytest.mark.skipif(os.name != "posix", reason="spawns processes")
def test_processes_merge_their_counts(make_provider: MakeProvider, keystore_dir: Path) -> None:
    parent = make_provider(monotonic=Ticker())
    parent.create_key("w", KeySpec(key_type="aes-256"))
    parent.create_key("s", KeySpec(key_type="ed25519"))
    env = dict(os.environ)
    paths = [
        str(Path(aureus_local.__file__).resolve().parents[1]),
        str(Path(aureus_core.__file__).resolve().parents[1]),
    ]
    env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")])
    env.pop("AUREUS_KEYSTORE_PASSPHRASE", None)
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(keystore_dir), "150", str(flush_every)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for flush_every in (7, 40, 1000)
    ]
    for _ in range(10):
        parent.wrap(ref("local://w"), DATA_KEY, CONTEXT)
    for worker in workers:
        _, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
    parent.close()
    assert stored_counts(keystore_dir, "w") == [(460, 0)]
    assert stored_counts(keystore_dir, "s") == [(450, 1350)]


def test_the_mac_covers_the_counters(
    provider: LocalKeyProvider,
    keystore_dir: Path,
    make_provider: MakeProvider,
    caplog: pytest.LogCaptureFixture,
) -> None:
    provider.create_key("w", KeySpec(key_type="aes-256"))
    provider.wrap(ref("local://w"), DATA_KEY, CONTEXT)
    provider.flush_usage()
    document = keystore_json(keystore_dir)
    document["keys"]["w"]["versions"][0]["messages"] = 0  # hide the use
    (keystore_dir / "keystore.json").write_text(json.dumps(document, indent=1))
    tampered = (keystore_dir / "keystore.json").read_bytes()

    with pytest.raises(KeystoreCorrupted, match=r"integrity check \(HMAC\) failed"):
        make_provider().describe_key(ref("local://w"))
    with pytest.raises(KeystoreCorrupted):
        provider.wrap(ref("local://w"), DATA_KEY, CONTEXT)
    # Counts that cannot be saved are not forced over a damaged file: close logs and moves on.
    provider.keystore.record_use("w", 1)
    with caplog.at_level(logging.WARNING, logger="aureus_local.keystore"):
        provider.close()
    assert "usage counters of keystore" in caplog.text
    assert "integrity check (HMAC) failed" in caplog.text
    assert (keystore_dir / "keystore.json").read_bytes() == tampered


def test_a_failed_flush_does_not_fail_the_wrap_and_is_retried(
    provider: LocalKeyProvider,
    keystore_dir: Path,
    ticker: Ticker,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    provider.create_key("w", KeySpec(key_type="aes-256"))
    provider.wrap(ref("local://w"), DATA_KEY, CONTEXT)  # reserves a block of wraps on disk
    keystore = provider.keystore
    real = keystore._replace

    def full_disk(content: bytes) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(keystore, "_replace", full_disk)
    ticker.now += 5
    with caplog.at_level(logging.WARNING, logger="aureus_local.keystore"):
        wrapped = provider.wrap(ref("local://w"), DATA_KEY, CONTEXT)
    assert unwrap(provider, wrapped) == DATA_KEY
    assert "No space left on device" in caplog.text
    assert counts(provider, "w") == [(2, 0)]
    monkeypatch.setattr(keystore, "_replace", real)
    provider.wrap(ref("local://w"), DATA_KEY, CONTEXT)  # not due again yet
    assert stored_counts(keystore_dir, "w") == [(0, 0)]
    ticker.now += 1
    provider.wrap(ref("local://w"), DATA_KEY, CONTEXT)
    assert stored_counts(keystore_dir, "w") == [(4, 0)]


# -- format versions -----------------------------------------------------------------------------


def test_format_1_keystores_are_read_and_upgraded_on_write(
    provider: LocalKeyProvider, keystore_dir: Path, make_provider: MakeProvider
) -> None:
    provider.create_key("w", KeySpec(key_type="aes-256"))
    wrapped = provider.wrap(ref("local://w"), DATA_KEY, CONTEXT)
    provider.close()
    document = keystore_json(keystore_dir)
    document["format_version"] = 1
    del document["generation"]
    for key in document["keys"].values():
        del key["min_decryption_version"]
        for version in key["versions"]:
            for field in ("state", "messages", "bytes", "wraps_reserved"):
                del version[field]
    resign(keystore_dir, document)

    forget_seen_generations()  # a new process, after an upgrade of Aureus
    reader = make_provider(monotonic=Ticker())
    meta = reader.describe_key(ref("local://w"))
    assert (meta.current.state, meta.current.messages, meta.min_decryption_version) == (
        KeyState.ENABLED,
        0,
        None,
    )
    assert unwrap(reader, wrapped) == DATA_KEY
    reader.rotate_key(ref("local://w"))
    upgraded = keystore_json(keystore_dir)
    assert (upgraded["format_version"], upgraded["generation"]) == (3, 1)
    assert upgraded["keys"]["w"]["versions"][0] == {
        **upgraded["keys"]["w"]["versions"][0],
        "state": "enabled",
        "messages": 0,
        "bytes": 0,
        "wraps_reserved": 0,
    }
    assert (meta.current.messages, meta.current.bytes) == (0, 0)


def test_a_format_1_document_with_format_2_fields_is_corrupt(
    provider: LocalKeyProvider, keystore_dir: Path
) -> None:
    provider.create_key("w", KeySpec(key_type="aes-256"))
    document = keystore_json(keystore_dir)
    document["format_version"] = 1
    resign(keystore_dir, document)
    with pytest.raises(KeystoreCorrupted, match="unknown fields"):
        provider.list_keys()


# -- the conformance kit notices a provider that ignores the lifecycle ---------------------------


class IgnoresDisabled(LocalKeyProvider):
    """Unwraps with any version, whatever its state."""

    def unwrap(self, key: KeyRef, encrypted: Any, context: EncryptionContext) -> bytearray:
        snapshot = self.keystore.snapshot()
        assert snapshot is not None
        from aureus_local import wrapping

        named = wrapping.parse_info(encrypted)
        assert named is not None
        record = snapshot.keys[named[0]]
        version = record.version(named[1])
        assert version is not None
        return wrapping.unwrap(
            snapshot.material(record, version), named[0], named[1], encrypted, context
        )


def test_the_contract_catches_a_provider_that_ignores_disabled_versions(tmp_path: Path) -> None:
    contract = KeyProviderContract()
    honest = LocalKeyProvider(tmp_path / "honest")
    contract.test_lifecycle_disabled_version_refuses_unwrap(honest, "k")
    broken = IgnoresDisabled(tmp_path / "broken")
    with pytest.raises(pytest.fail.Exception, match="DID NOT RAISE"):
        contract.test_lifecycle_disabled_version_refuses_unwrap(broken, "k")
    broken_min = IgnoresDisabled(tmp_path / "broken-min")
    with pytest.raises(pytest.fail.Exception, match="DID NOT RAISE"):
        contract.test_lifecycle_min_decryption_version(broken_min, "k")
    for provider in (honest, broken, broken_min):
        provider.close()


def test_a_destroyed_versions_material_does_not_stay_in_memory(
    provider: LocalKeyProvider, payments: list[Any]
) -> None:
    for wrapped in payments:  # decrypts each version's material into this process's cache
        assert provider.unwrap(wrapped.key, wrapped.encrypted, CONTEXT) == DATA_KEY
    keystore = provider._keystore  # what this process holds decrypted
    before = keystore.snapshot()
    assert before is not None
    assert set(before.decrypted()) == {("payments", 1), ("payments", 2), ("payments", 3)}

    provider.set_version_state(ref("local://payments?version=1"), KeyState.DISABLED)
    provider.destroy_version(ref("local://payments?version=1"), confirm=True)

    after = keystore.snapshot()
    assert after is not None
    # The other versions' material is carried over to the new document; version 1's is not.
    assert set(after.decrypted()) == {("payments", 2), ("payments", 3)}


def test_no_internal_caller_gets_a_destroyed_versions_material(
    provider: LocalKeyProvider, payments: list[Any]
) -> None:
    provider.set_version_state(ref("local://payments?version=1"), KeyState.DISABLED)
    provider.destroy_version(ref("local://payments?version=1"), confirm=True)
    snapshot = provider._keystore.snapshot()
    assert snapshot is not None
    record = snapshot.keys["payments"]
    destroyed = record.version(1)
    assert destroyed is not None

    # The provider refuses earlier; the snapshot is the last line, for any future caller.
    for fetch in (
        lambda: snapshot.material(record, destroyed),
        lambda: snapshot.aead(record, destroyed),
    ):
        with pytest.raises(KeyDisabled) as refused:
            fetch()
        assert str(refused.value) == (
            "local://payments?version=1 was destroyed: its material is gone"
        )
        assert refused.value.provider == "local"


# -- an authentic document that breaks the format ---------------------------------------------
#
# The MAC proves who wrote a document, not that the writer was right: a document with a valid
# MAC is still parsed strictly, so a bug in a writer (or a hand edit by the master key's holder)
# is refused in words before any key in it is used.

RAW_AES = bytes(range(200, 232))


@pytest.fixture(scope="module")
def partner_pem() -> tuple[bytes, bytes]:
    """An RSA key's private and public PEM."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(65537, 2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


@pytest.fixture
def stocked(provider: LocalKeyProvider, partner_pem: tuple[bytes, bytes]) -> LocalKeyProvider:
    """``w`` (aes-256, version 1 disabled), ``gone`` (version 1 destroyed), raw keys
    ``orders`` (AES), ``partner`` (RSA) and ``inbox`` (RSA public key, wraps only)."""
    from aureus_core.interfaces import KeyMaterial
    from aureus_core.sensitive import Secret

    provider.create_key("w", KeySpec(key_type="aes-256", labels={"team": "pay"}))
    provider.rotate_key(ref("local://w"))
    provider.set_version_state(ref("local://w?version=1"), KeyState.DISABLED)
    provider.create_key("gone", KeySpec(key_type="aes-256"))
    provider.rotate_key(ref("local://gone"))
    provider.set_version_state(ref("local://gone?version=1"), KeyState.DISABLED)
    provider.destroy_version(ref("local://gone?version=1"), confirm=True)
    provider.import_key(
        "orders",
        KeySpec(key_type="aes-256", options={"namespace": "acme", "key_name": "orders"}),
        KeyMaterial(format="raw", data=Secret(RAW_AES)),
    )
    provider.import_key(
        "partner",
        KeySpec(
            key_type="rsa-2048",
            options={"namespace": "acme", "key_name": "partner", "padding": "oaep-sha256"},
        ),
        KeyMaterial(format="pem", data=Secret(partner_pem[0])),
    )
    provider.import_key(
        "inbox",
        KeySpec(
            key_type="rsa-2048",
            options={"namespace": "acme", "key_name": "inbox", "padding": "oaep-sha256"},
        ),
        KeyMaterial(format="pem", data=Secret(partner_pem[1])),
    )
    return provider


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """An edit that sets one field, named by a dotted path (list items by number)."""

    def edit(document: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = document
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return edit


def _drop(path: str) -> Callable[[dict[str, Any]], None]:
    def edit(document: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = document
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        del node[last]

    return edit


def _rename_key(old: str, new: str) -> Callable[[dict[str, Any]], None]:
    def edit(document: dict[str, Any]) -> None:
        document["keys"][new] = document["keys"].pop(old)

    return edit


def _format_2_with_keyring(document: dict[str, Any]) -> None:
    document["format_version"] = 2
    del document["generation"]
    for key in document["keys"].values():
        for version in key["versions"]:
            del version["wraps_reserved"]


def _format_1_with_version_state(document: dict[str, Any]) -> None:
    """A format 1 document whose keys are right but whose versions kept their state."""
    document["format_version"] = 1
    del document["generation"]
    for name in ("gone", "inbox", "orders", "partner"):
        del document["keys"][name]
    del document["keys"]["w"]["min_decryption_version"]
    for version in document["keys"]["w"]["versions"]:
        for field in ("messages", "bytes", "wraps_reserved"):
            del version[field]


def _format_2_with_wraps_reserved(document: dict[str, Any]) -> None:
    """A format 2 document whose versions kept the format 3 field wraps_reserved."""
    document["format_version"] = 2
    del document["generation"]
    for name in ("gone", "inbox", "orders", "partner"):
        del document["keys"][name]


def _orders_second_version(document: dict[str, Any]) -> None:
    versions = document["keys"]["orders"]["versions"]
    versions.append({**versions[0], "version": 2})


V1 = "keys.w.versions.0"
V2 = "keys.w.versions.1"
NAIVE_TIME = "2030-01-01T12:00:00"

# (edit, the words the refusal must hold)
MALFORMED: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "generation 0": (_set("generation", 0), "generation is not a whole number"),
    "generation true": (_set("generation", True), "generation is not a whole number"),
    "generation past the counter": (
        _set("generation", MAX_COUNT + 1),
        "generation is not a whole number",
    ),
    "format 3 without generation": (
        _drop("generation"),
        "the document has missing fields ['generation'] or unknown fields []",
    ),
    "keys a list": (_set("keys", []), "keys is not a JSON object"),
    "document created_at naive": (_set("created_at", NAIVE_TIME), "created_at has no time zone"),
    "key name invalid": (_rename_key("w", "no spaces allowed"), "has an invalid name"),
    "key a list": (_set("keys.w", []), "key 'w' is not a JSON object"),
    "key with unknown field": (
        _set("keys.w.colour", "red"),
        "key 'w' has missing fields [] or unknown fields ['colour']",
    ),
    "key type unknown": (_set("keys.w.type", "aes-512"), "unsupported type 'aes-512'"),
    "key type raw-only": (_set("keys.w.type", "rsa-2048"), "unsupported type 'rsa-2048'"),
    "keyring on a format 2 key": (
        _format_2_with_keyring,
        "key 'inbox' has missing fields [] or unknown fields ['keyring']",
    ),
    "no versions": (_set("keys.w.versions", []), "key 'w' has no versions"),
    "versions an object": (_set("keys.w.versions", {"1": {}}), "key 'w' has no versions"),
    "labels a list": (_set("keys.w.labels", []), "key 'w' labels is not a JSON object"),
    "label a number": (_set("keys.w.labels.team", 7), "has a label that is not a string"),
    "description a number": (_set("keys.w.description", 7), "description that is not a string"),
    "current version 0": (_set("keys.w.current_version", 0), "current_version is not a whole"),
    "current version past the last": (
        _set("keys.w.current_version", 3),
        "current_version is not a whole",
    ),
    "current version disabled": (
        _set("keys.w.current_version", 1),
        "key 'w' has a current version that is not enabled",
    ),
    "minimum above current": (
        _set("keys.w.min_decryption_version", 3),
        "min_decryption_version is not a whole",
    ),
    "minimum 0": (_set("keys.w.min_decryption_version", 0), "min_decryption_version is not"),
    "key created_at a number": (_set("keys.w.created_at", 5), "created_at is not a timestamp"),
    "key created_at words": (
        _set("keys.w.created_at", "yesterday"),
        "key 'w' created_at is not an ISO 8601 timestamp",
    ),
    "version a list": (_set(V1, []), "key 'w' version 1 is not a JSON object"),
    "version out of sequence": (_set(f"{V1}.version", 2), "version 1 is out of sequence"),
    "version number true": (_set(f"{V1}.version", True), "version 1 is out of sequence"),
    "version origin unknown": (_set(f"{V2}.origin", "found"), "version 2 has an unknown origin"),
    "version state unknown": (_set(f"{V2}.state", "lost"), "version 2 has an unknown state"),
    "version messages negative": (_set(f"{V2}.messages", -1), "version 2 messages is not"),
    "version bytes past the counter": (_set(f"{V2}.bytes", 2**63), "version 2 bytes is not"),
    "version wraps_reserved text": (
        _set(f"{V2}.wraps_reserved", "3"),
        "version 2 wraps_reserved is not",
    ),
    "format 1 version with a state": (
        _format_1_with_version_state,
        "key 'w' version 1 has missing fields [] or unknown fields ['state']",
    ),
    "format 2 version with wraps_reserved": (
        _format_2_with_wraps_reserved,
        "key 'w' version 1 has missing fields [] or unknown fields ['wraps_reserved']",
    ),
    "version without state": (
        _drop(f"{V2}.state"),
        "key 'w' version 2 has missing fields ['state'] or unknown fields []",
    ),
    "version nonce short": (_set(f"{V2}.nonce", "AAAA"), "version 2 nonce has the wrong length"),
    "version ciphertext short": (
        _set(f"{V2}.ciphertext", "AAAA"),
        "version 2 ciphertext has the wrong length",
    ),
    "version ciphertext one byte long": (
        _set(f"{V2}.ciphertext", base64.b64encode(bytes(SEALED_SIZE + 1)).decode()),
        "key 'w' version 2 ciphertext has the wrong length",
    ),
    "destroyed version with a nonce": (
        _set("keys.gone.versions.0.nonce", base64.b64encode(bytes(12)).decode()),
        "key 'gone' version 1 is destroyed but still holds material",
    ),
    "destroyed version with a ciphertext": (
        _set("keys.gone.versions.0.ciphertext", base64.b64encode(bytes(SEALED_SIZE)).decode()),
        "key 'gone' version 1 is destroyed but still holds material",
    ),
    "version created_at naive": (
        _set(f"{V2}.created_at", NAIVE_TIME),
        "key 'w' version 2 created_at has no time zone",
    ),
    "raw key with two versions": (_orders_second_version, "more than one version"),
    "keyring key type unknown": (
        _set("keys.orders.type", "aes-512"),
        "key 'orders' has an unsupported type 'aes-512'",
    ),
    "keyring on a signing type": (
        _set("keys.orders.type", "ed25519"),
        "key 'orders' has an unsupported type 'ed25519'",
    ),
    "keyring a list": (_set("keys.orders.keyring", []), "key 'orders' keyring is not a JSON"),
    "keyring unknown field": (
        _set("keys.orders.keyring.x", 1),
        "key 'orders' keyring has missing fields [] or unknown fields ['x']",
    ),
    "keyring namespace a number": (
        _set("keys.orders.keyring.namespace", 5),
        "key 'orders' has a malformed keyring",
    ),
    "keyring padding unknown": (
        _set("keys.partner.keyring.padding", "rot13"),
        "key 'partner' has a malformed keyring",
    ),
    "rsa keyring without padding": (
        _set("keys.partner.keyring.padding", None),
        "key 'partner' has a keyring that does not fit its type",
    ),
    "aes keyring with padding": (
        _set("keys.orders.keyring.padding", "oaep-sha256"),
        "key 'orders' has a keyring that does not fit its type",
    ),
    "aes keyring public only": (
        _set("keys.orders.keyring.public_only", True),
        "key 'orders' has a keyring that does not fit its type",
    ),
    "public_only a string": (
        _set("keys.partner.keyring.public_only", "no"),
        "key 'partner' has a keyring that does not fit its type",
    ),
    "raw aes material too long": (
        _set("keys.orders.versions.0.ciphertext", base64.b64encode(bytes(80)).decode()),
        "key 'orders' version 1 ciphertext has the wrong length",
    ),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_an_authentic_document_that_breaks_the_format_is_refused_saying_what(
    stocked: LocalKeyProvider, keystore_dir: Path, make_provider: MakeProvider, case: str
) -> None:
    edit, words = MALFORMED[case]
    document = keystore_json(keystore_dir)
    edit(document)
    resign(keystore_dir, document)
    written = (keystore_dir / "keystore.json").read_bytes()

    for reader in (stocked, make_provider()):
        with pytest.raises(KeystoreCorrupted) as refused:
            reader.describe_key(ref("local://w"))
        message = str(refused.value)
        assert message.startswith(f"keystore file {keystore_dir / 'keystore.json'} is corrupted: ")
        assert words in message
        with pytest.raises(KeystoreCorrupted):
            reader.create_key("new", KeySpec(key_type="aes-256"))
    assert (keystore_dir / "keystore.json").read_bytes() == written


def test_the_untouched_stocked_document_loads_after_resigning(
    stocked: LocalKeyProvider, keystore_dir: Path, make_provider: MakeProvider
) -> None:
    """The baseline of the table above: resigning alone changes nothing a reader sees."""
    resign(keystore_dir, keystore_json(keystore_dir))
    reader = make_provider()
    meta = reader.describe_key(ref("local://w"))
    assert [v.state for v in meta.versions] == [KeyState.DISABLED, KeyState.ENABLED]
    assert dict(meta.labels) == {"team": "pay"}
    assert [v.state for v in reader.describe_key(ref("local://gone")).versions] == [
        KeyState.DESTROYED,
        KeyState.ENABLED,
    ]
    assert dict(reader.describe_key(ref("local://inbox")).extra)["private_key"] == (
        "no (wrap only)"
    )
    assert sorted(m.uri for m in reader.list_keys()) == [
        "local://gone",
        "local://inbox",
        "local://orders",
        "local://partner",
        "local://w",
    ]
    assert dict(reader.describe_key(ref("local://orders")).extra) == {
        "origin": "imported",
        "key_namespace": "acme",
        "key_name": "orders",
    }
    assert dict(reader.describe_key(ref("local://partner")).extra) == {
        "origin": "imported",
        "key_namespace": "acme",
        "key_name": "partner",
        "padding": "oaep-sha256",
        "private_key": "yes",
    }


def test_saturated_counters_are_read_back(
    provider: LocalKeyProvider, keystore_dir: Path, make_provider: MakeProvider
) -> None:
    """Counters stop at MAX_COUNT (they saturate): a stored MAX_COUNT, or generation, loads."""
    provider.create_key("w", KeySpec(key_type="aes-256"))
    document = keystore_json(keystore_dir)
    document["keys"]["w"]["versions"][0].update(messages=MAX_COUNT, bytes=MAX_COUNT - 1)
    document["generation"] = MAX_COUNT
    resign(keystore_dir, document)
    reader = make_provider()
    meta = reader.describe_key(ref("local://w"))
    assert (meta.current.messages, meta.current.bytes) == (MAX_COUNT, MAX_COUNT - 1)
    assert reader.keystore_info().generation == MAX_COUNT


def test_a_document_at_the_highest_generation_is_read_but_never_written_past_it(
    provider: LocalKeyProvider, keystore_dir: Path, make_provider: MakeProvider
) -> None:
    """A write would store MAX_COUNT + 1, which every reader refuses: it is refused instead."""
    provider.create_key("w", KeySpec(key_type="aes-256"))
    document = keystore_json(keystore_dir)
    document["generation"] = MAX_COUNT - 1
    resign(keystore_dir, document)
    make_provider().create_key("last", KeySpec(key_type="aes-256"))  # the last write there is
    assert keystore_json(keystore_dir)["generation"] == MAX_COUNT
    before = (keystore_dir / "keystore.json").read_bytes()
    reader = make_provider()
    assert reader.describe_key(ref("local://w")).current.version == "1"
    with pytest.raises(KeystoreCorrupted) as raised:
        reader.create_key("other", KeySpec(key_type="aes-256"))
    assert str(raised.value) == (
        f"keystore file {keystore_dir / 'keystore.json'} is corrupted: it is at generation "
        f"{MAX_COUNT}, the highest a reader accepts, so it cannot be written again (Aureus adds "
        "1 a write: this document was made by hand). Nothing was changed; restore keystore.json "
        "(with its master.key, if any) from a backup"
    )
    assert (keystore_dir / "keystore.json").read_bytes() == before
    assert make_provider().keystore_info().generation == MAX_COUNT


def test_a_use_never_waits_for_another_threads_write(
    make_provider: MakeProvider, keystore_dir: Path
) -> None:
    """A due flush is skipped while another thread writes; the next use flushes instead."""
    provider = make_provider(monotonic=Ticker(), usage_flush_operations=1)
    provider.create_key("w", KeySpec(key_type="aes-256"))
    store = provider.keystore
    holding, release = threading.Event(), threading.Event()

    def writer() -> None:
        with store._write_lock:
            holding.set()
            release.wait(10)

    other = threading.Thread(target=writer)
    other.start()
    assert holding.wait(10)
    counted = threading.Thread(target=store.record_use, args=("w", 1))
    counted.start()
    counted.join(5)
    still_waiting = counted.is_alive()
    release.set()
    other.join(10)
    counted.join(10)
    assert not still_waiting
    assert stored_counts(keystore_dir, "w") == [(0, 0)]
    store.record_use("w", 1)
    assert stored_counts(keystore_dir, "w") == [(2, 0)]


def test_a_flush_whose_keystore_was_removed_meanwhile_says_so_and_recreates_nothing(
    provider: LocalKeyProvider, keystore_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process removes the keystore between the flush's check and its write."""
    provider.create_key("w", KeySpec(key_type="aes-256"))
    provider.wrap(ref("local://w"), DATA_KEY, CONTEXT)
    store = provider.keystore
    write = store._write

    def removed_first(*args: Any, **kwargs: Any) -> Any:
        shutil.rmtree(keystore_dir, ignore_errors=True)
        return write(*args, **kwargs)

    monkeypatch.setattr(store, "_write", removed_first)
    with pytest.raises(ProviderUnavailable) as refused:
        provider.flush_usage()
    assert str(refused.value) == (
        f"keystore file {keystore_dir / 'keystore.json'} disappeared before its usage "
        "counters were saved"
    )
    assert refused.value.provider == "local"
    assert not keystore_dir.exists()


def test_a_flush_with_nothing_to_write_restarts_the_schedule(
    make_provider: MakeProvider, keystore_dir: Path
) -> None:
    """Both the interval and the count of uses start again from an empty flush.

    Signatures, unlike wraps, write nothing else that would restart them.
    """
    ticker = Ticker()
    provider = make_provider(monotonic=ticker, usage_flush_operations=2)
    provider.create_key("s", KeySpec(key_type="ed25519"))
    ticker.now = 0.9
    provider.flush_usage()  # nothing counted yet
    ticker.now = 1.5
    provider.sign(ref("local://s"), b"abc")  # 0.6 s and 1 use since: not due
    assert stored_counts(keystore_dir, "s") == [(0, 0)]
    provider.sign(ref("local://s"), b"de")  # the second use: due
    assert stored_counts(keystore_dir, "s") == [(2, 5)]


def test_counts_of_a_removed_keystore_are_dropped_and_the_count_restarts(
    make_provider: MakeProvider, keystore_dir: Path, tmp_path: Path
) -> None:
    """A flush finds the keystore gone: its counts are dropped, and counting starts afresh
    once the keystore is back (restored from a backup)."""
    provider = make_provider(monotonic=Ticker(), usage_flush_operations=2)
    provider.create_key("s", KeySpec(key_type="ed25519"))
    provider.sign(ref("local://s"), b"abc")
    aside = tmp_path / "aside"
    keystore_dir.rename(aside)
    provider.flush_usage()  # nothing to count against: dropped, not raised
    aside.rename(keystore_dir)
    provider.sign(ref("local://s"), b"de")  # the first use since: not due
    assert stored_counts(keystore_dir, "s") == [(0, 0)]
    provider.sign(ref("local://s"), b"f")
    assert stored_counts(keystore_dir, "s") == [(2, 3)]


def test_a_version_at_the_minimum_is_still_needed_and_is_not_destroyed(
    provider: LocalKeyProvider, payments: list[Any], keystore_dir: Path
) -> None:
    """The minimum decryption version itself may still decrypt: only versions below it may go."""
    provider.set_min_decryption_version(ref("local://payments"), "2")
    before = (keystore_dir / "keystore.json").read_bytes()
    with pytest.raises(ConfigError) as refused:
        provider.destroy_version(ref("local://payments?version=2"), confirm=True)
    assert str(refused.value) == (
        "local://payments?version=2 is enabled and the minimum decryption version is 2, so it "
        "may still be needed: disable it first (`aureus keys disable "
        "'local://payments?version=2'`) or raise the minimum above it, make sure nothing fails "
        "without it, then destroy it"
    )
    assert (keystore_dir / "keystore.json").read_bytes() == before
    assert unwrap(provider, payments[1]) == DATA_KEY


def test_a_version_below_the_minimum_is_refused_by_the_local_provider_by_name(
    provider: LocalKeyProvider, payments: list[Any]
) -> None:
    provider.set_min_decryption_version(ref("local://payments"), "2")
    with pytest.raises(KeyDisabled) as refused:
        unwrap(provider, payments[0])
    assert refused.value.provider == "local"
    assert str(refused.value).startswith(
        "local://payments version 1 is below the minimum decryption version 2; lower the "
        "minimum with `aureus keys min-version local://payments 1`"
    )


def test_a_clock_without_a_time_zone_is_refused_in_words(tmp_path: Path) -> None:
    naive = LocalKeyProvider(tmp_path / "ks", clock=lambda: datetime(2026, 1, 1))
    with pytest.raises(ConfigError) as refused:
        naive.create_key("k", KeySpec(key_type="aes-256"))
    assert str(refused.value) == "the provider's clock must return timezone-aware datetimes"


def test_counts_a_write_carries_are_reported_until_it_lands_and_come_back_if_it_fails(
    make_provider: MakeProvider,
) -> None:
    """A rotation policy asks for a version's uses while a write may be carrying some.

    Messages and bytes are kept apart; counts taken by a write stay visible until it
    lands, return to the pending counts if it fails, and two overlapping writes each
    settle only what they took.
    """
    provider = make_provider(monotonic=Ticker(), usage_flush_operations=1000)
    provider.create_key("s", KeySpec(key_type="ed25519"))
    keystore = provider._keystore
    keystore.record_use("s", 1, messages=3, byte_count=700)
    first = keystore._take_usage()  # a write is carrying (3, 700)
    keystore.record_use("s", 1, messages=2, byte_count=50)
    assert keystore.unflushed_use("s", 1) == (5, 750)
    keystore._settle_usage(first, written=False)  # it failed: the counts are pending again
    assert keystore.unflushed_use("s", 1) == (5, 750)
    first = keystore._take_usage()  # (5, 750)
    keystore.record_use("s", 1, messages=1, byte_count=9)
    second = keystore._take_usage()  # (1, 9), overlapping the first
    assert keystore.unflushed_use("s", 1) == (6, 759)
    keystore._settle_usage(first, written=True)
    assert keystore.unflushed_use("s", 1) == (1, 9)
    keystore._settle_usage(second, written=True)
    assert keystore.unflushed_use("s", 1) == (0, 0)
    assert keystore.unflushed_use("s", 2) == (0, 0)


def test_the_destroy_confirmation_names_the_command_line_flag_under_the_cli(
    provider: LocalKeyProvider, payments: list[Any]
) -> None:
    from aureus_core.errors import speaking_to_cli

    old = ref("local://payments?version=1")
    provider.set_version_state(old, KeyState.DISABLED)
    with speaking_to_cli(), pytest.raises(ConfigError) as unconfirmed:
        provider.destroy_version(old)
    assert str(unconfirmed.value).endswith("verified again; pass --yes")
