"""Rotation policy (property tests), the [rotation] config table, key status and enforcement."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aureus_core import (
    ConfigError,
    DecryptionError,
    EncryptionContext,
    KeyDisabled,
    KeyMetadata,
    KeyProviderBase,
    KeyRef,
    KeyStack,
    KeyState,
    KeyType,
    KeyVersion,
    ProviderUnavailable,
    UnsupportedOperation,
)
from aureus_core.config import StackConfig
from aureus_core.interfaces import Capability
from aureus_core.rotation import (
    DEFAULT_INTERVAL,
    DEFAULT_MAX_AGE,
    EnforcementAction,
    RotationPolicy,
    format_span,
    retirement_target,
    usable_versions,
)
from aureus_core.testing import FakeClock, capture_audit
from aureus_local import LocalKeyProvider

DAY = timedelta(days=1)
NOW = datetime(2031, 6, 1, tzinfo=timezone.utc)
CREATED = datetime(2030, 1, 1, tzinfo=timezone.utc)
CONTEXT = EncryptionContext({"purpose": "rotation-tests"})


def metadata(
    created: datetime = CREATED,
    *,
    messages: int | None = None,
    byte_count: int | None = None,
    versions: Sequence[tuple[str, datetime]] = (),
    current: str | None = None,
    minimum: str | None = None,
    states: dict[str, KeyState] | None = None,
) -> KeyMetadata:
    """Key metadata whose current version was created at ``created`` (or ``versions``)."""
    listed = list(versions) or [("1", created)]
    current = current or listed[-1][0]
    states = states or {}
    return KeyMetadata(
        ref=KeyRef.parse("local://k"),
        key_type=KeyType.AES_256,
        state=KeyState.ENABLED,
        created_at=listed[0][1],
        current_version=current,
        min_decryption_version=minimum,
        versions=tuple(
            KeyVersion(
                version=name,
                created_at=at,
                state=states.get(name, KeyState.ENABLED),
                messages=messages if name == current else None,
                bytes=byte_count if name == current else None,
            )
            for name, at in listed
        ),
    )


# -- the policy: hypothesis invariants -------------------------------------------------------

SECONDS = st.integers(min_value=1, max_value=20 * 365 * 86400)
policies = st.builds(
    lambda interval, extra, messages, byte_limit: RotationPolicy(
        interval=timedelta(seconds=interval),
        max_age=timedelta(seconds=interval + extra),
        max_messages=messages,
        max_bytes=byte_limit,
    ),
    SECONDS,
    st.integers(min_value=0, max_value=20 * 365 * 86400),
    st.none() | st.integers(min_value=1, max_value=10**6),
    st.none() | st.integers(min_value=1, max_value=10**12),
)
ages = st.integers(min_value=0, max_value=40 * 365 * 86400).map(lambda s: timedelta(seconds=s))
counts = st.none() | st.integers(min_value=0, max_value=10**12)


@given(policy=policies, age=ages, messages=counts, byte_count=counts)
def test_should_rotate_exactly_when_age_or_a_usage_limit_is_reached(
    policy, age, messages, byte_count
):
    status = policy.status(metadata(NOW - age, messages=messages, byte_count=byte_count), now=NOW)
    over_messages = policy.max_messages is not None and (messages or 0) >= policy.max_messages
    over_bytes = policy.max_bytes is not None and (byte_count or 0) >= policy.max_bytes
    if messages is None:
        over_messages = False
    if byte_count is None:
        over_bytes = False
    assert status.should_rotate == (age >= policy.interval or over_messages or over_bytes)
    assert status.age == age


@given(policy=policies, age=ages, messages=counts)
def test_expired_exactly_at_max_age_and_always_due(policy, age, messages):
    status = policy.status(metadata(NOW - age, messages=messages), now=NOW)
    assert status.expired == (age >= policy.max_age)
    if status.expired:
        assert status.should_rotate


@given(policy=policies, first=ages, second=ages, messages=counts, byte_count=counts)
def test_should_rotate_and_expired_are_monotone_in_age(policy, first, second, messages, byte_count):
    young, old = sorted((first, second))
    earlier = policy.status(
        metadata(NOW - young, messages=messages, byte_count=byte_count), now=NOW
    )
    later = policy.status(metadata(NOW - old, messages=messages, byte_count=byte_count), now=NOW)
    assert earlier.should_rotate <= later.should_rotate
    assert earlier.expired <= later.expired


@given(policy=policies, age=ages)
def test_next_rotation_and_expiry_follow_the_current_version(policy, age):
    created = NOW - age
    status = policy.status(metadata(created), now=NOW)
    assert status.next_rotation == created + policy.interval
    assert status.expires_at == created + policy.max_age
    assert status.version == "1"


@given(
    interval=SECONDS,
    shortfall=st.integers(min_value=1, max_value=10**6),
)
def test_an_interval_longer_than_max_age_is_rejected(interval, shortfall):
    longer = timedelta(seconds=interval + shortfall)
    with pytest.raises(ConfigError, match="longer than max_age"):
        RotationPolicy(interval=longer, max_age=timedelta(seconds=interval))


@given(value=st.integers(min_value=-(10**12), max_value=0))
def test_non_positive_durations_and_limits_are_rejected(value):
    span = timedelta(seconds=value)
    with pytest.raises(ConfigError, match="interval must be positive"):
        RotationPolicy(interval=span)
    with pytest.raises(ConfigError, match="max_age must be positive"):
        RotationPolicy(interval=timedelta(seconds=1), max_age=span)
    with pytest.raises(ConfigError, match="max_messages must be a positive whole number"):
        RotationPolicy(max_messages=value)
    with pytest.raises(ConfigError, match="max_bytes must be a positive whole number"):
        RotationPolicy(max_bytes=value)


# -- the policy: examples --------------------------------------------------------------------


def test_defaults_are_the_seed_thresholds():
    policy = RotationPolicy()
    assert (policy.interval, policy.max_age) == (timedelta(days=90), timedelta(days=365))
    assert (DEFAULT_INTERVAL, DEFAULT_MAX_AGE) == (90 * DAY, 365 * DAY)
    assert policy.max_messages is None
    assert policy.max_bytes is None
    assert policy.retire_after_max_age is False
    assert policy.status(metadata(NOW - 89 * DAY), NOW).should_rotate is False
    assert policy.status(metadata(NOW - 90 * DAY), NOW).should_rotate is True
    assert policy.status(metadata(NOW - 364 * DAY), NOW).expired is False
    assert policy.status(metadata(NOW - 365 * DAY), NOW).expired is True


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"interval": 10}, "interval must be a timedelta, not int"),
        ({"max_messages": True}, "max_messages must be a positive whole number"),
        ({"max_bytes": 1.5}, "max_bytes must be a positive whole number"),
        ({"retire_after_max_age": "yes"}, "retire_after_max_age must be true or false"),
        (
            {"interval": 400 * DAY},
            r"interval \(400 days\) is longer than max_age \(365 days\): a key would expire",
        ),
    ],
)
def test_invalid_policies_say_what_is_wrong(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        RotationPolicy(**kwargs)


def test_reason_strings():
    policy = RotationPolicy(max_messages=10, max_bytes=1000)
    ok = policy.status(metadata(NOW - 10 * DAY, messages=2, byte_count=5), NOW)
    assert ok.reason == "ok: version 1 is 10 days old; rotation due in 80 days"
    due = policy.status(metadata(NOW - 95 * DAY - 12 * timedelta(hours=1)), NOW)
    assert due.reason == (
        "interval: version 1 is 95.5 days old, at or past the rotation interval of 90 days"
    )
    expired = policy.status(metadata(NOW - 400 * DAY, messages=10, byte_count=1000), NOW)
    assert expired.reason == (
        "expired: version 1 is 400 days old, at or past the maximum age of 365 days; "
        "messages: version 1 was used for 10 messages, at or past the limit of 10; "
        "bytes: version 1 was used for 1000 bytes, at or past the limit of 1000"
    )
    used = policy.status(metadata(NOW - DAY, messages=11), NOW)
    assert (used.should_rotate, used.expired) == (True, False)
    assert used.reason == "messages: version 1 was used for 11 messages, at or past the limit of 10"


def test_age_is_measured_from_the_current_version_not_the_key():
    old_key = metadata(versions=[("1", NOW - 500 * DAY), ("2", NOW - 3 * DAY)])
    status = RotationPolicy().status(old_key, NOW)
    assert status.version == "2"
    assert status.age == 3 * DAY
    assert (status.should_rotate, status.expired) == (False, False)
    assert status.next_rotation == NOW - 3 * DAY + 90 * DAY


def test_counters_of_older_versions_do_not_count():
    policy = RotationPolicy(max_messages=5)
    key = KeyMetadata(
        ref=KeyRef.parse("local://k"),
        key_type=KeyType.AES_256,
        state=KeyState.ENABLED,
        created_at=NOW - 50 * DAY,
        current_version="2",
        versions=(
            KeyVersion(version="1", created_at=NOW - 50 * DAY, messages=9, bytes=0),
            KeyVersion(version="2", created_at=NOW - DAY, messages=4, bytes=0),
        ),
    )
    status = policy.status(key, NOW)
    assert (status.version, status.messages, status.should_rotate) == ("2", 4, False)
    current_used = metadata(versions=[("1", NOW - 50 * DAY)], messages=5)
    assert policy.status(current_used, NOW).should_rotate is True


def test_uncounted_usage_never_triggers_a_limit():
    policy = RotationPolicy(max_messages=1, max_bytes=1)
    status = policy.status(metadata(NOW - DAY, messages=None, byte_count=None), NOW)
    assert status.should_rotate is False
    assert (status.messages, status.bytes) == (None, None)


def test_a_version_dated_in_the_future_has_age_zero():
    status = RotationPolicy().status(metadata(NOW + 2 * DAY), NOW)
    assert status.age == timedelta(0)
    assert status.should_rotate is False


def test_now_must_be_timezone_aware():
    with pytest.raises(ConfigError, match="timezone-aware"):
        RotationPolicy().status(metadata(), datetime(2031, 1, 1))


def test_status_to_dict_is_json_ready():
    data = RotationPolicy().status(metadata(NOW - 100 * DAY, messages=3, byte_count=4), NOW)
    assert data.to_dict() == {
        "version": "1",
        "age_seconds": 100 * 86400,
        "age": "100 days",
        "should_rotate": True,
        "expired": False,
        "next_rotation": (NOW - 10 * DAY).isoformat(),
        "expires_at": (NOW + 265 * DAY).isoformat(),
        "messages": 3,
        "bytes": 4,
        "reason": (
            "interval: version 1 is 100 days old, at or past the rotation interval of 90 days"
        ),
    }


@pytest.mark.parametrize(
    ("span", "text"),
    [
        (timedelta(0), "0 seconds"),
        (timedelta(seconds=1), "1 second"),
        (timedelta(minutes=90), "1.5 hours"),
        (DAY, "1 day"),
        (90 * DAY, "90 days"),
        (-2 * DAY, "-2 days"),
    ],
)
def test_format_span(span, text):
    assert format_span(span) == text


# -- versions that may be used -----------------------------------------------------------------


def test_usable_versions_skip_disabled_destroyed_and_below_minimum():
    key = metadata(
        versions=[(str(n), NOW - (10 - n) * DAY) for n in range(1, 6)],
        minimum="2",
        states={"3": KeyState.DISABLED, "4": KeyState.DESTROYED},
    )
    assert usable_versions(key) == ["5", "2"]
    assert usable_versions(metadata(versions=[("a", NOW - DAY), ("b", NOW)])) == ["b", "a"]


# -- the [rotation] table ------------------------------------------------------------------------


def test_config_without_rotation_uses_the_defaults():
    assert StackConfig.from_dict({}).rotation == RotationPolicy()
    assert KeyStack.from_dict({}).rotation_policy == RotationPolicy()


def test_config_rotation_table():
    config = StackConfig.from_dict(
        {
            "rotation": {
                "interval_days": 30,
                "max_age_days": 60.5,
                "max_messages": 1000,
                "max_bytes": 2**30,
                "retire_after_max_age": True,
            }
        }
    )
    assert config.rotation == RotationPolicy(
        interval=30 * DAY,
        max_age=timedelta(days=60.5),
        max_messages=1000,
        max_bytes=2**30,
        retire_after_max_age=True,
    )
    assert config.rotation.to_dict() == {
        "interval_days": 30.0,
        "max_age_days": 60.5,
        "max_messages": 1000,
        "max_bytes": 2**30,
        "retire_after_max_age": True,
    }


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("weekly", r"cfg: \[rotation\] must be a table"),
        ({"interval": 30}, r"cfg: \[rotation\] unknown key\(s\) interval; allowed: interval_days"),
        ({"interval_days": "90"}, r"\[rotation\] interval_days must be a positive number of days"),
        ({"interval_days": 0}, r"\[rotation\] interval_days must be a positive number"),
        ({"max_age_days": True}, r"\[rotation\] max_age_days must be a positive number"),
        ({"max_age_days": float("nan")}, r"\[rotation\] max_age_days must be a positive number"),
        ({"max_age_days": float("inf")}, r"\[rotation\] max_age_days must be a finite number"),
        ({"max_messages": 0}, r"\[rotation\] max_messages must be a positive whole number"),
        ({"max_bytes": 1.0}, r"\[rotation\] max_bytes must be a positive whole number"),
        ({"retire_after_max_age": 1}, r"\[rotation\] retire_after_max_age must be true or false"),
        ({"interval_days": 400}, r"\[rotation\] rotation policy interval \(400 days\) is longer"),
    ],
)
def test_config_rotation_errors_name_the_place(table, message):
    with pytest.raises(ConfigError, match=message):
        StackConfig.from_dict({"rotation": table}, source="cfg")


def test_config_rotation_from_a_toml_file(tmp_path: Path):
    path = tmp_path / "aureus.toml"
    path.write_text("[rotation]\ninterval_days = 7\nmax_age_days = 30\n")
    assert StackConfig.from_file(path).rotation == RotationPolicy(
        interval=7 * DAY, max_age=30 * DAY
    )


# -- enforcement on the local provider ----------------------------------------------------------

AGES = [0, 30, 89, 90, 91, 200, 364, 365, 400, 1000]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW - 2000 * DAY)


@pytest.fixture
def local(tmp_path: Path, clock: FakeClock) -> Iterator[LocalKeyProvider]:
    provider = LocalKeyProvider(tmp_path / "ks", clock=clock)
    yield provider
    provider.close()


@pytest.fixture
def stack(local: LocalKeyProvider) -> Iterator[KeyStack]:
    with KeyStack(providers={"local": local}) as stack:
        yield stack


def make_aged_keys(stack: KeyStack, clock: FakeClock, ages: Sequence[int]) -> dict[str, int]:
    """One key per age (in days at NOW), alternating aes-256 and ed25519; returns uri -> age."""
    made: dict[str, int] = {}
    for index, age in sorted(enumerate(ages), key=lambda item: -item[1]):
        clock.set(NOW - age * DAY)
        key_type = "aes-256" if index % 2 == 0 else "ed25519"
        made[stack.create_key(f"key-{index:02d}-{age}d", key_type).uri] = age
    clock.set(NOW)
    return made


def test_key_status_lists_every_key_with_its_status(stack: KeyStack, clock: FakeClock):
    made = make_aged_keys(stack, clock, AGES)
    with capture_audit() as events:
        statuses = stack.key_status(now=NOW)
    assert [m.uri for m, _ in statuses] == sorted(made)
    for meta, status in statuses:
        age = made[meta.uri]
        assert status.age == age * DAY
        assert status.should_rotate == (age >= 90), meta.uri
        assert status.expired == (age >= 365), meta.uri
        assert status.next_rotation == NOW - age * DAY + 90 * DAY
        assert (status.messages, status.bytes) == (0, 0)
    assert [(e["operation"], e["details"]) for e in events] == [
        ("key_status", {"count": "10", "due": "7"})
    ]


def test_enforce_rotates_exactly_the_keys_that_are_due(
    stack: KeyStack, clock: FakeClock, local: LocalKeyProvider
):
    made = make_aged_keys(stack, clock, AGES)
    clock.advance(timedelta(hours=1))  # rotations happen at NOW + 1 hour
    with capture_audit() as events:
        actions = stack.enforce_rotation(now=NOW)
    due = sorted(uri for uri, age in made.items() if age >= 90)
    assert [a.key_uri for a in actions] == due
    for action in actions:
        assert (action.action, action.from_version, action.to_version, action.applied) == (
            "rotate",
            "1",
            "2",
            True,
        )
        expected = "expired" if made[action.key_uri] >= 365 else "interval"
        assert action.reason.startswith(f"{expected}: version 1 is {made[action.key_uri]} days")
    for uri, age in made.items():
        meta = local.describe_key(KeyRef.parse(uri))
        assert meta.current_version == ("2" if age >= 90 else "1"), uri
        if age >= 90:
            assert meta.current.created_at == NOW + timedelta(hours=1)
    rotated = [e for e in events if e["operation"] == "rotate" and e["phase"] == "outcome"]
    assert sorted(str(e["key_uri"]) for e in rotated) == due
    summary = [
        e for e in events if e["operation"] == "enforce_rotation" and e["phase"] == "outcome"
    ]
    assert summary[0]["details"] == {"dry_run": "false", "rotate": "7"}
    # Enforced once, the keys are within the policy until the next interval.
    assert stack.enforce_rotation(now=NOW + timedelta(hours=2)) == []
    again = stack.enforce_rotation(now=NOW + 91 * DAY)
    assert [a.key_uri for a in again] == sorted(made)


def test_dry_run_reports_the_same_actions_and_changes_nothing(
    stack: KeyStack, clock: FakeClock, local: LocalKeyProvider
):
    make_aged_keys(stack, clock, AGES)
    keystore = local.keystore_dir / "keystore.json"
    before = keystore.read_bytes()
    planned = stack.enforce_rotation(dry_run=True, now=NOW)
    assert keystore.read_bytes() == before
    assert all(meta.current_version == "1" for meta in local.list_keys())
    assert [(a.action, a.from_version, a.to_version, a.applied) for a in planned] == [
        ("rotate", "1", None, False)
    ] * 7
    assert "(dry run)" in planned[0].describe()
    done = stack.enforce_rotation(now=NOW)
    assert [(a.key_uri, a.reason) for a in done] == [(a.key_uri, a.reason) for a in planned]


def test_enforce_takes_the_stack_policy_and_usage_limits(local: LocalKeyProvider, clock: FakeClock):
    clock.set(NOW - DAY)
    config = StackConfig.from_dict({"rotation": {"max_messages": 3, "max_bytes": 100}})
    with KeyStack(config=config, providers={"local": local}) as stack:
        stack.create_key("wrapper", "aes-256")
        stack.create_key("signer", "ed25519")
        stack.create_key("idle", "aes-256")
        for _ in range(3):
            local.wrap(KeyRef.parse("local://wrapper"), bytes(32), CONTEXT)
        stack.sign(b"x" * 100, key="local://signer")
        actions = stack.enforce_rotation(now=NOW)
    assert [(a.key_uri, a.action, a.reason) for a in actions] == [
        (
            "local://signer",
            "rotate",
            "bytes: version 1 was used for 100 bytes, at or past the limit of 100",
        ),
        (
            "local://wrapper",
            "rotate",
            "messages: version 1 was used for 3 messages, at or past the limit of 3",
        ),
    ]


def test_enforce_with_an_explicit_policy_overrides_the_stack_one(stack: KeyStack, clock: FakeClock):
    made = make_aged_keys(stack, clock, [5, 20, 40])
    weekly = RotationPolicy(interval=7 * DAY, max_age=30 * DAY)
    actions = stack.enforce_rotation(weekly, dry_run=True, now=NOW)
    assert sorted(a.key_uri for a in actions) == sorted(u for u, age in made.items() if age >= 7)
    assert stack.enforce_rotation(dry_run=True, now=NOW) == []


# -- retiring old versions -------------------------------------------------------------------


def test_retire_raises_the_minimum_past_versions_older_than_max_age(
    stack: KeyStack, clock: FakeClock, local: LocalKeyProvider
):
    start = NOW - 400 * DAY
    clock.set(start)
    stack.create_key("payments", "aes-256")
    old_message = stack.encrypt(b"year-old data", keys=["local://payments"])
    for days in (100, 200, 300):
        clock.set(start + days * DAY)
        stack.rotate_key("local://payments")
    recent_message = stack.encrypt(b"recent data", keys=["local://payments"])
    clock.set(NOW)
    policy = RotationPolicy(retire_after_max_age=True)

    assert stack.enforce_rotation(policy, dry_run=True, now=NOW)[1] == EnforcementAction(
        key_uri="local://payments",
        action="retire",
        from_version=None,
        to_version="2",
        reason="version(s) 1 are older than the maximum age of 365 days",
        applied=False,
    )
    assert local.describe_key(KeyRef.parse("local://payments")).min_decryption_version is None
    actions = stack.enforce_rotation(policy, now=NOW)
    assert [(a.action, a.from_version, a.to_version, a.applied) for a in actions] == [
        ("rotate", "4", "5", True),
        ("retire", None, "2", True),
    ]
    meta = local.describe_key(KeyRef.parse("local://payments"))
    assert (meta.current_version, meta.min_decryption_version) == ("5", "2")
    assert stack.decrypt(recent_message) == b"recent data"
    with pytest.raises(DecryptionError) as refused:
        stack.decrypt(old_message)
    assert "local://payments version 1 is below the minimum decryption version 2" in str(
        refused.value
    )
    assert stack.enforce_rotation(policy, now=NOW) == []


def test_retire_never_passes_the_version_that_was_current(
    stack: KeyStack, clock: FakeClock, local: LocalKeyProvider
):
    clock.set(NOW - 600 * DAY)
    stack.create_key("ancient", "ed25519")
    clock.set(NOW - 500 * DAY)
    stack.rotate_key("local://ancient")
    clock.set(NOW)
    policy = RotationPolicy(retire_after_max_age=True)
    actions = stack.enforce_rotation(policy, now=NOW)
    assert [(a.action, a.from_version, a.to_version) for a in actions] == [
        ("rotate", "2", "3"),
        ("retire", None, "2"),  # not 3: version 2 was current until this run
    ]
    assert local.describe_key(KeyRef.parse("local://ancient")).min_decryption_version == "2"
    later = stack.enforce_rotation(policy, now=NOW + DAY)
    assert [(a.action, a.from_version, a.to_version) for a in later] == [("retire", "2", "3")]


def test_retirement_target_examples():
    policy = RotationPolicy(retire_after_max_age=True)
    versions = [("1", NOW - 700 * DAY), ("2", NOW - 400 * DAY), ("3", NOW - 10 * DAY)]
    assert retirement_target(metadata(versions=versions), policy, NOW) == "3"
    assert retirement_target(metadata(versions=versions, minimum="3"), policy, NOW) is None
    assert retirement_target(metadata(versions=versions[:1]), policy, NOW) is None
    young = [("1", NOW - 300 * DAY), ("2", NOW - 10 * DAY)]
    assert retirement_target(metadata(versions=young), policy, NOW) is None


def test_retirement_stops_at_the_first_version_younger_than_max_age():
    """Versions 1 old, 2 young, 3 current: the minimum becomes 2, never skipping a young one."""
    policy = RotationPolicy(retire_after_max_age=True)
    versions = [("1", NOW - 700 * DAY), ("2", NOW - 100 * DAY), ("3", NOW - 10 * DAY)]
    assert retirement_target(metadata(versions=versions), policy, NOW) == "2"


def test_a_version_exactly_max_age_old_is_retired():
    """Expiry holds when the age reaches max_age, for retirement as for status."""
    policy = RotationPolicy(retire_after_max_age=True)
    versions = [("1", NOW - policy.max_age), ("2", NOW - 10 * DAY)]
    assert retirement_target(metadata(versions=versions), policy, NOW) == "2"
    versions = [("1", NOW - policy.max_age + timedelta(seconds=1)), ("2", NOW - 10 * DAY)]
    assert retirement_target(metadata(versions=versions), policy, NOW) is None


def test_retirement_never_passes_the_current_version():
    """A newer version that is not current yet (created, not promoted) is never the minimum."""
    policy = RotationPolicy(retire_after_max_age=True)
    versions = [("1", NOW - 700 * DAY), ("2", NOW - 400 * DAY), ("3", NOW - DAY)]
    assert retirement_target(metadata(versions=versions, current="2"), policy, NOW) == "2"


# -- providers that cannot, and providers that fail ----------------------------------------------


class Static(KeyProviderBase):
    """Lists one key with two old versions; rotates only when told it may, and then fails."""

    scheme = "static"
    capabilities = frozenset({Capability.LIST, Capability.DESCRIBE})

    def __init__(self, rotate: bool = False) -> None:
        if rotate:
            self.capabilities = self.capabilities | {Capability.ROTATE}

    def list_keys(self):
        return [
            KeyMetadata(
                ref=KeyRef.parse("static://old"),
                key_type=KeyType.AES_256,
                state=KeyState.ENABLED,
                created_at=NOW - 800 * DAY,
                current_version="7",
                versions=(
                    KeyVersion(version="6", created_at=NOW - 800 * DAY),
                    KeyVersion(version="7", created_at=NOW - 400 * DAY),
                ),
            )
        ]

    def rotate_key(self, key):
        raise ProviderUnavailable("the static backend is down; retry later", provider="static")


@pytest.mark.parametrize("can_rotate", [False, True])
def test_providers_that_cannot_rotate_or_fail_are_reported(
    local: LocalKeyProvider, clock: FakeClock, can_rotate: bool
):
    config = StackConfig.from_dict({"providers": {"static": {}}})
    with KeyStack(config=config, providers={"local": local, "static": Static(can_rotate)}) as s:
        clock.set(NOW - 100 * DAY)
        s.create_key("due", "aes-256")
        clock.set(NOW)
        actions = s.enforce_rotation(RotationPolicy(retire_after_max_age=True), now=NOW)
    assert [(a.key_uri, a.action, a.applied) for a in actions] == [
        ("local://due", "rotate", True),
        ("static://old", "failed" if can_rotate else "skip", False),
        ("static://old", "skip", False),
    ]
    rotate, retire = actions[1], actions[2]
    if can_rotate:
        assert rotate.reason.startswith("rotation failed: the static backend is down")
    else:
        assert rotate.reason.startswith(
            "provider 'static' cannot rotate keys, rotate static://old by hand; expired:"
        )
    assert retire.reason.startswith("provider 'static' cannot set a minimum decryption version")


class NoMinimum(Static):
    """Manages version states, as Cloud KMS and Key Vault do, but has no minimum version."""

    capabilities = frozenset({Capability.LIST, Capability.DESCRIBE, Capability.LIFECYCLE})

    def set_min_decryption_version(self, key, version):
        raise AssertionError("the stack called a method whose capability is not declared")


@pytest.mark.parametrize("dry_run", [True, False])
def test_retire_on_a_provider_without_a_minimum_is_an_honest_skip(
    local: LocalKeyProvider, dry_run: bool
):
    """A dry run says what the real run does: skip, never a retire that cannot happen."""
    config = StackConfig.from_dict({"providers": {"static": {}}})
    with KeyStack(config=config, providers={"local": local, "static": NoMinimum()}) as s:
        actions = s.enforce_rotation(
            RotationPolicy(retire_after_max_age=True), dry_run=dry_run, now=NOW
        )
    retire = [a for a in actions if a.from_version is None and a.to_version == "7"]
    assert [(a.action, a.applied) for a in retire] == [("skip", False)]
    assert (
        retire[0]
        .describe()
        .startswith(
            "static://old: skip: provider 'static' cannot set a minimum decryption version; "
            "version(s) 6 are older than the maximum age"
        )
    )


class RefusesMinimum(NoMinimum):
    """Declares a minimum decryption version but refuses it for this key."""

    capabilities = NoMinimum.capabilities | {Capability.MIN_DECRYPTION_VERSION}

    def set_min_decryption_version(self, key, version):
        raise UnsupportedOperation("static", "set_min_decryption_version")


def test_retire_refused_by_a_declaring_provider_is_a_skip_not_a_failure(
    local: LocalKeyProvider,
):
    config = StackConfig.from_dict({"providers": {"static": {}}})
    with KeyStack(config=config, providers={"local": local, "static": RefusesMinimum()}) as s:
        actions = s.enforce_rotation(RotationPolicy(retire_after_max_age=True), now=NOW)
    retire = [a for a in actions if a.from_version is None and a.to_version == "7"]
    assert [(a.action, a.applied) for a in retire] == [("skip", False)]
    assert "set_min_decryption_version" in retire[0].reason
    assert "disable the old versions instead" in retire[0].reason


def test_cli_style_exit_on_failure_is_visible_in_actions(local: LocalKeyProvider):
    config = StackConfig.from_dict({"providers": {"static": {}}})
    with KeyStack(config=config, providers={"local": local, "static": Static(True)}) as s:
        actions = s.enforce_rotation(now=NOW)
    assert [a.action for a in actions] == ["failed"]
    assert "retry later" in actions[0].describe()


# -- verify does not fall back to retired versions --------------------------------------------


def test_verify_with_a_raw_signature_skips_versions_below_the_minimum(stack: KeyStack):
    stack.create_key("signer", "ed25519")
    old = stack.sign(b"release", key="local://signer")
    stack.rotate_key("local://signer")
    assert stack.verify(b"release", old.value, key="local://signer") is True
    stack.set_min_decryption_version("local://signer", "2")
    assert stack.verify(b"release", old.value, key="local://signer") is False
    with pytest.raises(KeyDisabled, match="version 1 is below the minimum decryption version 2"):
        stack.verify(b"release", old, key="local://signer")
    stack.set_min_decryption_version("local://signer", "1")
    stack.set_version_state("local://signer?version=1", "disabled")
    assert stack.verify(b"release", old.value, key="local://signer") is False
    with pytest.raises(KeyDisabled, match="local://signer version 1 is disabled"):
        stack.verify(b"release", old, key="local://signer")
    stack.set_version_state("local://signer?version=1", KeyState.ENABLED)
    assert stack.verify(b"release", old, key="local://signer") is True


def test_stack_lifecycle_methods_need_the_capability(tmp_path: Path):
    config = StackConfig.from_dict({"stack": {"default_provider": "static"}})
    with KeyStack(config=config, providers={"static": Static()}) as s:
        for call in (
            lambda: s.set_version_state("static://old?version=7", "disabled"),
            lambda: s.set_min_decryption_version("static://old", "7"),
            lambda: s.destroy_version("static://old?version=7", confirm=True),
        ):
            with pytest.raises(Exception, match="does not support") as refused:
                call()
            assert type(refused.value).__name__ == "UnsupportedOperation"
        with pytest.raises(ConfigError, match="unknown key state 'gone'"):
            s.set_version_state("static://old?version=7", "gone")


# -- time, spans and words ---------------------------------------------------------------------


def test_status_without_now_is_taken_at_the_current_utc_time():
    created = datetime.now(timezone.utc) - 10 * DAY
    status = RotationPolicy().status(metadata(created))
    assert 10 * DAY <= status.age < 10 * DAY + timedelta(minutes=5)
    assert status.should_rotate is False


def test_now_in_another_time_zone_is_the_same_instant():
    plus_five = timezone(timedelta(hours=5))
    local_now = NOW.astimezone(plus_five)
    assert RotationPolicy().status(metadata(NOW - 90 * DAY), local_now).age == 90 * DAY


def test_a_naive_now_is_refused_saying_how_to_make_an_aware_one():
    with pytest.raises(ConfigError) as caught:
        RotationPolicy().status(metadata(), datetime(2031, 1, 1))
    assert str(caught.value) == (
        "now must be a timezone-aware datetime (e.g. datetime.now(timezone.utc))"
    )


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (59, "59 seconds"),
        (60, "1 minute"),
        (90, "1.5 minutes"),
        (3599, "60 minutes"),
        (3600, "1 hour"),
        (86399, "24 hours"),
        (86400, "1 day"),
        (-60, "-1 minute"),
    ],
)
def test_format_span_switches_unit_exactly_at_a_whole_minute_hour_and_day(seconds, text):
    assert format_span(timedelta(seconds=seconds)) == text


def test_an_interval_longer_than_max_age_is_refused_saying_what_to_change():
    with pytest.raises(ConfigError) as caught:
        RotationPolicy(interval=30 * DAY, max_age=20 * DAY)
    assert str(caught.value) == (
        "rotation policy interval (30 days) is longer than max_age (20 days): a key would "
        "expire before it is due for rotation; shorten the interval or lengthen max_age"
    )


def test_a_non_boolean_retire_flag_is_refused_in_words():
    with pytest.raises(ConfigError) as caught:
        RotationPolicy(retire_after_max_age=1)  # type: ignore[arg-type]
    assert str(caught.value) == "rotation policy retire_after_max_age must be true or false"


def test_unknown_rotation_options_are_listed_with_the_allowed_ones():
    with pytest.raises(ConfigError) as caught:
        RotationPolicy.from_options({"weekly": True, "interval": 7, "max_messages": 5})
    assert str(caught.value) == (
        "unknown key(s) interval, weekly; allowed: interval_days, max_age_days, "
        "max_messages, max_bytes, retire_after_max_age"
    )


def test_rotation_options_take_fractions_of_a_day_and_limits_from_one():
    policy = RotationPolicy.from_options(
        {"interval_days": 0.5, "max_age_days": 1, "max_messages": 1, "max_bytes": 1}
    )
    assert policy == RotationPolicy(
        interval=timedelta(hours=12), max_age=DAY, max_messages=1, max_bytes=1
    )
    assert RotationPolicy(max_messages=1, max_bytes=1).max_messages == 1


def test_a_key_without_a_record_of_its_current_version_is_dated_from_its_creation():
    key = KeyMetadata(
        ref=KeyRef.parse("static://bare"),
        key_type=KeyType.AES_256,
        state=KeyState.ENABLED,
        created_at=NOW - 100 * DAY,
        current_version="v9",
    )
    status = RotationPolicy().status(key, NOW)
    assert (status.version, status.age, status.should_rotate) == ("v9", 100 * DAY, True)
    assert status.next_rotation == NOW - 10 * DAY
    assert (status.messages, status.bytes) == (None, None)


@pytest.mark.parametrize(
    ("action", "text"),
    [
        (
            EnforcementAction(
                key_uri="local://k",
                action="rotate",
                from_version="1",
                to_version="2",
                reason="interval: ...",
                applied=True,
            ),
            "local://k: rotate from version 1 to 2: interval: ...",
        ),
        (
            EnforcementAction(
                key_uri="local://k",
                action="rotate",
                from_version="1",
                to_version=None,
                reason="interval: ...",
                applied=False,
            ),
            "local://k: rotate from version 1 to a new version (dry run): interval: ...",
        ),
        (
            EnforcementAction(
                key_uri="local://k",
                action="retire",
                from_version=None,
                to_version="3",
                reason="old",
                applied=True,
            ),
            "local://k: raise the minimum decryption version from none to 3: old",
        ),
        (
            EnforcementAction(
                key_uri="local://k",
                action="retire",
                from_version="2",
                to_version="3",
                reason="old",
                applied=False,
            ),
            "local://k: raise the minimum decryption version from 2 to 3 (dry run): old",
        ),
        (
            EnforcementAction(
                key_uri="static://k",
                action="skip",
                from_version="1",
                to_version=None,
                reason="cannot",
                applied=False,
            ),
            "static://k: skip: cannot",
        ),
        (
            EnforcementAction(
                key_uri="static://k",
                action="failed",
                from_version="1",
                to_version=None,
                reason="down",
                applied=False,
            ),
            "static://k: failed: down",
        ),
    ],
)
def test_each_action_describes_itself_in_one_line(action, text):
    assert action.describe() == text


def test_an_action_to_dict_holds_every_field():
    action = EnforcementAction(
        key_uri="local://k",
        action="retire",
        from_version=None,
        to_version="3",
        reason="old",
        applied=True,
    )
    assert action.to_dict() == {
        "key_uri": "local://k",
        "action": "retire",
        "from_version": None,
        "to_version": "3",
        "reason": "old",
        "applied": True,
    }


# -- which keys enforcement sees ----------------------------------------------------------------


class DescribeOnly(KeyProviderBase):
    """Describes any key it is asked about (one version, 100 days old), and cannot list."""

    scheme = "desc"
    capabilities = frozenset({Capability.DESCRIBE})

    def __init__(self) -> None:
        self.asked: list[str] = []

    def describe_key(self, key):
        self.asked.append(key.uri)
        return KeyMetadata(
            ref=key,
            key_type=KeyType.AES_256,
            state=KeyState.ENABLED,
            created_at=NOW - 100 * DAY,
            current_version="1",
            versions=(KeyVersion(version="1", created_at=NOW - 100 * DAY),),
        )


class Blind(KeyProviderBase):
    """Neither lists nor describes."""

    scheme = "blind"
    capabilities = frozenset()


def test_configured_keys_of_describe_only_providers_are_seen_once_each(
    stack: KeyStack, local: LocalKeyProvider, clock: FakeClock
):
    clock.set(NOW - DAY)
    stack.create_key("listed", "aes-256")
    described = DescribeOnly()
    config = StackConfig.from_dict(
        {
            "providers": {"desc": {}, "blind": {}},
            "stack": {
                "wrapping_keys": [
                    "local://listed",
                    "desc://wrap?version=2",
                    "blind://hidden",
                    "desc://wrap",
                ],
                "signing_key": "desc://sign",
            },
            "audit": {"hash_key": "desc://hash"},
        }
    )
    providers = {"local": local, "desc": described, "blind": Blind()}
    with KeyStack(config=config, providers=providers) as s:
        described.asked.clear()
        seen = [(meta.uri, status.should_rotate) for meta, status in s.key_status(now=NOW)]
    assert seen == [
        ("desc://hash", True),
        ("desc://sign", True),
        ("desc://wrap", True),
        ("local://listed", False),
    ]
    # Asked without a version, once per key; the listed local key is not described again.
    assert described.asked == ["desc://wrap", "desc://sign", "desc://hash"]


def test_enforce_called_directly_applies_its_actions(stack: KeyStack, clock: FakeClock):
    from aureus_core.rotation import enforce

    made = make_aged_keys(stack, clock, [100])
    actions = enforce(stack, RotationPolicy(), now=NOW)
    assert [(a.key_uri, a.action, a.applied) for a in actions] == [(*made, "rotate", True)]
    assert stack.describe_key(next(iter(made))).current_version == "2"


class DisabledKey(Static):
    """Lists its key as disabled: due for rotation, but not to be rotated."""

    capabilities = Static.capabilities | {Capability.ROTATE}

    def list_keys(self):
        import attrs

        return [attrs.evolve(meta, state=KeyState.DISABLED) for meta in super().list_keys()]

    def rotate_key(self, key):
        raise AssertionError("a disabled key was rotated")


def test_a_disabled_key_that_is_due_is_skipped_saying_why(local: LocalKeyProvider):
    config = StackConfig.from_dict({"providers": {"static": {}}})
    with KeyStack(config=config, providers={"local": local, "static": DisabledKey()}) as s:
        actions = s.enforce_rotation(now=NOW)
    assert [(a.key_uri, a.action, a.applied) for a in actions] == [("static://old", "skip", False)]
    assert actions[0].reason == (
        "the key is disabled; expired: version 7 is 400 days old, at or past the maximum "
        "age of 365 days"
    )


class FailsMinimum(NoMinimum):
    """Declares a minimum decryption version, and its backend is down when asked for one."""

    capabilities = NoMinimum.capabilities | {Capability.MIN_DECRYPTION_VERSION}

    def set_min_decryption_version(self, key, version):
        raise ProviderUnavailable("the static backend is down; retry later", provider="static")


def test_a_retirement_the_provider_fails_is_reported_as_failed_with_its_error(
    local: LocalKeyProvider,
):
    config = StackConfig.from_dict({"providers": {"static": {}}})
    with KeyStack(config=config, providers={"local": local, "static": FailsMinimum()}) as s:
        actions = s.enforce_rotation(RotationPolicy(retire_after_max_age=True), now=NOW)
    retire = [a for a in actions if a.to_version == "7"]
    assert [(a.action, a.from_version, a.applied) for a in retire] == [("failed", None, False)]
    assert retire[0].reason.startswith("raising the minimum failed: the static backend is down")
    assert retire[0].reason.endswith("; version(s) 6 are older than the maximum age of 365 days")


def test_an_applied_retirement_names_every_version_it_retires(
    stack: KeyStack, clock: FakeClock, local: LocalKeyProvider
):
    clock.set(NOW - 900 * DAY)
    stack.create_key("aged", "aes-256")
    for days_ago in (800, 700, 10):
        clock.set(NOW - days_ago * DAY)
        stack.rotate_key("local://aged")
    clock.set(NOW)
    actions = stack.enforce_rotation(RotationPolicy(retire_after_max_age=True), now=NOW)
    assert [(a.action, a.from_version, a.to_version, a.applied, a.reason) for a in actions] == [
        (
            "retire",
            None,
            "4",
            True,
            "version(s) 1, 2, 3 are older than the maximum age of 365 days",
        )
    ]
    assert local.describe_key(KeyRef.parse("local://aged")).min_decryption_version == "4"


def test_key_group_and_verify_keys_of_describe_only_providers_are_seen(
    local: LocalKeyProvider,
):
    """A key named only in [stack.key_groups] or verify_keys is still under the policy."""
    described = DescribeOnly()
    config = StackConfig.from_dict(
        {
            "providers": {"desc": {}},
            "stack": {
                "key_groups": {"a": ["desc://group-a"], "b": ["desc://group-b"]},
                "threshold": 2,
                "verify_keys": ["desc://release-signer"],
            },
        }
    )
    with KeyStack(config=config, providers={"local": local, "desc": described}) as s:
        seen = sorted(meta.uri for meta, _ in s.key_status(now=NOW))
    assert seen == ["desc://group-a", "desc://group-b", "desc://release-signer"]


def test_retirement_never_lowers_the_minimum_decryption_version():
    """Version 2 is young, but the minimum is already 3 (set by hand): nothing to do, and
    above all not a move back down to 2."""
    policy = RotationPolicy(retire_after_max_age=True)
    versions = [("1", NOW - 700 * DAY), ("2", NOW - 10 * DAY), ("3", NOW - 5 * DAY), ("4", NOW)]
    assert retirement_target(metadata(versions=versions, minimum="3"), policy, NOW) is None
    assert retirement_target(metadata(versions=versions, minimum="1"), policy, NOW) == "2"


def test_a_policy_in_fractions_of_a_day_reads_back_unrounded():
    policy = RotationPolicy(interval=timedelta(hours=36), max_age=timedelta(hours=60))
    assert (policy.to_dict()["interval_days"], policy.to_dict()["max_age_days"]) == (1.5, 2.5)
