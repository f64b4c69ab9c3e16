"""Rewrap: new recipients, a fresh data key and message ID, every check decrypt makes."""

import hashlib
import io
import os
import tracemalloc
from collections import Counter
from typing import ClassVar

import aws_encryption_sdk
import pytest
from aws_encryption_sdk.identifiers import (
    Algorithm,
    CommitmentPolicy,
    EncryptionKeyType,
    WrappingAlgorithm,
)
from aws_encryption_sdk.internal.crypto.wrapping_keys import WrappingKey
from aws_encryption_sdk.key_providers.raw import RawMasterKey
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from aureus_core import ConfigError, DecryptionError, KeyStack
from aureus_core.envelope import message as message_module
from aureus_core.envelope.frames import final_frame_size, regular_frame_size
from aureus_core.envelope.message import PUBLIC_KEY_CONTEXT_KEY, MessageReader
from aureus_core.errors import KeyNotFound
from aureus_core.testing import forge

FRAME = 4096
SIZES = [0, 1, FRAME - 1, FRAME, 3 * FRAME, 3 * FRAME + 17]
CONTEXT = {"tenant": "acme", "purpose": "rewrap"}
ALPHA, BETA, GAMMA = "local://alpha", "local://beta", "local://gamma"


def split(message: bytes) -> tuple[bytes, bytes, bytes]:
    """(header with its tag, body frames, footer), walking the frames independently."""
    header = MessageReader(message).header
    start = len(header.serialize()) + 16
    position = start
    while message[position : position + 4] != b"\xff\xff\xff\xff":
        position += 4 + 12 + header.frame_length + 16
    length = int.from_bytes(message[position + 20 : position + 24], "big")
    end = position + final_frame_size(length)
    return message[:start], message[start:end], message[end:]


def rewrap(stack, message, mode, **kwargs):
    if mode == "one-shot":
        return stack.rewrap(message, **kwargs)
    out = io.BytesIO()
    stack.rewrap_stream(io.BytesIO(message), out, **kwargs)
    return out.getvalue()


MODES = ["one-shot", "stream"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("signed", [False, True], ids=["0x0478", "0x0578"])
@pytest.mark.parametrize("size", SIZES)
def test_round_trip_keeps_body_and_moves_recipients(stack, mode, signed, size):
    plaintext = os.urandom(size)
    old = stack.encrypt(plaintext, context=CONTEXT, signed=signed, frame_length=FRAME)
    new = rewrap(stack, old, mode, to_keys=[BETA], context={"tenant": "acme"})

    assert stack.decrypt(new, keys=[BETA], context=CONTEXT) == plaintext
    with pytest.raises(DecryptionError):
        stack.decrypt(new, keys=[ALPHA])
    assert [r.key for r in stack.inspect(new).recipients] == ["beta:1"]

    _, old_body, old_footer = split(old)
    _, new_body, new_footer = split(new)
    before, after = MessageReader(old).header, MessageReader(new).header
    assert after.suite == before.suite
    assert after.frame_length == before.frame_length
    assert after.message_id != before.message_id
    assert after.suite_data != before.suite_data  # a new commitment: a new data key
    assert len(new_body) == len(old_body)
    assert new_body != old_body
    if signed:
        assert after.context[PUBLIC_KEY_CONTEXT_KEY] != before.context[PUBLIC_KEY_CONTEXT_KEY]
        assert new_footer
        assert new_footer != old_footer
    else:
        assert after.context == before.context
        assert new_footer == old_footer == b""


@pytest.mark.parametrize("signed", [False, True], ids=["0x0478", "0x0578"])
def test_no_two_headers_share_a_derived_key_and_iv(stack, raw_keys, signed):
    """The original and its rewrapped copy never carry GCM tags under one key and nonce.

    Version-2 header tags use the derived key with a fixed all-zero IV, and
    frames use IVs 1, 2, ...: two messages whose derived keys are equal would
    give an observer of both two tags under one (key, nonce) over different
    data, from which the GHASH key, and with it forged frames, follow.  The
    derived keys are recomputed here from the unwrapped data keys, outside
    Aureus.
    """
    old = stack.encrypt(b"same plaintext", context=CONTEXT, signed=signed, keys=[ALPHA])
    new = stack.rewrap(old, to_keys=[ALPHA, BETA])

    def derived(message: bytes, name: str) -> bytes:
        header, _ = forge.read_header(message)
        context = forge.serialize_context(dict(header.context))
        edk = next(
            e for e in header.encrypted_data_keys if e.provider_info.startswith(name.encode())
        )
        data_key = forge.unwrap_raw_aes(edk, raw_keys[name], context)
        return forge.derive(data_key, header.message_id, header.suite.suite_id)[0]

    assert derived(old, "alpha") != derived(new, "alpha")
    assert derived(new, "alpha") == derived(new, "beta")  # control: one message, one key
    # The rewrapped copy's header and body authenticate under its own derived key only.
    header_end = forge.read_header(new)[1]
    with pytest.raises(InvalidTag):
        AESGCM(derived(old, "alpha")).decrypt(
            bytes(12), new[header_end : header_end + 16], new[:header_end]
        )


def test_stream_returns_plaintext_size(stack):
    old = stack.encrypt(b"x" * 10_000, frame_length=FRAME)
    out = io.BytesIO()
    count = stack.rewrap_stream(io.BytesIO(old), out, to_keys=[BETA, GAMMA])
    assert count == 10_000
    for key in (BETA, GAMMA):
        assert stack.decrypt(out.getvalue(), keys=[key]) == b"x" * 10_000


def test_old_key_kept_when_listed(stack):
    old = stack.encrypt(b"kept", signed=True)
    new = stack.rewrap(old, to_keys=[ALPHA, GAMMA])
    assert stack.decrypt(new, keys=[ALPHA]) == stack.decrypt(new, keys=[GAMMA]) == b"kept"
    assert [r.key for r in stack.inspect(new).recipients] == ["alpha:1", "gamma:1"]


# -- the official SDK ------------------------------------------------------------


def sdk_key(material: bytes, name: str) -> RawMasterKey:
    return RawMasterKey(
        provider_id="aureus-local",
        key_id=f"{name}:1".encode(),
        wrapping_key=WrappingKey(
            wrapping_algorithm=WrappingAlgorithm.AES_256_GCM_IV12_TAG16_NO_PADDING,
            wrapping_key=material,
            wrapping_key_type=EncryptionKeyType.SYMMETRIC,
        ),
    )


def sdk_client():
    return aws_encryption_sdk.EncryptionSDKClient(
        commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
    )


@pytest.mark.parametrize("signed", [False, True], ids=["0x0478", "0x0578"])
@pytest.mark.parametrize("size", [0, 3 * FRAME, 3 * FRAME + 17])
def test_sdk_decrypts_rewrapped_message(stack, raw_keys, signed, size):
    plaintext = os.urandom(size)
    old = stack.encrypt(plaintext, context=CONTEXT, signed=signed, frame_length=FRAME)
    new = stack.rewrap(old, to_keys=[BETA])
    decrypted, header = sdk_client().decrypt(
        source=new, key_provider=sdk_key(raw_keys["beta"], "beta")
    )
    assert decrypted == plaintext
    assert {k: v for k, v in header.encryption_context.items() if k in CONTEXT} == CONTEXT
    refused = False
    try:
        sdk_client().decrypt(source=new, key_provider=sdk_key(raw_keys["alpha"], "alpha"))
    except Exception:  # the SDK's own error types
        refused = True
    assert refused, "the SDK decrypted the rewrapped message with the old key"


@pytest.mark.parametrize("signed", [False, True], ids=["0x0478", "0x0578"])
def test_sdk_written_message_rewraps_for_the_sdk(stack, raw_keys, signed):
    plaintext = os.urandom(2 * FRAME)  # an exact multiple: the SDK ends with an empty frame
    algorithm = (
        Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384
        if signed
        else Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY
    )
    old, _ = sdk_client().encrypt(
        source=plaintext,
        key_provider=sdk_key(raw_keys["beta"], "beta"),
        encryption_context=CONTEXT,
        algorithm=algorithm,
        frame_length=FRAME,
    )
    new = stack.rewrap(old, to_keys=[GAMMA], context=CONTEXT)
    decrypted, _ = sdk_client().decrypt(
        source=new, key_provider=sdk_key(raw_keys["gamma"], "gamma")
    )
    assert decrypted == plaintext


# -- input that does not check ---------------------------------------------------


@pytest.fixture(params=[False, True], ids=["unsigned", "signed"])
def small(request, stack):
    return stack.encrypt(
        b"attack at dawn!" * 5, context={"k": "v"}, signed=request.param, frame_length=32
    )


def _rewrap_fails(stack, data):
    """Both forms raise DecryptionError; whatever the stream wrote never decrypts."""
    with pytest.raises(DecryptionError):
        stack.rewrap(data, to_keys=[BETA])
    out = io.BytesIO()
    with pytest.raises(DecryptionError):
        stack.rewrap_stream(io.BytesIO(data), out, to_keys=[BETA])
    with pytest.raises(DecryptionError):
        stack.decrypt(out.getvalue())


def test_every_byte_change_fails(stack, small):
    for index in range(len(small)):
        changed = bytearray(small)
        changed[index] ^= 0x01
        _rewrap_fails(stack, bytes(changed))


def test_verify_body_false_is_deprecated_and_still_authenticates(stack, small):
    changed = bytearray(small)
    changed[-20] ^= 0x01  # inside the final frame (or the signature)
    with (
        pytest.warns(DeprecationWarning, match="verify_body=False has no effect"),
        pytest.raises(DecryptionError),
    ):
        stack.rewrap(bytes(changed), to_keys=[BETA], verify_body=False)


def test_every_truncation_and_trailing_bytes_fail(stack, small):
    for end in range(len(small)):
        _rewrap_fails(stack, small[:end])
    _rewrap_fails(stack, small + b"\x00")


def test_signed_stream_writes_its_end_only_after_the_old_signature_verifies(stack):
    old = stack.encrypt(b"s" * 100, signed=True, frame_length=32)
    changed = old[:-1] + bytes([old[-1] ^ 0x01])  # a signature byte
    out = io.BytesIO()
    with pytest.raises(DecryptionError):
        stack.rewrap_stream(io.BytesIO(changed), out, to_keys=[BETA])
    written = out.getvalue()
    body = written[len(MessageReader(written).header.serialize()) + 16 :]
    # Only regular frames: the final frame and the footer wait for the old signature.
    assert len(body) % regular_frame_size(32) == 0
    assert b"\xff\xff\xff\xff" not in body[:: regular_frame_size(32)]
    with pytest.raises(DecryptionError):
        stack.decrypt(written)


def test_changed_frame_of_signed_message_fails(stack):
    old = stack.encrypt(b"s" * 100, signed=True, frame_length=32)
    header, _, _ = split(old)
    changed = bytearray(old)
    changed[len(header) + 20] ^= 0x01  # ciphertext of the first frame
    _rewrap_fails(stack, bytes(changed))


def test_required_context_and_allowed_keys(stack, tmp_path):
    old = stack.encrypt(b"ctx", context=CONTEXT)
    with pytest.raises(DecryptionError, match="context does not match"):
        stack.rewrap(old, to_keys=[BETA], context={"tenant": "other"})
    with pytest.raises(DecryptionError):
        stack.rewrap(old, to_keys=[BETA], keys=[GAMMA])
    assert stack.decrypt(stack.rewrap(old, to_keys=[BETA], keys=[ALPHA]), keys=[BETA]) == b"ctx"
    config = {
        "stack": {"decrypt_allow": ["local://beta"]},
        "providers": {"local": {"keystore": str(tmp_path / "ks")}},
    }
    with KeyStack.from_dict(config) as restricted, pytest.raises(DecryptionError):
        restricted.rewrap(old, to_keys=[BETA])


def test_rewrap_after_rotation_moves_to_the_new_version(stack):
    old = stack.encrypt(b"rotate me", keys=[ALPHA])
    assert [r.key for r in stack.inspect(old).recipients] == ["alpha:1"]
    stack.rotate_key(ALPHA)
    new = stack.rewrap(old, to_keys=[ALPHA])
    assert [r.key for r in stack.inspect(new).recipients] == ["alpha:2"]
    assert stack.decrypt(new, keys=["local://alpha?version=2"]) == b"rotate me"
    with pytest.raises(DecryptionError):
        stack.decrypt(new, keys=["local://alpha?version=1"])


def test_bad_recipients_are_refused_before_any_provider_call(stack):
    old = stack.encrypt(b"m")
    for to_keys, match in [
        ([], "at least one"),
        ([BETA, BETA], "twice"),
        (BETA, "list of key URIs"),
        ([f"local://k{i}" for i in range(17)], "at most 16"),
    ]:
        with pytest.raises(ConfigError, match=match):
            stack.rewrap(old, to_keys=to_keys)
    with pytest.raises(KeyNotFound):
        stack.rewrap(old, to_keys=["local://missing"])


def test_format_version_1_messages_come_out_committing(stack, raw_keys, tmp_path):
    legacy, _ = aws_encryption_sdk.EncryptionSDKClient(
        commitment_policy=CommitmentPolicy.FORBID_ENCRYPT_ALLOW_DECRYPT
    ).encrypt(
        source=b"legacy",
        key_provider=sdk_key(raw_keys["alpha"], "alpha"),
        algorithm=Algorithm.AES_256_GCM_IV12_TAG16_HKDF_SHA256,
    )
    with pytest.raises(DecryptionError, match="non-committing"):
        stack.rewrap(legacy, to_keys=[BETA])
    config = {
        "stack": {"commitment_policy": "require-encrypt-allow-decrypt"},
        "providers": {"local": {"keystore": str(tmp_path / "ks")}},
    }
    with KeyStack.from_dict(config) as opted_in:
        new = opted_in.rewrap(legacy, to_keys=[BETA])
        assert opted_in.inspect(new).suite_id == 0x0478
    assert stack.decrypt(new, keys=[BETA]) == b"legacy"  # the default policy reads it now


def test_audit_event(stack):
    class Sink:
        def __init__(self):
            self.events = []

        def emit(self, event):
            self.events.append(event)

        def close(self):
            pass

    sink = Sink()
    stack.add_audit_sink(sink)
    old = stack.encrypt(b"audited", context=CONTEXT, signed=True)
    stack.rewrap(old, to_keys=[BETA, GAMMA])
    with pytest.raises(DecryptionError):
        stack.rewrap(old[:-1], to_keys=[BETA])
    ok, failed = [e for e in sink.events if e.operation == "rewrap" and e.outcome != "pending"]
    assert (ok.outcome, failed.outcome) == ("ok", "DecryptionError")
    assert (ok.key_uri, ok.key_version) == (ALPHA, "1")  # the key that unwrapped
    details = dict(ok.details)
    assert details["recipients"] == "local://beta?version=1,local://gamma?version=1"
    assert details["signed"] == "true"
    assert ok.byte_count == len(b"audited")
    assert set(ok.context_keys) == set(CONTEXT)
    assert "audited" not in repr(sink.events)


# -- one pass each way, constant memory ------------------------------------------


class CountingAESGCM:
    """AESGCM, counting calls per method (the message layer's only cipher)."""

    calls: ClassVar[Counter[str]] = Counter()

    def __init__(self, key):
        self._inner = AESGCM(key)

    def __getattr__(self, name):
        method = getattr(self._inner, name)

        def counted(*args):
            CountingAESGCM.calls[name] += 1
            return method(*args)

        return counted


class HashingSink(io.RawIOBase):
    def __init__(self):
        self.digest = hashlib.sha256()
        self.size = 0

    def writable(self):
        return True

    def write(self, data):
        self.digest.update(data)
        self.size += len(data)
        return len(data)


def test_large_stream_is_one_aes_pass_each_way_in_constant_memory(stack, tmp_path, monkeypatch):
    size, chunk = 64 * 1024 * 1024, 1024 * 1024
    plain, sealed, rewrapped = tmp_path / "plain", tmp_path / "sealed", tmp_path / "rewrapped"
    expected = hashlib.sha256()
    with plain.open("wb") as out:
        for _ in range(size // chunk):
            data = os.urandom(chunk)
            expected.update(data)
            out.write(data)
    with plain.open("rb") as src, sealed.open("wb") as dst:
        stack.encrypt_stream(src, dst)  # default 64 KiB frames: 1024 frames
    frames = size // (64 * 1024)

    monkeypatch.setattr(message_module, "AESGCM", CountingAESGCM)
    CountingAESGCM.calls.clear()
    tracemalloc.start()
    try:
        with sealed.open("rb") as src, rewrapped.open("wb") as dst:
            count = stack.rewrap_stream(src, dst, to_keys=[GAMMA])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    calls = CountingAESGCM.calls.copy()
    assert count == size
    assert rewrapped.stat().st_size == sealed.stat().st_size  # key names of the same length
    assert calls["decrypt"] == 1 + frames  # the input's header tag, then every frame once
    assert calls["encrypt"] == 1  # the output's header tag
    assert calls["encrypt_into"] == frames  # every frame once
    assert calls["decrypt_into"] == 0
    assert peak < 2 * 1024 * 1024, peak  # a few frames, not the message

    sink = HashingSink()
    with rewrapped.open("rb") as src:
        stack.decrypt_stream(src, sink, keys=[GAMMA])
    assert (sink.size, sink.digest.digest()) == (size, expected.digest())
