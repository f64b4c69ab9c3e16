import subprocess
import sys

import pytest

from aureus_core import DuplicateRegistration, PluginError, hookimpl
from aureus_core.plugins import PluginHost, PluginStatus

PROVIDER_PLUGIN = """
from aureus_core import hookimpl, KeyProviderBase

class Provider(KeyProviderBase):
    scheme = "{scheme}"

@hookimpl
def aureus_register_key_providers(registry):
    registry.register("{scheme}", lambda settings: Provider(), description="test provider")
"""


def only(*names):
    return {"AUREUS_LOAD_PLUGINS": ",".join(names)}


def test_third_party_plugin_loads_through_entry_points(fake_dist):
    name = fake_dist(PROVIDER_PLUGIN.format(scheme="thirdparty"))
    host = PluginHost(environ=only(name))
    registration = host.key_providers.get("thirdparty")
    assert registration.plugin == name
    assert registration.description == "test provider"
    (info,) = [i for i in host.plugins() if i.name == name]
    assert info.status is PluginStatus.LOADED
    assert info.version == "1.2.3"
    assert info.registers == {"key_providers": ("thirdparty",)}


def test_first_party_plugins_use_the_same_entry_point_path():
    host = PluginHost(environ={})
    infos = {info.name: info for info in host.plugins()}
    assert infos["local"].distribution == "aureus-kms"
    assert infos["local"].status is PluginStatus.LOADED
    assert host.key_providers.get("local").plugin == "local"


def test_loading_is_lazy_and_happens_once(fake_dist):
    name = fake_dist(
        """
        import builtins
        builtins.__dict__.setdefault("aureus_test_imports", []).append(1)
        """
    )
    import builtins

    builtins.__dict__["aureus_test_imports"] = []
    host = PluginHost(environ=only(name))
    assert builtins.__dict__["aureus_test_imports"] == []
    host.plugins()
    host.load()
    host.key_providers  # noqa: B018
    assert builtins.__dict__["aureus_test_imports"] == [1]


def test_missing_sdk_is_recorded_with_install_hint_and_others_load(fake_dist):
    broken = fake_dist("import aureus_no_such_sdk_xyz\n", extras="aws", dist="acme-kms")
    good = fake_dist(PROVIDER_PLUGIN.format(scheme="good"))
    host = PluginHost(environ=only(broken, good))
    infos = {info.name: info for info in host.plugins()}
    assert infos[broken].status is PluginStatus.UNAVAILABLE
    assert "aureus_no_such_sdk_xyz" in (infos[broken].reason or "")
    assert infos[broken].install_hint == "pip install 'acme-kms[aws]'"
    assert "good" in host.key_providers


def test_a_missing_module_is_traced_to_the_plugins_requirement_that_provides_it(fake_dist):
    """The module is ``pkcs11`` but the distribution is ``python-pkcs11``: say that one."""
    broken = fake_dist(
        "import pkcs11_absent_xyz\n",
        dist="acme-hsm",
        requires=("aureus-kms", "python-pkcs11-absent-xyz>=0.9", "extra-thing; extra == 'x'"),
    )
    lone = fake_dist("import other_absent_xyz\n", dist="acme-other")
    host = PluginHost(environ=only(broken, lone))
    infos = {info.name: info for info in host.plugins()}
    assert infos[broken].install_hint == (
        "pip install python-pkcs11-absent-xyz  (a requirement of acme-hsm: module "
        "'pkcs11_absent_xyz')"
    )
    assert infos[lone].install_hint == (
        "pip install other_absent_xyz  (the distribution that provides module 'other_absent_xyz')"
    )


def test_plugin_bug_at_import_is_recorded(fake_dist):
    broken = fake_dist("raise RuntimeError('boom in plugin')\n")
    host = PluginHost(environ=only(broken))
    (info,) = [i for i in host.plugins() if i.name == broken]
    assert info.status is PluginStatus.UNAVAILABLE
    assert info.reason == "RuntimeError: boom in plugin"


def test_denylist_blocks(fake_dist):
    name = fake_dist(PROVIDER_PLUGIN.format(scheme="blocked"))
    host = PluginHost(environ={"AUREUS_DISABLE_PLUGINS": name})
    assert "blocked" not in host.key_providers
    (info,) = [i for i in host.plugins() if i.name == name]
    assert info.status is PluginStatus.DISABLED
    assert "AUREUS_DISABLE_PLUGINS" in (info.reason or "")
    assert host.pm.is_blocked(name)


def test_allowlist_excludes_others(fake_dist):
    name = fake_dist(PROVIDER_PLUGIN.format(scheme="allowed"))
    host = PluginHost(environ=only(name))
    assert "allowed" in host.key_providers
    assert "local" not in host.key_providers
    statuses = {i.name: i.status for i in host.plugins()}
    assert statuses["local"] is PluginStatus.DISABLED


def test_unknown_names_in_lists_fail_loudly():
    with pytest.raises(PluginError, match="AUREUS_LOAD_PLUGINS names 'lcoal'"):
        PluginHost(environ={"AUREUS_LOAD_PLUGINS": "lcoal"}).load()
    with pytest.raises(PluginError, match="AUREUS_DISABLE_PLUGINS names 'nope'"):
        PluginHost(environ={"AUREUS_DISABLE_PLUGINS": "nope"}).load()


def test_misspelt_hook_fails_loudly(fake_dist):
    name = fake_dist(
        """
        from aureus_core import hookimpl

        @hookimpl
        def aureus_register_key_provider(registry):
            pass
        """
    )
    host = PluginHost(environ=only(name))
    with pytest.raises(PluginError) as info:
        host.load()
    message = str(info.value)
    assert f"plugin {name!r} implements unknown hook 'aureus_register_key_provider'" in message
    assert "did you mean 'aureus_register_key_providers'" in message


def test_duplicate_scheme_names_both_plugins(fake_dist):
    first = fake_dist(PROVIDER_PLUGIN.format(scheme="dup"))
    second = fake_dist(PROVIDER_PLUGIN.format(scheme="dup"))
    host = PluginHost(environ=only(first, second))
    with pytest.raises(DuplicateRegistration) as info:
        host.key_providers  # noqa: B018
    assert first in str(info.value)
    assert second in str(info.value)
    assert "'dup'" in str(info.value)


def test_failing_registration_sets_plugin_aside(fake_dist):
    bad = fake_dist(
        """
        from aureus_core import hookimpl

        @hookimpl
        def aureus_register_cache_backends(registry):
            registry.register("half", lambda options: None)
            raise ValueError("bad registration")
        """
    )
    host = PluginHost(environ=only(bad))
    assert "half" not in host.cache_backends
    (info,) = [i for i in host.plugins() if i.name == bad]
    assert info.status is PluginStatus.UNAVAILABLE
    assert "ValueError: bad registration" in (info.reason or "")


def test_invalid_registration_is_rejected():
    host = PluginHost(load_entry_points=False)

    class Plugin:
        @hookimpl
        def aureus_register_audit_sinks(self, registry):
            registry.register("Bad Name", lambda options: None)

    host.register(Plugin(), name="bad-names")
    (info,) = host.plugins()
    assert info.status is PluginStatus.UNAVAILABLE
    assert "invalid audit sink 'Bad Name'" in (info.reason or "")


def test_unknown_name_lists_known_ones():
    host = PluginHost(load_entry_points=False)
    with pytest.raises(PluginError, match=r"no plugin provides key provider scheme 'nope'"):
        host.key_providers.get("nope")


def test_register_and_unregister_temporary_plugin(aureus_host):
    class Plugin:
        @hookimpl
        def aureus_register_credential_sources(self, registry):
            registry.register("temp", lambda options: None)

    aureus_host.register(Plugin(), name="temp-plugin")
    try:
        assert "temp" in aureus_host.credential_sources
    finally:
        aureus_host.unregister("temp-plugin")
    assert "temp" not in aureus_host.credential_sources


@pytest.mark.parametrize(
    "code",
    [
        "import aureus_core",
        "from aureus_core.cli import main; import sys; sys.argv=['aureus','--help'];"
        " main(standalone_mode=False)",
    ],
)
def test_core_and_help_import_no_cloud_sdk(code):
    check = (
        f"{code}\nimport sys\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'boto3','botocore','google','azure','opentelemetry','aws_encryption_sdk'})\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_distribution_facts_match_what_importlib_metadata_parses(tmp_path):
    """The header-only read gives what the full parse gives, folded lines and a body included."""
    from importlib import metadata

    from aureus_core.plugins import _DistFacts

    info = tmp_path / "folded_dist-2.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\r\nName: folded-dist\r\nVersion: 2.0\r\n"
        "Summary: a summary\r\n  folded onto a second line\r\n"
        'Requires-Dist: boto3>=1.35; extra == "aws"\r\nRequires-Dist: attrs\r\n'
        "\r\nName: not-a-header\r\nRequires-Dist: also-not-a-header\r\n"
    )
    dists = [
        metadata.distribution("aureus-kms"),
        metadata.distribution("pluggy"),
        *metadata.distributions(path=[str(tmp_path)]),
    ]
    for dist in dists:
        facts = _DistFacts(dist)
        assert facts.name == dist.metadata["Name"]
        assert facts.version == dist.version
        assert facts.requires == list(dist.requires or [])
    assert _DistFacts(dists[-1]).requires == ['boto3>=1.35; extra == "aws"', "attrs"]
