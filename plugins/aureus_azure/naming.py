"""Key URIs of the ``azure-kv`` scheme and Key Vault key identifiers (``kid``).

``azure-kv://NAME.vault.azure.net/keys/KEY[/VERSION]`` and
``azure-kv://NAME.managedhsm.azure.net/keys/KEY[/VERSION]``.  A version may
also be given as ``?version=``; a bare ``azure-kv://KEY`` names a key in the
provider's default vault.  Canonical references keep the version in
:attr:`KeyRef.version`, so ``ref.with_version(v)`` works as for every scheme.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import attrs

from aureus_core.errors import ConfigError
from aureus_core.keyref import KeyRef

SCHEME = "azure-kv"
PROVIDER_ID = "aureus-azure-kv"
"""The provider ID of encrypted data keys this provider wraps."""

_KEY_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")
_VERSION = re.compile(r"^[0-9A-Za-z-]{1,64}$")
_HOST = re.compile(r"^[0-9A-Za-z.-]+(:[0-9]{1,5})?$")


@attrs.frozen(kw_only=True)
class AzureKey:
    """One key (optionally one version) in one vault."""

    host: str
    """The vault's host, e.g. ``myvault.vault.azure.net``."""
    name: str
    version: str | None = None

    @property
    def managed_hsm(self) -> bool:
        """Whether the vault is a Managed HSM."""
        return ".managedhsm." in self.host

    @property
    def ref(self) -> KeyRef:
        """The canonical reference (version in ``KeyRef.version``)."""
        return KeyRef(scheme=SCHEME, key_id=f"{self.host}/keys/{self.name}", version=self.version)

    @property
    def uri(self) -> str:
        """The unversioned URI."""
        return self.ref.with_version(None).uri

    @property
    def kid(self) -> str:
        """Key Vault's key identifier URL (with the version, if pinned)."""
        suffix = f"/{self.version}" if self.version else ""
        return f"https://{self.host}/keys/{self.name}{suffix}"

    def pinned(self, version: str | None) -> AzureKey:
        """The same key, pinned to ``version``."""
        return attrs.evolve(self, version=version)

    def __str__(self) -> str:
        return self.ref.uri


def check_name(name: str) -> str:
    """``name`` if Key Vault accepts it as a key name."""
    if not isinstance(name, str) or not _KEY_NAME.match(name):
        raise ConfigError(
            f"invalid Azure Key Vault key name {name!r}: use 1-127 letters, digits and '-'"
        )
    return name


def check_host(host: str) -> str:
    """A lower-cased vault host, e.g. ``myvault.vault.azure.net``."""
    host = host.strip().lower().rstrip("/")
    if host.startswith("https://"):
        host = urlsplit(host).netloc
    if not host or "." not in host or not _HOST.match(host):
        raise ConfigError(
            f"invalid vault host {host!r}: give e.g. myvault.vault.azure.net or "
            "myhsm.managedhsm.azure.net"
        )
    return host


def parse(ref: KeyRef | str, default_host: str | None) -> AzureKey:
    """The vault, key name and version ``ref`` names."""
    ref = KeyRef.parse(ref)
    if ref.scheme != SCHEME:
        raise ConfigError(f"{ref.uri} is not an {SCHEME}:// key URI")
    parts = ref.key_id.split("/")
    version = ref.version
    if len(parts) == 1:
        if default_host is None:
            raise ConfigError(
                f"{ref.uri} names no vault: write {SCHEME}://VAULT.vault.azure.net/keys/NAME, "
                "or set the provider's 'vault' option"
            )
        host, name = default_host, parts[0]
    elif len(parts) in (3, 4) and parts[1] == "keys":
        host, name = check_host(parts[0]), parts[2]
        if len(parts) == 4:
            if version is not None and version != parts[3]:
                raise ConfigError(f"{ref.uri} gives two different versions")
            version = parts[3]
    else:
        raise ConfigError(
            f"invalid {SCHEME} key URI {ref.uri}: write "
            f"{SCHEME}://VAULT.vault.azure.net/keys/NAME[/VERSION]"
        )
    if version is not None and not _VERSION.match(version):
        raise ConfigError(f"invalid Azure Key Vault key version {version!r} in {ref.uri}")
    return AzureKey(host=host, name=check_name(name), version=version)


def parse_kid(kid: str) -> AzureKey | None:
    """The key a ``kid`` URL names (``https://HOST/keys/NAME[/VERSION]``), or ``None``."""
    try:
        parts = urlsplit(kid)
    except ValueError:
        return None
    segments = [s for s in parts.path.split("/") if s]
    if parts.scheme != "https" or len(segments) not in (2, 3) or segments[0] != "keys":
        return None
    try:
        return AzureKey(
            host=check_host(parts.netloc),
            name=check_name(segments[1]),
            version=segments[2] if len(segments) == 3 else None,
        )
    except ConfigError:
        return None
