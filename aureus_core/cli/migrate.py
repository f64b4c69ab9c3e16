"""``aureus migrate``: a seed JSON envelope re-encrypted as a current message.

Exit codes are decrypt's: 0 when the envelope was migrated, 1 when it does
not decrypt and authenticate (wrong context, changed field, key not
allowed), 2 on other errors (a malformed envelope among them).  With ``-o``
the output appears only when the whole migration succeeded.
"""

from __future__ import annotations

import click

from .app import context_option, fail, main, output_stream, pairs, read_input, stack_of


class _MigrateFailed(Exception):
    """Carries a DecryptionError out of the output context so the file is discarded."""


@main.command("migrate")
@click.option(
    "--key",
    "keys",
    multiple=True,
    metavar="URI",
    help="Wrapping key of the new message (repeatable). Default: [stack] wrapping_keys.",
)
@context_option
@click.option("--signed", is_flag=True, help="Sign the new message (suite 0x0578).")
@click.option("-o", "--output", default=None, help="Output file (default stdout).")
@click.argument("infile", default="-", metavar="[IN|-]")
@click.pass_context
def migrate_command(
    ctx: click.Context,
    keys: tuple[str, ...],
    contexts: tuple[str, ...],
    signed: bool,
    output: str | None,
    infile: str,
) -> None:
    """Re-encrypt the seed JSON envelope IN (or stdin) into the current message format.

    --context gives the encryption context the seed system used with KMS (it
    is not stored in the envelope); the new message carries it as its own.
    Exit 0 on success, 1 if the envelope does not decrypt, 2 on other errors.
    """
    from ..errors import DecryptionError

    stack = stack_of(ctx)
    context = pairs(contexts, "--context")
    data = read_input(infile)
    try:
        with output_stream(output, binary=True) as dst:
            try:
                message = stack.migrate_seed(
                    data, context=context, keys=list(keys) or None, signed=signed
                )
            except DecryptionError as error:
                raise _MigrateFailed(str(error)) from None
            dst.write(message)
    except _MigrateFailed as failure:
        fail(str(failure), code=1)
