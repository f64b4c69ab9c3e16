"""A real ``redis-server`` for tests: started on a unix socket in a temporary directory.

    with RedisServer.start(tmp_path) as server:
        cache = RedisCache.from_options({"url": server.url, "sealing_key_file": ...})

The server keeps nothing on disk, listens on no TCP port, and is stopped
(and can be restarted on the same socket, to test outages) by this object.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from types import TracebackType

import redis

START_TIMEOUT = 10.0


class RedisServer:
    """One ``redis-server`` process this object started and will stop."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.socket = directory / "redis.sock"
        self._process: subprocess.Popen[bytes] | None = None

    @classmethod
    def start(cls, directory: Path) -> RedisServer:
        """Start a server in ``directory`` (which must exist) and wait until it answers."""
        server = cls(directory)
        server.restart()
        return server

    @property
    def url(self) -> str:
        """The ``unix://`` URL of the server."""
        return f"unix://{self.socket}"

    def client(self) -> redis.Redis:
        """A plain client for the test to inspect or disturb the server with."""
        return redis.Redis(unix_socket_path=str(self.socket), socket_timeout=10)

    def restart(self) -> None:
        """(Re)start the server on the same socket."""
        if self._process is not None and self._process.poll() is None:
            return
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "redis-server is not installed: apt-get install redis-server (Debian) "
                "or see https://redis.io/docs/latest/operate/oss_and_stack/install/"
            )
        self._process = subprocess.Popen(
            [
                binary,
                "--port", "0",
                "--unixsocket", str(self.socket),
                "--unixsocketperm", "700",
                "--dir", str(self.directory),
                "--save", "",
                "--appendonly", "no",
                "--loglevel", "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                if self.client().ping():
                    return
            except (redis.ConnectionError, OSError):
                pass
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start in {self.directory}")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop the server (an outage, for the clients)."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.socket.unlink(missing_ok=True)

    def __enter__(self) -> RedisServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
