"""What an ``aureus`` start imports: what its command needs; every plugin is still discovered."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from aureus_core.cli import app, main

AUREUS = str(Path(sys.executable).with_name("aureus"))


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUREUS_")}
    env["AUREUS_KEYSTORE"] = str(tmp_path / "ks")
    return env


def _commands_and_modules(group: click.Group, prefix: str = "") -> dict[str, str]:
    found: dict[str, str] = {}
    for name, command in group.commands.items():
        found[prefix + name] = (command.callback.__module__ if command.callback else "") or ""
        if isinstance(command, click.Group):
            found.update(_commands_and_modules(command, f"{prefix}{name} "))
    return found


def test_the_module_map_names_every_command_and_where_it_is_defined() -> None:
    all_commands = main.list_commands(click.Context(main))  # imports every command module
    assert sorted(all_commands) == sorted(app.COMMAND_MODULES)
    for path, module in _commands_and_modules(main).items():
        top = path.split()[0]
        allowed = {f"aureus_core.cli.{name}" for name in app.COMMAND_MODULES[top]}
        assert module in allowed, f"`aureus {path}` is defined in {module}, not in {allowed}"


@pytest.mark.parametrize("command", sorted(app.COMMAND_MODULES))
def test_each_command_loads_on_its_own(command: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [AUREUS, command, "--help"], env=_env(tmp_path), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert f"Usage: aureus {command}" in done.stdout


def test_an_unknown_command_still_gets_a_suggestion(tmp_path: Path) -> None:
    done = subprocess.run([AUREUS, "keyz"], env=_env(tmp_path), capture_output=True, text=True)
    assert done.returncode == 2
    assert "No such command 'keyz'" in done.stderr
    assert "Did you mean 'keys'?" in done.stderr


ENCRYPT_AND_REPORT = """
import json, sys
from aureus_core.cli import main

def run(*argv):
    try:
        main(list(argv))
    except SystemExit as exit:
        assert not exit.code, exit.code

run("keys", "create", "--type", "aes-256", "k")
run("encrypt", "--key", "local://k", "-o", sys.argv[2], sys.argv[1])
modules = sorted(sys.modules)  # before `plugins()` below, which imports more
from aureus_core.plugins import get_host
statuses = {info.name: info.status.value for info in get_host().plugins()}
print(json.dumps({"modules": modules, "statuses": statuses}))
"""

NOT_NEEDED_BY_ENCRYPT = (
    "asyncio",
    "filelock",  # aureus_core.locks takes flock itself on POSIX
    "opentelemetry",
    "boto3",
    "botocore",
    "google.cloud",
    "azure",
    "aureus_core.aio",
    "aureus_core.cli.audit",
    "aureus_core.cli.signing",
    "aureus_core.cli.rewrap",
    "aureus_builtin.jsonl_sink",
    "aureus_builtin.memory_cache",
)


def test_encrypt_imports_only_what_it_needs_and_discovers_every_plugin(tmp_path: Path) -> None:
    plain, message = tmp_path / "in.bin", tmp_path / "out.bin"
    plain.write_bytes(os.urandom(1024))
    done = subprocess.run(
        [sys.executable, "-c", ENCRYPT_AND_REPORT, str(plain), str(message)],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    modules = set(report["modules"])
    decrypted = subprocess.run(
        [AUREUS, "decrypt", str(message)], env=_env(tmp_path), capture_output=True, check=True
    ).stdout
    assert decrypted == plain.read_bytes()
    imported = {m for m in NOT_NEEDED_BY_ENCRYPT if m in modules}
    assert not imported, f"aureus encrypt imported {sorted(imported)}"
    # ... yet every installed plugin module was imported and registered (so
    # duplicate names and misspelt hooks are still caught), and all are listed
    assert {"aureus_builtin.plugin", "aureus_local.plugin", "aureus_aws.plugin"} <= modules
    assert {"builtin", "local", "otel", "aws", "gcp", "azure"} <= set(report["statuses"])
    assert report["statuses"]["local"] == report["statuses"]["builtin"] == "loaded"


def test_encrypt_alone_does_not_import_the_other_commands(tmp_path: Path) -> None:
    env = _env(tmp_path)
    subprocess.run([AUREUS, "keys", "create", "--type", "aes-256", "k"], env=env, check=True)
    script = (
        "import sys\n"
        "from aureus_core.cli import main\n"
        "try:\n"
        "    main(['encrypt', '--key', 'local://k', '-o', sys.argv[1], '-'])\n"
        "except SystemExit as exit:\n"
        "    assert not exit.code, exit.code\n"
        "print(sorted(m for m in sys.modules if m.startswith('aureus_core.cli.')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "m.bin")],
        env=env,
        input=b"x" * 1024,
        capture_output=True,
        check=True,
    )
    assert done.stdout.decode().strip() == (
        "['aureus_core.cli.app', 'aureus_core.cli.atomic', 'aureus_core.cli.envelope']"
    )


def test_plugins_lists_every_plugin_the_distribution_declares(tmp_path: Path) -> None:
    done = subprocess.run(
        [AUREUS, "plugins", "--json"], env=_env(tmp_path), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    names = {info["name"] for info in json.loads(done.stdout)}
    assert {"builtin", "local", "otel", "aws", "gcp", "azure"} <= names
