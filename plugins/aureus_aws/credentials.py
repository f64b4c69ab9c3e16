"""AWS credential sources: ``iam``, ``oidc`` (web identity) and ``assume-role``.

Each source hands the ``aws-kms`` provider a botocore credentials object
(:meth:`AwsCredentialSource.botocore_credentials`) for its boto3 session, and
anyone else generic :class:`~aureus_core.interfaces.Credentials` of kind
``aws``: ``access_key_id``, ``secret_access_key`` and ``session_token`` in
:class:`~aureus_core.sensitive.Secret`, the expiry and the assumed role.

Temporary credentials are botocore :class:`~botocore.credentials.RefreshableCredentials`
whose refresh callable calls STS again (``AssumeRoleWithWebIdentity``, re-reading
the token file each time, or ``AssumeRole``).  botocore refreshes them in the
background of any call once fewer than ``advisory`` seconds remain, and blocks
for a refresh once fewer than ``mandatory`` remain (see :func:`refresh_windows`).
The clock is injectable so tests need not wait.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import botocore.session
from botocore import UNSIGNED
from botocore.config import Config
from botocore.credentials import Credentials as BotocoreCredentials
from botocore.credentials import RefreshableCredentials
from botocore.exceptions import BotoCoreError, ClientError

from aureus_core.errors import AureusError, ConfigError, CredentialError
from aureus_core.interfaces import Credentials
from aureus_core.options import SourceOptions
from aureus_core.registry import CredentialSourceRegistry
from aureus_core.sensitive import Secret

from . import log_redaction

KIND = "aws"
DEFAULT_TOKEN_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"  # noqa: S105 - a path
"""The ``oidc`` token file without an option or ``AWS_WEB_IDENTITY_TOKEN_FILE``."""
DEFAULT_SESSION_NAME = "aureus"
DEFAULT_DURATION = 3600
MIN_DURATION, MAX_DURATION = 900, 43200
MAX_TOKEN_BYTES = 64 * 1024
"""A web identity token larger than this is refused (STS accepts at most 20 000 characters)."""
_SESSION_NAME = re.compile(r"^[\w+=,.@-]{2,64}$")
_EXTERNAL_ID = re.compile(r"^[\w+=,.@:/-]{2,1224}$")
_ROLE_ARN = re.compile(r"^arn:aws[a-zA-Z-]*:iam::\d{12}:role/.+$")

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current time, tz-aware (what botocore's refresh windows compare against)."""
    return datetime.now(timezone.utc)


def refresh_windows(duration: int) -> tuple[int, int]:
    """``(advisory, mandatory)`` refresh windows in seconds for credentials lasting ``duration``.

    botocore's defaults (15 and 10 minutes), shortened for short sessions so a
    900-second session is not refreshed on every call.
    """
    return min(15 * 60, duration // 3), min(10 * 60, duration // 6)


@runtime_checkable
class BotocoreCredentialSource(Protocol):
    """A credential source that can hand botocore a credentials object (what ``aws-kms`` uses)."""

    name: str

    def get_credentials(self) -> Credentials:
        """Current credentials, refreshed if about to expire."""
        ...

    def botocore_credentials(self) -> BotocoreCredentials:
        """The botocore credentials object for a boto3 session (refreshes itself)."""
        ...


# -- options ------------------------------------------------------------------------


class _Options(SourceOptions):
    """A source's options, with the checks of AWS values (ARNs, session durations)."""

    def matching(
        self, name: str, pattern: re.Pattern[str], what: str, env: str | None = None
    ) -> str | None:
        value = self.string(name, env)
        if value is not None and not pattern.match(value):
            raise ConfigError(
                f"option {name!r} of credential source {self._source!r} must be {what}"
            )
        return value

    def duration(self) -> int:
        value = self._options.get("duration_seconds", DEFAULT_DURATION)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(
                f"option 'duration_seconds' of credential source {self._source!r} must be a "
                f"whole number, not {type(value).__name__}"
            )
        if not MIN_DURATION <= value <= MAX_DURATION:
            raise ConfigError(
                f"option 'duration_seconds' of credential source {self._source!r} must be "
                f"between {MIN_DURATION} and {MAX_DURATION} (STS limits), not {value}"
            )
        return value


def _region(options: _Options) -> str:
    return (
        options.string("region")
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or "us-east-1"
    )


# -- the sources ----------------------------------------------------------------------


class AwsCredentialSource:
    """Shared behaviour: :class:`Credentials` from the botocore credentials object."""

    name: str = "aws"

    def botocore_credentials(self) -> BotocoreCredentials:
        """The botocore credentials object (overridden by each source)."""
        raise NotImplementedError

    def _expires_at(self) -> datetime | None:
        return None

    def _principal(self) -> str | None:
        return None

    def get_credentials(self) -> Credentials:
        """Current credentials (refreshed by botocore when they are about to expire)."""
        frozen = self.botocore_credentials().get_frozen_credentials()
        if not frozen.access_key or not frozen.secret_key:
            raise CredentialError(f"credential source {self.name!r} produced no access key")
        values = {
            "access_key_id": Secret(frozen.access_key),
            "secret_access_key": Secret(frozen.secret_key),
        }
        if frozen.token:
            values["session_token"] = Secret(frozen.token)
        return Credentials(
            kind=KIND, values=values, expires_at=self._expires_at(), principal=self._principal()
        )


class IamCredentialSource(AwsCredentialSource):
    """``iam``: static keys, a named profile, or botocore's default chain.

    With ``access_key_id`` and ``secret_access_key`` (and optionally
    ``session_token``) those keys are used; otherwise botocore resolves
    credentials as the AWS CLI does (environment, ``profile`` or
    ``AWS_PROFILE``, shared files, SSO, container and instance metadata).
    """

    name = "iam"

    def __init__(
        self,
        *,
        profile: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session_token: str | None = None,
        region: str | None = None,
        session: botocore.session.Session | None = None,
    ) -> None:
        if (access_key_id is None) != (secret_access_key is None):
            raise ConfigError(
                "credential source 'iam' needs both access_key_id and secret_access_key, or neither"
            )
        if access_key_id is not None and profile is not None:
            raise ConfigError("credential source 'iam' takes static keys or a profile, not both")
        if session_token is not None and access_key_id is None:
            raise ConfigError("credential source 'iam': session_token needs access_key_id too")
        self.profile = profile
        self.region = region
        self._static: BotocoreCredentials | None = None
        if access_key_id is not None:
            self._static = BotocoreCredentials(
                access_key_id, secret_access_key, session_token, method="aureus-iam-static"
            )
        self._session = session
        self._resolved: BotocoreCredentials | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> IamCredentialSource:
        """Build from ``[credentials.NAME]`` options (``source = "iam"``)."""
        reader = _Options(
            "iam",
            options,
            ("profile", "access_key_id", "secret_access_key", "session_token", "region"),
        )
        return cls(
            profile=reader.string("profile"),
            access_key_id=reader.string("access_key_id"),
            secret_access_key=reader.string("secret_access_key"),
            session_token=reader.string("session_token"),
            region=reader.string("region"),
        )

    def _expires_at(self) -> datetime | None:
        """When temporary keys from the chain expire (SSO, ``credential_process``, metadata)."""
        if self._static is not None:
            return None
        # botocore's refreshable credentials keep their expiry here, with no public getter.
        expiry = getattr(self.botocore_credentials(), "_expiry_time", None)
        return expiry if isinstance(expiry, datetime) else None

    def botocore_credentials(self) -> BotocoreCredentials:
        """The static keys, or what botocore's chain resolves (once; it refreshes itself)."""
        if self._static is not None:
            return self._static
        with self._lock:
            if self._resolved is None:
                session = self._session or botocore.session.Session(profile=self.profile)
                try:
                    resolved = session.get_credentials()
                except BotoCoreError as error:
                    raise CredentialError(
                        f"credential source 'iam' could not resolve AWS credentials "
                        f"({type(error).__name__}): check the profile and its configuration"
                    ) from None
                if resolved is None:
                    where = f"profile {self.profile!r}" if self.profile else "the default chain"
                    raise CredentialError(
                        f"credential source 'iam' found no AWS credentials in {where}: set "
                        "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, configure a profile, "
                        "or run where instance or container credentials are available"
                    )
                self._resolved = resolved
            return self._resolved

    def __repr__(self) -> str:
        mode = "static" if self._static is not None else f"profile={self.profile!r}"
        return f"IamCredentialSource({mode}, region={self.region!r})"


class _StsSource(AwsCredentialSource):
    """A source whose credentials come from an STS call, refreshed before they expire."""

    def __init__(
        self,
        *,
        role_arn: str,
        session_name: str,
        duration: int,
        region: str,
        endpoint_url: str | None,
        clock: Clock,
        session: botocore.session.Session | None,
    ) -> None:
        self.role_arn = role_arn
        self.session_name = session_name
        self.duration = duration
        self.region = region
        self.endpoint_url = endpoint_url
        self._clock = clock
        self._session = session or botocore.session.Session()
        self._credentials: RefreshableCredentials | None = None
        self._expiry: datetime | None = None
        self._assumed_arn: str | None = None
        self._lock = threading.Lock()

    def _client(self, credentials: BotocoreCredentials | None) -> Any:
        """An STS client: unsigned without ``credentials`` (web identity needs none)."""
        kwargs: dict[str, Any] = {"region_name": self.region, "endpoint_url": self.endpoint_url}
        if credentials is None:
            kwargs["config"] = Config(signature_version=UNSIGNED)
        else:
            frozen = credentials.get_frozen_credentials()
            kwargs.update(
                aws_access_key_id=frozen.access_key,
                aws_secret_access_key=frozen.secret_key,
                aws_session_token=frozen.token,
            )
        log_redaction.install()  # STS requests and answers carry tokens and keys
        return self._session.create_client("sts", **kwargs)

    def _call(self) -> Mapping[str, Any]:
        """One STS call; returns the response (subclasses)."""
        raise NotImplementedError

    def _operation(self) -> str:
        raise NotImplementedError

    def fetch(self) -> dict[str, str]:
        """Call STS once; the refresh callable botocore runs (its metadata dict)."""
        try:
            response = self._call()
        except ClientError as error:
            info = error.response.get("Error", {})
            code = info.get("Code", "Unknown")
            reason = str(info.get("Message", ""))[:300]
            raise CredentialError(
                f"credential source {self.name!r}: STS {self._operation()} for role "
                f"{self.role_arn} failed with {code}: {reason or 'no message'}; check the "
                "role's trust policy and that the caller may assume it"
            ) from None
        except BotoCoreError as error:
            raise CredentialError(
                f"credential source {self.name!r}: STS {self._operation()} for role "
                f"{self.role_arn} failed ({type(error).__name__}); check the network, "
                "region and endpoint_url"
            ) from None
        issued = response["Credentials"]
        expiration: datetime = issued["Expiration"]
        if expiration.tzinfo is None:
            expiration = expiration.replace(tzinfo=timezone.utc)
        self._expiry = expiration
        self._assumed_arn = response.get("AssumedRoleUser", {}).get("Arn") or self.role_arn
        return {
            "access_key": issued["AccessKeyId"],
            "secret_key": issued["SecretAccessKey"],
            "token": issued["SessionToken"],
            "expiry_time": expiration.isoformat(),
        }

    def botocore_credentials(self) -> RefreshableCredentials:
        """Refreshable credentials, fetched on first use; refreshed through :meth:`fetch`."""
        with self._lock:
            if self._credentials is None:
                metadata = self.fetch()
                advisory, mandatory = refresh_windows(self.duration)
                self._credentials = RefreshableCredentials(
                    access_key=metadata["access_key"],
                    secret_key=metadata["secret_key"],
                    token=metadata["token"],
                    expiry_time=self._expiry,
                    refresh_using=self.fetch,
                    method=f"aureus-{self.name}",
                    time_fetcher=self._clock,
                    advisory_timeout=advisory,
                    mandatory_timeout=mandatory,
                )
            return self._credentials

    def _expires_at(self) -> datetime | None:
        return self._expiry

    def _principal(self) -> str | None:
        return self._assumed_arn


class OidcCredentialSource(_StsSource):
    """``oidc``: a web identity token file exchanged for a role's credentials.

    As Kubernetes (EKS IRSA) projects it: ``token_file`` defaults to
    ``AWS_WEB_IDENTITY_TOKEN_FILE``, else the service account token; the role
    to ``AWS_ROLE_ARN``.  The file is re-read for every refresh, so a
    rotated token is picked up.  ``AssumeRoleWithWebIdentity`` is unsigned.
    """

    name = "oidc"

    def __init__(
        self,
        *,
        role_arn: str,
        token_file: str | os.PathLike[str] = DEFAULT_TOKEN_FILE,
        session_name: str = DEFAULT_SESSION_NAME,
        duration: int = DEFAULT_DURATION,
        region: str = "us-east-1",
        endpoint_url: str | None = None,
        clock: Clock = utc_now,
        session: botocore.session.Session | None = None,
    ) -> None:
        super().__init__(
            role_arn=role_arn,
            session_name=session_name,
            duration=duration,
            region=region,
            endpoint_url=endpoint_url,
            clock=clock,
            session=session,
        )
        self.token_file = Path(token_file)
        self._sts: Any = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> OidcCredentialSource:
        """Build from ``[credentials.NAME]`` options (``source = "oidc"``)."""
        reader = _Options(
            "oidc",
            options,
            (
                "token_file",
                "role_arn",
                "session_name",
                "duration_seconds",
                "region",
                "endpoint_url",
            ),
        )
        role_arn = reader.required("role_arn", "AWS_ROLE_ARN")
        if not _ROLE_ARN.match(role_arn):
            raise ConfigError(
                "credential source 'oidc': role_arn must be an IAM role ARN such as "
                "arn:aws:iam::111122223333:role/app"
            )
        return cls(
            role_arn=role_arn,
            token_file=reader.string("token_file", "AWS_WEB_IDENTITY_TOKEN_FILE")
            or DEFAULT_TOKEN_FILE,
            session_name=reader.matching(
                "session_name",
                _SESSION_NAME,
                "2 to 64 letters, digits or +=,.@_-",
                "AWS_ROLE_SESSION_NAME",
            )
            or DEFAULT_SESSION_NAME,
            duration=reader.duration(),
            region=_region(reader),
            endpoint_url=reader.string("endpoint_url"),
        )

    def read_token(self) -> str:
        """The token file's content, stripped; a :class:`CredentialError` names the file."""
        path = self.token_file
        hint = (
            "mount the projected service account token there (Kubernetes: a "
            "serviceAccountToken volume with audience sts.amazonaws.com; EKS IRSA sets "
            "AWS_WEB_IDENTITY_TOKEN_FILE), or point the option token_file / "
            "AWS_WEB_IDENTITY_TOKEN_FILE at the token"
        )
        try:
            with path.open("rb") as handle:
                data = handle.read(MAX_TOKEN_BYTES + 1)
        except FileNotFoundError:
            raise CredentialError(
                f"credential source 'oidc': the web identity token file {path} does not exist: "
                f"{hint}"
            ) from None
        except IsADirectoryError:
            raise CredentialError(
                f"credential source 'oidc': the web identity token file {path} is a directory: "
                f"{hint}"
            ) from None
        except PermissionError:
            raise CredentialError(
                f"credential source 'oidc': no permission to read the web identity token file "
                f"{path}: let this process's user read it (Kubernetes: fsGroup / "
                "securityContext)"
            ) from None
        except OSError as error:
            raise CredentialError(
                f"credential source 'oidc': cannot read the web identity token file {path} "
                f"({error.strerror}): {hint}"
            ) from None
        if len(data) > MAX_TOKEN_BYTES:
            raise CredentialError(
                f"credential source 'oidc': the web identity token file {path} is larger than "
                f"{MAX_TOKEN_BYTES} bytes, so it is not a token: {hint}"
            )
        try:
            token = data.decode("ascii").strip()
        except UnicodeDecodeError:
            raise CredentialError(
                f"credential source 'oidc': the web identity token file {path} does not hold "
                f"a JWT (it is not ASCII text): {hint}"
            ) from None
        if not token:
            raise CredentialError(
                f"credential source 'oidc': the web identity token file {path} is empty: {hint}"
            )
        return token

    def _operation(self) -> str:
        return "AssumeRoleWithWebIdentity"

    def _call(self) -> Mapping[str, Any]:
        token = self.read_token()
        if self._sts is None:
            self._sts = self._client(None)
        response: Mapping[str, Any] = self._sts.assume_role_with_web_identity(
            RoleArn=self.role_arn,
            RoleSessionName=self.session_name,
            WebIdentityToken=token,
            DurationSeconds=self.duration,
        )
        return response

    def __repr__(self) -> str:
        return (
            f"OidcCredentialSource(role_arn={self.role_arn!r}, "
            f"token_file={str(self.token_file)!r}, session_name={self.session_name!r})"
        )


class AssumeRoleCredentialSource(_StsSource):
    """``assume-role``: a role (often in another account) assumed with a parent source's keys.

    ``parent`` is any AWS source (``iam``, ``oidc``, another ``assume-role``);
    each refresh signs ``AssumeRole`` with the parent's current credentials,
    which refresh themselves.  ``external_id`` is passed when the role's
    trust policy requires one (the confused-deputy guard for third parties).
    """

    name = "assume-role"

    def __init__(
        self,
        *,
        parent: BotocoreCredentialSource,
        role_arn: str,
        external_id: str | None = None,
        session_name: str = DEFAULT_SESSION_NAME,
        duration: int = DEFAULT_DURATION,
        region: str = "us-east-1",
        endpoint_url: str | None = None,
        clock: Clock = utc_now,
        session: botocore.session.Session | None = None,
    ) -> None:
        super().__init__(
            role_arn=role_arn,
            session_name=session_name,
            duration=duration,
            region=region,
            endpoint_url=endpoint_url,
            clock=clock,
            session=session,
        )
        self.parent = parent
        self._external_id = external_id

    @classmethod
    def from_options(
        cls,
        options: Mapping[str, Any],
        registry: CredentialSourceRegistry,
        *,
        credentials: Callable[[str], object] | None = None,
    ) -> AssumeRoleCredentialSource:
        """Build from options.

        ``parent`` is an inline table built through ``registry``, or the name
        of another ``[credentials.<name>]`` table, which ``credentials``
        returns (the stack passes it).
        """
        reader = _Options(
            "assume-role",
            options,
            (
                "parent",
                "role_arn",
                "external_id",
                "session_name",
                "duration_seconds",
                "region",
                "endpoint_url",
            ),
        )
        role_arn = reader.required("role_arn")
        if not _ROLE_ARN.match(role_arn):
            raise ConfigError(
                "credential source 'assume-role': role_arn must be an IAM role ARN such as "
                "arn:aws:iam::111122223333:role/app"
            )
        return cls(
            parent=_build_parent(options.get("parent"), registry, credentials),
            role_arn=role_arn,
            external_id=reader.matching(
                "external_id", _EXTERNAL_ID, "2 to 1224 letters, digits or +=,.@:/_-"
            ),
            session_name=reader.matching(
                "session_name", _SESSION_NAME, "2 to 64 letters, digits or +=,.@_-"
            )
            or DEFAULT_SESSION_NAME,
            duration=reader.duration(),
            region=_region(reader),
            endpoint_url=reader.string("endpoint_url"),
        )

    def _operation(self) -> str:
        return "AssumeRole"

    def _call(self) -> Mapping[str, Any]:
        params: dict[str, Any] = {
            "RoleArn": self.role_arn,
            "RoleSessionName": self.session_name,
            "DurationSeconds": self.duration,
        }
        if self._external_id is not None:
            params["ExternalId"] = self._external_id
        # A client per refresh: it signs with the parent's credentials of the moment.
        response: Mapping[str, Any] = self._client(self.parent.botocore_credentials()).assume_role(
            **params
        )
        return response

    def __repr__(self) -> str:
        return (
            f"AssumeRoleCredentialSource(role_arn={self.role_arn!r}, "
            f"session_name={self.session_name!r}, "
            f"external_id={'set' if self._external_id else None}, parent={self.parent!r})"
        )


def _build_parent(
    parent: object,
    registry: CredentialSourceRegistry,
    credentials: Callable[[str], object] | None,
) -> BotocoreCredentialSource:
    """The parent of ``assume-role``: a ``[credentials.<name>]`` name or an inline table."""
    if isinstance(parent, str) and parent:
        if credentials is None:
            raise ConfigError(
                f"credential source 'assume-role': parent = {parent!r} names a "
                "[credentials] table, which only a stack configuration can resolve; give "
                'an inline table { source = "iam", ... } here'
            )
        source = credentials(parent)
        what = f"[credentials.{parent}]"
    elif isinstance(parent, Mapping):
        options = dict(parent)
        name = options.pop("source", None)
        if not isinstance(name, str):
            raise ConfigError(
                "credential source 'assume-role': option 'parent' needs source = \"iam\", "
                '"oidc" or "assume-role"'
            )
        try:
            source = registry.get(name).factory(options)
        except AureusError as error:
            raise ConfigError(
                f"credential source 'assume-role', option 'parent': {error}"
            ) from None
        what = f"parent source {name!r}"
    else:
        raise ConfigError(
            "credential source 'assume-role' needs the option 'parent': the name of another "
            '[credentials] table, or a table such as { source = "oidc", role_arn = '
            '"arn:aws:iam::111122223333:role/app" }'
        )
    if not isinstance(source, BotocoreCredentialSource):
        raise ConfigError(
            f"credential source 'assume-role': {what} does not provide AWS credentials; "
            "use iam, oidc or assume-role"
        )
    return source


def register(registry: CredentialSourceRegistry) -> None:
    """Register ``iam``, ``oidc`` and ``assume-role`` on ``registry``."""
    registry.register(
        "iam",
        IamCredentialSource.from_options,
        description=(
            "AWS static keys, a named profile or the default chain "
            "(options: profile, access_key_id, secret_access_key, session_token, region)"
        ),
    )
    registry.register(
        "oidc",
        OidcCredentialSource.from_options,
        description=(
            "AWS web identity: a token file exchanged through STS AssumeRoleWithWebIdentity "
            "(options: token_file, role_arn, session_name, duration_seconds, region, "
            "endpoint_url)"
        ),
    )

    def assume_role(
        options: Mapping[str, Any], *, credentials: Callable[[str], object] | None = None
    ) -> AssumeRoleCredentialSource:
        return AssumeRoleCredentialSource.from_options(options, registry, credentials=credentials)

    registry.register(
        "assume-role",
        assume_role,
        description=(
            "AWS STS AssumeRole with a parent source's credentials (options: parent, a "
            "[credentials] table name or inline table; role_arn, external_id, session_name, "
            "duration_seconds, region, endpoint_url)"
        ),
    )


__all__ = [
    "DEFAULT_TOKEN_FILE",
    "AssumeRoleCredentialSource",
    "AwsCredentialSource",
    "BotocoreCredentialSource",
    "IamCredentialSource",
    "OidcCredentialSource",
    "refresh_windows",
    "register",
    "utc_now",
]
