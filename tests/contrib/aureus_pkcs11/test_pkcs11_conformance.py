"""The PKCS#11 provider passes Aureus's conformance kit, unchanged, against SoftHSM2."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from aureus_core.interfaces import KeyProvider
from aureus_core.testing import KeyProviderContract


class TestPkcs11Provider(KeyProviderContract):
    """The whole provider contract on a SoftHSM2 token."""

    @pytest.fixture
    def provider(self, make_provider: Callable[..., KeyProvider]) -> KeyProvider:
        """A provider on the session's test token; every test uses fresh key names."""
        return make_provider()
