"""Provider options and key URIs of the gcp plugin (no server needed)."""

from __future__ import annotations

from typing import Any

import pytest

from aureus_core.errors import ConfigError
from aureus_core.keyref import KeyRef
from aureus_gcp import GcpKey, GcpKmsOptions, KeyRingName
from aureus_gcp.naming import parse, parse_resource, parse_ring
from aureus_gcp.options import DEFAULT_ENDPOINT, OPTIONS

RING = KeyRingName(project="my-project", location="europe-west1", key_ring="payments")
KEY_PATH = "projects/my-project/locations/europe-west1/keyRings/payments/cryptoKeys/orders"


def test_defaults() -> None:
    options = GcpKmsOptions.from_mapping({})
    assert options.endpoint == DEFAULT_ENDPOINT == "cloudkms.googleapis.com:443"
    assert options.channel == "tls"
    assert options.protection_level == "SOFTWARE"
    assert (options.timeout, options.retry_deadline) == (10.0, 30.0)
    assert (options.retry_initial, options.retry_maximum) == (0.1, 2.0)
    assert options.public_key_ttl == 300.0
    assert options.default_ring is None


def test_every_option() -> None:
    options = GcpKmsOptions.from_mapping(
        {
            "endpoint": "127.0.0.1:8443",
            "channel": "local",
            "project": "my-project",
            "location": "europe-west1",
            "key_ring": "payments",
            "protection_level": "hsm",
            "timeout": 2,
            "retry_deadline": 0,
            "retry_initial": 0.01,
            "retry_maximum": 0.5,
            "public_key_ttl": 0,
            "quota_project": "billing-project",
        }
    )
    assert options.default_ring == RING
    assert options.protection_level == "HSM"
    assert options.retry_deadline == 0.0


def test_unknown_option_names_it_and_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError) as raised:
        GcpKmsOptions.from_mapping({"endpoint_url": "x", "colour": "blue"})
    message = str(raised.value)
    assert "colour, endpoint_url" in message
    for name in OPTIONS:
        assert name in message


@pytest.mark.parametrize(
    ("channel", "endpoint"),
    [
        ("insecure", "127.0.0.1:1"),
        ("insecure", "127.8.9.10:2"),
        ("local", "localhost:3"),
        ("local", "[::1]:4"),
        ("tls", "cloudkms.googleapis.com:443"),
        ("tls", "127.0.0.1:5"),
    ],
)
def test_plaintext_channels_only_reach_this_machine(channel: str, endpoint: str) -> None:
    assert GcpKmsOptions.from_mapping({"channel": channel, "endpoint": endpoint}).channel == channel


@pytest.mark.parametrize("channel", ["insecure", "local"])
@pytest.mark.parametrize("endpoint", ["cloudkms.googleapis.com:443", "10.0.0.1:443", "[::2]:1"])
def test_plaintext_channels_to_other_hosts_are_refused(channel: str, endpoint: str) -> None:
    with pytest.raises(ConfigError, match="only allowed for a server on this machine"):
        GcpKmsOptions.from_mapping({"channel": channel, "endpoint": endpoint})


@pytest.mark.parametrize(
    "options",
    [
        {"channel": "plaintext"},
        {"endpoint": "cloudkms.googleapis.com"},
        {"endpoint": "https://cloudkms.googleapis.com:443"},
        {"endpoint": "host:99999"},
        {"endpoint": ""},
        {"timeout": 0},
        {"timeout": -1},
        {"timeout": True},
        {"timeout": "10"},
        {"timeout": float("nan")},
        {"retry_deadline": -1},
        {"retry_initial": 3, "retry_maximum": 2},
        {"public_key_ttl": -5},
        {"protection_level": "EXTERNAL"},
        {"project": "Bad Project"},
        {"location": "Europe West"},
        {"key_ring": "no/slash"},
        {"quota_project": ""},
        {"project": 7},
    ],
)
def test_bad_options(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        GcpKmsOptions.from_mapping(options)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (f"gcp-kms://{KEY_PATH}", GcpKey(ring=RING, name="orders")),
        (
            f"gcp-kms://{KEY_PATH}/cryptoKeyVersions/3",
            GcpKey(ring=RING, name="orders", version="3"),
        ),
        (f"gcp-kms://{KEY_PATH}?version=3", GcpKey(ring=RING, name="orders", version="3")),
        (
            f"gcp-kms://{KEY_PATH}/cryptoKeyVersions/3?version=3",
            GcpKey(ring=RING, name="orders", version="3"),
        ),
        ("gcp-kms://orders", GcpKey(ring=RING, name="orders")),
        ("gcp-kms://orders?version=12", GcpKey(ring=RING, name="orders", version="12")),
    ],
)
def test_key_uris(uri: str, expected: GcpKey) -> None:
    key = parse(uri, RING)
    assert key == expected
    assert parse(key.ref, None) == key  # the canonical reference needs no defaults
    assert key.ref.key_id == KEY_PATH
    assert key.ref.version == expected.version
    assert key.uri == f"gcp-kms://{KEY_PATH}"
    if key.version:
        assert key.version_path == f"{KEY_PATH}/cryptoKeyVersions/{key.version}"
        assert parse_resource(key.version_path) == key


@pytest.mark.parametrize(
    "uri",
    [
        f"gcp-kms://{KEY_PATH}/cryptoKeyVersions/3?version=4",  # two versions
        f"gcp-kms://{KEY_PATH}/cryptoKeyVersions/0",
        f"gcp-kms://{KEY_PATH}/cryptoKeyVersions/latest",
        f"gcp-kms://{KEY_PATH}/versions/3",
        f"gcp-kms://{KEY_PATH}?region=us",
        "gcp-kms://projects/p/locations/l/keyRings/r",
        "gcp-kms://projects/my-project/locations/global/keyRings/r/cryptoKeys/bad.name",
        "gcp-kms://ring/orders",
        "aws-kms://orders",
    ],
)
def test_bad_key_uris(uri: str) -> None:
    with pytest.raises(ConfigError):
        parse(uri, RING)


def test_short_names_need_a_default_key_ring() -> None:
    with pytest.raises(ConfigError, match="no default key ring"):
        parse("gcp-kms://orders", None)


def test_key_ring_names() -> None:
    assert parse_ring("projects/my-project/locations/europe-west1/keyRings/payments") == RING
    assert RING.path == "projects/my-project/locations/europe-west1/keyRings/payments"
    assert RING.location_path == "projects/my-project/locations/europe-west1"
    with pytest.raises(ConfigError):
        parse_ring("projects/my-project/keyRings/payments")


def test_resource_names() -> None:
    assert parse_resource(KEY_PATH) == GcpKey(ring=RING, name="orders")
    for bad in ("orders", "", "projects/x", f"{KEY_PATH}/cryptoKeyVersions/x"):
        assert parse_resource(bad) is None


def test_key_ref_round_trip() -> None:
    key = GcpKey(ring=RING, name="orders", version="2")
    assert KeyRef.parse(key.ref.uri) == key.ref
    assert key.ref.uri == f"gcp-kms://{KEY_PATH}?version=2"
    assert str(key) == key.ref.uri
    with pytest.raises(ConfigError, match="pins no version"):
        _ = key.pinned(None).version_path
