"""Key management through KMS: create, describe, rotate, aliases, replicas, deletion."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from botocore.stub import Stubber

from aureus_aws import AwsKmsOptions, AwsKmsProvider
from aureus_core.errors import ConfigError, UnsupportedOperation
from aureus_core.keyref import KeyRef
from aureus_core.keys import KeyPurpose, KeySpec, KeyState, KeyType


def _name() -> str:
    return f"mgmt-{uuid.uuid4().hex[:10]}"


def test_create_describe_with_labels_and_facts(provider: AwsKmsProvider) -> None:
    name = _name()
    spec = KeySpec(key_type=KeyType.AES_256, description="orders", labels={"team": "payments"})
    created = provider.create_key(name, spec)
    assert created.uri.startswith("aws-kms://arn:aws:kms:us-east-1:")
    by_alias = provider.describe_key(KeyRef.parse(f"aws-kms://alias/{name}"))
    assert by_alias.uri == created.uri
    assert by_alias.description == "orders"
    assert dict(by_alias.labels) == {"team": "payments"}
    extra = dict(by_alias.extra)
    assert extra["origin"] == "AWS_KMS"
    assert extra["key_manager"] == "CUSTOMER"
    assert extra["rotation_enabled"] == "false"
    assert by_alias.current_version == "1"


def test_rotation_adds_versions_and_old_wraps_still_unwrap(provider: AwsKmsProvider) -> None:
    from aureus_core.context import EncryptionContext

    ref = provider.create_key(_name(), KeySpec(key_type=KeyType.AES_256)).ref
    context = EncryptionContext(purpose="rotation")
    old = provider.wrap(ref, b"k" * 32, context)
    rotated = provider.rotate_key(ref)
    assert [v.version for v in rotated.versions] == ["1", "2"]
    assert rotated.current_version == "2"
    assert bytes(provider.unwrap(ref, old.encrypted, context)) == b"k" * 32
    enabled = provider.enable_rotation(ref, period_days=180)
    assert dict(enabled.extra)["rotation_enabled"] == "true"
    with pytest.raises(ConfigError):
        provider.enable_rotation(ref, period_days=30)


def test_asymmetric_keys_do_not_rotate(provider: AwsKmsProvider) -> None:
    ref = provider.create_key(_name(), KeySpec(key_type=KeyType.ECDSA_P384)).ref
    with pytest.raises(UnsupportedOperation, match="create a new key and move the alias"):
        provider.rotate_key(ref)


def test_aliases(provider: AwsKmsProvider) -> None:
    name = _name()
    first = provider.create_key(name, KeySpec(key_type=KeyType.AES_256)).ref
    second = provider.create_key(_name(), KeySpec(key_type=KeyType.AES_256)).ref
    assert provider.list_aliases()[f"alias/{name}"] == first
    provider.set_alias(name, second)
    assert provider.list_aliases()[f"alias/{name}"] == second
    assert provider.describe_key(KeyRef.parse(f"aws-kms://alias/{name}")).ref == second


def test_set_version_state_acts_on_the_whole_key(provider: AwsKmsProvider) -> None:
    ref = provider.create_key(_name(), KeySpec(key_type=KeyType.AES_256)).ref
    with pytest.raises(UnsupportedOperation, match="no per-version state"):
        provider.set_version_state(ref.with_version("1"), KeyState.DISABLED)
    assert provider.set_version_state(ref, KeyState.DISABLED).state is KeyState.DISABLED
    assert provider.set_version_state(ref, KeyState.ENABLED).state is KeyState.ENABLED


def test_deletion_needs_confirmation(provider: AwsKmsProvider) -> None:
    ref = provider.create_key(_name(), KeySpec(key_type=KeyType.AES_256)).ref
    with pytest.raises(ConfigError, match="confirm=True"):
        provider.schedule_deletion(ref)
    assert provider.describe_key(ref).state is KeyState.ENABLED
    scheduled = provider.schedule_deletion(ref, pending_days=7, confirm=True)
    assert scheduled.state is KeyState.PENDING_DELETION
    assert "deletion_date" in dict(scheduled.extra)
    assert provider.cancel_deletion(ref).state is KeyState.DISABLED


def test_unknown_key_options_are_refused(provider: AwsKmsProvider) -> None:
    with pytest.raises(ConfigError, match="unknown aws-kms key option"):
        provider.create_key(_name(), KeySpec(key_type=KeyType.AES_256, options={"colour": "x"}))


def test_replicate_key_shape() -> None:
    """ReplicateKey, shape-tested: moto's server answers ReplicateKey with a 500."""
    primary = "arn:aws:kms:us-east-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab"
    replica = primary.replace("us-east-1", "eu-west-1")
    described: dict[str, Any] = {
        "KeyId": "mrk-1234abcd12ab34cd56ef1234567890ab",
        "Arn": primary,
        "CreationDate": 1700000000,
        "KeyState": "Enabled",
        "KeyUsage": "ENCRYPT_DECRYPT",
        "KeySpec": "SYMMETRIC_DEFAULT",
        "Origin": "AWS_KMS",
        "KeyManager": "CUSTOMER",
        "MultiRegion": True,
        "MultiRegionConfiguration": {
            "MultiRegionKeyType": "PRIMARY",
            "PrimaryKey": {"Arn": primary, "Region": "us-east-1"},
        },
    }
    provider = AwsKmsProvider(AwsKmsOptions.from_mapping({"region": "us-east-1"}))
    with Stubber(provider.client()) as stub:
        stub.add_response("describe_key", {"KeyMetadata": described}, {"KeyId": primary})
        stub.add_response("list_key_rotations", {"Rotations": []}, {"KeyId": primary})
        stub.add_response(
            "get_key_rotation_status", {"KeyRotationEnabled": False}, {"KeyId": primary}
        )
        stub.add_response("list_resource_tags", {"Tags": []}, {"KeyId": primary})
        replica_metadata = {
            **described,
            "Arn": replica,
            "MultiRegionConfiguration": {
                "MultiRegionKeyType": "REPLICA",
                "PrimaryKey": {"Arn": primary, "Region": "us-east-1"},
            },
        }
        stub.add_response(
            "replicate_key",
            {"ReplicaKeyMetadata": replica_metadata},
            {"KeyId": primary, "ReplicaRegion": "eu-west-1"},
        )
        made = provider.replicate_key(KeyRef(scheme="aws-kms", key_id=primary), "eu-west-1")
        stub.assert_no_pending_responses()
    assert made.ref.key_id == replica
    assert dict(made.extra)["multi_region_type"] == "REPLICA"
    assert dict(made.extra)["primary_region"] == "us-east-1"


def test_single_region_keys_do_not_replicate(provider: AwsKmsProvider) -> None:
    ref = provider.create_key(_name(), KeySpec(key_type=KeyType.AES_256)).ref
    with pytest.raises(ConfigError, match="multi_region=true"):
        provider.replicate_key(ref, "eu-west-1")


def test_metadata_purpose_comes_from_the_key_usage(provider: AwsKmsProvider) -> None:
    """``usage`` is KMS's KeyUsage, so ``purpose`` never guesses from the key spec."""
    wrapping = provider.create_key(_name(), KeySpec(key_type=KeyType.AES_256))
    signing = provider.create_key(_name(), KeySpec(key_type=KeyType.ECDSA_P256))
    assert provider.describe_key(wrapping.ref).usage is KeyPurpose.WRAP
    assert provider.describe_key(signing.ref).usage is KeyPurpose.SIGN
    assert signing.purpose is KeyPurpose.SIGN
