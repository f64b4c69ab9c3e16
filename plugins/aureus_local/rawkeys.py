"""Raw keyring keys: AES and RSA wrapping keys with a user-chosen key namespace and key name.

The AWS Encryption SDK's raw keyrings name a wrapping key by a *key
namespace* (written as the encrypted data key's provider ID) and a *key name*.
A raw key imported into the local keystore carries both, and reads and writes
exactly those keyrings' layouts:

- raw AES (AES-128, AES-192 or AES-256): provider info = key name (UTF-8) ||
  tag length in bits (4 bytes, 128) || IV length (4 bytes, 12) || IV;
  ciphertext = AES-GCM encryption of the data key followed by the tag, with
  the serialized encryption context as associated data.
- raw RSA (2048, 3072 or 4096 bits): provider info = key name; ciphertext =
  RSA encryption of the data key with the key's padding (PKCS#1 v1.5 or OAEP
  with MGF1 and SHA-1/256/384/512).  Nothing binds the encryption context:
  that is the SDK's layout, and the message's own authentication is what
  protects the context.

Each key is pinned to one algorithm and (for RSA) one padding, stored with it
in the keystore; nothing in a message can make it use another.  An RSA key
imported from a public key alone wraps but never unwraps.
"""

from __future__ import annotations

import enum

import attrs
from cryptography.exceptions import InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding as rsa_padding
from cryptography.hazmat.primitives.asymmetric import rsa

from aureus_core.context import EncryptionContext
from aureus_core.datakey import EncryptedDataKey
from aureus_core.envelope.keyring import RESERVED_PROVIDER_IDS
from aureus_core.errors import ConfigError, DecryptionError
from aureus_core.interfaces import KeyMaterial
from aureus_core.keys import KeyType

from . import wrapping

AES_TYPES: dict[KeyType, int] = {KeyType.AES_128: 16, KeyType.AES_192: 24, KeyType.AES_256: 32}
"""Raw AES key types and their key sizes in bytes."""
RSA_TYPES: dict[KeyType, int] = {
    KeyType.RSA_2048: 2048,
    KeyType.RSA_3072: 3072,
    KeyType.RSA_4096: 4096,
}
"""Raw RSA key types and their modulus sizes in bits."""
RAW_TYPES = frozenset({*AES_TYPES, *RSA_TYPES})
OPTIONS = ("namespace", "key_name", "padding")
"""The key options that make an imported key a raw keyring key."""
MAX_TEXT_BYTES = 1024
"""Longest key namespace or key name accepted, in UTF-8 bytes."""
RESERVED_PREFIXES = RESERVED_PROVIDER_IDS
"""Key namespaces that name other providers' layouts, never a raw key."""
MAX_RSA_DER = 4096
"""Upper bound on the DER form of a stored 4096-bit private key (with margin)."""


class Padding(str, enum.Enum):
    """The RSA padding a raw RSA key is pinned to."""

    PKCS1 = "pkcs1"
    OAEP_SHA1 = "oaep-sha1"
    OAEP_SHA256 = "oaep-sha256"
    OAEP_SHA384 = "oaep-sha384"
    OAEP_SHA512 = "oaep-sha512"

    @classmethod
    def parse(cls, value: str) -> Padding:
        """Parse a padding name, with an error listing the valid ones."""
        try:
            return cls(value)
        except ValueError:
            valid = ", ".join(p.value for p in cls)
            raise ConfigError(f"unknown RSA padding {value!r}; choose one of: {valid}") from None

    def scheme(self) -> rsa_padding.AsymmetricPadding:
        """The ``cryptography`` padding object (OAEP uses MGF1 with the same hash, no label)."""
        if self is Padding.PKCS1:
            return rsa_padding.PKCS1v15()
        algorithm = _OAEP_HASHES[self]()
        return rsa_padding.OAEP(
            mgf=rsa_padding.MGF1(algorithm=algorithm), algorithm=algorithm, label=None
        )


_OAEP_HASHES: dict[Padding, type[hashes.HashAlgorithm]] = {
    Padding.OAEP_SHA1: hashes.SHA1,
    Padding.OAEP_SHA256: hashes.SHA256,
    Padding.OAEP_SHA384: hashes.SHA384,
    Padding.OAEP_SHA512: hashes.SHA512,
}


@attrs.frozen(kw_only=True)
class RawKeyring:
    """How a raw key appears on the wire, stored (authenticated) with the key."""

    namespace: str
    """The key namespace: the encrypted data key's provider ID."""
    key_name: str
    """The key name, at the start of the provider info."""
    padding: Padding | None = None
    """The RSA padding (RSA keys only)."""
    public_only: bool = False
    """An RSA key imported from its public key: it wraps, but cannot unwrap."""

    def describe(self) -> dict[str, str]:
        """Facts for key metadata (nothing secret)."""
        facts = {"key_namespace": self.namespace, "key_name": self.key_name}
        if self.padding is not None:
            facts["padding"] = self.padding.value
            facts["private_key"] = "no (wrap only)" if self.public_only else "yes"
        return facts


def check_text(value: object, what: str) -> str:
    """Return a valid key namespace or key name, else raise :class:`ConfigError`."""
    if not isinstance(value, str) or not value:
        raise ConfigError(f"the raw key's {what} must be a non-empty string")
    if any(not ch.isprintable() for ch in value):
        raise ConfigError(f"the raw key's {what} {value[:80]!r} contains control characters")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise ConfigError(f"the raw key's {what} is not valid Unicode text") from None
    if size > MAX_TEXT_BYTES:
        raise ConfigError(
            f"the raw key's {what} is {size} bytes long in UTF-8; at most {MAX_TEXT_BYTES}"
        )
    return value


def keyring_from_options(
    key_type: KeyType, options: dict[str, str], material: KeyMaterial
) -> RawKeyring | None:
    """The keyring an import's key options ask for, or ``None`` for an ordinary key.

    Raises :class:`ConfigError` for an incomplete or inconsistent request.
    """
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ConfigError(
            f"unknown key option(s) for the local provider: {', '.join(unknown)}; a raw "
            f"keyring key takes {', '.join(OPTIONS)}"
        )
    if not options:
        return None
    if "namespace" not in options or "key_name" not in options:
        raise ConfigError(
            "a raw keyring key needs both a key namespace and a key name "
            "(namespace=..., key_name=...; --namespace and --key-name)"
        )
    namespace = check_text(options["namespace"], "key namespace")
    if namespace.startswith(RESERVED_PREFIXES):
        raise ConfigError(
            f"key namespace {namespace!r} is reserved (namespaces starting with "
            f"{' or '.join(repr(p) for p in RESERVED_PREFIXES)} name AWS KMS and Aureus "
            "providers): choose the namespace the other party's raw keyring uses"
        )
    key_name = check_text(options["key_name"], "key name")
    if key_type in AES_TYPES:
        if "padding" in options:
            raise ConfigError("padding applies only to RSA keys, not to a raw AES key")
        return RawKeyring(namespace=namespace, key_name=key_name)
    if key_type not in RSA_TYPES:
        valid = ", ".join(sorted(t.value for t in RAW_TYPES))
        raise ConfigError(
            f"a raw keyring key must be one of {valid}; {key_type.value} keys cannot wrap data keys"
        )
    if "padding" not in options:
        valid = ", ".join(p.value for p in Padding)
        raise ConfigError(
            f"a raw RSA key needs its padding (padding=..., --padding): one of {valid}, "
            "the same as the other party's raw RSA keyring"
        )
    return RawKeyring(
        namespace=namespace,
        key_name=key_name,
        padding=Padding.parse(options["padding"]),
        public_only=_is_public_pem(material),
    )


def stored_material(key_type: KeyType, keyring: RawKeyring, material: KeyMaterial) -> bytes:
    """Validate imported material and return what the keystore seals.

    AES: the key bytes.  RSA: the private key as PKCS#8 DER, or the public
    key as SubjectPublicKeyInfo DER when only that was given.  Errors never
    contain the material.
    """
    data = bytes(material.data.reveal())
    if key_type in AES_TYPES:
        size = AES_TYPES[key_type]
        if material.format != "raw":
            raise ConfigError(
                f"{key_type.value} keys are imported as raw bytes (raw=..., --raw-key-file), "
                f"not {material.format!r}"
            )
        if len(data) != size:
            raise ConfigError(
                f"an {key_type.value} key needs exactly {size} bytes of material; "
                f"got {len(data)} bytes"
            )
        return data
    if material.format != "pem":
        raise ConfigError(
            f"{key_type.value} keys are imported as a PEM private or public key "
            f"(pem=..., --pem-file), not {material.format!r}"
        )
    key: rsa.RSAPrivateKey | rsa.RSAPublicKey
    key = _load_public(data) if keyring.public_only else _load_private(data)
    bits = RSA_TYPES[key_type]
    if key.key_size != bits:
        raise ConfigError(
            f"the PEM holds a {key.key_size}-bit RSA key, but the key type is {key_type.value}: "
            "import a raw RSA key with the type of its size (rsa-2048, rsa-3072 or rsa-4096)"
        )
    if isinstance(key, rsa.RSAPublicKey):
        return key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def sealed_sizes(key_type: KeyType) -> range:
    """Sizes a stored (sealed, so 16 bytes longer) material of ``key_type`` may have."""
    if key_type in AES_TYPES:
        size = AES_TYPES[key_type] + 16
        return range(size, size + 1)
    return range(64, MAX_RSA_DER + 16)


def public_key_pem(key_type: KeyType, keyring: RawKeyring, material: bytes) -> bytes:
    """The SubjectPublicKeyInfo PEM of a raw RSA key."""
    if key_type not in RSA_TYPES:
        raise ConfigError(f"a raw {key_type.value} key is symmetric: it has no public key")
    return _public(keyring, material).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def names(keyring: RawKeyring, key_type: KeyType, encrypted: EncryptedDataKey) -> bool:
    """Whether ``encrypted`` is in this key's exact layout and names it.

    Strict: the provider ID must be the namespace, and the provider info the
    key name (RSA) or the key name plus a 128-bit tag and 12-byte IV (AES).
    """
    if encrypted.provider_id != keyring.namespace:
        return False
    name = keyring.key_name.encode("utf-8")
    if key_type in RSA_TYPES:
        return encrypted.provider_info == name
    return wrapping.key_name_in(encrypted.provider_info) == name


def wrap(
    key_type: KeyType,
    keyring: RawKeyring,
    material: bytes,
    data_key: bytes,
    context: EncryptionContext,
) -> EncryptedDataKey:
    """Wrap ``data_key`` in the raw AES or raw RSA keyring layout."""
    if key_type in AES_TYPES:
        return wrapping.seal(
            material, keyring.namespace, keyring.key_name.encode("utf-8"), data_key, context
        )
    if len(data_key) not in wrapping.DATA_KEY_SIZES:
        raise ConfigError(
            f"a data key to wrap must be 16, 24 or 32 bytes long, not {len(data_key)}"
        )
    assert keyring.padding is not None
    ciphertext = _public(keyring, material).encrypt(bytes(data_key), keyring.padding.scheme())
    return EncryptedDataKey(
        provider_id=keyring.namespace,
        provider_info=keyring.key_name.encode("utf-8"),
        ciphertext=ciphertext,
    )


def unwrap(
    key_type: KeyType,
    keyring: RawKeyring,
    material: bytes,
    encrypted: EncryptedDataKey,
    context: EncryptionContext,
) -> bytearray:
    """Unwrap with the key's pinned algorithm; any failure is :class:`DecryptionError`."""
    if keyring.public_only or not names(keyring, key_type, encrypted):
        raise DecryptionError()
    if key_type in AES_TYPES:
        return wrapping.open_sealed(material, encrypted, context)
    assert keyring.padding is not None
    private = _stored_private(material)
    try:
        plaintext = private.decrypt(encrypted.ciphertext, keyring.padding.scheme())
    except (ValueError, InvalidTag):
        raise DecryptionError() from None
    if len(plaintext) not in wrapping.DATA_KEY_SIZES:
        raise DecryptionError()
    return bytearray(plaintext)


def _public(keyring: RawKeyring, material: bytes) -> rsa.RSAPublicKey:
    if keyring.public_only:
        key: object = serialization.load_der_public_key(material)
    else:
        key = _stored_private(material).public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise ConfigError("the stored raw RSA key is not an RSA key")
    return key


def _stored_private(material: bytes) -> rsa.RSAPrivateKey:
    """Load a stored private key.

    Its consistency was checked when it was imported, and the keystore
    authenticates it since, so the (slow, for 4096 bits) check is not redone
    on every use.
    """
    key = serialization.load_der_private_key(
        material, password=None, unsafe_skip_rsa_key_validation=True
    )
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError("the stored raw RSA key is not an RSA private key")
    return key


def _is_public_pem(material: KeyMaterial) -> bool:
    if material.format != "pem":
        return False
    head = bytes(material.data.reveal()).lstrip()[:40]
    return head.startswith((b"-----BEGIN PUBLIC KEY-----", b"-----BEGIN RSA PUBLIC KEY-----"))


def _load_private(data: bytes) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise ConfigError(
            "the PEM private key is encrypted: decrypt it first, e.g. "
            "`openssl pkey -in K -out K.plain`, and import K.plain"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(
            "the material is not a PEM RSA key that can be read: expected "
            "'-----BEGIN PRIVATE KEY-----', '-----BEGIN RSA PRIVATE KEY-----' or, to wrap "
            "only, '-----BEGIN PUBLIC KEY-----'"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError("the PEM holds a private key that is not an RSA key")
    return key


def _load_public(data: bytes) -> rsa.RSAPublicKey:
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(
            "the material is not a PEM RSA public key that can be read: expected "
            "'-----BEGIN PUBLIC KEY-----' or '-----BEGIN RSA PUBLIC KEY-----'"
        ) from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise ConfigError("the PEM holds a public key that is not an RSA key")
    return key
