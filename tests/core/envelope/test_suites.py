"""Every algorithm suite, framed and non-framed, through the hazardous layer and the stack."""

from __future__ import annotations

import io
import json
import os
import struct
from collections.abc import Iterator

import aws_encryption_sdk
import pytest
from aws_encryption_sdk.identifiers import Algorithm, EncryptionKeyType, WrappingAlgorithm
from aws_encryption_sdk.identifiers import CommitmentPolicy as SdkPolicy
from aws_encryption_sdk.internal.crypto.wrapping_keys import WrappingKey
from aws_encryption_sdk.key_providers.raw import RawMasterKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from aureus_core import ConfigError, DecryptionError, KeyStack, NotAMessage
from aureus_core.context import EncryptionContext
from aureus_core.datakey import EncryptedDataKey
from aureus_core.envelope.header import (
    FRAMED_CONTENT,
    NON_FRAMED_CONTENT,
    Limits,
    parse_header,
)
from aureus_core.envelope.message import (
    EncryptionMaterials,
    MessageReader,
    MessageWriter,
    encrypt_bytes,
    new_signing_key,
    signed_context,
)
from aureus_core.envelope.reader import Reader
from aureus_core.envelope.suites import SUITES, AlgorithmSuite, CommitmentPolicy


def sdk_key(material: bytes, name: str, version: int = 1) -> RawMasterKey:
    """The official SDK's raw AES key that the local keystore's ``name`` version ``version`` is."""
    return RawMasterKey(
        provider_id="aureus-local",
        key_id=f"{name}:{version}".encode(),
        wrapping_key=WrappingKey(
            wrapping_algorithm=WrappingAlgorithm.AES_256_GCM_IV12_TAG16_NO_PADDING,
            wrapping_key=material,
            wrapping_key_type=EncryptionKeyType.SYMMETRIC,
        ),
    )


ALLOW = CommitmentPolicy.FORBID_ENCRYPT_ALLOW_DECRYPT
SUITE_IDS = sorted(SUITES)
EXPECTED = {
    # suite: (format version, data key bytes, KDF, curve, committing)
    0x0014: (1, 16, None, None, False),
    0x0046: (1, 24, None, None, False),
    0x0078: (1, 32, None, None, False),
    0x0114: (1, 16, "sha256", None, False),
    0x0146: (1, 24, "sha256", None, False),
    0x0178: (1, 32, "sha256", None, False),
    0x0214: (1, 16, "sha256", "secp256r1", False),
    0x0346: (1, 24, "sha384", "secp384r1", False),
    0x0378: (1, 32, "sha384", "secp384r1", False),
    0x0478: (2, 32, "sha512", None, True),
    0x0578: (2, 32, "sha512", "secp384r1", True),
}


def suite_id_name(suite_id: int) -> str:
    return f"0x{suite_id:04X}"


def write(
    suite: AlgorithmSuite,
    plaintext: bytes,
    *,
    framed: bool,
    frame_length: int = 64,
    data_key: bytes | None = None,
    context: dict[str, str] | None = None,
    required: dict[str, str] | None = None,
) -> tuple[bytes, bytes]:
    """A message written by the hazardous layer under a hand-made data key."""
    data_key = data_key if data_key is not None else os.urandom(suite.data_key_length)
    signing_key = new_signing_key(suite)[0] if suite.signed else None
    stored = signed_context(EncryptionContext(context or {"purpose": "suites"}), signing_key)
    materials = EncryptionMaterials(
        suite=suite,
        data_key=data_key,
        encrypted_data_keys=(
            EncryptedDataKey(provider_id="hand", provider_info=b"made", ciphertext=b"x"),
        ),
        context=stored,
        signing_key=signing_key,
        required_context=EncryptionContext(required or {}),
    )
    writer = MessageWriter(
        materials,
        frame_length if framed else 0,
        content_type=FRAMED_CONTENT if framed else NON_FRAMED_CONTENT,
        allow_non_committing=True,
    )
    return encrypt_bytes(plaintext, writer), data_key


def read(
    message: bytes,
    data_key: bytes,
    *,
    stream: bool,
    limits: Limits | None = None,
    required: dict[str, str] | None = None,
) -> bytes:
    reader = MessageReader(io.BytesIO(message) if stream else message, limits=limits, policy=ALLOW)
    reader.unlock(data_key, EncryptionContext(required or {}))
    if stream:
        return b"".join(bytes(chunk) for chunk in reader.frames())
    return reader.read_all()


def test_suite_table_matches_the_specification():
    assert sorted(EXPECTED) == SUITE_IDS
    for suite_id, (version, key_length, kdf, curve, committing) in EXPECTED.items():
        suite = SUITES[suite_id]
        assert suite.message_version == version
        assert suite.data_key_length == key_length
        assert (suite.kdf_hash().name if suite.kdf_hash else None) == kdf
        assert (suite.signature_curve().name if suite.signature_curve else None) == curve
        assert suite.signed is (curve is not None)
        assert suite.committing is committing
        assert suite.suite_data_length == (32 if committing else 0)
        # The official SDK names the same suite the same way.
        assert Algorithm.get_by_id(suite_id).name == suite.name


@pytest.mark.parametrize("framed", [True, False], ids=["framed", "non-framed"])
@pytest.mark.parametrize("suite_id", SUITE_IDS, ids=suite_id_name)
@pytest.mark.parametrize("size", [0, 1, 64, 200])
def test_every_suite_round_trips_through_the_hazardous_layer(suite_id, framed, size):
    suite = SUITES[suite_id]
    plaintext = os.urandom(size)
    message, data_key = write(suite, plaintext, framed=framed)
    assert read(message, data_key, stream=False) == plaintext
    assert read(message, data_key, stream=True) == plaintext
    # A data key of the right length but the wrong value fails authentication.
    with pytest.raises(DecryptionError):
        read(message, os.urandom(suite.data_key_length), stream=False)
    # A data key of another suite's length is refused outright.
    with pytest.raises(DecryptionError):
        read(message, os.urandom(suite.data_key_length + 8), stream=False)


def test_no_kdf_suites_encrypt_with_the_data_key_itself():
    suite = SUITES[0x0078]
    data_key = os.urandom(32)
    message, _ = write(suite, b"no kdf", framed=False, data_key=data_key)
    reader = MessageReader(message, policy=ALLOW)
    body = message[len(message) - (12 + 8 + 6 + 16) :]
    iv, length, sealed = body[:12], int.from_bytes(body[12:20], "big"), body[20:]
    assert length == 6
    label = b"AWSKMSEncryptionClient Single Block"
    aad = reader.header.message_id + label + struct.pack(">IQ", 1, 6)
    assert AESGCM(data_key).decrypt(iv, sealed, aad) == b"no kdf"


@pytest.mark.parametrize("suite_id", [s for s in SUITE_IDS if not SUITES[s].committing])
def test_commitment_policy_gates_non_committing_suites(suite_id):
    message, data_key = write(SUITES[suite_id], b"legacy", framed=True)
    with pytest.raises(DecryptionError, match="non-committing"):
        MessageReader(message)
    for policy in (
        CommitmentPolicy.REQUIRE_ENCRYPT_ALLOW_DECRYPT,
        CommitmentPolicy.FORBID_ENCRYPT_ALLOW_DECRYPT,
    ):
        reader = MessageReader(message, policy=policy)
        reader.unlock(data_key)
        assert reader.read_all() == b"legacy"


def test_policy_names():
    assert [p.value for p in CommitmentPolicy] == [
        "require-encrypt-require-decrypt",
        "require-encrypt-allow-decrypt",
        "forbid-encrypt-allow-decrypt",
    ]
    with pytest.raises(ConfigError, match="forbid-encrypt-allow-decrypt"):
        CommitmentPolicy.parse("allow-everything")
    with pytest.raises(ConfigError, match="commitment_policy"):
        KeyStack.from_dict({"stack": {"commitment_policy": "allow-everything"}})


def test_the_stack_never_writes_a_non_committing_suite(tmp_path):
    config = {
        "stack": {
            "commitment_policy": "forbid-encrypt-allow-decrypt",
            "wrapping_keys": ["local://k"],
        },
        "providers": {"local": {"keystore": str(tmp_path / "ks")}},
    }
    with KeyStack.from_dict(config) as stack:
        stack.create_key("k", "aes-256")
        assert stack.inspect(stack.encrypt(b"x")).suite_id == 0x0478
        assert stack.inspect(stack.encrypt(b"x", signed=True)).suite_id == 0x0578
    suite = SUITES[0x0178]
    materials = EncryptionMaterials(
        suite=suite,
        data_key=os.urandom(32),
        encrypted_data_keys=(),
        context=EncryptionContext(),
    )
    with pytest.raises(ConfigError, match="only committing"):
        MessageWriter(materials, 64)


# -- messages the official SDK writes -------------------------------------------------


def _sdk_message(algorithm: Algorithm, material: bytes, plaintext: bytes, frame_length: int):
    policy = (
        SdkPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
        if algorithm.is_committing()
        else SdkPolicy.FORBID_ENCRYPT_ALLOW_DECRYPT
    )
    client = aws_encryption_sdk.EncryptionSDKClient(commitment_policy=policy)
    message, _ = client.encrypt(
        source=plaintext,
        key_provider=sdk_key(material, "beta"),
        encryption_context={"tenant": "acme"},
        algorithm=algorithm,
        frame_length=frame_length,
    )
    return message


def _unwrap_by_hand(reader: MessageReader, material: bytes) -> bytes:
    """The raw AES keyring's unwrap: AES-256-GCM, IV at the end of the provider info."""
    (edk,) = reader.header.encrypted_data_keys
    assert edk.provider_id == "aureus-local"
    assert edk.provider_info[:-20] == b"beta:1"
    return AESGCM(material).decrypt(
        edk.provider_info[-12:], edk.ciphertext, reader.header.context.serialize()
    )


@pytest.fixture
def allow_stack(tmp_path, stack) -> Iterator[KeyStack]:
    """The ``stack`` fixture's keystore, opened under an allow-decrypt policy."""
    config = {
        "stack": {"commitment_policy": "forbid-encrypt-allow-decrypt"},
        "providers": {"local": {"keystore": str(tmp_path / "ks")}},
    }
    with KeyStack.from_dict(config) as allowed:
        yield allowed


@pytest.mark.parametrize("frame_length", [0, 4096], ids=["non-framed", "framed"])
@pytest.mark.parametrize("suite_id", SUITE_IDS, ids=suite_id_name)
def test_every_sdk_suite_decrypts(stack, allow_stack, raw_keys, suite_id, frame_length):
    algorithm = Algorithm.get_by_id(suite_id)
    plaintext = os.urandom(10_001)
    message = _sdk_message(algorithm, raw_keys["beta"], plaintext, frame_length)
    for stream in (False, True):
        reader = MessageReader(io.BytesIO(message) if stream else message, policy=ALLOW)
        assert reader.header.framed is (frame_length > 0)
        reader.unlock(_unwrap_by_hand(reader, raw_keys["beta"]))
        got = b"".join(bytes(c) for c in reader.frames()) if stream else reader.read_all()
        assert got == plaintext
    # Through the stack: the local keystore's beta:1 is the SDK's raw AES key.
    assert allow_stack.decrypt(message, context={"tenant": "acme"}) == plaintext
    out = io.BytesIO()
    assert allow_stack.decrypt_stream(io.BytesIO(message), out) == len(plaintext)
    assert out.getvalue() == plaintext
    info = allow_stack.inspect(message)
    assert (info.suite_id, info.signed, info.committing) == (
        suite_id,
        SUITES[suite_id].signed,
        SUITES[suite_id].committing,
    )
    assert info.content_type == ("framed" if frame_length else "non-framed")
    assert info.frame_length == frame_length
    if not algorithm.is_committing():
        # The default policy refuses them, before any key is asked.
        with pytest.raises(DecryptionError, match="non-committing"):
            stack.decrypt(message)


# -- the non-framed bound -------------------------------------------------------------


class _CountingStream(io.RawIOBase):
    """A readable stream that records the largest single request it was given."""

    def __init__(self, data: bytes) -> None:
        self._inner = io.BytesIO(data)
        self.largest = 0
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        self.largest = max(self.largest, len(buffer))
        got = self._inner.readinto(buffer)
        self.consumed += got
        return got


def _single_block_length_offset(message: bytes, tag_length: int = 16) -> int:
    """Where a non-framed message's 8-byte content length sits (after the header and IV)."""
    _, raw = parse_header(Reader(message), Limits())
    version = message[0]
    header_auth = (12 if version == 1 else 0) + tag_length
    return len(raw) + header_auth + 12


@pytest.mark.parametrize("suite_id", [0x0478, 0x0578, 0x0178], ids=suite_id_name)
def test_non_framed_length_is_bounded_before_allocation(suite_id):
    suite = SUITES[suite_id]
    message, data_key = write(suite, b"z" * 100, framed=False)
    offset = _single_block_length_offset(message)
    assert int.from_bytes(message[offset : offset + 8], "big") == 100
    hostile = message[:offset] + (2**35).to_bytes(8, "big") + message[offset + 8 :]
    for stream in (False, True):
        source = _CountingStream(hostile)
        reader = MessageReader(io.BufferedReader(source, 64) if stream else hostile, policy=ALLOW)
        reader.unlock(data_key)
        with pytest.raises(DecryptionError, match="max_non_framed_bytes") as caught:
            reader.read_all() if not stream else list(reader.frames())
        assert "34359738368 bytes" in str(caught.value)
        if stream:
            # Nothing near the claimed size was ever asked of the stream.
            assert source.largest < 4096
            assert source.consumed <= offset + 8 + 64


def test_non_framed_bound_is_configurable(allow_stack, raw_keys):
    message = _sdk_message(
        Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY, raw_keys["beta"], b"q" * 1000, 0
    )
    limits = Limits(max_non_framed_bytes=999)
    reader = MessageReader(message, limits=limits)
    reader.unlock(_unwrap_by_hand(reader, raw_keys["beta"]))
    with pytest.raises(DecryptionError, match="limit of 999"):
        reader.read_all()
    reader = MessageReader(message, limits=Limits(max_non_framed_bytes=1000))
    reader.unlock(_unwrap_by_hand(reader, raw_keys["beta"]))
    assert reader.read_all() == b"q" * 1000
    assert allow_stack.config.max_non_framed_bytes == 64 * 1024 * 1024
    assert allow_stack.decrypt(message) == b"q" * 1000


def test_non_framed_bound_from_config(tmp_path, stack, raw_keys):
    message = _sdk_message(
        Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY, raw_keys["beta"], b"q" * 1000, 0
    )
    config = {
        "stack": {"max_non_framed_bytes": 999},
        "providers": {"local": {"keystore": str(tmp_path / "ks")}},
    }
    with KeyStack.from_dict(config) as small:
        with pytest.raises(DecryptionError, match="max_non_framed_bytes"):
            small.decrypt(message)
        with pytest.raises(DecryptionError, match="max_non_framed_bytes"):
            small.decrypt_stream(io.BytesIO(message), io.BytesIO())
    for bad in (-1, "big", True):
        with pytest.raises(ConfigError, match="max_non_framed_bytes"):
            KeyStack.from_dict({"stack": {"max_non_framed_bytes": bad}})


def test_non_framed_plaintext_waits_for_the_tag():
    """A streamed non-framed body yields nothing when its tag (or signature) fails."""
    for suite_id in (0x0478, 0x0578):
        message, data_key = write(SUITES[suite_id], b"p" * 300, framed=False)
        changed = bytearray(message)
        tail = 104 if suite_id == 0x0578 else 1  # inside the ciphertext or tag
        changed[-tail - 16] ^= 1
        reader = MessageReader(io.BytesIO(bytes(changed)))
        reader.unlock(data_key)
        chunks = reader.frames()
        with pytest.raises(DecryptionError):
            next(chunks)  # the first thing released would be plaintext


def test_non_framed_cannot_be_streamed_on_encrypt():
    suite = SUITES[0x0478]
    materials = EncryptionMaterials(
        suite=suite, data_key=os.urandom(32), encrypted_data_keys=(), context=EncryptionContext()
    )
    from aureus_core.envelope.message import encrypt_stream

    writer = MessageWriter(materials, 0, content_type=NON_FRAMED_CONTENT)
    with pytest.raises(ConfigError, match="non-framed"):
        encrypt_stream(io.BytesIO(b"x"), io.BytesIO(), writer)
    with pytest.raises(ConfigError, match="frame length 0 is for non-framed"):
        MessageWriter(materials, 64, content_type=NON_FRAMED_CONTENT)
    with pytest.raises(ConfigError, match="frame length of 1 or more"):
        MessageWriter(materials, 0)


# -- hostile input ------------------------------------------------------------------------


def _refused(message: bytes, data_key: bytes) -> None:
    for stream in (False, True):
        with pytest.raises(DecryptionError):
            read(message, data_key, stream=stream)


@pytest.mark.parametrize("framed", [True, False], ids=["framed", "non-framed"])
@pytest.mark.parametrize("suite_id", SUITE_IDS, ids=suite_id_name)
def test_every_bit_flip_and_truncation_is_refused(suite_id, framed):
    suite = SUITES[suite_id]
    message, data_key = write(suite, b"attack at dawn" * 5, framed=framed, frame_length=32)
    assert read(message, data_key, stream=False) == b"attack at dawn" * 5
    for index in range(len(message)):
        changed = bytearray(message)
        changed[index] ^= 0x01 if index % 2 else 0x80
        with pytest.raises(DecryptionError):
            read(bytes(changed), data_key, stream=False)
    for end in range(len(message)):
        _refused(message[:end], data_key)
    _refused(message + b"\x00", data_key)


def test_content_type_and_frame_length_must_agree():
    framed, _ = write(SUITES[0x0478], b"x", framed=True, frame_length=32)
    _, raw = parse_header(Reader(framed), Limits())
    content_type_at = len(raw) - 32 - 5  # content type, frame length, commitment
    assert framed[content_type_at] == FRAMED_CONTENT
    for content_type, frame_length in ((1, 32), (2, 0), (0, 32), (3, 32)):
        hostile = bytearray(framed)
        hostile[content_type_at] = content_type
        hostile[content_type_at + 1 : content_type_at + 5] = frame_length.to_bytes(4, "big")
        with pytest.raises(DecryptionError):
            parse_header(Reader(bytes(hostile)), Limits())


def test_frame_length_over_the_limit_names_the_setting():
    message, data_key = write(SUITES[0x0478], b"x" * 100, framed=True, frame_length=64)
    with pytest.raises(DecryptionError, match=r"frame length is 64 bytes; the limit is 32"):
        MessageReader(message, limits=Limits(max_frame_length=32))
    assert read(message, data_key, stream=True, limits=Limits(max_frame_length=64)) == b"x" * 100


def test_non_framed_messages_come_out_framed_when_rewrapped(allow_stack, raw_keys):
    message = _sdk_message(
        Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY, raw_keys["beta"], b"single", 0
    )
    for new in (
        allow_stack.rewrap(message, to_keys=["local://alpha"]),
        _rewrapped_stream(allow_stack, message),
    ):
        assert MessageReader(new).header.framed
        assert allow_stack.decrypt(new, keys=["local://alpha"]) == b"single"


def _rewrapped_stream(stack, message):
    out = io.BytesIO()
    stack.rewrap_stream(io.BytesIO(message), out, to_keys=["local://alpha"])
    return out.getvalue()


def test_cli_inspect_shows_suite_properties(stack, raw_keys, tmp_path):
    from click.testing import CliRunner

    from aureus_core.cli import main

    message = _sdk_message(
        Algorithm.AES_128_GCM_IV12_TAG16_HKDF_SHA256_ECDSA_P256, raw_keys["beta"], b"x", 0
    )
    path = tmp_path / "legacy.aes"
    path.write_bytes(message)
    shown = CliRunner().invoke(main, ["inspect", str(path)])
    assert shown.exit_code == 0, shown.output
    assert "0x0214 AES_128_GCM_IV12_TAG16_HKDF_SHA256_ECDSA_P256" in shown.output
    assert "signed:         yes" in shown.output
    assert "key commitment: no" in shown.output
    assert "content type:   non-framed" in shown.output
    assert "frame length" not in shown.output
    as_json = json.loads(CliRunner().invoke(main, ["inspect", "--json", str(path)]).output)
    assert (as_json["content_type"], as_json["frame_length"], as_json["committing"]) == (
        "non-framed",
        0,
        False,
    )


@pytest.mark.parametrize("content_type", [0, 3, 0xFF])
@pytest.mark.parametrize("stream", [False, True], ids=["memory", "stream"])
def test_a_format_1_header_with_an_unknown_content_type_is_refused_when_read(
    content_type: int, stream: bool
) -> None:
    message, _ = write(SUITES[0x0178], b"legacy", framed=True)
    reader = MessageReader(message, policy=ALLOW)
    # Format 1 ends its header with content type, 4 reserved bytes, IV length, frame length.
    offset = len(reader.header.serialize()) - 10
    assert message[offset] == FRAMED_CONTENT
    changed = message[:offset] + bytes([content_type]) + message[offset + 1 :]
    with pytest.raises(DecryptionError):  # by the parser: no data key was asked for
        MessageReader(io.BytesIO(changed) if stream else changed, policy=ALLOW)


@pytest.mark.parametrize("stream", [False, True], ids=["memory", "stream"])
def test_a_format_1_suite_under_a_format_2_version_byte_is_not_a_message(stream: bool) -> None:
    message, _ = write(SUITES[0x0478], b"x", framed=True)
    changed = message[:1] + (0x0078).to_bytes(2, "big") + message[3:]
    with pytest.raises(NotAMessage, match="whose first byte is 02"):
        MessageReader(io.BytesIO(changed) if stream else changed, policy=ALLOW)
