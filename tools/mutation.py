"""Mutation testing of the security-critical modules with mutmut, one module group at a time.

mutmut names a mutant after its file's path (``plugins/aureus_local/keystore.py`` would become
``plugins.aureus_local.keystore``) while the tests import the flat package
(``aureus_local.keystore``), so every run happens in a staging folder where the core and each
first-party plugin sit side by side at the top, as they are on ``sys.path`` once installed.
mutmut first runs the group's tests once to record which tests reach which function, then runs
each mutant against only those tests.

Usage: ``python tools/mutation.py [GROUP ...] [--max-children N]`` (no group: every group).
Prints the score per group and each surviving mutant with file:line and the changed line, and
writes ``.mutation/report.json``.  Known equivalent mutants (``EQUIVALENT`` below) are counted
apart, not as survivors.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGING = ROOT / ".mutation"
PACKAGES = ("aureus_core", *(p.name for p in sorted((ROOT / "plugins").glob("aureus_*"))))


@dataclass(frozen=True)
class Group:
    """Source files to mutate and the test paths that reach them."""

    files: tuple[str, ...]
    tests: tuple[str, ...]
    # pytest -k / -m filters, for groups whose test folders hold slow tests that never reach them.
    deselect: tuple[str, ...] = field(default=())


# Paths are as in the repository; tests run with the repository's pytest settings.
GROUPS: dict[str, Group] = {
    "envelope": Group(
        files=(
            "aureus_core/envelope/header.py",
            "aureus_core/envelope/keys.py",
            "aureus_core/envelope/frames.py",
            "aureus_core/envelope/message.py",
        ),
        tests=(
            "tests/core/envelope/test_roundtrip.py",
            "tests/core/envelope/test_tampering.py",
            "tests/core/envelope/test_forgery.py",
            "tests/core/envelope/test_suites.py",
            "tests/core/envelope/test_interop.py",
        ),
    ),
    "signature": Group(
        files=("aureus_core/signature.py", "plugins/aureus_local/signing.py"),
        tests=("tests/plugins/aureus_local/test_local_signing.py", "tests/core/test_stack.py"),
    ),
    "cache": Group(files=("aureus_core/cache.py",), tests=("tests/core/test_cache.py",)),
    "audit": Group(
        files=(
            "plugins/aureus_builtin/audit_chain.py",
            "plugins/aureus_builtin/audit_sinks.py",
        ),
        tests=(
            "tests/plugins/aureus_builtin/test_audit_chain.py",
            "tests/plugins/aureus_builtin/test_audit_sinks.py",
            "tests/plugins/aureus_builtin/test_jsonl_sink.py",
        ),
    ),
    "local": Group(
        files=(
            "plugins/aureus_local/keystore.py",
            "plugins/aureus_local/document.py",
            "plugins/aureus_local/sealing.py",
            "plugins/aureus_local/wrapping.py",
            "plugins/aureus_local/generations.py",
            "plugins/aureus_local/macs.py",
            "plugins/aureus_local/atomic.py",
        ),
        tests=("tests/plugins/aureus_local",),
    ),
    "rotation": Group(
        files=("aureus_core/rotation.py",),
        tests=("tests/core/test_rotation.py",),
    ),
    "context": Group(
        files=("aureus_core/context.py", "aureus_core/keyref.py"),
        tests=("tests/core/test_context.py", "tests/core/test_keyref.py"),
    ),
}

# Mutants that cannot change behaviour, by file and the mutated line as it reads after the
# mutation (whitespace-stripped).  docs/testing.md gives the reason for each.
EQUIVALENT: dict[str, set[str]] = {}


def staged_path(repo_path: str) -> str:
    """Where a repository file sits in the staging folder (plugins are lifted to the top)."""
    return repo_path.removeprefix("plugins/")


def repo_path(staged: str) -> str:
    """The repository path of a staged source file."""
    top = staged.split("/", 1)[0]
    return staged if top == "aureus_core" else f"plugins/{staged}"


def stage(name: str, group: Group) -> Path:
    """Build a fresh staging folder for one group: flat packages, tests, mutmut config."""
    work = STAGING / name
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "aureus_core", work / "aureus_core", ignore=ignore)
    for package in PACKAGES[1:]:
        shutil.copytree(ROOT / "plugins" / package, work / package, ignore=ignore)
    shutil.copytree(ROOT / "tests", work / "tests", ignore=ignore)
    pytest_options = _pytest_options()
    lines = [
        "[tool.mutmut]",
        f"source_paths = {json.dumps(list(PACKAGES))}",
        f"only_mutate = {json.dumps([staged_path(f) for f in group.files])}",
        f"pytest_add_cli_args_test_selection = {json.dumps(list(group.tests))}",
        # Same options the suite runs with, without the cache provider and leak scan noise.
        'pytest_add_cli_args = ["-p", "no:randomly", "-q", "-x"]',
        "",
        "[tool.pytest.ini_options]",
        *pytest_options,
    ]
    (work / "pyproject.toml").write_text("\n".join(lines) + "\n")
    return work


def _pytest_options() -> list[str]:
    """The repository's [tool.pytest.ini_options] table body, copied verbatim."""
    text = (ROOT / "pyproject.toml").read_text()
    match = re.search(r"^\[tool\.pytest\.ini_options\]\n(.*?)(?=^\[)", text, re.S | re.M)
    if match is None:
        raise SystemExit("pyproject.toml has no [tool.pytest.ini_options] table")
    return match.group(1).rstrip().splitlines()


def mutmut(work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the mutmut CLI in the staging folder."""
    return subprocess.run(
        [sys.executable, "-m", "mutmut", *args],
        cwd=work,
        capture_output=True,
        text=True,
        check=False,
    )


@dataclass
class Survivor:
    """One mutant no test killed."""

    name: str
    path: str
    line: int
    before: str
    after: str

    @property
    def equivalent(self) -> bool:
        """Whether docs/testing.md lists this mutant as unable to change behaviour."""
        return self.after.strip() in EQUIVALENT.get(self.path, set())


def locate(work: Path, name: str) -> Survivor:
    """Find a survivor's file, line and change from ``mutmut show``."""
    shown = mutmut(work, "show", name).stdout
    diff = [line for line in shown.splitlines() if line]
    staged = next(
        (line[4:].split("\t")[0] for line in diff if line.startswith("--- ")),
        "",
    ).removeprefix("a/")
    removed = [line[1:] for line in diff if line.startswith("-") and not line.startswith("---")]
    added = [line[1:] for line in diff if line.startswith("+") and not line.startswith("+++")]
    before = removed[0] if removed else ""
    after = added[0] if added else "(line deleted)"
    path = repo_path(staged) if staged else "?"
    line_no = 0
    source = ROOT / path
    if before and source.exists():
        lines = source.read_text().splitlines()
        # The first matching line inside the mutated function's span.
        func = name.rsplit(".", 1)[-1].split("__mutmut_")[0]
        func = func.removeprefix("x_").split("ǁ")[-1]
        start = next(
            (i for i, text in enumerate(lines) if re.match(rf"\s*(async\s+)?def {func}\(", text)),
            0,
        )
        close = difflib.get_close_matches(before, lines[start:], n=1, cutoff=0.99)
        if close:
            line_no = lines.index(close[0], start) + 1
    return Survivor(name, path, line_no, before.strip(), after.strip())


def run_group(name: str, group: Group, max_children: int) -> dict[str, object]:
    """Stage, run mutmut and collect the results of one group."""
    work = stage(name, group)
    started = time.monotonic()
    run = mutmut(work, "run", "--max-children", str(max_children))
    elapsed = time.monotonic() - started
    (work / "mutmut-run.log").write_text(run.stdout + run.stderr)
    results = mutmut(work, "results", "--all", "true").stdout
    status: dict[str, str] = {}
    for line in results.splitlines():
        key, _, verdict = line.strip().rpartition(": ")
        if key:
            status[key] = verdict
    if not status:
        sys.stderr.write(run.stdout[-4000:] + run.stderr[-4000:])
        raise SystemExit(f"{name}: mutmut produced no results (log: {work / 'mutmut-run.log'})")
    survivors = [locate(work, key) for key, verdict in status.items() if verdict == "survived"]
    equivalent = [s for s in survivors if s.equivalent]
    real = [s for s in survivors if not s.equivalent]
    counted = {k: v for k, v in status.items() if v in ("killed", "survived", "timeout")}
    killed = sum(1 for v in counted.values() if v in ("killed", "timeout"))
    tested = len(counted) - len(equivalent)
    other = {v for v in status.values() if v not in ("killed", "survived", "timeout")}
    return {
        "group": name,
        "seconds": round(elapsed),
        "mutants": len(status),
        "killed": killed,
        "tested": tested,
        "equivalent": len(equivalent),
        "untested": {v: sum(1 for x in status.values() if x == v) for v in sorted(other)},
        "score": round(100 * killed / tested, 1) if tested else 100.0,
        "survivors": [s.__dict__ for s in real],
    }


def main() -> None:
    """Run the chosen groups and print scores and survivors."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("groups", nargs="*", metavar="GROUP", help=", ".join(GROUPS))
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    chosen = args.groups or list(GROUPS)
    unknown = sorted(set(chosen) - set(GROUPS))
    if unknown:
        parser.error(f"unknown group {', '.join(unknown)}: choose from {', '.join(GROUPS)}")
    reports = []
    for name in chosen:
        print(f"== {name}: {', '.join(GROUPS[name].files)}", flush=True)
        report = run_group(name, GROUPS[name], args.max_children)
        reports.append(report)
        print(
            f"   {report['score']} % killed ({report['killed']}/{report['tested']}), "
            f"{report['equivalent']} equivalent, not run: {report['untested']}, "
            f"{report['seconds']} s",
            flush=True,
        )
        for s in report["survivors"]:  # type: ignore[attr-defined]
            print(f"   survived {s['path']}:{s['line']}: {s['before']!r} -> {s['after']!r}")
    STAGING.mkdir(exist_ok=True)
    (STAGING / "report.json").write_text(json.dumps(reports, indent=2) + "\n")


if __name__ == "__main__":
    main()
