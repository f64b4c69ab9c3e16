"""``aureus sign`` and ``aureus verify`` (exit 0 valid, 1 invalid, 2 error)."""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path
from typing import Any

import click

from ..signing_policy import DEFAULT_PAYLOAD_TYPE
from .app import fail, main, read_input, stack_of
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
@click.option(
    "--policy",
    "policy_path",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="A signing policy (k of n keys): sign with its keys this machine can use and "
    "add the signatures to the DSSE bundle --add-to.",
)
@click.option(
    "--add-to",
    "bundle_path",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="BUNDLE",
    help="With --policy: the DSSE bundle to append to (created from FILE if absent).",
)
@click.option(
    "--payload-type",
    default=DEFAULT_PAYLOAD_TYPE,
    show_default=True,
    help="With --policy: the DSSE payloadType of a new bundle.",
)
@click.argument("file", default=None, required=False)
@click.pass_context
def sign_command(
    ctx: click.Context,
    key: str | None,
    output: str | None,
    as_json: bool,
    policy_path: str | None,
    bundle_path: str | None,
    payload_type: str,
    file: str | None,
) -> None:
    """Sign FILE (or stdin) and print the signature in base64.

    With --policy and --add-to, add this machine's signatures to a k-of-n bundle.
    """
    if policy_path is not None or bundle_path is not None:
        if policy_path is None or bundle_path is None:
            fail("--policy and --add-to go together: aureus sign --policy P --add-to B [FILE]")
        _add_to_bundle(ctx, policy_path, bundle_path, payload_type, key, file)
        return
    signature = stack_of(ctx).sign(read_input(file or "-"), key=key)
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
    default=None,
    metavar="B64_OR_@FILE",
    help="The signature: base64, or @FILE (raw bytes, base64 or a JSON record).",
)
@click.option(
    "--policy",
    "policy_path",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="Check FILE as a DSSE bundle against this signing policy (k of n keys). The "
    "policy's SHA-256 must be pinned ([stack] policy_pins or --policy-sha256).",
)
@click.option(
    "--policy-sha256",
    "policy_pins",
    multiple=True,
    metavar="HEX",
    help="A pinned SHA-256 of the policy file (repeatable; adds to [stack] policy_pins).",
)
@click.argument("file", default="-")
@click.pass_context
def verify_command(
    ctx: click.Context,
    keys: tuple[str, ...],
    signature: str | None,
    policy_path: str | None,
    policy_pins: tuple[str, ...],
    file: str,
) -> None:
    """Verify FILE (or stdin) against a trusted key: exit 0 if valid, 1 if not, 2 on error.

    With --policy, FILE is a DSSE bundle: valid when k distinct policy keys signed it.
    """
    from ..signature import Signature

    stack = stack_of(ctx)
    if policy_path is not None:
        if signature is not None or keys:
            fail("--policy checks a bundle's own signatures: leave out --signature and --key")
        _verify_bundle(ctx, stack, policy_path, policy_pins, file)
        return
    if signature is None:
        fail("missing --signature (or --policy P to check a DSSE bundle)")
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


def _add_to_bundle(
    ctx: click.Context,
    policy_path: str,
    bundle_path: str,
    payload_type: str,
    key: str | None,
    file: str | None,
) -> None:
    """``sign --policy P --add-to B``: append this machine's signatures to the bundle."""
    from ..signing_policy import Bundle, SigningPolicy, sign

    # Signing grants nothing, so the signer's copy of the policy need not be pinned:
    # it only lists which keys to try; the verifier's pinned copy decides.
    policy = SigningPolicy.parse(Path(policy_path).read_bytes())
    target = Path(bundle_path)
    if target.exists():
        bundle = Bundle.from_json(target.read_bytes())
        if file is not None and read_input(file) != bundle.payload:
            fail(f"{file} is not the payload of bundle {bundle_path}: sign the same artifact", 1)
    else:
        bundle = Bundle(payload_type=payload_type, payload=read_input(file or "-"))
    bundle, problems = sign(stack_of(ctx), policy, bundle, keys=[key] if key is not None else None)
    with atomic_output(target) as handle:
        handle.write(bundle.to_json().encode("utf-8") + b"\n")
    for problem in problems:
        click.echo(f"not signed: {problem}", err=True)
    click.echo(f"{bundle_path}: {len(bundle.signatures)} signature(s)", err=True)


def _verify_bundle(
    ctx: click.Context, stack: Any, policy_path: str, pins: tuple[str, ...], file: str
) -> None:
    """``verify --policy P BUNDLE``: exit 0 when k distinct policy keys signed."""
    from ..signing_policy import Bundle, SigningPolicy, verify

    policy = SigningPolicy.load(policy_path, pins=[*stack.config.policy_pins, *pins])
    verdict = verify(stack, policy, Bundle.from_json(read_input(file)))
    for note in verdict.notes:
        click.echo(f"  note: {note}", err=True)
    click.echo(verdict.describe(), err=True)
    if not verdict.valid:
        ctx.exit(1)
