"""An independent check of the mutation scores: a seeded sample of cosmic-ray's mutants per module.

mutmut (``tools/mutation.py``) measures the security-critical modules; this script checks them
again with a second tool whose operators differ: cosmic-ray replaces numbers, binary, unary and
comparison operators, swaps ``break`` and ``continue``, empties ``for`` loops, removes
decorators, replaces the exceptions an ``except`` catches, and turns ``True``, ``False``,
``and``, ``or`` and ``not`` around.  For each module it lists every mutant cosmic-ray can make
(``cosmic-ray init``), runs a seeded random sample of them (``cosmic-ray exec``, one at a
time, each with a timeout) against the module's tests, and prints killed / survived and each
survivor with file:line, operator and diff.

The tests are those of the module's group in ``tools/mutation.py`` (``GROUPS``), one file after
another with the files that test the module most directly first, so that a killed mutant
stops early (``pytest -x``).  The run happens in ``.crosscheck/stage``, a copy of the tree
with the first-party plugins lifted to the top as they are once installed (as in
``tools/mutation.py``): cosmic-ray mutates the copy in place, never the repository.

Usage: ``python tools/crosscheck.py [MODULE ...] [--sample N] [--seed S]`` (no module: every
module; a module is its repository path or its file name).  ``--survivors`` runs the last run's
survivors again against the current tests, the group's test files as listed now (refused
once the module itself changed: cosmic-ray names a mutant by operator and occurrence, so run
the module again in full); ``--report-only`` prints the last run again.
Results: ``.crosscheck/<name>.json``; cosmic-ray's own session, ``.crosscheck/<name>.sqlite``,
works with ``cr-report`` and ``cr-html``.  Needs ``pip install cosmic-ray==8.7.0``.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import random
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.mutation import GROUPS, PACKAGES, _pytest_options, staged_path  # noqa: E402

WORK = ROOT / ".crosscheck"
STAGE = WORK / "stage"
DEFAULT_SAMPLE = 150
DEFAULT_SEED = 20261204


@dataclass(frozen=True)
class Target:
    """A module to mutate, the mutation group whose tests it runs, and the tests to run first."""

    group: str
    first: tuple[str, ...] = ()


TARGETS: dict[str, Target] = {
    "aureus_core/envelope/header.py": Target(
        "envelope",
        ("tests/core/envelope/test_parse_limits.py", "tests/core/envelope/test_tampering.py"),
    ),
    "aureus_core/envelope/message.py": Target(
        "envelope",
        ("tests/core/envelope/test_roundtrip.py", "tests/core/envelope/test_parse_limits.py"),
    ),
    "aureus_core/envelope/keys.py": Target(
        "envelope",
        ("tests/core/envelope/test_hkdf.py", "tests/core/envelope/test_suites.py"),
    ),
    "aureus_core/envelope/frames.py": Target(
        "envelope",
        ("tests/core/envelope/test_roundtrip.py", "tests/core/envelope/test_tampering.py"),
    ),
    "aureus_core/cache.py": Target("cache", ("tests/core/test_cache.py",)),
    "aureus_core/context.py": Target("context", ("tests/core/test_context.py",)),
    "aureus_core/keyref.py": Target("context", ("tests/core/test_keyref.py",)),
    "aureus_core/rotation.py": Target("rotation"),
    "aureus_core/audit/chain.py": Target("audit", ("tests/core/test_audit_chain.py",)),
    "plugins/aureus_local/wrapping.py": Target(
        "local-crypto",
        (
            "tests/plugins/aureus_local/test_local_wrapping.py",
            "tests/plugins/aureus_local/test_local_keys.py",
        ),
    ),
    "plugins/aureus_local/sealing.py": Target(
        "local-crypto",
        (
            "tests/plugins/aureus_local/test_local_storage.py",
            "tests/plugins/aureus_local/test_local_passphrase.py",
        ),
    ),
    "plugins/aureus_local/generations.py": Target(
        "local-state", ("tests/plugins/aureus_local/test_local_rollback.py",)
    ),
    "plugins/aureus_local/macs.py": Target(
        "local-crypto", ("tests/plugins/aureus_local/test_local_macs.py",)
    ),
    "plugins/aureus_local/keystore.py": Target(
        "local-store",
        (
            "tests/plugins/aureus_local/test_local_storage.py",
            "tests/plugins/aureus_local/test_local_rollback.py",
            "tests/plugins/aureus_local/test_local_wrap_limit.py",
        ),
    ),
    "plugins/aureus_local/document.py": Target(
        "local-store", ("tests/plugins/aureus_local/test_local_lifecycle.py",)
    ),
    "plugins/aureus_local/provider.py": Target(
        "local-provider",
        (
            "tests/plugins/aureus_local/test_local_keys.py",
            "tests/plugins/aureus_local/test_local_signing.py",
        ),
    ),
    "aureus_core/signature.py": Target("signature", ("tests/core/test_signature_record.py",)),
    "plugins/aureus_local/signing.py": Target(
        "signature", ("tests/plugins/aureus_local/test_local_signing.py",)
    ),
    "plugins/aureus_builtin/jsonl_sink.py": Target(
        "audit", ("tests/plugins/aureus_builtin/test_jsonl_sink.py",)
    ),
    "plugins/aureus_builtin/audit_sinks.py": Target(
        "audit", ("tests/plugins/aureus_builtin/test_audit_sinks.py",)
    ),
}


@dataclass(frozen=True)
class Equivalent:
    """Survivors that cannot change behaviour: a file, an operator, the mutated line, and why."""

    path: str
    """The repository path of the module, or ``*`` for any."""
    operator: str
    """A regular expression cosmic-ray's operator name matches (``search``)."""
    after: str
    """A regular expression the line after the mutation matches (``search``)."""
    reason: str
    where: str = ""
    """A regular expression the enclosing function or class name matches, to narrow ``after``."""


# Listed once, with the reason, in docs/testing.md ("Independent check (cosmic-ray)").
EQUIVALENT: tuple[Equivalent, ...] = (
    Equivalent(
        "*",
        "ReplaceBinaryOperator_Mul_Div",
        r"^/,$|, /, ",
        "the keyword-only marker of a signature made positional-only: every caller passes "
        "those arguments by keyword, which both allow",
    ),
    Equivalent(
        "aureus_core/context.py",
        "ReplaceComparisonOperator_Eq_LtE",
        r"^if count <= 0:$",
        "the pair count is read as an unsigned 2-byte number: it is never below 0",
    ),
    Equivalent(
        "aureus_core/rotation.py",
        "ReplaceBinaryOperator_Add_BitOr",
        r"enumerate\(ordered\[: cap \| 1\]\)",
        "the loop may leave out the current version (index cap): when no older version is "
        "young, the target is the current version either way",
    ),
    Equivalent(
        "aureus_core/rotation.py",
        "RemoveDecorator",
        r"^$",
        "the members of a typing Protocol are never called (the stack implements them): "
        "the decorator shapes the type only",
        where=r"^(ConfiguredKeys|RotationScope)$",
    ),
    Equivalent(
        "plugins/aureus_local/wrapping.py",
        "ReplaceComparisonOperator_",
        r"^if len\(head\) \S+ _MEMO_MAX_HEAD:$",
        "the check only chooses between the memoised parse and the same parse without the "
        "memo (as in tools/mutation.py)",
    ),
    Equivalent(
        "plugins/aureus_local/wrapping.py",
        "NumberReplacer",
        r"^_parse_head_memo = functools\.lru_cache\(maxsize=\s*\d+\)\(_parse_head\)$",
        "the memo's size bounds its memory only: a parse that misses it is the same function",
    ),
    Equivalent(
        "aureus_core/keyref.py",
        "ReplaceComparisonOperator_Is_Eq",
        r"^if type\(uri\) == str:$",
        "a type equals only itself: == on type objects is identity",
    ),
    Equivalent(
        "aureus_core/envelope/message.py",
        "ReplaceComparisonOperator_Eq_GtE",
        r"^if number >= FINAL_FRAME_MARKER:$",
        "the marker is the largest 4-byte number, so >= is ==",
    ),
    Equivalent(
        "plugins/aureus_local/document.py",
        "ReplaceComparisonOperator_Eq_LtE",
        r"_KEY_FIELDS_V1 if layout <= 1 else",
        "layout is 1, 2 or 3: parse_header refuses any other format_version first",
    ),
    Equivalent(
        "plugins/aureus_local/provider.py",
        "ReplaceComparisonOperator_GtE_IsNot",
        r"^if self\._now\(\) is not job\.expires_at:$",
        "the sweep deletes expired jobs (and files that no longer parse) only: running it "
        "after a refusal that is not an expiry deletes nothing more",
    ),
    Equivalent(
        "plugins/aureus_local/provider.py",
        "ReplaceComparisonOperator_IsNot_NotEq",
        r"^if existing\.key_type != key_type:$",
        "KeyType members are singletons, so two of them are equal exactly when they are the "
        "same object",
    ),
    Equivalent(
        "plugins/aureus_local/provider.py",
        "AddNot",
        r"^if not version\.destroyed:$",
        "a raw keyring key has one version, its current one, which can be neither disabled, "
        "destroyed nor put below the minimum: the usability check never refuses it (as in "
        "tools/mutation.py)",
        where=r"public_key$",
    ),
    Equivalent(
        "plugins/aureus_local/signing.py",
        "ReplaceComparisonOperator_NotEq_IsNot",
        r"^if len\(signature\) is not ED25519_SIGNATURE_SIZE:$",
        "CPython keeps one object for each integer up to 256: a length of 64 is the constant's "
        "own object, and any other length differs from it either way",
    ),
    Equivalent(
        "plugins/aureus_local/signing.py",
        "ReplaceComparisonOperator_LtE_Lt",
        r"^if s < _P256_HALF_ORDER:$",
        "OpenSSL draws each nonce, so s is exactly (n - 1) / 2 with probability 2**-255 (as "
        "in tools/mutation.py)",
    ),
    Equivalent(
        "plugins/aureus_builtin/jsonl_sink.py",
        "ReplaceBinaryOperator_BitOr_",
        r"os\.O_CREAT \S+ os\.O_EXCL, FILE_MODE\)$",
        "the writer holds the log's lock and has just found the path absent (an empty "
        "leftover is removed first) or renamed it away: O_EXCL is defence in depth against a "
        "writer that ignores the lock",
    ),
    Equivalent(
        "plugins/aureus_builtin/jsonl_sink.py",
        "NumberReplacer",
        r"^tail = self\._tail_of\(records, decl\.index, size, -?\d+\)$",
        "the scan starts at the new file's first record, its file record, which sets the "
        "count of unsigned records to 0 whatever it started at",
        where=r"_state$",
    ),
)


# Test files that start processes (the CLI, kill -9, the official SDK): a mutant reaches
# them only if every faster file of its group passed.
SLOW_LAST = (
    "tests/plugins/aureus_local/test_local_cli.py",
    "tests/plugins/aureus_local/test_local_processes.py",
    "tests/plugins/aureus_local/test_raw_keyring_interop.py",
)


def test_files(target: Target) -> list[str]:
    """The group's test files, one by one: the target's own first, the slow ones last."""
    files: list[str] = list(target.first)
    for entry in GROUPS[target.group].tests:
        path = ROOT / entry
        found = sorted(path.rglob("test_*.py")) if path.is_dir() else [path]
        files += [p.relative_to(ROOT).as_posix() for p in found]
    files = list(dict.fromkeys(files))
    return [f for f in files if f not in SLOW_LAST] + [f for f in files if f in SLOW_LAST]


def test_command(target: Target) -> list[str]:
    """The pytest command one mutant runs (in the staging folder)."""
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:randomly"]
    deselect = GROUPS[target.group].deselect
    if deselect:
        command += ["-k", " and ".join(f"not {name}" for name in deselect)]
    return command + test_files(target)


def stage() -> None:
    """Copy the core, the plugins (at the top) and the tests into a fresh staging folder."""
    if STAGE.exists():
        shutil.rmtree(STAGE)
    STAGE.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in PACKAGES:
        source = ROOT / ("aureus_core" if package == "aureus_core" else f"plugins/{package}")
        shutil.copytree(source, STAGE / package, ignore=ignore)
    shutil.copytree(ROOT / "tests", STAGE / "tests", ignore=ignore)
    (STAGE / "pyproject.toml").write_text(
        "[tool.pytest.ini_options]\n" + "\n".join(_pytest_options()) + "\n"
    )


def source_digest(module: str) -> str:
    """SHA-256 of the module's source, to tell whether a sample still fits it."""
    return hashlib.sha256((ROOT / module).read_bytes()).hexdigest()


def name_of(module: str) -> str:
    """A file name for a module's session and results (``aureus_core-envelope-header``)."""
    return module.removesuffix(".py").replace("/", "-")


def environment() -> dict[str, str]:
    """The tests import the staged copy first, and never read a stale ``.pyc``."""
    return {**os.environ, "PYTHONPATH": str(STAGE), "PYTHONDONTWRITEBYTECODE": "1"}


def baseline(target: Target) -> float:
    """Run the module's tests once, unmutated; return the seconds they took."""
    started = time.monotonic()
    run = _run_staged(test_command(target))
    if run.returncode != 0:
        sys.stderr.write(run.stdout[-4000:] + run.stderr[-2000:])
        raise SystemExit(f"the {target.group} tests fail without a mutant: fix them first")
    return time.monotonic() - started


def write_config(module: str, target: Target, timeout: float) -> Path:
    """cosmic-ray's configuration for one module: the staged file, the tests, the timeout."""
    config = WORK / f"{name_of(module)}.toml"
    lines = [
        "[cosmic-ray]",
        f"module-path = {json.dumps(staged_path(module))}",
        f"timeout = {timeout:.0f}",
        "excluded-modules = []",
        f"test-command = {json.dumps(shlex.join(test_command(target)))}",
        "",
        "[cosmic-ray.distributor]",
        'name = "local"',
        "",
    ]
    config.write_text("\n".join(lines))
    return config


def cosmic_ray(*args: str) -> None:
    """Run the cosmic-ray CLI in the staging folder."""
    run = _run_staged([sys.executable, "-m", "cosmic_ray.cli", *args])
    if run.returncode != 0:
        sys.stderr.write(run.stdout[-4000:] + run.stderr[-4000:])
        raise SystemExit(f"cosmic-ray {args[0]} failed")


def _run_staged(command: list[str]) -> subprocess.CompletedProcess[str]:
    """Run ``command`` in the staging folder with the staged packages first on the path."""
    return subprocess.run(
        command, cwd=STAGE, env=environment(), capture_output=True, text=True, check=False
    )


# Run with cosmic-ray's own session API (in a subprocess, so that this script needs no
# cosmic-ray types): list every mutant, or mark the ones outside the sample as skipped.
_LIST = """
import json, sys
from cosmic_ray.work_db import use_db
with use_db(sys.argv[1]) as db:
    items = [
        {"job": w.job_id, "operator": m.operator_name, "occurrence": m.occurrence,
         "line": m.start_pos[0], "column": m.start_pos[1]}
        for w in db.work_items for m in w.mutations
    ]
print(json.dumps(items))
"""

_SKIP = """
import json, sys
from cosmic_ray.work_db import use_db
from cosmic_ray.work_item import WorkResult, WorkerOutcome
skipped = WorkResult(worker_outcome=WorkerOutcome.SKIPPED)
with use_db(sys.argv[1]) as db:
    db.set_multiple_results(json.loads(sys.stdin.read()), skipped)
"""

_AGAIN = """
import json, sqlite3, sys
jobs = json.loads(sys.stdin.read())
with sqlite3.connect(sys.argv[1]) as db:
    db.executemany("DELETE FROM work_results WHERE job_id = ?", [(job,) for job in jobs])
"""

_RESULTS = """
import json, sys
from cosmic_ray.work_db import use_db
with use_db(sys.argv[1]) as db:
    out = [
        {"job": w.job_id, "operator": w.mutations[0].operator_name,
         "line": w.mutations[0].start_pos[0], "where": w.mutations[0].definition_name or "",
         "worker": r.worker_outcome.value,
         "test": r.test_outcome.value if r.test_outcome else None,
         "timeout": r.output == "timeout", "diff": r.diff or ""}
        for w, r in db.completed_work_items
    ]
print(json.dumps(out))
"""


def session_api(script: str, session: Path, stdin: str = "") -> str:
    """Run one of the session snippets above; return what it prints."""
    run = subprocess.run(
        [sys.executable, "-c", script, str(session)],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    if run.returncode != 0:
        sys.stderr.write(run.stderr[-4000:])
        raise SystemExit(f"reading the cosmic-ray session {session} failed")
    return run.stdout


def annotation_spans(module: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Where the module's annotations are: (line, column) from and to.

    Every target module has ``from __future__ import annotations``, so no annotation is
    evaluated: a mutant inside one (``X | None`` to ``X & None``) cannot change behaviour.
    """
    tree = ast.parse((ROOT / module).read_text())
    found: list[ast.expr] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.arg) and node.annotation is not None:
            found.append(node.annotation)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns:
            found.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            found.append(node.annotation)
    return [
        ((a.lineno, a.col_offset), (a.end_lineno or a.lineno, a.end_col_offset or 0)) for a in found
    ]


def sample(module: str, every: list[dict[str, object]], size: int, seed: int) -> list[str]:
    """The jobs to run: ``size`` mutants outside annotations, drawn at random with ``seed``.

    The draw is a seeded shuffle of every mutant in a fixed order, cut at ``size``: the same
    seed and source give the same sample, and a larger sample holds the smaller one.
    """
    spans = annotation_spans(module)
    outside = [
        m
        for m in every
        if not any(
            start <= (int(str(m["line"])), int(str(m["column"]))) < end for start, end in spans
        )
    ]
    ordered = sorted(outside, key=lambda m: (str(m["operator"]), int(str(m["occurrence"]))))
    random.Random(f"{seed}:{module}").shuffle(ordered)  # noqa: S311 (a sample, not a secret)
    return [str(m["job"]) for m in ordered[:size]]


def changed_lines(diff: str) -> tuple[str, str]:
    """The first line a diff removes and the first it adds (stripped)."""
    body = [line for line in diff.splitlines() if line and not line.startswith(("---", "+++"))]
    removed = next((line[1:].strip() for line in body if line.startswith("-")), "")
    added = next((line[1:].strip() for line in body if line.startswith("+")), "")
    return removed, added


def is_equivalent(module: str, operator: str, after: str, where: str = "") -> bool:
    """Whether a survivor matches an entry of :data:`EQUIVALENT`."""
    return any(
        entry.path in ("*", module)
        and re.search(entry.operator, operator)
        and re.search(entry.after, after)
        and (not entry.where or re.search(entry.where, where))
        for entry in EQUIVALENT
    )


def run_module(module: str, size: int, seed: int, mode: str) -> dict[str, object]:
    """Run (or re-run, or report) one module's sample; return its results."""
    target = TARGETS[module]
    session = WORK / f"{name_of(module)}.sqlite"
    started = time.monotonic()
    every: list[dict[str, object]] = []
    if mode == "full" or not session.exists():
        seconds = baseline(target)
        config = write_config(module, target, timeout=max(30.0, 4 * seconds))
        if session.exists():
            session.unlink()
        cosmic_ray("init", str(config), str(session))
        every = json.loads(session_api(_LIST, session))
        chosen = set(sample(module, every, size, seed))
        skipped = [str(m["job"]) for m in every if m["job"] not in chosen]
        session_api(_SKIP, session, json.dumps(skipped))
        print(
            f"   {len(chosen)} of {len(every)} mutants (seed {seed}; mutants inside annotations "
            f"are not drawn), tests {seconds:.0f} s",
            flush=True,
        )
        cosmic_ray("exec", str(config), str(session))
    elif mode == "survivors":
        # cosmic-ray names a mutant by operator and occurrence: once the module changed, the
        # same names may mean other places, so the sample must be drawn again.
        last = json.loads((WORK / f"{name_of(module)}.json").read_text())
        if last.get("source") != source_digest(module):
            raise SystemExit(f"{module} changed since its sample was drawn: run it again in full")
        # The tests as the group lists them now (a file added since the first run counts),
        # with the first run's timeout.
        timeout = re.search(
            r"^timeout = (\d+)$", (WORK / f"{name_of(module)}.toml").read_text(), re.M
        )
        config = write_config(module, target, timeout=float(timeout.group(1)) if timeout else 30.0)
        rows = json.loads(session_api(_RESULTS, session))
        again = [r["job"] for r in rows if r["worker"] == "normal" and r["test"] == "survived"]
        session_api(_AGAIN, session, json.dumps(again))
        cosmic_ray("exec", str(config), str(session))
    rows = json.loads(session_api(_RESULTS, session))
    every = every or json.loads(session_api(_LIST, session))
    ran = [r for r in rows if r["worker"] == "normal"]
    not_run = [r for r in rows if r["worker"] not in ("normal", "skipped")]
    survivors = []
    equivalent = 0
    for r in ran:
        if r["test"] != "survived":
            continue
        before, after = changed_lines(r["diff"])
        if is_equivalent(module, r["operator"], after, r["where"]):
            equivalent += 1
            continue
        survivors.append(
            {
                "path": module,
                "line": r["line"],
                "operator": r["operator"],
                "before": before,
                "after": after,
            }
        )
    killed = sum(1 for r in ran if r["test"] in ("killed", "incompetent"))
    tested = len(ran) - equivalent
    return {
        "module": module,
        "source": source_digest(module),
        "seed": seed,
        "mutants": len(every),
        "sampled": len(ran) + len(not_run),
        "killed": killed,
        "timeouts": sum(1 for r in ran if r["timeout"]),
        "equivalent": equivalent,
        "not_run": len(not_run),
        "tested": tested,
        "score": round(100 * killed / tested, 1) if tested else 100.0,
        "seconds": round(time.monotonic() - started),
        "survivors": survivors,
    }


def chosen_modules(names: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """Repository paths for the modules named (by path or file name); all without names."""
    if not names:
        return list(TARGETS)
    modules = []
    for name in names:
        found = [m for m in TARGETS if name in (m, Path(m).name, Path(m).stem)]
        if len(found) != 1:
            parser.error(f"unknown or ambiguous module {name!r}: choose from {', '.join(TARGETS)}")
        modules.append(found[0])
    return modules


def main() -> None:
    """Run the chosen modules' samples and print scores and survivors."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", metavar="MODULE", help=", ".join(TARGETS))
    parser.add_argument("--sample", type=int, default=DEFAULT_SAMPLE, help="mutants per module")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--survivors", action="store_true", help="re-run the last run's survivors")
    mode.add_argument("--report-only", action="store_true", help="print the last run again")
    args = parser.parse_args()
    modules = chosen_modules(args.modules, parser)
    # Background work on a shared machine: yield the CPU to others.
    os.nice(10)
    WORK.mkdir(exist_ok=True)
    if not args.report_only:
        stage()
    run = "report" if args.report_only else "survivors" if args.survivors else "full"
    for module in modules:
        print(f"== {module} ({TARGETS[module].group} tests)", flush=True)
        report = run_module(module, args.sample, args.seed, run)
        if run != "report":
            (WORK / f"{name_of(module)}.json").write_text(json.dumps(report, indent=2) + "\n")
        print(
            f"   {report['score']} % killed ({report['killed']}/{report['tested']}, "
            f"{report['timeouts']} by timeout), {report['equivalent']} equivalent, "
            f"{report['not_run']} not run, {report['sampled']} of {report['mutants']} sampled, "
            f"{report['seconds']} s",
            flush=True,
        )
        for s in report["survivors"]:  # type: ignore[attr-defined]
            print(
                f"   survived {s['path']}:{s['line']} {s['operator']}: "
                f"{s['before']!r} -> {s['after']!r}",
                flush=True,
            )


if __name__ == "__main__":
    main()
