"""gRPC plumbing for the Cloud KMS emulator: a loopback server for one service's unary methods.

The server knows nothing of Cloud KMS; it decodes each request with the
method's proto-plus request type, hands it to one callable, and encodes what
comes back.  Methods it was not given answer ``UNIMPLEMENTED``, as gRPC does.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc

SERVICE = "google.cloud.kms.v1.KeyManagementService"
INSECURE = "insecure"
LOCAL = "local"
TRANSPORTS = (INSECURE, LOCAL)

Handler = Callable[[str, Any, grpc.ServicerContext], Any]
"""``handler(method, request, context) -> response``; errors go through ``context.abort``."""


class RpcError(Exception):
    """An answer with a non-OK gRPC status."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def check_loopback(host: str) -> None:
    """Refuse to bind anywhere but the loopback interface."""
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"the emulator binds to loopback addresses only, not {host!r}")


def server_credentials(transport: str) -> grpc.ServerCredentials | None:
    """``None`` for an insecure port, local-TCP credentials for ``"local"``."""
    if transport == INSECURE:
        return None
    if transport == LOCAL:
        return grpc.local_server_credentials(grpc.LocalConnectionType.LOCAL_TCP)
    raise ValueError(f"transport must be one of {TRANSPORTS}, not {transport!r}")


def client_channel(endpoint: str, transport: str) -> grpc.Channel:
    """A new channel to ``endpoint`` that fits the server's ``transport``."""
    if transport == LOCAL:
        credentials = grpc.local_channel_credentials(grpc.LocalConnectionType.LOCAL_TCP)
        return grpc.secure_channel(endpoint, credentials)
    return grpc.insecure_channel(endpoint)


class GrpcServer:
    """A ``grpc.server`` on a thread pool serving ``methods`` through ``handler``."""

    def __init__(
        self,
        methods: Mapping[str, tuple[Any, Any]],
        handler: Handler,
        *,
        max_workers: int = 16,
    ) -> None:
        self._methods = dict(methods)
        self._handler = handler
        self._max_workers = max_workers
        self._server: grpc.Server | None = None
        self._executor: ThreadPoolExecutor | None = None

    def _method_handler(self, method: str, request_type: Any, response_type: Any) -> Any:
        def behaviour(request: Any, context: grpc.ServicerContext) -> Any:
            return self._handler(method, request, context)

        return grpc.unary_unary_rpc_method_handler(
            behaviour,
            request_deserializer=request_type.deserialize,
            response_serializer=response_type.serialize,
        )

    def start(self, host: str, port: int, transport: str) -> int:
        """Listen on ``host:port`` (``0``: any free port); returns the port."""
        check_loopback(host)
        credentials = server_credentials(transport)
        handlers = {
            name: self._method_handler(name, request_type, response_type)
            for name, (request_type, response_type) in self._methods.items()
        }
        self._executor = ThreadPoolExecutor(
            max_workers=self._max_workers, thread_name_prefix="cloud-kms-emulator"
        )
        server = grpc.server(
            self._executor,
            handlers=[grpc.method_handlers_generic_handler(SERVICE, handlers)],
        )
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if credentials is None:
            bound = server.add_insecure_port(address)
        else:
            bound = server.add_secure_port(address, credentials)
        if not bound:
            self._executor.shutdown(wait=False)
            raise OSError(f"cannot listen on {address}")
        server.start()
        self._server = server
        return int(bound)

    def stop(self, grace: float = 0.5) -> None:
        """Stop serving, letting calls in flight finish for ``grace`` seconds."""
        server, self._server = self._server, None
        executor, self._executor = self._executor, None
        if server is not None:
            server.stop(grace).wait()
        if executor is not None:
            executor.shutdown(wait=True)
