"""Key URIs and ARNs of the ``aws-kms`` scheme.

``aws-kms://arn:aws:kms:REGION:ACCOUNT:key/ID`` names a key (its region and
account are in the ARN); ``aws-kms://alias/NAME``, ``aws-kms://ID`` and
``aws-kms://mrk-...`` name one in the provider's region, or in the region of a
``?region=`` parameter.  Multi-Region keys (IDs beginning ``mrk-``) are the
same key in every region they are replicated to.
"""

from __future__ import annotations

import re

import attrs

from aureus_core.errors import ConfigError
from aureus_core.keyref import KeyRef

SCHEME = "aws-kms"
PROVIDER_ID = "aws-kms"
"""The AWS Encryption SDK's provider ID for KMS-wrapped data keys."""
REF_PARAMS = frozenset({"region"})

_REGION = re.compile(r"[a-z]{2,4}(-[a-z]+)+-\d+")
"""The shape of an AWS region name (``us-east-1``, ``us-gov-west-1``, ``eusc-de-east-1``)."""
_ALIAS_NAME = re.compile(r"^[A-Za-z0-9/_-]{1,250}$")


@attrs.frozen
class KmsArn:
    """A parsed KMS ARN: ``arn:PARTITION:kms:REGION:ACCOUNT:RESOURCE_TYPE/RESOURCE_ID``."""

    partition: str
    region: str
    account: str
    resource_type: str
    resource_id: str

    @classmethod
    def parse(cls, text: str) -> KmsArn | None:
        """Parse a key or alias ARN; ``None`` if ``text`` is not one."""
        parts = text.split(":", 5)
        if len(parts) != 6 or parts[0] != "arn" or parts[2] != "kms":
            return None
        _, partition, _, region, account, resource = parts
        resource_type, sep, resource_id = resource.partition("/")
        if not (partition and account and sep and resource_id) or not is_region(region):
            return None
        if resource_type not in ("key", "alias"):
            return None
        return cls(partition, region, account, resource_type, resource_id)

    @property
    def is_key(self) -> bool:
        """Whether the ARN names a key (not an alias)."""
        return self.resource_type == "key"

    @property
    def is_multi_region(self) -> bool:
        """Whether the ARN names a multi-Region key."""
        return self.is_key and self.resource_id.startswith("mrk-")

    def in_region(self, region: str) -> KmsArn:
        """The same resource in another region (meaningful for multi-Region keys)."""
        return attrs.evolve(self, region=region)

    def __str__(self) -> str:
        return (
            f"arn:{self.partition}:kms:{self.region}:{self.account}:"
            f"{self.resource_type}/{self.resource_id}"
        )


def same_key(a: KmsArn, b: KmsArn) -> bool:
    """Whether two key ARNs name the same key, multi-Region aware.

    Identical ARNs match; two multi-Region key ARNs that differ only in their
    region match too (a replica and its primary hold the same key material).
    """
    if a == b:
        return True
    return a.is_multi_region and b.is_multi_region and attrs.evolve(a, region=b.region) == b


def check_ref(ref: KeyRef) -> KeyRef:
    """Reject references of another scheme and unknown parameters."""
    if ref.scheme != SCHEME:
        raise ConfigError(f"the AWS KMS provider serves {SCHEME}:// keys, not {ref.uri}")
    unknown = sorted({name for name, _ in ref.params} - REF_PARAMS)
    if unknown:
        raise ConfigError(
            f"unknown parameter(s) {', '.join(unknown)} in {ref.uri}: an {SCHEME} URI "
            "accepts only ?region="
        )
    region = ref.param("region")
    if region is not None and not is_region(region):
        raise ConfigError(f"invalid AWS region {region!r} in {ref.uri}")
    arn = KmsArn.parse(ref.key_id)
    if arn is not None and region is not None and region != arn.region:
        raise ConfigError(
            f"{ref.uri} names region {region} but its ARN is in {arn.region}: drop ?region="
        )
    if ref.key_id.startswith("arn:") and arn is None:
        named = ref.key_id.split(":")[3:4]
        if named and named[0] and not is_region(named[0]):
            raise ConfigError(
                f"{ref.key_id!r} names region {named[0]!r}, which is not an AWS region name: "
                "use one such as us-east-1"
            )
        raise ConfigError(f"{ref.key_id!r} is not a KMS key or alias ARN")
    return ref


def region_of(ref: KeyRef, default: str) -> str:
    """The region a reference's key lives in: from its ARN, its ``?region=``, or ``default``."""
    arn = KmsArn.parse(ref.key_id)
    if arn is not None:
        return arn.region
    return ref.param("region") or default


def key_ref(arn: str) -> KeyRef:
    """The canonical reference of a key: its ARN."""
    return KeyRef(scheme=SCHEME, key_id=arn)


def alias_name(name: str) -> str:
    """The KMS alias (``alias/NAME``) a key created as ``name`` gets."""
    bare = name.removeprefix("alias/")
    if not _ALIAS_NAME.match(bare) or bare.startswith("aws/"):
        raise ConfigError(
            f"invalid AWS KMS key name {name!r}: use letters, digits, '/', '_' and '-' "
            "(at most 250), not beginning with 'aws/'"
        )
    return f"alias/{bare}"


def is_region(region: object) -> bool:
    """Whether ``region`` has the shape of an AWS region name (botocore builds hosts from it)."""
    return isinstance(region, str) and _REGION.fullmatch(region) is not None


def check_region(region: str, what: str) -> str:
    """Validate a region name."""
    if not is_region(region):
        raise ConfigError(f"{what} must be an AWS region such as us-east-1, not {region!r}")
    return region
