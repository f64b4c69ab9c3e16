"""Typed registries handed to the registration hooks.

A plugin calls ``registry.register(name, factory, description=...)``.  The host
tells the registry which plugin is calling, so a duplicate registration names
both plugins.
"""

from __future__ import annotations

import difflib
import inspect
import re
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

import attrs

from .errors import DuplicateRegistration, PluginError
from .interfaces import (
    AuditSinkFactory,
    CacheBackendFactory,
    CredentialSourceFactory,
    ProviderFactory,
)

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

_NAME = re.compile(r"^[a-z][a-z0-9+.-]*$")


@attrs.frozen(kw_only=True)
class Registration(Generic[F]):
    """One registered factory and the plugin that registered it."""

    name: str
    factory: F
    plugin: str
    description: str = ""


class Registry(Generic[F]):
    """Names to factories, for one kind of extension."""

    kind = "extension"
    """What a name denotes, for messages ("key provider scheme" ...)."""

    def __init__(self) -> None:
        self._entries: dict[str, Registration[F]] = {}
        self._plugin = "<unknown>"

    def _calling(self, plugin: str) -> None:
        """Record which plugin the following registrations come from (host use only)."""
        self._plugin = plugin

    def register(self, name: str, factory: F, *, description: str = "") -> None:
        """Register ``factory`` under ``name``."""
        if not isinstance(name, str) or not _NAME.match(name):
            raise PluginError(
                f"plugin {self._plugin!r} registered an invalid {self.kind} {name!r}: "
                "use lower-case letters, digits, '+', '.', '-'"
            )
        if not callable(factory):
            raise PluginError(
                f"plugin {self._plugin!r} registered {self.kind} {name!r} with a factory "
                f"that is not callable ({type(factory).__name__})"
            )
        existing = self._entries.get(name)
        if existing is not None:
            raise DuplicateRegistration(
                f"{self.kind} {name!r} is registered by both plugin {existing.plugin!r} "
                f"and plugin {self._plugin!r}; disable one with AUREUS_DISABLE_PLUGINS"
            )
        self._entries[name] = Registration(
            name=name, factory=factory, plugin=self._plugin, description=description
        )

    def get(self, name: str) -> Registration[F]:
        """Return the registration for ``name``; a :class:`PluginError` lists the known ones."""
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            close = difflib.get_close_matches(str(name), list(self._entries), n=1)
            guess = f"did you mean {close[0]!r}? " if close else ""
            raise PluginError(
                f"no plugin provides {self.kind} {name!r}; {guess}(known: {known}); "
                "run 'aureus plugins' to see which plugins are installed or unavailable"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Registration[F]]:
        return iter(sorted(self._entries.values(), key=lambda r: r.name))

    def __len__(self) -> int:
        return len(self._entries)

    def by_plugin(self, plugin: str) -> list[str]:
        """Names registered by one plugin."""
        return sorted(r.name for r in self._entries.values() if r.plugin == plugin)


def call_factory(factory: Callable[..., T], options: Any, **offered: Any) -> T:
    """``factory(options)``, plus each keyword of ``offered`` its signature names.

    A factory that takes ``**kwargs`` gets every offered keyword; one whose
    signature cannot be read gets none.  So a factory written for
    ``factory(options)`` keeps working when the host offers more.
    """
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return factory(options)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return factory(options, **offered)
    named = {
        p.name
        for p in parameters
        if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    }
    return factory(options, **{k: v for k, v in offered.items() if k in named})


class KeyProviderRegistry(Registry[ProviderFactory]):
    """URI schemes to key-provider factories."""

    kind = "key provider scheme"


class CredentialSourceRegistry(Registry[CredentialSourceFactory]):
    """Names to credential-source factories.

    The stack calls a factory as ``factory(options)`` with the options of one
    ``[credentials.<name>]`` table (without ``source``), adding the keywords
    its signature names: ``name``, the table's name, and ``credentials``, a
    function that returns the source another table configures (by its name).
    """

    kind = "credential source"


class CacheBackendRegistry(Registry[CacheBackendFactory]):
    """Names to data-key cache backend factories."""

    kind = "cache backend"


class AuditSinkRegistry(Registry[AuditSinkFactory]):
    """Names to audit-sink factories."""

    kind = "audit sink"
