"""What a credential-source factory receives from a stack: options, and its name if it asks."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

from aureus_core import KeyStack, hookimpl
from aureus_core.config import StackConfig
from aureus_core.errors import ConfigError
from aureus_core.interfaces import Credentials, CredentialSource, KeyProviderBase, ProviderSettings
from aureus_core.plugins import PluginHost
from aureus_core.registry import call_factory
from aureus_core.sensitive import Secret


class Token:
    """A credential source that says which table made it and what it was given."""

    name = "token"

    def __init__(self, label: str, parent: CredentialSource | None = None) -> None:
        self.label, self.parent = label, parent

    def get_credentials(self) -> Credentials:
        return Credentials(kind="token", values={"token": Secret(self.label)})


RECEIVED: list[CredentialSource | None] = []


class Recording(KeyProviderBase):
    scheme = "rec"

    def __init__(self, settings: ProviderSettings) -> None:
        RECEIVED.append(settings.credentials)


def plain(options: Mapping[str, Any]) -> Token:
    return Token(f"plain:{sorted(options)}")


def named(options: Mapping[str, Any], *, name: str) -> Token:
    return Token(f"named:{name}")


def chained(
    options: Mapping[str, Any], *, name: str, credentials: Callable[[str], CredentialSource]
) -> Token:
    return Token(f"chained:{name}", parent=credentials(str(options["parent"])))


def everything(options: Mapping[str, Any], **offered: Any) -> Token:
    return Token(f"everything:{sorted(offered)}")


class Plugin:
    @hookimpl
    def aureus_register_key_providers(self, registry):
        registry.register("rec", Recording)

    @hookimpl
    def aureus_register_credential_sources(self, registry):
        for factory in (plain, named, chained, everything):
            registry.register(factory.__name__, factory)


@pytest.fixture
def host(aureus_host: PluginHost) -> PluginHost:
    aureus_host.register(Plugin(), name="recording")
    return aureus_host


def _credentials_of(host: PluginHost, tables: dict[str, dict[str, Any]], use: str) -> Token:
    config = StackConfig.from_dict(
        {
            "stack": {"default_provider": "rec"},
            "providers": {"rec": {"credentials": use}},
            "credentials": tables,
        }
    )
    RECEIVED.clear()
    with KeyStack(config=config, host=host) as stack:
        stack.provider("rec")
    (recorded,) = RECEIVED
    assert isinstance(recorded, Token)
    return recorded


@pytest.mark.parametrize(
    ("source", "label"),
    [
        ("plain", "plain:['region']"),
        ("named", "named:prod"),
        ("everything", "everything:['credentials', 'name']"),
    ],
)
def test_factories_get_the_keywords_their_signature_names(
    host: PluginHost, source: str, label: str
) -> None:
    token = _credentials_of(host, {"prod": {"source": source, "region": "eu"}}, "prod")
    assert token.label == label


def test_a_factory_may_use_the_source_another_table_configures(host: PluginHost) -> None:
    tables = {
        "base": {"source": "named"},
        "prod": {"source": "chained", "parent": "base"},
    }
    token = _credentials_of(host, tables, "prod")
    assert token.label == "chained:prod"
    assert isinstance(token.parent, Token)
    assert token.parent.label == "named:base"


def test_tables_that_refer_to_each_other_in_a_loop_are_a_config_error(host: PluginHost) -> None:
    tables = {
        "a": {"source": "chained", "parent": "b"},
        "b": {"source": "chained", "parent": "a"},
    }
    with pytest.raises(ConfigError) as refused:
        _credentials_of(host, tables, "a")
    assert "[credentials.a] -> [credentials.b] -> [credentials.a]" in str(refused.value)


def test_a_reference_to_a_missing_table_names_it(host: PluginHost) -> None:
    tables = {"prod": {"source": "chained", "parent": "nowhere"}}
    with pytest.raises(ConfigError, match="no credentials named 'nowhere' are configured"):
        _credentials_of(host, tables, "prod")


def test_call_factory_passes_nothing_extra_to_what_it_cannot_inspect() -> None:
    assert call_factory(dict, {"a": 1}, name="x") == {"a": 1}
