"""Key URIs of the ``gcp-kms`` scheme and Cloud KMS resource names.

``gcp-kms://projects/P/locations/L/keyRings/R/cryptoKeys/K`` names a key;
``…/cryptoKeyVersions/V`` (or ``?version=V``) one of its versions.  A bare
``gcp-kms://K`` names a key in the provider's default ``project``,
``location`` and ``key_ring``.  Canonical references keep the version in
:attr:`KeyRef.version`, so ``ref.with_version(v)`` works as for every scheme:
Aureus version ``"3"`` is Cloud KMS ``cryptoKeyVersions/3``.
"""

from __future__ import annotations

import functools
import re

import attrs

from aureus_core.errors import ConfigError
from aureus_core.keyref import KeyRef

SCHEME = "gcp-kms"
PROVIDER_ID = "aureus-gcp-kms"
"""The provider ID of encrypted data keys this provider wraps."""

# Project IDs (my-project, example.com:my-project) or numbers; Cloud KMS IDs.
_PROJECT = re.compile(r"^[a-z0-9][a-z0-9.:-]{0,98}[a-z0-9]$|^[0-9]+$")
_LOCATION = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
_ID = re.compile(r"^[A-Za-z0-9_-]{1,63}$")
_VERSION = re.compile(r"^[1-9][0-9]{0,19}$")
_FORMS = (
    f"{SCHEME}://projects/P/locations/L/keyRings/R/cryptoKeys/K[/cryptoKeyVersions/V] "
    f"or {SCHEME}://K with the provider options project, location and key_ring"
)


@attrs.frozen(kw_only=True)
class KeyRingName:
    """A key ring: ``projects/P/locations/L/keyRings/R``."""

    project: str
    location: str
    key_ring: str

    @property
    def location_path(self) -> str:
        """``projects/P/locations/L``, the parent of key rings."""
        return f"projects/{self.project}/locations/{self.location}"

    @property
    def path(self) -> str:
        """The key ring's resource name."""
        return f"{self.location_path}/keyRings/{self.key_ring}"

    def __str__(self) -> str:
        return self.path


@attrs.frozen(kw_only=True)
class GcpKey:
    """One crypto key (optionally one version) in one key ring."""

    ring: KeyRingName
    name: str
    version: str | None = None

    @property
    def path(self) -> str:
        """The crypto key's resource name, without a version."""
        return f"{self.ring.path}/cryptoKeys/{self.name}"

    @property
    def version_path(self) -> str:
        """The pinned version's resource name (``…/cryptoKeyVersions/V``)."""
        if self.version is None:
            raise ConfigError(f"{self.uri} pins no version")
        return f"{self.path}/cryptoKeyVersions/{self.version}"

    @property
    def resource(self) -> str:
        """The version's resource name when pinned, else the key's."""
        return self.version_path if self.version is not None else self.path

    @property
    def ref(self) -> KeyRef:
        """The canonical reference (version in ``KeyRef.version``)."""
        return KeyRef(scheme=SCHEME, key_id=self.path, version=self.version)

    @property
    def uri(self) -> str:
        """The unversioned URI."""
        return f"{SCHEME}://{self.path}"

    def pinned(self, version: str | None) -> GcpKey:
        """The same key, pinned to ``version`` (or unpinned with ``None``)."""
        return attrs.evolve(self, version=version)

    def __str__(self) -> str:
        return self.ref.uri


def check_id(value: object, what: str) -> str:
    """``value`` if Cloud KMS accepts it as a key ring or key ID (1-63 of ``A-Za-z0-9_-``)."""
    if not isinstance(value, str) or not _ID.match(value):
        raise ConfigError(
            f"invalid Cloud KMS {what} {value!r}: use 1-63 letters, digits, '_' and '-'"
        )
    return value


def check_project(value: object) -> str:
    """A project ID or number."""
    if not isinstance(value, str) or not _PROJECT.match(value):
        raise ConfigError(f"invalid Google Cloud project {value!r}: give a project ID or number")
    return value


def check_location(value: object) -> str:
    """A Cloud KMS location (``global``, ``us-east1``, ``europe`` …)."""
    if not isinstance(value, str) or not _LOCATION.match(value):
        raise ConfigError(
            f"invalid Cloud KMS location {value!r}: give e.g. global, europe-west1 or us"
        )
    return value


def ring_name(project: str, location: str, key_ring: str) -> KeyRingName:
    """A validated key ring name."""
    return KeyRingName(
        project=check_project(project),
        location=check_location(location),
        key_ring=check_id(key_ring, "key ring ID"),
    )


def parse_ring(path: str) -> KeyRingName:
    """Parse ``projects/P/locations/L/keyRings/R``."""
    parts = path.strip("/").split("/")
    if len(parts) != 6 or parts[0::2] != ["projects", "locations", "keyRings"]:
        raise ConfigError(
            f"invalid Cloud KMS key ring {path!r}: write projects/P/locations/L/keyRings/R"
        )
    return ring_name(parts[1], parts[3], parts[5])


def _check_version(version: str, uri: str) -> str:
    if not _VERSION.match(version):
        raise ConfigError(
            f"invalid Cloud KMS key version {version!r} in {uri}: versions are numbers 1, 2, …"
        )
    return version


def parse(ref: KeyRef | str, default_ring: KeyRingName | None) -> GcpKey:
    """The key ring, key and version ``ref`` names."""
    return _parse(KeyRef.parse(ref), default_ring)


@functools.lru_cache(maxsize=4096)
def _parse(ref: KeyRef, default_ring: KeyRingName | None) -> GcpKey:
    # Cached: every operation parses its key reference (and every answer's resource name).
    if ref.scheme != SCHEME:
        raise ConfigError(f"the Cloud KMS provider serves {SCHEME}:// keys, not {ref.uri}")
    if ref.params:
        names = ", ".join(name for name, _ in ref.params)
        raise ConfigError(
            f"unknown parameter(s) {names} in {ref.uri}: {SCHEME} URIs take only ?version="
        )
    parts = ref.key_id.split("/")
    version = ref.version
    if len(parts) == 1:
        if default_ring is None:
            raise ConfigError(
                f"{ref.uri} is a short name but the gcp-kms provider has no default key ring: "
                f"write {_FORMS}"
            )
        ring, name = default_ring, parts[0]
    elif len(parts) in (8, 10) and parts[0:8:2] == [
        "projects",
        "locations",
        "keyRings",
        "cryptoKeys",
    ]:
        ring, name = ring_name(parts[1], parts[3], parts[5]), parts[7]
        if len(parts) == 10:
            if parts[8] != "cryptoKeyVersions":
                raise ConfigError(f"invalid {SCHEME} key URI {ref.uri}: write {_FORMS}")
            if version is not None and version != parts[9]:
                raise ConfigError(f"{ref.uri} gives two different versions")
            version = parts[9]
    else:
        raise ConfigError(f"invalid {SCHEME} key URI {ref.uri}: write {_FORMS}")
    if version is not None:
        _check_version(version, ref.uri)
    return GcpKey(ring=ring, name=check_id(name, "key ID"), version=version)


@functools.lru_cache(maxsize=4096)
def parse_resource(name: str) -> GcpKey | None:
    """The key (and version) a Cloud KMS resource name names, or ``None``."""
    if "/" not in name:
        return None
    try:
        return parse(KeyRef(scheme=SCHEME, key_id=name), None)
    except ConfigError:
        return None
