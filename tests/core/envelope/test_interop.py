"""Both directions with the official AWS Encryption SDK, through the raw AES keyring layout."""

import aws_encryption_sdk
import pytest
from aws_encryption_sdk.identifiers import (
    Algorithm,
    CommitmentPolicy,
    EncryptionKeyType,
    WrappingAlgorithm,
)
from aws_encryption_sdk.internal.crypto.wrapping_keys import WrappingKey
from aws_encryption_sdk.key_providers.raw import RawMasterKey, RawMasterKeyProvider

from aureus_core import DecryptionError, KeyStack

SIZES = [0, 1, 4095, 4096, 4097, 3 * 4096, 100_003]


def sdk_key(material: bytes, name: str, version: int = 1) -> RawMasterKey:
    return RawMasterKey(
        provider_id="aureus-local",
        key_id=f"{name}:{version}".encode(),
        wrapping_key=WrappingKey(
            wrapping_algorithm=WrappingAlgorithm.AES_256_GCM_IV12_TAG16_NO_PADDING,
            wrapping_key=material,
            wrapping_key_type=EncryptionKeyType.SYMMETRIC,
        ),
    )


def client(policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT):
    return aws_encryption_sdk.EncryptionSDKClient(commitment_policy=policy)


@pytest.mark.parametrize("signed", [False, True], ids=["0x0478", "0x0578"])
@pytest.mark.parametrize("size", SIZES)
def test_sdk_decrypts_aureus(stack, raw_keys, signed, size):
    plaintext = bytes(i % 251 for i in range(size))
    context = {"purpose": "interop", "ünïcode": "välue"}
    message = stack.encrypt(plaintext, context=context, signed=signed, frame_length=4096)
    decrypted, header = client().decrypt(
        source=message, key_provider=sdk_key(raw_keys["alpha"], "alpha")
    )
    assert decrypted == plaintext
    assert {
        k: v for k, v in header.encryption_context.items() if not k.startswith("aws-crypto-")
    } == context


@pytest.mark.parametrize("signed", [False, True], ids=["0x0478", "0x0578"])
@pytest.mark.parametrize("size", SIZES)
def test_aureus_decrypts_sdk(stack, raw_keys, signed, size):
    plaintext = bytes(i % 253 for i in range(size))
    algorithm = (
        Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384
        if signed
        else Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY
    )
    message, _ = client().encrypt(
        source=plaintext,
        key_provider=sdk_key(raw_keys["beta"], "beta"),
        encryption_context={"tenant": "acme"},
        algorithm=algorithm,
        frame_length=4096,
    )
    assert stack.decrypt(message, context={"tenant": "acme"}) == plaintext
    info = stack.inspect(message)
    assert info.suite_id == algorithm.algorithm_id
    assert info.recipients[0].key == "beta:1"


class _Keys(RawMasterKeyProvider):
    """An SDK master key provider over several raw AES keys (namespace aureus-local)."""

    provider_id = "aureus-local"
    keys: dict[bytes, bytes]

    def _get_raw_key(self, key_id):
        return WrappingKey(
            wrapping_algorithm=WrappingAlgorithm.AES_256_GCM_IV12_TAG16_NO_PADDING,
            wrapping_key=self.keys[key_id],
            wrapping_key_type=EncryptionKeyType.SYMMETRIC,
        )


def test_multi_recipient_both_ways(stack, raw_keys):
    provider = _Keys()
    provider.keys = {b"alpha:1": raw_keys["alpha"], b"gamma:1": raw_keys["gamma"]}
    provider.add_master_keys_from_list([b"alpha:1", b"gamma:1"])
    message, _ = client().encrypt(source=b"to two", key_provider=provider)
    assert len(stack.inspect(message).recipients) == 2
    assert stack.decrypt(message, keys=["local://gamma"]) == b"to two"
    assert stack.decrypt(message, keys=["local://alpha"]) == b"to two"
    ours = stack.encrypt(b"from aureus", keys=["local://alpha", "local://gamma"])
    only_gamma = _Keys()
    only_gamma.keys = {b"gamma:1": raw_keys["gamma"]}
    only_gamma.add_master_key(b"gamma:1")
    assert client().decrypt(source=ours, key_provider=only_gamma)[0] == b"from aureus"


def test_non_committing_messages_need_an_opt_in(stack, raw_keys, tmp_path):
    message, _ = client(CommitmentPolicy.FORBID_ENCRYPT_ALLOW_DECRYPT).encrypt(
        source=b"legacy",
        key_provider=sdk_key(raw_keys["alpha"], "alpha"),
        algorithm=Algorithm.AES_256_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384,
    )
    with pytest.raises(DecryptionError, match="non-committing"):
        stack.decrypt(message)
    config = {
        "stack": {"commitment_policy": "require-encrypt-allow-decrypt"},
        "providers": {"local": {"keystore": str(tmp_path / "ks")}},
    }
    with KeyStack.from_dict(config) as legacy:
        assert legacy.decrypt(message) == b"legacy"


def test_the_frame_count_limit_is_the_sdks_the_final_frame_may_take_the_last_number(
    stack, raw_keys, monkeypatch
):
    """Both libraries allow 2**32 - 1 frames, the final one included; lowered to 3 on both
    sides to reach it, the SDK's largest message is read and Aureus's largest is read back."""
    import aws_encryption_sdk.internal.crypto.iv as sdk_iv
    import aws_encryption_sdk.internal.defaults as sdk_defaults
    from aws_encryption_sdk.exceptions import SerializationError

    from aureus_core.envelope import message as message_module
    from aureus_core.envelope.frames import MAX_FRAMES

    assert sdk_defaults.MAX_FRAME_COUNT == MAX_FRAMES
    for module in (sdk_defaults, sdk_iv):
        monkeypatch.setattr(module, "MAX_FRAME_COUNT", 3)
    monkeypatch.setattr(message_module, "MAX_FRAMES", 3)
    # Two regular 4 KiB frames and a final one of 100 bytes (at an exact multiple the SDK
    # writes an empty final frame, one frame more).
    plaintext = bytes(range(256)) * 32 + bytes(100)
    message, _ = client().encrypt(
        source=plaintext, key_provider=sdk_key(raw_keys["beta"], "beta"), frame_length=4096
    )
    assert stack.decrypt(message) == plaintext
    ours = stack.encrypt(plaintext, frame_length=4096)
    decrypted, _ = client().decrypt(source=ours, key_provider=sdk_key(raw_keys["alpha"], "alpha"))
    assert decrypted == plaintext
    # One more frame's worth is past the limit on both sides.
    longer = plaintext + bytes(4096)
    with pytest.raises(SerializationError, match=r"^Max frame count exceeded$"):
        client().encrypt(
            source=longer,
            key_provider=sdk_key(raw_keys["beta"], "beta"),
            frame_length=4096,
        )
    from aureus_core import ConfigError

    with pytest.raises(ConfigError, match="message too large for its frame length"):
        stack.encrypt(longer, frame_length=4096)
