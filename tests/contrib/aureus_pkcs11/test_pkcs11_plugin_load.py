"""Loading the plugin (every ``aureus`` command does) imports no python-pkcs11 and no provider."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap


def _run(code: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUREUS_")}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_loading_the_plugin_imports_no_pkcs11() -> None:
    out = _run(
        """
        import json, sys
        from aureus_core.plugins import PluginHost
        host = PluginHost(environ={"AUREUS_LOAD_PLUGINS": "pkcs11"})
        registration = host.key_providers.get("pkcs11")
        print(json.dumps({
            "plugin": registration.plugin,
            "modules": sorted(m for m in sys.modules if m.split(".")[0] == "pkcs11"
                              or m.startswith(("aureus_pkcs11.provider", "aureus_pkcs11.session"))),
        }))
        """
    )
    assert json.loads(out) == {"plugin": "pkcs11", "modules": []}


def test_without_python_pkcs11_the_plugin_is_unavailable_and_says_why() -> None:
    out = _run(
        """
        import json, sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "pkcs11" or name.startswith("pkcs11."):
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        sys.meta_path.insert(0, Block())
        from aureus_core.plugins import PluginHost
        infos = {i.name: i.to_dict() for i in PluginHost().plugins()}
        print(json.dumps(infos["pkcs11"]))
        """
    )
    info = json.loads(out)
    assert info["status"] == "unavailable"
    assert info["reason"] == "ModuleNotFoundError: No module named 'pkcs11'"
