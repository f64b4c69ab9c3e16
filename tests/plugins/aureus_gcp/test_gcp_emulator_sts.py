"""The fake Google STS, driven by google-auth's real workload identity federation credentials."""

from __future__ import annotations

import hashlib

import pytest

pytest.importorskip("google.auth", reason="needs the gcp extra")
pytest.importorskip("google.cloud.kms_v1", reason="needs the gcp extra")

import grpc
import requests
from google.auth import exceptions as auth_exceptions
from google.auth import identity_pool
from google.auth.transport.grpc import AuthMetadataPlugin
from google.auth.transport.requests import Request
from google.cloud import kms_v1
from google.cloud.kms_v1.services.key_management_service.transports import (
    KeyManagementServiceGrpcTransport,
)

from aureus_gcp.testing import CloudKmsEmulator, FakeSts

AUDIENCE = (
    "//iam.googleapis.com/projects/123456/locations/global/"
    "workloadIdentityPools/aureus-pool/providers/aureus-provider"
)
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
SCOPE = "https://www.googleapis.com/auth/cloudkms"
ACCOUNT = "kms-user@aureus-test.iam.gserviceaccount.com"


@pytest.fixture
def session():
    with requests.Session() as http:
        yield http


def credentials(sts, tmp_path, subject="subject-token-from-the-idp", **extra):
    token_file = tmp_path / "subject-token"
    token_file.write_text(subject)
    info = {
        "type": "external_account",
        "audience": AUDIENCE,
        "subject_token_type": JWT_TYPE,
        "token_url": sts.token_url,
        "credential_source": {"file": str(token_file)},
        **extra,
    }
    return identity_pool.Credentials.from_info(info, scopes=[SCOPE])


def test_identity_pool_credentials_exchange_a_token(gcp_sts, tmp_path, session):
    subject = "subject-token-from-the-idp"
    creds = credentials(gcp_sts, tmp_path, subject)
    creds.refresh(Request(session))
    assert creds.token == gcp_sts.last_access_token
    assert gcp_sts.issued(creds.token)
    assert creds.valid
    [exchange] = gcp_sts.exchanges
    assert exchange.audience == AUDIENCE
    assert exchange.subject_token_type == JWT_TYPE
    assert exchange.scope == SCOPE
    assert exchange.requested_token_type == "urn:ietf:params:oauth:token-type:access_token"
    assert exchange.subject_token_sha256 == hashlib.sha256(subject.encode()).hexdigest()
    assert subject not in repr(gcp_sts.exchanges)


def test_rejected_subject_token_is_invalid_grant(tmp_path, session):
    with FakeSts(accept=lambda token: token == "good") as sts:
        creds = credentials(sts, tmp_path, "bad")
        with pytest.raises(auth_exceptions.OAuthError, match="invalid_grant"):
            creds.refresh(Request(session))
        assert sts.exchanges == []
        assert sts.last_access_token is None
        credentials(sts, tmp_path, "good").refresh(Request(session))
        assert len(sts.exchanges) == 1


def test_unexpected_audience_is_invalid_target(tmp_path, session):
    with (
        FakeSts(expected_audience="//iam.googleapis.com/another") as sts,
        pytest.raises(auth_exceptions.OAuthError, match="invalid_target"),
    ):
        credentials(sts, tmp_path).refresh(Request(session))


def test_bad_requests_get_oauth_errors(gcp_sts, session):
    def post(form):
        response = session.post(gcp_sts.token_url, data=form, timeout=5)
        return response.status_code, response.json()["error"]

    assert post({"grant_type": "password"}) == (400, "unsupported_grant_type")
    form = {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "subject_token": "t",
        "subject_token_type": "urn:example:unknown",
        "audience": AUDIENCE,
    }
    assert post(form) == (400, "invalid_request")
    assert post({**form, "subject_token_type": JWT_TYPE, "audience": ""}) == (
        400,
        "invalid_target",
    )


def test_service_account_impersonation(gcp_sts, tmp_path, session):
    creds = credentials(
        gcp_sts,
        tmp_path,
        service_account_impersonation_url=gcp_sts.impersonation_url(ACCOUNT),
    )
    creds.refresh(Request(session))
    assert creds.token.startswith("ya29.impersonated-")
    assert creds.token == gcp_sts.last_access_token
    [impersonation] = gcp_sts.impersonations
    assert impersonation.service_account == ACCOUNT
    assert impersonation.scope == (SCOPE,)
    assert len(gcp_sts.exchanges) == 1


def test_impersonation_needs_a_token_the_sts_issued(gcp_sts, session):
    response = session.post(
        gcp_sts.impersonation_url(ACCOUNT),
        json={"scope": [SCOPE]},
        headers={"Authorization": "Bearer ya29.not-issued"},
        timeout=5,
    )
    assert response.status_code == 401
    assert response.json()["error"]["status"] == "UNAUTHENTICATED"


def test_injected_failure(gcp_sts, tmp_path, session):
    gcp_sts.fail(503)
    with pytest.raises(auth_exceptions.OAuthError):
        credentials(gcp_sts, tmp_path).refresh(Request(session))
    credentials(gcp_sts, tmp_path).refresh(Request(session))


def test_federated_token_reaches_the_kms_emulator(gcp_sts, tmp_path, session):
    creds = credentials(gcp_sts, tmp_path)
    with CloudKmsEmulator(transport="local") as emulator:
        name = emulator.create_key("projects/p/locations/global/keyRings/wif/cryptoKeys/k")
        channel_credentials = grpc.composite_channel_credentials(
            grpc.local_channel_credentials(grpc.LocalConnectionType.LOCAL_TCP),
            grpc.metadata_call_credentials(AuthMetadataPlugin(creds, Request(session))),
        )
        channel = grpc.secure_channel(emulator.endpoint, channel_credentials)
        try:
            kms = kms_v1.KeyManagementServiceClient(
                transport=KeyManagementServiceGrpcTransport(channel=channel)
            )
            kms.encrypt(request={"name": name, "plaintext": b"x"}, retry=None, timeout=5)
        finally:
            channel.close()
        assert gcp_sts.last_access_token is not None
        assert emulator.last_authorization() == gcp_sts.last_access_token
        assert gcp_sts.last_access_token not in repr(emulator.calls)
