"""Shared plumbing of the ``aureus`` command line: the root group, errors, files and pipes.

Errors print one line on stderr (``aureus: error: ...``) and exit 2, with a
traceback only under ``--debug`` (accepted anywhere before ``--``) or
``AUREUS_DEBUG=1``.  A reader that closes the pipe early (``aureus decrypt |
head``) ends the command quietly with status 141, as ``cat`` does under
``set -o pipefail``.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, NoReturn, TypeVar

import click

from ..errors import AureusError, speaking_to_cli
from ..keys import KeyType
from .atomic import atomic_output

F = TypeVar("F", bound=Callable[..., Any])

KEY_TYPES = [t.value for t in KeyType]


class State:
    """Per-invocation state: global options and the lazily built stack."""

    def __init__(self, config: str | None, debug: bool) -> None:
        self.config = config
        self.debug = debug
        self._stack: Any = None

    @property
    def stack(self) -> Any:
        if self._stack is None:
            from ..stack import KeyStack

            self._stack = KeyStack.from_config(self.config)
        return self._stack

    def close(self) -> None:
        if self._stack is not None:
            self._stack.close()


DEBUG_ENV = "AUREUS_DEBUG"
BROKEN_PIPE_STATUS = 128 + 13  # what a shell reports for a process ended by SIGPIPE


def fail(message: str, code: int = 2) -> NoReturn:
    click.echo(f"aureus: error: {message}", err=True)
    sys.exit(code)


class AureusGroup(click.Group):
    """Turns library errors into one clear line on stderr."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            _quiet_broken_pipe()
        except (AureusError, OSError) as error:
            state = ctx.obj if isinstance(ctx.obj, State) else None
            debug = state.debug if state else _debug_requested(sys.argv[1:])
            if debug:
                raise
            if isinstance(error, OSError):
                where = f" {error.filename}" if error.filename else ""
                fail(f"{error.strerror or error}{':' if where else ''}{where}")
            fail(str(error) or type(error).__name__)


def _quiet_broken_pipe() -> NoReturn:
    """End quietly when stdout's reader has gone: no message, no flush error at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout replaced by something without a descriptor
        pass
    sys.exit(BROKEN_PIPE_STATUS)


def _options_part(args: list[str]) -> list[str]:
    return args[: args.index("--")] if "--" in args else args


def _debug_requested(args: list[str]) -> bool:
    env = os.environ.get(DEBUG_ENV, "").strip().lower()
    return "--debug" in _options_part(args) or env not in ("", "0", "false", "no", "off")


COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "audit": ("audit",),
    "decrypt": ("envelope",),
    "encrypt": ("envelope",),
    "inspect": ("envelope",),
    "keys": ("keys", "rotation"),
    "migrate": ("migrate",),
    "plugins": ("plugins",),
    "rewrap": ("rewrap",),
    "sign": ("signing",),
    "verify": ("signing",),
}
"""Each top-level command and the modules of this package that define it (and its subcommands)."""


def _import_commands(name: str | None) -> None:
    """Import the modules that register command ``name`` (every command module for None).

    A command's module registers it on :data:`main` when imported, so one
    invocation imports only what its command needs; help and an unknown name
    (whose error suggests close matches) import them all.
    """
    from importlib import import_module

    wanted = COMMAND_MODULES.get(name) if name is not None else None
    modules = wanted or sorted({m for ms in COMMAND_MODULES.values() for m in ms})
    for module in modules:
        import_module(f"{__package__}.{module}")


class RootGroup(AureusGroup):
    """The root group: takes ``--debug`` wherever it appears before ``--``.

    Its commands are defined in modules imported on demand (see
    :data:`COMMAND_MODULES`).
    """

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        _import_commands(cmd_name)
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        _import_commands(None)
        return super().list_commands(ctx)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        head = _options_part(args)
        if "--debug" in head:
            ctx.meta["aureus.debug"] = True
            args = [a for a in head if a != "--debug"] + args[len(head) :]
        return super().parse_args(ctx, args)


@click.group(cls=RootGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config",
    type=click.Path(dir_okay=False),
    envvar="AUREUS_CONFIG",
    help="Stack configuration file (TOML). Default: $AUREUS_CONFIG, else the local keystore.",
)
@click.option(
    "--debug",
    is_flag=True,
    help="Show tracebacks on errors (anywhere on the command line; or AUREUS_DEBUG=1).",
)
@click.version_option(package_name="aureus-kms", prog_name="aureus")
@click.pass_context
def main(ctx: click.Context, config: str | None, debug: bool) -> None:
    """Aureus: key management, signing and envelope encryption across key stores."""
    debug = debug or bool(ctx.meta.get("aureus.debug")) or _debug_requested([])
    state = State(config, debug)
    ctx.obj = state
    ctx.call_on_close(state.close)
    ctx.with_resource(speaking_to_cli())


def stack_of(ctx: click.Context) -> Any:
    state: State = ctx.find_object(State)  # type: ignore[assignment]
    return state.stack


def read_input(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    return Path(path).read_bytes()


PROGRESS_THRESHOLD = 8 * 1024 * 1024


def context_option(f: F) -> F:
    return click.option(
        "--context",
        "contexts",
        multiple=True,
        metavar="K=V",
        help=(
            "Encryption context pair (repeatable). On decrypt: pairs the message must carry,"
            " or its required (not stored) context."
        ),
    )(f)


def key_groups_options(f: F) -> F:
    """``--group NAME=URI[,URI...]`` (repeatable) and ``--threshold K``."""
    f = click.option(
        "--threshold",
        type=int,
        default=None,
        help="With --group: how many key groups together can decrypt.",
    )(f)
    return click.option(
        "--group",
        "groups",
        multiple=True,
        metavar="NAME=URI[,URI]",
        help="A key group (repeatable): the data key is split so that keys of --threshold "
        "groups are needed; any key of a group brings its share.",
    )(f)


def key_groups(groups: tuple[str, ...], threshold: int | None, keys: tuple[str, ...]) -> Any:
    """The :class:`~aureus_core.envelope.quorum.Quorum` of ``--group``/``--threshold``, or None."""
    from ..envelope.quorum import Quorum

    if not groups:
        if threshold is not None:
            raise click.BadParameter("--threshold needs --group NAME=URI", param_hint="--threshold")
        return None
    if keys:
        raise click.UsageError("give wrapping keys either as --key/--to or as --group, not both")
    if threshold is None:
        raise click.BadParameter("--group needs --threshold K", param_hint="--group")
    parsed: dict[str, list[str]] = {}
    for item in groups:
        name, sep, uris = item.partition("=")
        if not sep or not name or name in parsed:
            raise click.BadParameter(
                f"expected NAME=URI[,URI] with a new name, got {item!r}", param_hint="--group"
            )
        parsed[name] = [uri for uri in uris.split(",") if uri]
    return Quorum.of(threshold, parsed)


class ProgressReader(io.RawIOBase):
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
def input_stream(path: str, progress: bool | None) -> Iterator[IO[bytes]]:
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
            reader = ProgressReader(handle, lambda n: bar.advance(task, n))
            yield io.BufferedReader(reader)
    finally:
        if handle is not sys.stdin.buffer:
            handle.close()


@contextmanager
def output_stream(path: str | None, *, binary: bool = False) -> Iterator[IO[bytes]]:
    """Open OUT: ``-o FILE`` atomically, else stdout.

    ``binary`` output (a message) is refused when stdout is a terminal unless
    the user asked for it with ``-o -``.
    """
    if path is None and binary and sys.stdout.isatty():
        raise click.UsageError(
            "refusing to write a binary message to the terminal: redirect stdout, "
            "give -o FILE, or -o - to write it here anyway"
        )
    if path is None or path == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    with atomic_output(path) as handle:
        yield handle


def pairs(values: tuple[str, ...], option: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"expected K=V, got {item!r}", param_hint=option)
        pairs[name] = value
    return pairs
