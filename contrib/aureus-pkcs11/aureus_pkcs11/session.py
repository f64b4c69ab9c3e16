"""Sessions with a token: one library per module, one login per token, a bounded pool.

A PKCS#11 session must not be used by two threads at once, and a login
belongs to the whole application, not to one session.  So:

- each module (``.so`` path) is loaded and ``C_Initialize``-d once per process;
- each token is logged in to once per process, by a dedicated login session
  that lives as long as some provider still uses the token (closing it logs
  every session out, so it is reference-counted);
- each provider borrows up to ``size`` unauthenticated sessions from its own
  pool, one thread per session; they act as the logged-in user.

python-pkcs11 initialises a module with ``C_Initialize(NULL)``, which in
PKCS#11 tells the module that the application will not call it from several
threads at once (no ``CKF_OS_LOCKING_OK``); SoftHSM2 aborts the process when it
is.  So every call into one module runs under that module's lock; the pool
still keeps one session per operation, so no operation state is ever shared.

When the token or a session goes away (``CKR_TOKEN_NOT_PRESENT``,
``CKR_SESSION_HANDLE_INVALID``, ``CKR_DEVICE_REMOVED`` ...) the pool drops its
sessions, finds the token again (re-initialising the module if it has to, which
is how a re-inserted token or a restored SoftHSM token directory becomes
visible), logs in again and retries the operation, up to ``retries`` times;
then it raises :class:`~aureus_core.errors.ProviderUnavailable`.
"""

from __future__ import annotations

import contextlib
import hmac
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import attrs
import pkcs11
from pkcs11 import Mechanism
from pkcs11 import exceptions as p11

from aureus_core.errors import (
    AureusError,
    ConfigError,
    CredentialError,
    ProviderUnavailable,
    Throttled,
)
from aureus_core.sensitive import Secret

from .errors import SCHEME, ckr_name, is_reconnectable, translate

if TYPE_CHECKING:
    from pkcs11._pkcs11 import lib as Library

T = TypeVar("T")

_LIBRARIES: dict[str, Library] = {}
_MODULE_LOCKS: dict[str, threading.RLock] = {}
_LOGINS: dict[tuple[str, bytes], _Login] = {}
_REGISTRY_LOCK = threading.RLock()


@attrs.frozen(kw_only=True)
class TokenSelector:
    """Which token to use: a module path plus a label, a serial number or a slot ID."""

    module: str
    label: str | None = None
    serial: str | None = None
    slot: int | None = None

    def describe(self) -> str:
        """How the selector reads in messages."""
        if self.label is not None:
            return f"label {self.label!r}"
        if self.serial is not None:
            return f"serial {self.serial!r}"
        if self.slot is not None:
            return f"slot {self.slot}"
        return "the only token"


@attrs.define(eq=False)
class _Login:
    """One process-wide login to a token, shared by every pool that uses it."""

    session: pkcs11.Session | None
    pin: Secret[str] | None
    users: int = 1
    alive: bool = True


def module_lock(module: str) -> threading.RLock:
    """The lock that serialises every call into ``module`` (see the module docstring)."""
    with _REGISTRY_LOCK:
        return _MODULE_LOCKS.setdefault(module, threading.RLock())


def load_library(module: str) -> Library:
    """The loaded, initialised module at ``module`` (loaded once per process)."""
    with _REGISTRY_LOCK:
        library = _LIBRARIES.get(module)
        if library is None:
            try:
                library = pkcs11.lib(module)
            except p11.PKCS11Error as error:
                raise ProviderUnavailable(
                    f"cannot load the PKCS#11 module {module!r} ({ckr_name(error)}): check "
                    "the 'module' option or AUREUS_PKCS11_MODULE names the vendor's library",
                    provider=SCHEME,
                    code=ckr_name(error),
                ) from None
            _LIBRARIES[module] = library
        return library


def _reinitialize(module: str) -> None:
    """``C_Finalize`` + ``C_Initialize``: the module rescans its slots; every session ends."""
    with _REGISTRY_LOCK:
        library = _LIBRARIES.get(module)
        if library is None:
            return
        for (path, serial), login in list(_LOGINS.items()):
            if path == module:
                login.alive = False
                del _LOGINS[(path, serial)]
        try:
            library.reinitialize()
        except p11.PKCS11Error:
            # A module that cannot finalise cleanly is loaded afresh next time.
            _LIBRARIES.pop(module, None)


class SessionPool:
    """A bounded pool of sessions with one token, logged in once.

    :meth:`run` lends a session to a function, reconnecting and retrying when
    the token or session went away.  Other PKCS#11 errors propagate unchanged
    for the caller to translate (see :func:`aureus_pkcs11.errors.translate`).
    """

    def __init__(
        self,
        selector: TokenSelector,
        pin: Secret[str] | None,
        *,
        size: int = 4,
        retries: int = 3,
        backoff: float = 0.05,
        acquire_timeout: float = 30.0,
    ) -> None:
        if size < 1:
            raise ConfigError("the PKCS#11 session pool needs at least one session")
        self.selector = selector
        self._pin = pin
        self._size = size
        self._retries = retries
        self._backoff = backoff
        self._acquire_timeout = acquire_timeout
        self._lock = threading.Lock()
        self._module_lock = module_lock(selector.module)
        self._slots = threading.BoundedSemaphore(size)
        self._idle: list[pkcs11.Session] = []
        self._generation = 0
        self._closed = False
        self._login: _Login | None = None
        self.token: pkcs11.Token
        self.mechanisms: frozenset[Mechanism] = frozenset()
        self.reconnects = 0
        """How many times the pool found the token again after losing it."""
        with self._module_lock:
            self._connect(reinitialize=False)

    # -- connecting ------------------------------------------------------------

    @property
    def has_pin(self) -> bool:
        """Whether the pool logs in (without a PIN its sessions see only public objects)."""
        return self._pin is not None

    @property
    def token_label(self) -> str:
        """The label of the token in use."""
        return str(self.token.label)

    def _find_token(self) -> pkcs11.Token:
        library = load_library(self.selector.module)
        try:
            if self.selector.slot is not None:
                for slot in library.get_slots(token_present=True):
                    if slot.slot_id == self.selector.slot:
                        return slot.get_token()
                raise p11.NoSuchToken()
            if self.selector.serial is not None:
                return library.get_token(token_serial=self.selector.serial.encode())
            if self.selector.label is not None:
                return library.get_token(token_label=self.selector.label)
            return library.get_token()
        except p11.MultipleTokensReturned:
            raise ConfigError(
                f"more than one token matches {self.selector.describe()} in "
                f"{self.selector.module}: name one with the 'token', 'serial' or 'slot' option"
            ) from None

    def _connect(self, *, reinitialize: bool) -> None:
        if reinitialize:
            _reinitialize(self.selector.module)
        try:
            token = self._find_token()
        except (p11.NoSuchToken, p11.TokenNotPresent, p11.SlotIDInvalid):
            raise ProviderUnavailable(
                f"no PKCS#11 token with {self.selector.describe()} in {self.selector.module} "
                "(CKR_TOKEN_NOT_PRESENT): "
                "list the tokens with 'pkcs11-tool --module MODULE -L' (or "
                "'softhsm2-util --show-slots') and check the token is inserted",
                provider=SCHEME,
                code="CKR_TOKEN_NOT_PRESENT",
            ) from None
        except p11.PKCS11Error as error:
            raise translate(error, operation="find token", token=self.selector.describe()) from None
        self.token = token
        self._login = self._log_in(token)
        try:
            self.mechanisms = frozenset(
                m for m in token.slot.get_mechanisms() if isinstance(m, Mechanism)
            )
        except p11.PKCS11Error as error:
            raise translate(error, operation="list mechanisms", token=token.label) from None

    def _log_in(self, token: pkcs11.Token) -> _Login:
        key = (self.selector.module, bytes(token.serial))
        with _REGISTRY_LOCK:
            login = _LOGINS.get(key)
            if login is not None and login.alive:
                if not _same_pin(login.pin, self._pin):
                    raise CredentialError(
                        f"token {token.label!r} is already logged in to by this process with "
                        "another PIN: use one PIN per token in a process",
                        code="CKR_USER_ALREADY_LOGGED_IN",
                    )
                login.users += 1
                return login
            pin = self._pin.reveal() if self._pin is not None else None
            try:
                session = token.open(rw=True, user_pin=pin) if pin is not None else None
            except p11.UserAlreadyLoggedIn:
                raise CredentialError(
                    f"token {token.label!r} is already logged in to by something else in this "
                    "process: Aureus cannot check its PIN; let Aureus do the login",
                    code="CKR_USER_ALREADY_LOGGED_IN",
                ) from None
            except p11.PKCS11Error as error:
                raise translate(error, operation="login", token=token.label) from None
            login = _Login(session=session, pin=self._pin)
            _LOGINS[key] = login
            return login

    def _release_login(self, *, forget: bool = False) -> None:
        """Give up this pool's share of the login; ``forget``: the login is known to be lost."""
        login, self._login = self._login, None
        if login is None:
            return
        with _REGISTRY_LOCK:
            login.users -= 1
            if login.users > 0 and not forget:
                return
            for key, value in list(_LOGINS.items()):
                if value is login:
                    del _LOGINS[key]
            if login.alive:
                login.alive = False  # whoever flips it closes it, exactly once
                if login.session is not None:
                    # The token may be gone already; then nothing is left to log out.
                    with contextlib.suppress(p11.PKCS11Error):
                        login.session.close()

    def _reconnect(self, generation: int) -> None:
        with self._lock:
            if generation != self._generation:
                return  # another thread reconnected already
            self._generation += 1
            idle, self._idle = self._idle, []
        for session in idle:
            _close_quietly(session)
        self._release_login(forget=True)
        try:
            self._connect(reinitialize=False)
        except ProviderUnavailable:
            # The module may not have noticed a re-inserted token (SoftHSM2 reads its
            # token directory only when initialised): initialise it again and look again.
            self._release_login(forget=True)
            self._connect(reinitialize=True)
        self.reconnects += 1

    # -- lending sessions ------------------------------------------------------

    def _acquire(self) -> tuple[pkcs11.Session, int]:
        if self._closed:
            raise ProviderUnavailable(
                "this PKCS#11 provider is closed: build a new one", provider=SCHEME
            )
        if not self._slots.acquire(timeout=self._acquire_timeout):
            raise Throttled(
                f"all {self._size} PKCS#11 sessions with token {self.token_label!r} stayed busy "
                f"for {self._acquire_timeout:g} s: raise the 'sessions' option or slow down",
                provider=SCHEME,
            )
        with self._lock:
            generation = self._generation
            session = self._idle.pop() if self._idle else None
        if session is None:
            try:
                session = self.token.open(rw=True)
            except BaseException:
                self._slots.release()
                raise
        return session, generation

    def _give_back(self, session: pkcs11.Session, generation: int, *, broken: bool) -> None:
        with self._lock:
            keep = not broken and not self._closed and generation == self._generation
            if keep:
                self._idle.append(session)
        if not keep:
            _close_quietly(session)
        self._slots.release()

    def run(self, operation: str, work: Callable[[pkcs11.Session], T]) -> T:
        """Run ``work`` with a session of its own; reconnect and retry if the token went away."""
        attempt = 0
        while True:
            lost: p11.PKCS11Error | None = None
            generation = self._generation
            with self._module_lock:
                try:
                    session, generation = self._acquire()
                except p11.PKCS11Error as error:
                    if not is_reconnectable(error):
                        raise translate(
                            error, operation=operation, token=self.token_label
                        ) from None
                    lost = error
                else:
                    try:
                        result = work(session)
                    except p11.PKCS11Error as error:
                        broken = is_reconnectable(error)
                        self._give_back(session, generation, broken=broken)
                        if not broken:
                            raise
                        lost = error
                    except BaseException:
                        self._give_back(session, generation, broken=False)
                        raise
                    else:
                        self._give_back(session, generation, broken=False)
                        return result
            assert lost is not None
            attempt = self._after_loss(lost, operation, attempt, generation)

    def _after_loss(
        self, error: p11.PKCS11Error, operation: str, attempt: int, generation: int
    ) -> int:
        attempt += 1
        if attempt > self._retries:
            raise ProviderUnavailable(
                f"PKCS#11 {operation} on token {self.selector.describe()} failed with "
                f"{ckr_name(error)} after {self._retries} reconnect attempt(s): check that the "
                "token is present and its module can reach it",
                provider=SCHEME,
                code=ckr_name(error),
            ) from None
        time.sleep(self._backoff * (2 ** (attempt - 1)))
        try:
            with self._module_lock:
                self._reconnect(generation)
        except ProviderUnavailable:
            if attempt >= self._retries:
                raise
        except AureusError:
            raise
        return attempt

    def close(self) -> None:
        """Close every idle session and give up this pool's share of the login."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            idle, self._idle = self._idle, []
        with self._module_lock:
            for session in idle:
                _close_quietly(session)
            self._release_login()


def _same_pin(first: Secret[str] | None, second: Secret[str] | None) -> bool:
    if first is None or second is None:
        return first is second
    return hmac.compare_digest(first.reveal().encode(), second.reveal().encode())


def _close_quietly(session: pkcs11.Session) -> None:
    # A session on a vanished token cannot be closed; it is gone anyway.
    with contextlib.suppress(p11.PKCS11Error):
        session.close()
