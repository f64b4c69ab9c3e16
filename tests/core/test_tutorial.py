"""docs/tutorial-provider.md works as written: its files, installed, pass the kit and run.

Every titled code block is written to its file in an empty directory; the
console steps run in a fresh virtual environment with its own pip that sees
this Aureus (a ``.pth`` file points at the running interpreter's ``sys.path``),
so ``pip install -e .`` installs only the tutorial's package.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "docs" / "tutorial-provider.md"
BLOCK = re.compile(r'^```(\w+)(?: title="([^"]+)")?\n(.*?)^```', re.S | re.M)
NOT_RUN = (
    "mkdir ",
    "python3 -m venv",
    "pip install 'aureus-kms",
    "pip install -e '/path/to/aureus",
    "pip install build",
    "python -m build",
    "twine ",
)
"""Console lines the test does itself (directory, venv, Aureus) or must not run (publishing)."""


def _blocks() -> list[tuple[str, str | None, str]]:
    return [(m[1], m[2], m[3]) for m in BLOCK.finditer(TUTORIAL.read_text())]


def _commands() -> list[str]:
    lines = [
        line[2:]
        for language, _, body in _blocks()
        if language == "console"
        for line in body.splitlines()
        if line.startswith("$ ")
    ]
    return [line for line in lines if not line.startswith(NOT_RUN)]


def test_the_tutorial_names_its_steps() -> None:
    """The commands the test runs are the ones the page shows, in its order."""
    assert _commands() == ["pip install -e .", "aureus plugins", "pytest -q tests", "python use.py"]


def test_the_tutorial_runs_from_an_empty_directory(tmp_path: Path) -> None:
    project = tmp_path / "aureus-jsonkeys"
    project.mkdir()
    for _, title, body in _blocks():
        if title:
            target = project / title
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(body)
    environment = tmp_path / "venv"
    # Its own pip (from the bundled wheel, offline): a uv-made test venv has none.
    venv.EnvBuilder(with_pip=True).create(environment)
    python = environment / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # Everything this interpreter imports from beyond its own standard library.
    host = [
        entry
        for entry in sys.path
        if entry and Path(entry).is_dir() and not entry.startswith(sys.base_prefix)
    ]
    (Path(site) / "aureus-tutorial-host.pth").write_text("\n".join(host) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUREUS_", "PYTHON"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    run_as = {
        "pip": [str(python), "-m", "pip"],
        "aureus": [str(python), "-c", "from aureus_core.cli import main; main()"],
        "pytest": [str(python), "-m", "pytest", "-p", "no:cacheprovider"],
        "python": [str(python)],
    }
    outputs: dict[str, str] = {}
    for command in _commands():
        program, *arguments = command.split()
        done = subprocess.run(
            [*run_as[program], *arguments], cwd=project, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, f"$ {command}\n{done.stdout}\n{done.stderr}"
        outputs[command] = done.stdout
    listing = outputs["aureus plugins"].splitlines()
    shown = next(b for language, _, b in _blocks() if language == "text").splitlines()
    assert shown[0] in listing, outputs["aureus plugins"]
    assert shown[1] == listing[listing.index(shown[0]) + 1]
    assert re.search(r"\d+ passed, \d+ skipped", outputs["pytest -q tests"])
    assert " failed" not in outputs["pytest -q tests"]
    assert outputs["python use.py"].strip() == "round trip OK"
    assert (project / "orders-keys.json").stat().st_mode & 0o077 == 0
