"""What a version pin on a ``gcp-kms`` decrypt key does, and what it cannot do.

Cloud KMS ``Decrypt`` takes the key's name and picks the version from the
ciphertext; its answer does not say which version decrypted.  So the provider
can compare a pin only with the version the encrypted data key *names* (its
unauthenticated provider info).  These tests pin that behaviour, and the
remedy docs/gcp.md gives: disable the old version in Cloud KMS.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest

from aureus_core import KeyStack
from aureus_core.context import EncryptionContext
from aureus_core.datakey import EncryptedDataKey
from aureus_core.errors import DecryptionError, KeyDisabled
from aureus_core.keys import KeySpec, KeyState, KeyType
from aureus_core.testing.audit_capture import capture_audit
from aureus_core.testing.forge import unsigned_message

PAYLOAD = b"wrapped by version 1"


def _relabelled(edk: EncryptedDataKey, old: str, new: str) -> EncryptedDataKey:
    """``edk`` with the version its provider info names changed (the writer controls it)."""
    return EncryptedDataKey(
        provider_id=edk.provider_id,
        provider_info=edk.provider_info.replace(
            f"/cryptoKeyVersions/{old}".encode(), f"/cryptoKeyVersions/{new}".encode()
        ),
        ciphertext=edk.ciphertext,
    )


@pytest.fixture
def rotated(gcp_kms: Any) -> Any:
    """A provider, a key rotated once, and a data key wrapped by its version 1."""
    ring = f"ring-{uuid.uuid4().hex[:10]}"
    provider = gcp_kms.provider(project="aureus-tests", location="global", key_ring=ring)
    key = provider.create_key("pinned", KeySpec(key_type=KeyType.AES_256)).ref
    data_key = os.urandom(32)
    old = provider.wrap(key, data_key, EncryptionContext())
    assert old.key.version == "1"
    provider.rotate_key(key)  # version 2 is the primary now
    yield provider, key, data_key, old
    provider.close()


def test_a_pin_refuses_an_edk_naming_another_version(rotated: Any) -> None:
    provider, key, _, old = rotated
    with pytest.raises(DecryptionError):
        provider.unwrap(key.with_version("2"), old.encrypted, EncryptionContext())


def test_a_pin_cannot_tell_a_relabelled_edk(rotated: Any) -> None:
    """The documented limit: version 1's ciphertext relabelled as version 2 passes a pin on 2."""
    provider, key, data_key, old = rotated
    relabelled = _relabelled(old.encrypted, "1", "2")
    pinned = key.with_version("2")
    assert provider.owner_of(relabelled) == pinned
    assert bytes(provider.unwrap(pinned, relabelled, EncryptionContext())) == data_key
    message = unsigned_message(
        data_key=data_key,
        message_id=os.urandom(32),
        context=b"",
        edks=[relabelled],
        plaintext=PAYLOAD,
    )
    with KeyStack(providers={"gcp-kms": provider}) as stack, capture_audit() as events:
        assert stack.decrypt(message, keys=[pinned]) == PAYLOAD
    # ... and the audit event records the version the EDK claims, not the one that decrypted.
    outcome = [e for e in events if e.get("operation") == "decrypt" and e.get("outcome") == "ok"]
    assert [e.get("key_version") for e in outcome] == ["2"]


def test_disabling_the_old_version_is_what_stops_it(rotated: Any) -> None:
    """The remedy: Cloud KMS refuses a disabled version's ciphertext, whatever the EDK says."""
    provider, key, _, old = rotated
    provider.set_version_state(key.with_version("1"), KeyState.DISABLED)
    relabelled = _relabelled(old.encrypted, "1", "2")
    with pytest.raises(KeyDisabled):
        provider.unwrap(key.with_version("2"), relabelled, EncryptionContext())
