"""Every change to a message must fail as one opaque DecryptionError."""

import io
import struct

import pytest

from aureus_core import DecryptionError
from aureus_core.envelope.frames import regular_frame_size


@pytest.fixture(params=[False, True], ids=["unsigned", "signed"])
def message(request, stack):
    return stack.encrypt(
        b"attack at dawn!" * 5, context={"k": "v"}, signed=request.param, frame_length=32
    )


def _fails(stack, data):
    with pytest.raises(DecryptionError):
        stack.decrypt(data)
    with pytest.raises(DecryptionError):
        stack.decrypt_stream(io.BytesIO(data), io.BytesIO())


def test_every_single_byte_change_fails(stack, message):
    for index in range(len(message)):
        for flip in (0x01, 0x80):
            changed = bytearray(message)
            changed[index] ^= flip
            with pytest.raises(DecryptionError):
                stack.decrypt(bytes(changed))


def test_every_truncation_fails(stack, message):
    for end in range(len(message)):
        _fails(stack, message[:end])


def test_trailing_bytes_fail(stack, message):
    _fails(stack, message + b"\x00")


def test_frame_reordering_fails(stack):
    message = stack.encrypt(b"A" * 32 + b"B" * 32 + b"C" * 10, frame_length=32)
    info_length = len(message) - 2 * regular_frame_size(32) - (8 + 12 + 4 + 10 + 16)
    first = message[info_length : info_length + regular_frame_size(32)]
    second = message[
        info_length + regular_frame_size(32) : info_length + 2 * regular_frame_size(32)
    ]
    swapped = (
        message[:info_length] + second + first + message[info_length + 2 * regular_frame_size(32) :]
    )
    assert len(swapped) == len(message)
    _fails(stack, swapped)
    dropped = message[:info_length] + second + message[info_length + 2 * regular_frame_size(32) :]
    _fails(stack, dropped)


def test_swapped_header_fails(stack):
    one = stack.encrypt(b"x" * 100, frame_length=32)
    two = stack.encrypt(b"y" * 100, frame_length=32)
    header_length = len(one) - (3 * regular_frame_size(32) + 8 + 12 + 4 + 4 + 16)
    spliced = two[:header_length] + one[header_length:]
    _fails(stack, spliced)


def test_too_many_encrypted_data_keys(stack, tmp_path):
    from aureus_core import KeyStack

    message = stack.encrypt(b"x", keys=["local://alpha", "local://beta", "local://gamma"])
    config = {
        "stack": {"max_encrypted_data_keys": 2},
        "providers": {"local": {"keystore": str(tmp_path / "ks")}},
    }
    with KeyStack.from_dict(config) as limited, pytest.raises(DecryptionError, match="limit is 2"):
        limited.decrypt(message)


def test_frame_length_over_the_limit(stack, tmp_path):
    from aureus_core import KeyStack

    message = stack.encrypt(b"x", frame_length=4096)
    config = {
        "stack": {"max_frame_length": 1024},
        "providers": {"local": {"keystore": str(tmp_path / "ks")}},
    }
    with KeyStack.from_dict(config) as limited, pytest.raises(DecryptionError):
        limited.decrypt(message)


def test_final_frame_longer_than_frame_length(stack):
    message = bytearray(stack.encrypt(b"z" * 10, frame_length=16))
    # The final frame's content-length field sits 4 + 4 + 12 bytes into it.
    final_start = len(message) - (8 + 12 + 4 + 10 + 16)
    struct.pack_into(">I", message, final_start + 20, 17)
    _fails(stack, bytes(message))


def test_encrypt_refuses_more_keys_than_a_reader_accepts(tmp_path):
    """A message this stack could not decrypt is never written, and no key is asked to wrap."""
    from aureus_core import ConfigError, KeyStack
    from aureus_core.testing.counting import CountingProvider

    config = {
        "stack": {"max_encrypted_data_keys": 2},
        "providers": {"local": {"keystore": str(tmp_path / "ks")}},
    }
    with KeyStack.from_dict(config) as limited:
        for name in ("a", "b", "c"):
            limited.create_key(name, "aes-256")
        counting = CountingProvider(limited.provider("local"))
        with KeyStack(config=limited.config, providers={"local": counting}) as stack:
            keys = ["local://a", "local://b", "local://c"]
            with pytest.raises(ConfigError, match=r"3 wrapping keys.*at most 2.*max_encrypted"):
                stack.encrypt(b"x", keys=keys)
            assert counting.counts["wrap"] == 0
            assert counting.counts["generate_data_key"] == 0
            assert stack.decrypt(stack.encrypt(b"x", keys=keys[:2])) == b"x"
