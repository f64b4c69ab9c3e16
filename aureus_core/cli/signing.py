"""``aureus sign`` and ``aureus verify`` (exit 0 valid, 1 invalid, 2 error)."""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path
from typing import Any

import click

from .app import main, read_input, stack_of
from .atomic import atomic_output


@main.command("sign")
@click.option(
    "--key", "key", default=None, metavar="URI", help="Signing key (default: [stack] signing_key)."
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False),
    help="Write the raw signature bytes to this file instead of printing base64.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print a JSON record with the signature, key URI, version and algorithm.",
)
@click.argument("file", default="-")
@click.pass_context
def sign_command(
    ctx: click.Context, key: str | None, output: str | None, as_json: bool, file: str
) -> None:
    """Sign FILE (or stdin) and print the signature in base64."""
    signature = stack_of(ctx).sign(read_input(file), key=key)
    if output:
        with atomic_output(output) as handle:
            handle.write(signature.value)
    elif as_json:
        click.echo(signature.to_json())
    else:
        click.echo(base64.b64encode(signature.value).decode("ascii"))


_BASE64 = re.compile(rb"^[A-Za-z0-9+/]+={0,2}$")


def _load_signature(value: str) -> Any:
    """Decode ``--signature``: base64 text, or ``@FILE`` with raw bytes, base64 or JSON."""
    from ..signature import Signature

    if value.startswith("@"):
        data = Path(value[1:]).read_bytes()
        stripped = data.strip()
        if stripped.startswith(b"{"):
            return Signature.from_json(stripped)
        if _BASE64.match(stripped) and len(stripped) % 4 == 0:
            return base64.b64decode(stripped)
        return data
    text = value.strip()
    if text.startswith("{"):
        return Signature.from_json(text)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise click.BadParameter(
            "not valid base64; pass the signature in base64, or @FILE for a file",
            param_hint="--signature",
        ) from None


@main.command("verify")
@click.option(
    "--key",
    "keys",
    multiple=True,
    metavar="URI",
    help="A trusted verification key (repeatable). Default: [stack] verify_keys, else "
    "signing_key. The key a signature record names is never trusted on its own.",
)
@click.option(
    "--signature",
    "signature",
    required=True,
    metavar="B64_OR_@FILE",
    help="The signature: base64, or @FILE (raw bytes, base64 or a JSON record).",
)
@click.argument("file", default="-")
@click.pass_context
def verify_command(ctx: click.Context, keys: tuple[str, ...], signature: str, file: str) -> None:
    """Verify FILE (or stdin) against a trusted key: exit 0 if valid, 1 if not, 2 on error."""
    from ..signature import Signature

    stack = stack_of(ctx)
    decoded = _load_signature(signature)
    anchors = stack.verification_keys(list(keys) or None)
    if isinstance(decoded, Signature) and stack.trusted_ref(decoded, anchors) is None:
        trusted = ", ".join(anchor.uri for anchor in anchors)
        click.echo(
            f"signature INVALID: the record names {decoded.key_uri} version "
            f"{decoded.key_version}, which is not a trusted key ({trusted}); "
            "name the keys you trust with --key or [stack] verify_keys",
            err=True,
        )
        ctx.exit(1)
    if stack.verify(read_input(file), decoded, key=anchors):
        click.echo("signature valid", err=True)
        return
    click.echo("signature INVALID", err=True)
    ctx.exit(1)
