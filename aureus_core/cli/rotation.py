"""``aureus keys status|enforce|enable|disable|min-version|destroy``: rotation and lifecycle.

Exit codes: 0 on success (``keys status`` always, whatever the keys' state),
2 on errors, including an ``enforce`` run in which a rotation failed and a
``destroy`` without ``--yes``.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import click

from ..keyref import KeyRef
from ..keys import KeyMetadata, KeyState
from ..rotation import RotationPolicy, RotationStatus, format_span
from .app import fail, stack_of
from .keys import keys_group


def _now_option(f: Any) -> Any:
    return click.option(
        "--now",
        "now_text",
        default=None,
        metavar="ISO-8601",
        help="Evaluate as of this time instead of now (e.g. 2031-01-01T00:00:00Z), to plan ahead.",
    )(f)


def _parse_now(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not an ISO 8601 time such as 2031-01-01T00:00:00+00:00",
            param_hint="--now",
        ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def _policy_line(policy: RotationPolicy) -> str:
    parts = [
        f"rotate after {format_span(policy.interval)}",
        f"expire after {format_span(policy.max_age)}",
    ]
    if policy.max_messages is not None:
        parts.append(f"or {policy.max_messages} messages")
    if policy.max_bytes is not None:
        parts.append(f"or {policy.max_bytes} bytes")
    if policy.retire_after_max_age:
        parts.append("retire versions older than the maximum age")
    return "policy: " + ", ".join(parts)


def _status_word(status: RotationStatus) -> str:
    if status.expired:
        return "EXPIRED"
    return "ROTATE" if status.should_rotate else "ok"


def _status_json(metadata: KeyMetadata, status: RotationStatus) -> dict[str, Any]:
    return {
        "uri": metadata.uri,
        "type": metadata.key_type.value,
        "current_version": metadata.current_version,
        "min_decryption_version": metadata.min_decryption_version,
        **status.to_dict(),
    }


@keys_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_now_option
@click.pass_context
def keys_status(ctx: click.Context, as_json: bool, now_text: str | None) -> None:
    """Show every key's age, rotation and expiry state, next rotation and usage.

    Uses the stack's [rotation] policy (default: rotate after 90 days, expire
    after 365). Exits 0 whatever the keys' state; `aureus keys enforce` acts.
    """
    stack = stack_of(ctx)
    policy = stack.rotation_policy
    statuses = stack.key_status(policy, now=_parse_now(now_text))
    if as_json:
        document = {
            "policy": policy.to_dict(),
            "keys": [_status_json(metadata, status) for metadata, status in statuses],
        }
        click.echo(json.dumps(document, indent=2))
        return
    click.echo(_policy_line(policy))
    if not statuses:
        click.echo("no keys")
        return
    for metadata, status in statuses:
        usage = ""
        if status.messages is not None:
            usage = f"  {status.messages} messages, {status.bytes or 0} bytes"
        click.echo(
            f"{metadata.uri}  v{status.version}  {_status_word(status)}  "
            f"age {format_span(status.age)}  next rotation "
            f"{status.next_rotation.date().isoformat()}{usage}"
        )
        if status.should_rotate:
            click.echo(f"  {status.reason}")


@keys_group.command("enforce")
@click.option("--dry-run", is_flag=True, help="Report what would be done; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_now_option
@click.pass_context
def keys_enforce(ctx: click.Context, dry_run: bool, as_json: bool, now_text: str | None) -> None:
    """Rotate every key due under the [rotation] policy, and print each action.

    With retire_after_max_age, also raise each key's minimum decryption version
    past versions older than max_age. Exits 2 if any action failed.
    """
    stack = stack_of(ctx)
    actions = stack.enforce_rotation(dry_run=dry_run, now=_parse_now(now_text))
    if as_json:
        click.echo(json.dumps([a.to_dict() for a in actions], indent=2))
    elif not actions:
        click.echo("nothing to do: every key is within the rotation policy")
    else:
        for action in actions:
            click.echo(action.describe())
    failed = [a for a in actions if a.action == "failed"]
    if failed:
        fail(f"{len(failed)} of {len(actions)} action(s) failed; see above")


def _version_label(metadata: KeyMetadata, uri: str) -> str:
    return f"{metadata.uri} version {KeyRef.parse(uri).version}"


@keys_group.command("disable")
@click.argument("uri", metavar="URI?version=N")
@click.pass_context
def keys_disable(ctx: click.Context, uri: str) -> None:
    """Disable one key version: it no longer unwraps or verifies (reversible)."""
    metadata = stack_of(ctx).set_version_state(uri, KeyState.DISABLED)
    click.echo(f"{_version_label(metadata, uri)} is now disabled")


@keys_group.command("enable")
@click.argument("uri", metavar="URI?version=N")
@click.pass_context
def keys_enable(ctx: click.Context, uri: str) -> None:
    """Enable a disabled key version again."""
    metadata = stack_of(ctx).set_version_state(uri, KeyState.ENABLED)
    click.echo(f"{_version_label(metadata, uri)} is now enabled")


@keys_group.command("min-version")
@click.argument("uri")
@click.argument("version")
@click.pass_context
def keys_min_version(ctx: click.Context, uri: str, version: str) -> None:
    """Refuse unwrap and verify with versions of URI below VERSION (reversible)."""
    metadata = stack_of(ctx).set_min_decryption_version(uri, version)
    click.echo(f"{metadata.uri}: minimum decryption version is now {version}")


@keys_group.command("destroy")
@click.argument("uri", metavar="URI?version=N")
@click.option("--yes", is_flag=True, help="Confirm: the material is erased for good.")
@click.pass_context
def keys_destroy(ctx: click.Context, uri: str, yes: bool) -> None:
    """Erase one disabled (or below-minimum) key version's material, for good.

    Nothing it wrapped or signed can be unwrapped or verified afterwards.
    Without --yes, nothing is destroyed and the command exits 2.
    """
    metadata = stack_of(ctx).destroy_version(uri, confirm=yes)
    click.echo(f"{_version_label(metadata, uri)} is destroyed")
