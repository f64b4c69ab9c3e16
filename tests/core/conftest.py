from __future__ import annotations

import importlib
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from aureus_core.cli import main

FakeDist = Callable[..., str]


@pytest.fixture
def fake_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDist]:
    """Install a throwaway distribution with ``aureus`` entry points onto sys.path.

    Returns the entry-point name; the plugin module's source is ``source``.
    Real ``importlib.metadata`` discovery, not ``pm.register``.
    """
    monkeypatch.syspath_prepend(str(tmp_path))
    created: list[str] = []

    def make(
        source: str,
        *,
        ep_name: str | None = None,
        extras: str = "",
        dist: str | None = None,
        requires: tuple[str, ...] = (),
    ) -> str:
        tag = uuid.uuid4().hex[:8]
        module = f"fakeplug_{tag}"
        ep_name = ep_name or f"fake-{tag}"
        dist = dist or f"fake-dist-{tag}"
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
        info = tmp_path / f"{dist.replace('-', '_')}-1.2.3.dist-info"
        info.mkdir()
        requirements = "".join(f"Requires-Dist: {r}\n" for r in requires)
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n{requirements}"
        )
        suffix = f" [{extras}]" if extras else ""
        (info / "entry_points.txt").write_text(f"[aureus]\n{ep_name} = {module}{suffix}\n")
        created.append(module)
        importlib.invalidate_caches()
        return ep_name

    yield make
    for module in created:
        sys.modules.pop(module, None)


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """Invoke the ``aureus`` CLI in-process on a keystore of its own in ``tmp_path``."""
    monkeypatch.setenv("AUREUS_KEYSTORE", str(tmp_path / "ks"))
    monkeypatch.delenv("AUREUS_CONFIG", raising=False)
    monkeypatch.delenv("AUREUS_KEYSTORE_PASSPHRASE", raising=False)
    monkeypatch.chdir(tmp_path)

    def invoke(*args: str, input: bytes | str | None = None) -> Result:
        return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)

    return invoke
