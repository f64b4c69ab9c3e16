"""ECDSA signatures leave the provider as strict, low-S DER, whichever half OpenSSL's s fell in."""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from aureus_core.keyref import KeyRef
from aureus_core.keys import KeySpec
from aureus_local import LocalKeyProvider, signing


def test_every_signature_is_strict_low_s_der_and_verifies(local_provider: LocalKeyProvider):
    local_provider.create_key("e", KeySpec(key_type="ecdsa-p256"))
    key = KeyRef.parse("local://e")
    public = serialization.load_pem_public_key(local_provider.public_key(key))
    assert isinstance(public, ec.EllipticCurvePublicKey)
    for i in range(64):  # about half of OpenSSL's signatures are high-S before normalization
        message = b"message %d" % i
        value = local_provider.sign(key, message).value
        r, s = decode_dss_signature(value)
        assert value == encode_dss_signature(r, s)  # strict DER: the one encoding of (r, s)
        assert 1 <= s <= signing.P256_ORDER // 2
        public.verify(value, message, ec.ECDSA(hashes.SHA256()))
        assert local_provider.verify(key, message, value) is True


def test_there_is_a_signer_for_every_signing_algorithm():
    assert set(signing.SIGNERS) == set(signing.ALGORITHMS)
