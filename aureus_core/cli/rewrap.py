"""``aureus rewrap``: new wrapping keys for a message, re-encrypted in one streaming pass.

Exit codes are decrypt's: 0 when the message was rewrapped, 1 when it does not
authenticate (or its context or keys do not allow it), 2 on other errors.
With ``-o`` the output appears only when the whole rewrap succeeded, so
``-o msg.aes msg.aes`` rewraps a file in place safely.
"""

from __future__ import annotations

import click

from .app import context_option, fail, input_stream, main, output_stream, pairs, stack_of


class _RewrapFailed(Exception):
    """Carries a DecryptionError out of the output context so the file is discarded."""


@main.command("rewrap")
@click.option(
    "--to",
    "to_keys",
    multiple=True,
    required=True,
    metavar="URI",
    help="New wrapping key (repeatable; any one of them decrypts the result).",
)
@click.option(
    "--key",
    "keys",
    multiple=True,
    metavar="URI",
    help="Only these keys may unwrap the input (strict mode). Default: discovery.",
)
@context_option
@click.option(
    "--verify-body/--no-verify-body",
    default=True,
    hidden=True,
    help="Accepted for compatibility: every frame is always authenticated.",
)
@click.option("-o", "--output", default=None, help="Output file (default stdout).")
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr.")
@click.argument("infile", default="-", metavar="[IN|-]")
@click.pass_context
def rewrap_command(
    ctx: click.Context,
    to_keys: tuple[str, ...],
    keys: tuple[str, ...],
    contexts: tuple[str, ...],
    verify_body: bool,  # accepted for compatibility only
    output: str | None,
    progress: bool | None,
    infile: str,
) -> None:
    """Re-key IN (or stdin) for the --to keys.

    IN is decrypted with decrypt's checks (--key, --context, every frame, the
    signature) and re-encrypted in the same pass under a fresh data key,
    wrapped for every --to key, and a fresh message ID; the plaintext stays in
    memory, one frame at a time. Context, frame length and signing are kept.
    Exit 0 on success, 1 if the input does not authenticate, 2 on other errors
    (input that is not a message at all is one of them).
    """
    from ..errors import DecryptionError, NotAMessage

    stack = stack_of(ctx)
    context = pairs(contexts, "--context")
    try:
        with input_stream(infile, progress) as src, output_stream(output, binary=True) as dst:
            try:
                stack.rewrap_stream(
                    src,
                    dst,
                    to_keys=list(to_keys),
                    context=context,
                    keys=list(keys) or None,
                )
            except NotAMessage:
                raise
            except DecryptionError as error:
                raise _RewrapFailed(str(error)) from None
    except NotAMessage as error:
        fail(f"{'stdin' if infile == '-' else repr(infile)} is {error}", code=2)
    except _RewrapFailed as failure:
        fail(str(failure), code=1)
