"""Google credential sources: ``gcp-adc``, ``gcp-service-account`` and ``gcp-workload-identity``.

Each hands the ``gcp-kms`` provider a google-auth credentials object
(:meth:`GcpCredentialSource.google_credentials`), which the provider attaches
to its gRPC channel, and anyone else generic
:class:`~aureus_core.interfaces.Credentials` of kind ``gcp``: an OAuth2
``access_token`` (in :class:`~aureus_core.sensitive.Secret`) and its expiry.

``gcp-workload-identity`` is workload identity federation: an OIDC token
file (a Kubernetes projected service account token, say) exchanged through
Google STS by google-auth's external-account ("identity pool") credentials,
optionally followed by service account impersonation.  The file is re-read
at every refresh, so a rotated token is picked up.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import google.auth
import google.auth.credentials
import google.auth.transport
import requests
from google.auth import exceptions as auth_exceptions

from aureus_core.errors import AureusError, ConfigError, CredentialError
from aureus_core.interfaces import Credentials, CredentialSource
from aureus_core.options import SourceOptions
from aureus_core.registry import CredentialSourceRegistry
from aureus_core.sensitive import Secret

KIND = "gcp"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
"""The default OAuth scope (Cloud KMS accepts it and ``…/auth/cloudkms``)."""
DEFAULT_TOKEN_URL = "https://sts.googleapis.com/v1/token"  # noqa: S105 - a URL
DEFAULT_TOKEN_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"  # noqa: S105 - a path
"""The Kubernetes service account token, as the seed system read it."""
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"  # noqa: S105 - a URN
MAX_KEY_FILE_BYTES = 64 * 1024
DEFAULT_HTTP_TIMEOUT = 30.0
"""Seconds a token request may take unless google-auth asks for less."""
_MAX_DETAIL = 300

GoogleCredentials = google.auth.credentials.Credentials


class _Response(google.auth.transport.Response):
    """google-auth's view of one ``requests`` response (read in full)."""

    def __init__(self, response: requests.Response) -> None:
        self._status = response.status_code
        self._headers = dict(response.headers)
        self._data = response.content

    @property
    def status(self) -> int:
        """The HTTP status."""
        return self._status

    @property
    def headers(self) -> Mapping[str, str]:
        """The response headers."""
        return self._headers

    @property
    def data(self) -> bytes:
        """The response body."""
        return self._data


class OneShotRequest(google.auth.transport.Request):
    """google-auth's HTTP transport interface over ``requests``, a fresh session per request.

    Used for every token request Aureus makes (STS exchanges, token
    endpoints, impersonation).  Unlike ``google.auth.transport.requests``,
    it logs no request bodies: google-auth's debug log hashes access tokens
    but shows subject tokens and JWT assertions as they are.  Token refreshes
    are rare; closing each session leaves no idle sockets behind.
    """

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> _Response:
        """Make one HTTP request (google-auth's ``Request`` interface)."""
        try:
            with requests.Session() as session:
                response = session.request(
                    method,
                    url,
                    data=body,
                    headers=dict(headers or {}),
                    timeout=timeout or DEFAULT_HTTP_TIMEOUT,
                    **kwargs,
                )
                return _Response(response)
        except requests.RequestException as error:
            raise auth_exceptions.TransportError(  # type: ignore[no-untyped-call]
                f"{method} {url.split('?', 1)[0]} failed: {type(error).__name__}"
            ) from None


@runtime_checkable
class GoogleCredentialSource(Protocol):
    """A credential source that hands out google-auth credentials (what ``gcp-kms`` uses)."""

    name: str

    def get_credentials(self) -> Credentials:
        """Current credentials, refreshed if about to expire."""
        ...

    def google_credentials(self) -> GoogleCredentials:
        """The google-auth credentials object (refreshes itself)."""
        ...


def safe_detail(error: BaseException, secrets: Sequence[str] = ()) -> str:
    """The first line of ``error``, shortened, with any of ``secrets`` cut out."""
    lines = str(error).strip().splitlines()
    text = (lines[0] if lines else type(error).__name__)[:_MAX_DETAIL]
    for secret in secrets:
        if secret and len(secret) >= 8:
            text = text.replace(secret, "<redacted>")
    return text


def _utc(expiry: datetime | None) -> datetime | None:
    # google-auth keeps expiries as naive UTC.
    if expiry is None:
        return None
    return expiry.replace(tzinfo=timezone.utc) if expiry.tzinfo is None else expiry


def refresh(credentials: GoogleCredentials, what: str, secrets: Sequence[str] = ()) -> None:
    """Refresh ``credentials`` now; failures are :class:`CredentialError`, secrets cut out."""
    try:
        credentials.refresh(OneShotRequest())  # type: ignore[no-untyped-call]
    except AureusError:
        raise
    except auth_exceptions.GoogleAuthError as error:
        raise CredentialError(
            f"{what} could not obtain a Google access token ({type(error).__name__}: "
            f"{safe_detail(error, secrets)})"
        ) from None
    except (OSError, ValueError) as error:
        raise CredentialError(
            f"{what} could not obtain a Google access token ({type(error).__name__}: "
            f"{safe_detail(error, secrets)})"
        ) from None


class GcpCredentialSource:
    """A credential source around one google-auth credentials object, built on first use."""

    def __init__(
        self,
        name: str,
        factory: Callable[[], GoogleCredentials],
        *,
        principal: str | None = None,
        secrets: Callable[[], Sequence[str]] = tuple,
    ) -> None:
        self.name = name
        self._factory = factory
        self._principal = principal
        self._secrets = secrets
        self._credentials: GoogleCredentials | None = None
        self._lock = threading.Lock()

    def google_credentials(self) -> GoogleCredentials:
        """The google-auth credentials the ``gcp-kms`` provider authenticates with."""
        with self._lock:
            if self._credentials is None:
                try:
                    self._credentials = self._factory()
                except AureusError:
                    raise
                except auth_exceptions.GoogleAuthError as error:
                    raise CredentialError(
                        f"credential source {self.name!r} found no usable Google credentials "
                        f"({type(error).__name__}: {safe_detail(error, self._secrets())})"
                    ) from None
                except (ValueError, TypeError) as error:
                    raise ConfigError(
                        f"credential source {self.name!r} is misconfigured: "
                        f"{safe_detail(error, self._secrets())}"
                    ) from None
            return self._credentials

    def get_credentials(self) -> Credentials:
        """A current access token (refreshed when it is missing or about to expire)."""
        credentials = self.google_credentials()
        with self._lock:
            if not credentials.valid:
                refresh(credentials, f"credential source {self.name!r}", self._secrets())
            token = credentials.token
            expiry = credentials.expiry
        if not token:
            raise CredentialError(f"credential source {self.name!r} produced no access token")
        principal = self._principal or getattr(credentials, "service_account_email", None)
        return Credentials(
            kind=KIND,
            values={"access_token": Secret(str(token))},
            expires_at=_utc(expiry),
            principal=principal if isinstance(principal, str) else None,
        )

    def __repr__(self) -> str:
        return f"GcpCredentialSource(name={self.name!r}, principal={self._principal!r})"


class SourceCredentials(google.auth.credentials.Credentials):
    """google-auth credentials over any credential source with an ``access_token`` or ``token``."""

    def __init__(self, source: CredentialSource) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._source = source

    def refresh(self, request: Any) -> None:
        """Ask the source for its current token."""
        credentials = self._source.get_credentials()
        token = credentials.values.get("access_token") or credentials.values.get("token")
        if token is None:
            raise CredentialError(
                f"credential source {self._source.name!r} gave the gcp-kms provider no "
                "'access_token' value: use a gcp-* credential source"
            )
        self.token = str(token.reveal())
        expires = credentials.expires_at
        self.expiry = (
            expires.astimezone(timezone.utc).replace(tzinfo=None) if expires is not None else None
        )

    def __repr__(self) -> str:
        return f"SourceCredentials(source={self._source.name!r})"


def google_credentials_for(source: CredentialSource) -> GoogleCredentials:
    """google-auth credentials from any credential source."""
    if isinstance(source, GoogleCredentialSource):
        return source.google_credentials()
    return SourceCredentials(source)


# -- options ---------------------------------------------------------------------------

_COMMON = ("scopes", "quota_project")


class _Reader(SourceOptions):
    """A source's options, plus ``scopes`` and ``quota_project``, which every source takes."""

    def __init__(self, source: str, options: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
        super().__init__(source, options, (*allowed, *_COMMON))

    def scopes(self) -> list[str]:
        value = self._options.get("scopes", [CLOUD_PLATFORM])
        if (
            not isinstance(value, (list, tuple))
            or not value
            or not all(isinstance(s, str) and s for s in value)
        ):
            raise ConfigError(
                f"option 'scopes' of credential source {self._source!r} must be a non-empty list "
                f"of OAuth scopes such as {CLOUD_PLATFORM!r}"
            )
        return list(value)


def _with_quota(credentials: GoogleCredentials, quota_project: str | None) -> GoogleCredentials:
    if quota_project is None:
        return credentials
    if not isinstance(credentials, google.auth.credentials.CredentialsWithQuotaProject):
        raise ConfigError(
            f"{type(credentials).__name__} credentials cannot carry a quota project; drop the "
            "option quota_project"
        )
    quoted: GoogleCredentials = credentials.with_quota_project(quota_project)  # type: ignore[no-untyped-call]
    return quoted


# -- the sources -----------------------------------------------------------------------


def adc_source(options: Mapping[str, Any]) -> GcpCredentialSource:
    """``gcp-adc``: Application Default Credentials (``google.auth.default``).

    ``GOOGLE_APPLICATION_CREDENTIALS``, gcloud's user credentials, or the
    metadata server of GCE, GKE, Cloud Run … in that order.
    """
    reader = _Reader("gcp-adc", options, ())
    scopes = reader.scopes()
    quota = reader.string("quota_project")

    def build() -> GoogleCredentials:
        credentials, _ = google.auth.default(
            scopes=scopes, quota_project_id=quota, request=OneShotRequest()
        )
        return credentials

    return GcpCredentialSource("gcp-adc", build)


def _read_key_file(path: Path) -> dict[str, Any]:
    """The service account key, as a dict; errors name the file, never its content."""
    where = f"credential source 'gcp-service-account': the key file {path}"
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_KEY_FILE_BYTES + 1)
    except FileNotFoundError:
        raise CredentialError(f"{where} does not exist") from None
    except PermissionError:
        raise CredentialError(f"{where} is not readable by this process") from None
    except OSError as error:
        raise CredentialError(f"{where} cannot be read ({error.strerror})") from None
    if len(data) > MAX_KEY_FILE_BYTES:
        raise CredentialError(f"{where} is larger than {MAX_KEY_FILE_BYTES} bytes: not a key file")
    try:
        info = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise CredentialError(f"{where} is not JSON: download a JSON key for the account") from None
    if not isinstance(info, dict) or info.get("type") != "service_account":
        raise CredentialError(f"{where} is not a service account key (type service_account)")
    missing = [f for f in ("client_email", "private_key", "token_uri") if not info.get(f)]
    if missing:
        raise CredentialError(f"{where} lacks the field(s) {', '.join(missing)}")
    return info


def service_account_source(options: Mapping[str, Any]) -> GcpCredentialSource:
    """``gcp-service-account``: a service account JSON key file (``key_file``).

    By default the token is a self-signed JWT, made locally as the official
    client libraries do (``self_signed_jwt = false``: exchange it at the
    key's ``token_uri``).
    """
    reader = _Reader("gcp-service-account", options, ("key_file", "self_signed_jwt"))
    key_file = Path(
        reader.string("key_file", "GOOGLE_APPLICATION_CREDENTIALS", required=True) or ""
    )
    scopes = reader.scopes()
    quota = reader.string("quota_project")
    self_signed = reader.flag("self_signed_jwt", True)

    def build() -> GoogleCredentials:
        from google.oauth2 import service_account

        info = _read_key_file(key_file)
        try:
            credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                info, scopes=scopes, always_use_jwt_access=self_signed
            )
        except (ValueError, TypeError, auth_exceptions.GoogleAuthError):
            raise CredentialError(
                f"credential source 'gcp-service-account': the key file {key_file} holds no "
                "usable private key"
            ) from None
        return _with_quota(credentials, quota)

    # The principal is the account's e-mail, which the credentials report once loaded.
    return GcpCredentialSource("gcp-service-account", build)


def workload_identity_source(options: Mapping[str, Any]) -> GcpCredentialSource:
    """``gcp-workload-identity``: an OIDC token file exchanged through Google STS.

    ``audience`` is the workload identity pool provider
    (``//iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/POOL/providers/PROV``);
    ``token_file`` defaults to the Kubernetes service account token;
    ``service_account_impersonation_url`` makes the federated token act as a
    service account (``https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/SA:generateAccessToken``).
    """
    reader = _Reader(
        "gcp-workload-identity",
        options,
        (
            "audience",
            "token_file",
            "token_url",
            "service_account_impersonation_url",
            "subject_token_type",
        ),
    )
    audience = reader.string("audience", required=True)
    token_file = reader.string("token_file") or DEFAULT_TOKEN_FILE
    token_url = _secure_url(reader.string("token_url") or DEFAULT_TOKEN_URL, "token_url")
    impersonation = reader.string("service_account_impersonation_url")
    if impersonation:
        impersonation = _secure_url(impersonation, "service_account_impersonation_url")
    token_type = reader.string("subject_token_type") or JWT_TOKEN_TYPE
    scopes = reader.scopes()
    quota = reader.string("quota_project")

    def current_token() -> Sequence[str]:
        # What must never show in an error: the subject token itself.
        try:
            return (Path(token_file).read_text(encoding="utf-8").strip(),)
        except (OSError, UnicodeDecodeError):
            return ()

    def build() -> GoogleCredentials:
        from google.auth import identity_pool

        info: dict[str, Any] = {
            "type": "external_account",
            "audience": audience,
            "subject_token_type": token_type,
            "token_url": token_url,
            "credential_source": {"file": token_file, "format": {"type": "text"}},
        }
        if impersonation:
            info["service_account_impersonation_url"] = impersonation
        if quota:
            info["quota_project_id"] = quota
        credentials: GoogleCredentials = identity_pool.Credentials.from_info(  # type: ignore[no-untyped-call]
            info, scopes=scopes
        )
        return credentials

    return GcpCredentialSource(
        "gcp-workload-identity", build, principal=audience, secrets=current_token
    )


_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def _secure_url(url: str, option: str) -> str:
    """``url`` if it is https, or plain http to this machine (a test server); else ConfigError.

    Both URLs receive a token (the Kubernetes service account token, then the
    federated access token): sent over plain http to another host, anyone on the
    way could use it.  The host is compared parsed, so ``http://localhost.example``
    or ``http://127.0.0.1@example.com`` are not taken for this machine.
    """
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname
    except ValueError:
        host = None
        parts = None
    secure = (
        parts is not None
        and host is not None
        and (parts.scheme == "https" or (parts.scheme == "http" and host in _LOOPBACK))
    )
    if not secure:
        raise ConfigError(
            f"option {option!r} of credential source 'gcp-workload-identity' must be an https "
            "URL (plain http only for a test server on 127.0.0.1, ::1 or localhost)"
        )
    return url


SOURCES: dict[str, tuple[Callable[[Mapping[str, Any]], GcpCredentialSource], str]] = {
    "gcp-adc": (
        adc_source,
        "Google Application Default Credentials (options: scopes, quota_project)",
    ),
    "gcp-service-account": (
        service_account_source,
        "a Google service account JSON key (options: key_file, self_signed_jwt, scopes, "
        "quota_project)",
    ),
    "gcp-workload-identity": (
        workload_identity_source,
        "workload identity federation: an OIDC token file exchanged through Google STS "
        "(options: audience, token_file, token_url, service_account_impersonation_url, "
        "subject_token_type, scopes, quota_project)",
    ),
}


def register(registry: CredentialSourceRegistry) -> None:
    """Register the ``gcp-*`` credential sources on ``registry``."""
    for name, (factory, description) in SOURCES.items():
        registry.register(name, factory, description=description)


__all__ = [
    "CLOUD_PLATFORM",
    "DEFAULT_TOKEN_FILE",
    "DEFAULT_TOKEN_URL",
    "GcpCredentialSource",
    "GoogleCredentialSource",
    "OneShotRequest",
    "SourceCredentials",
    "adc_source",
    "google_credentials_for",
    "register",
    "service_account_source",
    "workload_identity_source",
]
