"""The plugin guide (plugins.md, plugin-providers.md, plugin-kit.md) states what the code does."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from aureus_core.cache import POLICY_OPTIONS
from aureus_core.config import is_path_option
from aureus_core.interfaces import Capability
from aureus_core.reliability import BREAKER_OPTION
from aureus_core.testing.provider_contract import CAPABILITY_METHODS

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
GUIDE = (DOCS / "plugins.md").read_text()
PROVIDERS = (DOCS / "plugin-providers.md").read_text()
KIT = (DOCS / "plugin-kit.md").read_text()


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def _table_row(text: str, first_cell: str) -> str:
    (row,) = [line for line in text.splitlines() if line.startswith(f"| {first_cell} |")]
    return row


def test_the_reserved_names_are_the_ones_the_stack_takes() -> None:
    provider = _table_row(GUIDE, "key provider | `[providers.<scheme>]`")
    assert "`credentials`" in provider
    assert f"`{BREAKER_OPTION}`" in provider
    cache = _table_row(GUIDE, "cache backend | `[cache]`")
    named = set(re.findall(r"`([a-z_]+)`", cache.split("|")[3]))
    assert named == {"backend", *POLICY_OPTIONS}


def test_the_path_rule_is_the_loaders() -> None:
    for name in ("keystore", "path", "file", "token_file", "ca_file", "socket_path", "state_dir"):
        assert is_path_option(name), name
        assert f"`{name}`" in GUIDE, name
    for name in ("profile", "region", "filename", "paths"):
        assert not is_path_option(name), name


def test_every_capability_is_in_the_table_with_its_methods() -> None:
    for capability in Capability:
        row = _table_row(PROVIDERS, f"`{capability.value}`")
        for method in CAPABILITY_METHODS.get(capability, ()):
            assert f"`{method}`" in row, (capability, method)


def test_every_capability_member_has_a_docstring() -> None:
    source = (ROOT / "aureus_core" / "interfaces.py").read_text()
    (cls,) = [
        node
        for node in ast.parse(source).body
        if isinstance(node, ast.ClassDef) and node.name == "Capability"
    ]
    body = cls.body
    for index, node in enumerate(body):
        if isinstance(node, ast.Assign):
            (target,) = node.targets
            assert isinstance(target, ast.Name)
            following = body[index + 1] if index + 1 < len(body) else None
            assert isinstance(following, ast.Expr), f"Capability.{target.id} has no docstring"
            assert isinstance(following.value, ast.Constant)
            assert isinstance(following.value.value, str)


def test_the_guides_self_contained_examples_run(tmp_path: Path) -> None:
    blocks = [b for b in _python_blocks(GUIDE) if "from ." not in b]
    assert len(blocks) >= 2
    for block in blocks:
        done = subprocess.run(
            [sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True
        )
        assert done.returncode == 0, f"{block}\n{done.stderr}"


def test_the_sqlite_sink_example_passes_the_audit_contract(tmp_path: Path) -> None:
    (example,) = [b for b in _python_blocks(KIT) if "class TestSqliteAuditSink" in b]
    (tmp_path / "test_sqlite_sink.py").write_text(example)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_sqlite_sink.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"\b7 passed\b", done.stdout), done.stdout
    assert "skipped" not in done.stdout


def test_no_invented_names_in_the_plugin_docs() -> None:
    for page in ("plugins.md", "plugin-providers.md", "plugin-kit.md", "tutorial-provider.md"):
        text = (DOCS / page).read_text()
        for invented in ("for_tests", "AcmeProvider", "aureus_acme"):
            assert invented not in text, (page, invented)
    readme = (DOCS / "examples" / "aureus-example-plugin" / "README.md").read_text()
    example = DOCS / "examples" / "aureus-example-plugin"
    lines = sum(len(p.read_text().splitlines()) for p in example.rglob("*.py"))
    claimed = re.search(r"about (\d+) lines", readme)
    assert claimed is not None
    assert abs(int(claimed[1]) - lines) <= 20, (claimed[1], lines)
