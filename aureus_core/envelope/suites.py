"""Algorithm suites of the AWS Encryption SDK message format that Aureus reads and writes.

Aureus writes only the committing suites (message format version 2):
``0x0478`` (AES-256-GCM, HKDF-SHA512, key commitment; the default) and
``0x0578`` (the same with an ECDSA P-384 signature in the footer).  It reads
the older non-committing version-1 suites ``0x0178`` and ``0x0378`` only when
the commitment policy explicitly allows it.
"""

from __future__ import annotations

import enum

import attrs
from cryptography.hazmat.primitives import hashes

from ..errors import ConfigError


@attrs.frozen(kw_only=True)
class AlgorithmSuite:
    """One algorithm suite: the data cipher, the key derivation and the optional signature."""

    suite_id: int
    name: str
    message_version: int
    """1 or 2: the message format version that carries this suite."""
    committing: bool
    signed: bool
    kdf_hash: type[hashes.HashAlgorithm]
    signature_hash: type[hashes.HashAlgorithm] | None = None
    data_key_length: int = 32
    iv_length: int = 12
    tag_length: int = 16
    suite_data_length: int = 0
    """Bytes of algorithm-suite data in the header (the commitment value for committing suites)."""

    @property
    def id_bytes(self) -> bytes:
        """The suite ID as the two big-endian bytes used in key derivation."""
        return self.suite_id.to_bytes(2, "big")


AES_256_GCM_HKDF_SHA512_COMMIT_KEY = AlgorithmSuite(
    suite_id=0x0478,
    name="AES_256_GCM_HKDF_SHA512_COMMIT_KEY",
    message_version=2,
    committing=True,
    signed=False,
    kdf_hash=hashes.SHA512,
    suite_data_length=32,
)
AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384 = AlgorithmSuite(
    suite_id=0x0578,
    name="AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384",
    message_version=2,
    committing=True,
    signed=True,
    kdf_hash=hashes.SHA512,
    signature_hash=hashes.SHA384,
    suite_data_length=32,
)
AES_256_GCM_IV12_TAG16_HKDF_SHA256 = AlgorithmSuite(
    suite_id=0x0178,
    name="AES_256_GCM_IV12_TAG16_HKDF_SHA256",
    message_version=1,
    committing=False,
    signed=False,
    kdf_hash=hashes.SHA256,
)
AES_256_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384 = AlgorithmSuite(
    suite_id=0x0378,
    name="AES_256_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384",
    message_version=1,
    committing=False,
    signed=True,
    kdf_hash=hashes.SHA384,
    signature_hash=hashes.SHA384,
)

SUITES: dict[int, AlgorithmSuite] = {
    suite.suite_id: suite
    for suite in (
        AES_256_GCM_HKDF_SHA512_COMMIT_KEY,
        AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384,
        AES_256_GCM_IV12_TAG16_HKDF_SHA256,
        AES_256_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384,
    )
}
DEFAULT_SUITE = AES_256_GCM_HKDF_SHA512_COMMIT_KEY
SIGNED_SUITE = AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384


class CommitmentPolicy(str, enum.Enum):
    """Whether messages must use key commitment, as the AWS Encryption SDK's policy.

    The default, ``require-encrypt-require-decrypt``, refuses to read messages
    without key commitment.  ``require-encrypt-allow-decrypt`` is the explicit
    opt-in for reading messages written by older SDKs (format version 1);
    Aureus never writes them.
    """

    REQUIRE_ENCRYPT_REQUIRE_DECRYPT = "require-encrypt-require-decrypt"
    REQUIRE_ENCRYPT_ALLOW_DECRYPT = "require-encrypt-allow-decrypt"

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
        return suite.committing or self is CommitmentPolicy.REQUIRE_ENCRYPT_ALLOW_DECRYPT
