"""Key rings, keys, versions, rotation and lifecycle through the gcp-kms provider."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from aureus_core.context import EncryptionContext
from aureus_core.errors import ConfigError, KeyDisabled, KeyExists, UnsupportedOperation
from aureus_core.keyref import KeyRef
from aureus_core.keys import KeyPurpose, KeySpec, KeyState, KeyType
from aureus_core.rotation import DEFAULT_MAX_AGE, RotationPolicy
from aureus_gcp import GcpKmsProvider
from aureus_gcp.testing import CloudKmsEmulator

AES = KeySpec(key_type=KeyType.AES_256)
CONTEXT = EncryptionContext({"purpose": "management"})


def _ring(options: dict[str, str]) -> str:
    return "projects/{project}/locations/{location}/keyRings/{key_ring}".format(**options)


def test_key_rings_explicitly_and_implicitly(
    gcp_kms: CloudKmsEmulator,
    gcp_provider: GcpKmsProvider,
    ring_options: dict[str, str],
    new_name: Callable[[str], str],
) -> None:
    ring = _ring(ring_options)
    assert gcp_provider.create_key_ring() == ring
    with pytest.raises(KeyExists):
        gcp_provider.create_key_ring(ring)
    other = f"projects/{ring_options['project']}/locations/global/keyRings/{new_name('ring')}"
    assert gcp_provider.create_key_ring(other) == other
    assert {ring, other} <= set(gcp_provider.list_key_rings())
    # create_key makes a missing ring on the way, here one named in full
    implicit = f"projects/elsewhere-1/locations/us-east1/keyRings/{new_name('ring')}"
    created = gcp_provider.create_key(f"{implicit}/cryptoKeys/k", AES)
    assert created.ref.key_id == f"{implicit}/cryptoKeys/k"
    assert dict(created.extra)["key_ring"] == implicit


def test_create_records_type_algorithm_protection_and_labels(
    gcp_provider: GcpKmsProvider, new_name: Callable[[str], str]
) -> None:
    spec = KeySpec(
        key_type=KeyType.RSA_3072,
        description="Cloud KMS keys have no description",
        labels={"team": "payments", "env": "prod"},
        options={"protection_level": "HSM", "algorithm": "pkcs1"},
    )
    metadata = gcp_provider.create_key(new_name("rsa"), spec)
    extra = dict(metadata.extra)
    assert metadata.key_type is KeyType.RSA_3072
    assert extra["purpose"] == "ASYMMETRIC_SIGN"
    assert extra["algorithm"] == "RSA_SIGN_PKCS1_3072_SHA256"
    assert extra["protection_level"] == "HSM"
    assert dict(metadata.labels) == {"team": "payments", "env": "prod"}  # no aureus- label
    assert metadata.description == ""
    assert metadata.state is KeyState.ENABLED
    assert [v.version for v in metadata.versions] == ["1"]
    assert metadata.versions[0].created_at.tzinfo is not None


def test_the_provider_protection_level_is_the_default(
    make_gcp_provider: Callable[..., GcpKmsProvider], new_name: Callable[[str], str]
) -> None:
    provider = make_gcp_provider(protection_level="HSM")
    assert dict(provider.create_key(new_name("hsm"), AES).extra)["protection_level"] == "HSM"
    software = KeySpec(key_type=KeyType.AES_256, options={"protection_level": "software"})
    assert dict(provider.create_key(new_name("sw"), software).extra)["protection_level"] == (
        "SOFTWARE"
    )


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        (KeySpec(key_type=KeyType.AES_256, options={"colour": "blue"}), "unknown key option"),
        (KeySpec(key_type=KeyType.AES_256, options={"protection_level": "EXTERNAL"}), "SOFTWARE"),
        (KeySpec(key_type=KeyType.ECDSA_P256, options={"algorithm": "pss"}), "only to RSA"),
        (KeySpec(key_type=KeyType.RSA_2048, options={"algorithm": "raw"}), "pkcs1"),
        (KeySpec(key_type=KeyType.AES_256, labels={"Team": "x"}), "label"),
        (KeySpec(key_type=KeyType.AES_256, labels={"team": "Upper"}), "label"),
        (KeySpec(key_type=KeyType.AES_256, labels={"aureus-x": "y"}), "Aureus's own"),
        (
            KeySpec(key_type=KeyType.ECDSA_P256, options={"rotation_period_days": "30"}),
            "only wrapping",
        ),
        (KeySpec(key_type=KeyType.AES_256, options={"rotation_period_days": "0.5"}), "1 to"),
        (KeySpec(key_type=KeyType.AES_256, options={"rotation_period_days": "x"}), "number"),
    ],
)
def test_bad_specs_are_config_errors(
    gcp_provider: GcpKmsProvider, new_name: Callable[[str], str], spec: KeySpec, match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        gcp_provider.create_key(new_name("bad"), spec)


def test_names(gcp_provider: GcpKmsProvider, ring_options: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="takes no version"):
        gcp_provider.create_key(f"{_ring(ring_options)}/cryptoKeys/k/cryptoKeyVersions/2", AES)
    with pytest.raises(ConfigError):
        gcp_provider.create_key("not a name", AES)


def test_describe_rotate_and_versions_of_a_wrapping_key(
    gcp_provider: GcpKmsProvider, new_name: Callable[[str], str]
) -> None:
    ref = gcp_provider.create_key(new_name("wrap"), AES).ref
    first = gcp_provider.wrap(ref, os.urandom(32), CONTEXT)
    rotated = gcp_provider.rotate_key(ref.with_version("1"))  # the pin is ignored: keys rotate
    assert rotated.current_version == "2"
    assert [(v.version, v.state) for v in rotated.versions] == [
        ("1", KeyState.ENABLED),
        ("2", KeyState.ENABLED),
    ]
    assert gcp_provider.wrap(ref, os.urandom(32), CONTEXT).key.version == "2"  # the primary
    assert gcp_provider.wrap(ref.with_version("1"), os.urandom(32), CONTEXT).key.version == "1"
    described = gcp_provider.describe_key(ref.with_version("1"))
    assert described.current_version == "2"
    assert described.versions[0].created_at <= described.versions[1].created_at
    assert gcp_provider.owner_of(first.encrypted) == ref.with_version("1")


def test_a_signing_key_uses_its_newest_enabled_version(
    gcp_provider: GcpKmsProvider, new_name: Callable[[str], str]
) -> None:
    ref = gcp_provider.create_key(new_name("sig"), KeySpec(key_type=KeyType.ECDSA_P256)).ref
    gcp_provider.rotate_key(ref)
    metadata = gcp_provider.rotate_key(ref)
    assert metadata.current_version == "3"
    with pytest.raises(ConfigError, match="rotate"):
        gcp_provider.set_version_state(ref.with_version("3"), KeyState.DISABLED)
    assert (
        gcp_provider.set_version_state(ref.with_version("2"), KeyState.DISABLED)
        .version_info("2")
        .state
        is KeyState.DISABLED
    )
    assert gcp_provider.sign(ref, b"m").key_version == "3"


def test_version_state_changes(
    gcp_provider: GcpKmsProvider, new_name: Callable[[str], str]
) -> None:
    ref = gcp_provider.create_key(new_name("states"), AES).ref
    gcp_provider.rotate_key(ref)
    with pytest.raises(ConfigError, match=r"\?version="):
        gcp_provider.set_version_state(ref, KeyState.DISABLED)
    with pytest.raises(ConfigError, match="enabled or disabled"):
        gcp_provider.set_version_state(ref.with_version("1"), KeyState.DESTROYED)
    with pytest.raises(ConfigError, match="rotate first"):
        gcp_provider.set_version_state(ref.with_version("2"), KeyState.DISABLED)
    disabled = gcp_provider.set_version_state(ref.with_version("1"), KeyState.DISABLED)
    assert disabled.version_info("1").state is KeyState.DISABLED
    assert disabled.state is KeyState.ENABLED  # the key's state is its current version's
    enabled = gcp_provider.set_version_state(ref.with_version("1"), KeyState.ENABLED)
    assert enabled.version_info("1").state is KeyState.ENABLED


def test_destroy_is_scheduled_and_can_be_restored(
    gcp_kms: CloudKmsEmulator, gcp_provider: GcpKmsProvider, new_name: Callable[[str], str]
) -> None:
    ref = gcp_provider.create_key(new_name("destroy"), AES).ref
    data_key = os.urandom(32)
    old = gcp_provider.wrap(ref, data_key, CONTEXT)
    gcp_provider.rotate_key(ref)
    pinned = ref.with_version("1")
    with pytest.raises(ConfigError, match="confirm=True"):
        gcp_provider.destroy_version(pinned)
    scheduled = gcp_provider.destroy_version(pinned, confirm=True)
    assert scheduled.version_info("1").state is KeyState.PENDING_DELETION
    with pytest.raises(KeyDisabled, match="version 1"):
        gcp_provider.unwrap(ref, old.encrypted, CONTEXT)
    restored = gcp_provider.restore_version(pinned)
    assert restored.version_info("1").state is KeyState.DISABLED
    gcp_provider.set_version_state(pinned, KeyState.ENABLED)
    assert bytes(gcp_provider.unwrap(ref, old.encrypted, CONTEXT)) == data_key
    gcp_provider.destroy_version(pinned, confirm=True)
    gcp_kms.advance(timedelta(days=30, minutes=1))
    assert gcp_provider.describe_key(ref).version_info("1").state is KeyState.DESTROYED
    with pytest.raises(KeyDisabled, match="gone for good"):
        gcp_provider.set_version_state(pinned, KeyState.ENABLED)


def test_min_decryption_version_is_not_offered(
    gcp_provider: GcpKmsProvider, new_name: Callable[[str], str]
) -> None:
    ref = gcp_provider.create_key(new_name("min"), AES).ref
    with pytest.raises(UnsupportedOperation, match="set_version_state"):
        gcp_provider.set_min_decryption_version(ref, "1")


def test_rotation_policy_maps_onto_rotation_period_and_next_rotation_time(
    gcp_kms: CloudKmsEmulator, gcp_provider: GcpKmsProvider, new_name: Callable[[str], str]
) -> None:
    ref = gcp_provider.create_key(new_name("policy"), AES).ref
    data_key = os.urandom(32)
    old = gcp_provider.wrap(ref, data_key, CONTEXT)
    assert gcp_provider.get_rotation_policy(ref) is None
    policy = RotationPolicy(interval=timedelta(days=30), max_age=timedelta(days=180))
    stored = gcp_provider.set_rotation_policy(ref, policy)
    assert stored == RotationPolicy(interval=timedelta(days=30), max_age=DEFAULT_MAX_AGE)
    metadata = gcp_provider.describe_key(ref)
    extra = dict(metadata.extra)
    assert extra["rotation_period_seconds"] == str(30 * 86400)
    due = metadata.current.created_at + timedelta(days=30)
    assert abs(datetime.fromisoformat(extra["next_rotation_time"]) - due) < timedelta(seconds=1)
    gcp_kms.advance(timedelta(days=30, hours=1))  # Cloud KMS rotates on its own schedule
    rotated = gcp_provider.describe_key(ref)
    assert rotated.current_version == "2"
    assert bytes(gcp_provider.unwrap(ref, old.encrypted, CONTEXT)) == data_key
    assert gcp_provider.set_rotation_policy(ref, None) is None
    assert "rotation_period_seconds" not in dict(gcp_provider.describe_key(ref).extra)


def test_an_overdue_rotation_is_scheduled_shortly(
    gcp_kms: CloudKmsEmulator, gcp_provider: GcpKmsProvider, new_name: Callable[[str], str]
) -> None:
    ref = gcp_provider.create_key(new_name("overdue"), AES).ref
    later = gcp_kms.now() + timedelta(days=10)  # the session emulator's clock may run ahead
    gcp_provider.set_rotation_policy(ref, RotationPolicy(interval=timedelta(days=2)), now=later)
    next_time = datetime.fromisoformat(
        dict(gcp_provider.describe_key(ref).extra)["next_rotation_time"]
    )
    assert later < next_time <= later + timedelta(minutes=1)


def test_rotation_policy_limits(
    gcp_provider: GcpKmsProvider, new_name: Callable[[str], str]
) -> None:
    wrap = gcp_provider.create_key(new_name("p"), AES).ref
    with pytest.raises(ConfigError, match="once a day"):
        gcp_provider.set_rotation_policy(wrap, RotationPolicy(interval=timedelta(hours=12)))
    sign = gcp_provider.create_key(new_name("s"), KeySpec(key_type=KeyType.ED25519)).ref
    with pytest.raises(UnsupportedOperation, match="signing keys"):
        gcp_provider.set_rotation_policy(sign, RotationPolicy())
    spec = KeySpec(key_type=KeyType.AES_256, options={"rotation_period_days": "90"})
    created = gcp_provider.create_key(new_name("auto"), spec)
    assert gcp_provider.get_rotation_policy(created.ref) == RotationPolicy(
        interval=timedelta(days=90), max_age=DEFAULT_MAX_AGE
    )


def test_list_keys(
    gcp_kms: CloudKmsEmulator,
    gcp_provider: GcpKmsProvider,
    make_gcp_provider: Callable[..., GcpKmsProvider],
    ring_options: dict[str, str],
    new_name: Callable[[str], str],
) -> None:
    wrap = gcp_provider.create_key(new_name("w"), AES)
    sign = gcp_provider.create_key(new_name("s"), KeySpec(key_type=KeyType.ECDSA_P384))
    mac = f"{_ring(ring_options)}/cryptoKeys/{new_name('mac')}"
    gcp_kms.create_key(mac, purpose="MAC", algorithm="HMAC_SHA256")  # not a kind Aureus uses
    listed = {m.uri: m for m in gcp_provider.list_keys()}
    assert set(listed) == {wrap.uri, sign.uri}
    assert listed[sign.uri].key_type is KeyType.ECDSA_P384
    everywhere = make_gcp_provider(key_ring=None)  # project and location: every ring there
    assert {wrap.uri, sign.uri} <= {m.uri for m in everywhere.list_keys()}
    with pytest.raises(ConfigError, match="project and location"):
        make_gcp_provider(project=None, location=None, key_ring=None).list_keys()
    with pytest.raises(UnsupportedOperation):
        gcp_provider.describe_key(KeyRef.parse(f"gcp-kms://{mac}"))


def test_create_waits_for_an_asymmetric_version_to_be_generated(
    ring_options: dict[str, str], new_name: Callable[[str], str]
) -> None:
    """Cloud KMS generates asymmetric versions asynchronously (PENDING_GENERATION).

    The emulator does too (here for 0.3 s); the provider polls until the
    version is ENABLED, so signing right after create or rotate works.
    """
    with CloudKmsEmulator(generation_delay=0.3) as emulator:
        provider = emulator.provider(**ring_options)
        try:
            started = time.monotonic()
            created = provider.create_key(new_name("gen"), KeySpec(key_type=KeyType.ECDSA_P256))
            assert time.monotonic() - started >= 0.3
            assert created.state is KeyState.ENABLED
            first = [c for c in emulator.calls if c.method == "CreateCryptoKey"]
            polls = [c for c in emulator.calls if c.method == "GetCryptoKeyVersion"]
            assert len(first) == 1
            assert len(polls) >= 2  # at least one answer said PENDING_GENERATION
            assert provider.verify(created.ref, b"m", provider.sign(created.ref, b"m").value)
            before = len(emulator.calls)
            rotated = provider.rotate_key(created.ref)
            assert rotated.current_version == "2"
            assert rotated.state is KeyState.ENABLED
            signature = provider.sign(rotated.ref, b"after rotation")
            assert signature.key_version == "2"
            polls = [c for c in emulator.calls[before:] if c.method == "GetCryptoKeyVersion"]
            assert len(polls) >= 2
        finally:
            provider.close()


def test_metadata_purpose_comes_from_the_crypto_key(
    gcp_provider: GcpKmsProvider, new_name: Callable[[str], str]
) -> None:
    """``usage`` is Cloud KMS's own purpose, so ``purpose`` never guesses from the type."""
    wrapping = gcp_provider.create_key(new_name("purpose-wrap"), AES)
    signing = gcp_provider.create_key(
        new_name("purpose-sign"), KeySpec(key_type=KeyType.ECDSA_P256)
    )
    assert gcp_provider.describe_key(wrapping.ref).usage is KeyPurpose.WRAP
    assert gcp_provider.describe_key(signing.ref).usage is KeyPurpose.SIGN
    assert signing.purpose is KeyPurpose.SIGN
