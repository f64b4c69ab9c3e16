"""Signing and verification with Ed25519 and ECDSA P-256 keys, checked against OpenSSL."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from aureus_core.context import EncryptionContext
from aureus_core.errors import ConfigError, KeyNotFound, SignatureError
from aureus_core.keyref import KeyRef
from aureus_core.keys import KeySpec
from aureus_local import LocalKeyProvider

SIGNING_TYPES = [("ed25519", "ed25519"), ("ecdsa-p256", "ecdsa-p256-sha256")]
MESSAGE = b"pay 100 EUR to account 42\n"
P256_ORDER = int("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16)
"""The order n of the P-256 group, from SEC 2 (not from the code under test)."""


def ref(uri: str) -> KeyRef:
    return KeyRef.parse(uri)


@pytest.mark.parametrize(("key_type", "algorithm"), SIGNING_TYPES)
def test_sign_verify_round_trip(
    local_provider: LocalKeyProvider, key_type: str, algorithm: str
) -> None:
    local_provider.create_key("s", KeySpec(key_type=key_type))

    signature = local_provider.sign(ref("local://s"), MESSAGE)

    assert signature.key_uri == "local://s"
    assert signature.key_version == "1"
    assert signature.algorithm == algorithm
    assert local_provider.verify(ref("local://s"), MESSAGE, signature.value) is True
    assert local_provider.verify(ref("local://s?version=1"), MESSAGE, signature.value) is True
    assert local_provider.verify(ref("local://s"), MESSAGE + b"!", signature.value) is False
    assert local_provider.verify(ref("local://s"), b"", signature.value) is False


@pytest.mark.parametrize(("key_type", "algorithm"), SIGNING_TYPES)
def test_signature_verifies_with_the_exported_public_key(
    local_provider: LocalKeyProvider, key_type: str, algorithm: str
) -> None:
    local_provider.create_key("s", KeySpec(key_type=key_type))
    signature = local_provider.sign(ref("local://s"), MESSAGE).value

    public = serialization.load_pem_public_key(local_provider.public_key(ref("local://s")))

    if isinstance(public, ed25519.Ed25519PublicKey):
        assert key_type == "ed25519"
        assert len(signature) == 64
        public.verify(signature, MESSAGE)
    else:
        assert isinstance(public, ec.EllipticCurvePublicKey)
        assert isinstance(public.curve, ec.SECP256R1)
        public.verify(signature, MESSAGE, ec.ECDSA(hashes.SHA256()))


@pytest.mark.parametrize(("key_type", "algorithm"), SIGNING_TYPES)
def test_old_versions_verify_after_rotation(
    local_provider: LocalKeyProvider, key_type: str, algorithm: str
) -> None:
    local_provider.create_key("s", KeySpec(key_type=key_type))
    old = local_provider.sign(ref("local://s"), MESSAGE)
    local_provider.rotate_key(ref("local://s"))

    new = local_provider.sign(ref("local://s"), MESSAGE)
    pinned_old = local_provider.sign(ref("local://s?version=1"), MESSAGE)

    assert (old.key_version, new.key_version, pinned_old.key_version) == ("1", "2", "1")
    assert local_provider.verify(ref("local://s?version=1"), MESSAGE, old.value) is True
    assert local_provider.verify(ref("local://s?version=1"), MESSAGE, pinned_old.value) is True
    assert local_provider.verify(ref("local://s"), MESSAGE, old.value) is False
    assert local_provider.verify(ref("local://s"), MESSAGE, new.value) is True
    assert local_provider.verify(ref("local://s?version=2"), MESSAGE, new.value) is True
    assert local_provider.verify(ref("local://s?version=1"), MESSAGE, new.value) is False


OPENSSL = shutil.which("openssl")


@pytest.mark.skipif(OPENSSL is None, reason="the openssl command is not installed")
@pytest.mark.parametrize("key_type", ["ed25519", "ecdsa-p256"])
def test_openssl_verifies_our_signatures(
    local_provider: LocalKeyProvider, tmp_path: Path, key_type: str
) -> None:
    local_provider.create_key("s", KeySpec(key_type=key_type))
    local_provider.rotate_key(ref("local://s"))
    signature = local_provider.sign(ref("local://s"), MESSAGE)
    (tmp_path / "pub.pem").write_bytes(local_provider.public_key(ref("local://s")))
    (tmp_path / "msg").write_bytes(MESSAGE)
    (tmp_path / "sig").write_bytes(signature.value)
    (tmp_path / "other").write_bytes(MESSAGE + b"tampered")
    if key_type == "ed25519":
        command = ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", "pub.pem", "-rawin"]
        good = [*command, "-in", "msg", "-sigfile", "sig"]
        bad = [*command, "-in", "other", "-sigfile", "sig"]
        expected = "Signature Verified Successfully"
    else:
        command = ["openssl", "dgst", "-sha256", "-verify", "pub.pem", "-signature", "sig"]
        good, bad = [*command, "msg"], [*command, "other"]
        expected = "Verified OK"

    verified = subprocess.run(good, cwd=tmp_path, capture_output=True, text=True, check=False)
    refused = subprocess.run(bad, cwd=tmp_path, capture_output=True, text=True, check=False)

    assert verified.returncode == 0, verified.stderr
    assert expected in verified.stdout
    assert refused.returncode != 0
    assert expected not in refused.stdout


@pytest.mark.parametrize("size", [0, 32, 63, 65, 128])
def test_malformed_ed25519_signatures(local_provider: LocalKeyProvider, size: int) -> None:
    local_provider.create_key("s", KeySpec(key_type="ed25519"))
    with pytest.raises(SignatureError, match="64 bytes"):
        local_provider.verify(ref("local://s"), MESSAGE, b"\x01" * size)


def _ecdsa_variants(good: bytes) -> dict[str, bytes]:
    r, s = decode_dss_signature(good)
    body = good[2:]
    # Long-form length (0x81 NN) for the SEQUENCE is valid BER but not DER.
    long_form = b"\x30\x81" + bytes([len(body)]) + body
    # An INTEGER padded with a superfluous leading zero byte is not minimal.
    r_bytes = r.to_bytes((r.bit_length() + 8) // 8, "big")
    padded_r = b"\x00" + r_bytes
    s_der = encode_dss_signature(1, s)[5:]  # the INTEGER s, after SEQUENCE + INTEGER 1
    padded_body = b"\x02" + bytes([len(padded_r)]) + padded_r + s_der
    padded = b"\x30" + bytes([len(padded_body)]) + padded_body
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return {
        "empty": b"",
        "garbage": b"not a signature",
        "trailing byte": good + b"\x00",
        "truncated": good[:-1],
        "long-form length": long_form,
        "non-minimal integer": padded,
        "raw r||s": raw,
    }


@pytest.mark.parametrize(
    "variant",
    [
        "empty",
        "garbage",
        "trailing byte",
        "truncated",
        "long-form length",
        "non-minimal integer",
        "raw r||s",
    ],
)
def test_malformed_ecdsa_signatures(local_provider: LocalKeyProvider, variant: str) -> None:
    local_provider.create_key("e", KeySpec(key_type="ecdsa-p256"))
    good = local_provider.sign(ref("local://e"), MESSAGE).value
    malformed = _ecdsa_variants(good)[variant]
    assert malformed != good

    with pytest.raises(SignatureError, match="malformed ECDSA signature"):
        local_provider.verify(ref("local://e"), MESSAGE, malformed)


def test_well_formed_ecdsa_signature_by_another_key_is_false(
    local_provider: LocalKeyProvider,
) -> None:
    local_provider.create_key("e", KeySpec(key_type="ecdsa-p256"))
    r, s = decode_dss_signature(
        ec.generate_private_key(ec.SECP256R1()).sign(MESSAGE, ec.ECDSA(hashes.SHA256()))
    )
    other = encode_dss_signature(r, min(s, P256_ORDER - s))  # low-S, so it is well formed
    assert local_provider.verify(ref("local://e"), MESSAGE, other) is False
    # r and s out of range are well-formed DER but can never verify.
    assert local_provider.verify(ref("local://e"), MESSAGE, encode_dss_signature(1, 1)) is False


def test_wrapping_keys_do_not_sign(local_provider: LocalKeyProvider) -> None:
    local_provider.create_key("w", KeySpec(key_type="aes-256"))

    for call, refusal in (
        (lambda: local_provider.sign(ref("local://w"), MESSAGE), "it cannot sign"),
        (
            lambda: local_provider.verify(ref("local://w"), MESSAGE, b"\x00" * 64),
            "it cannot verify signatures",
        ),
        (lambda: local_provider.public_key(ref("local://w")), "it has no public key"),
    ):
        with pytest.raises(ConfigError) as caught:
            call()
        assert str(caught.value) == (
            f"key local://w is an aes-256 wrapping key; {refusal}: use an ed25519 or ecdsa-p256 key"
        )


@pytest.mark.parametrize("key_type", ["ed25519", "ecdsa-p256"])
def test_signing_keys_do_not_wrap(local_provider: LocalKeyProvider, key_type: str) -> None:
    local_provider.create_key("s", KeySpec(key_type=key_type))
    with pytest.raises(ConfigError) as caught:
        local_provider.wrap(ref("local://s"), bytes(32), EncryptionContext({}))
    assert str(caught.value) == (
        f"key local://s is an {key_type} signing key; it cannot wrap data keys: use an aes-256 key"
    )


def test_unknown_keys_and_versions(local_provider: LocalKeyProvider) -> None:
    local_provider.create_key("s", KeySpec(key_type="ed25519"))
    with pytest.raises(KeyNotFound, match="local://absent"):
        local_provider.verify(ref("local://absent"), MESSAGE, b"\x00" * 64)
    with pytest.raises(KeyNotFound, match="version 2"):
        local_provider.sign(ref("local://s?version=2"), MESSAGE)
    with pytest.raises(KeyNotFound, match="version 2"):
        local_provider.public_key(ref("local://s?version=2"))


# -- ECDSA malleability -------------------------------------------------------------


def der_integer(value: int) -> bytes:
    """A minimal DER INTEGER, built by hand (a leading 0x00 keeps it positive)."""
    body = value.to_bytes((value.bit_length() + 7) // 8, "big")
    if body[0] & 0x80:
        body = b"\x00" + body
    return b"\x02" + bytes([len(body)]) + body


def der_signature(r: int, s: int) -> bytes:
    body = der_integer(r) + der_integer(s)
    return b"\x30" + bytes([len(body)]) + body


def test_local_ecdsa_signatures_are_always_low_s(local_provider: LocalKeyProvider) -> None:
    local_provider.create_key("e", KeySpec(key_type="ecdsa-p256"))
    for i in range(64):  # a signer that does not normalize is high-S half the time
        _, s = decode_dss_signature(local_provider.sign(ref("local://e"), b"%d" % i).value)
        assert 1 <= s <= P256_ORDER // 2


def test_a_high_s_copy_of_a_valid_signature_is_refused(
    local_provider: LocalKeyProvider, make_provider: Callable[..., LocalKeyProvider]
) -> None:
    local_provider.create_key("e", KeySpec(key_type="ecdsa-p256"))
    signature = local_provider.sign(ref("local://e"), MESSAGE).value
    r, s = decode_dss_signature(signature)
    assert der_signature(r, s) == signature  # the hand-built DER matches
    malleated = der_signature(r, P256_ORDER - s)

    # The copy is mathematically valid: a plain ECDSA verifier accepts it.
    public = serialization.load_pem_public_key(local_provider.public_key(ref("local://e")))
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(malleated, MESSAGE, ec.ECDSA(hashes.SHA256()))

    with pytest.raises(SignatureError) as refused:
        local_provider.verify(ref("local://e"), MESSAGE, malleated)
    assert str(refused.value).startswith(
        "non-canonical ECDSA signature: its s is in the upper half of the group order (high-S)"
    )
    assert local_provider.verify(ref("local://e"), MESSAGE, signature) is True
    lenient = make_provider(accept_high_s=True)
    assert lenient.verify(ref("local://e"), MESSAGE, malleated) is True
    assert lenient.verify(ref("local://e"), MESSAGE + b"!", malleated) is False


def test_the_largest_low_s_value_is_not_refused_as_high_s(local_provider: LocalKeyProvider) -> None:
    """s = (n - 1) / 2 is the last canonical value: checked as a signature (here: no match)."""
    local_provider.create_key("e", KeySpec(key_type="ecdsa-p256"))
    r, _ = decode_dss_signature(local_provider.sign(ref("local://e"), MESSAGE).value)
    boundary = der_signature(r, P256_ORDER // 2)
    assert local_provider.verify(ref("local://e"), MESSAGE, boundary) is False
    with pytest.raises(SignatureError, match="high-S"):
        local_provider.verify(ref("local://e"), MESSAGE, der_signature(r, P256_ORDER // 2 + 1))


def test_the_high_s_refusal_says_why_and_what_to_do(local_provider: LocalKeyProvider) -> None:
    local_provider.create_key("e", KeySpec(key_type="ecdsa-p256"))
    r, s = decode_dss_signature(local_provider.sign(ref("local://e"), MESSAGE).value)
    with pytest.raises(SignatureError) as refused:
        local_provider.verify(ref("local://e"), MESSAGE, der_signature(r, P256_ORDER - s))
    assert str(refused.value) == (
        "non-canonical ECDSA signature: its s is in the upper half of the group order "
        "(high-S), which makes it a malleated copy of another signature; ask the signer "
        "for a low-S signature (Aureus always signs low-S), or, for a signer that cannot, "
        "set accept_high_s = true on the local provider"
    )


def test_a_signature_that_is_not_der_is_refused_saying_what_was_expected(
    local_provider: LocalKeyProvider,
) -> None:
    local_provider.create_key("e", KeySpec(key_type="ecdsa-p256"))
    with pytest.raises(SignatureError) as refused:
        local_provider.verify(ref("local://e"), MESSAGE, b"\x30\x81\x06\x02\x01\x01\x02\x01\x01")
    assert str(refused.value) == (
        "malformed ECDSA signature: expected a DER-encoded SEQUENCE of two INTEGERs"
    )


def test_the_verify_function_refuses_high_s_unless_told_otherwise() -> None:
    """Direct callers of the signing module get the same default as the provider."""
    from aureus_local import signing

    private = ec.generate_private_key(ec.SECP256R1())
    low = signing.sign(private, MESSAGE)
    r, s = decode_dss_signature(low)
    high = der_signature(r, P256_ORDER - s)
    public = private.public_key()
    assert signing.verify(public, MESSAGE, low) is True
    with pytest.raises(SignatureError, match="high-S"):
        signing.verify(public, MESSAGE, high)
    assert signing.verify(public, MESSAGE, high, accept_high_s=True) is True
