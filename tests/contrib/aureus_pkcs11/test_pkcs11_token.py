"""The PKCS#11 provider against a real SoftHSM2 token: what the conformance kit cannot see.

Key material never leaves the token, wrong PINs, keys made by other tools,
rotation, many threads at once, a token that goes away and comes back.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import pkcs11
import pytest
from pkcs11 import Attribute, ObjectClass
from pkcs11 import exceptions as p11

from aureus_core.context import EncryptionContext
from aureus_core.datakey import EncryptedDataKey
from aureus_core.errors import (
    AureusError,
    ConfigError,
    CredentialError,
    DecryptionError,
    KeyExists,
    KeyNotFound,
    ProviderUnavailable,
)
from aureus_core.interfaces import KeyMaterial
from aureus_core.keyref import KeyRef
from aureus_core.keys import KeySpec, KeyType
from aureus_core.sensitive import Secret
from aureus_core.testing.concurrency import run_in_threads
from aureus_pkcs11 import PROVIDER_ID, Pkcs11KeyProvider
from aureus_pkcs11.errors import CKR_NAMES, translate
from aureus_pkcs11.softhsm import SoftHsm

MakeProvider = Callable[..., Pkcs11KeyProvider]
# The session's tokens (see conftest.py; the tokens fixture hands out the same values).
TOKEN, OTHER_TOKEN, SPARE_TOKEN, PIN = "aureus-test", "aureus-pins", "aureus-spare", "4711-user"
CONTEXT = EncryptionContext({"tenant": "acme", "purpose": "pkcs11-tests"})


def _name() -> str:
    return f"k-{uuid.uuid4().hex[:10]}"


def _objects(provider: Pkcs11KeyProvider, label: str) -> list[pkcs11.Object]:
    return provider._pool.run(
        "test", lambda session: list(session.get_objects({Attribute.LABEL: label}))
    )


# -- key material stays on the token ------------------------------------------


@pytest.mark.parametrize("key_type", [KeyType.AES_256, KeyType.ED25519, KeyType.ECDSA_P256])
def test_token_refuses_to_reveal_key_value(make_provider: MakeProvider, key_type: KeyType) -> None:
    """Asking the token for CKA_VALUE of a created key is refused: sensitive, non-extractable."""
    provider = make_provider()
    name = _name()
    provider.create_key(name, KeySpec(key_type=key_type))
    secret_class = (
        ObjectClass.SECRET_KEY if key_type is KeyType.AES_256 else ObjectClass.PRIVATE_KEY
    )

    def ask(session: pkcs11.Session) -> list[tuple[bool, bool, bool]]:
        answers = []
        for obj in session.get_objects({Attribute.LABEL: name, Attribute.CLASS: secret_class}):
            with pytest.raises(p11.AttributeSensitive):
                obj[Attribute.VALUE]
            answers.append(
                (
                    obj[Attribute.SENSITIVE],
                    obj[Attribute.EXTRACTABLE],
                    obj[Attribute.ALWAYS_SENSITIVE],
                )
            )
        return answers

    assert provider._pool.run("test", ask) == [(True, False, True)]


def test_wrapped_key_layout_is_the_documented_one(make_provider: MakeProvider) -> None:
    """Provider ID, provider info and ciphertext follow docs/pkcs11.md byte for byte."""
    provider = make_provider()
    name = _name()
    provider.create_key(name, KeySpec(key_type=KeyType.AES_256))
    data_key = os.urandom(32)
    wrapped = provider.wrap(provider._name(name).ref(), data_key, CONTEXT)
    edk = wrapped.encrypted
    assert edk.provider_id == PROVIDER_ID == "aureus-pkcs11"
    assert edk.provider_info == f"pkcs11://{TOKEN}/{name}?version=1".encode()
    assert edk.ciphertext[0] == 1
    assert len(edk.ciphertext) == 1 + 12 + 32 + 16
    assert data_key not in edk.ciphertext


def test_provider_info_is_authenticated(make_provider: MakeProvider) -> None:
    """A wrapped key relabelled as another key with the same material does not unwrap.

    Two keys holding the same AES bytes (one imported twice, say) would accept each
    other's wrapped keys if only the context were authenticated; the key URI is too.
    """
    provider = make_provider()
    first, second = _name(), _name()
    material = os.urandom(32)
    for name in (first, second):
        provider.import_key(
            name,
            KeySpec(key_type=KeyType.AES_256),
            KeyMaterial(format="raw", data=Secret(material)),
        )
    first_ref, second_ref = provider._name(first).ref(), provider._name(second).ref()
    data_key = os.urandom(32)
    wrapped = provider.wrap(first_ref, data_key, CONTEXT)
    assert bytes(provider.unwrap(first_ref, wrapped.encrypted, CONTEXT)) == data_key
    # Whoever may edit a message header points the wrapped key at the second key.
    relabelled = EncryptedDataKey(
        provider_id=PROVIDER_ID,
        provider_info=f"pkcs11://{TOKEN}/{second}?version=1".encode(),
        ciphertext=wrapped.encrypted.ciphertext,
    )
    assert provider.owner_of(relabelled) == second_ref.with_version("1")
    with pytest.raises(DecryptionError):
        provider.unwrap(second_ref, relabelled, CONTEXT)


# -- PINs and errors ------------------------------------------------------------


def test_wrong_pin_is_credential_error_naming_the_code(make_provider: MakeProvider) -> None:
    """A wrong PIN is a CredentialError that says CKR_PIN_INCORRECT and carries the code."""
    with pytest.raises(CredentialError) as refused:
        make_provider(token=OTHER_TOKEN, pin="not-the-pin")
    assert "CKR_PIN_INCORRECT" in str(refused.value)
    assert "PIN is wrong" in str(refused.value)
    assert refused.value.code == "CKR_PIN_INCORRECT"
    assert "not-the-pin" not in str(refused.value)
    # The right PIN still works afterwards.
    assert make_provider(token=OTHER_TOKEN, pin=PIN).token == OTHER_TOKEN


def test_locked_pin_is_credential_error_saying_locked() -> None:
    """CKR_PIN_LOCKED maps to a CredentialError that says the PIN is locked.

    SoftHSM2 2.6.1 never locks a user PIN (twelve wrong logins in a row still
    leave it usable), so this checks the mapping the pool applies to the
    binding's exception rather than a token that really locked.
    """
    error = translate(p11.PinLocked(), operation="login", token="hsm")
    assert isinstance(error, CredentialError)
    assert "CKR_PIN_LOCKED" in str(error)
    assert "locked" in str(error).split("CKR_PIN_LOCKED", 1)[1]
    assert error.code == "CKR_PIN_LOCKED"


@pytest.mark.parametrize("error_class", list(CKR_NAMES), ids=lambda c: c.__name__)
def test_every_ckr_code_maps_to_an_aureus_error_with_the_code(
    error_class: type[p11.PKCS11Error],
) -> None:
    """Every return code the binding knows becomes an AureusError whose message names it."""
    error = translate(error_class(), operation="sign", token="hsm")
    assert isinstance(error, AureusError)
    assert CKR_NAMES[error_class] in str(error)


def test_the_pin_comes_from_no_static_source(softhsm: SoftHsm) -> None:
    """The provider refuses a PIN written into the configuration (a 'static' source)."""
    from aureus_builtin.credential_sources import StaticCredentialSource
    from aureus_core.interfaces import ProviderSettings
    from aureus_pkcs11.plugin import create_provider

    settings = ProviderSettings(
        options={"module": softhsm.module, "token": TOKEN},
        credentials=StaticCredentialSource({"pin": PIN}),
    )
    with pytest.raises(CredentialError, match="static"):
        create_provider(settings)


def test_pin_file_source(softhsm: SoftHsm, tmp_path: Path) -> None:
    """The pin-file source reads an owner-only file and refuses one others may read."""
    from aureus_core.interfaces import ProviderSettings
    from aureus_pkcs11.plugin import PinFileSource, create_provider

    pin_file = tmp_path / "pin"
    pin_file.write_text(PIN + "\n", encoding="utf-8")
    pin_file.chmod(0o644)
    source = PinFileSource(pin_file)
    with pytest.raises(CredentialError, match="chmod 600"):
        source.get_credentials()
    pin_file.chmod(0o600)
    assert source.get_credentials().values["pin"].reveal() == PIN
    settings = ProviderSettings(
        options={"module": softhsm.module, "token": TOKEN}, credentials=source
    )
    provider = create_provider(settings)
    try:
        assert provider.token == TOKEN
    finally:
        provider.close()


def test_unknown_token_is_provider_unavailable_with_a_hint(make_provider: MakeProvider) -> None:
    """A token label that no slot shows is ProviderUnavailable saying how to list tokens."""
    with pytest.raises(ProviderUnavailable, match="pkcs11-tool") as missing:
        make_provider(token="no-such-token")
    assert missing.value.code == "CKR_TOKEN_NOT_PRESENT"


def test_uri_for_another_token_is_refused(make_provider: MakeProvider) -> None:
    """A URI naming another token than the provider's is a ConfigError, not a guess."""
    provider = make_provider()
    with pytest.raises(ConfigError, match=OTHER_TOKEN):
        provider.describe_key(provider._name(f"pkcs11://{OTHER_TOKEN}/x").ref())


# -- versions and adoption ------------------------------------------------------


def test_rotation_creates_a_new_object_and_old_versions_keep_working(
    make_provider: MakeProvider,
) -> None:
    """Each version is its own object (CKA_ID 01, 02); old wraps unwrap, old signatures verify."""
    provider = make_provider()
    wrap_name, sign_name = _name(), _name()
    provider.create_key(wrap_name, KeySpec(key_type=KeyType.AES_256))
    provider.create_key(sign_name, KeySpec(key_type=KeyType.ED25519))
    wrap_ref, sign_ref = provider._name(wrap_name).ref(), provider._name(sign_name).ref()
    data_key = os.urandom(32)
    old_wrap = provider.wrap(wrap_ref, data_key, CONTEXT)
    old_signature = provider.sign(sign_ref, b"release")
    assert provider.rotate_key(wrap_ref).current_version == "2"
    assert provider.rotate_key(sign_ref).current_version == "2"
    ids = sorted(
        bytes(obj[Attribute.ID])
        for obj in _objects(provider, wrap_name)
        if obj[Attribute.CLASS] == ObjectClass.SECRET_KEY
    )
    assert ids == [b"\x01", b"\x02"]
    assert bytes(provider.unwrap(wrap_ref, old_wrap.encrypted, CONTEXT)) == data_key
    assert provider.wrap(wrap_ref, data_key, CONTEXT).key.version == "2"
    assert provider.verify(sign_ref.with_version("1"), b"release", old_signature.value)
    assert not provider.verify(sign_ref.with_version("2"), b"release", old_signature.value)


def _pkcs11_tool(softhsm: SoftHsm, *args: str) -> None:
    tool = shutil.which("pkcs11-tool")
    if tool is None:
        pytest.skip("pkcs11-tool is not installed (apt-get install opensc)")
    subprocess.run(
        [tool, "--module", softhsm.module, "--token-label", TOKEN, "--login", "--pin", PIN, *args],
        check=True,
        capture_output=True,
        env={**os.environ, **softhsm.environment()},
    )


def test_keys_made_by_pkcs11_tool_are_adopted(
    make_provider: MakeProvider, softhsm: SoftHsm
) -> None:
    """An AES key and an EC key pair made by pkcs11-tool are used, listed and rotated.

    pkcs11-tool makes a secret key private only with ``--private`` (a key pair's
    private half always); its public half stays public and is checked before use.
    """
    aes, ec = _name(), _name()
    _pkcs11_tool(
        softhsm,
        *("--keygen", "--key-type", "AES:32", "--label", aes, "--id", "01"),
        *("--sensitive", "--private"),
    )
    _pkcs11_tool(
        softhsm, "--keypairgen", "--key-type", "EC:prime256v1", "--label", ec, "--id", "03"
    )
    # A provider started after the objects appeared, as an operator would run it.
    provider = make_provider()
    aes_ref, ec_ref = provider._name(aes).ref(), provider._name(ec).ref()
    described = provider.describe_key(aes_ref)
    assert described.key_type is KeyType.AES_256
    assert described.current_version == "1"
    assert provider.describe_key(ec_ref).key_type is KeyType.ECDSA_P256
    assert provider.describe_key(ec_ref).current_version == "3"
    assert {aes_ref.uri, ec_ref.uri} <= {m.uri for m in provider.list_keys()}
    data_key = os.urandom(32)
    wrapped = provider.wrap(aes_ref, data_key, CONTEXT)
    assert bytes(provider.unwrap(aes_ref, wrapped.encrypted, CONTEXT)) == data_key
    signature = provider.sign(ec_ref, b"adopted")
    assert signature.key_version == "3"
    assert provider.verify(ec_ref, b"adopted", signature.value)
    assert provider.rotate_key(aes_ref).current_version == "2"
    assert bytes(provider.unwrap(aes_ref, wrapped.encrypted, CONTEXT)) == data_key


def test_create_refuses_a_name_the_token_already_holds(
    make_provider: MakeProvider, softhsm: SoftHsm
) -> None:
    """A label another tool used is KeyExists, not a second version 1."""
    name = _name()
    _pkcs11_tool(
        softhsm, "--keygen", "--key-type", "AES:32", "--label", name, "--id", "01", "--private"
    )
    provider = make_provider()
    with pytest.raises(KeyExists):
        provider.create_key(name, KeySpec(key_type=KeyType.AES_256))


# -- threads and sessions -------------------------------------------------------


def test_eight_threads_sign_and_wrap_at_once(make_provider: MakeProvider) -> None:
    """8 threads sign and wrap on one provider; every result is right; sessions stay bounded."""
    provider = make_provider(size=3)
    wrap_name, sign_name = _name(), _name()
    provider.create_key(wrap_name, KeySpec(key_type=KeyType.AES_256))
    provider.create_key(sign_name, KeySpec(key_type=KeyType.ECDSA_P256))
    wrap_ref, sign_ref = provider._name(wrap_name).ref(), provider._name(sign_name).ref()
    opened: list[int] = []

    def task(thread: int, operation: int) -> bool:
        message = f"{thread}/{operation}".encode()
        if (thread + operation) % 2:
            signature = provider.sign(sign_ref, message)
            return provider.verify(sign_ref, message, signature.value) and not provider.verify(
                sign_ref, message + b"!", signature.value
            )
        data_key = os.urandom(32)
        context = EncryptionContext({"thread": str(thread)})
        wrapped = provider.wrap(wrap_ref, data_key, context)
        opened.append(len(provider._pool._idle))
        return bytes(provider.unwrap(wrap_ref, wrapped.encrypted, context)) == data_key

    results = run_in_threads(task, threads=8, operations=10)
    assert results == [True] * 80
    assert max(opened) <= 3
    assert len(provider._pool._idle) <= 3


# -- the token goes away ----------------------------------------------------------


# python-pkcs11 finalises an object search again when the search object is collected; on a
# session the restart voided that fails once more, and the binding reports it as unraisable.
@pytest.mark.filterwarnings(
    "ignore:Exception ignored in.*OperationContext:pytest.PytestUnraisableExceptionWarning"
)
def test_token_that_disappears_and_returns_is_reconnected(
    make_provider: MakeProvider, softhsm: SoftHsm, token_dir: Callable[[str], Path]
) -> None:
    """The module restarts without the token: ProviderUnavailable; with it back: it works again."""
    provider = make_provider(token=SPARE_TOKEN, retries=2, backoff=0.01)
    name = _name()
    provider.create_key(name, KeySpec(key_type=KeyType.AES_256))
    ref = provider._name(name).ref()
    data_key = os.urandom(32)
    wrapped = provider.wrap(ref, data_key, CONTEXT)
    directory = token_dir(SPARE_TOKEN)
    away = softhsm.directory / f"removed-{directory.name}"
    library = pkcs11.lib(softhsm.module)
    directory.rename(away)
    try:
        # The HSM restarts without the token: every session handle is now void.
        library.reinitialize()
        with pytest.raises(ProviderUnavailable) as gone:
            provider.wrap(ref, data_key, CONTEXT)
        assert "CKR_" in str(gone.value)
    finally:
        away.rename(directory)
    # The token is back: the same provider finds it again, logs in and carries on.
    assert bytes(provider.unwrap(ref, wrapped.encrypted, CONTEXT)) == data_key
    assert provider._pool.reconnects >= 1
    # Providers on the other tokens recover from the restart too.
    other = make_provider()
    assert other.list_keys() is not None


def test_missing_key_is_key_not_found(make_provider: MakeProvider) -> None:
    """A name with no object on the token is KeyNotFound naming the URI."""
    provider = make_provider()
    with pytest.raises(KeyNotFound, match="nothing-here"):
        provider.sign(provider._name("nothing-here").ref(), b"x")


def test_second_pin_for_a_logged_in_token_is_refused(make_provider: MakeProvider) -> None:
    """A token logged in to by this process cannot be joined with another PIN."""
    first = make_provider()
    with pytest.raises(CredentialError, match="another PIN") as refused:
        make_provider(pin="some-other-pin")
    assert "some-other-pin" not in str(refused.value)
    assert first.list_keys() is not None  # the first provider's login is untouched


def test_wrapped_key_naming_another_token_is_not_ours(make_provider: MakeProvider) -> None:
    """A message naming a key on another token is never unwrapped by this token's provider."""
    provider = make_provider()
    name = _name()
    provider.create_key(name, KeySpec(key_type=KeyType.AES_256))
    wrapped = provider.wrap(provider._name(name).ref(), os.urandom(32), CONTEXT).encrypted
    foreign = EncryptedDataKey(
        provider_id=PROVIDER_ID,
        provider_info=f"pkcs11://{OTHER_TOKEN}/{name}?version=1".encode(),
        ciphertext=wrapped.ciphertext,
    )
    assert provider.owner_of(foreign) is None
    with pytest.raises(DecryptionError):
        provider.unwrap(provider._name(name).ref(), foreign, CONTEXT)
    refusal = provider.discovery_refusal(
        KeyRef.parse(f"pkcs11://{OTHER_TOKEN}/{name}?version=1"), []
    )
    assert refusal is not None
    assert OTHER_TOKEN in refusal
    assert provider.discovery_refusal(provider._name(name).ref(1), []) is None


@pytest.mark.parametrize(
    ("key_type", "digest"), [(KeyType.ECDSA_P256, "-sha256"), (KeyType.ECDSA_P384, "-sha384")]
)
def test_openssl_verifies_ecdsa_signatures_with_the_exported_pem(
    make_provider: MakeProvider, tmp_path: Path, key_type: KeyType, digest: str
) -> None:
    """DER ECDSA signatures from the token (host-hashed on SoftHSM2) verify with openssl dgst."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    provider = make_provider()
    name = _name()
    provider.create_key(name, KeySpec(key_type=key_type))
    ref = provider._name(name).ref()
    message = b"artifact bytes " * 50
    (tmp_path / "message").write_bytes(message)
    (tmp_path / "key.pem").write_bytes(provider.public_key(ref))
    (tmp_path / "message.sig").write_bytes(provider.sign(ref, message).value)

    def check() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [openssl, "dgst", digest, "-verify", "key.pem", "-signature", "message.sig", "message"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
        )

    accepted = check()
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert "Verified OK" in accepted.stdout
    (tmp_path / "message").write_bytes(message + b".")
    assert check().returncode != 0


def test_declared_key_types_follow_the_mechanism_list(make_provider: MakeProvider) -> None:
    """SoftHSM2's list gives every type; a list without GCM or EdDSA drops exactly those."""
    from pkcs11 import Mechanism

    from aureus_pkcs11.provider import supported_key_types

    provider = make_provider()
    mechanisms = provider._pool.mechanisms
    assert Mechanism.ECDSA_SHA256 not in mechanisms  # SoftHSM2 2.6.1: the host hashes
    assert provider.key_types == {
        KeyType.AES_256,
        KeyType.ED25519,
        KeyType.ECDSA_P256,
        KeyType.ECDSA_P384,
        KeyType.RSA_2048,
        KeyType.RSA_3072,
        KeyType.RSA_4096,
    }
    reduced = supported_key_types(mechanisms - {Mechanism.AES_GCM, Mechanism.EDDSA})
    assert KeyType.AES_256 not in reduced
    assert KeyType.ED25519 not in reduced
    assert KeyType.ECDSA_P256 in reduced
