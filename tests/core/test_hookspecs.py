"""Each hook has a test named after it, and is documented with its exact signature."""

import inspect
import re
from pathlib import Path

import pytest

from aureus_core import CacheEntry, KeyProviderBase, hookimpl, hookspecs
from aureus_core.plugins import PluginHost

ROOT = Path(__file__).resolve().parents[2]
HOOKS = sorted(
    name for name, fn in vars(hookspecs).items() if name.startswith("aureus_") and callable(fn)
)


def _signature(name: str) -> str:
    sig = inspect.signature(getattr(hookspecs, name))
    params = ", ".join(f"{p.name}: {p.annotation}" for p in sig.parameters.values())
    return f"def {name}({params}) -> {sig.return_annotation}"


def test_there_are_four_registration_hooks():
    assert HOOKS == [
        "aureus_register_audit_sinks",
        "aureus_register_cache_backends",
        "aureus_register_credential_sources",
        "aureus_register_key_providers",
    ]


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented_with_its_signature(hook):
    docs = (ROOT / "docs" / "plugins.md").read_text()
    assert _signature(hook) in docs, f"docs/plugins.md lacks `{_signature(hook)}`"


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_test_named_after_it(hook):
    sources = "\n".join(p.read_text() for p in (ROOT / "tests").rglob("test_*.py"))
    assert re.search(rf"def test_{hook}\b", sources), f"no test named test_{hook}"


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_fans_out(hook):
    caller = getattr(PluginHost(load_entry_points=False).pm.hook, hook)
    assert caller.spec is not None
    assert not caller.spec.opts.get("firstresult")
    assert "Fans out" in (getattr(hookspecs, hook).__doc__ or "")


class _Provider(KeyProviderBase):
    scheme = "hooktest"


def test_aureus_register_key_providers(aureus_host):
    class Plugin:
        @hookimpl
        def aureus_register_key_providers(self, registry):
            registry.register("hooktest", lambda settings: _Provider(), description="d")

    aureus_host.register(Plugin(), name="p")
    registration = aureus_host.key_providers.get("hooktest")
    assert registration.plugin == "p"
    assert isinstance(registration.factory(None), _Provider)


def test_aureus_register_credential_sources(aureus_host):
    class Plugin:
        @hookimpl
        def aureus_register_credential_sources(self, registry):
            registry.register("creds", dict)

    aureus_host.register(Plugin(), name="p")
    assert aureus_host.credential_sources.get("creds").factory is dict


def test_aureus_register_cache_backends(aureus_host):
    class Plugin:
        @hookimpl
        def aureus_register_cache_backends(self, registry):
            registry.register("c1", lambda options: {})
            registry.register("c2", lambda options: {})

    aureus_host.register(Plugin(), name="p")
    assert [r.name for r in aureus_host.cache_backends] == ["c1", "c2"]
    assert CacheEntry(material=bytearray(b"k"), created_at=0.0).messages == 0


def test_aureus_register_audit_sinks(aureus_host):
    class First:
        @hookimpl
        def aureus_register_audit_sinks(self, registry):
            registry.register("sink-a", lambda options: None)

    class Second:
        @hookimpl
        def aureus_register_audit_sinks(self, registry):
            registry.register("sink-b", lambda options: None)

    aureus_host.register(First(), name="first")
    aureus_host.register(Second(), name="second")
    assert {r.name: r.plugin for r in aureus_host.audit_sinks} == {
        "sink-a": "first",
        "sink-b": "second",
    }
