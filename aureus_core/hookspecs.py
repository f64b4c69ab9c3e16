"""Hook specifications: the extension points plugins implement.

Every hook here is a registration hook that *fans out*: pluggy calls every
plugin's implementation, each registering zero or more factories on the typed
registry it receives.  None of them is ``firstresult``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .registry import (
        AuditSinkRegistry,
        CacheBackendRegistry,
        CredentialSourceRegistry,
        KeyProviderRegistry,
    )

PROJECT_NAME = "aureus"
ENTRY_POINT_GROUP = "aureus"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def aureus_register_key_providers(registry: KeyProviderRegistry) -> None:
    """Register key-provider factories, each under a URI scheme.

    Fans out: every plugin is called.  Two plugins registering one scheme is
    an error naming both.
    """


@hookspec
def aureus_register_credential_sources(registry: CredentialSourceRegistry) -> None:
    """Register credential-source factories, each under a name.

    Fans out: every plugin is called.  Two plugins registering one name is an
    error naming both.
    """


@hookspec
def aureus_register_cache_backends(registry: CacheBackendRegistry) -> None:
    """Register data-key cache backend factories, each under a name.

    Fans out: every plugin is called.  Two plugins registering one name is an
    error naming both.
    """


@hookspec
def aureus_register_audit_sinks(registry: AuditSinkRegistry) -> None:
    """Register audit-sink factories, each under a name.

    Fans out: every plugin is called.  Two plugins registering one name is an
    error naming both.
    """
