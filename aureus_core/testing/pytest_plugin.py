"""The pytest plugin of the conformance kit (entry point ``pytest11``: ``aureus``).

Fixtures:

- ``aureus_host``: a fresh, empty :class:`~aureus_core.plugins.PluginHost`
  for temporary plugins (``aureus_host.register(obj, name=...)``, then
  ``aureus_host.unregister(name)`` in ``finally``);
- ``aureus_clock``: a :class:`~aureus_core.testing.FakeClock`.

Opt-in: ``aureus_leak_scan = true`` in the pytest configuration (or
``-o aureus_leak_scan=true``) runs the secret-leak scan of
:mod:`aureus_core.testing.leak_scan` over the whole session, and adds the
``aureus_leak_canaries`` fixture.

It is loaded into every pytest run where Aureus is installed, so it imports
nothing heavy.
"""

from __future__ import annotations

import pytest

from aureus_core.plugins import PluginHost
from aureus_core.testing.clock import FakeClock

LEAK_SCAN_INI = "aureus_leak_scan"


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register the ``aureus_leak_scan`` ini option."""
    parser.addini(
        LEAK_SCAN_INI,
        type="bool",
        default=False,
        help="aureus: plant canary secrets and fail the run if any shows up in logs, "
        "audit events, spans, errors or test reports",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Start the secret-leak scan if the configuration asks for it."""
    if config.getini(LEAK_SCAN_INI):
        from .leak_scan import LeakScan

        config.pluginmanager.register(LeakScan(), "aureus-leak-scan")


@pytest.fixture
def aureus_host() -> PluginHost:
    """A plugin host that loads no entry points: register test plugins on it."""
    return PluginHost(load_entry_points=False)


@pytest.fixture
def aureus_clock() -> FakeClock:
    """A clock that moves only when the test advances it."""
    return FakeClock()
