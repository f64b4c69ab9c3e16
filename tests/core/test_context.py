import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aureus_core import ConfigError, EncryptionContext

texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=20)
contexts = st.dictionaries(
    texts.filter(lambda k: k and not k.startswith("aws-crypto-")), texts, max_size=8
)


@given(contexts)
def test_serialization_round_trip(pairs):
    context = EncryptionContext(pairs)
    assert dict(context) == pairs
    assert EncryptionContext.deserialize(context.serialize()) == context


@given(contexts)
def test_canonical_order_independent_of_insertion(pairs):
    reversed_pairs = dict(reversed(list(pairs.items())))
    a, b = EncryptionContext(pairs), EncryptionContext(reversed_pairs)
    assert a.serialize() == b.serialize()
    keys = [k.encode() for k in a]
    assert keys == sorted(keys)


def test_layout_matches_the_message_format():
    context = EncryptionContext({"b": "2", "a": "1"})
    assert context.serialize() == (
        struct.pack(">H", 2) + b"\x00\x01a\x00\x011" + b"\x00\x01b\x00\x012"
    )
    assert EncryptionContext().serialize() == b""
    assert EncryptionContext.deserialize(b"") == EncryptionContext()


def test_sorting_is_by_utf8_bytes_not_code_points():
    # U+FF61 sorts before U+10000 by code point but after it by UTF-16; UTF-8 bytes
    # order agrees with code points, which is what the SDK uses.
    context = EncryptionContext({"\U00010000": "x", "\uff61": "y"})
    assert list(context) == ["\uff61", "\U00010000"]


def test_reserved_prefix_rejected():
    with pytest.raises(ConfigError, match="reserved"):
        EncryptionContext({"aws-crypto-public-key": "x"})


def test_size_limit():
    EncryptionContext({"k": "v" * 65000})
    with pytest.raises(ConfigError, match="the limit is 65535"):
        EncryptionContext({"k": "v" * 65530})


@pytest.mark.parametrize(
    "data",
    [
        b"\x00",  # truncated count
        b"\x00\x01\x00\x05ab",  # key shorter than its length
        b"\x00\x01\x00\x01a\x00\x01bX",  # trailing byte
        b"\x00\x02\x00\x01a\x00\x01b\x00\x01a\x00\x01c",  # duplicate key
        b"\x00\x01\x00\x01\xff\x00\x00",  # invalid UTF-8
        b"\x00\x00",  # empty but present
    ],
)
def test_deserialize_rejects_malformed(data):
    with pytest.raises(ConfigError):
        EncryptionContext.deserialize(data)


def test_is_a_read_only_mapping():
    context = EncryptionContext(purpose="test", tenant="a")
    assert context["tenant"] == "a"
    assert context == {"purpose": "test", "tenant": "a"}
    assert hash(context) == hash(EncryptionContext({"tenant": "a", "purpose": "test"}))
    with pytest.raises(TypeError):
        context["x"] = "y"  # type: ignore[index]


def test_rejects_non_string_values():
    with pytest.raises(ConfigError, match="must be strings"):
        EncryptionContext({"k": 1})  # type: ignore[dict-item]
    with pytest.raises(ConfigError, match="not valid Unicode"):
        EncryptionContext({"k": "\ud800"})


# -- serialized form: bounds, order and every refusal in words --------------------------


def test_keys_and_values_past_32767_bytes_round_trip():
    """Field lengths are unsigned 16-bit: a 40 000-byte key (past a signed length) reads back."""
    from aureus_core.context import EncryptionContext as Context

    wide = Context({"k" * 40_000: "v" * 20_000})
    assert dict(Context.deserialize(wide.serialize())) == dict(wide)


def test_pairs_serialize_sorted_by_their_utf8_key_bytes():
    from aureus_core.context import EncryptionContext as Context

    data = Context({"b": "2", "a": "1", "\u00e9": "3"}).serialize()
    assert data == (
        b"\x00\x03" + b"\x00\x01a\x00\x011" + b"\x00\x01b\x00\x012" + b"\x00\x02\xc3\xa9\x00\x013"
    )


@pytest.mark.parametrize(
    ("data", "said"),
    [
        (b"\x00\x01\x00\x02ab\x00\x05xy", "encryption context is truncated"),
        (b"\x00\x02\x00\x01a\x00\x011\x00\x01a\x00\x012", "encryption context has key 'a' twice"),
        (b"\x00\x01\x00\x01\xff\x00\x011", "encryption context is malformed"),
        (b"\x00\x01\x00\x01a\x00\x011!", "encryption context has trailing bytes"),
        (b"\x00\x00", "a non-empty encryption context field must hold at least one pair"),
    ],
)
def test_malformed_serialized_contexts_are_refused_with_the_reason(data, said):
    from aureus_core.context import EncryptionContext as Context

    with pytest.raises(ConfigError) as caught:
        Context.deserialize(data)
    assert str(caught.value) == said


def test_an_empty_key_is_refused():
    from aureus_core.context import EncryptionContext as Context

    with pytest.raises(ConfigError) as caught:
        Context({"": "v"})
    assert str(caught.value) == "encryption context keys may not be empty"
