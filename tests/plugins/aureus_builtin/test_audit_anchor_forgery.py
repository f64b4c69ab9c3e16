"""An anchor entry past the log's end must be the log's own signed record to claim a rollback."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from aureus_builtin.jsonl_sink import JsonlAuditSink
from aureus_core.audit import derive_key
from aureus_core.audit.chain import chain_files, head_path, sig_value, verify_chain
from aureus_core.interfaces import KeyProvider
from aureus_core.keyref import KeyRef
from aureus_core.keys import KeySpec, KeyType
from aureus_core.testing import make_event
from aureus_local import LocalKeyProvider

MAC_KEY = "local://audit-mac"
SIGNER = "local://audit-signer"


@pytest.fixture
def keys(tmp_path: Path) -> Iterator[LocalKeyProvider]:
    provider = LocalKeyProvider(tmp_path / "ks")
    provider.create_key("audit-mac", KeySpec(key_type=KeyType.AES_256))
    provider.create_key("audit-signer", KeySpec(key_type=KeyType.ED25519))
    yield provider
    provider.close()


def _verify(path: Path, provider: KeyProvider, anchor: Path) -> Any:
    def check(sig: Mapping[str, Any], message: bytes) -> bool:
        ref = KeyRef.parse(sig["key"]).with_version(sig["version"])
        return provider.verify(ref, message, sig_value(sig))

    return verify_chain(
        chain_files(path),
        head=head_path(path),
        anchor=anchor,
        mac_key=MAC_KEY,
        mac=lambda uri, label: derive_key(lambda _s: provider, KeyRef.parse(uri), label)[0],
        check_signature=check,
    )


def _anchored_log(tmp_path: Path, provider: KeyProvider) -> tuple[Path, Path]:
    path = tmp_path / "logs" / "audit.jsonl"
    anchor = tmp_path / "elsewhere" / "audit.anchor"
    sink = JsonlAuditSink(
        path,
        hmac_key=MAC_KEY,
        checkpoint_key=SIGNER,
        checkpoint_every=2,
        anchor=anchor,
        providers=lambda _scheme: provider,
    )
    for number in range(5):
        sink.emit(make_event(number))
    sink.close()
    return path, anchor


def test_a_forged_anchor_entry_past_the_end_is_called_a_forgery_not_a_rollback(
    tmp_path: Path, keys: LocalKeyProvider
) -> None:
    """Someone who can write the anchor appends a copy of its last entry with a later seq."""
    path, anchor = _anchored_log(tmp_path, keys)
    assert _verify(path, keys, anchor).ok
    last = json.loads(anchor.read_text().splitlines()[-1])
    forged = dict(last, record=dict(last["record"], seq=last["record"]["seq"] + 40))
    with anchor.open("a") as out:
        out.write(json.dumps(forged) + "\n")
    verdict = _verify(path, keys, anchor)
    assert not verdict.ok
    assert "its signature does not verify: the anchor was edited" in verdict.message
    assert not verdict.message.startswith("the log was rolled back")


def test_a_genuine_entry_past_the_end_still_means_a_rollback(
    tmp_path: Path, keys: LocalKeyProvider
) -> None:
    """The log cut back behind its last anchored checkpoint: the anchor's own record says so."""
    path, anchor = _anchored_log(tmp_path, keys)
    records = path.read_text().splitlines(keepends=True)
    signed = [i for i, line in enumerate(records) if '"sig"' in line]
    path.write_text("".join(records[: signed[-2] + 1]))  # ends at the checkpoint before
    head_path(path).unlink()
    verdict = verify_chain(
        chain_files(path),
        no_head=True,
        anchor=anchor,
        mac_key=MAC_KEY,
        mac=lambda uri, label: derive_key(lambda _s: keys, KeyRef.parse(uri), label)[0],
        check_signature=lambda sig, message: keys.verify(
            KeyRef.parse(sig["key"]).with_version(sig["version"]), message, sig_value(sig)
        ),
    )
    assert not verdict.ok
    assert verdict.message.startswith("the log was rolled back")
