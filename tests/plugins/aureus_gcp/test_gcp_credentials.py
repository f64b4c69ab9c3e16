"""The gcp-* credential sources: the contract, workload identity end to end, safe failures."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from aureus_core import KeyStack
from aureus_core.errors import ConfigError, CredentialError
from aureus_core.keys import KeySpec, KeyType
from aureus_core.testing.credential_contract import CredentialSourceContract
from aureus_core.testing.leaks import assert_no_secret
from aureus_gcp.credentials import (
    DEFAULT_TOKEN_FILE,
    DEFAULT_TOKEN_URL,
    GcpCredentialSource,
    GoogleCredentialSource,
    adc_source,
    service_account_source,
    workload_identity_source,
)
from aureus_gcp.testing import CloudKmsEmulator, FakeSts

AUDIENCE = (
    "//iam.googleapis.com/projects/123456789/locations/global/"
    "workloadIdentityPools/aureus-pool/providers/kubernetes"
)
ACCOUNT = "kms-user@aureus-tests.iam.gserviceaccount.com"
AES = KeySpec(key_type=KeyType.AES_256)


def _same(a: object, b: object) -> bool:
    """Compare secrets in a way pytest's assertion rewriting does not print."""
    return a == b


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    """A projected service account token, as Kubernetes mounts it."""
    path = tmp_path / "token"
    path.write_text(f"eyJhbGciOiJSUzI1NiJ9.projected-{secrets.token_urlsafe(16)}.sig")
    return path


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    """A service account JSON key (a fresh RSA key; never sent anywhere)."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    path = tmp_path / "service-account.json"
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "aureus-tests",
                "private_key_id": "0123456789abcdef",
                "private_key": pem,
                "client_email": ACCOUNT,
                "client_id": "1234567890",
                "token_uri": "https://oauth2.googleapis.com/token",
            }
        )
    )
    return path


@pytest.fixture
def sts() -> Iterator[FakeSts]:
    with FakeSts(expected_audience=AUDIENCE) as fake:
        yield fake


def _workload_options(sts: FakeSts, token_file: Path, **extra: Any) -> dict[str, Any]:
    return {
        "audience": AUDIENCE,
        "token_file": str(token_file),
        "token_url": sts.token_url,
        **extra,
    }


# -- the contract --------------------------------------------------------------------


class TestWorkloadIdentitySource(CredentialSourceContract):
    concurrency_threads = 4
    concurrency_operations = 5

    @pytest.fixture
    def credential_source(self, sts: FakeSts, token_file: Path) -> GcpCredentialSource:
        return workload_identity_source(_workload_options(sts, token_file))

    @pytest.fixture
    def held_secrets(self, token_file: Path) -> list[str]:
        return [token_file.read_text().strip()]  # the subject token it exchanges

    def test_the_token_comes_from_sts(self, credential_source, sts, token_file) -> None:
        credentials = credential_source.get_credentials()
        assert credentials.kind == "gcp"
        assert _same(credentials.values["access_token"].reveal(), sts.last_access_token)
        assert credentials.expires_at is not None
        assert credentials.principal == AUDIENCE
        exchange = sts.exchanges[-1]
        assert exchange.audience == AUDIENCE
        assert exchange.subject_token_type == "urn:ietf:params:oauth:token-type:jwt"
        subject = token_file.read_text().strip()
        assert exchange.subject_token_sha256 == hashlib.sha256(subject.encode()).hexdigest()
        assert isinstance(credential_source, GoogleCredentialSource)

    def test_the_token_file_is_read_again_at_each_refresh(self, sts, token_file) -> None:
        sts.lifetime = 1  # every token is already due, so each call exchanges again
        source = workload_identity_source(_workload_options(sts, token_file))
        source.get_credentials()
        token_file.write_text("eyJ.rotated-projected-token.sig")
        source.get_credentials()
        rotated = hashlib.sha256(b"eyJ.rotated-projected-token.sig").hexdigest()
        assert sts.exchanges[-1].subject_token_sha256 == rotated

    def test_impersonation(self, sts, token_file) -> None:
        source = workload_identity_source(
            _workload_options(
                sts, token_file, service_account_impersonation_url=sts.impersonation_url(ACCOUNT)
            )
        )
        token = source.get_credentials().values["access_token"].reveal()
        assert _same(token, sts.last_access_token)
        assert sts.impersonations[-1].service_account == ACCOUNT


class TestServiceAccountSource(CredentialSourceContract):
    concurrency_threads = 4
    concurrency_operations = 5

    @pytest.fixture
    def credential_source(self, key_file: Path) -> GcpCredentialSource:
        return service_account_source({"key_file": str(key_file)})

    @pytest.fixture
    def held_secrets(self, key_file: Path) -> list[str]:
        pem = json.loads(key_file.read_text())["private_key"]
        body = "".join(line for line in pem.splitlines() if not line.startswith("-----"))
        return [pem, body]  # the private key, as PEM and as its base64 DER

    def test_a_self_signed_jwt_made_locally(self, credential_source) -> None:
        credentials = credential_source.get_credentials()
        assert credentials.principal == ACCOUNT
        token = credentials.values["access_token"].reveal()
        assert token.count(".") == 2  # a JWT, signed with the key: no network needed
        assert ACCOUNT not in repr(credentials.values)


class TestAdcSource(CredentialSourceContract):
    """Application Default Credentials from GOOGLE_APPLICATION_CREDENTIALS (an external account)."""

    concurrency_threads = 4
    concurrency_operations = 5

    @pytest.fixture
    def credential_source(
        self, sts: FakeSts, token_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> GcpCredentialSource:
        config = tmp_path / "external-account.json"
        config.write_text(
            json.dumps(
                {
                    "type": "external_account",
                    "audience": AUDIENCE,
                    "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
                    "token_url": sts.token_url,
                    "credential_source": {"file": str(token_file)},
                }
            )
        )
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(config))
        monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
        # With a project, google.auth.default() does not ask Cloud Resource Manager for one.
        monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "aureus-tests")
        return adc_source({"quota_project": "billing-project"})

    @pytest.fixture
    def held_secrets(self, token_file: Path) -> list[str]:
        return [token_file.read_text().strip()]  # the subject token it exchanges

    def test_the_adc_credentials_are_used(self, credential_source, sts) -> None:
        token = credential_source.get_credentials().values["access_token"].reveal()
        assert _same(token, sts.last_access_token)
        assert credential_source.google_credentials().quota_project_id == "billing-project"


# -- workload identity end to end ---------------------------------------------------


@pytest.fixture(scope="module")
def local_kms() -> Iterator[CloudKmsEmulator]:
    """An emulator behind gRPC local credentials, so bearer tokens reach it."""
    with CloudKmsEmulator(transport="local") as emulator:
        yield emulator


def _stack_config(
    kms: CloudKmsEmulator, ring_options: dict[str, str], credentials: dict[str, Any]
) -> dict[str, Any]:
    return {
        "providers": {
            "gcp-kms": {"credentials": "workload", **kms.provider_options(**ring_options)}
        },
        "credentials": {"workload": credentials},
    }


def test_workload_identity_end_to_end(
    local_kms: CloudKmsEmulator,
    sts: FakeSts,
    token_file: Path,
    ring_options: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Kubernetes token file -> fake STS -> bearer token on a local gRPC channel -> Encrypt."""
    caplog.set_level(logging.DEBUG)
    source = {"source": "gcp-workload-identity", **_workload_options(sts, token_file)}
    config = _stack_config(local_kms, ring_options, source)
    assert config["providers"]["gcp-kms"]["channel"] == "local"
    with KeyStack.from_dict(config) as stack:
        key = stack.create_key(f"gcp-kms://wi-{os.urandom(4).hex()}", AES)
        message = stack.encrypt(b"from a pod", context={"pod": "web-1"}, keys=[key.uri])
        assert stack.decrypt(message, context={"pod": "web-1"}) == b"from a pod"
    seen = local_kms.last_authorization()
    assert seen is not None
    assert _same(seen, sts.last_access_token), "the emulator saw another bearer token than STS made"
    assert len(sts.exchanges) == 1  # one exchange, the token reused until it is due
    secrets_seen = [seen, token_file.read_text().strip()]
    text = caplog.text + " ".join(str(r.__dict__) for r in caplog.records)
    assert_no_secret(text, secrets_seen, "the log")


def test_a_rejected_subject_token_is_a_credential_error(
    local_kms: CloudKmsEmulator, token_file: Path, ring_options: dict[str, str]
) -> None:
    subject = token_file.read_text().strip()
    with FakeSts(accept=lambda token: token == "the-right-token") as fussy:
        config = _stack_config(
            local_kms,
            ring_options,
            {"source": "gcp-workload-identity", **_workload_options(fussy, token_file)},
        )
        with KeyStack.from_dict(config) as stack, pytest.raises(CredentialError) as refused:
            stack.create_key(f"gcp-kms://refused-{os.urandom(4).hex()}", AES)
        assert "invalid_grant" in str(refused.value)
        assert_no_secret(f"{refused.value!r} {refused.value}", [subject], "the credential error")
        assert fussy.exchanges == []


def test_a_wrong_audience_is_a_credential_error(sts: FakeSts, token_file: Path) -> None:
    source = workload_identity_source(
        {
            "audience": "//iam.googleapis.com/another",
            "token_file": str(token_file),
            "token_url": sts.token_url,
        }
    )
    with pytest.raises(CredentialError, match="invalid_target"):
        source.get_credentials()


def test_a_missing_token_file_is_a_credential_error(sts: FakeSts, tmp_path: Path) -> None:
    source = workload_identity_source(_workload_options(sts, tmp_path / "absent"))
    with pytest.raises(CredentialError, match="gcp-workload-identity"):
        source.get_credentials()


def test_workload_identity_options() -> None:
    source = workload_identity_source({"audience": AUDIENCE})
    assert source.name == "gcp-workload-identity"
    info = source.google_credentials().info  # type: ignore[attr-defined]
    assert info["credential_source"]["file"] == DEFAULT_TOKEN_FILE
    assert info["token_url"] == DEFAULT_TOKEN_URL
    assert info["subject_token_type"] == "urn:ietf:params:oauth:token-type:jwt"
    with pytest.raises(ConfigError, match="audience"):
        workload_identity_source({})
    with pytest.raises(ConfigError, match="unknown option"):
        workload_identity_source({"audience": AUDIENCE, "role_arn": "x"})
    with pytest.raises(ConfigError, match="https"):
        workload_identity_source({"audience": AUDIENCE, "token_url": "http://sts.example.com/v1"})
    with pytest.raises(ConfigError, match="scopes"):
        workload_identity_source({"audience": AUDIENCE, "scopes": []})


@pytest.mark.parametrize(
    "url",
    [
        "http://sts.example.com/v1/token",
        "http://localhost.attacker.example/v1/token",  # passed a prefix check before
        "http://127.0.0.1@attacker.example/v1/token",  # likewise: the host is attacker.example
        "ftp://127.0.0.1/v1/token",
        "https:///v1/token",
        "not a url",
    ],
)
@pytest.mark.parametrize("option", ["token_url", "service_account_impersonation_url"])
def test_workload_identity_sends_its_tokens_only_over_https_or_to_this_machine(
    option: str, url: str
) -> None:
    """token_url receives the Kubernetes service account token, the impersonation URL the
    federated access token: neither goes over plain http to another host. Before, the
    token URL was checked by prefix (so http://localhost.attacker.example passed) and the
    impersonation URL not at all."""
    with pytest.raises(ConfigError) as refused:
        workload_identity_source({"audience": AUDIENCE, option: url})
    assert str(refused.value) == (
        f"option {option!r} of credential source 'gcp-workload-identity' must be an https URL "
        "(plain http only for a test server on 127.0.0.1, ::1 or localhost)"
    )


@pytest.mark.parametrize(
    "url",
    [
        "https://sts.googleapis.com/v1/token",
        "http://127.0.0.1:8080/v1",
        "http://[::1]:80/v1",
        "http://localhost/v1",
    ],
)
def test_workload_identity_accepts_https_and_a_test_server_on_this_machine(url: str) -> None:
    for option in ("token_url", "service_account_impersonation_url"):
        source = workload_identity_source({"audience": AUDIENCE, option: url})
        assert source.google_credentials().info[option] == url  # type: ignore[attr-defined]


# -- service account files -------------------------------------------------------------


def _private_key_of(path: Path) -> str:
    return str(json.loads(path.read_text())["private_key"])


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (lambda info: "not json {", "is not JSON"),
        (lambda info: json.dumps({**info, "type": "authorized_user"}), "not a service account"),
        (lambda info: json.dumps({**info, "client_email": ""}), "client_email"),
        (
            lambda info: json.dumps(
                {**info, "private_key": info["private_key"].replace("MII", "MIJ", 1)}
            ),
            "no usable private key",
        ),
    ],
)
def test_bad_key_files_are_credential_errors_without_the_key(
    key_file: Path, damage: Callable[[dict[str, Any]], str], match: str
) -> None:
    private_key = _private_key_of(key_file)
    key_file.write_text(damage(json.loads(key_file.read_text())))
    source = service_account_source({"key_file": str(key_file)})
    with pytest.raises(CredentialError, match=match) as raised:
        source.get_credentials()
    body = private_key.split("-----")[2].replace("\n", "")
    text = f"{raised.value!r} {raised.value}"
    assert_no_secret(text, [body, body[:64], body[-64:]], "the credential error")
    assert str(key_file) in str(raised.value)


def test_a_missing_key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = service_account_source({"key_file": str(tmp_path / "absent.json")})
    with pytest.raises(CredentialError, match="does not exist"):
        source.get_credentials()
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    with pytest.raises(ConfigError, match="key_file"):
        service_account_source({})
    with pytest.raises(ConfigError, match="self_signed_jwt"):
        service_account_source({"key_file": "x", "self_signed_jwt": "yes"})


def test_a_service_account_token_reaches_cloud_kms(
    local_kms: CloudKmsEmulator, key_file: Path, ring_options: dict[str, str]
) -> None:
    config = _stack_config(
        local_kms,
        ring_options,
        {"source": "gcp-service-account", "key_file": str(key_file), "quota_project": "billing-1"},
    )
    with KeyStack.from_dict(config) as stack:
        provider = stack.provider("gcp-kms")
        provider.create_key(f"sa-{os.urandom(4).hex()}", AES)
    seen = local_kms.last_authorization()
    assert seen is not None
    assert seen.count(".") == 2  # the self-signed JWT
    quota = [c.metadata.get("x-goog-user-project") for c in local_kms.calls[-3:]]
    assert quota == ["billing-1"] * 3


def test_source_reprs_name_no_secret(key_file: Path) -> None:
    source = service_account_source({"key_file": str(key_file)})
    source.get_credentials()
    assert repr(source) == "GcpCredentialSource(name='gcp-service-account', principal=None)"
    assert _private_key_of(key_file)[40:80] not in repr(source.google_credentials().__dict__)
