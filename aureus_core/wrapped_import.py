"""Wrapped key import: key material that reaches its new provider only encrypted.

The target provider (an HSM, the local keystore) makes an *import job*: an RSA
key pair whose private half never leaves it, an import token naming the job,
the key it may create and an expiry.  :class:`ImportParameters` carries the
public half out.  On an offline machine, :func:`wrap_for_import` checks the
public key against a fingerprint obtained out of band, then wraps the key
material the way PKCS#11 ``CKM_RSA_AES_KEY_WRAP``, AWS KMS
``RSA_AES_KEY_WRAP_SHA_*`` and Cloud KMS ``RSA_OAEP_*_AES_256`` do::

    wrapped = RSA-OAEP(wrapping public key, fresh AES-256 key K)   (modulus size)
              || AES-KWP(K, key material)                           (RFC 5649)

OAEP uses MGF1 with the same hash as the algorithm names and an empty label.
The key material is the raw key for AES keys and a DER PKCS#8
``PrivateKeyInfo`` for private keys, so ``openssl`` or any library that does
RSA-OAEP and AES key wrap with padding can produce the same bytes.

The provider then unwraps inside itself, refuses a token that is unknown,
used, expired or issued for another key, and consumes the token on success,
so a wrapped blob can be imported once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap_with_padding,
    aes_key_wrap_with_padding,
)

from .errors import ConfigError, ImportRefused
from .interfaces import KeyMaterial
from .keys import KeyType
from .sensitive import Secret

RSA_OAEP_SHA1_AES_KWP = "rsa-oaep-sha1-aes-kwp"
"""RSA-OAEP (SHA-1, MGF1-SHA-1) of an AES-256 key, then AES key wrap with padding."""
RSA_OAEP_SHA256_AES_KWP = "rsa-oaep-sha256-aes-kwp"
"""RSA-OAEP (SHA-256, MGF1-SHA-256) of an AES-256 key, then AES key wrap with padding."""
WRAPPING_ALGORITHMS = (RSA_OAEP_SHA1_AES_KWP, RSA_OAEP_SHA256_AES_KWP)
WRAPPING_KEY_BITS = 3072
"""The size of the RSA import key pairs Aureus providers make."""
MIN_WRAPPING_KEY_BITS = 2048
EPHEMERAL_KEY_SIZE = 32
IMPORT_TOKEN_LIFETIME = timedelta(hours=24)
"""How long an import token stays valid (as AWS KMS import parameters)."""
FINGERPRINT_PREFIX = "sha256:"

_TOKEN = re.compile(r"[0-9a-f]{32}")
_AES_SIZES = {KeyType.AES_128: 16, KeyType.AES_192: 24, KeyType.AES_256: 32}
_CURVES: dict[KeyType, type[ec.EllipticCurve]] = {
    KeyType.ECDSA_P256: ec.SECP256R1,
    KeyType.ECDSA_P384: ec.SECP384R1,
}
_RSA_BITS = {KeyType.RSA_2048: 2048, KeyType.RSA_3072: 3072, KeyType.RSA_4096: 4096}


def new_import_token() -> str:
    """A fresh, unguessable import token (32 hex digits)."""
    return secrets.token_hex(16)


def check_import_token(token: object) -> str:
    """``token`` if it has the form of an import token, else :class:`ConfigError`."""
    if not isinstance(token, str) or not _TOKEN.fullmatch(token):
        raise ConfigError(
            "an import token is 32 lowercase hex digits, as `aureus keys import-params` prints it"
        )
    return token


def check_algorithm(algorithm: str) -> str:
    """``algorithm`` if it is a wrapping algorithm Aureus knows, else :class:`ConfigError`."""
    if algorithm not in WRAPPING_ALGORITHMS:
        raise ConfigError(
            f"unknown wrapping algorithm {algorithm!r}; choose one of: "
            f"{', '.join(WRAPPING_ALGORITHMS)}"
        )
    return algorithm


def wrapping_key_fingerprint(public_key_pem: bytes) -> str:
    """``sha256:`` and the hex SHA-256 of the DER SubjectPublicKeyInfo.

    The same value as ``openssl pkey -pubin -in wrapping.pem -outform DER |
    sha256sum``, so it can be checked with tools that do not trust Aureus.
    """
    public = _load_wrapping_key(public_key_pem)
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return FINGERPRINT_PREFIX + hashlib.sha256(der).hexdigest()


def _normalise_fingerprint(value: str) -> str:
    text = value.strip().lower()
    text = text.removeprefix(FINGERPRINT_PREFIX)
    return re.sub(r"[\s:]", "", text)


@attrs.frozen(kw_only=True)
class ImportParameters:
    """What a provider hands out for one wrapped import: its public wrapping key and token."""

    key_uri: str
    """The key the token may create (or add a version to, with ``new_version``)."""
    key_type: KeyType
    new_version: bool
    import_token: str
    wrapping_algorithm: str
    wrapping_public_key: bytes = attrs.field(repr=False)
    """PEM SubjectPublicKeyInfo of the RSA key the provider holds the private half of."""
    expires_at: datetime

    @property
    def fingerprint(self) -> str:
        """The wrapping key's fingerprint (:func:`wrapping_key_fingerprint`)."""
        return wrapping_key_fingerprint(self.wrapping_public_key)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (the public key as PEM text)."""
        return {
            "key_uri": self.key_uri,
            "key_type": self.key_type.value,
            "new_version": self.new_version,
            "import_token": self.import_token,
            "wrapping_algorithm": self.wrapping_algorithm,
            "wrapping_public_key": self.wrapping_public_key.decode("ascii"),
            "fingerprint": self.fingerprint,
            "expires_at": self.expires_at.isoformat(),
        }


@attrs.frozen(kw_only=True)
class ImportJob:
    """A provider's record of one import token: what it may import, and until when."""

    token: str = attrs.field(validator=lambda _, __, value: check_import_token(value))
    name: str
    """The provider's local key name."""
    key_type: KeyType
    new_version: bool
    algorithm: str
    expires_at: datetime

    def to_json(self) -> bytes:
        """The job as canonical JSON (what providers store next to the private key)."""
        return json.dumps(
            {
                "token": self.token,
                "name": self.name,
                "key_type": self.key_type.value,
                "new_version": self.new_version,
                "algorithm": self.algorithm,
                "expires_at": self.expires_at.astimezone(timezone.utc).isoformat(),
            },
            sort_keys=True,
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> ImportJob:
        """Parse :meth:`to_json` output; ``ValueError`` if it is not one."""
        try:
            value = json.loads(data)
            expires = datetime.fromisoformat(value["expires_at"])
            if expires.tzinfo is None or not isinstance(value["new_version"], bool):
                raise ValueError("bad import job")
            return cls(
                token=value["token"],
                name=str(value["name"]),
                key_type=KeyType(value["key_type"]),
                new_version=value["new_version"],
                algorithm=check_algorithm(value["algorithm"]),
                expires_at=expires,
            )
        except (KeyError, TypeError, ConfigError, UnicodeDecodeError) as error:
            raise ValueError(f"not an import job: {error}") from None

    def check(
        self, *, uri: str, name: str, key_type: KeyType, new_version: bool, now: datetime
    ) -> None:
        """Refuse the import unless it is what the token was issued for, and still valid."""
        token = self.token
        if now >= self.expires_at:
            raise ImportRefused(
                f"import token {token} expired at {self.expires_at.isoformat()}: run "
                "`aureus keys import-params` again and wrap the material for the new token"
            )
        if name != self.name:
            raise ImportRefused(
                f"import token {token} was issued for key {self.name!r}, not {name!r}: "
                "a token (and material wrapped for it) imports only into its own key"
            )
        if key_type is not self.key_type:
            raise ImportRefused(
                f"import token {token} was issued for an {self.key_type.value} key, not "
                f"{key_type.value}"
            )
        if new_version != self.new_version:
            wanted = "a new version of an existing key" if self.new_version else "a new key"
            raise ImportRefused(
                f"import token {token} was issued to import {wanted} of {uri}: "
                f"{'add' if self.new_version else 'drop'} --new-version"
            )


def import_parameters_of(
    job: ImportJob, *, key_uri: str, wrapping_public_key: bytes
) -> ImportParameters:
    """The :class:`ImportParameters` that describe ``job``."""
    return ImportParameters(
        key_uri=key_uri,
        key_type=job.key_type,
        new_version=job.new_version,
        import_token=job.token,
        wrapping_algorithm=job.algorithm,
        wrapping_public_key=wrapping_public_key,
        expires_at=job.expires_at,
    )


def _load_wrapping_key(pem: bytes) -> rsa.RSAPublicKey:
    try:
        public = serialization.load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(
            "the wrapping key is not a PEM public key ('-----BEGIN PUBLIC KEY-----'): use the "
            "file `aureus keys import-params -o` wrote"
        ) from None
    if not isinstance(public, rsa.RSAPublicKey):
        raise ConfigError("the wrapping key is not an RSA public key")
    if public.key_size < MIN_WRAPPING_KEY_BITS:
        raise ConfigError(
            f"the wrapping key has {public.key_size} bits; at least {MIN_WRAPPING_KEY_BITS} "
            "are needed"
        )
    return public


def _oaep(algorithm: str) -> padding.OAEP:
    # OAEP with SHA-1 stays sound for key transport; it is what many HSMs offer.
    digest: hashes.HashAlgorithm = hashes.SHA256()
    if check_algorithm(algorithm) == RSA_OAEP_SHA1_AES_KWP:
        digest = hashes.SHA1()  # noqa: S303
    return padding.OAEP(mgf=padding.MGF1(digest), algorithm=digest, label=None)


def encode_material(key_type: KeyType | str, material: KeyMaterial) -> bytearray:
    """The bytes to wrap: the raw AES key, or the private key as DER PKCS#8.

    Checks that the material is a key of ``key_type``; messages never hold it.
    """
    key_type = KeyType.parse(key_type)
    data = material.data.reveal()
    if key_type in _AES_SIZES:
        if material.format != "raw":
            raise ConfigError(f"an {key_type.value} key is given as raw bytes, not PEM")
        if len(data) != _AES_SIZES[key_type]:
            raise ConfigError(
                f"an {key_type.value} key is {_AES_SIZES[key_type]} bytes, not {len(data)}"
            )
        return bytearray(data)
    if material.format != "pem":
        raise ConfigError(f"an {key_type.value} key is given as a PEM private key")
    try:
        private = serialization.load_pem_private_key(bytes(data), password=None)
    except TypeError:
        raise ConfigError("the PEM private key is encrypted: decrypt it first") from None
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError("the material is not a PEM private key that can be read") from None
    _check_private_type(key_type, private)
    return bytearray(
        private.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def decode_material(key_type: KeyType, unwrapped: bytes) -> KeyMaterial:
    """Unwrapped bytes as :class:`KeyMaterial` (``raw`` AES key or ``pem`` private key)."""
    if key_type in _AES_SIZES:
        if len(unwrapped) != _AES_SIZES[key_type]:
            raise ImportRefused(
                f"the unwrapped material is {len(unwrapped)} bytes; an {key_type.value} key is "
                f"{_AES_SIZES[key_type]}"
            )
        return KeyMaterial(format="raw", data=Secret(bytes(unwrapped)))
    try:
        private = serialization.load_der_private_key(bytes(unwrapped), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ImportRefused(
            "the unwrapped material is not a DER PKCS#8 private key: wrap the key as "
            "PrivateKeyInfo (`openssl pkcs8 -topk8 -nocrypt -outform DER`)"
        ) from None
    try:
        _check_private_type(key_type, private)
    except ConfigError as error:
        raise ImportRefused(str(error)) from None
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return KeyMaterial(format="pem", data=Secret(pem))


def _check_private_type(key_type: KeyType, private: object) -> None:
    if key_type is KeyType.ED25519 and isinstance(private, ed25519.Ed25519PrivateKey):
        return
    if (
        key_type in _CURVES
        and isinstance(private, ec.EllipticCurvePrivateKey)
        and isinstance(private.curve, _CURVES[key_type])
    ):
        return
    if (
        key_type in _RSA_BITS
        and isinstance(private, rsa.RSAPrivateKey)
        and private.key_size == _RSA_BITS[key_type]
    ):
        return
    if key_type not in (KeyType.ED25519, *_CURVES, *_RSA_BITS):
        raise ConfigError(f"{key_type.value} keys cannot be imported wrapped")
    raise ConfigError(f"the private key is not an {key_type.value} key")


def wrap_for_import(
    key_type: KeyType | str,
    material: KeyMaterial,
    *,
    wrapping_public_key: bytes,
    algorithm: str,
    expected_fingerprint: str,
) -> bytes:
    """Wrap key material for a provider's import job (run this on the offline machine).

    ``expected_fingerprint`` is the wrapping key's fingerprint as read from the
    target through another channel; the wrap is refused if the PEM does not
    match it, so whoever carried the PEM cannot substitute a key of their own.
    """
    public = _load_wrapping_key(wrapping_public_key)
    actual = wrapping_key_fingerprint(wrapping_public_key)
    if not hmac.compare_digest(
        _normalise_fingerprint(actual), _normalise_fingerprint(expected_fingerprint)
    ):
        raise ConfigError(
            f"the wrapping key's fingerprint is {actual}, not the expected "
            f"{expected_fingerprint.strip()}: do not wrap key material for it; get the "
            "wrapping key again from the target and compare the fingerprint out of band"
        )
    plain = encode_material(key_type, material)
    ephemeral = bytearray(secrets.token_bytes(EPHEMERAL_KEY_SIZE))
    try:
        head = public.encrypt(bytes(ephemeral), _oaep(algorithm))
        tail = aes_key_wrap_with_padding(bytes(ephemeral), bytes(plain))
    finally:
        ephemeral[:] = bytes(len(ephemeral))
        plain[:] = bytes(len(plain))
    return head + tail


def split_wrapped(wrapped: bytes, modulus_bytes: int, token: str) -> tuple[bytes, bytes]:
    """The RSA-OAEP part and the AES-KWP part of a wrapped blob (checking their sizes)."""
    tail = len(wrapped) - modulus_bytes
    if tail < 16 or tail % 8:
        raise refused_material(token)
    return bytes(wrapped[:modulus_bytes]), bytes(wrapped[modulus_bytes:])


def refused_material(token: str) -> ImportRefused:
    """The one error for material that does not open (never says which step failed)."""
    return ImportRefused(
        f"the wrapped key material does not open with the wrapping key of import token "
        f"{token}: it was wrapped for another token's key, or altered on the way; wrap the "
        "key again with this token's wrapping key"
    )


def unwrap_for_import(
    wrapped: bytes, private_key: rsa.RSAPrivateKey, algorithm: str, token: str
) -> bytearray:
    """Open a wrapped blob with an import job's private key (providers that unwrap on the host)."""
    head, tail = split_wrapped(wrapped, (private_key.key_size + 7) // 8, token)
    try:
        ephemeral = bytearray(private_key.decrypt(head, _oaep(algorithm)))
    except ValueError:
        raise refused_material(token) from None
    try:
        # The one-time key is AES-256; anything else inside the OAEP part is the same
        # failure as any other (and cryptography's own error for a bad length is a ValueError).
        if len(ephemeral) != 32:
            raise refused_material(token)
        return bytearray(aes_key_unwrap_with_padding(bytes(ephemeral), tail))
    except (InvalidUnwrap, ValueError):
        raise refused_material(token) from None
    finally:
        ephemeral[:] = bytes(len(ephemeral))


def default_expiry(now: datetime) -> datetime:
    """When a token issued at ``now`` expires."""
    return now.astimezone(timezone.utc) + IMPORT_TOKEN_LIFETIME
