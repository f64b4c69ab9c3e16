"""The ``iam``, ``oidc`` and ``assume-role`` credential sources, against moto's STS over HTTP."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.credentials import RefreshableCredentials

from aureus_aws.credentials import (
    DEFAULT_TOKEN_FILE,
    AssumeRoleCredentialSource,
    IamCredentialSource,
    OidcCredentialSource,
    refresh_windows,
    register,
)
from aureus_aws.testing import MotoServer
from aureus_core import KeyStack
from aureus_core.config import StackConfig
from aureus_core.errors import ConfigError, CredentialError
from aureus_core.interfaces import Credentials, CredentialSource
from aureus_core.registry import CredentialSourceRegistry
from aureus_core.testing.credential_contract import CredentialSourceContract

WEB_ROLE = "arn:aws:iam::111122223333:role/aureus-web"
TARGET_ROLE = "arn:aws:iam::444455556666:role/aureus-cross-account"


class Clock:
    """A settable tz-aware clock for botocore's refresh windows."""

    def __init__(self) -> None:
        self.now = datetime.now(timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Recorder:
    """A botocore session whose STS calls are observed (parameters and signing key ID)."""

    def __init__(self) -> None:
        self.session = botocore.session.Session()
        self.params: list[dict[str, Any]] = []
        self.signed_with: list[str] = []
        self.session.register("before-call.sts.*", self._before_call)
        self.session.register("before-send.sts.AssumeRole", self._before_send)

    def _before_call(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.params.append({"operation": model.name, **params["body"]})

    def _before_send(self, request: Any, **_: Any) -> None:
        authorization = request.headers.get("Authorization", b"")
        if isinstance(authorization, bytes):
            authorization = authorization.decode()
        self.signed_with.append(authorization.split("Credential=")[1].split("/")[0])

    def calls(self, operation: str) -> list[dict[str, Any]]:
        return [p for p in self.params if p["operation"] == operation]


def new_token() -> str:
    """A JWT-shaped random token (moto does not check the signature)."""
    return "eyJhbGciOiJSUzI1NiJ9." + secrets.token_urlsafe(48) + "." + secrets.token_urlsafe(32)


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(new_token() + "\n")
    return path


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def oidc(
    moto_server: MotoServer, token_file: Path, clock: Clock, recorder: Recorder
) -> OidcCredentialSource:
    return OidcCredentialSource(
        role_arn=WEB_ROLE,
        token_file=token_file,
        endpoint_url=moto_server.url,
        clock=clock,
        session=recorder.session,
    )


def client(service: str, credentials: Credentials, server: MotoServer) -> Any:
    """A boto3 client using exactly ``credentials``."""
    values = credentials.values
    return boto3.client(
        service,
        region_name="us-east-1",
        endpoint_url=server.url,
        aws_access_key_id=values["access_key_id"].reveal(),
        aws_secret_access_key=values["secret_access_key"].reveal(),
        aws_session_token=values["session_token"].reveal() if "session_token" in values else None,
    )


# -- the contract, for each source ------------------------------------------------------


class TestIamStaticContract(CredentialSourceContract):
    holds_only_what_it_returns = True

    @pytest.fixture
    def credential_source(self) -> CredentialSource:
        return IamCredentialSource(
            access_key_id="AKIASTATICEXAMPLE01",
            secret_access_key="static-secret-" + secrets.token_hex(16),
            session_token="static-token-" + secrets.token_hex(16),
        )


class TestIamChainContract(CredentialSourceContract):
    holds_only_what_it_returns = True  # botocore's chain hands on the keys it finds

    @pytest.fixture
    def credential_source(self) -> CredentialSource:
        return IamCredentialSource()  # the environment the conftest sets


class TestOidcContract(CredentialSourceContract):
    @pytest.fixture
    def credential_source(self, oidc: OidcCredentialSource) -> CredentialSource:
        return oidc

    @pytest.fixture
    def held_secrets(self, token_file: Path) -> list[str]:
        return [token_file.read_text().strip()]  # the web identity token it exchanges


class TestAssumeRoleContract(CredentialSourceContract):
    @pytest.fixture
    def credential_source(
        self, oidc: OidcCredentialSource, moto_server: MotoServer, clock: Clock
    ) -> CredentialSource:
        return AssumeRoleCredentialSource(
            parent=oidc,
            role_arn=TARGET_ROLE,
            external_id="aureus-external-1",
            endpoint_url=moto_server.url,
            clock=clock,
        )

    @pytest.fixture
    def held_secrets(self, token_file: Path) -> list[str]:
        return [token_file.read_text().strip()]  # the parent's web identity token


# -- iam -------------------------------------------------------------------------------------


def test_iam_static_keys_are_handed_out_and_work(moto_server: MotoServer) -> None:
    source = IamCredentialSource(
        access_key_id="AKIAAUREUSSTATIC001", secret_access_key="static-secret-value-1234"
    )
    credentials = source.get_credentials()
    assert credentials.kind == "aws"
    assert credentials.values["access_key_id"].reveal() == "AKIAAUREUSSTATIC001"
    assert "session_token" not in credentials.values
    assert credentials.expires_at is None
    assert source.botocore_credentials().get_frozen_credentials().secret_key == (
        "static-secret-value-1234"
    )
    kms = client("kms", credentials, moto_server)
    assert kms.create_key(Description="iam static")["KeyMetadata"]["KeyId"]


def test_iam_chain_reads_the_environment() -> None:
    credentials = IamCredentialSource().get_credentials()
    assert credentials.values["access_key_id"].reveal() == "AKIAAUREUSTESTING00"


def test_iam_chain_without_credentials_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(CredentialError, match=r"found no AWS credentials.*AWS_ACCESS_KEY_ID"):
        IamCredentialSource().get_credentials()


def test_iam_named_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shared = tmp_path / "credentials"
    shared.write_text(
        "[payments]\naws_access_key_id = AKIAPROFILEEXAMPLE1\n"
        "aws_secret_access_key = profile-secret-value-5678\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(shared))
    source = IamCredentialSource.from_options({"profile": "payments"})
    assert source.get_credentials().values["access_key_id"].reveal() == "AKIAPROFILEEXAMPLE1"
    assert "profile-secret" not in repr(source)


def test_iam_chain_reports_when_its_temporary_keys_expire(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keys from credential_process (likewise SSO, container and instance metadata) are
    temporary: their Credentials say until when. Before, expires_at was None for them, so
    a consumer of the generic Credentials took them for keys that never expire."""
    import sys

    expiry = (datetime.now(timezone.utc) + timedelta(minutes=40)).replace(microsecond=0)
    script = tmp_path / "process.py"
    script.write_text(
        "import json; print(json.dumps({'Version': 1, 'AccessKeyId': 'ASIAPROCESSEXAMPLE01', "
        "'SecretAccessKey': 'process-secret-value-1234', 'SessionToken': 'process-token', "
        f"'Expiration': '{expiry.isoformat().replace('+00:00', 'Z')}'}}))"
    )
    config = tmp_path / "config"
    config.write_text(f"[profile temporary]\ncredential_process = {sys.executable} {script}\n")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    credentials = IamCredentialSource.from_options({"profile": "temporary"}).get_credentials()
    assert credentials.values["session_token"].reveal() == "process-token"
    assert credentials.expires_at == expiry
    # Static keys have no expiry to report.
    static = IamCredentialSource.from_options(
        {"access_key_id": "AKIASTATICEXAMPLE001", "secret_access_key": "static-secret-value"}
    )
    assert static.get_credentials().expires_at is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"access_key_id": "AKIAONLYONEHALF0001"}, "both access_key_id and secret_access_key"),
        (
            {"profile": "p", "access_key_id": "AKIA0000000000000001", "secret_access_key": "s"},
            "not both",
        ),
        ({"session_token": "t"}, "session_token needs access_key_id"),
        ({"password": "x"}, r"unknown option\(s\) for credential source 'iam': password"),
        ({"profile": 3}, "'profile' of credential source 'iam' must be a non-empty string"),
    ],
)
def test_iam_option_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        IamCredentialSource.from_options(options)


def test_iam_option_errors_never_show_values() -> None:
    with pytest.raises(ConfigError) as caught:
        IamCredentialSource.from_options({"secret_access_key": "do-not-show-this-secret"})
    assert "do-not-show-this-secret" not in str(caught.value)


# -- oidc --------------------------------------------------------------------------------------


def test_oidc_exchanges_the_token_file_and_the_credentials_work(
    oidc: OidcCredentialSource,
    token_file: Path,
    recorder: Recorder,
    moto_server: MotoServer,
    clock: Clock,
) -> None:
    credentials = oidc.get_credentials()
    assert set(credentials.values) == {"access_key_id", "secret_access_key", "session_token"}
    assert credentials.expires_at is not None
    assert credentials.expires_at.utcoffset() is not None
    assert abs((credentials.expires_at - clock.now).total_seconds() - 3600) < 120
    assert credentials.principal == ("arn:aws:sts::111122223333:assumed-role/aureus-web/aureus")
    [call] = recorder.calls("AssumeRoleWithWebIdentity")
    assert call["WebIdentityToken"] == token_file.read_text().strip()
    assert call["RoleArn"] == WEB_ROLE
    assert call["RoleSessionName"] == "aureus"
    assert call["DurationSeconds"] == 3600
    # moto knows the keys it issued: the caller is the assumed role, and KMS accepts them.
    identity = client("sts", credentials, moto_server).get_caller_identity()
    assert identity["Arn"] == credentials.principal
    kms = client("kms", credentials, moto_server)
    key_id = kms.create_key(Description="oidc")["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"hello")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"hello"


def test_oidc_refreshes_before_expiry_and_rereads_the_token_file(
    oidc: OidcCredentialSource, token_file: Path, recorder: Recorder, clock: Clock
) -> None:
    botocore_credentials = oidc.botocore_credentials()
    assert isinstance(botocore_credentials, RefreshableCredentials)
    first = oidc.get_credentials()
    first_token = token_file.read_text().strip()
    advisory, mandatory = refresh_windows(3600)

    clock.advance(3600 - advisory - 60)  # not yet in the refresh window: no STS call
    assert oidc.get_credentials().values["access_key_id"] == first.values["access_key_id"]
    assert len(recorder.calls("AssumeRoleWithWebIdentity")) == 1

    second_token = new_token()
    token_file.write_text(second_token)  # Kubernetes rotated the projected token
    clock.advance(60 + (advisory - mandatory) + 1)  # inside the mandatory window
    second = oidc.get_credentials()
    calls = recorder.calls("AssumeRoleWithWebIdentity")
    assert [c["WebIdentityToken"] for c in calls] == [first_token, second_token]
    assert second.values["access_key_id"] != first.values["access_key_id"]
    assert second.expires_at is not None
    assert first.expires_at is not None
    assert second.expires_at > first.expires_at
    # moto dates the new keys from the real time: bring the clock back to it.
    clock.now = datetime.now(timezone.utc)
    # The provider's botocore object is the same one, now holding the new keys.
    frozen = botocore_credentials.get_frozen_credentials()
    assert frozen.access_key == second.values["access_key_id"].reveal()
    assert len(recorder.calls("AssumeRoleWithWebIdentity")) == 2


def test_oidc_refresh_callable_reads_the_file_each_time(
    oidc: OidcCredentialSource, token_file: Path, recorder: Recorder
) -> None:
    tokens = [new_token() for _ in range(3)]
    for token in tokens:
        token_file.write_text(token)
        metadata = oidc.fetch()
        assert set(metadata) == {"access_key", "secret_key", "token", "expiry_time"}
    assert [c["WebIdentityToken"] for c in recorder.calls("AssumeRoleWithWebIdentity")] == tokens


def test_oidc_session_name_and_duration(
    moto_server: MotoServer, token_file: Path, recorder: Recorder, clock: Clock
) -> None:
    source = OidcCredentialSource(
        role_arn=WEB_ROLE,
        token_file=token_file,
        session_name="payments-worker",
        duration=900,
        endpoint_url=moto_server.url,
        clock=clock,
        session=recorder.session,
    )
    credentials = source.get_credentials()
    [call] = recorder.calls("AssumeRoleWithWebIdentity")
    assert (call["RoleSessionName"], call["DurationSeconds"]) == ("payments-worker", 900)
    assert credentials.expires_at is not None
    assert abs((credentials.expires_at - clock.now).total_seconds() - 900) < 120
    assert credentials.principal is not None
    assert credentials.principal.endswith("/aureus-web/payments-worker")


def test_oidc_missing_token_file_names_the_file_and_the_fix(
    moto_server: MotoServer, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere" / "token"
    source = OidcCredentialSource(
        role_arn=WEB_ROLE, token_file=missing, endpoint_url=moto_server.url
    )
    with pytest.raises(CredentialError) as caught:
        source.get_credentials()
    message = str(caught.value)
    assert f"the web identity token file {missing} does not exist" in message
    assert "AWS_WEB_IDENTITY_TOKEN_FILE" in message
    assert "token_file" in message


@pytest.mark.parametrize(
    ("content", "problem"),
    [(b"", "is empty"), (b"  \n", "is empty"), (b"\xff\xfe binary", "not ASCII")],
)
def test_oidc_unusable_token_file(
    moto_server: MotoServer, tmp_path: Path, content: bytes, problem: str
) -> None:
    path = tmp_path / "token"
    path.write_bytes(content)
    source = OidcCredentialSource(role_arn=WEB_ROLE, token_file=path, endpoint_url=moto_server.url)
    with pytest.raises(CredentialError, match=problem) as caught:
        source.get_credentials()
    assert str(path) in str(caught.value)


def test_oidc_token_file_that_is_a_directory(moto_server: MotoServer, tmp_path: Path) -> None:
    source = OidcCredentialSource(
        role_arn=WEB_ROLE, token_file=tmp_path, endpoint_url=moto_server.url
    )
    with pytest.raises(CredentialError, match="is a directory"):
        source.get_credentials()


def test_oidc_token_never_in_reprs_or_errors(oidc: OidcCredentialSource, token_file: Path) -> None:
    token = token_file.read_text().strip()
    credentials = oidc.get_credentials()
    for text in (repr(oidc), str(oidc), repr(credentials), repr(oidc.botocore_credentials())):
        assert token not in text
        assert credentials.values["secret_access_key"].reveal() not in text


def test_oidc_unreachable_sts_is_a_credential_error(
    token_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    source = OidcCredentialSource(
        role_arn=WEB_ROLE, token_file=token_file, endpoint_url="http://127.0.0.1:9"
    )
    with pytest.raises(CredentialError, match=r"AssumeRoleWithWebIdentity for role .*network"):
        source.get_credentials()


def test_oidc_options_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, token_file: Path
) -> None:
    monkeypatch.setenv("AWS_ROLE_ARN", WEB_ROLE)
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token_file))
    source = OidcCredentialSource.from_options({})
    assert (source.role_arn, source.token_file, source.session_name, source.duration) == (
        WEB_ROLE,
        token_file,
        "aureus",
        3600,
    )
    monkeypatch.delenv("AWS_WEB_IDENTITY_TOKEN_FILE")
    assert OidcCredentialSource.from_options({}).token_file == Path(DEFAULT_TOKEN_FILE)
    explicit = OidcCredentialSource.from_options(
        {"role_arn": TARGET_ROLE, "token_file": "/t", "region": "eu-west-1"}
    )
    assert (explicit.role_arn, explicit.token_file, explicit.region) == (
        TARGET_ROLE,
        Path("/t"),
        "eu-west-1",
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, r"needs the option 'role_arn' \(or set AWS_ROLE_ARN\)"),
        ({"role_arn": "arn:aws:iam::1:user/x"}, "must be an IAM role ARN"),
        ({"role_arn": WEB_ROLE, "duration_seconds": 60}, "between 900 and 43200"),
        ({"role_arn": WEB_ROLE, "duration_seconds": "1h"}, "whole number"),
        ({"role_arn": WEB_ROLE, "session_name": "has space"}, "'session_name'"),
        ({"role_arn": WEB_ROLE, "external_id": "x"}, r"unknown option\(s\).*external_id"),
    ],
)
def test_oidc_option_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        OidcCredentialSource.from_options(options)


# -- assume-role ------------------------------------------------------------------------------


def test_assume_role_chains_on_oidc_with_external_id(
    oidc: OidcCredentialSource, moto_server: MotoServer, recorder: Recorder, clock: Clock
) -> None:
    source = AssumeRoleCredentialSource(
        parent=oidc,
        role_arn=TARGET_ROLE,
        external_id="partner-7f3a",
        session_name="cross-account",
        duration=1800,
        endpoint_url=moto_server.url,
        clock=clock,
        session=recorder.session,
    )
    credentials = source.get_credentials()
    [call] = recorder.calls("AssumeRole")
    assert call["RoleArn"] == TARGET_ROLE
    assert call["ExternalId"] == "partner-7f3a"
    assert call["RoleSessionName"] == "cross-account"
    assert call["DurationSeconds"] == 1800
    parent = oidc.get_credentials()
    assert recorder.signed_with == [parent.values["access_key_id"].reveal()]
    assert credentials.principal == (
        "arn:aws:sts::444455556666:assumed-role/aureus-cross-account/cross-account"
    )
    identity = client("sts", credentials, moto_server).get_caller_identity()
    assert identity["Arn"] == credentials.principal
    assert identity["Account"] == "444455556666"
    assert "partner-7f3a" not in repr(source)


def test_assume_role_refresh_uses_the_parents_refreshed_credentials(
    oidc: OidcCredentialSource, moto_server: MotoServer, recorder: Recorder, clock: Clock
) -> None:
    source = AssumeRoleCredentialSource(
        parent=oidc,
        role_arn=TARGET_ROLE,
        endpoint_url=moto_server.url,
        clock=clock,
        session=recorder.session,
    )
    first = source.get_credentials()
    clock.advance(3600 - 60)  # both are inside their mandatory windows now
    second = source.get_credentials()
    assert second.values["access_key_id"] != first.values["access_key_id"]
    assert len(recorder.calls("AssumeRoleWithWebIdentity")) == 2
    assert len(recorder.calls("AssumeRole")) == 2
    assert "ExternalId" not in recorder.calls("AssumeRole")[0]
    clock.now = datetime.now(timezone.utc)  # moto dated the new keys from the real time
    assert recorder.signed_with[1] == oidc.get_credentials().values["access_key_id"].reveal()
    assert recorder.signed_with[0] != recorder.signed_with[1]


def test_assume_role_from_options_builds_its_parent_through_the_registry(
    moto_server: MotoServer, token_file: Path
) -> None:
    registry = CredentialSourceRegistry()
    register(registry)
    assert [r.name for r in registry] == ["assume-role", "iam", "oidc"]
    source = registry.get("assume-role").factory(
        {
            "role_arn": TARGET_ROLE,
            "external_id": "partner-1",
            "endpoint_url": moto_server.url,
            "parent": {
                "source": "oidc",
                "role_arn": WEB_ROLE,
                "token_file": str(token_file),
                "endpoint_url": moto_server.url,
            },
        }
    )
    assert isinstance(source, AssumeRoleCredentialSource)
    assert isinstance(source.parent, OidcCredentialSource)
    principal = source.get_credentials().principal
    assert principal is not None
    assert principal.startswith("arn:aws:sts::444455556666:assumed-role/")


def test_assume_role_on_static_iam_keys(moto_server: MotoServer, recorder: Recorder) -> None:
    registry = CredentialSourceRegistry()
    register(registry)
    source = registry.get("assume-role").factory(
        {
            "role_arn": TARGET_ROLE,
            "endpoint_url": moto_server.url,
            "parent": {
                "source": "iam",
                "access_key_id": "AKIAPARENTEXAMPLE01",
                "secret_access_key": "parent-secret-value-000",
            },
        }
    )
    assert source.get_credentials().values["session_token"].reveal()
    assert "parent-secret-value-000" not in repr(source)


FactoryCall = Callable[[dict[str, Any]], Any]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"role_arn": TARGET_ROLE}, "needs the option 'parent'"),
        ({"role_arn": TARGET_ROLE, "parent": {"role_arn": WEB_ROLE}}, 'needs source = "iam"'),
        (
            {"role_arn": TARGET_ROLE, "parent": {"source": "static", "values": {}}},
            "option 'parent':.*no plugin provides credential source 'static'",
        ),
        (
            {"role_arn": TARGET_ROLE, "parent": {"source": "oidc", "bogus": 1}},
            r"option 'parent':.*unknown option\(s\).*bogus",
        ),
        ({"parent": {"source": "iam"}}, "needs the option 'role_arn'"),
        (
            {"role_arn": TARGET_ROLE, "parent": {"source": "iam"}, "external_id": "a b"},
            "'external_id'",
        ),
    ],
)
def test_assume_role_option_errors(options: dict[str, Any], message: str) -> None:
    registry = CredentialSourceRegistry()
    register(registry)
    factory: FactoryCall = registry.get("assume-role").factory
    with pytest.raises(ConfigError, match=message):
        factory(options)


def test_assume_role_parent_must_give_aws_credentials() -> None:
    registry = CredentialSourceRegistry()
    register(registry)

    class NotAws:
        name = "other"

        def get_credentials(self) -> Credentials:
            return Credentials(kind="other")

    registry.register("other", lambda options: NotAws())
    with pytest.raises(ConfigError, match="does not provide AWS credentials"):
        registry.get("assume-role").factory(
            {"role_arn": TARGET_ROLE, "parent": {"source": "other"}}
        )


def test_refresh_windows() -> None:
    assert refresh_windows(3600) == (900, 600)
    assert refresh_windows(900) == (300, 150)
    assert refresh_windows(43200) == (900, 600)


def test_oidc_failed_refresh_keeps_the_keys_until_the_mandatory_window(
    oidc: OidcCredentialSource, token_file: Path, clock: Clock
) -> None:
    first = oidc.get_credentials()
    token_file.unlink()  # the projected token disappears
    advisory, mandatory = refresh_windows(3600)
    clock.advance(3600 - advisory + 30)  # advisory window: botocore logs and carries on
    assert oidc.get_credentials().values["access_key_id"] == first.values["access_key_id"]
    clock.advance(advisory - mandatory)  # mandatory window: the failure is raised
    with pytest.raises(CredentialError, match=f"token file {token_file} does not exist"):
        oidc.get_credentials()


class _HttpStatus:
    status_code = 400


def test_sts_refusal_names_the_code_and_role_but_not_the_token(
    oidc: OidcCredentialSource, recorder: Recorder, token_file: Path
) -> None:
    def refuse(**_: Any) -> tuple[_HttpStatus, dict[str, Any]]:
        error = {"Code": "InvalidIdentityToken", "Message": "No OpenIDConnect provider found"}
        return _HttpStatus(), {"Error": error, "ResponseMetadata": {}}

    recorder.session.register("before-call.sts.AssumeRoleWithWebIdentity", refuse)
    with pytest.raises(CredentialError) as caught:
        oidc.get_credentials()
    message = str(caught.value)
    assert "AssumeRoleWithWebIdentity for role arn:aws:iam::111122223333:role/aureus-web" in message
    assert "InvalidIdentityToken: No OpenIDConnect provider found" in message
    assert "trust policy" in message
    assert token_file.read_text().strip() not in message
    assert caught.value.__cause__ is None


def _stack_config(moto_server: MotoServer, partner: dict[str, Any]) -> StackConfig:
    return StackConfig.from_dict(
        {
            "stack": {"default_provider": "aws-kms"},
            "providers": {
                "aws-kms": {
                    "region": "us-east-1",
                    "endpoint_url": moto_server.url,
                    "credentials": "partner",
                }
            },
            "credentials": {
                "base": {
                    "source": "iam",
                    "access_key_id": "AKIABASEEXAMPLE00001",
                    "secret_access_key": "base-secret-value-0001",
                },
                "partner": {"source": "assume-role", **partner},
            },
        }
    )


def test_assume_role_parent_may_name_another_credentials_table(moto_server: MotoServer) -> None:
    """parent = "base" uses the source [credentials.base] configures, built once."""
    config = _stack_config(
        moto_server, {"role_arn": TARGET_ROLE, "endpoint_url": moto_server.url, "parent": "base"}
    )
    with KeyStack(config=config) as stack:
        created = stack.create_key("chained", "aes-256")
        assert created.ref.scheme == "aws-kms"
        partner = stack._credentials["partner"]
        assert isinstance(partner, AssumeRoleCredentialSource)
        base = stack._credentials["base"]
        assert partner.parent is base
        assert base.get_credentials().values["access_key_id"].reveal() == "AKIABASEEXAMPLE00001"
        principal = stack._principal("aws-kms")
    assert principal is not None
    assert principal.startswith("arn:aws:sts::444455556666:assumed-role/")


def test_credentials_that_refer_to_each_other_in_a_loop_are_refused(
    moto_server: MotoServer,
) -> None:
    config = _stack_config(
        moto_server, {"role_arn": TARGET_ROLE, "endpoint_url": moto_server.url, "parent": "partner"}
    )
    with KeyStack(config=config) as stack, pytest.raises(ConfigError) as refused:
        stack.provider("aws-kms")
    assert "credentials refer to each other in a loop: [credentials.partner] -> " in str(
        refused.value
    )
    assert "[credentials.partner]" in str(refused.value)


def test_a_named_parent_outside_a_stack_says_to_use_an_inline_table() -> None:
    registry = CredentialSourceRegistry()
    register(registry)
    with pytest.raises(ConfigError, match="only a stack configuration can resolve"):
        registry.get("assume-role").factory({"role_arn": TARGET_ROLE, "parent": "base"})
