"""Fake Microsoft Entra token endpoint and managed-identity endpoint, on 127.0.0.1.

:class:`FakeEntra` serves the OpenID metadata and ``/TENANT/oauth2/v2.0/token``
over HTTPS (azure-identity insists on an https authority); point a credential
at it with ``authority=entra.authority``, ``connection_verify=entra.ca_file``
and ``disable_instance_discovery=True``.  :class:`FakeManagedIdentity` answers
the App Service managed-identity protocol (``IDENTITY_ENDPOINT`` and
``IDENTITY_HEADER``) over plain HTTP, as the real local endpoint does.  Both
record what they were sent.
"""

from __future__ import annotations

import secrets
import threading
from typing import Any
from urllib.parse import parse_qsl

from .server import LocalServer, Request, Response


class FakeEntra:
    """Issues access tokens (random, or always ``token``) for client-secret and assertion grants."""

    def __init__(self, *, expires_in: int = 3600, token: str | None = None) -> None:
        self.expires_in = expires_in
        self._token = token
        self.token_requests: list[dict[str, str]] = []
        """The form fields of every token request."""
        self.issued: list[str] = []
        self._lock = threading.Lock()
        self._server = LocalServer(self._handle)

    def __enter__(self) -> FakeEntra:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()

    @property
    def authority(self) -> str:
        """The authority URL to give credentials."""
        return self._server.url

    @property
    def ca_file(self) -> str:
        """The certificate to trust."""
        assert self._server.ca_file is not None
        return self._server.ca_file

    def _handle(self, request: Request) -> Response:
        parts = [p for p in request.path.split("/") if p]
        if request.method == "GET" and parts[-2:] == [".well-known", "openid-configuration"]:
            tenant = parts[0]
            base = f"{self.authority}/{tenant}"
            return Response(
                status=200,
                body={
                    "token_endpoint": f"{base}/oauth2/v2.0/token",
                    "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                    "issuer": f"{base}/v2.0",
                    "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                },
            )
        if request.method == "POST" and parts[-3:] == ["oauth2", "v2.0", "token"]:
            form = dict(parse_qsl(request.body.decode()))
            token = self._token or "fake-entra-" + secrets.token_urlsafe(24)
            with self._lock:
                self.token_requests.append(form)
                self.issued.append(token)
            return Response(
                status=200,
                body={
                    "token_type": "Bearer",
                    "access_token": token,
                    "expires_in": self.expires_in,
                    "ext_expires_in": self.expires_in,
                },
            )
        return Response(status=404, body={"error": "not_found"})


class FakeManagedIdentity:
    """The App Service managed-identity endpoint: GET with ``X-IDENTITY-HEADER``."""

    def __init__(self, *, expires_in: int = 3600) -> None:
        self.expires_in = expires_in
        self.header = secrets.token_urlsafe(16)
        self.requests: list[dict[str, str]] = []
        """The query parameters of every token request."""
        self._server = LocalServer(self._handle, tls=False)

    def __enter__(self) -> FakeManagedIdentity:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()

    @property
    def endpoint(self) -> str:
        """The value for ``IDENTITY_ENDPOINT``."""
        return f"{self._server.url}/msi/token"

    def environment(self) -> dict[str, str]:
        """The variables that select this endpoint in azure-identity."""
        return {"IDENTITY_ENDPOINT": self.endpoint, "IDENTITY_HEADER": self.header}

    def _handle(self, request: Request) -> Response:
        if request.headers.get("x-identity-header") != self.header:
            return Response(status=401, body={"error": "unauthorized"})
        self.requests.append(dict(request.query))
        import time

        body: dict[str, Any] = {
            "access_token": "fake-mi-" + secrets.token_urlsafe(24),
            "expires_on": str(int(time.time()) + self.expires_in),
            "resource": request.query.get("resource", ""),
            "token_type": "Bearer",
            "client_id": request.query.get("client_id", ""),
        }
        return Response(status=200, body=body)
