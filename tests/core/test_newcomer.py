"""What a newcomer meets first: install lines, the README's code, the test runner."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aureus_core.plugins import PluginHost, PluginStatus

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
AUREUS = str(Path(sys.executable).with_name("aureus"))


def _only(*names: str) -> dict[str, str]:
    return {"AUREUS_LOAD_PLUGINS": ",".join(names)}


def _dist_info(tmp_path: Path, dist: str) -> Path:
    return tmp_path / f"{dist.replace('-', '_')}-1.2.3.dist-info"


@pytest.mark.parametrize(
    ("direct_url", "expected"),
    [
        (
            {"url": "file:///home/me/src/acme%20kms", "dir_info": {"editable": True}},
            "pip install -e '/home/me/src/acme kms[aws]'  (from your checkout; from a "
            "package index: pip install 'acme-kms[aws]')",
        ),
        (
            {"url": "file:///home/me/src/acme", "dir_info": {}},
            "pip install '/home/me/src/acme[aws]'  (from your checkout; from a "
            "package index: pip install 'acme-kms[aws]')",
        ),
        (
            {"url": "https://files.example/acme_kms-1.2.3.whl", "archive_info": {}},
            "pip install 'acme-kms[aws]'",
        ),
        (None, "pip install 'acme-kms[aws]'"),
    ],
)
def test_install_hint_fits_how_the_distribution_was_installed(
    fake_dist, tmp_path: Path, direct_url: dict[str, object] | None, expected: str
) -> None:
    broken = fake_dist("import aureus_no_such_sdk_xyz\n", extras="aws", dist="acme-kms")
    if direct_url is not None:  # what pip writes (PEP 610) for a directory install
        (_dist_info(tmp_path, "acme-kms") / "direct_url.json").write_text(json.dumps(direct_url))
    (info,) = [i for i in PluginHost(environ=_only(broken)).plugins() if i.name == broken]
    assert info.status is PluginStatus.UNAVAILABLE
    assert info.install_hint == expected


def test_this_checkout_is_recognised_as_one() -> None:
    from importlib import metadata

    from aureus_core.plugins import install_line

    line = install_line(metadata.distribution("aureus-kms"), ["aws"])
    direct = metadata.distribution("aureus-kms").read_text("direct_url.json")
    if direct is None or "dir_info" not in direct:
        pytest.skip("aureus-kms is not installed from a directory here")
    assert line.startswith("pip install ")
    assert "[aws]" in line
    assert "from your checkout" in line


def _blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def test_readme_python_blocks_run_and_run_again(tmp_path: Path) -> None:
    blocks = _blocks("python")
    assert blocks, "the README has no Python example"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUREUS_")}
    env["AUREUS_KEYSTORE"] = str(tmp_path / "keystore")  # never the user's real keystore
    for block in blocks:
        for attempt in (1, 2):  # the second run meets the keys the first one made
            done = subprocess.run(
                [sys.executable, "-c", block], env=env, cwd=tmp_path, capture_output=True, text=True
            )
            assert done.returncode == 0, f"run {attempt}:\n{block}\n{done.stderr}"


def test_readme_quick_start_round_trips(tmp_path: Path) -> None:
    (quick,) = [b for b in _blocks("sh") if "round trip OK" in b]
    prefix = "python3 -m venv .venv && .venv/bin/pip install -q -e . && "
    assert quick.startswith(prefix)
    command = quick[len(prefix) :].replace(".venv/bin/aureus", AUREUS)
    shutil.copy(README, tmp_path / "README.md")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUREUS_")}
    env["AUREUS_KEYSTORE"] = str(tmp_path / "keystore")
    for _ in (1, 2):
        done = subprocess.run(
            ["bash", "-c", command], env=env, cwd=tmp_path, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.rstrip().endswith("round trip OK")


def test_nox_fails_when_a_declared_interpreter_is_missing(tmp_path: Path) -> None:
    pytest.importorskip("nox")
    empty = tmp_path / "pyenv"
    (empty / "versions").mkdir(parents=True)
    env = {
        "HOME": str(tmp_path),
        "PATH": "/usr/bin:/bin",  # no pyenv shims: no python3.10
        "PYENV_ROOT": str(empty),
    }
    if shutil.which("python3.10", path=env["PATH"]):
        pytest.skip("python3.10 is on /usr/bin here")
    session = "tests(python='3.10', provider='local')"
    nox = [sys.executable, "-m", "nox", "-f", str(ROOT / "noxfile.py"), "-s", session]
    done = subprocess.run(
        nox,
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0, done.stderr
    assert "Python interpreter 3.10 not found" in done.stderr
    allowed = subprocess.run(
        [*nox, "--no-error-on-missing-interpreters"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert allowed.returncode == 0, allowed.stderr
    assert "skipped" in allowed.stderr


def test_a_local_command_imports_no_cloud_sdk(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUREUS_")}
    env["AUREUS_KEYSTORE"] = str(tmp_path / "ks")
    probe = (
        "import sys\n"
        "from aureus_core.cli import main\n"
        "try:\n"
        "    main(['keys', 'create', 'k', '--type', 'aes-256'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('boto3', 'botocore', 'google.cloud.kms', 'grpc', 'azure.keyvault',\n"
        "         'azure.core')\n"
        "print(','.join(sorted(m for m in heavy if m in sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.splitlines() == ["local://k", ""]
    listing = subprocess.run(
        [AUREUS, "plugins", "--json"], env=env, capture_output=True, text=True, check=True
    )
    for plugin in json.loads(listing.stdout):  # the names are still all registered
        if plugin["name"] in ("aws", "gcp", "azure") and plugin["status"] == "loaded":
            assert plugin["registers"]["key_providers"]


def test_a_plugin_whose_extra_is_not_installed_is_unavailable_before_import(
    fake_dist, tmp_path: Path
) -> None:
    lazy = fake_dist(
        """
        from aureus_core.hookspecs import hookimpl

        @hookimpl
        def aureus_register_key_providers(registry):
            def create(settings):
                import aureus_no_such_sdk_xyz  # imported on first use only
            registry.register("lazy-kms", create)
        """,
        extras="cloud",
        dist="lazy-kms",
    )
    metadata_file = _dist_info(tmp_path, "lazy-kms") / "METADATA"
    metadata_file.write_text(
        metadata_file.read_text()
        + "Provides-Extra: cloud\n"
        + 'Requires-Dist: aureus-no-such-sdk-xyz>=1; extra == "cloud"\n'
        + "Requires-Dist: attrs\n"  # a requirement of every install is not the extra's
    )
    host = PluginHost(environ=_only(lazy))
    (info,) = [i for i in host.plugins() if i.name == lazy]
    assert info.status is PluginStatus.UNAVAILABLE
    assert info.reason == "not installed: aureus-no-such-sdk-xyz (needed by lazy-kms[cloud])"
    assert info.install_hint == "pip install 'lazy-kms[cloud]'"
    assert "lazy-kms" not in host.key_providers
