import pytest
from hypothesis import given
from hypothesis import strategies as st

from aureus_core import ConfigError, KeyRef

schemes = st.from_regex(r"[a-z][a-z0-9+.-]{0,10}", fullmatch=True)
key_ids = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp"), blacklist_characters="?#\x85\xa0"
    ),
    min_size=1,
    max_size=40,
).filter(lambda s: not any(c.isspace() for c in s))
param_names = st.from_regex(r"[A-Za-z][A-Za-z0-9_.-]{0,8}", fullmatch=True).filter(
    lambda n: n != "version"
)
versions = st.none() | st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")),
    min_size=1,
    max_size=12,
).filter(lambda s: not any(c.isspace() or c in "?#&" for c in s))


@given(schemes, key_ids, versions, st.dictionaries(param_names, st.text(max_size=10), max_size=3))
def test_parse_format_round_trip(scheme, key_id, version, params):
    ref = KeyRef(scheme=scheme, key_id=key_id, version=version, params=params)
    assert KeyRef.parse(ref.uri) == ref
    assert KeyRef.parse(str(ref)).uri == ref.uri


def test_examples():
    ref = KeyRef.parse("local://payments?version=3")
    assert (ref.scheme, ref.key_id, ref.version) == ("local", "payments", "3")
    assert ref.with_version(None).uri == "local://payments"
    arn = KeyRef.parse("aws-kms://arn:aws:kms:eu-west-1:111122223333:key/abc?region=eu-west-1")
    assert arn.key_id == "arn:aws:kms:eu-west-1:111122223333:key/abc"
    assert arn.param("region") == "eu-west-1"
    assert arn.uri == "aws-kms://arn:aws:kms:eu-west-1:111122223333:key/abc?region=eu-west-1"


@pytest.mark.parametrize(
    ("uri", "fragment"),
    [
        ("payments", "not a key URI"),
        ("local://", "needs a key identifier"),
        ("Local://x", "invalid key URI scheme"),
        ("local://a b", "may not contain whitespace"),
        ("local://x?version=", "invalid key version"),
        ("local://x?version=1&version=2", "given twice"),
        ("local://x?a=1&a=2", "given twice"),
        ("local://x?=1", "invalid key URI parameter name"),
        ("local://x?a", "invalid query string"),
    ],
)
def test_rejects_malformed(uri, fragment):
    with pytest.raises(ConfigError, match=fragment):
        KeyRef.parse(uri)


def test_parse_rejects_non_strings():
    with pytest.raises(ConfigError, match="must be a string"):
        KeyRef.parse(42)  # type: ignore[arg-type]


def test_with_version_keeps_parameters():
    ref = KeyRef.parse("aws-kms://alias/app?region=eu-west-1")
    pinned = ref.with_version("3")
    assert pinned.params == (("region", "eu-west-1"),)
    assert pinned.with_version(None) == ref
    assert pinned.uri == "aws-kms://alias/app?version=3&region=eu-west-1"
