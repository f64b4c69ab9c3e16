"""Algorithm suites of the AWS Encryption SDK message format, and the commitment policy.

Aureus reads every suite the AWS Encryption SDK defines for its message
format: the eleven below, in message format version 1 (no key commitment) and
version 2 (key commitment).  It writes only the committing suites ``0x0478``
(the default) and ``0x0578`` (signed); the others are readable as far as the
:class:`CommitmentPolicy` allows.

====== ======= ======== ============ =====================================
suite  version data key KDF          signature
====== ======= ======== ============ =====================================
0x0014 1       16 bytes none         none
0x0046 1       24 bytes none         none
0x0078 1       32 bytes none         none
0x0114 1       16 bytes HKDF-SHA256  none
0x0146 1       24 bytes HKDF-SHA256  none
0x0178 1       32 bytes HKDF-SHA256  none
0x0214 1       16 bytes HKDF-SHA256  ECDSA P-256, SHA-256
0x0346 1       24 bytes HKDF-SHA384  ECDSA P-384, SHA-384
0x0378 1       32 bytes HKDF-SHA384  ECDSA P-384, SHA-384
0x0478 2       32 bytes HKDF-SHA512  none (key commitment)
0x0578 2       32 bytes HKDF-SHA512  ECDSA P-384, SHA-384 (key commitment)
====== ======= ======== ============ =====================================

Every suite encrypts with AES-GCM (12-byte IV, 16-byte tag) under a key as
long as its data key.
"""

from __future__ import annotations

import enum

import attrs
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from ..errors import ConfigError


@attrs.frozen(kw_only=True)
class AlgorithmSuite:
    """One algorithm suite: the data cipher, the key derivation and the optional signature."""

    suite_id: int
    name: str
    message_version: int
    """1 or 2: the message format version that carries this suite."""
    committing: bool
    kdf_hash: type[hashes.HashAlgorithm] | None
    """The HKDF hash, or ``None`` when the data key is the encryption key (no KDF)."""
    signature_curve: type[ec.EllipticCurve] | None = None
    signature_hash: type[hashes.HashAlgorithm] | None = None
    data_key_length: int = 32
    iv_length: int = 12
    tag_length: int = 16
    suite_data_length: int = 0
    """Bytes of algorithm-suite data in the header (the commitment value for committing suites)."""

    @property
    def signed(self) -> bool:
        """Whether messages in this suite end with an ECDSA signature."""
        return self.signature_curve is not None

    @property
    def id_bytes(self) -> bytes:
        """The suite ID as the two big-endian bytes used in key derivation."""
        return self.suite_id.to_bytes(2, "big")


def _v1(
    suite_id: int,
    name: str,
    key_length: int,
    kdf: type[hashes.HashAlgorithm] | None,
    curve: type[ec.EllipticCurve] | None = None,
    signature_hash: type[hashes.HashAlgorithm] | None = None,
) -> AlgorithmSuite:
    return AlgorithmSuite(
        suite_id=suite_id,
        name=name,
        message_version=1,
        committing=False,
        kdf_hash=kdf,
        signature_curve=curve,
        signature_hash=signature_hash,
        data_key_length=key_length,
    )


AES_128_GCM_IV12_TAG16 = _v1(0x0014, "AES_128_GCM_IV12_TAG16", 16, None)
AES_192_GCM_IV12_TAG16 = _v1(0x0046, "AES_192_GCM_IV12_TAG16", 24, None)
AES_256_GCM_IV12_TAG16 = _v1(0x0078, "AES_256_GCM_IV12_TAG16", 32, None)
AES_128_GCM_IV12_TAG16_HKDF_SHA256 = _v1(
    0x0114, "AES_128_GCM_IV12_TAG16_HKDF_SHA256", 16, hashes.SHA256
)
AES_192_GCM_IV12_TAG16_HKDF_SHA256 = _v1(
    0x0146, "AES_192_GCM_IV12_TAG16_HKDF_SHA256", 24, hashes.SHA256
)
AES_256_GCM_IV12_TAG16_HKDF_SHA256 = _v1(
    0x0178, "AES_256_GCM_IV12_TAG16_HKDF_SHA256", 32, hashes.SHA256
)
AES_128_GCM_IV12_TAG16_HKDF_SHA256_ECDSA_P256 = _v1(
    0x0214,
    "AES_128_GCM_IV12_TAG16_HKDF_SHA256_ECDSA_P256",
    16,
    hashes.SHA256,
    ec.SECP256R1,
    hashes.SHA256,
)
AES_192_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384 = _v1(
    0x0346,
    "AES_192_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384",
    24,
    hashes.SHA384,
    ec.SECP384R1,
    hashes.SHA384,
)
AES_256_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384 = _v1(
    0x0378,
    "AES_256_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384",
    32,
    hashes.SHA384,
    ec.SECP384R1,
    hashes.SHA384,
)
AES_256_GCM_HKDF_SHA512_COMMIT_KEY = AlgorithmSuite(
    suite_id=0x0478,
    name="AES_256_GCM_HKDF_SHA512_COMMIT_KEY",
    message_version=2,
    committing=True,
    kdf_hash=hashes.SHA512,
    suite_data_length=32,
)
AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384 = AlgorithmSuite(
    suite_id=0x0578,
    name="AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384",
    message_version=2,
    committing=True,
    kdf_hash=hashes.SHA512,
    signature_curve=ec.SECP384R1,
    signature_hash=hashes.SHA384,
    suite_data_length=32,
)

SUITES: dict[int, AlgorithmSuite] = {
    suite.suite_id: suite
    for suite in (
        AES_128_GCM_IV12_TAG16,
        AES_192_GCM_IV12_TAG16,
        AES_256_GCM_IV12_TAG16,
        AES_128_GCM_IV12_TAG16_HKDF_SHA256,
        AES_192_GCM_IV12_TAG16_HKDF_SHA256,
        AES_256_GCM_IV12_TAG16_HKDF_SHA256,
        AES_128_GCM_IV12_TAG16_HKDF_SHA256_ECDSA_P256,
        AES_192_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384,
        AES_256_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384,
        AES_256_GCM_HKDF_SHA512_COMMIT_KEY,
        AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384,
    )
}
DEFAULT_SUITE = AES_256_GCM_HKDF_SHA512_COMMIT_KEY
SIGNED_SUITE = AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384


class CommitmentPolicy(str, enum.Enum):
    """Whether messages must use key commitment: the AWS Encryption SDK's three policies.

    Only the decrypt half differs in Aureus, which writes committing suites
    under every policy:

    * ``require-encrypt-require-decrypt`` (the default) reads only the
      committing suites ``0x0478`` and ``0x0578``;
    * ``require-encrypt-allow-decrypt`` also reads the non-committing
      format-version-1 suites that older SDKs write;
    * ``forbid-encrypt-allow-decrypt`` reads the same as the previous one.
      In the SDK it also forbids *writing* committing suites (so that readers
      older than SDK 1.7 can decrypt); Aureus does not write non-committing
      suites, so under this policy it still writes ``0x0478`` / ``0x0578``.
    """

    REQUIRE_ENCRYPT_REQUIRE_DECRYPT = "require-encrypt-require-decrypt"
    REQUIRE_ENCRYPT_ALLOW_DECRYPT = "require-encrypt-allow-decrypt"
    FORBID_ENCRYPT_ALLOW_DECRYPT = "forbid-encrypt-allow-decrypt"

    @classmethod
    def parse(cls, value: str | CommitmentPolicy) -> CommitmentPolicy:
        """Parse a policy name, listing the valid ones on error."""
        if isinstance(value, CommitmentPolicy):
            return value
        try:
            return cls(value)
        except ValueError:
            valid = ", ".join(p.value for p in cls)
            raise ConfigError(
                f"unknown commitment policy {value!r}; choose one of: {valid}"
            ) from None

    def allows_decrypt(self, suite: AlgorithmSuite) -> bool:
        """Whether a message with ``suite`` may be decrypted under this policy."""
        return suite.committing or self is not CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
