"""Options of the Cloud KMS provider (``[providers.gcp-kms]``), validated at construction."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

import attrs

from aureus_core.errors import ConfigError

from .naming import KeyRingName, check_id, check_location, check_project, ring_name

DEFAULT_ENDPOINT = "cloudkms.googleapis.com:443"
CHANNELS = ("tls", "local", "insecure")
PROTECTION_LEVELS = ("SOFTWARE", "HSM")
DEFAULT_TIMEOUT = 10.0
DEFAULT_RETRY_DEADLINE = 30.0
DEFAULT_RETRY_INITIAL = 0.1
DEFAULT_RETRY_MAXIMUM = 2.0
DEFAULT_PUBLIC_KEY_TTL = 300.0

OPTIONS = (
    "endpoint",
    "channel",
    "project",
    "location",
    "key_ring",
    "protection_level",
    "timeout",
    "retry_deadline",
    "retry_initial",
    "retry_maximum",
    "public_key_ttl",
    "quota_project",
    "discovery",
)


def _number(options: Mapping[str, Any], name: str, default: float, *, zero_ok: bool) -> float:
    value = options.get(name, default)
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or value != value  # NaN
        or value < 0
        or (value == 0 and not zero_ok)
        or value > 86400
    ):
        bound = "0 or more" if zero_ok else "above 0"
        raise ConfigError(
            f"the gcp-kms option {name} must be a number of seconds {bound} (at most 86400)"
        )
    return float(value)


def _text(options: Mapping[str, Any], name: str) -> str | None:
    value = options.get(name)
    if value is not None and (not isinstance(value, str) or not value):
        raise ConfigError(f"the gcp-kms option {name} must be a non-empty string")
    return value


def split_endpoint(endpoint: str) -> tuple[str, int]:
    """``(host, port)`` of ``host:port`` or ``[v6-address]:port``."""
    host, sep, port = endpoint.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536 or "/" in host:
        raise ConfigError(
            f"the gcp-kms option endpoint must be host:port (e.g. {DEFAULT_ENDPOINT} or "
            f"127.0.0.1:8443), not {endpoint!r}"
        )
    return host, int(port)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine (``localhost``, ``127.0.0.0/8``, ``::1``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@attrs.frozen(kw_only=True)
class GcpDiscovery:
    """Which keys a decrypt without ``keys=`` may use besides the configured ones.

    ``projects`` (``None``: the provider's ``project`` option, if set), each
    optionally limited to ``locations``; with ``any_project`` every key the
    credentials reach.
    """

    projects: tuple[str, ...] | None = None
    locations: tuple[str, ...] = ()
    any_project: bool = False

    @classmethod
    def from_options(cls, value: Any) -> GcpDiscovery:
        """Parse ``discovery = {projects = [...], locations = [...]}``, ``true`` or ``false``."""
        if value is True or value == "*":
            return cls(any_project=True)
        if value is False:
            return cls(projects=())
        if not isinstance(value, Mapping):
            raise ConfigError(
                "the gcp-kms option discovery must be a table {projects, locations}, "
                'true / "*" for any project, or false for configured keys only'
            )
        unknown = sorted(str(name) for name in value if name not in ("projects", "locations"))
        if unknown:
            raise ConfigError(f"unknown gcp-kms discovery option(s): {', '.join(unknown)}")
        projects = value.get("projects")
        if not isinstance(projects, (list, tuple)) or not projects:
            raise ConfigError("gcp-kms discovery.projects must be a non-empty list of project IDs")
        locations = value.get("locations", [])
        if not isinstance(locations, (list, tuple)):
            raise ConfigError("gcp-kms discovery.locations must be a list of Cloud KMS locations")
        return cls(
            projects=tuple(check_project(p) for p in projects),
            locations=tuple(check_location(loc) for loc in locations),
        )

    def refusal(self, project: str, location: str, default_project: str | None) -> str | None:
        """``None`` if a key in ``project`` and ``location`` is in scope, else why not."""
        if self.any_project:
            return None
        projects = self.projects
        if projects is None:
            projects = (default_project,) if default_project else ()
        if project not in projects:
            return (
                f"project {project} is outside the gcp-kms discovery scope: name the key in "
                "[stack] wrapping_keys or keys=, or add the project to [providers.gcp-kms] "
                f'discovery = {{ projects = ["{project}"] }}'
            )
        if self.locations and location not in self.locations:
            return (
                f"location {location} is outside the gcp-kms discovery scope: name the key in "
                "[stack] wrapping_keys or keys=, or add the location to [providers.gcp-kms] "
                "discovery.locations"
            )
        return None


@attrs.frozen(kw_only=True)
class GcpKmsOptions:
    """Validated provider options, with safe defaults for retries and timeouts."""

    endpoint: str = DEFAULT_ENDPOINT
    """The Cloud KMS gRPC endpoint, ``host:port``."""
    channel: str = "tls"
    """``tls`` (the default), or for a server on this machine ``local`` (gRPC local
    credentials, bearer tokens still sent) or ``insecure`` (plaintext, no credentials)."""
    project: str | None = None
    location: str | None = None
    key_ring: str | None = None
    """With ``project`` and ``location``: the key ring of short names (``gcp-kms://K``)."""
    protection_level: str = "SOFTWARE"
    """The protection level of new keys unless their spec says otherwise."""
    timeout: float = DEFAULT_TIMEOUT
    """Seconds one attempt of one call may take."""
    retry_deadline: float = DEFAULT_RETRY_DEADLINE
    """Seconds after which retries of a failing call stop (0: no retries)."""
    retry_initial: float = DEFAULT_RETRY_INITIAL
    retry_maximum: float = DEFAULT_RETRY_MAXIMUM
    """The first and the longest pause between attempts (doubling in between)."""
    public_key_ttl: float = DEFAULT_PUBLIC_KEY_TTL
    """Seconds a public key (and a signing key's current version) is reused."""
    quota_project: str | None = None
    """The project billed for quota (``x-goog-user-project``)."""
    discovery: GcpDiscovery = GcpDiscovery()
    """Keys (beyond the configured ones) a decrypt without ``keys=`` may use."""

    def __attrs_post_init__(self) -> None:
        if self.channel not in CHANNELS:
            raise ConfigError(
                f"the gcp-kms option channel must be one of {', '.join(CHANNELS)}, "
                f"not {self.channel!r}"
            )
        host, _ = split_endpoint(self.endpoint)
        if self.channel != "tls" and not is_loopback(host):
            raise ConfigError(
                f"the gcp-kms channel {self.channel!r} sends requests without TLS and is only "
                f"allowed for a server on this machine (127.0.0.1, localhost, [::1]), not "
                f'{self.endpoint}: use channel = "tls"'
            )
        if self.protection_level not in PROTECTION_LEVELS:
            raise ConfigError(
                f"the gcp-kms option protection_level must be one of "
                f"{', '.join(PROTECTION_LEVELS)}, not {self.protection_level!r}"
            )
        if self.retry_initial > self.retry_maximum:
            raise ConfigError("the gcp-kms option retry_initial may not exceed retry_maximum")
        if self.project is not None:
            check_project(self.project)
        if self.location is not None:
            check_location(self.location)
        if self.key_ring is not None:
            check_id(self.key_ring, "key ring ID")
        if self.quota_project is not None:
            check_project(self.quota_project)

    @property
    def default_ring(self) -> KeyRingName | None:
        """The key ring of short names, when ``project``, ``location`` and ``key_ring`` are set."""
        if self.project and self.location and self.key_ring:
            return ring_name(self.project, self.location, self.key_ring)
        return None

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> GcpKmsOptions:
        """Parse provider options, rejecting unknown names and bad values."""
        if not isinstance(options, Mapping):
            raise ConfigError("the gcp-kms provider options must be a table")
        unknown = sorted(str(name) for name in options if name not in OPTIONS)
        if unknown:
            raise ConfigError(
                f"unknown option(s) for the gcp-kms provider: {', '.join(unknown)}; "
                f"it accepts {', '.join(OPTIONS)}"
            )
        protection = _text(options, "protection_level")
        return cls(
            endpoint=_text(options, "endpoint") or DEFAULT_ENDPOINT,
            channel=_text(options, "channel") or "tls",
            project=_text(options, "project"),
            location=_text(options, "location"),
            key_ring=_text(options, "key_ring"),
            protection_level=protection.upper() if protection else "SOFTWARE",
            timeout=_number(options, "timeout", DEFAULT_TIMEOUT, zero_ok=False),
            retry_deadline=_number(options, "retry_deadline", DEFAULT_RETRY_DEADLINE, zero_ok=True),
            retry_initial=_number(options, "retry_initial", DEFAULT_RETRY_INITIAL, zero_ok=False),
            retry_maximum=_number(options, "retry_maximum", DEFAULT_RETRY_MAXIMUM, zero_ok=False),
            public_key_ttl=_number(options, "public_key_ttl", DEFAULT_PUBLIC_KEY_TTL, zero_ok=True),
            quota_project=_text(options, "quota_project"),
            discovery=GcpDiscovery.from_options(options["discovery"])
            if "discovery" in options
            else GcpDiscovery(),
        )
