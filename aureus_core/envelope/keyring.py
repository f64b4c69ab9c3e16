"""Data keys for messages: generated and wrapped for every recipient, or unwrapped by one."""

from __future__ import annotations

import contextlib
import contextvars
import fnmatch
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, Executor, Future, as_completed, wait
from typing import Any, NoReturn

import attrs

from ..context import EncryptionContext
from ..datakey import EncryptedDataKey, WrappedKey
from ..errors import (
    AccessDenied,
    AureusError,
    ConfigError,
    CredentialError,
    DecryptionError,
    KeyDisabled,
    PluginError,
    ProviderError,
    ProviderUnavailable,
    Throttled,
    UnsupportedOperation,
    hint,
)
from ..interfaces import Capability, GeneratesDataKeys, KeyProvider
from ..keyref import KeyRef
from . import quorum
from .message import EncryptionMaterials, new_signing_key, signed_context
from .suites import DEFAULT_SUITE, SIGNED_SUITE

ProviderLookup = Callable[[str], KeyProvider]
Claimants = Callable[[], Sequence[KeyProvider]]
"""The providers a stack is configured with or has loaded, asked to claim other provider IDs."""
RESERVED_PROVIDER_IDS = ("aureus-", "aws-kms")


class NotStarted(PluginError):
    """A stack declines to start a provider only because a message names it.

    Raised by a decrypt's provider lookup for a registered scheme the stack is
    neither configured with nor already running, and that no key of the
    decrypt or the configuration names; the keyring reports it as why the
    message's keys of that scheme were not tried.
    """


"""Provider ID prefixes that name a provider's own layout and are never a raw key namespace."""


def scheme_for_provider_id(provider_id: str) -> str:
    """The URI scheme whose provider reads encrypted data keys with ``provider_id``.

    Aureus providers write ``aureus-<scheme>``; a provider that follows an
    ecosystem layout uses that layout's ID as its scheme (``aws-kms``).
    Other provider IDs (a raw keyring's key namespace) are not schemes: the
    keyring asks the stack's own providers whether one holds such a key.
    """
    return provider_id[len("aureus-") :] if provider_id.startswith("aureus-") else provider_id


MAX_NAMED_SKIPS = 4
"""How many skipped keys a :class:`DecryptionError` names (the rest are counted)."""
_MAX_SHOWN_URI = 200


@attrs.frozen(kw_only=True)
class KeyFilter:
    """Which wrapping keys a decrypt may use.

    ``keys`` (strict mode) names the only keys allowed, optionally pinned to a
    version.  Otherwise (discovery mode) a key's unversioned URI must match
    one of ``patterns`` (shell-style, default ``*``) *and*, if its provider
    limits discovery (:class:`~aureus_core.interfaces.ScopesDiscovery`, the
    cloud providers), be one of ``named`` (the keys the configuration names)
    or inside the scope the provider's options configure.  The patterns can
    only narrow that scope, never widen it.
    """

    keys: tuple[KeyRef, ...] = ()
    patterns: tuple[str, ...] = ("*",)
    named: tuple[KeyRef, ...] = ()

    def allows(self, ref: KeyRef) -> bool:
        """Whether ``ref`` passes ``keys`` or ``patterns`` (providers' scopes not consulted)."""
        base = ref.with_version(None)
        if self.keys:
            return any(
                key.with_version(None) == base and key.version in (None, ref.version)
                for key in self.keys
            )
        return any(
            pattern == "*" or fnmatch.fnmatchcase(base.uri, pattern) for pattern in self.patterns
        )

    def refusal(self, ref: KeyRef, provider: object) -> str | None:
        """``None`` if ``ref`` (of ``provider``) may be used, else why not and what would allow it.

        May raise the provider's operational errors (a configured alias that
        cannot be resolved because the service is unreachable).
        """
        if self.keys:
            if self.allows(ref):
                return None
            return "not one of the keys this decrypt names (keys=, --key)"
        if not self.allows(ref):
            return "[stack] decrypt_allow does not match it"
        scope = getattr(provider, "discovery_refusal", None)
        if scope is None:
            return None
        named = tuple(key for key in self.named if key.scheme == ref.scheme)
        refusal: str | None = scope(ref, named)
        return refusal


def _skip_reasons(skipped: dict[str, list[str]]) -> list[str]:
    """``not used: KEY, KEY: reason`` per reason, at most ``MAX_NAMED_SKIPS`` keys in all."""
    lines: list[str] = []
    budget = MAX_NAMED_SKIPS
    groups = list(skipped.items())
    for index, (why_not, uris) in enumerate(groups):
        if budget <= 0:
            hidden = sum(len(rest) for _, rest in groups[index:])
            lines.append(f"and {hidden} more key(s) not used")
            break
        shown = uris[:budget]
        budget -= len(shown)
        more = f" and {len(uris) - len(shown)} more" if len(uris) > len(shown) else ""
        lines.append(f"not used: {', '.join(shown)}{more}: {why_not}")
    return lines


@attrs.define
class _Outcome:
    """What the unwrap attempts of one message ran into, for the final error."""

    refused: list[str] = attrs.field(factory=list)
    skipped: dict[str, list[str]] = attrs.field(factory=dict)
    """reason -> the keys it kept from their provider"""
    operational: list[AureusError] = attrs.field(factory=list)
    tried: list[str] = attrs.field(factory=list)
    """Each key an unwrap was sent to, with what became of it, in candidate order"""
    codes: list[str | None] = attrs.field(factory=list)
    """The service's code of each failed unwrap that was a :class:`DecryptionError`"""

    def vet(
        self, provider: KeyProvider, encrypted: EncryptedDataKey, allowed: KeyFilter
    ) -> KeyRef | bool:
        """The key to ask ``provider`` for, else whether ``provider`` owned ``encrypted``.

        No unwrap happens here: a key ``allowed`` refuses is recorded and
        never reaches its provider.
        """
        if Capability.WRAP not in provider.capabilities:
            return False
        try:
            ref = provider.owner_of(encrypted)
            why_not = allowed.refusal(ref, provider) if ref is not None else None
        except (ProviderUnavailable, Throttled, AccessDenied, CredentialError) as error:
            self.operational.append(error)
            return True
        except AureusError:
            return False  # a key name the provider cannot even represent
        if ref is None or ref.scheme != provider.scheme:
            return False
        if why_not is not None:
            # Key IDs are not secrets; naming the key and the option that would allow it
            # is what lets an operator fix a legitimate refusal.
            self.skipped.setdefault(why_not, []).append(_shown(ref))
            return True
        return ref

    def record(self, ref: KeyRef, failure: AureusError) -> None:
        """Keep what one unwrap ran into, for the final error."""
        if isinstance(failure, KeyDisabled):
            # A lifecycle refusal (disabled, below the minimum version) names the
            # key and version, not anything secret: pass it on so it can be fixed.
            self.refused.append(str(failure))
            label = "refused"
        elif isinstance(failure, _OPERATIONAL):
            self.operational.append(failure)
            label = f"{type(failure).__name__}: {failure}"
        else:
            label = "did not unwrap"  # never why: wrong key and tampering look alike
            if isinstance(failure, DecryptionError):
                self.codes.append(failure.code)
        self.tried.append(f"{_shown(ref)} ({label})")


_OPERATIONAL = (ProviderUnavailable, Throttled, AccessDenied, CredentialError)
"""Errors that say a provider could not be asked, rather than that its key failed."""

Candidate = tuple[KeyProvider, KeyRef, EncryptedDataKey]


def _unwrap_one(
    provider: KeyProvider, ref: KeyRef, encrypted: EncryptedDataKey, context: EncryptionContext
) -> bytearray | AureusError:
    """One unwrap; an Aureus error is returned, not raised, so a pool can collect it."""
    try:
        return provider.unwrap(ref, encrypted, context)
    except AureusError as error:
        return error


def _shown(ref: KeyRef) -> str:
    """A key URI from a message, shortened for an error message."""
    uri = ref.uri
    return uri if len(uri) <= _MAX_SHOWN_URI else uri[: _MAX_SHOWN_URI - 3] + "..."


def encryption_materials(
    lookup: ProviderLookup,
    keys: Sequence[KeyRef] | quorum.Quorum,
    context: EncryptionContext,
    *,
    signed: bool,
    pool: Executor | Fanout | None = None,
) -> tuple[EncryptionMaterials, list[KeyRef]]:
    """A fresh data key wrapped by every key in ``keys``; returns the wrapping versions too.

    With ``pool``, the wraps for several keys run concurrently (see :func:`wrap_for_all`).
    With a :class:`~.quorum.Quorum` of threshold above one, the data key is
    split into one share per key group instead; threshold one is every key
    wrapping the whole data key, as with a plain list.
    """
    if isinstance(keys, quorum.Quorum):
        if keys.threshold > 1:
            return _quorum_materials(lookup, keys, context, signed=signed)
        keys = keys.keys
    if not keys:
        raise ConfigError(
            f"no wrapping key: pass {hint('keys=[URI, ...]', '--key URI')} or set "
            "[stack] wrapping_keys"
        )
    if len(set(keys)) != len(keys):
        raise ConfigError("the same wrapping key is listed twice")
    signing_key = new_signing_key()[0] if signed else None
    full_context = signed_context(context, signing_key)
    suite = SIGNED_SUITE if signed else DEFAULT_SUITE
    data_key, encrypted, used = _new_data_key(
        lookup, keys, suite.data_key_length, full_context, pool
    )
    materials = EncryptionMaterials(
        suite=suite,
        data_key=data_key,
        encrypted_data_keys=encrypted,
        context=full_context,
        signing_key=signing_key,
    )
    return materials, used


def _quorum_materials(
    lookup: ProviderLookup, groups: quorum.Quorum, context: EncryptionContext, *, signed: bool
) -> tuple[EncryptionMaterials, list[KeyRef]]:
    signing_key = new_signing_key()[0] if signed else None
    full_context = signed_context(context, signing_key)
    suite = SIGNED_SUITE if signed else DEFAULT_SUITE

    def wrap(
        ref: KeyRef, share: bytes, wrap_context: EncryptionContext
    ) -> tuple[EncryptedDataKey, KeyRef]:
        provider = lookup(ref.scheme)
        if Capability.WRAP not in provider.capabilities:
            raise UnsupportedOperation(ref.scheme, "wrap")
        wrapped = provider.wrap(ref, share, wrap_context)
        return wrapped.encrypted, wrapped.key

    data_key = bytearray(os.urandom(suite.data_key_length))
    try:
        encrypted, used = quorum.split_for(groups, data_key, full_context, wrap)
    except BaseException:
        _wipe(data_key)
        raise
    materials = EncryptionMaterials(
        suite=suite,
        data_key=data_key,
        encrypted_data_keys=encrypted,
        context=full_context,
        signing_key=signing_key,
    )
    return materials, used


def _wipe(buffer: bytearray) -> None:
    buffer[:] = bytes(len(buffer))


def _new_data_key(
    lookup: ProviderLookup,
    keys: Sequence[KeyRef],
    length: int,
    context: EncryptionContext,
    pool: Executor | Fanout | None = None,
) -> tuple[bytearray, tuple[EncryptedDataKey, ...], list[KeyRef]]:
    """A data key wrapped by every key in ``keys``.

    When the first key's provider generates data keys (KMS ``GenerateDataKey``),
    it makes the key and its first wrap in one call; otherwise the key comes
    from the operating system's CSPRNG.  With ``pool`` the remaining wraps (all
    of them, for a CSPRNG key) run at once.
    """
    first = lookup(keys[0].scheme)
    if Capability.GENERATE_DATA_KEY not in first.capabilities:
        data_key = bytearray(os.urandom(length))
        try:
            encrypted, used = wrap_for_all(lookup, keys, data_key, context, pool)
        except BaseException:
            _wipe(data_key)
            raise
        return data_key, encrypted, used
    if not isinstance(first, GeneratesDataKeys):
        raise UnsupportedOperation(
            keys[0].scheme, "generate_data_key", "it declares the capability but lacks the method"
        )
    data_key, wrapped = first.generate_data_key(keys[0], length, context)
    if len(data_key) != length:
        _wipe(data_key)
        raise ProviderError(
            f"provider {keys[0].scheme!r} generated a {len(data_key)}-byte data key; "
            f"the algorithm suite needs {length} bytes",
            provider=keys[0].scheme,
        )
    try:
        rest, used = wrap_for_all(lookup, keys[1:], data_key, context, pool)
    except BaseException:
        _wipe(data_key)
        raise
    return data_key, (wrapped.encrypted, *rest), [wrapped.key, *used]


def _submit(pool: Executor, function: Callable[..., Any], *args: Any) -> Future[Any]:
    """Run ``function`` in ``pool`` in a copy of this thread's context (tracing spans nest)."""
    return pool.submit(contextvars.copy_context().run, function, *args)


Target = tuple[KeyRef, KeyProvider]


class Fanout:
    """How one operation runs its concurrent provider calls: this one, in a thread pool.

    The envelope code decides *what* to call (which keys wrap, which
    candidates may unwrap, in which order); a fan-out only decides *how* the
    calls overlap.  :class:`~aureus_core.aio.AsyncKeyStack` substitutes one
    that awaits native provider coroutines on its event loop.
    """

    def __init__(self, pool: Executor) -> None:
        self.pool = pool

    def route(self, provider: KeyProvider) -> KeyProvider:
        """The provider an operation's single calls go to (here: ``provider`` itself)."""
        return provider

    def wrap_all(
        self, targets: Sequence[Target], data_key: bytes, context: EncryptionContext
    ) -> list[WrappedKey]:
        """Wrap ``data_key`` under every target at once; results in order of ``targets``.

        If a wrap fails, the wraps not yet started are cancelled, the running
        ones finish, and the error of the first failing target is raised.
        """
        futures = [
            _submit(self.pool, provider.wrap, ref, data_key, context) for ref, provider in targets
        ]
        wait(futures, return_when=FIRST_EXCEPTION)
        for future in futures:
            future.cancel()
        wait(futures)  # the running wraps finish (each is bounded by its provider's timeouts)
        for future in futures:  # the first failure in key order; cancelled wraps never ran
            failure = None if future.cancelled() else future.exception()
            if failure is not None:
                raise failure
        return [future.result() for future in futures]

    def race(
        self, candidates: Sequence[Candidate], context: EncryptionContext
    ) -> tuple[int, bytearray] | list[AureusError]:
        """Unwrap every candidate at once: the winner's index and data key, else every error.

        The unwraps not started when one wins are cancelled; a data key that
        still arrives from a loser is wiped.
        """
        futures = [
            _submit(self.pool, _unwrap_one, provider, ref, encrypted, context)
            for provider, ref, encrypted in candidates
        ]
        winner: Future[bytearray | AureusError] | None = None
        try:
            for future in as_completed(futures):
                if isinstance(future.result(), bytearray):
                    winner = future
                    break
        finally:
            for future in futures:
                if future is not winner:
                    future.cancel()  # not started yet: never sent
                    future.add_done_callback(_wipe_loser)  # running: wiped when it returns
        if winner is not None:
            result = winner.result()
            assert isinstance(result, bytearray)
            return futures.index(winner), result
        failures = [future.result() for future in futures]
        assert all(isinstance(failure, AureusError) for failure in failures)
        return failures


_ACTIVE: contextvars.ContextVar[Fanout | None] = contextvars.ContextVar(
    "aureus_fanout", default=None
)


def active_fanout() -> Fanout | None:
    """The fan-out the running operation was given (by an async stack), if any."""
    return _ACTIVE.get()


@contextlib.contextmanager
def using_fanout(fanout: Fanout) -> Iterator[None]:
    """Run the stack operations inside the block with ``fanout`` (this thread and context)."""
    token = _ACTIVE.set(fanout)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def _fanout(pool: Executor | Fanout | None) -> Fanout | None:
    return pool if isinstance(pool, Fanout) or pool is None else Fanout(pool)


def wrap_for_all(
    lookup: ProviderLookup,
    keys: Sequence[KeyRef],
    data_key: bytes | bytearray,
    context: EncryptionContext,
    pool: Executor | Fanout | None = None,
) -> tuple[tuple[EncryptedDataKey, ...], list[KeyRef]]:
    """Wrap ``data_key`` under every key; return the encrypted keys and the versions used.

    With ``pool`` (a thread pool or a :class:`Fanout`), the wraps run
    concurrently, so the whole costs about the slowest one; the results keep
    the order of ``keys``.  Every key's provider and capability are checked
    before any wrap; if a wrap fails, the wraps not yet started are cancelled
    and the error of the first failing key (in the order of ``keys``) is raised.
    """
    targets: list[Target] = []
    for ref in keys:
        provider = lookup(ref.scheme)
        if Capability.WRAP not in provider.capabilities:
            raise UnsupportedOperation(ref.scheme, "wrap")
        targets.append((ref, provider))
    plain = bytes(data_key)
    fanout = _fanout(pool)
    if fanout is None or len(targets) < 2:
        wrapped = [provider.wrap(ref, plain, context) for ref, provider in targets]
    else:
        wrapped = fanout.wrap_all(targets, plain, context)
    return tuple(w.encrypted for w in wrapped), [w.key for w in wrapped]


def _candidates(
    lookup: ProviderLookup,
    encrypted_data_keys: Sequence[EncryptedDataKey],
    allowed: KeyFilter,
    claimants: Claimants | None,
    outcome: _Outcome,
) -> Iterator[Candidate]:
    """The (provider, key, encrypted data key) triples an unwrap may be sent to, in order.

    Lazy: a sequential decrypt that succeeds early asks no further provider.
    """
    for encrypted in encrypted_data_keys:
        convention: KeyProvider | None = None
        try:
            convention = lookup(scheme_for_provider_id(encrypted.provider_id))
        except NotStarted as error:
            if str(error) not in outcome.refused:
                outcome.refused.append(str(error))
        except PluginError:
            pass  # no plugin serves that ID (a raw keyring's key namespace, say)
        except AureusError as error:
            outcome.operational.append(error)  # configured, but it cannot start
        owned = False
        if convention is not None:
            result = outcome.vet(convention, encrypted, allowed)
            if isinstance(result, KeyRef):
                yield convention, result, encrypted
                owned = True
            else:
                owned = result
        if owned or claimants is None or encrypted.provider_id.startswith(RESERVED_PROVIDER_IDS):
            continue
        for provider in claimants():
            if convention is not None and provider.scheme == convention.scheme:
                continue
            result = outcome.vet(provider, encrypted, allowed)
            if isinstance(result, KeyRef):
                yield provider, result, encrypted


def _wipe_loser(future: Future[bytearray | AureusError]) -> None:
    """Wipe the data key an unwrap that lost the race produced (now or when it finishes)."""
    if future.cancelled() or future.exception() is not None:
        return
    result = future.result()
    if isinstance(result, bytearray):
        _wipe(result)


def _race(
    fanout: Fanout, candidates: Sequence[Candidate], context: EncryptionContext, outcome: _Outcome
) -> tuple[bytearray, KeyRef] | None:
    """Unwrap every candidate at once; the first data key wins, the rest are cancelled or wiped."""
    won = fanout.race(candidates, context)
    if isinstance(won, tuple):
        index, data_key = won
        return data_key, candidates[index][1]
    for failure, (_, ref, _) in zip(won, candidates, strict=True):
        outcome.record(ref, failure)
    return None


def unwrap_data_key(
    lookup: ProviderLookup,
    encrypted_data_keys: Sequence[EncryptedDataKey],
    context: EncryptionContext,
    allowed: KeyFilter,
    claimants: Claimants | None = None,
    pool: Executor | Fanout | None = None,
) -> tuple[bytearray, KeyRef]:
    """Unwrap the first encrypted data key an allowed, reachable key can open.

    Each encrypted data key goes to the provider its ID names by convention.
    Only when that provider does not own it, and the ID is not a reserved
    Aureus or AWS KMS ID (a raw keyring's key namespace, say), are the
    ``claimants`` asked (the stack's configured and loaded providers); a
    provider takes part only if :meth:`KeyProvider.owner_of` recognises one
    of its own keys, so the ID never selects a provider by itself.

    A key ``allowed`` refuses is never sent to its provider; the final error
    names it with the reason.  A key that fails (wrong key, tampering, an
    unreachable provider) is skipped.  With ``pool``, every allowed candidate
    is first vetted, then all are sent at once (in message order); the first
    data key to come back wins, the unwraps not yet started are cancelled and
    any other data key that still arrives is wiped.

    When none succeeds: if a provider could not be asked at all (unreachable,
    throttled, credentials refused), an error of that type, since retrying or
    fixing access may help; otherwise one :class:`DecryptionError` that says
    nothing about why an unwrap failed.  Either names every key tried.
    """
    data_key, used = unwrap_data_key_by(
        lookup, encrypted_data_keys, context, allowed, claimants, pool
    )
    return data_key, used[0]


def unwrap_data_key_by(
    lookup: ProviderLookup,
    encrypted_data_keys: Sequence[EncryptedDataKey],
    context: EncryptionContext,
    allowed: KeyFilter,
    claimants: Claimants | None = None,
    pool: Executor | Fanout | None = None,
) -> tuple[bytearray, tuple[KeyRef, ...]]:
    """As :func:`unwrap_data_key`, with every key that took part.

    One key, or for a key-group message one per share used: a cached data key
    must be dropped when any of them stops being usable, not only the first.
    """
    split = quorum.layout(encrypted_data_keys)
    if split is not None:
        data_key, used = _recover_quorum(split, lookup, context, allowed, claimants)
        return data_key, tuple(used)
    data_key, ref = _unwrap_plain(lookup, encrypted_data_keys, context, allowed, claimants, pool)
    return data_key, (ref,)


def _unwrap_plain(
    lookup: ProviderLookup,
    encrypted_data_keys: Sequence[EncryptedDataKey],
    context: EncryptionContext,
    allowed: KeyFilter,
    claimants: Claimants | None,
    pool: Executor | Fanout | None,
) -> tuple[bytearray, KeyRef]:
    """The first encrypted data key (not a key-group share) an allowed key opens."""
    outcome = _Outcome()
    found = _candidates(lookup, encrypted_data_keys, allowed, claimants, outcome)
    if pool is None:
        for provider, ref, encrypted in found:
            result = _unwrap_one(provider, ref, encrypted, context)
            if isinstance(result, bytearray):
                return result, ref
            outcome.record(ref, result)
    else:
        candidates = list(found)
        if len(candidates) == 1:
            provider, ref, encrypted = candidates[0]
            result = _unwrap_one(provider, ref, encrypted, context)
            if isinstance(result, bytearray):
                return result, ref
            outcome.record(ref, result)
        elif candidates:
            fanout = _fanout(pool)
            assert fanout is not None
            won = _race(fanout, candidates, context, outcome)
            if won is not None:
                return won
    return _fail(outcome, len(encrypted_data_keys))


def _fail(outcome: _Outcome, count: int) -> NoReturn:
    """Raise the error for a message none of whose keys unwrapped."""
    tried = f"tried: {'; '.join(outcome.tried)}" if outcome.tried else ""
    reasons = [*outcome.refused, *_skip_reasons(outcome.skipped)]
    if outcome.operational:
        first = outcome.operational[0]
        if len(outcome.tried) < 2:
            raise first
        # Same type, code and provider as the first outage, so callers that retry
        # on it still do; the message names every key that was tried.
        named = type(first).__new__(type(first))
        named.__dict__.update(first.__dict__)
        named.args = ("; ".join(["no encrypted data key could be unwrapped", tried, *reasons]),)
        raise named from first
    if len(outcome.tried) > 1:
        reasons.append(tried)
    reason = f" ({'; '.join(reasons)})" if reasons else ""
    # One key tried: its service's code, as the provider raised it (the code says
    # what the service said about its own key; with several keys there is no one code).
    code = outcome.codes[0] if len(outcome.tried) == 1 and len(outcome.codes) == 1 else None
    raise DecryptionError(
        "the message could not be decrypted: none of its "
        f"{count} encrypted data key(s) could be unwrapped with a key "
        f"this stack may use{reason}",
        code=code,
    )


def _try_one(
    outcome: _Outcome,
    lookup: ProviderLookup,
    encrypted: EncryptedDataKey,
    context: EncryptionContext,
    allowed: KeyFilter,
    claimants: Claimants | None,
) -> tuple[bytearray, KeyRef] | None:
    """Unwrap one encrypted data key, vetted as any candidate is, one provider after another."""
    for provider, ref, candidate in _candidates(lookup, [encrypted], allowed, claimants, outcome):
        result = _unwrap_one(provider, ref, candidate, context)
        if isinstance(result, bytearray):
            return result, ref
        outcome.record(ref, result)
    return None


def _recover_quorum(
    found: quorum.QuorumLayout,
    lookup: ProviderLookup,
    context: EncryptionContext,
    allowed: KeyFilter,
    claimants: Claimants | None,
) -> tuple[bytearray, list[KeyRef]]:
    """The data key of a key-group message: each share is unwrapped like a data key."""

    def unwrap(
        inner: EncryptedDataKey, bound: EncryptionContext, why: list[str]
    ) -> tuple[bytearray, KeyRef] | None:
        outcome = _Outcome()
        result = _try_one(outcome, lookup, inner, bound, allowed, claimants)
        if result is None:
            why.extend(str(error) for error in outcome.operational)
            why.extend(outcome.refused)
            why.extend(_skip_reasons(outcome.skipped))
            if not why:
                why.append("no key this stack may use could unwrap its share")
        return result

    return quorum.recover(found, context, unwrap)
