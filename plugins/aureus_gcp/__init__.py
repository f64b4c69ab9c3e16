"""Google Cloud KMS for Aureus: the ``gcp-kms`` key provider and Google credential sources.

Install with ``pip install 'aureus-kms[gcp]'``; see docs/gcp.md.
"""

from .naming import PROVIDER_ID, SCHEME, GcpKey, KeyRingName
from .options import GcpKmsOptions
from .provider import GcpKmsProvider

__all__ = ["PROVIDER_ID", "SCHEME", "GcpKey", "GcpKmsOptions", "GcpKmsProvider", "KeyRingName"]
