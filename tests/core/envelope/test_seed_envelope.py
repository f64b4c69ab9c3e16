"""The seed system's JSON envelope: parsing, decryption, tampering and migration.

No AWS here: ``StandInKms`` below is a STAND-IN for the ``aws-kms`` provider,
written for these tests only.  It wraps data keys with AES-GCM over the
encryption context, as KMS binds the context to its ciphertext blobs, so the
core's seed logic can be checked in the ``local`` row without boto3.  The
real thing (moto's KMS through the aws-kms provider) is in
``tests/plugins/aureus_aws/test_aws_seed.py``.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import aureus_core.cli.migrate as migrate_cli
from aureus_core import KeyStack
from aureus_core.cli import main
from aureus_core.context import EncryptionContext
from aureus_core.datakey import EncryptedDataKey, WrappedKey
from aureus_core.envelope.keyring import KeyFilter
from aureus_core.envelope.seed import SeedEnvelope, decrypt_seed_envelope
from aureus_core.errors import ConfigError, DecryptionError, ProviderUnavailable
from aureus_core.interfaces import Capability, KeyProvider, KeyProviderBase
from aureus_core.keyref import KeyRef
from aureus_core.testing import capture_audit

KEY_ARN = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
OTHER_ARN = "arn:aws:kms:us-east-1:111122223333:key/0987dcba-09fe-87dc-65ba-ab0987654321"
CONTEXT = {"intentId": "intent-1", "tenant": "acme"}


class StandInKms(KeyProviderBase):
    """STAND-IN for the aws-kms provider (test only): AES-GCM wraps bound to the context."""

    scheme = "aws-kms"
    capabilities = frozenset({Capability.WRAP})

    def __init__(self) -> None:
        self.masters = {KEY_ARN: os.urandom(32), OTHER_ARN: os.urandom(32)}
        self.unwrapped: list[tuple[KeyRef, EncryptedDataKey, EncryptionContext]] = []
        self.handed_out: list[bytearray] = []
        self.fail_with: Exception | None = None
        self.key_length = 32

    def wrap(self, key: KeyRef, data_key: bytes, context: EncryptionContext) -> WrappedKey:
        nonce = os.urandom(12)
        blob = nonce + AESGCM(self.masters[key.key_id]).encrypt(
            nonce, bytes(data_key), context.serialize()
        )
        encrypted = EncryptedDataKey(
            provider_id="aws-kms", provider_info=key.key_id.encode(), ciphertext=blob
        )
        return WrappedKey(key=key, encrypted=encrypted)

    def unwrap(
        self, key: KeyRef, encrypted: EncryptedDataKey, context: EncryptionContext
    ) -> bytearray:
        self.unwrapped.append((key, encrypted, context))
        if self.fail_with is not None:
            raise self.fail_with
        master = self.masters.get(key.key_id)
        if master is None or encrypted.provider_info != key.key_id.encode():
            raise DecryptionError()
        blob = encrypted.ciphertext
        try:
            data_key = bytearray(AESGCM(master).decrypt(blob[:12], blob[12:], context.serialize()))
        except InvalidTag:
            raise DecryptionError() from None
        data_key = data_key[: self.key_length]  # tests shorten it to act as a broken provider
        self.handed_out.append(data_key)
        return data_key


def seed_encrypt(
    kms: StandInKms, data: bytes, context: dict[str, str], key_id: str = KEY_ARN
) -> bytes:
    """What the seed's ``envelopeEncrypt`` produced (its JavaScript, step by step)."""
    data_key = os.urandom(32)
    wrapped = kms.wrap(KeyRef.parse(f"aws-kms://{key_id}"), data_key, EncryptionContext(context))
    iv = os.urandom(12)
    sealed = AESGCM(data_key).encrypt(iv, data, None)
    return json.dumps(
        {
            "encrypted": base64.b64encode(sealed[:-16]).decode(),
            "encryptedDataKey": base64.b64encode(wrapped.encrypted.ciphertext).decode(),
            "iv": base64.b64encode(iv).decode(),
            "authTag": base64.b64encode(sealed[-16:]).decode(),
            "keyId": key_id,
        }
    ).encode()


@pytest.fixture
def kms() -> StandInKms:
    return StandInKms()


@pytest.fixture
def lookup(kms: StandInKms) -> Callable[[str], KeyProvider]:
    def find(scheme: str) -> KeyProvider:
        assert scheme == "aws-kms"
        return kms

    return find


@pytest.fixture
def stack(tmp_path: Path, kms: StandInKms) -> Iterator[KeyStack]:
    with KeyStack.local(
        tmp_path / "ks", wrapping_keys=["local://current"], providers={"aws-kms": kms}
    ) as stack:
        stack.create_key("current", "aes-256")
        yield stack


def edit(envelope: bytes, **changes: Any) -> bytes:
    data = json.loads(envelope)
    for name, value in changes.items():
        if value is None:
            del data[name]
        else:
            data[name] = value
    return json.dumps(data).encode()


def flip(field: str, envelope: bytes, index: int = 0) -> bytes:
    raw = bytearray(base64.b64decode(json.loads(envelope)[field]))
    raw[index] ^= 0x01
    return edit(envelope, **{field: base64.b64encode(raw).decode()})


# -- parsing ---------------------------------------------------------------------------------


def test_parse_reads_the_five_fields(kms: StandInKms) -> None:
    text = seed_encrypt(kms, b"payload", CONTEXT)
    envelope = SeedEnvelope.parse(text)
    raw = json.loads(text)
    assert envelope.key_id == KEY_ARN
    assert envelope.key == KeyRef(scheme="aws-kms", key_id=KEY_ARN)
    assert envelope.iv == base64.b64decode(raw["iv"])
    assert envelope.auth_tag == base64.b64decode(raw["authTag"])
    assert len(envelope.encrypted) == len(b"payload")
    assert envelope.encrypted_key == EncryptedDataKey(
        provider_id="aws-kms",
        provider_info=KEY_ARN.encode(),
        ciphertext=base64.b64decode(raw["encryptedDataKey"]),
    )
    assert SeedEnvelope.parse(envelope.to_json()) == envelope
    assert raw["iv"] not in repr(envelope)
    assert "bytes>" in repr(envelope)


GOOD = {
    "encrypted": base64.b64encode(b"ciphertext").decode(),
    "encryptedDataKey": base64.b64encode(b"k" * 184).decode(),
    "iv": base64.b64encode(b"i" * 12).decode(),
    "authTag": base64.b64encode(b"t" * 16).decode(),
    "keyId": KEY_ARN,
}


def with_fields(**changes: Any) -> bytes:
    return edit(json.dumps(GOOD).encode(), **changes)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"not json", "not a seed envelope: the input is not JSON"),
        (b"\xff\xfe", "not a seed envelope: the input is not JSON"),
        (b"[1, 2]", "the JSON is an array, not an object"),
        (with_fields(iv=None, authTag=None), r"missing field\(s\) iv, authTag"),
        (with_fields(extra="x"), r"unknown field\(s\) extra"),
        (b'{"iv": "a", "iv": "b"}', "field 'iv' appears twice"),
        (with_fields(iv=12), "field 'iv' must be a base64 string, not a number"),
        (with_fields(encrypted=["x"]), "'encrypted' must be a base64 string, not an array"),
        (with_fields(keyId=None), r"missing field\(s\) keyId"),
        (with_fields(keyId=7), "field 'keyId' must be a string, not a number"),
        (with_fields(authTag="@@@@"), "field 'authTag' is not valid base64"),
        (with_fields(encrypted="abc"), "field 'encrypted' is not valid base64"),
        (with_fields(encrypted="é"), "field 'encrypted' is not valid base64"),
        (with_fields(iv=base64.b64encode(b"i" * 16).decode()), "iv must be 12 bytes"),
        (with_fields(iv=base64.b64encode(b"i" * 8).decode()), "iv must be 12 bytes .*not 8"),
        (with_fields(authTag=base64.b64encode(b"t" * 12).decode()), "authTag must be 16 bytes"),
        (with_fields(encryptedDataKey=""), "encryptedDataKey is empty"),
        (
            with_fields(encryptedDataKey=base64.b64encode(b"k" * 7000).decode()),
            "'encryptedDataKey' is longer than 6144 bytes",
        ),
        (with_fields(keyId=""), "keyId must be a KMS key ARN"),
        (with_fields(keyId=KEY_ARN + "?version=1"), "keyId may not contain"),
        (with_fields(keyId="arn with space"), "keyId may not contain"),
    ],
)
def test_parse_errors_say_what_is_wrong(text: bytes, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SeedEnvelope.parse(text)


def test_parse_is_bounded() -> None:
    text = with_fields()
    with pytest.raises(ConfigError, match=f"is {len(text)} bytes; the limit is 100 bytes"):
        SeedEnvelope.parse(text, max_size=100)


def test_a_malformed_envelope_is_not_sent_to_the_provider(
    lookup: Callable[[str], KeyProvider], kms: StandInKms
) -> None:
    with pytest.raises(ConfigError):
        decrypt_seed_envelope(lookup, with_fields(iv="AAAA"), CONTEXT)
    assert kms.unwrapped == []


# -- decryption ------------------------------------------------------------------------------


def test_round_trip_through_the_provider_contract(
    lookup: Callable[[str], KeyProvider], kms: StandInKms
) -> None:
    data = "héllo, seed".encode()
    text = seed_encrypt(kms, data, CONTEXT)
    plaintext = decrypt_seed_envelope(lookup, text, CONTEXT)
    assert isinstance(plaintext, bytearray)
    assert plaintext == data
    [(ref, encrypted, context)] = kms.unwrapped
    assert ref == KeyRef.parse("aws-kms://" + KEY_ARN)
    assert encrypted.provider_id == "aws-kms"
    assert encrypted.provider_info == KEY_ARN.encode()
    assert encrypted.ciphertext == base64.b64decode(json.loads(text)["encryptedDataKey"])
    assert context == EncryptionContext(CONTEXT)
    # The data key is wiped once used.
    assert kms.handed_out[0] == bytearray(32)


def test_empty_payload_and_empty_context(
    lookup: Callable[[str], KeyProvider], kms: StandInKms
) -> None:
    assert decrypt_seed_envelope(lookup, seed_encrypt(kms, b"", {}), None) == b""
    assert decrypt_seed_envelope(lookup, seed_encrypt(kms, b"x", {}), {}) == b"x"


TAMPERS: dict[str, Callable[[bytes], bytes]] = {
    "encrypted: a bit flipped": lambda e: flip("encrypted", e),
    "encrypted: last byte flipped": lambda e: flip("encrypted", e, -1),
    "encrypted: truncated": lambda e: edit(
        e, encrypted=base64.b64encode(base64.b64decode(json.loads(e)["encrypted"])[:-1]).decode()
    ),
    "encrypted: extended": lambda e: edit(
        e, encrypted=base64.b64encode(base64.b64decode(json.loads(e)["encrypted"]) + b"x").decode()
    ),
    "encryptedDataKey: a bit flipped": lambda e: flip("encryptedDataKey", e, 20),
    "iv: a bit flipped": lambda e: flip("iv", e),
    "authTag: a bit flipped": lambda e: flip("authTag", e, 15),
    "keyId: another key": lambda e: edit(e, keyId=OTHER_ARN),
    "keyId: an unknown key": lambda e: edit(e, keyId=KEY_ARN[:-1] + "c"),
}


@pytest.mark.parametrize("tamper", TAMPERS.values(), ids=TAMPERS.keys())
def test_tampering_with_any_field_is_one_opaque_error(
    lookup: Callable[[str], KeyProvider], kms: StandInKms, tamper: Callable[[bytes], bytes]
) -> None:
    text = seed_encrypt(kms, b"sensitive payload", CONTEXT)
    with pytest.raises(DecryptionError) as caught:
        decrypt_seed_envelope(lookup, tamper(text), CONTEXT)
    assert str(caught.value) == "the message could not be decrypted and authenticated"
    assert all(key == bytearray(len(key)) for key in kms.handed_out)


@pytest.mark.parametrize(
    "context",
    [None, {}, {"intentId": "intent-2", "tenant": "acme"}, {**CONTEXT, "extra": "x"}],
    ids=["none", "empty", "other-value", "extra-pair"],
)
def test_the_context_must_be_the_one_the_seed_used(
    lookup: Callable[[str], KeyProvider], kms: StandInKms, context: dict[str, str] | None
) -> None:
    text = seed_encrypt(kms, b"payload", CONTEXT)
    with pytest.raises(DecryptionError):
        decrypt_seed_envelope(lookup, text, context)


def test_a_data_key_of_the_wrong_length_is_refused(
    lookup: Callable[[str], KeyProvider], kms: StandInKms
) -> None:
    text = seed_encrypt(kms, b"payload", CONTEXT)
    kms.key_length = 16
    with pytest.raises(DecryptionError):
        decrypt_seed_envelope(lookup, text, CONTEXT)
    assert kms.handed_out[0] == bytearray(16)


def test_an_unreachable_provider_says_so(
    lookup: Callable[[str], KeyProvider], kms: StandInKms
) -> None:
    kms.fail_with = ProviderUnavailable("KMS cannot be reached", provider="aws-kms")
    with pytest.raises(ProviderUnavailable, match="cannot be reached"):
        decrypt_seed_envelope(lookup, seed_encrypt(kms, b"p", CONTEXT), CONTEXT)


def test_a_key_filter_can_refuse_the_envelopes_key(
    lookup: Callable[[str], KeyProvider], kms: StandInKms
) -> None:
    text = seed_encrypt(kms, b"payload", CONTEXT)
    allowed = KeyFilter(patterns=(f"aws-kms://{OTHER_ARN}",))
    with pytest.raises(DecryptionError, match="is not one this stack may decrypt with"):
        decrypt_seed_envelope(lookup, text, CONTEXT, allowed=allowed)
    assert kms.unwrapped == []
    assert decrypt_seed_envelope(
        lookup, text, CONTEXT, allowed=KeyFilter(patterns=("aws-kms://*",))
    ) == bytearray(b"payload")


# -- the stack -------------------------------------------------------------------------------


def test_stack_decrypt_seed_is_audited(stack: KeyStack, kms: StandInKms) -> None:
    text = seed_encrypt(kms, b"audited payload", CONTEXT)
    with capture_audit() as events:
        assert stack.decrypt_seed(text, context=CONTEXT) == b"audited payload"
        with pytest.raises(DecryptionError):
            stack.decrypt_seed(text, context={"intentId": "intent-9"})
    assert [(e["operation"], e["phase"], e["outcome"]) for e in events] == [
        ("decrypt_seed", "request", "pending"),
        ("decrypt_seed", "outcome", "ok"),
        ("decrypt_seed", "request", "pending"),
        ("decrypt_seed", "outcome", "DecryptionError"),
    ]
    assert events[1]["provider"] == "aws-kms"
    assert events[1]["key_uri"] == f"aws-kms://{KEY_ARN}"
    assert events[1]["byte_count"] == len(b"audited payload")
    assert set(events[1]["context_keys"]) == set(CONTEXT)  # type: ignore[call-overload]
    assert "audited payload" not in repr(events)


def test_stack_decrypt_seed_honours_decrypt_allow(tmp_path: Path, kms: StandInKms) -> None:
    config = {
        "stack": {"decrypt_allow": ["local://*"]},
        "providers": {"local": {"keystore": str(tmp_path / "ks")}},
    }
    with (
        KeyStack.from_dict(config, providers={"aws-kms": kms}) as stack,
        pytest.raises(DecryptionError, match="not one this stack may decrypt with"),
    ):
        stack.decrypt_seed(seed_encrypt(kms, b"p", CONTEXT), context=CONTEXT)


@pytest.mark.parametrize("signed", [False, True])
def test_migrate_seed_gives_a_current_message_with_the_context(
    stack: KeyStack, kms: StandInKms, signed: bool
) -> None:
    data = os.urandom(5000)
    message = stack.migrate_seed(seed_encrypt(kms, data, CONTEXT), context=CONTEXT, signed=signed)
    info = stack.inspect(message)
    assert info.signed is signed
    assert {k: v for k, v in info.context.items() if not k.startswith("aws-crypto-")} == CONTEXT
    assert [r.provider_id for r in info.recipients] == ["aureus-local"]
    assert stack.decrypt(message, context=CONTEXT) == data
    assert stack.decrypt(message, keys=["local://current"]) == data


def test_migrate_seed_to_chosen_keys(stack: KeyStack, kms: StandInKms) -> None:
    stack.create_key("dr", "aes-256")
    message = stack.migrate_seed(
        seed_encrypt(kms, b"payload", CONTEXT), context=CONTEXT, keys=["local://dr"]
    )
    assert stack.decrypt(message, keys=["local://dr"]) == b"payload"


def test_migrate_seed_with_the_wrong_context_fails(stack: KeyStack, kms: StandInKms) -> None:
    with capture_audit() as events, pytest.raises(DecryptionError):
        stack.migrate_seed(seed_encrypt(kms, b"payload", CONTEXT), context={"tenant": "acme"})
    assert {e["operation"] for e in events} == {"decrypt_seed"}  # nothing was encrypted


# -- the command line -----------------------------------------------------------------------


@pytest.fixture
def run(stack: KeyStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """``aureus`` in-process, its stack the one with the stand-in provider."""
    monkeypatch.setattr(migrate_cli, "stack_of", lambda ctx: stack)
    monkeypatch.chdir(tmp_path)

    def invoke(*args: str, input: bytes | None = None) -> Any:
        return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)

    return invoke


def test_cli_migrate_to_a_file(
    run: Callable[..., Any], stack: KeyStack, kms: StandInKms, tmp_path: Path
) -> None:
    (tmp_path / "seed.json").write_bytes(seed_encrypt(kms, b"from the cli", CONTEXT))
    result = run(
        "migrate", "--context", "intentId=intent-1", "--context", "tenant=acme",
        "-o", "msg.aes", "seed.json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    message = (tmp_path / "msg.aes").read_bytes()
    assert stack.decrypt(message, context=CONTEXT) == b"from the cli"


def test_cli_migrate_stdin_to_stdout_with_key_and_signed(
    run: Callable[..., Any], stack: KeyStack, kms: StandInKms
) -> None:
    stack.create_key("dr", "aes-256")
    result = run(
        "migrate", "--key", "local://dr", "--signed", "--context", "intentId=intent-1",
        "--context", "tenant=acme",
        input=seed_encrypt(kms, b"piped", CONTEXT),
    )  # fmt: skip
    assert result.exit_code == 0
    assert stack.inspect(result.stdout_bytes).signed
    assert stack.decrypt(result.stdout_bytes, keys=["local://dr"]) == b"piped"


def test_cli_migrate_wrong_context_exits_1_and_writes_nothing(
    run: Callable[..., Any], kms: StandInKms, tmp_path: Path
) -> None:
    (tmp_path / "seed.json").write_bytes(seed_encrypt(kms, b"secret", CONTEXT))
    result = run("migrate", "--context", "tenant=acme", "-o", "msg.aes", "seed.json")
    assert result.exit_code == 1
    assert result.stderr.startswith("aureus: error: the message could not be decrypted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ks", "seed.json"]


def test_cli_migrate_malformed_envelope_exits_2(run: Callable[..., Any], tmp_path: Path) -> None:
    (tmp_path / "seed.json").write_bytes(with_fields(authTag=None))
    result = run("migrate", "-o", "msg.aes", "seed.json")
    assert result.exit_code == 2
    assert "seed envelope: missing field(s) authTag" in result.stderr
    assert not (tmp_path / "msg.aes").exists()
