from __future__ import annotations

import sys
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from aureus_core.hookspecs import hookimpl
from aureus_core.interfaces import CacheBackend
from aureus_core.plugins import PluginHost
from aureus_core.registry import CacheBackendRegistry
from aureus_core.testing import FakeClock

pytest_plugins = ["pytester"]


def test_aureus_host_is_empty_and_takes_temporary_plugins(aureus_host: PluginHost):
    assert isinstance(aureus_host, PluginHost)
    assert aureus_host.plugins() == []
    assert len(aureus_host.cache_backends) == 0

    def factory(options: Mapping[str, Any]) -> CacheBackend:
        raise AssertionError("never called")

    class Plugin:
        @hookimpl
        def aureus_register_cache_backends(self, registry: CacheBackendRegistry) -> None:
            registry.register("temp", factory)

    aureus_host.register(Plugin(), name="temp-plugin")
    try:
        assert aureus_host.cache_backends.get("temp").plugin == "temp-plugin"
    finally:
        aureus_host.unregister("temp-plugin")
    assert "temp" not in aureus_host.cache_backends


def test_aureus_host_is_fresh_for_each_test(aureus_host: PluginHost):
    assert aureus_host.plugins() == []


def test_aureus_clock(aureus_clock: FakeClock):
    start = aureus_clock.now()
    assert start.tzinfo is not None
    aureus_clock.advance(timedelta(minutes=5))
    assert aureus_clock() - start == timedelta(minutes=5)
    assert aureus_clock.now() != datetime.now(timezone.utc)


def test_the_pytest11_entry_point_gives_other_projects_the_fixtures(pytester: pytest.Pytester):
    pytester.makepyfile(
        """
        def test_fixtures(aureus_host, aureus_clock):
            assert aureus_host.plugins() == []
            assert aureus_clock.monotonic() == 0.0
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_importing_aureus_core_does_not_import_pytest(pytester: pytest.Pytester):
    result = pytester.run(
        sys.executable,
        "-c",
        "import sys, aureus_core, aureus_core.interfaces; "
        "print('pytest' in sys.modules, 'aureus_core.testing' in sys.modules)",
    )
    assert result.ret == 0
    assert result.outlines[-1] == "False False"
