"""Options of the AWS KMS provider (``[providers.aws-kms]``), validated at construction."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from aureus_core.errors import ConfigError

from .naming import check_region

RETRY_MODES = ("standard", "adaptive")
VERIFY_WITH = ("local", "kms")

DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 15.0
DEFAULT_PUBLIC_KEY_TTL = 300.0

OPTIONS = (
    "region",
    "endpoint_url",
    "discovery",
    "retries",
    "connect_timeout",
    "read_timeout",
    "verify_with",
    "public_key_ttl",
)


MAX_SECONDS = 86400.0


def _number(value: Any, what: str, *, zero_ok: bool = False) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or value != value  # NaN
        or value < 0
        or (value == 0 and not zero_ok)
        or value > MAX_SECONDS
    ):
        bound = "0 or more" if zero_ok else "above 0"
        raise ConfigError(
            f"the aws-kms option {what} must be a number of seconds {bound} (at most 86400)"
        )
    return float(value)


@attrs.frozen(kw_only=True)
class DiscoveryFilter:
    """Which keys a decrypt without ``keys=`` may use besides the configured ones.

    ``accounts`` in ``partition`` (the AWS Encryption SDK's discovery filter),
    or with ``any_account`` every account (in ``partition``, or in any when it
    is ``None``).  ``regions`` adds regions to those a message's key may be
    in: the provider's ``region`` and the regions of configured keys.
    """

    accounts: tuple[str, ...] = ()
    partition: str | None = "aws"
    any_account: bool = False
    regions: tuple[str, ...] = ()

    @classmethod
    def from_options(cls, value: Any) -> DiscoveryFilter:
        """Parse ``discovery = {partition, accounts, regions}``, ``true`` or ``"*"``."""
        if value is True or value == "*":
            return cls(any_account=True, partition=None)
        if value is False:
            return cls()
        if not isinstance(value, Mapping):
            raise ConfigError(
                "the aws-kms option discovery must be a table {partition, accounts, regions}, "
                'or true / "*" for any account'
            )
        unknown = sorted(set(value) - {"accounts", "partition", "regions"})
        if unknown:
            raise ConfigError(
                f"unknown aws-kms discovery option(s): {', '.join(unknown)}; "
                "it accepts partition, accounts, regions"
            )
        accounts = value.get("accounts")
        any_account = accounts == "*"
        if any_account:
            accounts = ()
        elif (
            not isinstance(accounts, (list, tuple))
            or not accounts
            or not all(isinstance(a, str) and a.isdigit() and len(a) == 12 for a in accounts)
        ):
            raise ConfigError(
                "aws-kms discovery.accounts must be a non-empty list of 12-digit account IDs, "
                'or "*" for any account'
            )
        partition = value.get("partition", "aws")
        if not isinstance(partition, str) or not partition:
            raise ConfigError("aws-kms discovery.partition must be a partition name such as aws")
        regions = value.get("regions", [])
        if not isinstance(regions, (list, tuple)):
            raise ConfigError(
                'aws-kms discovery.regions must be a list of AWS regions, such as ["eu-west-1"]'
            )
        return cls(
            accounts=tuple(accounts),
            partition=partition,
            any_account=any_account,
            regions=tuple(check_region(r, "each aws-kms discovery.regions entry") for r in regions),
        )

    def allows(self, partition: str, account: str) -> bool:
        """Whether a key in ``partition`` owned by ``account`` passes the filter."""
        if self.partition is not None and partition != self.partition:
            return False
        return self.any_account or account in self.accounts


@attrs.frozen(kw_only=True)
class AwsKmsOptions:
    """Validated provider options, with safe defaults for retries and timeouts."""

    region: str | None = None
    """Default region for keys named without an ARN (else boto3's configured region)."""
    endpoint_url: str | None = None
    """A KMS endpoint to use instead of AWS's (a VPC endpoint, or moto in tests)."""
    discovery: DiscoveryFilter = DiscoveryFilter()
    """Keys (beyond the configured ones) a decrypt without ``keys=`` may use: none by default."""
    retry_mode: str = "standard"
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    """Total attempts per call, the first one included."""
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    read_timeout: float = DEFAULT_READ_TIMEOUT
    verify_with: str = "local"
    """``local``: verify with the cached public key; ``kms``: call KMS ``Verify``."""
    public_key_ttl: float = DEFAULT_PUBLIC_KEY_TTL
    """Seconds a public key (and the key's enabled state) is reused before KMS is asked again."""

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> AwsKmsOptions:
        """Parse provider options, rejecting unknown names and bad values."""
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise ConfigError(
                f"unknown option(s) for the aws-kms provider: {', '.join(unknown)}; "
                f"it accepts {', '.join(OPTIONS)}"
            )
        region = options.get("region")
        if region is not None:
            check_region(region, "the aws-kms option region")
        endpoint = options.get("endpoint_url")
        if endpoint is not None and (
            not isinstance(endpoint, str) or not endpoint.startswith(("http://", "https://"))
        ):
            raise ConfigError("the aws-kms option endpoint_url must be an http(s) URL")
        retries = options.get("retries", {})
        if not isinstance(retries, Mapping) or set(retries) - {"mode", "max_attempts"}:
            raise ConfigError("the aws-kms option retries must be a table: {mode, max_attempts}")
        mode = retries.get("mode", "standard")
        if mode not in RETRY_MODES:
            raise ConfigError(f"aws-kms retries.mode must be one of {', '.join(RETRY_MODES)}")
        attempts = retries.get("max_attempts", DEFAULT_MAX_ATTEMPTS)
        if isinstance(attempts, bool) or not isinstance(attempts, int) or not 1 <= attempts <= 10:
            raise ConfigError("aws-kms retries.max_attempts must be a whole number from 1 to 10")
        verify_with = options.get("verify_with", "local")
        if verify_with not in VERIFY_WITH:
            raise ConfigError(f"the aws-kms option verify_with must be one of {VERIFY_WITH}")
        discovery = options.get("discovery")
        return cls(
            region=region,
            endpoint_url=endpoint,
            discovery=DiscoveryFilter.from_options(discovery)
            if discovery is not None
            else DiscoveryFilter(),
            retry_mode=mode,
            max_attempts=attempts,
            connect_timeout=_number(
                options.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT), "connect_timeout"
            ),
            read_timeout=_number(options.get("read_timeout", DEFAULT_READ_TIMEOUT), "read_timeout"),
            verify_with=verify_with,
            public_key_ttl=_number(
                options.get("public_key_ttl", DEFAULT_PUBLIC_KEY_TTL),
                "public_key_ttl",
                zero_ok=True,
            ),
        )
