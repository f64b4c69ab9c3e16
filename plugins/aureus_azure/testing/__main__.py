"""Run the Key Vault emulator in the foreground: ``python -m aureus_azure.testing``.

The first line printed is the vault URL; then one ``NAME=VALUE`` line per
environment variable a client needs (the URL, the bearer token, the CA file),
then an empty line.  SIGTERM or Ctrl-C stops the server, removes its
certificate and exits with status 0.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGTERM or SIGINT; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m aureus_azure.testing",
        description="An offline Azure Key Vault / Managed HSM emulator (HTTPS on 127.0.0.1).",
    )
    parser.add_argument(
        "--kind",
        choices=("vault", "managedhsm"),
        default="vault",
        help="a vault (RSA, EC keys) or a Managed HSM (also oct-HSM keys); default vault",
    )
    parser.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (0)")
    parser.add_argument(
        "--token",
        default=None,
        help="the bearer token to accept (default: a random one, printed at start)",
    )
    parser.add_argument(
        "--faults",
        action="store_true",
        help="start a fault-injection control endpoint (printed as AUREUS_FAULTS_URL)",
    )
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be from 0 to 65535, not {args.port}")

    from .emulator import KeyVaultEmulator

    stopped = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with (
        KeyVaultEmulator(kind=args.kind, port=args.port, token=args.token) as emulator,
        contextlib.ExitStack() as cleanup,
    ):
        lines = [emulator.url]
        lines += [f"{name}={value}" for name, value in emulator.environment().items()]
        if args.faults:
            from aureus_core.testing.faults import FaultInjector

            injector = cleanup.enter_context(FaultInjector())
            emulator.use_faults(injector)
            lines.append(f"AUREUS_FAULTS_URL={injector.serve_control()}")
        print("\n".join(lines) + "\n", flush=True)
        print(
            f"Key Vault emulator ({args.kind}) on {emulator.url}; CA file {emulator.ca_file}; "
            "clients need verify_challenge_resource=False. Ctrl-C stops it.",
            file=sys.stderr,
            flush=True,
        )
        while not stopped.wait(0.2):
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
