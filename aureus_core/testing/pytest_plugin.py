"""The pytest plugin of the conformance kit (entry point ``pytest11``: ``aureus``).

Fixtures:

- ``aureus_host``: a fresh, empty :class:`~aureus_core.plugins.PluginHost`
  for temporary plugins (``aureus_host.register(obj, name=...)``, then
  ``aureus_host.unregister(name)`` in ``finally``);
- ``aureus_clock``: a :class:`~aureus_core.testing.FakeClock`.

It is loaded into every pytest run where Aureus is installed, so it imports
nothing heavy.
"""

from __future__ import annotations

import pytest

from aureus_core.plugins import PluginHost
from aureus_core.testing.clock import FakeClock


@pytest.fixture
def aureus_host() -> PluginHost:
    """A plugin host that loads no entry points: register test plugins on it."""
    return PluginHost(load_entry_points=False)


@pytest.fixture
def aureus_clock() -> FakeClock:
    """A clock that moves only when the test advances it."""
    return FakeClock()
