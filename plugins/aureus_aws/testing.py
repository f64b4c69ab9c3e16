"""A moto server in a child process, for tests and benchmarks that need AWS over real HTTP.

moto is a test dependency (``aureus-kms[test]``), not a runtime one: this
module only starts ``python -m moto.server`` and never imports moto itself.
The server binds to 127.0.0.1 on a free port; :meth:`MotoServer.kill` stops it
abruptly so tests can watch a provider lose its backend.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from types import TracebackType

# Credentials moto accepts; they open nothing real.
TEST_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "AKIAAUREUSTESTING00",
    "AWS_SECRET_ACCESS_KEY": "aureus-test-secret-not-a-real-key",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MotoServer:
    """``python -m moto.server`` on 127.0.0.1, started on enter and stopped on exit."""

    def __init__(self, *, port: int | None = None, start_timeout: float = 30.0) -> None:
        self.port = port or _free_port()
        self.start_timeout = start_timeout
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The endpoint URL to hand to boto3 (``endpoint_url``)."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoServer:
        """Start the server and wait until it answers."""
        if self._process is not None:
            return self
        env = {**os.environ, **TEST_ENVIRONMENT}
        self._process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"moto server exited with {self._process.returncode} before answering; "
                    "is moto installed (pip install 'moto[server]')?"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1):  # noqa: S310
                    return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"moto server did not answer on {self.url} in {self.start_timeout} s")

    def reset(self) -> None:
        """Forget every resource the server holds."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")  # noqa: S310
        with urllib.request.urlopen(request, timeout=5):  # noqa: S310
            pass

    def kill(self) -> None:
        """Stop the server at once (SIGKILL), as a crash would."""
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=10)
            self._process = None

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.kill()


__all__ = ["TEST_ENVIRONMENT", "MotoServer"]
