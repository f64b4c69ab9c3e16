"""AWS KMS for Aureus: the ``aws-kms`` key provider and AWS credential sources.

The provider is imported on first access, so importing this package (which
loading the plugin does) needs no AWS SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .naming import PROVIDER_ID, SCHEME, KmsArn

if TYPE_CHECKING:
    from .options import AwsKmsOptions
    from .provider import AwsKmsProvider

__all__ = ["PROVIDER_ID", "SCHEME", "AwsKmsOptions", "AwsKmsProvider", "KmsArn"]


def __getattr__(name: str) -> Any:
    if name == "AwsKmsOptions":  # imported on first use: loading the plugin does not need it
        from .options import AwsKmsOptions

        return AwsKmsOptions
    if name == "AwsKmsProvider":
        from .provider import AwsKmsProvider

        return AwsKmsProvider
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
