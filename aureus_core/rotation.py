"""Rotation policy, key status and enforcement (see docs/rotation.md).

:class:`RotationPolicy` says when a key's current version is due for rotation
(its age, or its usage counters) and when it has expired; :meth:`RotationPolicy.status`
evaluates it for one key at one time.  :func:`key_status` evaluates every key a
stack can see, and :func:`enforce` rotates the keys that are due and, when the
policy asks for it, raises their minimum decryption version past versions older
than ``max_age``.  Time is always a parameter (``now=``), never read implicitly
where a caller could pass it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

import attrs

from .errors import AureusError, ConfigError, UnsupportedOperation
from .interfaces import Capability, KeyProvider
from .keyref import KeyRef
from .keys import KeyMetadata, KeyState, KeyVersion

DEFAULT_INTERVAL = timedelta(days=90)
"""Rotate a key's current version after this long (the seed system's threshold)."""
DEFAULT_MAX_AGE = timedelta(days=365)
"""A current version this old has expired (the seed system's threshold)."""

CONFIG_KEYS = ("interval_days", "max_age_days", "max_messages", "max_bytes", "retire_after_max_age")
"""The keys of the ``[rotation]`` table."""

_DAY = timedelta(days=1)


def _check_span(name: str, value: object) -> None:
    if not isinstance(value, timedelta):
        raise ConfigError(f"rotation policy {name} must be a timedelta, not {type(value).__name__}")
    if value <= timedelta(0):
        raise ConfigError(f"rotation policy {name} must be positive, not {format_span(value)}")


def _check_limit(name: str, value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(
            f"rotation policy {name} must be a positive whole number or None, not {value!r}"
        )


def _utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(timezone.utc)
    if not isinstance(now, datetime) or now.tzinfo is None:
        raise ConfigError("now must be a timezone-aware datetime (e.g. datetime.now(timezone.utc))")
    return now.astimezone(timezone.utc)


def format_span(span: timedelta) -> str:
    """A duration for people: ``90 days``, ``1.5 days``, ``3 hours``, ``0 seconds``."""
    seconds = span.total_seconds()
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    for unit, size in (("day", 86400.0), ("hour", 3600.0), ("minute", 60.0)):
        if seconds >= size:
            text = f"{seconds / size:.1f}".removesuffix(".0")
            return f"{sign}{text} {unit}{'' if text == '1' else 's'}"
    text = f"{seconds:.0f}"
    return f"{sign}{text} second{'' if text == '1' else 's'}"


@attrs.frozen(kw_only=True)
class RotationStatus:
    """Where one key stands against a policy at one time."""

    version: str
    """The current version the status is about."""
    age: timedelta
    """Time since the current version was created (zero if it is dated in the future)."""
    should_rotate: bool
    """The age reached the interval, or a usage counter reached its limit."""
    expired: bool
    """The age reached ``max_age``."""
    next_rotation: datetime
    """When the current version reaches the interval: its creation time plus the interval."""
    expires_at: datetime
    """When the current version reaches ``max_age``."""
    messages: int | None = None
    """The current version's message counter (``None``: the provider does not count)."""
    bytes: int | None = None
    """The current version's byte counter (``None``: the provider does not count)."""
    reason: str
    """Why it should rotate (every cause, ``; ``-separated), or why not yet."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description."""
        return {
            "version": self.version,
            "age_seconds": int(self.age.total_seconds()),
            "age": format_span(self.age),
            "should_rotate": self.should_rotate,
            "expired": self.expired,
            "next_rotation": self.next_rotation.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "messages": self.messages,
            "bytes": self.bytes,
            "reason": self.reason,
        }


@attrs.frozen(kw_only=True)
class RotationPolicy:
    """When to rotate a key's current version, and when it has expired.

    ``should_rotate`` holds exactly when the current version's age reaches
    ``interval`` or one of its usage counters reaches its limit
    (``max_messages``, ``max_bytes``; ``None`` means no limit); ``expired``
    holds exactly when the age reaches ``max_age``.  ``interval`` may not
    exceed ``max_age``, so an expired key is always due for rotation.
    ``retire_after_max_age`` makes :func:`enforce` raise each key's minimum
    decryption version past versions older than ``max_age``.
    """

    interval: timedelta = DEFAULT_INTERVAL
    max_age: timedelta = DEFAULT_MAX_AGE
    max_messages: int | None = None
    max_bytes: int | None = None
    retire_after_max_age: bool = False

    def __attrs_post_init__(self) -> None:
        _check_span("interval", self.interval)
        _check_span("max_age", self.max_age)
        if self.interval > self.max_age:
            raise ConfigError(
                f"rotation policy interval ({format_span(self.interval)}) is longer than "
                f"max_age ({format_span(self.max_age)}): a key would expire before it is due "
                "for rotation; shorten the interval or lengthen max_age"
            )
        _check_limit("max_messages", self.max_messages)
        _check_limit("max_bytes", self.max_bytes)
        if not isinstance(self.retire_after_max_age, bool):
            raise ConfigError("rotation policy retire_after_max_age must be true or false")

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> RotationPolicy:
        """A policy from the ``[rotation]`` table's keys (days as numbers); ConfigError if bad."""
        unknown = sorted(set(options) - set(CONFIG_KEYS))
        if unknown:
            raise ConfigError(
                f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(CONFIG_KEYS)}"
            )

        def days(name: str, default: timedelta) -> timedelta:
            value = options.get(name)
            if value is None:
                return default
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ConfigError(f"{name} must be a positive number of days, not {value!r}")
            try:
                return timedelta(days=value)
            except (OverflowError, ValueError):
                raise ConfigError(
                    f"{name} must be a finite number of days below 999999999, not {value!r}"
                ) from None

        def limit(name: str) -> int | None:
            value = options.get(name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise ConfigError(f"{name} must be a positive whole number, not {value!r}")
            return value

        retire = options.get("retire_after_max_age", False)
        if not isinstance(retire, bool):
            raise ConfigError(f"retire_after_max_age must be true or false, not {retire!r}")
        return cls(
            interval=days("interval_days", DEFAULT_INTERVAL),
            max_age=days("max_age_days", DEFAULT_MAX_AGE),
            max_messages=limit("max_messages"),
            max_bytes=limit("max_bytes"),
            retire_after_max_age=retire,
        )

    def to_dict(self) -> dict[str, Any]:
        """The policy in the ``[rotation]`` table's terms."""
        return {
            "interval_days": self.interval / _DAY,
            "max_age_days": self.max_age / _DAY,
            "max_messages": self.max_messages,
            "max_bytes": self.max_bytes,
            "retire_after_max_age": self.retire_after_max_age,
        }

    def status(self, metadata: KeyMetadata, now: datetime | None = None) -> RotationStatus:
        """Evaluate the policy for ``metadata``'s current version at ``now`` (default: now)."""
        now = _utc(now)
        current = _current(metadata)
        created = current.created_at
        age = max(timedelta(0), now - created)
        messages, byte_count = current.messages, current.bytes
        version = current.version
        reasons: list[str] = []
        expired = age >= self.max_age
        over_messages = (
            self.max_messages is not None and messages is not None and messages >= self.max_messages
        )
        over_bytes = (
            self.max_bytes is not None and byte_count is not None and byte_count >= self.max_bytes
        )
        should_rotate = age >= self.interval or over_messages or over_bytes
        if expired:
            reasons.append(
                f"expired: version {version} is {format_span(age)} old, at or past the "
                f"maximum age of {format_span(self.max_age)}"
            )
        elif age >= self.interval:
            reasons.append(
                f"interval: version {version} is {format_span(age)} old, at or past the "
                f"rotation interval of {format_span(self.interval)}"
            )
        if over_messages:
            reasons.append(
                f"messages: version {version} was used for {messages} messages, at or past "
                f"the limit of {self.max_messages}"
            )
        if over_bytes:
            reasons.append(
                f"bytes: version {version} was used for {byte_count} bytes, at or past "
                f"the limit of {self.max_bytes}"
            )
        next_rotation = created + self.interval
        if not should_rotate:
            reasons.append(
                f"ok: version {version} is {format_span(age)} old; rotation due in "
                f"{format_span(next_rotation - now)}"
            )
        return RotationStatus(
            version=version,
            age=age,
            should_rotate=should_rotate,
            expired=expired,
            next_rotation=next_rotation,
            expires_at=created + self.max_age,
            messages=messages,
            bytes=byte_count,
            reason="; ".join(reasons),
        )


def _current(metadata: KeyMetadata) -> KeyVersion:
    """The current version's details, or a stand-in dated at the key's creation."""
    for info in metadata.versions:
        if info.version == metadata.current_version:
            return info
    return KeyVersion(version=metadata.current_version, created_at=metadata.created_at)


def _oldest_first(metadata: KeyMetadata) -> list[KeyVersion]:
    """The versions by creation time, oldest first (listing order breaks ties)."""
    return sorted(metadata.versions, key=lambda v: v.created_at)


def usable_versions(metadata: KeyMetadata) -> list[str]:
    """Versions that may unwrap and verify, newest first: enabled and not below the minimum.

    "Below" means created before the minimum version (providers name
    versions in their own ways; creation order is what every one has).
    """
    ordered = _oldest_first(metadata)
    names = [v.version for v in ordered]
    minimum = metadata.min_decryption_version
    floor = names.index(minimum) if minimum in names else 0
    return [v.version for v in reversed(ordered[floor:]) if v.state is KeyState.ENABLED]


@attrs.frozen(kw_only=True)
class EnforcementAction:
    """One thing :func:`enforce` did (or, in a dry run, would do) to one key.

    ``action`` is ``rotate`` (a new current version), ``retire`` (a higher
    minimum decryption version), ``skip`` (due, but the provider or key
    cannot do it) or ``failed`` (the provider refused; ``reason`` says why).
    """

    key_uri: str
    action: str
    from_version: str | None
    """The current version before a rotation, or the minimum before a retirement."""
    to_version: str | None
    """The new current version or minimum (``None`` in a dry-run rotation: not known yet)."""
    reason: str
    applied: bool
    """Whether the change was made (``False`` for dry runs, skips and failures)."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description."""
        return attrs.asdict(self)

    def describe(self) -> str:
        """One line for people."""
        if self.action == "rotate":
            target = self.to_version or "a new version"
            what = f"rotate from version {self.from_version} to {target}"
        elif self.action == "retire":
            what = (
                f"raise the minimum decryption version from {self.from_version or 'none'} "
                f"to {self.to_version}"
            )
        else:
            what = self.action
        done = "" if self.applied or self.action in ("skip", "failed") else " (dry run)"
        return f"{self.key_uri}: {what}{done}: {self.reason}"


class ConfiguredKeys(Protocol):
    """The parts of a stack configuration that name keys and providers."""

    @property
    def default_provider(self) -> str:
        """The scheme of bare key names."""
        ...

    @property
    def providers(self) -> Mapping[str, Mapping[str, Any]]:
        """Configured provider schemes and their options."""
        ...

    @property
    def wrapping_keys(self) -> Sequence[KeyRef]:
        """The keys new messages are wrapped by."""
        ...

    @property
    def signing_key(self) -> KeyRef | None:
        """The key the stack signs with."""
        ...

    @property
    def audit_hash_key(self) -> KeyRef | None:
        """The key audit hashes are keyed by."""
        ...

    @property
    def named_keys(self) -> Sequence[KeyRef]:
        """Wrapping keys, key-group members and the signing key."""
        ...

    @property
    def verify_keys(self) -> Sequence[KeyRef]:
        """The keys ``verify`` trusts."""
        ...


class RotationScope(Protocol):
    """What key status and enforcement need of a stack.

    :class:`~aureus_core.stack.KeyStack` is one; this module never imports it,
    so the stack uses rotation and not the other way round.
    """

    @property
    def config(self) -> ConfiguredKeys:
        """The stack's configuration."""
        ...

    @property
    def rotation_policy(self) -> RotationPolicy:
        """The policy used when the caller passes none."""
        ...

    def provider(self, scheme: str) -> KeyProvider:
        """The provider of ``scheme``."""
        ...

    def rotate_key(self, key: KeyRef) -> KeyMetadata:
        """Rotate ``key``, audited."""
        ...

    def set_min_decryption_version(self, key: KeyRef, version: str) -> KeyMetadata:
        """Raise ``key``'s minimum decryption version, audited."""
        ...


def visible_keys(stack: RotationScope) -> list[KeyMetadata]:
    """Every key the stack can see, by URI.

    Listed from each provider that can list (the default provider and every
    configured one), plus the keys the configuration names (wrapping keys,
    key-group members, the signing key, verify keys, the audit hash key) of
    providers that can only describe.
    """
    config = stack.config
    found: dict[str, KeyMetadata] = {}
    schemes = sorted({config.default_provider, *config.providers})
    for scheme in schemes:
        provider = stack.provider(scheme)
        if Capability.LIST in provider.capabilities:
            found.update((m.uri, m) for m in provider.list_keys())
    configured: list[KeyRef] = [*config.named_keys, *config.verify_keys]
    configured += [config.audit_hash_key] if config.audit_hash_key is not None else []
    for ref in configured:
        base = ref.with_version(None)
        if base.uri in found:
            continue
        provider = stack.provider(ref.scheme)
        if Capability.DESCRIBE in provider.capabilities:
            metadata = provider.describe_key(base)
            found.setdefault(metadata.uri, metadata)
    return [found[uri] for uri in sorted(found)]


def key_status(
    stack: RotationScope, policy: RotationPolicy, now: datetime | None = None
) -> list[tuple[KeyMetadata, RotationStatus]]:
    """Every visible key with its status under ``policy`` at ``now``, by URI."""
    now = _utc(now)
    return [(metadata, policy.status(metadata, now)) for metadata in visible_keys(stack)]


def retirement_target(metadata: KeyMetadata, policy: RotationPolicy, now: datetime) -> str | None:
    """The minimum decryption version that retires versions older than ``max_age``.

    ``None`` when it would not raise the current minimum.  Never above the
    current version of ``metadata`` (the one before any rotation enforcement
    makes): data keys cached before a rotation keep being used for a while,
    so the version that was just current is retired on a later run at the
    earliest.
    """
    ordered = _oldest_first(metadata)
    names = [v.version for v in ordered]
    if metadata.current_version not in names:
        return None
    cap = names.index(metadata.current_version)
    target = cap
    for index, info in enumerate(ordered[: cap + 1]):
        if now - info.created_at < policy.max_age:
            target = index
            break
    minimum = metadata.min_decryption_version
    floor = names.index(minimum) if minimum in names else 0
    return names[target] if target > floor else None


def enforce(
    stack: RotationScope,
    policy: RotationPolicy | None = None,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
) -> list[EnforcementAction]:
    """Rotate every visible key that is due; retire old versions if the policy says so.

    Rotations go through :meth:`~aureus_core.stack.KeyStack.rotate_key` and minimum changes
    through :meth:`~aureus_core.stack.KeyStack.set_min_decryption_version`, so each is audited.
    A provider that cannot rotate (or set a minimum) gives a ``skip`` action;
    a provider error gives a ``failed`` action and enforcement goes on with
    the other keys.  ``dry_run=True`` reports the same actions and changes
    nothing.
    """
    policy = policy if policy is not None else stack.rotation_policy
    now = _utc(now)
    actions: list[EnforcementAction] = []
    for metadata, status in key_status(stack, policy, now):
        if status.should_rotate:
            actions.append(_rotate(stack, metadata, status, dry_run))
        if policy.retire_after_max_age:
            target = retirement_target(metadata, policy, now)
            if target is not None:
                actions.append(_retire(stack, metadata, target, policy, dry_run))
    return actions


def _rotate(
    stack: RotationScope, metadata: KeyMetadata, status: RotationStatus, dry_run: bool
) -> EnforcementAction:
    uri, current = metadata.uri, metadata.current_version

    def action(
        kind: str, reason: str, to: str | None = None, applied: bool = False
    ) -> EnforcementAction:
        return EnforcementAction(
            key_uri=uri,
            action=kind,
            from_version=current,
            to_version=to,
            reason=reason,
            applied=applied,
        )

    if metadata.state is not KeyState.ENABLED:
        return action("skip", f"the key is {metadata.state.value}; {status.reason}")
    if Capability.ROTATE not in stack.provider(metadata.ref.scheme).capabilities:
        return action(
            "skip",
            f"provider {metadata.ref.scheme!r} cannot rotate keys, rotate {uri} by hand; "
            f"{status.reason}",
        )
    if dry_run:
        return action("rotate", status.reason)
    try:
        rotated = stack.rotate_key(metadata.ref.with_version(None))
    except AureusError as error:
        return action("failed", f"rotation failed: {error}; {status.reason}")
    return action("rotate", status.reason, rotated.current_version, applied=True)


def _retire(
    stack: RotationScope,
    metadata: KeyMetadata,
    target: str,
    policy: RotationPolicy,
    dry_run: bool,
) -> EnforcementAction:
    uri, minimum = metadata.uri, metadata.min_decryption_version
    older = [v.version for v in _oldest_first(metadata)]
    retired = older[: older.index(target)]
    if minimum in older:
        retired = retired[older.index(minimum) :]
    reason = (
        f"version(s) {', '.join(retired)} are older than the maximum age of "
        f"{format_span(policy.max_age)}"
    )

    def action(kind: str, why: str, applied: bool = False) -> EnforcementAction:
        return EnforcementAction(
            key_uri=uri,
            action=kind,
            from_version=minimum,
            to_version=target,
            reason=why,
            applied=applied,
        )

    if Capability.MIN_DECRYPTION_VERSION not in stack.provider(metadata.ref.scheme).capabilities:
        return action(
            "skip",
            f"provider {metadata.ref.scheme!r} cannot set a minimum decryption version; {reason}",
        )
    if dry_run:
        return action("retire", reason)
    try:
        stack.set_min_decryption_version(metadata.ref.with_version(None), target)
    except UnsupportedOperation as error:
        return action("skip", f"{error}; disable the old versions instead; {reason}")
    except AureusError as error:
        return action("failed", f"raising the minimum failed: {error}; {reason}")
    return action("retire", reason, applied=True)


def summarize(actions: Sequence[EnforcementAction]) -> dict[str, int]:
    """How many actions of each kind, for audit details and reports."""
    counts: dict[str, int] = {}
    for item in actions:
        counts[item.action] = counts.get(item.action, 0) + 1
    return counts


__all__ = [
    "DEFAULT_INTERVAL",
    "DEFAULT_MAX_AGE",
    "ConfiguredKeys",
    "EnforcementAction",
    "RotationPolicy",
    "RotationScope",
    "RotationStatus",
    "enforce",
    "format_span",
    "key_status",
    "retirement_target",
    "usable_versions",
    "visible_keys",
]
