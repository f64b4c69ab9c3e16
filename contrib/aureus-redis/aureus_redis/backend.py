"""The ``redis`` cache backend: one data-key cache for every process on a Redis server.

- **Sealed**: Redis holds only entries sealed by :class:`~aureus_redis.seal.Sealer`
  under keyed-hash names; a dump of Redis holds no data key, encryption
  context or key ID in clear.
- **Limits on the server**: each use is reserved by a Lua script that checks
  ``max_messages`` and ``max_bytes`` and counts the use in one atomic step, so
  no data key protects more messages or bytes than allowed, whichever process
  uses it; entries expire after ``max_age`` through Redis expiry.
- **Faults never fail an operation**: every call has a bounded timeout; when
  Redis is down, slow or flushed the cache misses and the stack calls the
  provider. One warning per outage, counters in :attr:`RedisCache.stats`
  (and the OpenTelemetry counter ``aureus.cache.backend_faults`` when the API
  is installed), and the next call after a short pause tries Redis again.
"""

from __future__ import annotations

import base64
import binascii
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from aureus_core.errors import ConfigError
from aureus_core.interfaces import CacheEntry
from aureus_core.plugins import get_host
from aureus_core.sensitive import Secret

from .seal import KEY_BYTES, Sealer, SealError

T = TypeVar("T")
_log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 0.25
"""Seconds any one Redis call may take (connect, send, answer) before it counts as a fault."""
DEFAULT_PAUSE = 1.0
"""Seconds the cache skips Redis after a fault before it tries again."""
DEFAULT_PREFIX = "aureus:dk:"
OPTIONS = (
    "url",
    "prefix",
    "timeout",
    "pause",
    "username",
    "credentials",
    "sealing_key_file",
    "tls_ca_file",
    "tls_cert_file",
    "tls_key_file",
)

# KEYS[1] entry; ARGV: max_messages, max_bytes, plaintext bytes of this message,
# the prefix of key-change markers.  Returns {sealed, messages, bytes} after
# counting the use, or false (and the entry removed) when there is none, one of
# its keys changed after it was made ('k' names the markers, 'c' its creation
# time in ms), or the use would pass a limit.  The markers are read by name
# from the entry, so this needs one Redis (with replicas), not Redis Cluster.
_RESERVE = """
local got = redis.call('HMGET', KEYS[1], 's', 'm', 'b', 'c', 'k')
if not got[1] then return false end
if got[5] then
  for marker in string.gmatch(got[5], '%S+') do
    local changed = redis.call('GET', ARGV[4] .. marker)
    if changed and tonumber(changed) >= tonumber(got[4]) then
      redis.call('DEL', KEYS[1])
      return false
    end
  end
end
local m = tonumber(got[2]) + 1
local b = tonumber(got[3]) + tonumber(ARGV[3])
if m > tonumber(ARGV[1]) or b > tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[1])
  return false
end
redis.call('HINCRBY', KEYS[1], 'm', 1)
redis.call('HINCRBY', KEYS[1], 'b', ARGV[3])
return {got[1], m, b}
"""

# KEYS[1] claim; ARGV[1] token: delete the claim only if it is still ours.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _faults_counter() -> Callable[[str], None]:
    try:
        from opentelemetry import metrics
    except ImportError:
        return lambda _kind: None
    counter = metrics.get_meter("aureus").create_counter(
        "aureus.cache.backend_faults",
        description="Redis cache calls that failed, timed out or found a forged entry",
    )
    return lambda kind: counter.add(1, {"backend": "redis", "kind": kind})


def _read_key(text: str, where: str) -> bytearray:
    text = text.strip()
    for decode in (bytes.fromhex, base64.b64decode):
        try:
            key = bytearray(decode(text))
        except (ValueError, binascii.Error):
            continue
        if len(key) == KEY_BYTES:
            return key
    raise ConfigError(
        f"the redis cache sealing key from {where} must be {KEY_BYTES} random bytes in hex "
        "or base64"
    )


class RedisCache:
    """A :class:`~aureus_core.cache.SharedCacheBackend` on a Redis server.

    ``client`` is a ``redis.Redis`` built with bounded timeouts and no retries
    (see :meth:`from_options`); ``sealer`` holds the sealing key.
    """

    def __init__(
        self,
        client: redis.Redis,
        sealer: Sealer,
        *,
        prefix: str = DEFAULT_PREFIX,
        pause: float = DEFAULT_PAUSE,
        where: str = "redis",
    ) -> None:
        self._client = client
        self._sealer = sealer
        self._prefix = prefix
        self._pause = pause
        self._where = where
        self._ttl_ms = 3_600_000
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._down = False
        self._tokens: dict[bytes, str] = {}
        self._reserve = client.register_script(_RESERVE)
        self._release = client.register_script(_RELEASE)
        self._count_fault = _faults_counter()
        self.stats = {"faults": 0, "outages": 0, "skipped": 0, "forged": 0}
        """Calls that failed, outages begun, calls skipped while down, entries dropped
        because their seal did not open."""

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> RedisCache:
        """Build from ``[cache]`` options (see docs/caching.md).

        ``url`` (``redis://``, ``rediss://`` for TLS, ``unix://``), ``prefix``,
        ``timeout`` and ``pause`` in seconds, ``username``, ``credentials``
        (``{source = "env", variables = {password = "...", sealing_key = "..."}}``:
        any credential source; values ``password``, ``username``,
        ``sealing_key``), ``sealing_key_file``, ``tls_ca_file``,
        ``tls_cert_file``, ``tls_key_file``.
        """
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise ConfigError(
                f"the redis cache backend has no option(s) {', '.join(unknown)}; "
                f"it takes: {', '.join(OPTIONS)}"
            )
        url = options.get("url", "redis://127.0.0.1:6379/0")
        prefix = options.get("prefix", DEFAULT_PREFIX)
        if not isinstance(url, str) or not isinstance(prefix, str) or not prefix:
            raise ConfigError("the redis cache url and prefix must be non-empty strings")
        timeout = _seconds(options, "timeout", DEFAULT_TIMEOUT)
        pause = _seconds(options, "pause", DEFAULT_PAUSE)
        values: dict[str, Secret[str]] = {}
        spec = options.get("credentials")
        if spec is not None:
            if not isinstance(spec, Mapping) or not isinstance(spec.get("source"), str):
                raise ConfigError(
                    "the redis cache 'credentials' option must be a table with a 'source' "
                    '(e.g. {source = "env", variables = {password = "REDIS_PASSWORD"}})'
                )
            rest = {k: v for k, v in spec.items() if k != "source"}
            source = get_host().credential_sources.get(spec["source"]).factory(rest)
            values = dict(source.get_credentials().values)
        if "sealing_key" in values:
            key = _read_key(values["sealing_key"].reveal(), "the credential source")
        elif "sealing_key_file" in options:
            path = Path(str(options["sealing_key_file"]))
            try:
                key = _read_key(path.read_text(), str(path))
            except OSError as error:
                raise ConfigError(
                    f"cannot read the redis cache sealing key file {path}: {error.strerror}"
                ) from None
        else:
            raise ConfigError(
                "the redis cache needs a sealing key: a 'sealing_key' value from its "
                "'credentials' source, or 'sealing_key_file' (32 random bytes, hex or base64)"
            )
        kwargs: dict[str, Any] = {
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            "retry": Retry(NoBackoff(), 0),
            "retry_on_timeout": False,
            "health_check_interval": 0,
        }
        username = values.get("username")
        if username is not None or "username" in options:
            kwargs["username"] = (
                username.reveal() if username is not None else str(options["username"])
            )
        if "password" in values:
            kwargs["password"] = values["password"].reveal()
        for option, argument in (
            ("tls_ca_file", "ssl_ca_certs"),
            ("tls_cert_file", "ssl_certfile"),
            ("tls_key_file", "ssl_keyfile"),
        ):
            if option in options:
                if not url.startswith("rediss://"):
                    raise ConfigError(f"the redis cache option {option} needs a rediss:// url")
                kwargs[argument] = str(options[option])
        try:
            client = redis.Redis.from_url(url, **kwargs)
        except ValueError:
            # redis-py's message may quote the URL, password included: not repeated here.
            raise ConfigError(
                "invalid redis cache url: use redis://host:port/db, rediss://host:port/db "
                "or unix:///path/to/socket, with the password from 'credentials'"
            ) from None
        try:
            sealer = Sealer(key)
        finally:
            key[:] = bytes(len(key))
        return cls(client, sealer, prefix=prefix, pause=pause, where=_safe_url(url))

    # -- fault handling --------------------------------------------------------------

    def _call(self, default: T, action: Callable[[], T]) -> T:
        now = time.monotonic()
        with self._lock:
            if self._down and now < self._down_until:
                self.stats["skipped"] += 1
                return default
        try:
            result = action()
        except (redis.RedisError, OSError) as error:
            self._fault(error)
            return default
        with self._lock:
            was_down, self._down = self._down, False
        if was_down:
            _log.warning("redis data-key cache at %s is reachable again", self._where)
        return result

    def _fault(self, error: BaseException) -> None:
        with self._lock:
            self.stats["faults"] += 1
            first = not self._down
            if first:
                self.stats["outages"] += 1
            self._down = True
            self._down_until = time.monotonic() + self._pause
        self._count_fault("unreachable")
        if first:
            _log.warning(
                "redis data-key cache at %s failed (%s); encrypting and decrypting with "
                "provider calls until it answers again",
                self._where,
                type(error).__name__,
            )

    @property
    def available(self) -> bool:
        """Whether the last call to Redis succeeded."""
        with self._lock:
            return not self._down

    # -- names -------------------------------------------------------------------------

    def _name(self, key: bytes) -> str:
        return f"{self._prefix}e:{self._sealer.name(key)}"

    def _claim_name(self, key: bytes) -> str:
        return f"{self._prefix}c:{self._sealer.name(key)}"

    def _open(self, name: str, sealed: bytes, messages: int, used: int) -> CacheEntry | None:
        try:
            entry = self._sealer.open(name.encode(), sealed, messages, used)
        except SealError as error:
            self._forged(name, f"its seal did not open: {error}")
            return None
        # The entry's creation time, on this process's monotonic clock.
        entry.created_at = time.monotonic() - max(0.0, time.time() - entry.created_at)
        return entry

    def _forged(self, name: str, why: str) -> None:
        """Drop an entry that was altered in Redis (counted, logged, never used)."""
        with self._lock:
            self.stats["forged"] += 1
        self._count_fault("forged")
        _log.warning("redis data-key cache: dropped an entry because %s", why)
        self._call(None, lambda: self._client.delete(name))

    # -- SharedCacheBackend ------------------------------------------------------------

    def set_max_age(self, seconds: float) -> None:
        """Entries expire ``seconds`` after they are put (Redis expiry)."""
        self._ttl_ms = max(1, int(seconds * 1000))

    def reserve(
        self, key: bytes, *, plaintext_bytes: int, max_messages: int, max_bytes: int
    ) -> CacheEntry | None:
        """Count one use on the server (Lua, atomic) and return the entry, or ``None``."""
        name = self._name(key)
        got = self._call(
            None,
            lambda: self._reserve(
                keys=[name],
                args=[max_messages, max_bytes, plaintext_bytes, f"{self._prefix}x:"],
            ),
        )
        if not got:
            return None
        sealed, messages, used = got
        # The script counts from fields anyone who can write to Redis can set: a counter
        # that is not a count (below what one use gives) is tampering, not a fault.
        if (
            not isinstance(sealed, bytes)
            or not isinstance(messages, int)
            or not isinstance(used, int)
            or messages < 1
            or used < plaintext_bytes
        ):
            self._forged(name, "its usage counters were not counts")
            return None
        return self._open(name, sealed, messages, used)

    def _marker(self, uri: str) -> str:
        base = uri.split("?", 1)[0]
        return self._sealer.name(b"key-change\0" + base.encode())

    def key_changed(self, uri: str) -> None:
        """Tell every process: entries made with key ``uri`` before now are not to be used.

        A marker (keyed-hash name, the time in ms) that lives for ``max_age``;
        the reservation script compares it with each entry's creation time.
        """
        name = f"{self._prefix}x:{self._marker(uri)}"
        now = int(time.time() * 1000)
        self._call(None, lambda: self._client.set(name, now, px=self._ttl_ms))

    def claim(self, key: bytes, seconds: float) -> bool:
        """Take the fill of ``key`` for ``seconds`` (``SET NX PX``); ``True`` if Redis is down."""
        token = secrets.token_hex(16)
        name = self._claim_name(key)
        won = self._call(
            True, lambda: bool(self._client.set(name, token, nx=True, px=int(seconds * 1000)))
        )
        if won:
            with self._lock:
                self._tokens[key] = token
        return won

    def release(self, key: bytes) -> None:
        """Give back this process's claim on ``key`` (never another's)."""
        with self._lock:
            token = self._tokens.pop(key, None)
        if token is not None:
            name = self._claim_name(key)
            self._call(None, lambda: self._release(keys=[name], args=[token]))

    # -- CacheBackend ------------------------------------------------------------------

    def get(self, key: bytes) -> CacheEntry | None:
        """The entry under ``key`` without counting a use, or ``None``."""
        name = self._name(key)
        got: list[Any] | None = self._call(
            None, lambda: list(self._client.hmget(name, ["s", "m", "b"]))
        )
        if not got or got[0] is None:
            return None
        return self._open(name, bytes(got[0]), int(got[1]), int(got[2]))

    def put(self, key: bytes, entry: CacheEntry) -> None:
        """Seal ``entry`` and store it under ``key``, replacing any entry, expiring at max_age.

        The given entry is left as it is: Redis holds a sealed copy.
        """
        name = self._name(key)
        wall = time.time() - max(0.0, time.monotonic() - entry.created_at)
        sealed = self._sealer.seal(name.encode(), entry, wall)
        markers = " ".join(sorted({self._marker(uri) for uri in entry.key_versions}))
        fields = {
            "s": sealed,
            "m": entry.messages,
            "b": entry.bytes,
            "c": int(wall * 1000),
            "k": markers,
        }

        def store() -> None:
            pipe = self._client.pipeline(transaction=True)
            pipe.delete(name)
            pipe.hset(name, mapping=fields)  # type: ignore[arg-type]
            pipe.pexpire(name, self._ttl_ms)
            pipe.execute()

        self._call(None, store)

    def evict(self, key: bytes) -> None:
        """Remove the entry under ``key``."""
        name = self._name(key)
        self._call(None, lambda: self._client.delete(name))

    def _names(self) -> Iterator[bytes]:
        yield from self._client.scan_iter(match=f"{self._prefix}e:*", count=1000)

    def clear(self) -> None:
        """Remove every entry under this cache's prefix."""

        def drop() -> None:
            batch = list(self._names())
            for start in range(0, len(batch), 500):
                self._client.delete(*batch[start : start + 500])

        self._call(None, drop)

    def __len__(self) -> int:
        return self._call(0, lambda: sum(1 for _ in self._names()))

    def close(self) -> None:
        """Close the connections."""
        self._client.close()

    def __repr__(self) -> str:
        return f"RedisCache({self._where}, prefix={self._prefix!r}, {self._sealer!r})"


def _seconds(options: Mapping[str, Any], name: str, default: float) -> float:
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 60:
        raise ConfigError(f"the redis cache {name} must be a number of seconds above 0, at most 60")
    return float(value)


def _safe_url(url: str) -> str:
    """The URL without any password in it, for logs and reprs."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = rest.split("@", 1)[1]
    return f"{scheme}{sep}{rest}"
