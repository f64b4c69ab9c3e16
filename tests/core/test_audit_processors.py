"""Audit processors: drop, redact, enrich, and building them from the configuration."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from aureus_core.audit import AuditEvent, DropOperations, Enrich, FieldHasher, Redact
from aureus_core.audit.processors import HASH_PREFIX, build_processor, build_processors
from aureus_core.config import StackConfig
from aureus_core.errors import ConfigError

EVENT = AuditEvent(
    operation="encrypt",
    provider="local",
    key_uri="local://payments",
    key_version="3",
    principal="alice",
    context_keys=("tenant",),
    context_hashes=(("tenant", "ab" * 32),),
    byte_count=10,
    details=(("recipients", "local://payments?version=3"), ("signed", "false")),
)


def test_drop_operations() -> None:
    drop = DropOperations(["describe", "list"])
    assert drop(AuditEvent(operation="list")) is None
    assert drop(EVENT) is EVENT


def test_redact_drops_and_hashes_fields_and_entries() -> None:
    hasher = FieldHasher.ephemeral()
    redact = Redact(
        drop=["principal", "context_hashes", "details.signed"],
        hash=["key_uri", "details.recipients"],
        hasher=hasher,
    )
    out = redact(EVENT)
    assert out.principal is None
    assert out.context_hashes == ()
    assert out.key_uri == HASH_PREFIX + hasher.hash("key_uri", "local://payments")
    assert dict(out.details) == {
        "recipients": HASH_PREFIX + hasher.hash("details.recipients", "local://payments?version=3")
    }
    assert (out.operation, out.key_version, out.byte_count) == ("encrypt", "3", 10)
    plain = AuditEvent(operation="list")
    assert redact(plain) == plain


def test_redact_without_a_hasher_uses_its_own_random_key() -> None:
    one, two = Redact(hash=["principal"]), Redact(hash=["principal"])
    assert one(EVENT).principal == one(EVENT).principal != two(EVENT).principal


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"drop": ["operation"]}, "cannot drop 'operation'"),
        ({"hash": ["byte_count"]}, "cannot hash 'byte_count'"),
        ({"drop": ["key_uri.x"]}, "only details.NAME and labels.NAME have entries"),
        ({"drop": ["principal"], "hash": ["principal"]}, "both drops and hashes principal"),
    ],
)
def test_redact_refuses_what_it_cannot_do(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Redact(**kwargs)


def test_enrich_adds_labels_and_the_host() -> None:
    out = Enrich({"app": "payments"}, host=True)(EVENT)
    assert dict(out.labels) == {"app": "payments", "host": socket.gethostname()}
    own = AuditEvent(operation="sign", labels=(("app", "mine"),))
    assert dict(Enrich({"app": "payments"})(own).labels) == {"app": "mine"}


def test_built_from_the_configuration() -> None:
    config = StackConfig.from_dict(
        {
            "audit": {
                "processors": [
                    {"type": "drop", "operations": ["list"]},
                    {"type": "redact", "drop": ["principal"]},
                    {"type": "enrich", "labels": {"env": "prod"}},
                ]
            }
        }
    )
    processors = build_processors(
        [(p.name, p.options) for p in config.audit_processors], hasher=FieldHasher.ephemeral()
    )
    assert [type(p).__name__ for p in processors] == ["DropOperations", "Redact", "Enrich"]


@pytest.mark.parametrize(
    ("kind", "options", "message"),
    [
        ("drop", {}, "the drop processor needs operations"),
        ("drop", {"operations": [1]}, "operations must be a list of names"),
        ("drop", {"operations": ["x"], "only": 1}, r"unknown option\(s\) only"),
        ("redact", {"hash": ["time"]}, "cannot hash 'time'"),
        ("enrich", {"labels": {"a": 1}}, "labels must be a table of names to strings"),
        ("enrich", {"host": "yes"}, "host must be true or false"),
        ("sample", {}, "unknown audit processor type 'sample'; use drop, redact or enrich"),
    ],
)
def test_configuration_errors_name_the_processor(
    kind: str, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as error:
        build_processor(
            kind, options, hasher=FieldHasher.ephemeral(), where="[audit] processors[2]"
        )
    assert str(error.value).startswith("[audit] processors[2]: ")


@pytest.mark.parametrize(
    ("audit", "message"),
    [
        ({"processors": {"type": "drop"}}, r"processors must be an array of tables"),
        ({"processors": [{"operations": []}]}, r"\[audit.processors.0\] needs type"),
        ({"context_hashes": "yes"}, "context_hashes must be true or false"),
        ({"hash_key": 3}, "key URIs must be strings"),
        ({"colour": 1}, r"allowed: context_hashes, hash_key, processors, required, sinks"),
    ],
)
def test_audit_table_errors(audit: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        StackConfig.from_dict({"audit": audit})
