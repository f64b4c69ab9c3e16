"""``aureus encrypt``, ``decrypt`` and ``inspect``.

``decrypt`` exits 0 when the message authenticates, 1 when it does not and 2
on other errors (input that is not a message at all is one of them); with
``-o`` its output appears only once the whole message has authenticated, and
on stdout a signed message appears only once its signature has verified.
"""

from __future__ import annotations

import json

import click

from .app import context_option, fail, input_stream, main, output_stream, pairs, stack_of


class _DecryptFailed(Exception):
    """Carries a DecryptionError out of the output context so the file is discarded."""


@main.command("encrypt")
@click.option(
    "--key",
    "keys",
    multiple=True,
    metavar="URI",
    help="Wrapping key (repeatable; any one of them decrypts). Default: [stack] wrapping_keys.",
)
@context_option
@click.option(
    "--required-context",
    "required",
    multiple=True,
    metavar="KEY",
    help=(
        "A --context key whose pair is authenticated but not stored in the message"
        " (repeatable): decrypt must be given it with --context."
    ),
)
@click.option("--signed", is_flag=True, help="Add an ECDSA P-384 signature (suite 0x0578).")
@click.option("--frame-length", type=int, default=None, help="Frame length in bytes.")
@click.option("-o", "--output", default=None, help="Output file (default stdout).")
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr.")
@click.argument("infile", default="-", metavar="[IN|-]")
@click.pass_context
def encrypt_command(
    ctx: click.Context,
    keys: tuple[str, ...],
    contexts: tuple[str, ...],
    required: tuple[str, ...],
    signed: bool,
    frame_length: int | None,
    output: str | None,
    progress: bool | None,
    infile: str,
) -> None:
    """Encrypt IN (or stdin) into the AWS Encryption SDK message format."""
    stack = stack_of(ctx)
    context = pairs(contexts, "--context")
    with input_stream(infile, progress) as src, output_stream(output, binary=True) as dst:
        stack.encrypt_stream(
            src,
            dst,
            context=context,
            keys=list(keys) or None,
            signed=signed,
            frame_length=frame_length,
            required_context=list(required),
        )


@main.command("decrypt")
@click.option(
    "--key",
    "keys",
    multiple=True,
    metavar="URI",
    help="Only these wrapping keys may decrypt (strict mode). Default: discovery.",
)
@context_option
@click.option("-o", "--output", default=None, help="Output file (default stdout).")
@click.option(
    "--unverified-stream",
    is_flag=True,
    help="On stdout, release a signed message frame by frame before its signature "
    "is checked (the exit status still reports it).",
)
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr.")
@click.argument("infile", default="-", metavar="[IN|-]")
@click.pass_context
def decrypt_command(
    ctx: click.Context,
    keys: tuple[str, ...],
    contexts: tuple[str, ...],
    output: str | None,
    unverified_stream: bool,
    progress: bool | None,
    infile: str,
) -> None:
    """Decrypt IN (or stdin): exit 0 if it authenticates, 1 if not, 2 on other errors.

    With -o FILE, output goes to an unnamed temporary file linked into place
    only when the whole message has authenticated.  On stdout, each frame of
    an unsigned message is written once it authenticates; a signed message is
    held back (in memory, then in a temporary file sealed under a one-time
    key) until its signature verifies, unless --unverified-stream.
    """
    from ..errors import DecryptionError, NotAMessage

    stack = stack_of(ctx)
    context = pairs(contexts, "--context")
    to_stdout = output is None or output == "-"
    try:
        with input_stream(infile, progress) as src, output_stream(output) as dst:
            try:
                stack.decrypt_stream(
                    src,
                    dst,
                    context=context,
                    keys=list(keys) or None,
                    hold_signed=to_stdout and not unverified_stream,
                )
            except NotAMessage:
                raise
            except DecryptionError as error:
                raise _DecryptFailed(str(error)) from None
    except NotAMessage as error:
        fail(f"{_name(infile)} is {error}", code=2)
    except _DecryptFailed as failure:
        fail(str(failure), code=1)


def _name(infile: str) -> str:
    return "stdin" if infile == "-" else repr(infile)


@main.command("inspect")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.argument("infile", default="-", metavar="[IN|-]")
@click.pass_context
def inspect_command(ctx: click.Context, as_json: bool, infile: str) -> None:
    """Show a message's suite, ID, context, recipients and frame length, without decrypting."""
    from ..errors import DecryptionError, NotAMessage

    stack = stack_of(ctx)
    with input_stream(infile, False) as src:
        try:
            info = stack.inspect(src)
        except NotAMessage as error:
            fail(f"{_name(infile)} is {error}", code=2)
        except DecryptionError:
            fail("not a readable Aureus / AWS Encryption SDK message (the header is malformed)", 1)
    if as_json:
        click.echo(json.dumps(info.to_dict(), indent=2, ensure_ascii=False))
        return
    click.echo(f"suite:          0x{info.suite_id:04X} {info.suite_name}")
    click.echo(f"format version: {info.message_version}")
    click.echo(f"message id:     {info.message_id}")
    click.echo(f"signed:         {'yes' if info.signed else 'no'}")
    click.echo(f"key commitment: {'yes' if info.committing else 'no'}")
    click.echo(f"content type:   {info.content_type}")
    if info.content_type == "framed":
        click.echo(f"frame length:   {info.frame_length}")
    click.echo("required context: not recorded in a header (decrypt needs such pairs as --context)")
    click.echo("context:" + ("" if info.context else "        (empty)"))
    for name, value in info.context.items():
        click.echo(f"  {name} = {value}")
    click.echo("encrypted data keys:")
    for recipient in info.recipients:
        if recipient.keyring is not None:
            kind = "raw AES" if recipient.keyring == "raw-aes" else "raw RSA"
            click.echo(
                f"  {recipient.provider_id}  {recipient.key}  ({kind} keyring: key namespace "
                f"{recipient.provider_id!r}, key name {recipient.key!r})"
            )
        else:
            click.echo(f"  {recipient.provider_id}  {recipient.key}")
