"""The asyncio API: :class:`AsyncKeyStack`, a :class:`~aureus_core.stack.KeyStack` for event loops.

An ``AsyncKeyStack`` is a thin front over one ``KeyStack``: the same
configuration, plugins, providers, circuit breakers, data-key cache, audit
trail and telemetry, and the same envelope code.  Each call runs the stack's
synchronous operation in a bounded thread pool of its own (``workers``
threads), so the event loop never blocks on a key derivation, AES or a
provider without native coroutines.  Inside an operation the stack's own
pool fans wraps and unwraps out (``[stack] concurrency``).

Providers that offer native coroutines
(:class:`~aureus_core.interfaces.AsyncKeyProvider`: ``gcp-kms`` and
``azure-kv`` do) are awaited on the event loop instead: the operation hands
its provider calls to the loop -- the data key's generate and wraps for every
recipient at once, the first-wins unwrap race, a single sign, verify or
public-key call -- through the same breakers and tracing proxies, and a
cancelled operation cancels those calls for real.  Providers without them
are called from the pool, as before, even within the same operation.

Cancellation and deadlines (``asyncio.wait_for``, ``asyncio.timeout``):

* one-shot calls (``encrypt``, ``decrypt``, ``sign`` ...) return values, so a
  cancelled call has no output at all; a provider call already in flight
  finishes in its thread (bounded by the provider's own timeouts) and its
  result is dropped (the stack wipes its data keys either way);
* stream and file calls stop their worker at its next read or write and wait
  for it before the cancellation completes: no write happens after it, the
  operation has ended in its thread, and ``encrypt_file`` / ``decrypt_file`` leave no
  output file (they write through the CLI's atomic output).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import inspect
import io
import os
import threading
from collections.abc import AsyncIterable, Awaitable, Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from types import TracebackType
from typing import Any, BinaryIO, Protocol, TypeVar, runtime_checkable

from .context import EncryptionContext
from .datakey import EncryptedDataKey, WrappedKey
from .envelope.keyring import Candidate, Fanout, Target, _unwrap_one, _wipe_loser, using_fanout
from .envelope.spool import DEFAULT_MEMORY_BOUND
from .errors import AureusError
from .interfaces import NATIVE_ASYNC_METHODS, KeyProvider
from .keyref import KeyRef
from .keys import KeyMetadata, KeySpec, KeyState, KeyType
from .proxy import ProviderProxy, native_async
from .rotation import EnforcementAction, RotationPolicy, RotationStatus
from .signature import Signature
from .stack import KeyStack
from .wrapped_import import ImportParameters

T = TypeVar("T")

DEFAULT_WORKERS = 16
"""Threads an :class:`AsyncKeyStack` runs operations in when ``workers`` is not given."""


@runtime_checkable
class AsyncReader(Protocol):
    """An async byte source: ``asyncio.StreamReader``, an aiofiles file, ..."""

    def read(self, size: int = -1, /) -> Awaitable[bytes]:
        """Up to ``size`` bytes; ``b""`` at the end."""


AsyncSource = AsyncReader | AsyncIterable[bytes]
"""What the stream calls read: an object with ``async read(n)``, or an async iterable of bytes."""
AsyncSink = Any
"""What the stream calls write to: ``write(data)`` (awaited if it returns an awaitable;
``drain()`` awaited when present, as for ``asyncio.StreamWriter``)."""


class StreamCancelled(AureusError):
    """The awaiting task was cancelled: the worker stops at its next read or write."""


class _LoopReader(io.RawIOBase):
    """A blocking file, read in a worker thread, that pulls its bytes from the event loop."""

    def __init__(
        self, source: AsyncSource, loop: asyncio.AbstractEventLoop, stop: threading.Event
    ) -> None:
        super().__init__()
        self._loop = loop
        self._stop = stop
        self._pending = b""
        if isinstance(source, AsyncReader):
            self._read: Callable[[int], Awaitable[bytes]] = source.read
        else:
            iterator = source.__aiter__()

            async def pull(size: int) -> bytes:
                if not self._pending:
                    try:
                        self._pending = bytes(await iterator.__anext__())
                    except StopAsyncIteration:
                        return b""
                chunk, self._pending = self._pending[:size], self._pending[size:]
                return chunk

            self._read = pull

    def readable(self) -> bool:
        return True

    async def _pull(self, size: int) -> bytes:
        return bytes(await self._read(size))

    def readinto(self, buffer: Any) -> int:
        if self._stop.is_set():
            raise StreamCancelled("cancelled")
        view = memoryview(buffer).cast("B")
        data = asyncio.run_coroutine_threadsafe(self._pull(len(view)), self._loop).result()
        if len(data) > len(view):
            raise AureusError("the async source returned more bytes than were asked for")
        view[: len(data)] = data
        return len(data)


class _LoopWriter(io.RawIOBase):
    """A blocking file, written in a worker thread, whose writes run on the event loop."""

    def __init__(
        self, sink: AsyncSink, loop: asyncio.AbstractEventLoop, stop: threading.Event
    ) -> None:
        super().__init__()
        self._sink = sink
        self._loop = loop
        self._stop = stop

    def writable(self) -> bool:
        return True

    async def _write(self, data: bytes) -> None:
        if self._stop.is_set():  # checked on the loop, so no write follows a cancellation
            raise StreamCancelled("cancelled")
        result = self._sink.write(data)
        if inspect.isawaitable(result):
            await result
        drain = getattr(self._sink, "drain", None)
        if drain is not None:
            await drain()

    def write(self, data: Any) -> int:
        if self._stop.is_set():
            raise StreamCancelled("cancelled")
        chunk = bytes(data)
        asyncio.run_coroutine_threadsafe(self._write(chunk), self._loop).result()
        return len(chunk)


class _StopOnWrite(io.RawIOBase):
    """A file opened in the worker, whose writes refuse once the caller was cancelled."""

    def __init__(self, inner: BinaryIO | Any, stop: threading.Event) -> None:
        super().__init__()
        self._inner = inner
        self._stop = stop

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        if self._stop.is_set():
            raise StreamCancelled("cancelled")
        written: int = self._inner.write(data)
        return written


class _Routed(ProviderProxy):
    """A provider whose native calls, made in a worker thread, run on the event loop."""

    __slots__ = ("_bridge",)

    def __init__(self, provider: KeyProvider, bridge: _LoopBridge) -> None:
        super().__init__(provider)
        self._bridge = bridge

    def __getattr__(self, name: str) -> Any:
        if name == "_bridge":
            raise AttributeError(name)
        return super().__getattr__(name)

    def _call(
        self, method: str, key: KeyRef | None, function: Callable[..., T], *args: Any, **kwargs: Any
    ) -> T:
        if method in NATIVE_ASYNC_METHODS and native_async(self._provider):
            coroutine = getattr(self._provider, f"a{method}")(*args, **kwargs)
            return self._bridge.run(coroutine)  # type: ignore[no-any-return]
        return function(*args, **kwargs)


def _direct(provider: KeyProvider) -> KeyProvider:
    return provider.wrapped if isinstance(provider, _Routed) else provider


class _LoopBridge(Fanout):
    """One operation's provider calls: native ones awaited on ``loop``, the others in ``pool``.

    The operation itself runs in a worker thread and blocks on each hand-off;
    :meth:`cancel` (on the loop) cancels the native calls in flight and
    refuses any later one, so the worker unwinds at once with nothing produced.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, pool: concurrent.futures.Executor) -> None:
        super().__init__(pool)
        self.loop = loop
        self.used = False
        """Whether a native call was handed to the loop."""
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()

    def route(self, provider: KeyProvider) -> KeyProvider:
        return _Routed(provider, self) if native_async(provider) else provider

    def run(self, coroutine: Awaitable[T]) -> T:
        """Run ``coroutine`` on the loop from the worker thread; wait for its result."""
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:  # waiting here would block the loop that must answer
            if inspect.iscoroutine(coroutine):
                coroutine.close()
            raise AureusError(
                "a blocking provider call was made on the event loop of an AsyncKeyStack "
                "operation; call the AsyncKeyStack method instead"
            )
        with self._lock:
            if self._stop.is_set():
                if inspect.iscoroutine(coroutine):
                    coroutine.close()
                raise concurrent.futures.CancelledError()
            self.used = True
        return asyncio.run_coroutine_threadsafe(self._tracked(coroutine), self.loop).result()

    async def _tracked(self, coroutine: Awaitable[T]) -> T:
        task = asyncio.current_task()
        assert task is not None
        with self._lock:
            self._tasks.add(task)
            if self._stop.is_set():
                task.cancel()
        try:
            return await coroutine
        finally:
            with self._lock:
                self._tasks.discard(task)

    def cancel(self) -> bool:
        """On the loop: cancel the native calls; ``True`` if any call went native."""
        with self._lock:
            self._stop.set()
            for task in self._tasks:
                task.cancel()
            return self.used

    # -- fan-out on the loop -------------------------------------------------------

    def wrap_all(
        self, targets: Sequence[Target], data_key: bytes, context: EncryptionContext
    ) -> list[WrappedKey]:
        if not any(native_async(_direct(provider)) for _, provider in targets):
            return super().wrap_all(targets, data_key, context)
        return self.run(self._wrap_all(targets, data_key, context))

    def race(
        self, candidates: Sequence[Candidate], context: EncryptionContext
    ) -> tuple[int, bytearray] | list[AureusError]:
        if not any(native_async(_direct(provider)) for provider, _, _ in candidates):
            return super().race(candidates, context)
        return self.run(self._race(candidates, context))

    async def _wrap(
        self, provider: KeyProvider, ref: KeyRef, data_key: bytes, context: EncryptionContext
    ) -> WrappedKey:
        provider = _direct(provider)
        if native_async(provider):
            return await provider.awrap(ref, data_key, context)  # type: ignore[attr-defined,no-any-return]
        future = self.pool.submit(
            contextvars.copy_context().run, provider.wrap, ref, data_key, context
        )
        return await asyncio.wrap_future(future)

    async def _unwrap(
        self,
        provider: KeyProvider,
        ref: KeyRef,
        encrypted: EncryptedDataKey,
        context: EncryptionContext,
    ) -> bytearray | AureusError:
        provider = _direct(provider)
        if native_async(provider):
            try:
                result: bytearray = await provider.aunwrap(ref, encrypted, context)  # type: ignore[attr-defined]
            except AureusError as error:
                return error
            return result
        future = self.pool.submit(
            contextvars.copy_context().run, _unwrap_one, provider, ref, encrypted, context
        )
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            future.cancel()
            future.add_done_callback(_wipe_loser)  # a key that still arrives is wiped
            raise

    async def _wrap_all(
        self, targets: Sequence[Target], data_key: bytes, context: EncryptionContext
    ) -> list[WrappedKey]:
        tasks = [
            asyncio.ensure_future(self._wrap(provider, ref, data_key, context))
            for ref, provider in targets
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for task in tasks:
                task.cancel()  # a no-op for the finished ones; the others stop for real
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in tasks:  # the first failure in key order
            failure = None if task.cancelled() else task.exception()
            if failure is not None:
                raise failure
        return [task.result() for task in tasks]

    async def _race(
        self, candidates: Sequence[Candidate], context: EncryptionContext
    ) -> tuple[int, bytearray] | list[AureusError]:
        tasks = [
            asyncio.ensure_future(self._unwrap(provider, ref, encrypted, context))
            for provider, ref, encrypted in candidates
        ]
        winner: asyncio.Future[bytearray | AureusError] | None = None
        try:
            pending: set[asyncio.Future[bytearray | AureusError]] = set(tasks)
            while pending and winner is None:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                winner = next(
                    (t for t in tasks if t in done and isinstance(t.result(), bytearray)), None
                )
        finally:
            losers = [task for task in tasks if task is not winner]
            for task in losers:
                task.cancel()
            for result in await asyncio.gather(*losers, return_exceptions=True):
                if isinstance(result, bytearray):
                    result[:] = bytes(len(result))
        if winner is not None:
            key = winner.result()
            assert isinstance(key, bytearray)
            return tasks.index(winner), key  # type: ignore[arg-type]
        return [task.result() for task in tasks]  # type: ignore[misc]


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a dropped worker's outcome as seen (its error was the cancellation's doing)."""
    if not future.cancelled():
        future.exception()


class AsyncKeyStack:
    """The asyncio face of a :class:`~aureus_core.stack.KeyStack`.

    ``AsyncKeyStack(stack)`` shares ``stack`` (the caller keeps owning it);
    :meth:`from_config`, :meth:`from_dict` and :meth:`local` build a stack of
    their own, closed by :meth:`aclose` / ``async with``.  ``workers`` bounds
    the operations running at once (threads); more calls wait their turn.
    """

    def __init__(
        self, stack: KeyStack, *, workers: int = DEFAULT_WORKERS, own: bool = False
    ) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise AureusError(f"workers must be a positive integer, not {workers!r}")
        self._stack = stack
        self._own = own
        self._workers = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="aureus-aio")
        self._closed = False

    @classmethod
    def from_config(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        workers: int = DEFAULT_WORKERS,
        **kwargs: Any,
    ) -> AsyncKeyStack:
        """:meth:`KeyStack.from_config`, in an async stack that owns it."""
        return cls(KeyStack.from_config(path, **kwargs), workers=workers, own=True)

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, workers: int = DEFAULT_WORKERS, **kwargs: Any
    ) -> AsyncKeyStack:
        """:meth:`KeyStack.from_dict`, in an async stack that owns it."""
        return cls(KeyStack.from_dict(data, **kwargs), workers=workers, own=True)

    @classmethod
    def local(
        cls,
        keystore: str | os.PathLike[str] | None = None,
        *,
        workers: int = DEFAULT_WORKERS,
        **kwargs: Any,
    ) -> AsyncKeyStack:
        """:meth:`KeyStack.local`, in an async stack that owns it."""
        return cls(KeyStack.local(keystore, **kwargs), workers=workers, own=True)

    @property
    def stack(self) -> KeyStack:
        """The synchronous stack behind this one (same providers, cache and audit)."""
        return self._stack

    # -- running -------------------------------------------------------------

    def _submit(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> asyncio.Future[T]:
        if self._closed:
            raise AureusError("this AsyncKeyStack is closed; create a new one")
        loop = asyncio.get_running_loop()
        call = functools.partial(contextvars.copy_context().run, function, *args, **kwargs)
        return loop.run_in_executor(self._workers, call)

    async def _run(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one synchronous operation in a worker, its native provider calls on this loop.

        On cancellation the native calls in flight are cancelled and the worker is
        waited for (it unwinds at once, producing nothing); an operation that only
        made blocking provider calls is not waited for and its result is dropped.
        """
        if not self._native_possible():
            return await self._submit(function, *args, **kwargs)  # the thread-pool path only
        bridge = _LoopBridge(asyncio.get_running_loop(), self._stack.pool)

        def work() -> T:
            with using_fanout(bridge):
                return function(*args, **kwargs)

        future = self._submit(work)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            if bridge.cancel():
                await asyncio.wait([future])
            future.add_done_callback(_retrieve)
            raise

    def _native_possible(self) -> bool:
        """Whether an operation may meet a native provider: one is loaded, or none yet is.

        A stack whose loaded providers are all blocking skips the hand-off to
        the loop (a provider loaded during an operation is used natively from
        the next one on).
        """
        loaded = list(self._stack._providers.values())
        return not loaded or any(native_async(provider) for provider in loaded)

    async def _run_stoppable(self, function: Callable[[threading.Event], T]) -> T:
        """Run a streaming operation; on cancellation, stop it and wait until it has stopped."""
        stop = threading.Event()
        bridge = _LoopBridge(asyncio.get_running_loop(), self._stack.pool)

        def work(stop: threading.Event) -> T:
            with using_fanout(bridge):
                return function(stop)

        future = self._submit(work, stop)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            stop.set()
            bridge.cancel()
            await asyncio.wait([future])
            if not future.cancelled():
                future.exception()  # retrieved: the worker's StreamCancelled is expected
            raise

    # -- envelope encryption ---------------------------------------------------

    async def encrypt(
        self,
        data: bytes | bytearray | memoryview,
        *,
        context: Mapping[str, str] | None = None,
        keys: Sequence[str | KeyRef] | None = None,
        signed: bool = False,
        frame_length: int | None = None,
        required_context: Collection[str] = (),
    ) -> bytes:
        """:meth:`KeyStack.encrypt`; the wraps for several keys run concurrently."""
        return await self._run(
            self._stack.encrypt,
            bytes(data),
            context=context,
            keys=keys,
            signed=signed,
            frame_length=frame_length,
            required_context=required_context,
        )

    async def decrypt(
        self,
        message: bytes | bytearray | memoryview,
        *,
        context: Mapping[str, str] | None = None,
        keys: Sequence[str | KeyRef] | None = None,
    ) -> bytes:
        """:meth:`KeyStack.decrypt`: nothing is returned unless the whole message checks."""
        return await self._run(self._stack.decrypt, bytes(message), context=context, keys=keys)

    async def encrypt_batch(
        self,
        values: Sequence[bytes | bytearray | memoryview],
        *,
        context: Mapping[str, str] | None = None,
        keys: Sequence[str | KeyRef] | None = None,
        signed: bool = False,
    ) -> list[bytes]:
        """:meth:`KeyStack.encrypt_batch`: one data key, one audit event, results in order."""
        return await self._run(
            self._stack.encrypt_batch,
            [bytes(v) for v in values],
            context=context,
            keys=keys,
            signed=signed,
        )

    async def decrypt_batch(
        self,
        messages: Sequence[bytes | bytearray | memoryview],
        *,
        context: Mapping[str, str] | None = None,
        keys: Sequence[str | KeyRef] | None = None,
    ) -> list[bytes]:
        """:meth:`KeyStack.decrypt_batch`: each distinct data key unwrapped once, in order."""
        return await self._run(
            self._stack.decrypt_batch, [bytes(m) for m in messages], context=context, keys=keys
        )

    async def encrypt_stream(
        self,
        src: AsyncSource,
        dst: AsyncSink,
        *,
        context: Mapping[str, str] | None = None,
        keys: Sequence[str | KeyRef] | None = None,
        signed: bool = False,
        frame_length: int | None = None,
        required_context: Collection[str] = (),
    ) -> int:
        """:meth:`KeyStack.encrypt_stream` from an async source to an async sink.

        Returns the plaintext byte count.  If this raises or is cancelled,
        what reached ``dst`` has no final frame and must be discarded.
        """
        loop = asyncio.get_running_loop()

        def work(stop: threading.Event) -> int:
            reader = io.BufferedReader(_LoopReader(src, loop, stop))
            writer = _LoopWriter(dst, loop, stop)
            return self._stack.encrypt_stream(
                reader,
                writer,  # type: ignore[arg-type]
                context=context,
                keys=keys,
                signed=signed,
                frame_length=frame_length,
                required_context=required_context,
            )

        return await self._run_stoppable(work)

    async def decrypt_stream(
        self,
        src: AsyncSource,
        dst: AsyncSink,
        *,
        context: Mapping[str, str] | None = None,
        keys: Sequence[str | KeyRef] | None = None,
        hold_signed: bool = False,
        memory_bound: int = DEFAULT_MEMORY_BOUND,
    ) -> int:
        """:meth:`KeyStack.decrypt_stream` from an async source to an async sink.

        Each frame reaches ``dst`` only after its tag verifies; of a signed
        message, the last frame waits for the signature, the others do not.  If
        this raises or is cancelled, what was written is incomplete and must be
        discarded; :meth:`decrypt_file` does that for files.  With
        ``hold_signed``, nothing of a signed message reaches ``dst`` before its
        signature verifies (``memory_bound`` as in :meth:`KeyStack.decrypt_stream`):
        use it when ``dst`` cannot be discarded, such as a network peer.
        """
        loop = asyncio.get_running_loop()

        def work(stop: threading.Event) -> int:
            reader = io.BufferedReader(_LoopReader(src, loop, stop))
            writer = _LoopWriter(dst, loop, stop)
            return self._stack.decrypt_stream(
                reader,
                writer,  # type: ignore[arg-type]
                context=context,
                keys=keys,
                hold_signed=hold_signed,
                memory_bound=memory_bound,
            )

        return await self._run_stoppable(work)

    async def encrypt_file(
        self,
        src: str | os.PathLike[str],
        dst: str | os.PathLike[str],
        **options: Any,
    ) -> int:
        """Encrypt the file ``src`` into ``dst``, which appears only when complete.

        ``options`` are :meth:`KeyStack.encrypt_stream`'s.  On any failure or
        cancellation ``dst`` is not created (nor left half-written).
        """
        return await self._run_stoppable(
            functools.partial(self._file, self._stack.encrypt_stream, src, dst, options)
        )

    async def decrypt_file(
        self,
        src: str | os.PathLike[str],
        dst: str | os.PathLike[str],
        **options: Any,
    ) -> int:
        """Decrypt the file ``src`` into ``dst``, which appears only once all of it authenticated.

        ``options`` are :meth:`KeyStack.decrypt_stream`'s (``context``, ``keys``).
        On any failure or cancellation ``dst`` is not created.
        """
        return await self._run_stoppable(
            functools.partial(self._file, self._stack.decrypt_stream, src, dst, options)
        )

    @staticmethod
    def _file(
        operation: Callable[..., int],
        src: str | os.PathLike[str],
        dst: str | os.PathLike[str],
        options: Mapping[str, Any],
        stop: threading.Event,
    ) -> int:
        from .cli.atomic import atomic_output

        with open(src, "rb") as source, atomic_output(dst) as target:
            return operation(source, _StopOnWrite(target, stop), **options)

    # -- signing ---------------------------------------------------------------

    async def sign(self, message: bytes, *, key: str | KeyRef | None = None) -> Signature:
        """:meth:`KeyStack.sign`."""
        return await self._run(self._stack.sign, bytes(message), key=key)

    async def verify(
        self,
        message: bytes,
        signature: Signature | bytes,
        *,
        key: str | KeyRef | Sequence[str | KeyRef] | None = None,
    ) -> bool:
        """:meth:`KeyStack.verify`: only against trusted keys, never the record's own."""
        return await self._run(self._stack.verify, bytes(message), signature, key=key)

    async def public_key(self, key: str | KeyRef) -> bytes:
        """:meth:`KeyStack.public_key`."""
        return await self._run(self._stack.public_key, key)

    # -- key management ----------------------------------------------------------

    async def create_key(
        self,
        name: str | KeyRef,
        key_type: str | KeyType | KeySpec = KeyType.AES_256,
        *,
        description: str = "",
        labels: Mapping[str, str] | None = None,
        provider: str | None = None,
    ) -> KeyMetadata:
        """:meth:`KeyStack.create_key`."""
        return await self._run(
            self._stack.create_key,
            name,
            key_type,
            description=description,
            labels=labels,
            provider=provider,
        )

    async def describe_key(self, key: str | KeyRef) -> KeyMetadata:
        """:meth:`KeyStack.describe_key`."""
        return await self._run(self._stack.describe_key, key)

    async def list_keys(self, provider: str | None = None) -> list[KeyMetadata]:
        """:meth:`KeyStack.list_keys`."""
        return await self._run(self._stack.list_keys, provider)

    async def rotate_key(self, key: str | KeyRef) -> KeyMetadata:
        """:meth:`KeyStack.rotate_key`."""
        return await self._run(self._stack.rotate_key, key)

    async def replicate_key(self, key: str | KeyRef, region: str) -> KeyMetadata:
        """:meth:`KeyStack.replicate_key`."""
        return await self._run(self._stack.replicate_key, key, region)

    async def import_key(
        self, name: str | KeyRef, key_type: str | KeyType, **options: Any
    ) -> KeyMetadata:
        """:meth:`KeyStack.import_key` (same keyword options)."""
        return await self._run(self._stack.import_key, name, key_type, **options)

    async def import_parameters(
        self, name: str | KeyRef, key_type: str | KeyType, **options: Any
    ) -> ImportParameters:
        """:meth:`KeyStack.import_parameters` (same keyword options)."""
        return await self._run(self._stack.import_parameters, name, key_type, **options)

    async def key_status(
        self, policy: RotationPolicy | None = None, now: datetime | None = None
    ) -> list[tuple[KeyMetadata, RotationStatus]]:
        """:meth:`KeyStack.key_status`."""
        return await self._run(self._stack.key_status, policy, now)

    async def enforce_rotation(
        self,
        policy: RotationPolicy | None = None,
        *,
        dry_run: bool = False,
        now: datetime | None = None,
    ) -> list[EnforcementAction]:
        """:meth:`KeyStack.enforce_rotation`."""
        return await self._run(self._stack.enforce_rotation, policy, dry_run=dry_run, now=now)

    async def set_version_state(self, key: str | KeyRef, state: KeyState | str) -> KeyMetadata:
        """:meth:`KeyStack.set_version_state`."""
        return await self._run(self._stack.set_version_state, key, state)

    async def set_min_decryption_version(self, key: str | KeyRef, version: str) -> KeyMetadata:
        """:meth:`KeyStack.set_min_decryption_version`."""
        return await self._run(self._stack.set_min_decryption_version, key, version)

    async def destroy_version(self, key: str | KeyRef, *, confirm: bool = False) -> KeyMetadata:
        """:meth:`KeyStack.destroy_version`."""
        return await self._run(self._stack.destroy_version, key, confirm=confirm)

    async def rewrap(
        self,
        message: bytes | bytearray | memoryview,
        *,
        to_keys: Sequence[str | KeyRef],
        context: Mapping[str, str] | None = None,
        keys: Sequence[str | KeyRef] | None = None,
    ) -> bytes:
        """:meth:`KeyStack.rewrap`."""
        return await self._run(
            self._stack.rewrap, bytes(message), to_keys=to_keys, context=context, keys=keys
        )

    # -- lifetime --------------------------------------------------------------------

    async def aclose(self) -> None:
        """Wait for running operations, then release native providers' loop resources.

        What native providers opened on this event loop (channels, sessions) is
        closed here; the stack itself only if this object built it.
        """
        if self._closed:
            return
        self._closed = True
        await asyncio.to_thread(self._workers.shutdown, wait=True)
        for provider in list(self._stack._providers.values()):
            if native_async(provider):
                await provider.aclose()  # type: ignore[attr-defined]
        if self._own:
            await asyncio.to_thread(self._stack.close)

    async def __aenter__(self) -> AsyncKeyStack:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<AsyncKeyStack over {self._stack!r}>"


__all__ = ["DEFAULT_WORKERS", "AsyncKeyStack", "AsyncReader", "AsyncSink", "AsyncSource"]
