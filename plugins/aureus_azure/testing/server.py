"""A small threaded HTTP(S) server on 127.0.0.1 that the test doubles build on.

The Azure SDK refuses bearer tokens over plain HTTP, so :class:`LocalServer`
serves TLS with a self-signed certificate made at start with ``cryptography``;
clients trust it through :attr:`LocalServer.ca_file` (``connection_verify``).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import tempfile
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HOST = "127.0.0.1"


@attrs.frozen(kw_only=True)
class Request:
    """One request as a handler sees it."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON (``{}`` when empty)."""
        return json.loads(self.body) if self.body else {}


@attrs.frozen(kw_only=True)
class Response:
    """What a handler answers (status 0: close the connection without answering)."""

    status: int
    body: Any = None
    headers: Mapping[str, str] = attrs.field(factory=dict)


Handler = Callable[[Request], Response]


def write_self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """Write a P-256 certificate for 127.0.0.1 and localhost and its key; return both paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aureus test server")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(HOST)), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "ca.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class LocalServer:
    """Serves ``handler`` on 127.0.0.1 (an ephemeral port) over HTTPS, or plain HTTP."""

    def __init__(self, handler: Handler, *, tls: bool = True, port: int = 0) -> None:
        self._handler = handler
        self._tls = tls
        self._port = port
        self._directory: tempfile.TemporaryDirectory[str] | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.ca_file: str | None = None
        """The PEM certificate clients must trust (``None`` for plain HTTP)."""

    @property
    def url(self) -> str:
        """``https://127.0.0.1:PORT`` (or ``http://`` without TLS)."""
        if self._server is None:
            raise RuntimeError("the server is not running: call start() first")
        scheme = "https" if self._tls else "http"
        return f"{scheme}://{HOST}:{self._server.server_address[1]}"

    def start(self) -> None:
        """Bind, make the certificate and serve from a daemon thread."""
        server = ThreadingHTTPServer((HOST, self._port), _make_handler_class(self._handler))
        server.daemon_threads = True
        if self._tls:
            self._directory = tempfile.TemporaryDirectory(prefix="aureus-tls-")
            cert, key = write_self_signed_certificate(Path(self._directory.name))
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
            server.socket = context.wrap_socket(server.socket, server_side=True)
            self.ca_file = str(cert)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and remove the certificate files."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._directory is not None:
            self._directory.cleanup()
            self._directory = None


def _make_handler_class(handler: Handler) -> type[BaseHTTPRequestHandler]:
    class _RequestHandler(BaseHTTPRequestHandler):
        disable_nagle_algorithm = True  # otherwise every request waits ~40 ms for an ACK
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            request = Request(
                method=self.command,
                path=parts.path,
                query=dict(parse_qsl(parts.query, keep_blank_values=True)),
                headers={name.lower(): value for name, value in self.headers.items()},
                body=self.rfile.read(length) if length else b"",
            )
            try:
                response = handler(request)
            except Exception as error:  # a bug in a test double: answer, do not hang
                response = Response(
                    status=500,
                    body={"error": {"code": "InternalError", "message": type(error).__name__}},
                )
            if response.status == 0:  # a dropped connection: no answer at all
                self.close_connection = True
                return
            if isinstance(response.body, (bytes, str)):
                payload = (
                    response.body.encode() if isinstance(response.body, str) else response.body
                )
                content_type = "text/plain"
            else:
                payload = b"" if response.body is None else json.dumps(response.body).encode()
                content_type = "application/json; charset=utf-8"
            self.send_response(response.status)
            headers = {"Content-Type": content_type, **response.headers}
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            """Stay quiet: requests are not logged."""

    return _RequestHandler
