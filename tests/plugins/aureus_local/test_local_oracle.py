"""Unwrap and verify authenticate first: a forgery learns nothing about a version's state.

Before, ``unwrap`` checked the version's lifecycle before the wrapped key, so
anyone who could submit a message could tell an enabled version from a
disabled, retired or destroyed one with a wrapped key made of random bytes.
"""

from __future__ import annotations

import functools
import os
import struct
from collections.abc import Callable
from typing import Any

import pytest

from aureus_core.context import EncryptionContext
from aureus_core.datakey import EncryptedDataKey
from aureus_core.errors import DecryptionError, KeyDisabled
from aureus_core.keyref import KeyRef
from aureus_core.keys import KeySpec, KeyState
from aureus_local import LocalKeyProvider

MakeProvider = Callable[..., LocalKeyProvider]
CONTEXT = EncryptionContext(app="oracle")
DATA_KEY = bytes(range(32))
STATES = ["enabled", "disabled", "below-minimum", "destroyed"]


def ref(uri: str) -> KeyRef:
    return KeyRef.parse(uri)


def forged(name: str, version: int) -> EncryptedDataKey:
    """A wrapped key in the exact local layout, naming ``name:version``, of random bytes."""
    info = f"{name}:{version}".encode() + struct.pack(">II", 128, 12) + os.urandom(12)
    return EncryptedDataKey(
        provider_id="aureus-local", provider_info=info, ciphertext=os.urandom(32 + 16)
    )


def put_version_1_in(provider: LocalKeyProvider, state: str, key: str) -> None:
    pinned = ref(f"local://{key}?version=1")
    if state in ("disabled", "destroyed"):
        provider.set_version_state(pinned, KeyState.DISABLED)
    if state == "below-minimum":
        provider.set_min_decryption_version(ref(f"local://{key}"), "2")
    if state == "destroyed":
        provider.destroy_version(pinned, confirm=True)


def failure(call: Callable[[], Any]) -> tuple[type[BaseException], str]:
    with pytest.raises(Exception) as caught:  # noqa: PT011 (the type is what is compared)
        call()
    return type(caught.value), str(caught.value)


@pytest.mark.parametrize("state", STATES)
def test_a_forged_wrapped_key_fails_the_same_whatever_the_state(
    local_provider: LocalKeyProvider, state: str
) -> None:
    local_provider.create_key("payments", KeySpec(key_type="aes-256"))
    authentic = local_provider.wrap(ref("local://payments"), DATA_KEY, CONTEXT)
    local_provider.rotate_key(ref("local://payments"))
    put_version_1_in(local_provider, state, "payments")

    tampered = bytearray(authentic.encrypted.ciphertext)
    tampered[0] ^= 1
    flipped = EncryptedDataKey(
        provider_id=authentic.encrypted.provider_id,
        provider_info=authentic.encrypted.provider_info,
        ciphertext=bytes(tampered),
    )
    expected = (DecryptionError, "the message could not be decrypted and authenticated")
    for hostile in (forged("payments", 1), flipped):
        unwrap = functools.partial(local_provider.unwrap, ref("local://payments"), hostile, CONTEXT)
        assert failure(unwrap) == expected
    # The same answer as for a forgery against the enabled current version.
    assert (
        failure(
            lambda: local_provider.unwrap(ref("local://payments"), forged("payments", 2), CONTEXT)
        )
        == expected
    )

    # Only an authentic wrapped key learns why it is refused.
    if state == "destroyed":
        assert (
            failure(lambda: local_provider.unwrap(authentic.key, authentic.encrypted, CONTEXT))
            == expected
        )
    elif state == "enabled":
        assert local_provider.unwrap(authentic.key, authentic.encrypted, CONTEXT) == DATA_KEY
    else:
        with pytest.raises(KeyDisabled, match="local://payments version 1 is"):
            local_provider.unwrap(authentic.key, authentic.encrypted, CONTEXT)


@pytest.mark.parametrize("key_type", ["ed25519", "ecdsa-p256"])
@pytest.mark.parametrize("state", STATES)
def test_a_forged_signature_is_false_whatever_the_state(
    local_provider: LocalKeyProvider, state: str, key_type: str
) -> None:
    local_provider.create_key("signer", KeySpec(key_type=key_type))
    authentic = local_provider.sign(ref("local://signer"), b"release").value
    other = local_provider.create_key("other", KeySpec(key_type=key_type))
    forgery = local_provider.sign(other.ref, b"release").value  # well formed, wrong key
    local_provider.rotate_key(ref("local://signer"))
    put_version_1_in(local_provider, state, "signer")

    pinned = ref("local://signer?version=1")
    assert local_provider.verify(pinned, b"release", forgery) is False
    assert local_provider.verify(pinned, b"tampered", authentic) is False
    if state == "destroyed":
        assert local_provider.verify(pinned, b"release", authentic) is False
    elif state == "enabled":
        assert local_provider.verify(pinned, b"release", authentic) is True
    else:
        with pytest.raises(KeyDisabled, match="local://signer version 1 is"):
            local_provider.verify(pinned, b"release", authentic)
