"""The otel plugin imports the OpenTelemetry API when a sink is built, and says when it cannot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap


def _run(code: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUREUS_")}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        cwd=os.path.dirname(__file__),
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_loading_the_plugin_imports_no_opentelemetry_and_a_sink_does() -> None:
    out = _run(
        """
        import json, sys
        from aureus_core.plugins import PluginHost
        host = PluginHost(environ={"AUREUS_LOAD_PLUGINS": "otel"})
        registration = host.audit_sinks.get("otel")
        loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry."))
        sink = registration.factory({"signal": "logs"})
        print(json.dumps({"at_load": loaded, "sink": repr(sink),
                          "after": "opentelemetry._logs" in sys.modules}))
        """
    )
    assert out == {
        "at_load": [],
        "sink": "OtelAuditSink(signal='logs', scope='aureus.audit')",
        "after": True,
    }


def test_a_broken_api_install_is_a_clear_error_when_the_sink_is_built() -> None:
    out = _run(
        """
        import json, sys
        class Block:  # the package is there, one of its modules is not
            def find_spec(self, name, path=None, target=None):
                if name == "opentelemetry._logs":
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        sys.meta_path.insert(0, Block())
        from aureus_core.errors import ConfigError
        from aureus_core.plugins import PluginHost
        host = PluginHost(environ={"AUREUS_LOAD_PLUGINS": "otel"})
        try:
            host.audit_sinks.get("otel").factory({})
        except ConfigError as error:
            print(json.dumps({"error": str(error)}))
        """
    )
    assert out == {
        "error": "the otel audit sink cannot import the OpenTelemetry API (No module named "
        "'opentelemetry._logs'); reinstall it: pip install 'aureus-kms[otel]'"
    }
