import io
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aureus_core import ConfigError, DecryptionError, KeyStack

texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)
contexts = st.dictionaries(
    texts.filter(lambda k: k and not k.startswith("aws-crypto-")), texts, max_size=4
)
RECIPIENTS = ["local://alpha", "local://beta", "local://gamma"]


def payloads(frame_length: int):
    return st.one_of(
        st.just(b""),
        st.binary(min_size=1, max_size=1),
        st.integers(1, 4).map(lambda k: bytes(range(256)) * 0 + b"x" * (k * frame_length)),
        st.binary(max_size=5 * frame_length),
    )


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.data(),
    frame_length=st.integers(1, 300),
    context=contexts,
    recipients=st.integers(1, 3),
    signed=st.booleans(),
    streaming=st.booleans(),
)
def test_round_trip(stack: KeyStack, data, frame_length, context, recipients, signed, streaming):
    plaintext = data.draw(payloads(frame_length))
    keys = RECIPIENTS[:recipients]
    if streaming:
        sink = io.BytesIO()
        stack.encrypt_stream(
            io.BytesIO(plaintext),
            sink,
            context=context,
            keys=keys,
            signed=signed,
            frame_length=frame_length,
        )
        message = sink.getvalue()
    else:
        message = stack.encrypt(
            plaintext, context=context, keys=keys, signed=signed, frame_length=frame_length
        )
    # Any single recipient decrypts, one-shot and streamed.
    only = data.draw(st.sampled_from(keys))
    assert stack.decrypt(message, context=context, keys=[only]) == plaintext
    out = io.BytesIO()
    assert stack.decrypt_stream(io.BytesIO(message), out, context=context) == len(plaintext)
    assert out.getvalue() == plaintext
    info = stack.inspect(message)
    assert info.signed is signed
    assert info.frame_length == frame_length
    assert dict(info.context) == context
    assert [r.key.rsplit(":", 1)[0] for r in info.recipients] == [
        k[len("local://") :] for k in keys
    ]


def test_one_shot_and_stream_produce_the_same_layout(stack):
    plaintext = b"y" * 1000
    one_shot = stack.encrypt(plaintext, frame_length=100)
    sink = io.BytesIO()
    stack.encrypt_stream(io.BytesIO(plaintext), sink, frame_length=100)
    assert len(one_shot) == len(sink.getvalue())


def test_strict_mode_restricts_keys(stack):
    message = stack.encrypt(b"secret", keys=["local://alpha"])
    with pytest.raises(DecryptionError):
        stack.decrypt(message, keys=["local://beta"])
    assert stack.decrypt(message, keys=["local://alpha"]) == b"secret"
    assert stack.decrypt(message, keys=["local://alpha?version=1"]) == b"secret"
    with pytest.raises(DecryptionError):
        stack.decrypt(message, keys=["local://alpha?version=2"])


def test_discovery_allow_list(tmp_path, stack):
    message = stack.encrypt(b"secret", keys=["local://beta"])
    config: dict[str, dict[str, Any]] = {
        "stack": {"decrypt_allow": ["local://alpha"]},
        "providers": {"local": {"keystore": str(tmp_path / "ks")}},
    }
    with KeyStack.from_dict(config) as restricted, pytest.raises(DecryptionError):
        restricted.decrypt(message)
    config["stack"]["decrypt_allow"] = ["local://b*"]
    with KeyStack.from_dict(config) as allowed:
        assert allowed.decrypt(message) == b"secret"


def test_required_context(stack):
    message = stack.encrypt(b"secret", context={"tenant": "a", "purpose": "x"})
    assert stack.decrypt(message, context={"tenant": "a"}) == b"secret"
    for wrong in ({"tenant": "b"}, {"other": "a"}, {"tenant": "a", "purpose": "y"}):
        with pytest.raises(DecryptionError):
            stack.decrypt(message, context=wrong)


def test_old_versions_decrypt_after_rotation(stack):
    message = stack.encrypt(b"before rotation")
    stack.rotate_key("local://alpha")
    assert stack.decrypt(message) == b"before rotation"
    newer = stack.encrypt(b"after")
    assert stack.inspect(newer).recipients[0].key == "alpha:2"


def test_no_wrapping_key_is_a_config_error(tmp_path):
    with KeyStack.local(tmp_path) as stack, pytest.raises(ConfigError, match="no wrapping key"):
        stack.encrypt(b"x")


def test_signing_key_cannot_wrap(stack):
    stack.create_key("signer", "ed25519")
    with pytest.raises(ConfigError):
        stack.encrypt(b"x", keys=["local://signer"])


@pytest.mark.parametrize("length", [0, -1, 16 * 1024 * 1024 + 1])
def test_frame_length_bounds(stack, length):
    with pytest.raises(ConfigError, match="frame length must be between"):
        stack.encrypt(b"x", frame_length=length)


def test_reserved_context_keys_rejected(stack):
    with pytest.raises(ConfigError, match="reserved"):
        stack.encrypt(b"x", context={"aws-crypto-public-key": "forged"})
