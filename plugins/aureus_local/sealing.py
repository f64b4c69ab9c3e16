"""The keystore's cryptography: master key, derived keys, sealed material and the MAC.

The 32-byte master key comes from a key file or from a passphrase through
scrypt.  HKDF-SHA256 derives three independent keys from it, one per job:

- a material key: AES-256-GCM seals each key version's material, with
  associated data binding the keystore ID, key name, version and key type;
- a MAC key: HMAC-SHA256 over the canonical JSON of the whole document;
- a verifier key: HMAC-SHA256 of a fixed label, stored in the header, which
  tells a wrong passphrase apart from a damaged file, and of the keystore ID,
  which gives the keystore's *fingerprint*: a value only the holder of this
  master key can produce for that ID, so pinning it detects a keystore swapped
  for one sealed under another key.

Passphrases go through scrypt with r = 8, p = 1 and N = 2**17 (128 MiB) by
default.  scrypt rather than Argon2id: ``cryptography`` only offers Argon2id
when it is built against OpenSSL 3.2 or later, which a build against an
older system OpenSSL is not, while scrypt is available in every build this
project supports.
"""

from __future__ import annotations

import hmac
import json
import secrets
import unicodedata
from hashlib import sha256

import attrs
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

MASTER_KEY_SIZE = 32
NONCE_SIZE = 12
SALT_SIZE = 16
SCRYPT_R = 8
SCRYPT_P = 1
SCRYPT_LOG_N_RANGE = range(10, 21)
"""Cost exponents a keystore header may record and still be opened: 2**10 to 2**20 (1 GiB)."""
DEFAULT_SCRYPT_LOG_N = 17
"""The cost exponent of new passphrase keystores: 2**17, 128 MiB with r = 8."""
STRONG_SCRYPT_LOG_N_RANGE = range(DEFAULT_SCRYPT_LOG_N, SCRYPT_LOG_N_RANGE.stop)
"""Cost exponents accepted for new keystores and re-sealing, unless weak ones are forced."""
FINGERPRINT_SIZE = 16

_INFO_MATERIAL = b"aureus-local/v1/material-key"
_INFO_MAC = b"aureus-local/v1/document-mac-key"
_INFO_VERIFIER = b"aureus-local/v1/verifier-key"
_VERIFIER_LABEL = b"aureus-local/v1/verifier"
_MAC_LABEL = b"aureus-local/v1/document\x00"
_FINGERPRINT_LABEL = b"aureus-local/v1/fingerprint\x00"
_MATERIAL_LABEL = "aureus-local/v1/material"


@attrs.frozen(kw_only=True)
class ScryptParams:
    """How a passphrase keystore derives its master key; stored in the header."""

    salt: bytes
    log_n: int
    r: int = SCRYPT_R
    p: int = SCRYPT_P

    @classmethod
    def fresh(cls, log_n: int) -> ScryptParams:
        """Parameters with a new random salt."""
        return cls(salt=secrets.token_bytes(SALT_SIZE), log_n=log_n)

    def derive(self, passphrase: str) -> bytes:
        """The master key for ``passphrase`` (NFC-normalized, UTF-8)."""
        text = unicodedata.normalize("NFC", passphrase).encode("utf-8")
        kdf = Scrypt(salt=self.salt, length=MASTER_KEY_SIZE, n=2**self.log_n, r=self.r, p=self.p)
        return kdf.derive(text)


def canonical_json(value: object) -> bytes:
    """The one byte encoding of a JSON value that the MAC and AAD are computed over."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


class Sealer:
    """Keys derived from one master key, and what the keystore does with them.

    Holds secret bytes: its repr shows none of them.
    """

    __slots__ = ("_mac_key", "_material_key", "_verifier_key")

    def __init__(self, master_key: bytes) -> None:
        if len(master_key) != MASTER_KEY_SIZE:
            raise ValueError(f"a master key is {MASTER_KEY_SIZE} bytes")
        self._material_key = _derive(master_key, _INFO_MATERIAL)
        self._mac_key = _derive(master_key, _INFO_MAC)
        self._verifier_key = _derive(master_key, _INFO_VERIFIER)

    def __repr__(self) -> str:
        return "Sealer(<secret>)"

    def verifier(self) -> bytes:
        """The value stored in the header to recognise this master key."""
        return hmac.digest(self._verifier_key, _VERIFIER_LABEL, sha256)

    def fingerprint(self, keystore_id: str) -> str:
        """The keystore's fingerprint: hex of an HMAC of its ID under this master key."""
        tag = hmac.digest(self._verifier_key, _FINGERPRINT_LABEL + keystore_id.encode(), sha256)
        return tag[:FINGERPRINT_SIZE].hex()

    def matches(self, verifier: bytes) -> bool:
        """Whether a stored verifier was made with this master key."""
        return hmac.compare_digest(self.verifier(), verifier)

    def mac(self, document: object) -> bytes:
        """The MAC of a document (without its own ``mac`` field)."""
        return hmac.digest(self._mac_key, _MAC_LABEL + canonical_json(document), sha256)

    def mac_matches(self, document: object, mac: bytes) -> bool:
        """Whether ``mac`` authenticates ``document``."""
        return hmac.compare_digest(self.mac(document), mac)

    def seal(
        self, material: bytes, *, keystore_id: str, name: str, version: int, key_type: str
    ) -> tuple[bytes, bytes]:
        """Encrypt one version's material; returns ``(nonce, ciphertext)``."""
        nonce = secrets.token_bytes(NONCE_SIZE)
        aad = _material_aad(keystore_id, name, version, key_type)
        return nonce, AESGCM(self._material_key).encrypt(nonce, material, aad)

    def open(
        self,
        nonce: bytes,
        ciphertext: bytes,
        *,
        keystore_id: str,
        name: str,
        version: int,
        key_type: str,
    ) -> bytes:
        """Decrypt one version's material; raises ``InvalidTag`` if it was tampered with."""
        aad = _material_aad(keystore_id, name, version, key_type)
        return AESGCM(self._material_key).decrypt(nonce, ciphertext, aad)


def _derive(master_key: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(master_key)


def _material_aad(keystore_id: str, name: str, version: int, key_type: str) -> bytes:
    return canonical_json([_MATERIAL_LABEL, keystore_id, name, version, key_type])
