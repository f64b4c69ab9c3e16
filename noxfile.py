"""Sessions: lint, typecheck, docs, tests (Python x provider matrix), examples, bench."""

from __future__ import annotations

import os
import re
from pathlib import Path

import nox

ROOT = Path(__file__).parent
PYPROJECT = nox.project.load_toml("pyproject.toml")
PYTHONS: list[str] = nox.project.python_versions(PYPROJECT)

nox.options.error_on_external_run = True
# A green run means every declared row ran: a missing interpreter fails the run
# (on a workstation too) instead of being skipped.  Run only the interpreters
# you have with --no-error-on-missing-interpreters.
nox.options.error_on_missing_interpreters = True
nox.options.reuse_existing_virtualenvs = False
# uv creates and fills each session's venv in seconds where pip takes a minute or
# more; without uv on PATH nox falls back to virtualenv and pip.
nox.options.default_venv_backend = "uv|virtualenv"
# uv could download a missing interpreter; a row runs on this machine's Pythons or fails.
nox.options.download_python = "never"
nox.options.sessions = ["lint", "typecheck", "docs", "tests", "examples"]

# Each provider row: the extras it needs, the test folders it runs, and optionally
# what else to install, environment variables and extra pytest arguments.
PROVIDERS: dict[str, dict[str, list[str]]] = {
    # The longest row, and the one run on every Python: its tests spread over one
    # pytest-xdist worker per core (the leak scan collects every worker's findings).
    "local": {
        "extras": ["test"],
        "paths": ["tests/core", "tests/plugins/aureus_local", "tests/plugins/aureus_builtin"],
        "pytest": ["-n", "auto", "--dist", "worksteal"],
    },
    # Cloud rows run against local stand-ins: moto's server for AWS, the in-repo
    # gRPC and HTTPS emulators for GCP and Azure.  No network, no cloud account.
    "aws": {"extras": ["test", "aws"], "paths": ["tests/plugins/aureus_aws"]},
    # The 2-of-3 key-group test spans local, moto's AWS KMS and the Cloud KMS emulator;
    # this row has all three (moto comes with the test extra).
    "gcp": {
        "extras": ["test", "gcp"],
        "paths": ["tests/plugins/aureus_gcp", "tests/core/quorum/test_multi_provider.py"],
    },
    "azure": {"extras": ["test", "azure"], "paths": ["tests/plugins/aureus_azure"]},
    # The PKCS#11 provider is its own distribution, installed as a user would
    # (pip install ./contrib/aureus-pkcs11), against SoftHSM2 tokens the tests create.
    "pkcs11": {
        "extras": ["test"],
        "paths": ["tests/contrib/aureus_pkcs11"],
        "install": ["./contrib/aureus-pkcs11"],
        "env": ["AUREUS_REQUIRE_SOFTHSM=1"],
    },
    # contrib/aureus-redis, its own distribution, against a real redis-server (.ci/run),
    # installed as a user would.
    "redis": {
        "extras": ["test"],
        "paths": ["tests/contrib/aureus_redis"],
        "install": ["./contrib/aureus-redis"],
    },
}


def _expose_pyenv_interpreters() -> None:
    """Put every installed pyenv interpreter we support on PATH, not only the selected one.

    Goes to the version folders directly rather than through ``pyenv`` and its shims, so
    it works whether or not ``pyenv`` is on PATH and whatever ``PYENV_VERSION`` says.
    """
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    if not root.is_dir():
        return
    bins: list[str] = []
    for minor in PYTHONS:
        candidates = sorted(
            (d for d in root.iterdir() if re.fullmatch(rf"{re.escape(minor)}\.\d+", d.name)),
            key=lambda d: int(d.name.rsplit(".", 1)[1]),
        )
        if candidates and (candidates[-1] / "bin" / f"python{minor}").exists():
            bins.append(str(candidates[-1] / "bin"))
    if bins:
        os.environ["PATH"] = os.pathsep.join([*bins, os.environ.get("PATH", "")])


_expose_pyenv_interpreters()


def _dev_requirement(name: str) -> str:
    """The pinned requirement for ``name`` from the ``dev`` extra, so lint matches local runs."""
    for requirement in PYPROJECT["project"]["optional-dependencies"]["dev"]:
        if requirement.startswith(f"{name}=="):
            return str(requirement)
    raise ValueError(f"{name} is not pinned in the dev extra")


# Where lint-imports finds each root package of [tool.importlinter]; it reads the
# source and imports nothing, so the lint session needs no install of the project.
IMPORT_PATHS = [
    ROOT,
    ROOT / "plugins",
    ROOT / "contrib" / "aureus-pkcs11",
    ROOT / "contrib" / "aureus-redis",
]


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff (lint and formatting) and the import layers (import-linter contracts)."""
    session.install(_dev_requirement("ruff"), _dev_requirement("import-linter"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run(
        "lint-imports", env={"PYTHONPATH": os.pathsep.join(str(path) for path in IMPORT_PATHS)}
    )


@nox.session
def typecheck(session: nox.Session) -> None:
    """Mypy in strict mode over the package, plugins, tests and examples."""
    session.install("-e", ".[dev]")
    # A second step, so that pip finds the aureus-kms the contrib distributions need installed.
    session.install("-e", "./contrib/aureus-pkcs11", "-e", "./contrib/aureus-redis")
    session.run("mypy")


def _matrix() -> list[tuple[str, str]]:
    """(python, provider) pairs: the local row on every Python, cloud rows on the bounds.

    The cloud rows exercise the same core on every Python through the local row;
    running them on the oldest and newest supported Python keeps CI under its time
    budget.  ``AUREUS_FULL_MATRIX=1`` runs every pair.
    """
    full = os.environ.get("AUREUS_FULL_MATRIX") == "1"
    pairs: list[tuple[str, str]] = []
    for provider in PROVIDERS:
        pythons = PYTHONS if full or provider == "local" else [PYTHONS[0], PYTHONS[-1]]
        pairs.extend((python, provider) for python in pythons)
    return pairs


@nox.session
@nox.parametrize("python,provider", _matrix())
def tests(session: nox.Session, provider: str) -> None:
    """The test suite for one provider row on one Python version."""
    row = PROVIDERS[provider]
    session.install("-e", f".[{','.join(row['extras'])}]")
    if row.get("install"):
        session.install(*row["install"])
    env = dict(item.split("=", 1) for item in row.get("env", []))
    session.run("pytest", *row.get("pytest", []), *row["paths"], *session.posargs, env=env)


@nox.session
def examples(session: nox.Session) -> None:
    """Install the example third-party plugin from its own pyproject and prove it.

    Real entry-point discovery in a fresh venv: ``aureus plugins`` must list
    it as loaded, and it must pass the conformance kit with only the ``kit``
    extra (pytest) installed, as a plugin author's venv would have.
    """
    session.install(".[kit]")
    example = ROOT / "docs" / "examples" / "aureus-example-plugin"
    session.install(str(example))
    listing = session.run("aureus", "plugins", "--json", silent=True)
    assert isinstance(listing, str)
    import json

    plugins = {p["name"]: p for p in json.loads(listing)}
    example_info = plugins.get("example")
    if example_info is None or example_info["status"] != "loaded":
        session.error(f"aureus plugins does not show the example plugin as loaded: {listing}")
    session.log(f"aureus plugins: example {example_info['version']} {example_info['status']}")
    session.run("pytest", str(example / "tests"), "-p", "no:cacheprovider")


@nox.session
def docs(session: nox.Session) -> None:
    """The reference site, built with --strict: a broken link or reference fails.

    mkdocstrings reads the sources without importing them, so only the docs
    extra is installed.
    """
    session.install(*PYPROJECT["project"]["optional-dependencies"]["docs"])
    site = Path(session.create_tmp()) / "site"
    session.run(
        "mkdocs", "build", "--strict", "--site-dir", str(site), env={"NO_MKDOCS_2_WARNING": "1"}
    )


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks (not part of the default run): see benchmarks/README.md.

    ``nox -s bench -- --quick`` is the smoke run (well under a minute once
    installed): the envelope table at 1 KiB and 16 MiB with short timing and
    its targets, the 1 KiB profile account and the CLI start.  Without ``--quick`` every
    ``bench_*.py`` runs with the given arguments.
    """
    session.install("-e", ".[bench]")
    if "--quick" in session.posargs:
        session.run("python", "benchmarks/bench_envelope.py", "--sizes", "1K,16M", *session.posargs)
        session.run("python", "benchmarks/profile_roundtrip.py", "--rounds", "1500")
        session.run("python", "benchmarks/bench_cli.py", "--quick")
        return
    scripts = sorted((ROOT / "benchmarks").glob("bench_*.py"))
    if not scripts:
        session.skip("no benchmarks yet")
    for script in scripts:
        session.run("python", str(script), *session.posargs)


@nox.session(default=False)
def mutation(session: nox.Session) -> None:
    """Mutation testing of the security-critical modules (not in CI): see docs/testing.md.

    ``nox -s mutation -- envelope cache`` runs the named groups only; each group runs
    mutmut in a staging folder under ``.mutation/`` against the tests that reach it.
    """
    # Pinned here, not in the dev extra: only this session needs it.
    session.install("-e", ".[test]", "mutmut==3.8.1")
    # The cache group also runs the Redis backend's tests (skipped without redis-server).
    session.install("./contrib/aureus-redis")
    session.run("python", "tools/mutation.py", *session.posargs)


@nox.session(default=False)
def crosscheck(session: nox.Session) -> None:
    """The independent check with cosmic-ray (not in CI): see docs/testing.md.

    ``nox -s crosscheck -- cache.py --sample 50`` runs a seeded sample of cosmic-ray's mutants
    of the named modules against the tests of their mutation group.
    """
    session.install("-e", ".[test]", "cosmic-ray==8.7.0")
    session.install("./contrib/aureus-redis")
    session.run("python", "tools/crosscheck.py", *session.posargs)
