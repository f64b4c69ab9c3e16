from __future__ import annotations

import pytest

import aureus_builtin.plugin
from aureus_builtin import (
    EnvCredentialSource,
    JsonlAuditSink,
    LoggingAuditSink,
    MemoryAuditSink,
    MemoryCache,
    NullCache,
    StaticCredentialSource,
)
from aureus_core.plugins import PluginHost


@pytest.fixture
def host(aureus_host: PluginHost):
    aureus_host.register(aureus_builtin.plugin, name="builtin")
    try:
        yield aureus_host
    finally:
        aureus_host.unregister("builtin")


def test_registers_every_builtin(host: PluginHost):
    assert [(r.name, r.plugin) for r in host.cache_backends] == [
        ("memory", "builtin"),
        ("null", "builtin"),
    ]
    assert [r.name for r in host.audit_sinks] == ["jsonl", "logging", "memory"]
    assert [r.name for r in host.credential_sources] == ["env", "static"]


def test_factories_build_from_options(host: PluginHost):
    memory = host.cache_backends.get("memory").factory({"capacity": 4})
    assert isinstance(memory, MemoryCache)
    assert memory.capacity == 4
    assert isinstance(host.cache_backends.get("null").factory({}), NullCache)
    assert isinstance(host.audit_sinks.get("memory").factory({}), MemoryAuditSink)
    sink = host.audit_sinks.get("logging").factory({"level": "DEBUG"})
    assert isinstance(sink, LoggingAuditSink)
    assert (sink.logger.name, sink.level) == ("aureus.audit", 10)
    env = host.credential_sources.get("env").factory({"variables": {"passphrase": "P"}})
    assert isinstance(env, EnvCredentialSource)
    assert env.variables == {"passphrase": "P"}
    static = host.credential_sources.get("static").factory({"values": {"passphrase": "p"}})
    assert isinstance(static, StaticCredentialSource)
    jsonl = host.audit_sinks.get("jsonl").factory({"path": "audit.jsonl", "max_bytes": 4096})
    assert isinstance(jsonl, JsonlAuditSink)
    assert (jsonl.path.name, jsonl.max_bytes) == ("audit.jsonl", 4096)


def test_the_entry_point_loads_the_builtin_plugin():
    host = PluginHost(environ={"AUREUS_LOAD_PLUGINS": "builtin"})
    (info,) = [i for i in host.plugins() if i.name == "builtin"]
    assert info.status.value == "loaded"
    assert info.registers == {
        "credential_sources": ("env", "static"),
        "cache_backends": ("memory", "null"),
        "audit_sinks": ("jsonl", "logging", "memory"),
    }
