"""What a process without the PIN can do to the token, and why the provider no longer cares.

PKCS#11 lets any session, logged in or not, create, change and destroy public
objects (``CKA_PRIVATE`` false).  Each test plants such objects from a process
of its own (``pinless.py``) and checks that the provider trusts only what a PIN
holder made: private secret and private keys, private records, and public-key
objects that are private or proven to belong to their private key.
"""

from __future__ import annotations

import logging
import os
import struct
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import pkcs11
import pytest
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pkcs11 import Attribute, ObjectClass

from aureus_core.context import EncryptionContext
from aureus_core.datakey import EncryptedDataKey
from aureus_core.errors import CredentialError, DecryptionError, KeyNotFound, KeystoreCorrupted
from aureus_core.interfaces import KeyMaterial
from aureus_core.keys import KeySpec, KeyType
from aureus_core.sensitive import Secret
from aureus_core.testing.clock import FakeClock
from aureus_core.testing.key_material import fresh_material
from aureus_core.wrapped_import import ImportJob, wrap_for_import
from aureus_pkcs11 import PROVIDER_ID, Pkcs11KeyProvider
from aureus_pkcs11.imports import ALGORITHM, JOB_APPLICATION, LABEL_PREFIX
from aureus_pkcs11.naming import version_to_id
from aureus_pkcs11.softhsm import SoftHsm

MakeProvider = Callable[..., Pkcs11KeyProvider]
TOKEN = "aureus-test"
CONTEXT = EncryptionContext({"tenant": "acme", "purpose": "pinless"})
MESSAGE = b"release 1.2.3"
PINLESS = Path(__file__).with_name("pinless.py")
AttackerKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def _name() -> str:
    return f"p-{uuid.uuid4().hex[:10]}"


def _pinless(softhsm: SoftHsm, *args: str) -> str:
    """Run ``pinless.py`` (a session that never logs in) in a process of its own."""
    done = subprocess.run(
        [sys.executable, str(PINLESS), softhsm.module, TOKEN, *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **softhsm.environment()},
    )
    assert done.returncode == 0, done.stderr[-1500:]
    return done.stdout


def _attacker_key(pem: str) -> AttackerKey:
    key = serialization.load_pem_private_key(pem.encode(), None)
    assert isinstance(
        key, (ed25519.Ed25519PrivateKey, ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)
    )
    return key


def _sign(key: AttackerKey, key_type: KeyType, message: bytes) -> bytes:
    """A signature in the provider's format, by a key the attacker holds."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(message)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        digest = hashes.SHA384() if key_type is KeyType.ECDSA_P384 else hashes.SHA256()
        return key.sign(message, ec.ECDSA(digest))
    assert isinstance(key, rsa.RSAPrivateKey)
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    return key.sign(message, pss, hashes.SHA256())


def _aad(uri: str) -> bytes:
    info = uri.encode()
    return b"aureus-pkcs11\x00" + struct.pack(">H", len(info)) + info + CONTEXT.serialize()


def _forge(material: bytes, uri: str, data_key: bytes) -> EncryptedDataKey:
    iv = os.urandom(12)
    sealed = AESGCM(material).encrypt(iv, data_key, _aad(uri))
    return EncryptedDataKey(
        provider_id=PROVIDER_ID, provider_info=uri.encode(), ciphertext=b"\x01" + iv + sealed
    )


def _make_public_half_public(provider: Pkcs11KeyProvider, name: str, version: int) -> None:
    """Give a version the layout earlier releases (and pkcs11-tool) made: a public public half."""
    point = [Attribute.EC_PARAMS, Attribute.EC_POINT]
    copied = {
        pkcs11.KeyType.EC: point,
        pkcs11.KeyType.EC_EDWARDS: point,
        pkcs11.KeyType.RSA: [Attribute.MODULUS, Attribute.PUBLIC_EXPONENT],
    }

    def work(session: pkcs11.Session) -> None:
        where = {Attribute.LABEL: name, Attribute.ID: version_to_id(version)}
        (half,) = session.get_objects({**where, Attribute.CLASS: ObjectClass.PUBLIC_KEY})
        kind = half[Attribute.KEY_TYPE]
        session.create_object(
            {
                **where,
                **{attribute: half[attribute] for attribute in copied[kind]},
                Attribute.CLASS: ObjectClass.PUBLIC_KEY,
                Attribute.KEY_TYPE: kind,
                Attribute.TOKEN: True,
                Attribute.PRIVATE: False,
                Attribute.VERIFY: True,
            }
        )
        half.destroy()

    provider._pool.run("test", work)


# -- secret and private keys ------------------------------------------------------


def test_a_public_secret_key_planted_as_the_next_version_is_ignored(
    make_provider: MakeProvider, softhsm: SoftHsm, caplog: pytest.LogCaptureFixture
) -> None:
    """A known AES key planted as version 2 is never wrapped under, nor unwraps forgeries."""
    provider = make_provider()
    name = _name()
    provider.create_key(name, KeySpec(key_type=KeyType.AES_256))
    ref = provider._name(name).ref()
    planted = bytes(range(32))
    _pinless(softhsm, "secret", name, "2", planted.hex())
    with caplog.at_level(logging.WARNING, logger="aureus_pkcs11"):
        assert provider.describe_key(ref).current_version == "1"
    assert "ignored a public (CKA_PRIVATE=false) secret key" in caplog.text
    data_key = os.urandom(32)
    wrapped = provider.wrap(ref, data_key, CONTEXT).encrypted
    assert wrapped.provider_info == f"pkcs11://{TOKEN}/{name}?version=1".encode()
    blob, aad = wrapped.ciphertext, _aad(wrapped.provider_info.decode())
    with pytest.raises(InvalidTag):  # the attacker's key does not open it
        AESGCM(planted).decrypt(blob[1:13], blob[13:], aad)
    for version in (1, 2):
        forged = _forge(planted, f"pkcs11://{TOKEN}/{name}?version={version}", b"\x42" * 32)
        with pytest.raises((DecryptionError, KeyNotFound)):
            provider.unwrap(ref, forged, CONTEXT)
    assert bytes(provider.unwrap(ref, wrapped, CONTEXT)) == data_key


def test_planted_duplicates_do_not_stop_a_key(
    make_provider: MakeProvider, softhsm: SoftHsm
) -> None:
    """A public copy of version 1, and a public key pair under the same label, are not fatal."""
    provider = make_provider()
    name = _name()
    provider.create_key(name, KeySpec(key_type=KeyType.AES_256))
    ref = provider._name(name).ref()
    _pinless(softhsm, "secret", name, "1", os.urandom(32).hex())
    _pinless(softhsm, "key-pair", name, "1", KeyType.ECDSA_P256.value)
    assert provider.describe_key(ref).key_type is KeyType.AES_256
    assert ref.uri in {m.uri for m in provider.list_keys()}
    data_key = os.urandom(32)
    wrapped = provider.wrap(ref, data_key, CONTEXT)
    assert bytes(provider.unwrap(ref, wrapped.encrypted, CONTEXT)) == data_key


def test_a_planted_signing_key_pair_is_not_used(
    make_provider: MakeProvider, softhsm: SoftHsm
) -> None:
    """An attacker's EC key pair planted as version 2 neither signs nor becomes current."""
    provider = make_provider()
    name = _name()
    provider.create_key(name, KeySpec(key_type=KeyType.ECDSA_P256))
    ref = provider._name(name).ref()
    attacker = _attacker_key(_pinless(softhsm, "key-pair", name, "2", KeyType.ECDSA_P256.value))
    assert provider.describe_key(ref).current_version == "1"
    signature = provider.sign(ref, MESSAGE)
    assert signature.key_version == "1"
    assert provider.verify(ref, MESSAGE, signature.value)
    assert isinstance(attacker, ec.EllipticCurvePrivateKey)
    with pytest.raises(InvalidSignature):
        attacker.public_key().verify(signature.value, MESSAGE, ec.ECDSA(hashes.SHA256()))


# -- public-key objects ----------------------------------------------------------


@pytest.mark.parametrize(
    "key_type",
    [KeyType.ED25519, KeyType.ECDSA_P256, KeyType.ECDSA_P384, KeyType.RSA_2048],
    ids=lambda key_type: key_type.value,
)
def test_a_replaced_public_half_is_refused_not_trusted(
    make_provider: MakeProvider, softhsm: SoftHsm, key_type: KeyType
) -> None:
    """A public public half swapped without the PIN: forgeries fail, a new provider refuses it."""
    provider = make_provider()
    name = _name()
    provider.create_key(name, KeySpec(key_type=key_type))
    _make_public_half_public(provider, name, 1)  # as every key made before this fix
    ref = provider._name(name).ref(1)
    genuine_pem = provider.public_key(ref)
    genuine = provider.sign(ref, MESSAGE).value
    assert provider.verify(ref, MESSAGE, genuine)  # the public half was checked and kept
    attacker = _attacker_key(_pinless(softhsm, "replace-public-key", name, "1", key_type.value))
    forged = _sign(attacker, key_type, MESSAGE)
    assert not provider.verify(ref, MESSAGE, forged)
    assert provider.verify(ref, MESSAGE, genuine)
    assert provider.public_key(ref) == genuine_pem
    fresh = make_provider()  # remembers nothing: finds the swap and says so
    with pytest.raises(KeystoreCorrupted, match="does not belong to its private key") as refused:
        fresh.verify(ref, MESSAGE, forged)
    assert refused.value.code == "public-key-mismatch"
    assert "tampering" in str(refused.value)
    with pytest.raises(KeystoreCorrupted):
        fresh.public_key(ref)
    assert fresh.sign(ref, MESSAGE).key_version == "1"  # the private key still signs


def test_a_public_key_planted_beside_the_genuine_one_is_not_used(
    make_provider: MakeProvider, softhsm: SoftHsm
) -> None:
    """Of two public public-key objects for a version, the one its private key signs for counts."""
    provider = make_provider()
    name = _name()
    provider.create_key(name, KeySpec(key_type=KeyType.ECDSA_P384))
    _make_public_half_public(provider, name, 1)
    genuine_pem = provider.public_key(provider._name(name).ref(1))
    attacker = _attacker_key(_pinless(softhsm, "shadow-public-key", name, "1", "ecdsa-p384"))
    fresh = make_provider()
    ref = fresh._name(name).ref(1)
    assert fresh.public_key(ref) == genuine_pem
    assert not fresh.verify(ref, MESSAGE, _sign(attacker, KeyType.ECDSA_P384, MESSAGE))
    assert fresh.verify(ref, MESSAGE, fresh.sign(ref, MESSAGE).value)


def test_everything_the_provider_makes_is_private(
    make_provider: MakeProvider, softhsm: SoftHsm
) -> None:
    """Public halves and creation records are private, so a process without the PIN cannot
    replace them: a public key planted next to the private half changes nothing."""
    provider = make_provider()
    signer, wrapper = _name(), _name()
    provider.create_key(signer, KeySpec(key_type=KeyType.ED25519))
    provider.create_key(wrapper, KeySpec(key_type=KeyType.AES_256))

    def flags(session: pkcs11.Session) -> set[tuple[ObjectClass, bool]]:
        return {
            (obj[Attribute.CLASS], obj[Attribute.PRIVATE])
            for label in (signer, wrapper)
            for obj in session.get_objects({Attribute.LABEL: label})
        }

    assert provider._pool.run("test", flags) == {
        (ObjectClass.PUBLIC_KEY, True),
        (ObjectClass.PRIVATE_KEY, True),
        (ObjectClass.SECRET_KEY, True),
        (ObjectClass.DATA, True),
    }
    attacker = _attacker_key(_pinless(softhsm, "replace-public-key", signer, "1", "ed25519"))
    fresh = make_provider()
    ref = fresh._name(signer).ref(1)
    assert not fresh.verify(ref, MESSAGE, _sign(attacker, KeyType.ED25519, MESSAGE))
    assert fresh.verify(ref, MESSAGE, fresh.sign(ref, MESSAGE).value)


# -- records ----------------------------------------------------------------------


def test_a_creation_record_rewritten_without_the_pin_is_ignored(
    make_provider: MakeProvider, softhsm: SoftHsm
) -> None:
    """A public 'created 1' record dated 2099 does not keep a key from falling due."""
    clock = FakeClock()
    provider = make_provider(clock=clock)
    name = _name()
    provider.create_key(name, KeySpec(key_type=KeyType.AES_256))
    ref = provider._name(name).ref()
    assert provider.describe_key(ref).created_at == clock.now()
    _pinless(softhsm, "data", name, "aureus-pkcs11 created 1", b"2099-01-01T00:00:00+00:00".hex())
    assert provider.describe_key(ref).created_at == clock.now()


def test_a_planted_import_job_does_not_cancel_a_real_one(
    make_provider: MakeProvider, softhsm: SoftHsm
) -> None:
    """A public, expired copy of a job does not make the next sweep destroy the real job."""
    provider = make_provider()
    name = _name()
    spec = KeySpec(key_type=KeyType.AES_256)
    parameters = provider.import_parameters(name, spec)
    expired = ImportJob(
        token=parameters.import_token,
        name=name,
        key_type=KeyType.AES_256,
        new_version=False,
        algorithm=ALGORITHM,
        expires_at=datetime(2000, 1, 1, tzinfo=timezone.utc),
    )
    label = LABEL_PREFIX + parameters.import_token
    _pinless(softhsm, "data", label, JOB_APPLICATION, expired.to_json().hex())
    provider.import_parameters(_name(), spec)  # sweeps expired jobs
    blob = wrap_for_import(
        KeyType.AES_256,
        fresh_material(KeyType.AES_256),
        wrapping_public_key=parameters.wrapping_public_key,
        algorithm=parameters.wrapping_algorithm,
        expected_fingerprint=parameters.fingerprint,
    )
    material = KeyMaterial(
        format="wrapped", data=Secret(blob), import_token=parameters.import_token
    )
    assert provider.import_key(name, spec, material).current_version == "1"


# -- no PIN ----------------------------------------------------------------------------


def test_a_provider_without_the_pin_says_it_needs_one(make_provider: MakeProvider) -> None:
    """Without a PIN every operation is a CredentialError naming the PIN; nothing is written."""
    pinless = make_provider(pin=None, retries=0)
    name = _name()
    with pytest.raises(CredentialError, match="no user PIN") as refused:
        pinless.create_key(name, KeySpec(key_type=KeyType.AES_256))
    assert "AUREUS_PKCS11_PIN" in str(refused.value)
    with pytest.raises(CredentialError, match="no user PIN"):
        pinless.list_keys()
    pinless.close()
    provider = make_provider()
    found = provider._pool.run(
        "test", lambda session: list(session.get_objects({Attribute.LABEL: name}))
    )
    assert found == []
