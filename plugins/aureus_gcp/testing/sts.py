"""A fake Google Security Token Service (and IAM Credentials) on http://127.0.0.1, for tests.

It answers the two calls workload identity federation makes:

- ``POST /v1/token``: the OAuth 2.0 token exchange (RFC 8693) of Google STS,
  a subject token for a federated access token;
- ``POST /v1/projects/-/serviceAccounts/EMAIL:generateAccessToken``: the IAM
  Credentials call that trades that token for a service account's token,
  when the credential configuration asks for impersonation.

Errors have Google's shapes: ``{"error": "invalid_grant", "error_description":
...}`` with status 400 for STS, ``{"error": {"code", "message", "status"}}``
for IAM Credentials.  Subject tokens are never stored, only their SHA-256.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import urllib.parse
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105 (a URN)
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105 (a URN)
SUBJECT_TOKEN_TYPES = frozenset(
    {
        "urn:ietf:params:oauth:token-type:jwt",
        "urn:ietf:params:oauth:token-type:id_token",
        "urn:ietf:params:oauth:token-type:saml2",
        "urn:ietf:params:oauth:token-type:access_token",
        "urn:ietf:params:aws:token-type:aws4_request",
    }
)
_IMPERSONATION_PREFIX = "/v1/projects/-/serviceAccounts/"
_IMPERSONATION_SUFFIX = ":generateAccessToken"


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@attrs.frozen(kw_only=True)
class StsExchange:
    """One token exchange the fake STS answered with a token."""

    audience: str
    subject_token_type: str
    subject_token_sha256: str
    scope: str
    requested_token_type: str


@attrs.frozen(kw_only=True)
class Impersonation:
    """One ``generateAccessToken`` call the fake answered with a token."""

    service_account: str
    scope: tuple[str, ...]
    lifetime: str


class _StsError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status)
        self.status, self.body = status, body


def _oauth_error(error: str, description: str) -> _StsError:
    return _StsError(400, {"error": error, "error_description": description})


def _iam_error(status: int, state: str, message: str) -> _StsError:
    return _StsError(status, {"error": {"code": status, "message": message, "status": state}})


class FakeSts:
    """Google STS token exchange (and IAM ``generateAccessToken``) on 127.0.0.1.

    ``expected_audience``: reject any other audience (``invalid_target``);
    ``accept(subject_token)``: reject a subject token it returns ``False`` for
    (``invalid_grant``).  Use as a context manager, or :meth:`start`/:meth:`stop`.
    """

    def __init__(
        self,
        *,
        expected_audience: str | None = None,
        accept: Callable[[str], bool] | None = None,
        lifetime: int = 3600,
    ) -> None:
        self.expected_audience = expected_audience
        self._accept = accept
        self.lifetime = lifetime
        self._lock = threading.Lock()
        self._issued: set[str] = set()
        self._failures: list[int] = []
        self.exchanges: list[StsExchange] = []
        """Every successful token exchange, in order."""
        self.impersonations: list[Impersonation] = []
        """Every successful ``generateAccessToken``, in order."""
        self.last_access_token: str | None = None
        """The access token minted last (by an exchange or an impersonation)."""
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> FakeSts:
        """Start serving; returns ``self``."""
        if self._server is None:
            sts = self

            class Handler(BaseHTTPRequestHandler):
                def do_POST(self) -> None:
                    sts._serve(self)

                def log_message(self, format: str, *args: Any) -> None:
                    """Keep test output quiet."""

            self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
            self._server.daemon_threads = True
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="fake-sts",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> FakeSts:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        if self._server is None:
            raise RuntimeError("the fake STS is not running; call start() first")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def token_url(self) -> str:
        """The STS token endpoint (``token_url`` of an external account configuration)."""
        return f"{self.url}/v1/token"

    def impersonation_url(self, service_account: str) -> str:
        """A ``service_account_impersonation_url`` for ``service_account`` on this fake."""
        return f"{self.url}{_IMPERSONATION_PREFIX}{service_account}{_IMPERSONATION_SUFFIX}"

    def fail(self, status: int = 503, *, times: int = 1) -> None:
        """Answer the next ``times`` requests with ``status``."""
        with self._lock:
            self._failures.extend([status] * times)

    def issued(self, token: str) -> bool:
        """Whether this fake minted ``token``."""
        with self._lock:
            return token in self._issued

    # -- request handling ------------------------------------------------------

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length).decode("utf-8", "replace")
        path = urllib.parse.urlsplit(handler.path).path
        try:
            with self._lock:
                failure = self._failures.pop(0) if self._failures else None
            if failure is not None:
                raise _iam_error(failure, "UNAVAILABLE", "The service is currently unavailable.")
            if path == "/v1/token":
                answer = self._exchange(urllib.parse.parse_qs(body))
            elif path.startswith(_IMPERSONATION_PREFIX) and path.endswith(_IMPERSONATION_SUFFIX):
                account = path[len(_IMPERSONATION_PREFIX) : -len(_IMPERSONATION_SUFFIX)]
                answer = self._impersonate(account, handler.headers.get("Authorization", ""), body)
            else:
                raise _iam_error(404, "NOT_FOUND", f"No route for POST {path}.")
            status = 200
        except _StsError as error:
            status, answer = error.status, error.body
        payload = json.dumps(answer).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json; charset=utf-8")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    def _mint(self, prefix: str) -> str:
        token = f"ya29.{prefix}-{secrets.token_urlsafe(24)}"
        with self._lock:
            self._issued.add(token)
            self.last_access_token = token
        return token

    def _exchange(self, form: dict[str, list[str]]) -> dict[str, Any]:
        def field(name: str) -> str:
            values = form.get(name) or [""]
            return values[0]

        if field("grant_type") != TOKEN_EXCHANGE:
            raise _oauth_error(
                "unsupported_grant_type", f"Unsupported grant_type: {field('grant_type')!r}."
            )
        subject_token, subject_type = field("subject_token"), field("subject_token_type")
        if not subject_token:
            raise _oauth_error("invalid_request", "The subject_token is missing.")
        if subject_type not in SUBJECT_TOKEN_TYPES:
            raise _oauth_error("invalid_request", f"Invalid subject_token_type: {subject_type!r}.")
        requested = field("requested_token_type")
        if requested and requested != ACCESS_TOKEN_TYPE:
            raise _oauth_error("invalid_request", f"Invalid requested_token_type: {requested!r}.")
        audience = field("audience")
        if not audience or (
            self.expected_audience is not None and audience != self.expected_audience
        ):
            raise _oauth_error(
                "invalid_target",
                'The target service indicated by the "audience" parameters is invalid.',
            )
        if self._accept is not None and not self._accept(subject_token):
            raise _oauth_error("invalid_grant", "The subject token was rejected.")
        token = self._mint("sts")
        with self._lock:
            self.exchanges.append(
                StsExchange(
                    audience=audience,
                    subject_token_type=subject_type,
                    subject_token_sha256=_sha256(subject_token),
                    scope=field("scope"),
                    requested_token_type=requested,
                )
            )
        return {
            "access_token": token,
            "issued_token_type": ACCESS_TOKEN_TYPE,
            "token_type": "Bearer",
            "expires_in": self.lifetime,
        }

    def _impersonate(self, account: str, authorization: str, body: str) -> dict[str, Any]:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not self.issued(token.strip()):
            raise _iam_error(
                401, "UNAUTHENTICATED", "Request had invalid authentication credentials."
            )
        try:
            request = json.loads(body or "{}")
        except ValueError:
            raise _iam_error(400, "INVALID_ARGUMENT", "Invalid JSON payload.") from None
        scope = tuple(request.get("scope") or ())
        if not scope:
            raise _iam_error(400, "INVALID_ARGUMENT", "Scope required.")
        lifetime = str(request.get("lifetime") or f"{self.lifetime}s")
        seconds = int(lifetime.rstrip("s") or self.lifetime)
        minted = self._mint("impersonated")
        with self._lock:
            self.impersonations.append(
                Impersonation(service_account=account, scope=scope, lifetime=lifetime)
            )
        expiry = datetime.now(timezone.utc) + timedelta(seconds=seconds)
        return {"accessToken": minted, "expireTime": expiry.strftime("%Y-%m-%dT%H:%M:%SZ")}
