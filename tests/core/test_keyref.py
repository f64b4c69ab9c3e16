import pytest
from hypothesis import given
from hypothesis import strategies as st

from aureus_core import ConfigError, KeyRef


@pytest.fixture(autouse=True)
def _fresh_parse_memo():
    """Empty the parse memo around each test, so it sees the parser's answer.

    A reference parsed by an earlier test (or an earlier run in the same process, as in
    mutation testing) would otherwise be handed back from the memo.
    """
    from aureus_core import keyref as module

    module._parse_memo.cache_clear()
    yield
    module._parse_memo.cache_clear()


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


# -- every rule pinned by its own input -----------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "said"),
    [
        ("payments", "'payments' is not a key URI: write scheme://key, e.g. local://payments"),
        ("local://", "a key URI needs a key identifier after '://', e.g. local://payments"),
        (
            "Local://x",
            "invalid key URI scheme 'Local': use lower-case letters, digits, '+', '.', '-'",
        ),
        (
            "local://a\tb",
            "invalid key identifier 'a\\tb': it may not contain whitespace, '?', '#' "
            "or control characters",
        ),
        ("local://x?version=", "invalid key version ''"),
        ("local://x?a=1&a=2", "parameter 'a' given twice in key URI 'local://x?a=1&a=2'"),
        ("local://x?a", "invalid query string in key URI 'local://x?a'"),
    ],
)
def test_each_malformed_uri_is_refused_in_full_words(uri, said):
    with pytest.raises(ConfigError) as caught:
        KeyRef.parse(uri)
    assert str(caught.value) == said


def test_a_non_string_uri_is_refused_naming_its_type():
    with pytest.raises(ConfigError) as caught:
        KeyRef.parse(42)  # type: ignore[arg-type]
    assert str(caught.value) == "a key URI must be a string, not int"


def test_a_str_subclass_parses_like_its_text():
    class Uri(str):
        pass

    ref = KeyRef.parse(Uri("local://payments?version=2&region=eu"))
    assert ref == KeyRef.parse("local://payments?version=2&region=eu")
    assert (ref.scheme, ref.key_id, ref.version) == ("local", "payments", "2")


def test_parse_hands_out_one_object_per_uri():
    assert KeyRef.parse("local://shared") is KeyRef.parse("local://shared")
    assert KeyRef.parse("local://other").key_id == "other"


def test_a_key_id_may_itself_contain_a_scheme_separator():
    """Only the first '://' ends the scheme: the rest, separators and all, is the key id."""
    ref = KeyRef.parse("vault://transit://payments")
    assert (ref.scheme, ref.key_id) == ("vault", "transit://payments")


@pytest.mark.parametrize("version", ["1&2", "&", "a b", "a#b", "a?b", "\x00"])
def test_a_version_that_would_break_the_uri_is_refused_everywhere(version):
    for build in (
        lambda: KeyRef(scheme="local", key_id="k", version=version),
        lambda: KeyRef.parse("local://k").with_version(version),
        lambda: KeyRef.parse("local://k?version=3").with_version(version),
    ):
        with pytest.raises(ConfigError) as caught:
            build()
        assert str(caught.value) == f"invalid key version {version!r}"


@pytest.mark.parametrize(
    ("params", "said"),
    [
        ({"region": 1}, "key URI parameters must map strings to strings"),
        ({1: "eu"}, "key URI parameters must map strings to strings"),
        ({"version": "3"}, "invalid key URI parameter name 'version'"),
        ({"1st": "x"}, "invalid key URI parameter name '1st'"),
    ],
)
def test_bad_parameters_are_refused_in_words(params, said):
    with pytest.raises(ConfigError) as caught:
        KeyRef(scheme="local", key_id="k", params=params)
    assert str(caught.value) == said


def test_parameters_come_from_a_mapping_or_from_pairs_sorted_by_name():
    from types import MappingProxyType

    expected = (("a", "1"), ("region", "eu"))
    assert KeyRef(scheme="s", key_id="k", params={"region": "eu", "a": "1"}).params == expected
    assert (
        KeyRef(scheme="s", key_id="k", params=MappingProxyType({"region": "eu", "a": "1"})).params
        == expected
    )
    assert KeyRef(scheme="s", key_id="k", params=[("region", "eu"), ("a", "1")]).params == expected
    assert KeyRef(scheme="s", key_id="k", params=None).params == ()


def test_param_returns_the_value_or_the_default():
    ref = KeyRef.parse("aws-kms://alias/app?region=eu-west-1")
    assert ref.param("region") == "eu-west-1"
    assert ref.param("profile") is None
    assert ref.param("profile", "default") == "default"


def test_unpinning_returns_the_reference_it_was_pinned_from():
    base = KeyRef.parse("local://k?region=eu")
    pinned = base.with_version("3")
    assert pinned.with_version("3") is pinned
    assert pinned.with_version(None) is base
    assert pinned.with_version("4").with_version(None) is base
    assert base.with_version(None) is base


def test_unpinning_a_parsed_pinned_reference_drops_only_the_version_and_is_remembered():
    pinned = KeyRef.parse("local://k?version=3&region=eu")
    unpinned = pinned.with_version(None)
    assert unpinned == KeyRef.parse("local://k?region=eu")
    assert unpinned.version is None
    assert unpinned.uri == "local://k?region=eu"
    assert pinned.with_version(None) is unpinned
    repinned = pinned.with_version("4")
    assert repinned.uri == "local://k?version=4&region=eu"
    assert repinned.with_version(None).version is None
    assert repinned.with_version(None) == unpinned


def test_a_reference_reads_as_its_fields_only():
    """The cached URI and unversioned reference are not part of a reference's repr."""
    ref = KeyRef.parse("local://a?version=2&region=x")
    assert ref.with_version(None).uri == "local://a?region=x"  # fills both caches
    assert repr(ref) == "KeyRef(scheme='local', key_id='a', version='2', params=(('region', 'x'),))"
