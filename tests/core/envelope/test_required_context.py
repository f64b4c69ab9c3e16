"""Required encryption context: pairs authenticated but not stored in the message."""

from __future__ import annotations

import base64
import io
import json
import os
import zipfile
from pathlib import Path

import aws_encryption_sdk
import pytest
from aws_encryption_sdk.identifiers import CommitmentPolicy as SdkPolicy
from click.testing import CliRunner
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from aureus_core import ConfigError, DecryptionError
from aureus_core.cli import main
from aureus_core.context import EncryptionContext
from aureus_core.envelope.header import Limits, parse_header
from aureus_core.envelope.keys import derive_keys
from aureus_core.envelope.message import MessageReader
from aureus_core.envelope.reader import Reader
from aureus_core.envelope.suites import CommitmentPolicy

CONTEXT = {"tenant": "acme", "purpose": "billing"}


@pytest.mark.parametrize("signed", [False, True], ids=["0x0478", "0x0578"])
def test_required_pairs_are_authenticated_but_not_stored(stack, signed):
    message = stack.encrypt(b"secret", context=CONTEXT, required_context=["tenant"], signed=signed)
    assert b"tenant" not in message
    assert b"acme" not in message
    assert dict(stack.inspect(message).context) == {"purpose": "billing"}
    assert stack.decrypt(message, context={"tenant": "acme"}) == b"secret"
    assert stack.decrypt(message, context=CONTEXT) == b"secret"
    out = io.BytesIO()
    stack.decrypt_stream(io.BytesIO(message), out, context={"tenant": "acme"})
    assert out.getvalue() == b"secret"
    # Missing, wrong, or extra pairs fail; the error says what the context meant.
    with pytest.raises(DecryptionError, match="supply those pairs in context="):
        stack.decrypt(message)
    with pytest.raises(DecryptionError, match="'tenant' you supplied are not stored"):
        stack.decrypt(message, context={"tenant": "other"})
    with pytest.raises(DecryptionError, match="'extra', 'tenant' you supplied are not stored"):
        stack.decrypt(message, context={"tenant": "acme", "extra": "x"})
    with pytest.raises(DecryptionError, match="does not match"):
        stack.decrypt(message, context={"tenant": "acme", "purpose": "other"})


def test_a_pair_not_stored_is_not_silently_accepted(stack):
    """A plain message decrypted with an extra pair: refused, as a required pair would be."""
    message = stack.encrypt(b"secret", context={"purpose": "billing"})
    with pytest.raises(DecryptionError, match="'tenant' you supplied are not stored"):
        stack.decrypt(message, context={"tenant": "acme"})


def test_wire_layout_by_hand(stack, raw_keys):
    """Header tag over header body || required pairs; the data key wrapped with all pairs."""
    message = stack.encrypt(b"by hand", context=CONTEXT, required_context=["tenant"])
    header, raw = parse_header(Reader(message), Limits())
    tag = message[len(raw) : len(raw) + 16]
    (edk,) = header.encrypted_data_keys
    full = EncryptionContext(CONTEXT).serialize()
    data_key = AESGCM(raw_keys["alpha"]).decrypt(edk.provider_info[-12:], edk.ciphertext, full)
    with pytest.raises(Exception):  # noqa: B017, PT011 - the stored context alone does not unwrap
        AESGCM(raw_keys["alpha"]).decrypt(
            edk.provider_info[-12:], edk.ciphertext, header.context.serialize()
        )
    key, _ = derive_keys(header.suite, data_key, header.message_id)
    required = EncryptionContext({"tenant": "acme"}).serialize()
    assert AESGCM(key).encrypt(bytes(12), b"", raw + required) == tag
    assert AESGCM(key).encrypt(bytes(12), b"", raw) != tag


def test_required_keys_are_checked_before_any_key_is_used(stack):
    with pytest.raises(ConfigError, match="'missing' is not in the encryption context"):
        stack.encrypt(b"x", context=CONTEXT, required_context=["missing"])
    with pytest.raises(ConfigError, match="list of context keys"):
        stack.encrypt(b"x", context=CONTEXT, required_context="tenant")
    with pytest.raises(ConfigError, match="not in the encryption context"):
        stack.encrypt_stream(
            io.BytesIO(b"x"), io.BytesIO(), context=CONTEXT, required_context=["nope"]
        )


def test_rewrap_keeps_required_context_required(stack):
    message = stack.encrypt(b"x", context=CONTEXT, required_context=["tenant"])
    with pytest.raises(DecryptionError):
        stack.rewrap(message, to_keys=["local://beta"])  # the required pair is missing
    new = stack.rewrap(message, to_keys=["local://beta"], context={"tenant": "acme"})
    assert "tenant" not in MessageReader(new).stored_context  # still not stored
    assert stack.decrypt(new, context={"tenant": "acme"}, keys=["local://beta"]) == b"x"
    with pytest.raises(DecryptionError):
        stack.decrypt(new, keys=["local://beta"])
    with pytest.raises(DecryptionError):
        stack.decrypt(new, context={"tenant": "other"}, keys=["local://beta"])


def test_cli_required_context(stack, tmp_path, monkeypatch):
    keystore = tmp_path / "ks"
    config = tmp_path / "aureus.toml"
    config.write_text(f'[providers.local]\nkeystore = "{keystore}"\n')
    monkeypatch.setenv("AUREUS_CONFIG", str(config))
    source = tmp_path / "in.txt"
    source.write_bytes(b"cli secret")
    runner = CliRunner()
    sealed = tmp_path / "in.aes"
    result = runner.invoke(
        main,
        [
            "encrypt",
            "--key",
            "local://alpha",
            "--context",
            "tenant=acme",
            "--context",
            "purpose=cli",
            "--required-context",
            "tenant",
            "-o",
            str(sealed),
            str(source),
        ],
    )
    assert result.exit_code == 0, result.output
    shown = runner.invoke(main, ["inspect", str(sealed)])
    assert "tenant" not in shown.output
    assert "required context: not recorded" in shown.output
    as_json = json.loads(runner.invoke(main, ["inspect", "--json", str(sealed)]).output)
    assert as_json["required_context_keys"] is None
    assert as_json["encryption_context"] == {"purpose": "cli"}
    plain = tmp_path / "out.txt"
    refused = runner.invoke(main, ["decrypt", "-o", str(plain), str(sealed)])
    assert refused.exit_code == 1
    assert not plain.exists()
    result = runner.invoke(
        main, ["decrypt", "--context", "tenant=acme", "-o", str(plain), str(sealed)]
    )
    assert result.exit_code == 0, result.output
    assert plain.read_bytes() == b"cli secret"
    bad = runner.invoke(
        main,
        ["encrypt", "--key", "local://alpha", "--required-context", "tenant", str(source)],
    )
    assert bad.exit_code == 2
    assert "not in the encryption context" in bad.output


# -- the official SDK with the Material Providers Library ------------------------------


@pytest.fixture
def mpl_cmms(raw_keys):
    """The SDK's default and required-context CMMs over the raw AES key ``alpha:1``."""
    mpl = pytest.importorskip("aws_cryptographic_material_providers.mpl")
    from aws_cryptographic_material_providers.mpl.config import MaterialProvidersConfig
    from aws_cryptographic_material_providers.mpl.models import (
        AesWrappingAlg,
        CreateDefaultCryptographicMaterialsManagerInput,
        CreateRawAesKeyringInput,
        CreateRequiredEncryptionContextCMMInput,
    )

    providers = mpl.AwsCryptographicMaterialProviders(config=MaterialProvidersConfig())
    keyring = providers.create_raw_aes_keyring(
        CreateRawAesKeyringInput(
            key_namespace="aureus-local",
            key_name="alpha:1",
            wrapping_key=raw_keys["alpha"],
            wrapping_alg=AesWrappingAlg.ALG_AES256_GCM_IV12_TAG16,
        )
    )
    default = providers.create_default_cryptographic_materials_manager(
        CreateDefaultCryptographicMaterialsManagerInput(keyring=keyring)
    )
    required = providers.create_required_encryption_context_cmm(
        CreateRequiredEncryptionContextCMMInput(
            underlying_cmm=default, required_encryption_context_keys=["tenant"]
        )
    )
    return default, required


def _sdk():
    return aws_encryption_sdk.EncryptionSDKClient(
        commitment_policy=SdkPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
    )


def test_sdk_required_context_messages_decrypt(stack, mpl_cmms):
    _, required = mpl_cmms
    for frame_length in (0, 1024):
        message, _ = _sdk().encrypt(
            source=b"from the sdk" * 200,
            materials_manager=required,
            encryption_context=CONTEXT,
            frame_length=frame_length,
        )
        assert "tenant" not in stack.inspect(message).context
        assert stack.decrypt(message, context={"tenant": "acme"}) == b"from the sdk" * 200
        with pytest.raises(DecryptionError):
            stack.decrypt(message)
        with pytest.raises(DecryptionError):
            stack.decrypt(message, context={"tenant": "evil"})


@pytest.mark.parametrize("signed", [False, True], ids=["0x0478", "0x0578"])
def test_sdk_decrypts_aureus_required_context(stack, mpl_cmms, signed):
    default, required = mpl_cmms
    message = stack.encrypt(
        b"to the sdk", context=CONTEXT, required_context=["tenant"], signed=signed
    )
    for cmm in (default, required):
        plaintext, _ = _sdk().decrypt(
            source=message, materials_manager=cmm, encryption_context={"tenant": "acme"}
        )
        assert plaintext == b"to the sdk"
    with pytest.raises(aws_encryption_sdk.exceptions.AWSEncryptionSDKClientError):
        _sdk().decrypt(source=message, materials_manager=default)


# -- the official invalid vectors --------------------------------------------------------


def _vectors() -> Path:
    """The official invalid vectors (a copy lives in tests/data/esdk; see its README)."""
    override = os.environ.get("AUREUS_ESDK_VECTORS")
    base = Path(override) if override else Path(__file__).parents[2] / "data" / "esdk"
    archive = base / "invalid-Net-4.0.0.zip"
    assert archive.is_file(), f"the official invalid vectors are missing: {archive}"
    return archive


def _unwrap_raw_aes(material: bytes, reader: MessageReader, full: EncryptionContext) -> bytes:
    """The raw AES keyring's unwrap, by hand: IV at the end of the provider info."""
    (edk,) = reader.header.encrypted_data_keys
    return AESGCM(material).decrypt(edk.provider_info[-12:], edk.ciphertext, full.serialize())


def test_invalid_net_required_context_vectors_are_refused():
    """The .NET 4.0.0 vectors break the header authentication rule: every one is refused.

    Each data key unwraps (with the stored pairs plus the manifest's context,
    which is what proves the wrap AAD reading), and each header tag then fails.
    For the suites without HKDF and the committing ones, the tag verifies only
    if the empty required context is taken as a 2-byte zero count instead of
    no bytes at all: the defect of that release.
    """
    with zipfile.ZipFile(_vectors()) as archive:
        names = archive.namelist()
        root = next(n for n in names if n.endswith("manifest.json"))[: -len("manifest.json")]
        manifest = json.loads(archive.read(root + "manifest.json"))
        keys = json.loads(archive.read(root + "keys.json"))["keys"]
        material = base64.b64decode(keys["aes-256"]["material"])
        tests = manifest["tests"]
        assert len(tests) == 28
        required_cmm = 0
        for name, test in sorted(tests.items()):
            (master,) = test["master-keys"]
            assert master["key"] == "aes-256"
            supplied = EncryptionContext(test.get("encryption-context", {}))
            message = archive.read(root + test["ciphertext"][len("file://") :])
            reader = MessageReader(message, policy=CommitmentPolicy.FORBID_ENCRYPT_ALLOW_DECRYPT)
            stored = reader.header.context
            required = EncryptionContext({k: v for k, v in supplied.items() if k not in stored})
            if test["cmm"] == "RequiredEncryptionContext":
                required_cmm += 1
                assert required, name  # its pairs really are left out of the header
            full = EncryptionContext._unchecked_reserved({**stored, **supplied})
            data_key = _unwrap_raw_aes(material, reader, full)
            with pytest.raises(DecryptionError):
                reader.unlock(data_key, required)
            suite = reader.header.suite
            if suite.committing or suite.kdf_hash is None:
                key, _ = derive_keys(suite, data_key, reader.header.message_id)
                defective = reader._raw_header + (required.serialize() or b"\x00\x00")
                AESGCM(key).decrypt(reader._auth_iv, reader._auth_tag, defective)
        assert required_cmm == 6
