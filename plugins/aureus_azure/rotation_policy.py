"""Map an Aureus :class:`RotationPolicy` onto Key Vault's own key rotation policy.

``interval`` becomes a ``Rotate`` lifetime action ``timeAfterCreate``;
``max_age`` becomes the policy's ``expiryTime`` (new versions expire that long
after creation).  Usage limits (``max_messages``, ``max_bytes``) have no Key
Vault counterpart and are left to ``aureus rotate`` enforcement.
"""

from __future__ import annotations

import re
from datetime import timedelta

from azure.keyvault.keys import (
    KeyRotationLifetimeAction,
    KeyRotationPolicy,
    KeyRotationPolicyAction,
)

from aureus_core.rotation import DEFAULT_MAX_AGE, RotationPolicy

_DURATION = re.compile(
    r"^P(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?$"
)


def iso_duration(span: timedelta) -> str:
    """An ISO 8601 duration: whole days as ``P90D``, anything else in seconds."""
    seconds = int(span.total_seconds())
    if seconds % 86400 == 0:
        return f"P{seconds // 86400}D"
    return f"PT{seconds}S"


def parse_duration(text: str) -> timedelta:
    """Parse what :func:`iso_duration` and Key Vault write (years as 365, months as 30 days)."""
    match = _DURATION.match(text.strip().upper())
    if not match or text.strip().upper() in ("P", "PT"):
        raise ValueError(f"not an ISO 8601 duration: {text!r}")
    values = {name: int(value or 0) for name, value in match.groupdict().items()}
    return timedelta(
        days=values["years"] * 365 + values["months"] * 30 + values["days"],
        hours=values["hours"],
        minutes=values["minutes"],
        seconds=values["seconds"],
    )


def to_key_vault(policy: RotationPolicy) -> KeyRotationPolicy:
    """Key Vault's rotation policy for ``policy``."""
    action = KeyRotationLifetimeAction(
        KeyRotationPolicyAction.rotate, time_after_create=iso_duration(policy.interval)
    )
    return KeyRotationPolicy(lifetime_actions=[action], expires_in=iso_duration(policy.max_age))


def from_key_vault(policy: KeyRotationPolicy) -> RotationPolicy | None:
    """The Aureus policy a Key Vault policy expresses (``None``: it never rotates)."""
    interval = None
    for action in policy.lifetime_actions or []:
        kind = str(getattr(action.action, "value", action.action)).lower()
        if kind == "rotate" and action.time_after_create:
            interval = parse_duration(action.time_after_create)
    if interval is None:
        return None
    max_age = parse_duration(policy.expires_in) if policy.expires_in else DEFAULT_MAX_AGE
    return RotationPolicy(interval=interval, max_age=max(max_age, interval))
