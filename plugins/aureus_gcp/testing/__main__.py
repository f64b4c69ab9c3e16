"""Run the Cloud KMS emulator in the foreground: ``python -m aureus_gcp.testing --port 8787``."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until interrupted (Ctrl-C or SIGTERM); the first line printed is the endpoint."""
    parser = argparse.ArgumentParser(
        prog="python -m aureus_gcp.testing",
        description="An offline Google Cloud KMS emulator speaking gRPC on 127.0.0.1.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8787, help="port; 0 picks a free one (8787)")
    parser.add_argument(
        "--transport",
        choices=("insecure", "local"),
        default="insecure",
        help="plain gRPC, or gRPC local TCP credentials (insecure)",
    )
    parser.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="NAME",
        help="create this ENCRYPT_DECRYPT CryptoKey (projects/P/locations/L/keyRings/R/"
        "cryptoKeys/K) and its key ring at start; repeatable",
    )
    args = parser.parse_args(argv)

    from .emulator import CloudKmsEmulator

    stopped = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        emulator = CloudKmsEmulator(host=args.host, port=args.port, transport=args.transport)
        for name in args.key:
            emulator.create_key(name)
    except ValueError as error:
        parser.error(str(error))
    with emulator:
        print(emulator.endpoint, flush=True)
        print(
            f"Cloud KMS emulator ({args.transport}) listening on {emulator.endpoint}; "
            "Ctrl-C stops it.",
            file=sys.stderr,
            flush=True,
        )
        while not stopped.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
