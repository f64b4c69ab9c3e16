"""AWS KMS for Aureus: the ``aws-kms`` key provider and AWS credential sources."""

from .naming import PROVIDER_ID, SCHEME, KmsArn
from .options import AwsKmsOptions
from .provider import AwsKmsProvider

__all__ = ["PROVIDER_ID", "SCHEME", "AwsKmsOptions", "AwsKmsProvider", "KmsArn"]
