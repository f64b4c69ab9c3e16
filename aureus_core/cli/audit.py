"""``aureus audit verify`` (exit 0 intact, 1 broken, 2 error) and ``aureus audit tail``.

Both read the logs of the ``jsonl`` audit sink (format in
:mod:`aureus_core.audit.chain`, imported when a command runs).
"""

from __future__ import annotations

import re
from collections import deque
from pathlib import Path
from typing import Any

import click

from ..errors import ConfigError
from ..keyref import KeyRef
from .app import AureusGroup, main, stack_of


@main.group("audit", cls=AureusGroup)
def audit_group() -> None:
    """Check and read hash-chained audit logs (the jsonl audit sink)."""


@audit_group.command("verify")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--mac-key",
    metavar="URI",
    help="Require an HMAC chain under this key (the sink's hmac_key); used through the stack.",
)
@click.option(
    "--checkpoint-key",
    metavar="URI",
    help="Require signed checkpoints by this key and verify them through the stack "
    "(URI?version=N: only signatures by that version count).",
)
@click.option(
    "--public-key",
    "public_keys",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True),
    help="Verify checkpoints with this PEM public key instead (repeatable: one per version).",
)
@click.option(
    "--head",
    type=click.Path(dir_okay=False),
    help="The head file to check the end of the log against (default: FILE.head if present).",
)
@click.option(
    "--no-head",
    is_flag=True,
    help="Declare that the log has no head file (then a cut tail goes unnoticed without "
    "--anchor); without it, a missing head file fails.",
)
@click.option(
    "--anchor",
    type=click.Path(dir_okay=False, exists=True),
    help="The log's anchor file (the sink's anchor option): fail if the log ends before its "
    "latest entry or does not hold the anchored records.",
)
@click.option(
    "--from-seq",
    type=click.IntRange(min=0),
    default=0,
    metavar="N",
    help="The seq the log is kept from, when its oldest files were removed on purpose "
    "(retention); without it, a log that does not start at seq 0 fails.",
)
@click.option(
    "--allow-format-1",
    is_flag=True,
    help="Accept files of the older format aureus-audit-jsonl/1, which carry no log ID.",
)
@click.pass_context
def audit_verify(
    ctx: click.Context,
    files: tuple[str, ...],
    mac_key: str | None,
    checkpoint_key: str | None,
    public_keys: tuple[str, ...],
    head: str | None,
    no_head: bool,
    anchor: str | None,
    from_seq: int,
    allow_format_1: bool,
) -> None:
    """Check that FILE... (a log and the files it was rotated into) form one intact chain.

    Prints OK with the number of records, or the first broken link: an edited,
    inserted, deleted or reordered record, missing oldest files, a broken file
    boundary, a cut tail (with the head file), or a log rolled back behind its
    anchor.  Exit 0 if intact, 1 if not, 2 on errors (a key provider that
    fails is an error, never a verdict).
    """
    from ..audit import derive_key
    from ..audit.chain import (
        head_path,
        provider_signature_check,
        public_key_check,
        verify_chain,
    )

    if head and no_head:
        raise click.UsageError("--head and --no-head exclude each other")
    if public_keys and checkpoint_key:
        raise click.UsageError("give --checkpoint-key or --public-key, not both")
    logs = [Path(f) for f in files if not f.endswith(".head")]
    heads = [Path(f) for f in files if f.endswith(".head")]
    if not logs:
        raise click.UsageError("give at least one log file")
    if head:
        heads.append(Path(head))
    if len(heads) > 1:
        raise click.UsageError("give one head file at most")
    head_file = heads[0] if heads else None
    if head_file is None and not no_head:
        found = [head_path(log) for log in logs if head_path(log).exists()]
        active = [log for log in logs if not re.search(r"\.\d{6,}$", log.name)]
        if len(found) == 1:
            head_file = found[0]
        elif not found and len(active) == 1:
            head_file = head_path(active[0])  # missing: verify says so

    def mac(uri: str, label: bytes) -> bytes:
        return derive_key(stack_of(ctx).provider, KeyRef.parse(uri), label)[0]

    check = None
    if public_keys:
        check = public_key_check([Path(p).read_bytes() for p in public_keys])
    elif checkpoint_key:
        scheme = KeyRef.parse(checkpoint_key).scheme
        check = provider_signature_check(stack_of(ctx).provider(scheme), checkpoint_key)
    if mac_key is not None:
        KeyRef.parse(mac_key)
    verdict = verify_chain(
        logs,
        head=head_file,
        no_head=no_head,
        anchor=Path(anchor) if anchor else None,
        mac_key=mac_key,
        mac=mac if mac_key else None,
        check_signature=check,
        checkpoint_key=checkpoint_key,
        allow_format_1=allow_format_1,
        from_seq=from_seq,
    )
    if verdict.ok:
        click.echo(verdict.message)
    else:
        click.echo(f"FAILED: {verdict.message}")
    for note in verdict.notes:
        click.echo(f"note: {note}")
    if no_head and anchor is None:
        click.echo(
            "note: --no-head without --anchor: a log cut back to an earlier checkpoint would verify"
        )
    ctx.exit(0 if verdict.ok else 1)


def _pretty(record: dict[str, Any]) -> str:
    seq, kind = record.get("seq"), record.get("kind")
    if kind != "event":
        sig = record.get("sig")
        signer = f" signed by {sig.get('key')} v{sig.get('version')}" if sig else ""
        if kind == "file":
            info = record.get("file") or {}
            params = info.get("params") or {}
            mode = params.get("mac_key") or params.get("alg")
            return f"--- seq {seq}: file {info.get('index')} ({mode}){signer} ---"
        return f"--- seq {seq}: {kind}{signer} ---"
    event = record.get("event") or {}
    time = str(event.get("time", ""))[:19].replace("T", " ")
    key = event.get("key_uri", "-")
    if event.get("key_version"):
        key += f" v{event['key_version']}"
    extras = []
    if event.get("byte_count") is not None:
        extras.append(f"{event['byte_count']} B")
    if event.get("context_keys"):
        extras.append("context " + ",".join(event["context_keys"]))
    if event.get("principal"):
        extras.append(f"by {event['principal']}")
    for name, value in (event.get("details") or {}).items():
        extras.append(f"{name}={value}")
    if event.get("request_id"):
        extras.append(f"req {str(event['request_id'])[:8]}")
    return (
        f"{time}  {seq:>6}  {event.get('operation', '?'):<10} {event.get('phase', ''):<7} "
        f"{event.get('outcome', '?'):<16} {key}  {'  '.join(extras)}".rstrip()
    )


@audit_group.command("tail")
@click.option("-n", "count", default=10, show_default=True, help="How many records to show.")
@click.option("--json", "as_json", is_flag=True, help="Print the records as JSON lines.")
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
def audit_tail(count: int, as_json: bool, file: str) -> None:
    """Show the last records of an audit log (unverified: use `aureus audit verify`)."""
    import json

    from ..audit.chain import iter_records

    if count < 1:
        raise ConfigError("-n must be at least 1")
    try:
        last: deque[dict[str, Any]] = deque(iter_records([Path(file)]), maxlen=count)
    except ValueError as error:
        raise ConfigError(f"{file} is not a readable audit log ({error})") from None
    for record in last:
        click.echo(json.dumps(record, sort_keys=True) if as_json else _pretty(record))
