"""AWS KMS for Aureus: the ``aws-kms`` key provider and AWS credential sources.

The provider is imported on first access, so importing this package (which
loading the plugin does) needs no AWS SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .naming import PROVIDER_ID, SCHEME, KmsArn
from .options import AwsKmsOptions

if TYPE_CHECKING:
    from .provider import AwsKmsProvider

__all__ = ["PROVIDER_ID", "SCHEME", "AwsKmsOptions", "AwsKmsProvider", "KmsArn"]


def __getattr__(name: str) -> Any:
    if name == "AwsKmsProvider":
        from .provider import AwsKmsProvider

        return AwsKmsProvider
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
