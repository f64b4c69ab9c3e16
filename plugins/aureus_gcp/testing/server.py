"""gRPC plumbing for the Cloud KMS emulator: a loopback server for some services' unary methods.

The server knows nothing of Cloud KMS; it decodes each request with the
method's request type (proto-plus or plain protobuf), hands it to one
callable, and encodes what comes back.  Methods it was not given answer
``UNIMPLEMENTED``, as gRPC does.
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
TLS = "tls"
TRANSPORTS = (INSECURE, LOCAL, TLS)

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


def check_transport(transport: str) -> None:
    """Refuse an unknown transport name."""
    if transport not in TRANSPORTS:
        raise ValueError(f"transport must be one of {TRANSPORTS}, not {transport!r}")


def server_credentials(
    transport: str, tls: tuple[bytes, bytes] | None = None
) -> grpc.ServerCredentials | None:
    """``None`` for an insecure port, local-TCP credentials for ``"local"``, TLS for ``"tls"``.

    ``tls`` is the server's (private key, certificate chain) in PEM.
    """
    check_transport(transport)
    if transport == INSECURE:
        return None
    if transport == LOCAL:
        return grpc.local_server_credentials(grpc.LocalConnectionType.LOCAL_TCP)
    if tls is None:
        raise ValueError("the tls transport needs a private key and certificate")
    return grpc.ssl_server_credentials([tls])


def client_channel(endpoint: str, transport: str, ca_pem: bytes | None = None) -> grpc.Channel:
    """A new channel to ``endpoint`` that fits the server's ``transport``."""
    if transport == LOCAL:
        credentials = grpc.local_channel_credentials(grpc.LocalConnectionType.LOCAL_TCP)
        return grpc.secure_channel(endpoint, credentials)
    if transport == TLS:
        return grpc.secure_channel(endpoint, grpc.ssl_channel_credentials(ca_pem))
    return grpc.insecure_channel(endpoint)


def _deserializer(message_type: Any) -> Callable[[bytes], Any]:
    deserialize = getattr(message_type, "deserialize", None)  # proto-plus
    return deserialize if deserialize is not None else message_type.FromString  # type: ignore[no-any-return]


def _serializer(message_type: Any) -> Callable[[Any], bytes]:
    if hasattr(message_type, "serialize"):  # proto-plus
        return message_type.serialize  # type: ignore[no-any-return]
    return lambda message: message.SerializeToString()


class GrpcServer:
    """A ``grpc.server`` on a thread pool serving ``methods`` through ``handler``.

    ``methods`` maps method names of :data:`SERVICE` to their (request,
    response) types; ``services`` adds other services' methods the same way
    (method names must be unique across all of them).
    """

    def __init__(
        self,
        methods: Mapping[str, tuple[Any, Any]],
        handler: Handler,
        *,
        services: Mapping[str, Mapping[str, tuple[Any, Any]]] | None = None,
        max_workers: int = 16,
    ) -> None:
        self._services = {
            SERVICE: dict(methods),
            **{k: dict(v) for k, v in (services or {}).items()},
        }
        self._handler = handler
        self._max_workers = max_workers
        self._server: grpc.Server | None = None
        self._executor: ThreadPoolExecutor | None = None

    def _method_handler(self, method: str, request_type: Any, response_type: Any) -> Any:
        def behaviour(request: Any, context: grpc.ServicerContext) -> Any:
            return self._handler(method, request, context)

        return grpc.unary_unary_rpc_method_handler(
            behaviour,
            request_deserializer=_deserializer(request_type),
            response_serializer=_serializer(response_type),
        )

    def start(
        self, host: str, port: int, transport: str, tls: tuple[bytes, bytes] | None = None
    ) -> int:
        """Listen on ``host:port`` (``0``: any free port); returns the port.

        ``tls`` is the (private key, certificate chain) for the ``tls`` transport.
        """
        check_loopback(host)
        credentials = server_credentials(transport, tls)
        generic = [
            grpc.method_handlers_generic_handler(
                service,
                {
                    name: self._method_handler(name, request_type, response_type)
                    for name, (request_type, response_type) in methods.items()
                },
            )
            for service, methods in self._services.items()
        ]
        self._executor = ThreadPoolExecutor(
            max_workers=self._max_workers, thread_name_prefix="cloud-kms-emulator"
        )
        server = grpc.server(self._executor, handlers=generic)
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
