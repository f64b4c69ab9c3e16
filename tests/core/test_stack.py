from pathlib import Path

import pytest

from aureus_core import (
    AuditEvent,
    AuditFailure,
    ConfigError,
    KeyExists,
    KeyNotFound,
    KeyProviderBase,
    KeyStack,
    KeyType,
    Signature,
    SignatureError,
    UnsupportedOperation,
    hookimpl,
)
from aureus_core.interfaces import Capability
from aureus_core.sensitive import Secret


class RecordingSink:
    def __init__(self, fail: bool = False):
        self.events: list[AuditEvent] = []
        self.fail = fail
        self.closed = False

    def emit(self, event):
        if self.fail:
            raise OSError("disk full")
        self.events.append(event)

    def close(self):
        self.closed = True


@pytest.fixture
def stack(tmp_path: Path):
    with KeyStack.local(tmp_path / "ks") as stack:
        yield stack


def test_create_describe_list_rotate(stack):
    created = stack.create_key("payments", "aes-256", description="card data")
    assert created.uri == "local://payments"
    assert created.current_version == "1"
    described = stack.describe_key("local://payments")
    assert described.description == "card data"
    assert described.key_type is KeyType.AES_256
    rotated = stack.rotate_key("local://payments")
    assert rotated.current_version == "2"
    assert [v.version for v in rotated.versions] == ["1", "2"]
    assert [k.uri for k in stack.list_keys()] == ["local://payments"]
    with pytest.raises(KeyExists):
        stack.create_key("local://payments", "aes-256")


def test_rotate_refuses_a_version(stack):
    stack.create_key("k", "ed25519")
    with pytest.raises(ConfigError, match="rotate a key, not a version"):
        stack.rotate_key("local://k?version=1")


@pytest.mark.parametrize("key_type", ["ed25519", "ecdsa-p256"])
def test_sign_verify_across_rotation(stack, key_type):
    stack.create_key("signer", key_type)
    old = stack.sign(b"release 1", key="local://signer")
    assert old.key_version == "1"
    stack.rotate_key("local://signer")
    new = stack.sign(b"release 2", key="local://signer")
    assert new.key_version == "2"
    # A Signature record carries its version; raw bytes are tried newest first.
    assert stack.verify(b"release 1", old, key="local://signer")
    assert stack.verify(b"release 1", old.value, key="local://signer")
    assert stack.verify(b"release 2", new.value, key="local://signer")
    assert not stack.verify(b"release 1", old.value, key="local://signer?version=2")
    assert not stack.verify(b"release 3", new, key="local://signer")
    # A pinned anchor accepts only records of that version.
    assert not stack.verify(b"release 1", old, key="local://signer?version=2")
    assert Signature.from_json(new.to_json()) == new


def test_verify_rejects_record_for_another_key(stack):
    stack.create_key("a", "ed25519")
    stack.create_key("b", "ed25519")
    signature = stack.sign(b"m", key="local://a")
    assert stack.verify(b"m", signature, key="local://b") is False
    assert stack.verify(b"m", signature, key=["local://b", "local://a"]) is True


def test_verify_needs_a_trust_anchor_and_never_trusts_the_record(tmp_path):
    """The JWT "kid" mistake: a record naming an attacker's key must not verify."""
    with KeyStack.local(tmp_path, signing_key="local://release") as stack:
        stack.create_key("release", "ed25519")
        stack.create_key("scratch", "ed25519")  # any key the process can reach
        forged = stack.sign(b"evil build", key="local://scratch")
        assert forged.key_uri == "local://scratch"
        assert stack.verify(b"evil build", forged) is False  # the configured anchor
        captured = _capture(stack)
        assert stack.verify(b"evil build", forged) is False
        verify = [e for e in captured if e.operation == "verify" and e.outcome == "ok"]
        assert dict(verify[-1].details) == {"valid": "false", "reason": "untrusted key"}
        genuine = stack.sign(b"good build")
        assert stack.verify(b"good build", genuine) is True
    with KeyStack.local(tmp_path) as bare:
        with pytest.raises(ConfigError, match="no trusted key to verify against"):
            bare.verify(b"evil build", forged)
        with pytest.raises(ConfigError, match="no trusted key"):
            bare.verify(b"evil build", forged.value)
        assert bare.verify(b"evil build", forged, key="local://release") is False
    config = {
        "stack": {"verify_keys": ["local://release", "local://other"]},
        "providers": {"local": {"keystore": str(tmp_path)}},
    }
    with KeyStack.from_dict(config) as anchored:
        assert anchored.verify(b"evil build", forged) is False
        assert anchored.verify(b"good build", genuine) is True
        assert anchored.verify(b"good build", genuine.value) is True


def _capture(stack):
    events = []

    class Sink:
        def emit(self, event):
            events.append(event)

        def close(self):
            pass

    stack.add_audit_sink(Sink())
    return events


def test_malformed_signature_raises(stack):
    stack.create_key("s", "ed25519")
    with pytest.raises(SignatureError):
        stack.verify(b"m", b"short", key="local://s")


def test_default_signing_key(tmp_path):
    with KeyStack.local(tmp_path, signing_key="local://release") as stack:
        stack.create_key("release", "ecdsa-p256")
        signature = stack.sign(b"artifact")
        assert signature.key_uri == "local://release"
        assert stack.verify(b"artifact", signature.value)
    with KeyStack.local(tmp_path) as stack, pytest.raises(ConfigError, match="no signing key"):
        stack.sign(b"artifact")


def test_unknown_key(stack):
    with pytest.raises(KeyNotFound):
        stack.describe_key("local://nope")


def test_unknown_scheme_says_how_to_find_plugins(stack):
    with pytest.raises(Exception, match="run 'aureus plugins'"):
        stack.describe_key("nosuch://x")


def test_passphrase_stack(tmp_path):
    with KeyStack.local(tmp_path, passphrase="correct horse") as stack:
        stack.create_key("p", "ed25519")
        sig = stack.sign(b"x", key="local://p")
    with KeyStack.local(tmp_path, passphrase="correct horse") as stack:
        assert stack.verify(b"x", sig, key="local://p")


def test_import_key_requires_exactly_one_material(stack):
    with pytest.raises(ConfigError, match="exactly one"):
        stack.import_key("x", "aes-256")
    imported = stack.import_key("x", "aes-256", raw=bytes(range(32)))
    assert imported.uri == "local://x"


class MinimalProvider(KeyProviderBase):
    scheme = "minimal"
    capabilities = frozenset({Capability.DESCRIBE})


def test_missing_capability_is_unsupported_operation(aureus_host):
    class Plugin:
        @hookimpl
        def aureus_register_key_providers(self, registry):
            registry.register("minimal", lambda settings: MinimalProvider())

    aureus_host.register(Plugin(), name="minimal")
    stack = KeyStack(host=aureus_host)
    for call in (
        lambda: stack.sign(b"m", key="minimal://k"),
        lambda: stack.rotate_key("minimal://k"),
        lambda: stack.create_key("minimal://k", "aes-256"),
        lambda: stack.public_key("minimal://k"),
        lambda: stack.change_keystore_passphrase(Secret("new"), provider="minimal"),
    ):
        with pytest.raises(UnsupportedOperation, match="provider 'minimal' does not support"):
            call()
    with pytest.raises(UnsupportedOperation, match="describe_key"):
        stack.describe_key("minimal://k")  # declared, but KeyProviderBase says no


def test_unsupported_key_type_lists_supported(stack):
    with pytest.raises(UnsupportedOperation, match="supports: aes-256, ecdsa-p256, ed25519"):
        stack.create_key("r", "rsa-2048")


def test_audit_events_for_operations(tmp_path):
    sink = RecordingSink()
    with KeyStack.local(tmp_path, audit_sinks=[sink]) as stack:
        stack.create_key("s", "ed25519")
        stack.sign(b"secret message", key="local://s")
        with pytest.raises(KeyNotFound):
            stack.sign(b"m", key="local://missing")
    assert [(e.operation, e.phase, e.outcome) for e in sink.events] == [
        ("create", "request", "pending"),
        ("create", "outcome", "ok"),
        ("sign", "request", "pending"),
        ("sign", "outcome", "ok"),
        ("sign", "request", "pending"),
        ("sign", "outcome", "KeyNotFound"),
    ]
    signed = sink.events[3]
    assert signed.request_id == sink.events[2].request_id
    assert signed.key_uri == "local://s"
    assert signed.key_version == "1"
    assert signed.byte_count == len(b"secret message")
    assert "secret message" not in repr(sink.events)
    assert sink.closed


def test_required_audit_refuses_unrecorded_operation(tmp_path):
    stack = KeyStack.local(tmp_path, audit_sinks=[RecordingSink(fail=True)])
    with stack, pytest.raises(AuditFailure, match="auditing is required"):
        stack.create_key("s", "ed25519")


def test_closed_stack_refuses_work(tmp_path):
    stack = KeyStack.local(tmp_path)
    stack.close()
    with pytest.raises(Exception, match="closed"):
        stack.list_keys()


def test_from_config_file(tmp_path, monkeypatch):
    config = tmp_path / "aureus.toml"
    config.write_text('[stack]\nsigning_key = "local://cfg"\n[providers.local]\nkeystore = "ks"\n')
    with KeyStack.from_config(config) as stack:
        stack.create_key("cfg", "ed25519")
    assert (tmp_path / "ks" / "keystore.json").exists()
    monkeypatch.setenv("AUREUS_CONFIG", str(config))
    with KeyStack.from_config() as stack:
        assert stack.sign(b"x").key_uri == "local://cfg"
