"""Latency and fault injection for test backends, switchable at run time from another process.

A :class:`FaultInjector` holds the current :class:`FaultPlan` (added latency,
and the fractions of operations to answer with a throttling error, a server
error, or a dropped connection) and decides each operation at random.  Three
things consult it:

- :class:`FaultProxy`, a TCP proxy in front of any server.  In ``tcp`` mode it
  knows no protocol: it delays each chunk a client sends and closes the
  connection for the ``drop`` fraction (``throttle`` and ``error`` close it
  too, as it cannot answer in the protocol).  In ``aws`` mode it reads the
  HTTP/1.1 requests of AWS's JSON protocol (moto's server), names each by its
  ``X-Amz-Target`` operation and answers ``ThrottlingException`` (400) or
  ``KMSInternalException`` (500) itself, as KMS does;
- the Cloud KMS emulator (``CloudKmsEmulator.use_faults``): ``RESOURCE_EXHAUSTED``
  and ``UNAVAILABLE``;
- the Key Vault emulator (``KeyVaultEmulator.use_faults``): 429 ``Throttled``
  and 503 ``ServiceUnavailable``, and closed connections.

:meth:`FaultInjector.serve_control` starts an HTTP control endpoint on
127.0.0.1: ``GET /faults`` returns the plan and the counts, ``PUT /faults``
replaces the plan with the JSON object sent, ``DELETE /faults`` clears it.
``python -m aureus_core.testing.faults --upstream HOST:PORT`` runs a proxy
with its control endpoint from the command line.
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import json
import random
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any

import attrs

HOST = "127.0.0.1"
_FRACTIONS = ("throttle", "error", "drop")
_FIELDS = ("latency", "throttle", "error", "drop", "operations", "retry_after")
_MAX_LATENCY = 60.0
_MAX_HEADER = 64 * 1024


class Outcome(str, enum.Enum):
    """What happens to one operation."""

    PASS = "pass"  # noqa: S105 - an outcome, not a password
    THROTTLE = "throttle"
    ERROR = "error"
    DROP = "drop"


def _fraction(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"{attribute.name} must be a fraction from 0 to 1, not {value!r}")


def _seconds(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not 0 <= value <= _MAX_LATENCY
    ):
        raise ValueError(
            f"{attribute.name} must be a number of seconds from 0 to {_MAX_LATENCY:g}, "
            f"not {value!r}"
        )


def _names(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True)
class FaultPlan:
    """Latency and fault fractions; ``operations`` limits them to some operations."""

    latency: float = attrs.field(default=0.0, validator=_seconds)
    """Seconds added before each operation (or each chunk, in ``tcp`` mode)."""
    throttle: float = attrs.field(default=0.0, validator=_fraction)
    """Fraction answered with the protocol's throttling error."""
    error: float = attrs.field(default=0.0, validator=_fraction)
    """Fraction answered with a server error (5xx, ``UNAVAILABLE``)."""
    drop: float = attrs.field(default=0.0, validator=_fraction)
    """Fraction whose connection is closed without an answer."""
    operations: tuple[str, ...] = attrs.field(default=(), converter=_names)
    """Operation names the plan applies to (``Encrypt``, ``wrapkey``...); empty: all."""
    retry_after: float = attrs.field(default=0.0, validator=_seconds)
    """``Retry-After`` seconds sent with HTTP throttling answers (the Key Vault
    emulator always sends the header, as the service does; the ``aws`` proxy
    only when it is above 0)."""

    def __attrs_post_init__(self) -> None:
        if self.throttle + self.error + self.drop > 1:
            raise ValueError("throttle + error + drop must not exceed 1")
        if not all(isinstance(name, str) and name for name in self.operations):
            raise ValueError("operations must be a list of operation names")

    @classmethod
    def from_json(cls, value: Any) -> FaultPlan:
        """Build from a JSON object, refusing unknown fields with a clear message."""
        if not isinstance(value, Mapping):
            raise ValueError('a fault plan is a JSON object, e.g. {"throttle": 0.5}')
        unknown = sorted(set(value) - set(_FIELDS))
        if unknown:
            raise ValueError(
                f"unknown fault plan field(s): {', '.join(unknown)}; use {', '.join(_FIELDS)}"
            )
        operations = value.get("operations", ())
        if isinstance(operations, str) or not isinstance(operations, (list, tuple)):
            raise ValueError("operations must be a list of operation names")
        return cls(**{**value, "operations": tuple(operations)})

    def to_json(self) -> dict[str, Any]:
        """The plan as a JSON object."""
        return {
            "latency": self.latency,
            "throttle": self.throttle,
            "error": self.error,
            "drop": self.drop,
            "operations": list(self.operations),
            "retry_after": self.retry_after,
        }

    def applies_to(self, operation: str | None) -> bool:
        """Whether the plan covers ``operation`` (an unnamed one only when it covers all)."""
        return not self.operations or operation in self.operations


@attrs.frozen
class Decision:
    """The latency to add and the outcome, for one operation."""

    latency: float
    outcome: Outcome

    def wait(self) -> None:
        """Sleep for the added latency."""
        if self.latency > 0:
            time.sleep(self.latency)


class FaultInjector:
    """The current plan, random decisions under it, and counts of what was done.  Thread-safe."""

    def __init__(self, plan: FaultPlan | None = None, *, seed: int | None = None) -> None:
        self._plan = plan or FaultPlan()
        self._random = random.Random(seed)  # noqa: S311 - test faults, not secrets
        self._lock = threading.Lock()
        self._counts = {outcome.value: 0 for outcome in Outcome}
        self._control: _ControlServer | None = None

    @property
    def plan(self) -> FaultPlan:
        """The plan in force."""
        with self._lock:
            return self._plan

    def set_plan(self, plan: FaultPlan) -> None:
        """Replace the plan (counts are kept)."""
        with self._lock:
            self._plan = plan

    def update(self, **fields: Any) -> FaultPlan:
        """Replace the plan by one built from ``fields``; returns it."""
        plan = FaultPlan.from_json(fields)
        self.set_plan(plan)
        return plan

    def clear(self) -> None:
        """No latency, no faults."""
        self.set_plan(FaultPlan())

    def counts(self) -> dict[str, int]:
        """How many operations got each outcome (``pass``, ``throttle``, ``error``, ``drop``)."""
        with self._lock:
            return dict(self._counts)

    def reset_counts(self) -> None:
        """Start counting from zero."""
        with self._lock:
            self._counts = {outcome.value: 0 for outcome in Outcome}

    def decide(self, operation: str | None = None) -> Decision:
        """Draw the outcome of one operation under the current plan, and count it."""
        with self._lock:
            plan = self._plan
            if not plan.applies_to(operation):
                return Decision(0.0, Outcome.PASS)
            draw = self._random.random()
            outcome = Outcome.PASS
            threshold = 0.0
            for name in _FRACTIONS:
                threshold += getattr(plan, name)
                if draw < threshold:
                    outcome = Outcome(name)
                    break
            self._counts[outcome.value] += 1
            return Decision(plan.latency, outcome)

    # -- control endpoint ------------------------------------------------------

    def serve_control(self, port: int = 0) -> str:
        """Start the HTTP control endpoint on 127.0.0.1 (once); return its ``/faults`` URL."""
        with self._lock:
            if self._control is None:
                self._control = _ControlServer(self, port)
            return self._control.url

    @property
    def control_url(self) -> str | None:
        """The control endpoint's ``/faults`` URL, if it is running."""
        with self._lock:
            return self._control.url if self._control is not None else None

    def close(self) -> None:
        """Stop the control endpoint."""
        with self._lock:
            control, self._control = self._control, None
        if control is not None:
            control.stop()

    def __enter__(self) -> FaultInjector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _ControlServer:
    def __init__(self, injector: FaultInjector, port: int) -> None:
        self._server = ThreadingHTTPServer((HOST, port), _control_handler(injector))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self._server.server_address[1]}/faults"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _control_handler(injector: FaultInjector) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self, status: int, body: Any) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _state(self) -> dict[str, Any]:
            return {"plan": injector.plan.to_json(), "counts": injector.counts()}

        def _route(self) -> bool:
            if self.path.rstrip("/") != "/faults":
                self._answer(404, {"error": "use /faults (GET, PUT or DELETE)"})
                return False
            return True

        def do_GET(self) -> None:
            if self._route():
                self._answer(200, self._state())

        def do_DELETE(self) -> None:
            if self._route():
                injector.clear()
                injector.reset_counts()
                self._answer(200, self._state())

        def do_PUT(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if 0 < length <= _MAX_HEADER else b""
            if not self._route():
                return
            try:
                injector.set_plan(FaultPlan.from_json(json.loads(body or b"null")))
            except (ValueError, TypeError) as error:
                self._answer(400, {"error": str(error)})
                return
            self._answer(200, self._state())

        do_POST = do_PUT

        def log_message(self, format: str, *args: Any) -> None:
            """Stay quiet."""

    return _Handler


def set_remote_plan(control_url: str, plan: FaultPlan | None) -> dict[str, Any]:
    """Set (or with ``None`` clear) the plan of an injector in another process."""
    import urllib.request

    if plan is None:
        request = urllib.request.Request(control_url, method="DELETE")  # noqa: S310
    else:
        request = urllib.request.Request(  # noqa: S310
            control_url,
            data=json.dumps(plan.to_json()).encode(),
            method="PUT",
            headers={"Content-Type": "application/json"},
        )
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
        answer: dict[str, Any] = json.loads(response.read())
    return answer


# -- the proxy -------------------------------------------------------------------


TCP = "tcp"
AWS = "aws"
PROTOCOLS = (TCP, AWS)


def _aws_error(status: int, code: str, message: str, retry_after: float) -> bytes:
    body = json.dumps({"__type": code, "message": message}).encode()
    reason = {400: "Bad Request", 500: "Internal Server Error"}[status]
    headers = [
        f"HTTP/1.1 {status} {reason}",
        "Content-Type: application/x-amz-json-1.1",
        f"x-amzn-ErrorType: {code}",
        "x-amzn-RequestId: 00000000-0000-0000-0000-00000000fa17",
        f"Content-Length: {len(body)}",
    ]
    if retry_after > 0:
        headers.append(f"Retry-After: {retry_after:g}")
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + body


class FaultProxy:
    """A TCP proxy on 127.0.0.1 in front of ``upstream`` (``host:port``), under ``injector``."""

    def __init__(
        self,
        upstream: str,
        injector: FaultInjector | None = None,
        *,
        protocol: str = TCP,
        port: int = 0,
    ) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, not {protocol!r}")
        host, _, port_text = upstream.rpartition(":")
        if not host or not port_text.isdigit():
            raise ValueError(f"upstream must be host:port, not {upstream!r}")
        self.upstream = (host.strip("[]"), int(port_text))
        self.injector = injector or FaultInjector()
        self.protocol = protocol
        self._port = port
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        """``127.0.0.1:PORT``, where clients connect instead of the upstream."""
        if self._listener is None:
            raise RuntimeError("the proxy is not running: call start() first")
        return f"{HOST}:{self._listener.getsockname()[1]}"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (for HTTP upstreams such as moto's server)."""
        return f"http://{self.endpoint}"

    def start(self) -> FaultProxy:
        """Listen and serve from a daemon thread; returns ``self``."""
        listener = socket.create_server((HOST, self._port))
        listener.settimeout(0.1)
        self._listener = listener
        self._stopping.clear()
        self._thread = threading.Thread(target=self._accept, daemon=True, name="fault-proxy")
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting and close every connection."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            sockets, self._sockets = set(self._sockets), set()
        for sock in sockets:
            _close(sock)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _track(self, *sockets: socket.socket) -> None:
        with self._lock:
            self._sockets.update(sockets)

    def _untrack(self, *sockets: socket.socket) -> None:
        with self._lock:
            self._sockets.difference_update(sockets)
        for sock in sockets:
            _close(sock)

    def _serve(self, client: socket.socket) -> None:
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            upstream = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            _close(client)
            return
        upstream.settimeout(None)
        client.settimeout(None)
        upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._track(client, upstream)
        back = threading.Thread(target=self._pump, args=(upstream, client), daemon=True)
        back.start()
        try:
            if self.protocol == AWS:
                self._forward_http(client, upstream)
            else:
                self._forward_tcp(client, upstream)
        except OSError:
            pass
        finally:
            self._untrack(client, upstream)

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                target.sendall(chunk)
        except OSError:
            pass
        finally:
            _close(target)

    def _forward_tcp(self, client: socket.socket, upstream: socket.socket) -> None:
        while not self._stopping.is_set():
            readable, _, _ = select.select([client], [], [], 0.1)
            if not readable:
                continue
            chunk = client.recv(65536)
            if not chunk:
                return
            decision = self.injector.decide(None)
            decision.wait()
            if decision.outcome is not Outcome.PASS:
                return  # tcp mode cannot answer in the protocol: every fault drops
            upstream.sendall(chunk)

    def _forward_http(self, client: socket.socket, upstream: socket.socket) -> None:
        buffer = b""
        while not self._stopping.is_set():
            while b"\r\n\r\n" not in buffer:
                if len(buffer) > _MAX_HEADER:
                    return
                chunk = client.recv(65536)
                if not chunk:
                    return
                buffer += chunk
            head, _, rest = buffer.partition(b"\r\n\r\n")
            headers = _headers(head)
            length = int(headers.get("content-length", "0") or 0)
            while len(rest) < length:
                chunk = client.recv(65536)
                if not chunk:
                    return
                rest += chunk
            request, buffer = head + b"\r\n\r\n" + rest[:length], rest[length:]
            target = headers.get("x-amz-target", "")
            decision = self.injector.decide(target.rpartition(".")[2] or None)
            decision.wait()
            retry_after = self.injector.plan.retry_after
            if decision.outcome is Outcome.DROP:
                return
            if decision.outcome is Outcome.THROTTLE:
                client.sendall(_aws_error(400, "ThrottlingException", "Rate exceeded", retry_after))
            elif decision.outcome is Outcome.ERROR:
                client.sendall(_aws_error(500, "KMSInternalException", "injected server error", 0))
            else:
                upstream.sendall(request)


def _headers(head: bytes) -> dict[str, str]:
    lines = head.decode("latin-1").split("\r\n")[1:]
    found: dict[str, str] = {}
    for line in lines:
        name, _, value = line.partition(":")
        found[name.strip().lower()] = value.strip()
    return found


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Run a fault proxy with its control endpoint until SIGTERM or Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m aureus_core.testing.faults",
        description="A latency and fault injecting proxy on 127.0.0.1, controlled over HTTP.",
    )
    parser.add_argument("--upstream", required=True, help="HOST:PORT of the server to front")
    parser.add_argument("--protocol", choices=PROTOCOLS, default=TCP, help="tcp or aws (tcp)")
    parser.add_argument("--port", type=int, default=0, help="proxy port; 0 picks one (0)")
    parser.add_argument("--control-port", type=int, default=0, help="control port (0)")
    args = parser.parse_args(argv)
    stopped = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        proxy = FaultProxy(args.upstream, protocol=args.protocol, port=args.port)
    except ValueError as error:
        parser.error(str(error))
    with proxy, proxy.injector:
        control = proxy.injector.serve_control(args.control_port)
        print(f"{proxy.endpoint}\nAUREUS_FAULTS_URL={control}\n", flush=True)
        print(
            f"fault proxy {proxy.endpoint} -> {args.upstream} ({args.protocol}); "
            f"control: {control}",
            file=sys.stderr,
            flush=True,
        )
        while not stopped.wait(0.2):
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
