"""The plugin host: discovers plugins through entry points and collects their registrations.

Loading is lazy (on first use), happens once, and goes through the ``aureus``
entry-point group for first-party and third-party plugins alike.  Each kind of
registration (key providers, credential sources, caches, audit sinks) is
collected on its first use, so a plugin that imports its SDK inside a hook or
a factory costs nothing until one of its names is used.  A plugin whose entry
point names extras (``aws = "aureus_aws.plugin [aws]"``) is unavailable while
a distribution those extras require is not installed, whether or not its
module would import.
``AUREUS_LOAD_PLUGINS`` (comma-separated entry-point names) restricts loading
to those plugins; ``AUREUS_DISABLE_PLUGINS`` blocks the ones it names.  A
plugin that fails to import is recorded with the reason and an install hint,
and the others carry on.
"""

from __future__ import annotations

import difflib
import email.parser
import enum
import json
import os
import re
import shlex
import threading
from collections.abc import Mapping
from importlib import metadata
from typing import Any
from urllib.parse import unquote, urlsplit

import attrs
import pluggy

from . import hookspecs
from .errors import DuplicateRegistration, PluginError
from .registry import (
    AuditSinkRegistry,
    CacheBackendRegistry,
    CredentialSourceRegistry,
    KeyProviderRegistry,
    Registry,
)

LOAD_ENV = "AUREUS_LOAD_PLUGINS"
DISABLE_ENV = "AUREUS_DISABLE_PLUGINS"


class PluginStatus(str, enum.Enum):
    """Whether a plugin is in use, and if not, why."""

    LOADED = "loaded"
    UNAVAILABLE = "unavailable"
    """It failed to import or to register (a missing SDK, a bug)."""
    DISABLED = "disabled"
    """Blocked by ``AUREUS_DISABLE_PLUGINS`` or left out by ``AUREUS_LOAD_PLUGINS``."""


@attrs.frozen(kw_only=True)
class PluginInfo:
    """What ``aureus plugins`` shows about one plugin."""

    name: str
    module: str
    distribution: str | None
    version: str | None
    status: PluginStatus
    reason: str | None = None
    install_hint: str | None = None
    registers: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    descriptions: Mapping[str, Mapping[str, str]] = attrs.field(factory=dict)
    """Kind -> registered name -> the ``description=`` given to ``register`` (if any)."""

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready form."""
        return {
            "name": self.name,
            "module": self.module,
            "distribution": self.distribution,
            "version": self.version,
            "status": self.status.value,
            "reason": self.reason,
            "install_hint": self.install_hint,
            "registers": {kind: list(names) for kind, names in self.registers.items()},
            "descriptions": {kind: dict(named) for kind, named in self.descriptions.items()},
        }


def _split_env(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def checkout_of(dist: metadata.Distribution) -> tuple[str, bool] | None:
    """Where ``dist`` was installed from, if from a local directory: (path, editable).

    Reads the installer's ``direct_url.json`` (PEP 610); a release installed
    from a package index has none, or one naming an archive or VCS URL.
    """
    try:
        raw = dist.read_text("direct_url.json")
        record = json.loads(raw) if raw else None
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("dir_info"), dict):
        return None
    url = record.get("url")
    if not isinstance(url, str) or not url.startswith("file:"):
        return None
    path = unquote(urlsplit(url).path)
    return path, record["dir_info"].get("editable") is True


def install_line(dist: metadata.Distribution, extras: list[str]) -> str:
    """The ``pip install`` line that adds ``extras`` to ``dist`` where it was installed from."""
    spec = f"[{','.join(extras)}]"
    source = checkout_of(dist)
    name = dist.metadata["Name"]
    if source is None:
        return f"pip install {shlex.quote(name + spec)}"
    path, editable = source
    line = f"pip install {'-e ' if editable else ''}{shlex.quote(path + spec)}"
    released = f"pip install {shlex.quote(name + spec)}"
    return f"{line}  (from your checkout; from a package index: {released})"


_EXTRA_MARKER = re.compile(r"""^\s*extra\s*==\s*["']([^"']+)["']\s*$""")
_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


class _DistFacts:
    """The name, version and requirements of one distribution, read once.

    ``Distribution.metadata`` parses the whole ``METADATA`` file, long
    description included, on every access (a few milliseconds for a package
    whose README is its description); a plugin host asks for these facts once
    per entry point, so it reads the header block once per distribution.
    """

    def __init__(self, dist: metadata.Distribution) -> None:
        text = dist.read_text("METADATA") or dist.read_text("PKG-INFO")
        headers = None
        if text:
            head = text.replace("\r\n", "\n").split("\n\n", 1)[0]
            headers = email.parser.HeaderParser().parsestr(head)
        name = headers.get("Name") if headers is not None else None
        self.name: str | None = str(name) if name is not None else None
        version = headers.get("Version") if headers is not None else None
        self.version: str | None = str(version) if version is not None else None
        listed = headers.get_all("Requires-Dist") if headers is not None else None
        self._dist = dist
        self._requires: list[str] | None = [str(r) for r in listed] if listed else None

    @property
    def requires(self) -> list[str]:
        """``Requires-Dist``, or what the distribution reports another way (``requires.txt``)."""
        if self._requires is None:
            self._requires = list(self._dist.requires or [])
        return self._requires


def _missing_requirements(facts: _DistFacts | None, extras: list[str]) -> list[str]:
    """The distributions ``dist[extras]`` requires (by an ``extra == X`` marker) that are absent.

    Requirements with other markers (a Python version, a platform) are not
    judged here: importing the plugin will tell.
    """
    if facts is None or not extras:
        return []
    wanted = {extra.lower() for extra in extras}
    missing: list[str] = []
    for requirement in facts.requires:
        spec, _, marker = requirement.partition(";")
        extra = _EXTRA_MARKER.match(marker)
        name = _REQUIREMENT_NAME.match(spec)
        if not extra or not name or extra.group(1).lower() not in wanted:
            continue
        try:
            metadata.distribution(name.group(1))
        except metadata.PackageNotFoundError:
            missing.append(name.group(1))
    return sorted(set(missing))


def _install_hint(ep: metadata.EntryPoint, error: BaseException) -> str | None:
    dist = getattr(ep, "dist", None)
    extras = list(getattr(ep, "extras", []) or [])
    if dist is not None and extras:
        return install_line(dist, extras)
    if isinstance(error, ModuleNotFoundError) and error.name:
        top = error.name.split(".")[0]
        if dist is not None:
            required = _requirement_for_module(dist, top)
            if required is not None:
                return f"pip install {required}  (a requirement of {dist.name}: module {top!r})"
        return f"pip install {top}  (the distribution that provides module {top!r})"
    return None


def _requirement_for_module(dist: metadata.Distribution, module: str) -> str | None:
    """The one unconditional requirement of ``dist`` whose name fits ``module``, if any.

    Distributions and their modules are often named apart (``python-pkcs11``
    provides ``pkcs11``); the plugin's own requirements are where to look.
    """
    wanted = module.replace("_", "-").lower()
    fits = {wanted, f"py{wanted}", f"python-{wanted}"}
    found = set()
    for requirement in dist.requires or []:
        spec, _, marker = requirement.partition(";")
        name = _REQUIREMENT_NAME.match(spec)
        if name is None or "extra" in marker:
            continue
        normal = re.sub(r"[-_.]+", "-", name.group(1)).lower()
        if normal in fits or normal.endswith(f"-{wanted}"):
            found.add(name.group(1))
    return found.pop() if len(found) == 1 else None


_KINDS: tuple[tuple[str, str], ...] = (
    ("key_providers", "aureus_register_key_providers"),
    ("credential_sources", "aureus_register_credential_sources"),
    ("cache_backends", "aureus_register_cache_backends"),
    ("audit_sinks", "aureus_register_audit_sinks"),
)


@attrs.define
class _Registries:
    key_providers: KeyProviderRegistry = attrs.field(factory=KeyProviderRegistry)
    credential_sources: CredentialSourceRegistry = attrs.field(factory=CredentialSourceRegistry)
    cache_backends: CacheBackendRegistry = attrs.field(factory=CacheBackendRegistry)
    audit_sinks: AuditSinkRegistry = attrs.field(factory=AuditSinkRegistry)

    def get(self, kind: str) -> Registry[Any]:
        registry: Registry[Any] = getattr(self, kind)
        return registry


class PluginHost:
    """A typed facade over a pluggy ``PluginManager`` for the ``aureus`` hooks.

    ``load_entry_points=False`` gives an empty host for tests, where plugins
    are added with :meth:`register`.
    """

    def __init__(
        self,
        *,
        load_entry_points: bool = True,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self._load_entry_points = load_entry_points
        self._environ = os.environ if environ is None else environ
        self._lock = threading.RLock()
        self._loaded = False
        self._infos: dict[str, PluginInfo] = {}
        self._registries: _Registries | None = None
        self._collected: set[str] = set()

    # -- loading -------------------------------------------------------------

    def load(self) -> None:
        """Discover and import plugins (once; later calls do nothing)."""
        with self._lock:
            if self._loaded:
                return
            if self._load_entry_points:
                self._load_from_entry_points()
            self._check_pending()
            self._loaded = True

    def _load_from_entry_points(self) -> None:
        allow = _split_env(self._environ.get(LOAD_ENV))
        deny = _split_env(self._environ.get(DISABLE_ENV))
        eps = list(metadata.entry_points(group=hookspecs.ENTRY_POINT_GROUP))
        names = {ep.name for ep in eps}
        for listed, var in ((allow, LOAD_ENV), (deny, DISABLE_ENV)):
            unknown = [n for n in listed if n not in names]
            if unknown:
                raise PluginError(
                    f"{var} names {', '.join(map(repr, unknown))}, which no installed plugin "
                    f"provides (installed: {', '.join(sorted(names)) or 'none'})"
                )
        for name in deny:
            self.pm.set_blocked(name)
        seen: set[str] = set()
        facts: dict[int, _DistFacts] = {}
        for ep in sorted(eps, key=lambda e: e.name):
            if ep.name in seen:
                continue  # the same distribution visible twice on sys.path
            seen.add(ep.name)
            dist = getattr(ep, "dist", None)
            known = None
            if dist is not None:
                known = facts.get(id(dist))
                if known is None:
                    known = facts[id(dist)] = _DistFacts(dist)
            base: dict[str, Any] = {
                "name": ep.name,
                "module": ep.value,
                "distribution": known.name if known is not None else None,
                "version": known.version if known is not None else None,
            }
            if ep.name in deny or (allow and ep.name not in allow):
                why = f"blocked by {DISABLE_ENV}" if ep.name in deny else f"not in {LOAD_ENV}"
                self._infos[ep.name] = PluginInfo(status=PluginStatus.DISABLED, reason=why, **base)
                continue
            missing = _missing_requirements(known, list(getattr(ep, "extras", []) or []))
            if missing and dist is not None and known is not None:
                self._infos[ep.name] = PluginInfo(
                    status=PluginStatus.UNAVAILABLE,
                    reason=f"not installed: {', '.join(missing)} (needed by "
                    f"{known.name}[{','.join(ep.extras)}])",
                    install_hint=install_line(dist, list(ep.extras)),
                    **base,
                )
                continue
            try:
                plugin = ep.load()
            except Exception as error:  # a missing SDK or a bug must not stop the others
                self._infos[ep.name] = PluginInfo(
                    status=PluginStatus.UNAVAILABLE,
                    reason=f"{type(error).__name__}: {error}",
                    install_hint=_install_hint(ep, error),
                    **base,
                )
                continue
            self.pm.register(plugin, name=ep.name)
            self._infos[ep.name] = PluginInfo(status=PluginStatus.LOADED, **base)

    def _check_pending(self) -> None:
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as error:
            specs = [name for _, name in _KINDS]
            bad = [
                (impl.plugin_name, hook_name)
                for hook_name, caller in vars(self.pm.hook).items()
                if isinstance(caller, pluggy.HookCaller) and not caller.has_spec()
                for impl in caller.get_hookimpls()
                if not impl.optionalhook
            ]
            details = "; ".join(
                f"plugin {plugin!r} implements unknown hook {hook!r}"
                + (
                    f" (did you mean {close[0]!r}?)"
                    if (close := difflib.get_close_matches(hook, specs, 1))
                    else ""
                )
                for plugin, hook in bad
            ) or str(error)
            raise PluginError(
                f"{details}; fix the hook name or disable the plugin with {DISABLE_ENV}"
            ) from None

    def register(self, plugin: object, name: str) -> None:
        """Register a plugin object directly (tests, embedding applications)."""
        with self._lock:
            self.load()
            self.pm.register(plugin, name=name)
            self._check_pending()
            self._infos[name] = PluginInfo(
                name=name,
                module=getattr(plugin, "__name__", type(plugin).__name__),
                distribution=None,
                version=None,
                status=PluginStatus.LOADED,
            )
            self._registries = None

    def unregister(self, name: str) -> None:
        """Remove a plugin registered with :meth:`register`."""
        with self._lock:
            self.pm.unregister(name=name)
            self._infos.pop(name, None)
            self._registries = None

    # -- registrations -------------------------------------------------------

    def _collect(self) -> _Registries:
        """Every kind of registration (``aureus plugins`` shows them all)."""
        registries = _Registries()
        for kind, _ in _KINDS:
            registries = self._collect_kind(kind)
        return registries

    def _collect_kind(self, kind: str) -> _Registries:
        """Call the plugins' registration hook for one ``kind`` (once); return the registries."""
        with self._lock:
            if self._registries is not None and kind in self._collected:
                return self._registries
            self.load()
            if self._registries is None:
                self._registries = _Registries()
                self._collected = set()
            registries = self._registries
            hook_name = dict(_KINDS)[kind]
            registry = registries.get(kind)
            caller: pluggy.HookCaller = getattr(self.pm.hook, hook_name)
            # Call each implementation on its own so the registry knows
            # which plugin registers what, and a failing plugin can be set aside.
            for impl in reversed(caller.get_hookimpls()):
                name = impl.plugin_name
                if self._infos.get(name, None) is not None and (
                    self._infos[name].status is not PluginStatus.LOADED
                ):
                    continue
                registry._calling(name)
                before = set(registry.by_plugin(name))
                try:
                    impl.function(**{arg: registry for arg in impl.argnames})
                except DuplicateRegistration:
                    raise
                except Exception as error:
                    for added in set(registry.by_plugin(name)) - before:
                        registry._entries.pop(added)
                    self._mark_failed(name, f"{hook_name} raised {type(error).__name__}: {error}")
            self._collected.add(kind)
            for done in self._collected:
                collected = registries.get(done)
                for info_name, info in list(self._infos.items()):
                    if info.status is not PluginStatus.LOADED:
                        for gone in collected.by_plugin(info_name):
                            collected._entries.pop(gone)
            self._record_registrations(registries)
            return registries

    def _mark_failed(self, name: str, reason: str) -> None:
        info = self._infos.get(name)
        if info is None:
            info = PluginInfo(
                name=name, module=name, distribution=None, version=None, status=PluginStatus.LOADED
            )
        self._infos[name] = attrs.evolve(info, status=PluginStatus.UNAVAILABLE, reason=reason)

    def _record_registrations(self, registries: _Registries) -> None:
        for name, info in list(self._infos.items()):
            registers = {
                kind: tuple(registries.get(kind).by_plugin(name))
                for kind, _ in _KINDS
                if kind in self._collected and registries.get(kind).by_plugin(name)
            }
            descriptions = {
                kind: {
                    entry: registries.get(kind).get(entry).description
                    for entry in names
                    if registries.get(kind).get(entry).description
                }
                for kind, names in registers.items()
            }
            self._infos[name] = attrs.evolve(
                info,
                registers=registers,
                descriptions={kind: named for kind, named in descriptions.items() if named},
            )

    @property
    def key_providers(self) -> KeyProviderRegistry:
        """URI schemes to key-provider factories."""
        return self._collect_kind("key_providers").key_providers

    @property
    def credential_sources(self) -> CredentialSourceRegistry:
        """Names to credential-source factories."""
        return self._collect_kind("credential_sources").credential_sources

    @property
    def cache_backends(self) -> CacheBackendRegistry:
        """Names to cache-backend factories."""
        return self._collect_kind("cache_backends").cache_backends

    @property
    def audit_sinks(self) -> AuditSinkRegistry:
        """Names to audit-sink factories."""
        return self._collect_kind("audit_sinks").audit_sinks

    def plugins(self) -> list[PluginInfo]:
        """Every plugin known to the host, loaded or not, sorted by name."""
        self._collect()
        return sorted(self._infos.values(), key=lambda info: info.name)


_host: PluginHost | None = None
_host_lock = threading.Lock()


def get_host() -> PluginHost:
    """Return the process-wide plugin host, creating it on first use."""
    global _host
    with _host_lock:
        if _host is None:
            _host = PluginHost()
        return _host


def reset_host(host: PluginHost | None = None) -> PluginHost | None:
    """Replace the process-wide host (tests); return the previous one."""
    global _host
    with _host_lock:
        previous, _host = _host, host
        return previous
