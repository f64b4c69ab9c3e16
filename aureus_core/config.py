"""Stack configuration: parsed and validated from TOML or a dict.

Example::

    [stack]
    default_provider = "local"
    wrapping_keys = ["local://payments"]
    signing_key = "local://release-signer"
    verify_keys = ["local://release-signer"]   # trusted by verify (default: signing_key)
    policy_pins = ["9f2c...e1"]        # SHA-256 of signing policies verify may use

    # instead of wrapping_keys: any 2 of these 3 groups together can decrypt
    # threshold = 2
    # [stack.key_groups]
    # onprem = ["local://payments"]
    # aws = ["aws-kms://alias/payments"]
    # gcp = ["gcp-kms://projects/p/locations/l/keyRings/r/cryptoKeys/k"]

    [providers.local]
    keystore = "keys/"                 # relative to this file
    credentials = "keystore-passphrase"

    [credentials.keystore-passphrase]
    source = "env"
    variables = { passphrase = "PAYMENTS_KEYSTORE_PASSPHRASE" }

    [cache]
    backend = "memory"

    [audit]
    required = true
    context_hashes = true              # keyed hashes of context values
    hash_key = "local://audit-hash"    # aes-256 key they are keyed by
    processors = [{ type = "drop", operations = ["list"] }]
    [[audit.sinks]]
    type = "jsonl"
    path = "audit/audit.jsonl"

    [rotation]                         # the stack's default rotation policy
    interval_days = 90
    max_age_days = 365
    max_messages = 1000000             # optional usage limits of a current version
    retire_after_max_age = false

With no ``[[audit.sinks]]``, ``AUREUS_AUDIT_LOG=PATH`` in the environment
adds a ``jsonl`` sink at ``PATH``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from .envelope.quorum import Quorum
from .envelope.suites import CommitmentPolicy
from .errors import ConfigError
from .keyref import KeyRef
from .rotation import RotationPolicy

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

CONFIG_ENV = "AUREUS_CONFIG"
AUDIT_LOG_ENV = "AUREUS_AUDIT_LOG"
"""A jsonl audit log path, used when the configuration names no audit sinks."""

_TOP_LEVEL = {"stack", "providers", "credentials", "cache", "audit", "rotation"}
_STACK_KEYS = {
    "default_provider",
    "wrapping_keys",
    "signing_key",
    "verify_keys",
    "frame_length",
    "max_encrypted_data_keys",
    "max_frame_length",
    "max_non_framed_bytes",
    "commitment_policy",
    "decrypt_allow",
    "key_groups",
    "threshold",
    "policy_pins",
    "concurrency",
}
_PATH_OPTIONS = {"keystore", "path", "file"}
PATH_SUFFIXES = ("_file", "_path", "_dir")
"""Option names ending so are paths too: how a plugin marks its own path options."""


def is_path_option(name: str) -> bool:
    """Whether the config loader resolves option ``name`` against the config file's directory.

    ``keystore``, ``path``, ``file`` and every name ending in ``_file``,
    ``_path`` or ``_dir``, in any plugin's table.
    """
    return name in _PATH_OPTIONS or name.endswith(PATH_SUFFIXES)


@attrs.frozen(kw_only=True)
class NamedOptions:
    """A plugin name (provider scheme, sink type ...) with its options.

    The repr names the options but never shows their values: credential
    tables may hold secrets (a static passphrase).
    """

    name: str
    options: Mapping[str, Any] = attrs.field(factory=dict, repr=lambda o: f"<{sorted(o)}>")


@attrs.frozen(kw_only=True)
class StackConfig:
    """A validated stack configuration."""

    default_provider: str = "local"
    wrapping_keys: tuple[KeyRef, ...] = ()
    signing_key: KeyRef | None = None
    verify_keys: tuple[KeyRef, ...] = ()
    """The keys signatures are checked against when the caller names none.

    Empty means ``(signing_key,)``.  The key a signature record names is
    never trusted on its own: it only selects a version of one of these.
    """
    key_groups: Quorum | None = None
    """``[stack] key_groups`` with ``threshold``: new messages need keys of that
    many groups to decrypt (instead of ``wrapping_keys``)."""
    policy_pins: tuple[str, ...] = ()
    """SHA-256 digests (hex) of the signing-policy documents ``verify --policy`` accepts."""
    frame_length: int | None = None
    """Frame length for new messages (``None``: the library default)."""
    max_encrypted_data_keys: int = 16
    max_frame_length: int = 16 * 1024 * 1024
    max_non_framed_bytes: int = 64 * 1024 * 1024
    """The largest non-framed body a decrypt holds in memory until it authenticates."""
    concurrency: int = 8
    """Provider calls one stack runs at once: wraps for several recipients, unwrap candidates."""
    commitment_policy: str = "require-encrypt-require-decrypt"
    """``require-encrypt-require-decrypt``, ``require-encrypt-allow-decrypt`` or
    ``forbid-encrypt-allow-decrypt`` (the last two also read non-committing suites)."""
    decrypt_allow: tuple[str, ...] = ("*",)
    """Shell-style patterns of key URIs a discovery-mode decrypt may use.

    They narrow what providers allow, never widen it: a cloud provider's key
    must also be named here (:attr:`named_keys`) or be in the provider's
    ``discovery`` scope."""
    providers: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    """Provider scheme -> options (``credentials`` names a credential table)."""
    credentials: Mapping[str, NamedOptions] = attrs.field(factory=dict)
    """Credential name -> source name and options."""
    cache: NamedOptions | None = None
    audit_sinks: tuple[NamedOptions, ...] = ()
    audit_required: bool | None = None
    audit_processors: tuple[NamedOptions, ...] = ()
    """``[audit] processors``: each a processor type with its options, in order."""
    audit_context_hashes: bool = False
    """Record keyed hashes of encryption-context values in audit events."""
    audit_hash_key: KeyRef | None = None
    """The key audit hashes are keyed by (``None``: a random key per stack)."""
    # -- rotation --
    rotation: RotationPolicy = attrs.field(factory=RotationPolicy)
    """``[rotation]``: the stack's default rotation policy (90 / 365 days without one)."""
    # -- end rotation --
    source: str = "<dict>"
    """Where the configuration came from, for error messages."""

    @property
    def named_keys(self) -> tuple[KeyRef, ...]:
        """The keys this configuration names: wrapping keys, then the signing key.

        A decrypt without ``keys=`` may always use them, also with providers
        that otherwise limit discovery to a configured scope.
        """
        signing = (self.signing_key,) if self.signing_key is not None else ()
        grouped = self.key_groups.keys if self.key_groups is not None else ()
        return (*self.wrapping_keys, *grouped, *signing)

    def audit_sink_specs(
        self, environ: Mapping[str, str] | None = None
    ) -> tuple[NamedOptions, ...]:
        """The ``[[audit.sinks]]``; with none, a ``jsonl`` sink at ``$AUREUS_AUDIT_LOG`` if set."""
        if self.audit_sinks:
            return self.audit_sinks
        path = (os.environ if environ is None else environ).get(AUDIT_LOG_ENV)
        if not path:
            return ()
        return (NamedOptions(name="jsonl", options={"path": str(Path(path).expanduser())}),)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> StackConfig:
        """Read and validate a TOML file."""
        path = Path(path).expanduser()
        try:
            with path.open("rb") as handle:
                data = tomllib.load(handle)
        except FileNotFoundError:
            raise ConfigError(f"configuration file {path} does not exist") from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"configuration file {path} is not valid TOML: {error}") from None
        except OSError as error:
            raise ConfigError(f"cannot read configuration file {path}: {error.strerror}") from None
        return cls.from_dict(data, source=str(path), base_dir=path.parent)

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        *,
        source: str = "<dict>",
        base_dir: Path | None = None,
    ) -> StackConfig:
        """Validate a configuration mapping (the TOML structure)."""

        def fail(where: str, problem: str) -> ConfigError:
            return ConfigError(f"{source}: [{where}] {problem}")

        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: the configuration must be a table/mapping")
        unknown = set(data) - _TOP_LEVEL
        if unknown:
            raise ConfigError(
                f"{source}: unknown section(s) {', '.join(sorted(unknown))}; "
                f"allowed: {', '.join(sorted(_TOP_LEVEL))}"
            )

        stack = _table(data.get("stack", {}), "stack", fail)
        extra = set(stack) - _STACK_KEYS
        if extra:
            raise fail(
                "stack",
                f"unknown key(s) {', '.join(sorted(extra))}; "
                f"allowed: {', '.join(sorted(_STACK_KEYS))}",
            )
        default_provider = stack.get("default_provider", "local")
        if not isinstance(default_provider, str) or not default_provider:
            raise fail("stack", "default_provider must be a provider scheme such as 'local'")
        wrapping = stack.get("wrapping_keys", [])
        if isinstance(wrapping, str):
            wrapping = [wrapping]
        if not isinstance(wrapping, list):
            raise fail("stack", "wrapping_keys must be a list of key URIs")
        wrapping_keys = tuple(_key(uri, "stack", fail) for uri in wrapping)
        signing = stack.get("signing_key")
        signing_key = _key(signing, "stack", fail) if signing is not None else None
        verifying = stack.get("verify_keys", [])
        if isinstance(verifying, str):
            verifying = [verifying]
        if not isinstance(verifying, list):
            raise fail("stack", "verify_keys must be a list of key URIs")
        verify_keys = tuple(_key(uri, "stack", fail) for uri in verifying)

        key_groups = _key_groups(stack, wrapping_keys, fail)
        pins = stack.get("policy_pins", [])
        if not isinstance(pins, list) or not all(_is_sha256(pin) for pin in pins):
            raise fail(
                "stack",
                "policy_pins must be a list of SHA-256 digests in hex (64 characters), "
                "as `aureus verify --policy FILE` reports when it is not pinned",
            )

        numbers: dict[str, int] = {}
        for name in (
            "frame_length",
            "max_encrypted_data_keys",
            "max_frame_length",
            "concurrency",
        ):
            if name in stack:
                value = stack[name]
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise fail("stack", f"{name} must be a positive integer, not {value!r}")
                numbers[name] = value
        if "max_non_framed_bytes" in stack:
            value = stack["max_non_framed_bytes"]
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise fail(
                    "stack", f"max_non_framed_bytes must be an integer of 0 or more, not {value!r}"
                )
            numbers["max_non_framed_bytes"] = value
        policy = stack.get("commitment_policy", "require-encrypt-require-decrypt")
        if not isinstance(policy, str):
            raise fail("stack", "commitment_policy must be a string")
        try:
            CommitmentPolicy.parse(policy)
        except ConfigError as error:
            raise fail("stack", f"commitment_policy: {error}") from None
        allow = stack.get("decrypt_allow", ["*"])
        if isinstance(allow, str):
            allow = [allow]
        if not isinstance(allow, list) or not all(isinstance(p, str) and p for p in allow):
            raise fail("stack", "decrypt_allow must be a list of key URI patterns")

        providers: dict[str, dict[str, Any]] = {}
        for scheme, options in _table(data.get("providers", {}), "providers", fail).items():
            table = dict(_table(options, f"providers.{scheme}", fail))
            providers[scheme] = _resolve_paths(table, base_dir)

        credentials: dict[str, NamedOptions] = {}
        for name, options in _table(data.get("credentials", {}), "credentials", fail).items():
            table = dict(_table(options, f"credentials.{name}", fail))
            source_name = table.pop("source", None)
            if not isinstance(source_name, str):
                raise fail(f"credentials.{name}", 'needs source = "<credential source name>"')
            credentials[name] = NamedOptions(
                name=source_name, options=_resolve_paths(table, base_dir)
            )
        for scheme, options in providers.items():
            ref = options.get("credentials")
            if ref is not None and ref not in credentials:
                raise fail(
                    f"providers.{scheme}",
                    f"credentials = {ref!r} names no [credentials.{ref}] table",
                )

        cache = None
        if "cache" in data:
            table = dict(_table(data["cache"], "cache", fail))
            backend = table.pop("backend", "memory")
            if not isinstance(backend, str):
                raise fail("cache", "backend must be a cache backend name such as 'memory'")
            cache = NamedOptions(name=backend, options=_resolve_paths(table, base_dir))

        audit_table = dict(_table(data.get("audit", {}), "audit", fail))
        required = audit_table.pop("required", None)
        if required is not None and not isinstance(required, bool):
            raise fail("audit", "required must be true or false")
        sinks_raw = audit_table.pop("sinks", [])
        processors_raw = audit_table.pop("processors", [])
        context_hashes = audit_table.pop("context_hashes", False)
        if not isinstance(context_hashes, bool):
            raise fail("audit", "context_hashes must be true or false")
        hash_key_raw = audit_table.pop("hash_key", None)
        hash_key = _key(hash_key_raw, "audit", fail) if hash_key_raw is not None else None
        if audit_table:
            raise fail(
                "audit",
                f"unknown key(s) {', '.join(sorted(audit_table))}; "
                "allowed: context_hashes, hash_key, processors, required, sinks",
            )
        sinks = _typed_tables(sinks_raw, "audit.sinks", "audit sink", fail, base_dir)
        processors = _typed_tables(processors_raw, "audit.processors", "audit processor", fail)

        # -- rotation --
        rotation = RotationPolicy()
        if "rotation" in data:
            rotation_table = _table(data["rotation"], "rotation", fail)
            try:
                rotation = RotationPolicy.from_options(rotation_table)
            except ConfigError as error:
                raise fail("rotation", str(error)) from None
        # -- end rotation --

        return cls(
            default_provider=default_provider,
            wrapping_keys=wrapping_keys,
            signing_key=signing_key,
            verify_keys=verify_keys,
            key_groups=key_groups,
            policy_pins=tuple(pin.lower() for pin in pins),
            commitment_policy=policy,
            decrypt_allow=tuple(allow),
            providers=providers,
            credentials=credentials,
            cache=cache,
            audit_sinks=sinks,
            audit_required=required,
            audit_processors=processors,
            audit_context_hashes=context_hashes,
            audit_hash_key=hash_key,
            rotation=rotation,
            source=source,
            **numbers,
        )


def _table(value: Any, where: str, fail: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise fail(where, "must be a table")
    return value


def _typed_tables(
    value: Any, where: str, what: str, fail: Any, base_dir: Path | None = None
) -> tuple[NamedOptions, ...]:
    """An array of tables, each with ``type = "<name>"`` and its options."""
    if not isinstance(value, list):
        raise fail("audit", f"{where.split('.')[-1]} must be an array of tables ([[{where}]])")
    found = []
    for index, item in enumerate(value):
        table = dict(_table(item, f"{where}.{index}", fail))
        name = table.pop("type", None)
        if not isinstance(name, str):
            raise fail(f"{where}.{index}", f'needs type = "<{what} name>"')
        found.append(NamedOptions(name=name, options=_resolve_paths(table, base_dir)))
    return tuple(found)


def _key(value: Any, where: str, fail: Any) -> KeyRef:
    if not isinstance(value, str):
        raise fail(where, f"key URIs must be strings, got {value!r}")
    try:
        return KeyRef.parse(value)
    except ConfigError as error:
        raise fail(where, str(error)) from None


def _resolve_paths(table: dict[str, Any], base_dir: Path | None) -> dict[str, Any]:
    for name in [option for option in table if is_path_option(str(option))]:
        value = table[name]
        if isinstance(value, str):
            path = Path(value).expanduser()
            if not path.is_absolute() and base_dir is not None:
                path = base_dir / path
            table[name] = str(path)
    return table


def _is_sha256(value: object) -> bool:
    return (
        isinstance(value, str)
        and len(value) == 64
        and all(c in "0123456789abcdef" for c in value.lower())
    )


def _key_groups(
    stack: Mapping[str, Any], wrapping_keys: tuple[KeyRef, ...], fail: Any
) -> Quorum | None:
    """``[stack] key_groups`` and ``threshold``, checked; ``None`` without them."""
    if "key_groups" not in stack:
        if "threshold" in stack:
            raise fail("stack", "threshold needs [stack.key_groups] (name = [key URIs])")
        return None
    groups = stack["key_groups"]
    threshold = stack.get("threshold")
    if not isinstance(groups, Mapping) or not groups:
        raise fail("stack", "key_groups must be a table of name = [key URIs, ...]")
    if isinstance(threshold, bool) or not isinstance(threshold, int):
        raise fail("stack", "key_groups needs threshold = K, how many groups must take part")
    if wrapping_keys:
        raise fail(
            "stack",
            "set either wrapping_keys or key_groups, not both: a plain wrapping key "
            "would let one key decrypt alone",
        )
    try:
        return Quorum.of(
            threshold,
            {
                str(name): [_key(uri, "stack.key_groups", fail) for uri in uris]
                if isinstance(uris, list)
                else uris
                for name, uris in groups.items()
            },
        )
    except ConfigError as error:
        raise fail("stack.key_groups", str(error)) from None
