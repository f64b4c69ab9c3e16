"""Google Cloud KMS for Aureus: the ``gcp-kms`` key provider and Google credential sources.

Install with ``pip install 'aureus-kms[gcp]'``; see docs/gcp.md.

The provider is imported on first access, so importing this package (which
pytest does for :mod:`aureus_gcp.testing.pytest_plugin`) needs no Google SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .naming import PROVIDER_ID, SCHEME, GcpKey, KeyRingName

if TYPE_CHECKING:
    from .options import GcpKmsOptions
    from .provider import GcpKmsProvider

__all__ = ["PROVIDER_ID", "SCHEME", "GcpKey", "GcpKmsOptions", "GcpKmsProvider", "KeyRingName"]


def __getattr__(name: str) -> Any:
    if name == "GcpKmsOptions":  # imported on first use: loading the plugin does not need it
        from .options import GcpKmsOptions

        return GcpKmsOptions
    if name == "GcpKmsProvider":
        from .provider import GcpKmsProvider

        return GcpKmsProvider
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
