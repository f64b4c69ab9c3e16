"""The ``aureus`` command line.

Errors print one line on stderr (``aureus: error: ...``) and exit 2, with a
traceback only under ``--debug``.  ``aureus verify`` exits 0 for a valid
signature, 1 for an invalid one and 2 on error.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, NoReturn, TypeVar

import click

from .errors import AureusError, ConfigError, KeyExists
from .keys import KeyMetadata, KeyType

F = TypeVar("F", bound=Callable[..., Any])

KEY_TYPES = [t.value for t in KeyType]


class _State:
    """Per-invocation state: global options and the lazily built stack."""

    def __init__(self, config: str | None, debug: bool) -> None:
        self.config = config
        self.debug = debug
        self._stack: Any = None

    @property
    def stack(self) -> Any:
        if self._stack is None:
            from .stack import KeyStack

            self._stack = KeyStack.from_config(self.config)
        return self._stack

    def close(self) -> None:
        if self._stack is not None:
            self._stack.close()


def _fail(message: str, code: int = 2) -> NoReturn:
    click.echo(f"aureus: error: {message}", err=True)
    sys.exit(code)


class _AureusGroup(click.Group):
    """Turns library errors into one clear line on stderr."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (AureusError, OSError) as error:
            state = ctx.obj if isinstance(ctx.obj, _State) else None
            debug = state.debug if state else "--debug" in sys.argv
            if debug:
                raise
            if isinstance(error, OSError):
                where = f" {error.filename}" if error.filename else ""
                _fail(f"{error.strerror or error}{':' if where else ''}{where}")
            _fail(str(error) or type(error).__name__)


@click.group(cls=_AureusGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config",
    type=click.Path(dir_okay=False),
    envvar="AUREUS_CONFIG",
    help="Stack configuration file (TOML). Default: $AUREUS_CONFIG, else the local keystore.",
)
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.version_option(package_name="aureus-kms", prog_name="aureus")
@click.pass_context
def main(ctx: click.Context, config: str | None, debug: bool) -> None:
    """Aureus: key management, signing and envelope encryption across key stores."""
    state = _State(config, debug)
    ctx.obj = state
    ctx.call_on_close(state.close)


def _stack(ctx: click.Context) -> Any:
    state: _State = ctx.find_object(_State)  # type: ignore[assignment]
    return state.stack


def _read_input(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    return Path(path).read_bytes()


@contextmanager
def _atomic_output(path: str) -> Iterator[IO[bytes]]:
    """Write to a temporary file beside ``path``; rename into place only on success."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent or ".")
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- plugins ------------------------------------------------------------------


@main.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def plugins_command(as_json: bool) -> None:
    """List plugins: what each registers, its version and status."""
    from .plugins import get_host

    infos = get_host().plugins()
    if as_json:
        click.echo(json.dumps([info.to_dict() for info in infos], indent=2))
        return
    if not infos:
        click.echo("no plugins installed")
        return
    for info in infos:
        version = info.version or "-"
        registers = (
            "; ".join(
                f"{kind.replace('_', ' ')}: {', '.join(names)}"
                for kind, names in info.registers.items()
            )
            or "nothing"
        )
        click.echo(f"{info.name}  {version}  {info.status.value}  ({registers})")
        if info.reason:
            click.echo(f"    reason: {info.reason}")
        if info.install_hint:
            click.echo(f"    fix: {info.install_hint}")


# -- keys ---------------------------------------------------------------------


@main.group("keys", cls=_AureusGroup)
def keys_group() -> None:
    """Create, list, describe, rotate and import keys."""


def _describe_lines(metadata: KeyMetadata) -> list[str]:
    lines = [
        f"uri:             {metadata.uri}",
        f"type:            {metadata.key_type.value} ({metadata.purpose.value})",
        f"state:           {metadata.state.value}",
        f"created:         {metadata.created_at.isoformat()}",
        f"current version: {metadata.current_version}",
    ]
    if metadata.description:
        lines.append(f"description:     {metadata.description}")
    for name, value in metadata.labels:
        lines.append(f"label:           {name}={value}")
    for name, value in metadata.extra:
        lines.append(f"{name + ':':<17}{value}")
    lines.append("versions:")
    for version in metadata.versions:
        marker = "*" if version.version == metadata.current_version else " "
        lines.append(
            f"  {marker} {version.version:<6} {version.state.value:<10} "
            f"{version.created_at.isoformat()}"
        )
    return lines


@keys_group.command("create")
@click.argument("name")
@click.option("--type", "key_type", type=click.Choice(KEY_TYPES), required=True, help="Key type.")
@click.option("--description", default="", help="Free-text description.")
@click.option("--label", "labels", multiple=True, metavar="K=V", help="A label (repeatable).")
@click.option(
    "--if-not-exists",
    is_flag=True,
    help="Succeed (printing the URI) when a key of that name already exists.",
)
@click.pass_context
def keys_create(
    ctx: click.Context,
    name: str,
    key_type: str,
    description: str,
    labels: tuple[str, ...],
    if_not_exists: bool,
) -> None:
    """Create a key and print its URI (NAME or scheme://NAME)."""
    stack = _stack(ctx)
    try:
        metadata = stack.create_key(
            name, key_type, description=description, labels=_pairs(labels, "--label")
        )
    except KeyExists:
        if not if_not_exists:
            raise
        ref = name if "://" in name else f"{stack.config.default_provider}://{name}"
        metadata = stack.describe_key(ref)
        if metadata.key_type.value != key_type:
            raise ConfigError(
                f"{metadata.uri} exists with type {metadata.key_type.value}, not {key_type}"
            ) from None
    click.echo(metadata.uri)


@keys_group.command("list")
@click.option("--provider", default=None, help="Only this provider scheme.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def keys_list(ctx: click.Context, provider: str | None, as_json: bool) -> None:
    """List keys."""
    keys = _stack(ctx).list_keys(provider)
    if as_json:
        click.echo(json.dumps([k.to_dict() for k in keys], indent=2))
        return
    for metadata in keys:
        click.echo(
            f"{metadata.uri}  {metadata.key_type.value}  v{metadata.current_version}  "
            f"{metadata.state.value}  {metadata.created_at.date().isoformat()}"
        )


@keys_group.command("describe")
@click.argument("uri")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def keys_describe(ctx: click.Context, uri: str, as_json: bool) -> None:
    """Show a key's metadata and versions."""
    metadata = _stack(ctx).describe_key(uri)
    if as_json:
        click.echo(json.dumps(metadata.to_dict(), indent=2))
    else:
        click.echo("\n".join(_describe_lines(metadata)))


@keys_group.command("rotate")
@click.argument("uri")
@click.pass_context
def keys_rotate(ctx: click.Context, uri: str) -> None:
    """Add a new current version; older versions keep working for unwrap and verify."""
    metadata = _stack(ctx).rotate_key(uri)
    click.echo(f"{metadata.uri} is now at version {metadata.current_version}")


@keys_group.command("import")
@click.argument("name")
@click.option("--type", "key_type", type=click.Choice(KEY_TYPES), required=True)
@click.option(
    "--raw-key-file",
    type=click.Path(dir_okay=False, exists=True),
    help="File holding raw AES key bytes (32 for aes-256).",
)
@click.option(
    "--pem-file",
    type=click.Path(dir_okay=False, exists=True),
    help="File holding an unencrypted PEM private key (ed25519, ecdsa-p256).",
)
@click.option(
    "--new-version", is_flag=True, help="Import as a new current version of an existing key."
)
@click.pass_context
def keys_import(
    ctx: click.Context,
    name: str,
    key_type: str,
    raw_key_file: str | None,
    pem_file: str | None,
    new_version: bool,
) -> None:
    """Import key material and print the key's URI."""
    if (raw_key_file is None) == (pem_file is None):
        raise click.UsageError("give exactly one of --raw-key-file or --pem-file")
    raw = Path(raw_key_file).read_bytes() if raw_key_file else None
    pem = Path(pem_file).read_bytes() if pem_file else None
    metadata = _stack(ctx).import_key(name, key_type, raw=raw, pem=pem, new_version=new_version)
    click.echo(metadata.uri)


@keys_group.command("public-key")
@click.argument("uri")
@click.pass_context
def keys_public_key(ctx: click.Context, uri: str) -> None:
    """Print the PEM public key of a signing key (pin a version with ?version=N)."""
    click.echo(_stack(ctx).public_key(uri).decode("ascii"), nl=False)


# -- sign / verify --------------------------------------------------------------


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
    signature = _stack(ctx).sign(_read_input(file), key=key)
    if output:
        with _atomic_output(output) as handle:
            handle.write(signature.value)
    elif as_json:
        click.echo(signature.to_json())
    else:
        click.echo(base64.b64encode(signature.value).decode("ascii"))


_BASE64 = re.compile(rb"^[A-Za-z0-9+/]+={0,2}$")


def _load_signature(value: str) -> Any:
    """Decode ``--signature``: base64 text, or ``@FILE`` with raw bytes, base64 or JSON."""
    from .signature import Signature

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
    "key",
    default=None,
    metavar="URI",
    help="Verification key (default: the signature record's key, or signing_key).",
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
def verify_command(ctx: click.Context, key: str | None, signature: str, file: str) -> None:
    """Verify FILE (or stdin): exit 0 if valid, 1 if not, 2 on error."""
    decoded = _load_signature(signature)
    valid = _stack(ctx).verify(_read_input(file), decoded, key=key)
    if valid:
        click.echo("signature valid", err=True)
        return
    click.echo("signature INVALID", err=True)
    ctx.exit(1)


# -- envelope encryption ----------------------------------------------------------

PROGRESS_THRESHOLD = 8 * 1024 * 1024


def _context_option(f: F) -> F:
    return click.option(
        "--context",
        "contexts",
        multiple=True,
        metavar="K=V",
        help="Encryption context pair (repeatable). On decrypt: pairs the message must carry.",
    )(f)


class _ProgressReader(io.RawIOBase):
    """A binary reader that advances a progress bar as it is read."""

    def __init__(self, inner: IO[bytes], advance: Callable[[int], None]) -> None:
        self._inner = inner
        self._advance = advance

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        got = self._inner.readinto(buffer)  # type: ignore[attr-defined]
        if got:
            self._advance(got)
        return int(got or 0)


@contextmanager
def _input_stream(path: str, progress: bool | None) -> Iterator[IO[bytes]]:
    """Open IN (or stdin); show a progress bar on stderr when asked, or for large files on a tty."""
    handle: IO[bytes] = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
    try:
        size = os.fstat(handle.fileno()).st_size if path != "-" else 0
        show = (
            progress
            if progress is not None
            else (sys.stderr.isatty() and size >= PROGRESS_THRESHOLD)
        )
        if not show:
            yield handle
            return
        from rich.console import Console
        from rich.progress import Progress

        with Progress(console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task("aureus", total=size or None)
            reader = _ProgressReader(handle, lambda n: bar.advance(task, n))
            yield io.BufferedReader(reader)
    finally:
        if handle is not sys.stdin.buffer:
            handle.close()


@contextmanager
def _output_stream(path: str | None) -> Iterator[IO[bytes]]:
    if path is None or path == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    with _atomic_output(path) as handle:
        yield handle


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
@_context_option
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
    signed: bool,
    frame_length: int | None,
    output: str | None,
    progress: bool | None,
    infile: str,
) -> None:
    """Encrypt IN (or stdin) into the AWS Encryption SDK message format."""
    stack = _stack(ctx)
    context = _pairs(contexts, "--context")
    with _input_stream(infile, progress) as src, _output_stream(output) as dst:
        stack.encrypt_stream(
            src,
            dst,
            context=context,
            keys=list(keys) or None,
            signed=signed,
            frame_length=frame_length,
        )


@main.command("decrypt")
@click.option(
    "--key",
    "keys",
    multiple=True,
    metavar="URI",
    help="Only these wrapping keys may decrypt (strict mode). Default: discovery.",
)
@_context_option
@click.option("-o", "--output", default=None, help="Output file (default stdout).")
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr.")
@click.argument("infile", default="-", metavar="[IN|-]")
@click.pass_context
def decrypt_command(
    ctx: click.Context,
    keys: tuple[str, ...],
    contexts: tuple[str, ...],
    output: str | None,
    progress: bool | None,
    infile: str,
) -> None:
    """Decrypt IN (or stdin): exit 0 if it authenticates, 1 if not, 2 on other errors.

    With -o, output goes to a temporary file renamed into place only when the
    whole message has authenticated.
    """
    from .errors import DecryptionError

    stack = _stack(ctx)
    context = _pairs(contexts, "--context")
    try:
        with _input_stream(infile, progress) as src, _output_stream(output) as dst:
            try:
                stack.decrypt_stream(src, dst, context=context, keys=list(keys) or None)
            except DecryptionError as error:
                raise _DecryptFailed(str(error)) from None
    except _DecryptFailed as failure:
        _fail(str(failure), code=1)


@main.command("inspect")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.argument("infile", default="-", metavar="[IN|-]")
@click.pass_context
def inspect_command(ctx: click.Context, as_json: bool, infile: str) -> None:
    """Show a message's suite, ID, context, recipients and frame length, without decrypting."""
    from .errors import DecryptionError

    stack = _stack(ctx)
    with _input_stream(infile, False) as src:
        try:
            info = stack.inspect(src)
        except DecryptionError:
            _fail("not a readable Aureus / AWS Encryption SDK message (the header is malformed)", 1)
    if as_json:
        click.echo(json.dumps(info.to_dict(), indent=2, ensure_ascii=False))
        return
    click.echo(f"suite:          0x{info.suite_id:04X} {info.suite_name}")
    click.echo(f"format version: {info.message_version}")
    click.echo(f"message id:     {info.message_id}")
    click.echo(f"signed:         {'yes' if info.signed else 'no'}")
    click.echo(f"frame length:   {info.frame_length}")
    click.echo("context:" + ("" if info.context else "        (empty)"))
    for name, value in info.context.items():
        click.echo(f"  {name} = {value}")
    click.echo("encrypted data keys:")
    for recipient in info.recipients:
        click.echo(f"  {recipient.provider_id}  {recipient.key}")


def _pairs(values: tuple[str, ...], option: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"expected K=V, got {item!r}", param_hint=option)
        pairs[name] = value
    return pairs


if __name__ == "__main__":  # pragma: no cover
    main()
