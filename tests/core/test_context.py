import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aureus_core import ConfigError, EncryptionContext


@pytest.fixture(autouse=True)
def _fresh_memos():
    """Empty the context memos around each test, so it sees the parser's answer.

    A context built or parsed by an earlier test (or an earlier run in the same process, as
    in mutation testing) would otherwise be handed back from the memo.
    """
    from aureus_core import context as module

    module._memo.clear()
    module._parsed.clear()
    yield
    module._memo.clear()
    module._parsed.clear()


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


# -- every rule pinned by its own input -----------------------------------------------------------


@pytest.mark.parametrize(
    ("pairs", "said"),
    [
        ({1: "v"}, "encryption context keys must be strings, not int"),
        ({"k": 1.5}, "encryption context values must be strings, not float"),
        ({"k": b"v"}, "encryption context values must be strings, not bytes"),
        ({"\udc80": "v"}, "encryption context key is not valid Unicode text"),
        ({"k": "\udc80"}, "encryption context value is not valid Unicode text"),
    ],
)
def test_a_key_or_value_that_is_not_text_is_refused_naming_which_and_its_type(pairs, said):
    with pytest.raises(ConfigError) as caught:
        EncryptionContext(pairs)
    assert str(caught.value) == said


@pytest.mark.parametrize("field", ["key", "value"])
def test_a_key_or_value_longer_than_a_length_field_holds_is_refused_in_words(field):
    """65 536 bytes do not fit the 2-byte length: a ConfigError saying so, never struct.error."""
    pairs = {"k" * 65_536: "v"} if field == "key" else {"k": "v" * 65_536}
    with pytest.raises(ConfigError) as caught:
        EncryptionContext(pairs)
    assert str(caught.value) == "an encryption context key or value is longer than 65 535 bytes"


@pytest.mark.parametrize("field", ["key", "value"])
def test_a_key_or_value_of_exactly_65535_bytes_fits_its_field_but_not_the_total(field):
    pairs = {"k" * 65_535: ""} if field == "key" else {"k": "v" * 65_535}
    with pytest.raises(ConfigError) as caught:
        EncryptionContext(pairs)
    size = 2 + 2 + 2 + 65_535 + (0 if field == "key" else 1)
    assert str(caught.value) == (
        f"encryption context serializes to {size} bytes; the limit is 65535: "
        "store large values elsewhere"
    )


def test_a_context_of_exactly_65535_serialized_bytes_is_accepted():
    context = EncryptionContext({"k": "v" * (65_535 - 7)})
    assert len(context.serialize()) == 65_535
    assert EncryptionContext.deserialize(context.serialize()) == context


def test_a_value_past_32767_bytes_round_trips():
    """The value length is unsigned 16-bit like the key's: 40 000 bytes read back whole."""
    context = EncryptionContext({"k": "v" * 40_000})
    assert EncryptionContext.deserialize(context.serialize())["k"] == "v" * 40_000


def test_a_pair_count_with_its_top_bit_set_is_read_unsigned_and_refused():
    """0x8000 pairs announced, none present: refused, not read as a negative (empty) count."""
    with pytest.raises(ConfigError) as caught:
        EncryptionContext.deserialize(b"\x80\x00")
    assert str(caught.value) == "encryption context is malformed"


def test_reserved_keys_are_read_only_when_the_message_format_asks():
    reserved = b"\x00\x01\x00\x15aws-crypto-public-key\x00\x03pub"
    with pytest.raises(ConfigError, match="'aws-crypto-public-key' is reserved"):
        EncryptionContext.deserialize(reserved)
    context = EncryptionContext.deserialize(reserved, allow_reserved=True)
    assert dict(context) == {"aws-crypto-public-key": "pub"}
    assert context.serialize() == reserved
    plain = EncryptionContext.deserialize(b"\x00\x01\x00\x01a\x00\x011", allow_reserved=True)
    assert dict(plain) == {"a": "1"}


def test_the_reserved_words_of_the_refusal():
    with pytest.raises(ConfigError) as caught:
        EncryptionContext({"aws-crypto-x": "1"})
    assert str(caught.value) == (
        "encryption context key 'aws-crypto-x' is reserved: keys beginning with "
        "'aws-crypto-' belong to the message format; rename it"
    )


def test_coerce_passes_contexts_through_and_maps_nothing_to_the_empty_context():
    from aureus_core.context import EMPTY_CONTEXT

    context = EncryptionContext({"a": "1"})
    assert EncryptionContext.coerce(context) is context
    assert EncryptionContext.coerce(None) is EMPTY_CONTEXT
    assert EncryptionContext.coerce({}) is EMPTY_CONTEXT
    made = EncryptionContext.coerce({"a": "1"})
    assert isinstance(made, EncryptionContext)
    assert dict(made) == {"a": "1"}


def test_coerce_reuses_the_context_built_from_the_same_pairs_and_no_other():
    first = EncryptionContext.coerce({"tenant": "a"})
    assert EncryptionContext.coerce({"tenant": "a"}) is first
    other = EncryptionContext.coerce({"tenant": "b"})
    assert dict(other) == {"tenant": "b"}
    assert EncryptionContext.coerce({"tenant": "a"}) is first


def test_coerce_of_bad_input_says_what_is_wrong():
    with pytest.raises(ConfigError, match="values must be strings, not list"):
        EncryptionContext.coerce({"k": ["unhashable"]})  # type: ignore[dict-item]
    with pytest.raises(ConfigError, match="reserved"):
        EncryptionContext.coerce({"aws-crypto-x": "1"})


def _sized(size: int, tag: str) -> dict[str, str]:
    """Pairs that serialize to exactly ``size`` bytes (one pair: 2 + 2 + len(key) + 2 + value)."""
    key = f"k{tag}"
    return {key: "v" * (size - 6 - len(key))}


def test_coerce_remembers_contexts_up_to_2048_serialized_bytes_only():
    from aureus_core import context as module

    at_limit = _sized(module._MEMO_MAX_BYTES, "a")
    assert len(EncryptionContext(at_limit).serialize()) == 2048
    assert EncryptionContext.coerce(at_limit) is EncryptionContext.coerce(at_limit)
    over = _sized(module._MEMO_MAX_BYTES + 1, "b")
    first, second = EncryptionContext.coerce(over), EncryptionContext.coerce(over)
    assert first == second
    assert first is not second


def test_deserialize_remembers_contexts_up_to_2048_bytes_only():
    from aureus_core import context as module

    at_limit = EncryptionContext(_sized(module._MEMO_MAX_BYTES, "a")).serialize()
    assert EncryptionContext.deserialize(at_limit) is EncryptionContext.deserialize(at_limit)
    over = EncryptionContext(_sized(module._MEMO_MAX_BYTES + 1, "b")).serialize()
    first, second = EncryptionContext.deserialize(over), EncryptionContext.deserialize(over)
    assert first == second
    assert first is not second


def test_deserialize_remembers_by_bytes_and_by_whether_reserved_keys_were_allowed():
    data = b"\x00\x01\x00\x01a\x00\x011"
    first = EncryptionContext.deserialize(data)
    assert EncryptionContext.deserialize(data[:3] + data[3:]) is first  # equal, not the same
    assert dict(EncryptionContext.deserialize(b"\x00\x01\x00\x01b\x00\x012")) == {"b": "2"}
    reserved = b"\x00\x01\x00\x0caws-crypto-x\x00\x011"
    assert dict(EncryptionContext.deserialize(reserved, allow_reserved=True)) == {
        "aws-crypto-x": "1"
    }
    with pytest.raises(ConfigError, match="reserved"):
        EncryptionContext.deserialize(reserved)


def test_the_memos_hold_at_most_256_contexts():
    from aureus_core import context as module

    for i in range(module._MEMO_SIZE + 10):
        EncryptionContext.coerce({"n": str(i)})
        EncryptionContext.deserialize(EncryptionContext({"n": str(i)}).serialize())
        assert len(module._memo) <= module._MEMO_SIZE
        assert len(module._parsed) <= module._MEMO_SIZE
    assert len(module._memo) == len(module._parsed) == 10


def test_distinct_contexts_hash_apart_and_equal_ones_together():
    contexts = [EncryptionContext({"n": str(i)}) for i in range(64)]
    assert len({hash(c) for c in contexts}) == 64
    assert hash(EncryptionContext({"n": "1"})) == hash(contexts[1])


def test_get_returns_the_value_or_the_default():
    context = EncryptionContext({"tenant": "a"})
    assert context.get("tenant") == "a"
    assert context.get("absent") is None
    assert context.get("absent", "fallback") == "fallback"


def test_repr_names_the_pairs_in_canonical_order():
    context = EncryptionContext({"b": "2", "a": "1"})
    assert repr(context) == "EncryptionContext({'a': '1', 'b': '2'})"


def test_contexts_are_equal_only_when_their_pairs_are():
    one, two = EncryptionContext({"a": "1"}), EncryptionContext({"a": "2"})
    assert one == EncryptionContext({"a": "1"})
    assert one != two
    assert two != one
    assert EncryptionContext({"a": "1", "b": "2"}) != one
    assert one != EncryptionContext({"a": "1", "b": "2"})
