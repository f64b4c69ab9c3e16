"""Run the Cloud KMS emulator in the foreground: ``python -m aureus_gcp.testing --port 8787``.

The first line printed is the endpoint (``127.0.0.1:PORT``); then one
``NAME=VALUE`` line per environment variable a client needs
(``CLOUDKMS_EMULATOR_HOST``, and with ``--transport tls`` the CA file as
``GRPC_DEFAULT_SSL_ROOTS_FILE_PATH``), then an empty line.  SIGTERM or Ctrl-C
stops the server, removes the CA file and exits with status 0.
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
    """Serve until interrupted (Ctrl-C or SIGTERM); the first line printed is the endpoint."""
    parser = argparse.ArgumentParser(
        prog="python -m aureus_gcp.testing",
        description="An offline Google Cloud KMS emulator speaking gRPC on 127.0.0.1.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8787, help="port; 0 picks a free one (8787)")
    parser.add_argument(
        "--transport",
        choices=("insecure", "local", "tls"),
        default="insecure",
        help="plain gRPC, gRPC local TCP credentials, or TLS with a CA made at start (insecure)",
    )
    parser.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="NAME",
        help="create this ENCRYPT_DECRYPT CryptoKey (projects/P/locations/L/keyRings/R/"
        "cryptoKeys/K) and its key ring at start; repeatable",
    )
    parser.add_argument(
        "--faults",
        action="store_true",
        help="start a fault-injection control endpoint (printed as AUREUS_FAULTS_URL)",
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
    with emulator, contextlib.ExitStack() as cleanup:
        lines = [emulator.endpoint]
        lines += [f"{name}={value}" for name, value in emulator.environment().items()]
        if args.faults:
            from aureus_core.testing.faults import FaultInjector

            injector = cleanup.enter_context(FaultInjector())
            emulator.use_faults(injector)
            lines.append(f"AUREUS_FAULTS_URL={injector.serve_control()}")
        print("\n".join(lines) + "\n", flush=True)
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
