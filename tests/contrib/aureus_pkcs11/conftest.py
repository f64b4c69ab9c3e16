"""Fixtures for the PKCS#11 provider: a fresh SoftHSM2 token directory per test session.

SoftHSM2 reads ``SOFTHSM2_CONF`` once, when its module is first initialised in
the process, so every token the tests use is created here, before any
provider loads the module.  Without SoftHSM2 (or python-pkcs11) the tests
skip, unless ``AUREUS_REQUIRE_SOFTHSM=1`` (the nox ``pkcs11`` row) makes that
a failure; without the ``aureus-pkcs11`` distribution they are not collected.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest

_REQUIRED = os.environ.get("AUREUS_REQUIRE_SOFTHSM") == "1"

try:
    import pkcs11  # noqa: F401

    import aureus_pkcs11  # noqa: F401
except ImportError:  # pragma: no cover - depends on the environment
    if _REQUIRED:
        raise
    collect_ignore_glob = ["test_*.py"]

PIN = "4711-user"
SO_PIN = "0815-officer"
TOKEN = "aureus-test"
OTHER_TOKEN = "aureus-pins"
"""A token for the wrong-PIN tests: nothing logs in to it successfully."""
SPARE_TOKEN = "aureus-spare"
"""A token whose directory the removal test moves away and back."""


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A SoftHSM2 configuration with the test tokens, set in the environment for the session."""
    from aureus_pkcs11.softhsm import SoftHsm, find_module

    if shutil.which("softhsm2-util") is None or find_module() is None:
        message = "SoftHSM2 is not installed (apt-get install softhsm2)"
        if _REQUIRED:
            pytest.fail(message)
        pytest.skip(message)
    hsm = SoftHsm(tmp_path_factory.mktemp("softhsm"))
    for label in (TOKEN, OTHER_TOKEN, SPARE_TOKEN):
        hsm.create_token(label, pin=PIN, so_pin=SO_PIN)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in hsm.environment().items():
            patch.setenv(name, value)
        yield hsm


@attrs.frozen
class Tokens:
    """The labels and PIN of the session's test tokens."""

    main: str = TOKEN
    other: str = OTHER_TOKEN
    spare: str = SPARE_TOKEN
    pin: str = PIN


@pytest.fixture(scope="session")
def tokens() -> Tokens:  # pragma: no cover - for tests outside this folder
    """The labels and PIN of the session's test tokens."""
    return Tokens()


@pytest.fixture
def make_provider(softhsm: object) -> Iterator[Callable[..., object]]:
    """Build providers on a test token (closed after the test)."""
    from aureus_pkcs11 import Pkcs11KeyProvider, SessionPool, TokenSelector
    from aureus_pkcs11.softhsm import SoftHsm

    assert isinstance(softhsm, SoftHsm)
    made: list[Pkcs11KeyProvider] = []

    def make(
        token: str = TOKEN,
        pin: str | None = PIN,
        clock: Callable[[], object] | None = None,
        **pool_options: object,
    ) -> Pkcs11KeyProvider:
        from aureus_core.sensitive import Secret

        pool = SessionPool(
            TokenSelector(module=softhsm.module, label=token),
            Secret(pin) if pin is not None else None,
            **pool_options,  # type: ignore[arg-type]
        )
        provider = Pkcs11KeyProvider(pool, clock=clock)  # type: ignore[arg-type]
        made.append(provider)
        return provider

    yield make
    for provider in made:
        provider.close()


@pytest.fixture
def token_dir(softhsm: object) -> Callable[[str], Path]:
    """The directory SoftHSM2 keeps a token's objects in, by token label."""
    from aureus_pkcs11.softhsm import SoftHsm

    assert isinstance(softhsm, SoftHsm)

    def find(label: str) -> Path:
        for directory in softhsm.tokens.iterdir():
            token_file = directory / "token.object"
            if token_file.is_file() and label.encode() in token_file.read_bytes():
                return directory
        raise AssertionError(f"no token directory for {label!r}")

    return find
