"""The secret-leak scan: canary secrets pushed through Aureus, then looked for everywhere.

Turned on by ``aureus_leak_scan = true`` in the pytest configuration (see
:mod:`aureus_core.testing.pytest_plugin`).  At session start it makes fresh
random canaries (a wrapping key, a data key, an Ed25519 private key as raw
bytes, DER and PEM, a plaintext and a keystore passphrase) and runs them
through a real local :class:`~aureus_core.KeyStack` in a temporary
directory: imports, encryption, signing, wrapping, and operations made to
fail.  From then until the session ends it searches, for every canary in
every form :func:`~aureus_core.testing.leaks.secret_forms` knows (plain,
bytes repr, hex, base64):

- log records reaching the root logger (message, arguments, exception text,
  ``extra`` fields);
- every event any audit trail emits (its repr);
- every finished span, when an OpenTelemetry SDK is installed (a tracer
  provider is installed for the session if the application set none);
- test reports: failure text and captured output, and warning messages;
- the reprs of the values, and the text of the errors, the canaries passed
  through at session start (and the values again at the end).

Any hit fails the run (exit status 1) with a summary naming the canary, the
form and where it was seen, never the value.
"""

from __future__ import annotations

import logging
import os
import secrets
import tempfile
import threading
import traceback
import warnings
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import attrs
import pytest

from aureus_core.audit import AuditEvent
from aureus_core.audit.observers import add_observer, remove_observer
from aureus_core.context import EncryptionContext
from aureus_core.interfaces import KeyMaterial
from aureus_core.sensitive import Secret
from aureus_core.wrapped_import import wrap_for_import

from .leaks import secret_forms

MAX_RECORDED_LEAKS = 50
"""Leaks listed in the summary; more are counted, not described."""

AUDIT_LOGGER = "aureus_leak_scan.audit"
"""Where the canary stack's logging audit sink writes: only the scan's handler listens."""
WRAPPING_KEY = "local://leak-canary-wrap"
SIGNING_KEY = "local://leak-canary-sign"
CONTEXT = {"purpose": "aureus-leak-scan"}
WORKER_OUTPUT = "aureus_leak_scan"
"""The key of a pytest-xdist worker's ``workeroutput`` that carries its scan result."""


@attrs.frozen(kw_only=True, repr=False)
class Canaries:
    """Random secret values for one session; their repr shows none of them."""

    wrapping_key: bytes
    """Imported as the local AES-256 key that wraps the canary messages' data keys."""
    data_key: bytes
    """Wrapped and unwrapped directly by the local provider."""
    signing_key: bytes
    """An Ed25519 private key, raw."""
    signing_key_der: bytes
    """The same key as PKCS#8 DER (its base64 is the PEM body)."""
    signing_key_pem: str
    """The same key as PEM, imported into the keystore."""
    plaintext: bytes
    """Encrypted, decrypted and signed."""
    passphrase: str
    """The canary keystore's passphrase (given through static credentials)."""

    @classmethod
    def generate(cls) -> Canaries:
        """Fresh canaries."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        key = Ed25519PrivateKey.generate()
        none = serialization.NoEncryption()
        pkcs8 = serialization.PrivateFormat.PKCS8
        return cls(
            wrapping_key=os.urandom(32),
            data_key=os.urandom(32),
            signing_key=key.private_bytes(
                serialization.Encoding.Raw, serialization.PrivateFormat.Raw, none
            ),
            signing_key_der=key.private_bytes(serialization.Encoding.DER, pkcs8, none),
            signing_key_pem=key.private_bytes(serialization.Encoding.PEM, pkcs8, none).decode(),
            plaintext=f"aureus leak-scan canary plaintext {secrets.token_hex(16)}".encode(),
            passphrase=f"aureus-leak-scan-canary-passphrase-{secrets.token_hex(16)}",
        )

    def named(self) -> dict[str, bytes | str]:
        """Every canary by a name that is safe to print."""
        return {
            "wrapping key": self.wrapping_key,
            "data key": self.data_key,
            # The PEM holds the DER's base64, and the DER the raw key: longest first.
            "private key (PEM)": self.signing_key_pem,
            "private key (DER)": self.signing_key_der,
            "private key": self.signing_key,
            "plaintext": self.plaintext,
            "keystore passphrase": self.passphrase,
        }

    def __repr__(self) -> str:
        return "Canaries(<hidden>)"


@attrs.frozen(kw_only=True)
class Leak:
    """One place a canary was seen."""

    canary: str
    form: str
    source: str
    """What was searched: ``log record``, ``audit event``, ``span`` ..."""
    detail: str
    test: str | None
    """The test running at the time (``None``: outside any test)."""

    def describe(self) -> str:
        """A line for the summary, without the secret."""
        during = f"during {self.test}" if self.test else "outside any test"
        return (
            f"the canary {self.canary} (as {self.form}) in a {self.source} {self.detail}, {during}"
        )


def _forms(secret: bytes | str) -> dict[str, str]:
    """:func:`secret_forms`, plus the escaped form of text a repr or JSON shows."""
    forms = secret_forms(secret)
    if isinstance(secret, str):
        escaped = secret.encode("unicode_escape").decode("ascii")
        if escaped != secret:
            forms["escaped text"] = escaped
    return forms


class LeakScanner:
    """Searches text for the canaries and remembers where it found them."""

    def __init__(self, canaries: Canaries) -> None:
        self._forms = [
            (name, form, text)
            for name, value in canaries.named().items()
            for form, text in _forms(value).items()
        ]
        self._lock = threading.Lock()
        self._seen: set[tuple[str, str, str, str | None]] = set()
        self.leaks: list[Leak] = []
        self.unrecorded = 0
        self.searched: Counter[str] = Counter()
        self.test: str | None = None
        """The test now running, named in what is found."""

    def scan(self, text: str, source: str, detail: str = "") -> bool:
        """Search ``text``; record and return whether a canary was in it."""
        self.searched[source] += 1
        for canary, form, value in self._forms:
            if value in text:
                leak = Leak(canary=canary, form=form, source=source, detail=detail, test=self.test)
                seen = (canary, form, source, self.test)
                with self._lock:
                    if seen in self._seen:
                        pass  # the same leak again, e.g. in each later report of one test
                    elif len(self.leaks) < MAX_RECORDED_LEAKS:
                        self._seen.add(seen)
                        self.leaks.append(leak)
                    else:
                        self.unrecorded += 1
                return True
        return False

    def safe(self, text: str) -> str:
        """``text``, or a placeholder if it holds a canary (for messages this scan prints)."""
        for _, _, value in self._forms:
            if value in text:
                return "<message withheld: it contains a canary>"
        return text


_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
}


class _LogScan(logging.Handler):
    """Searches every log record that reaches the logger it is attached to."""

    def __init__(self, scanner: LeakScanner) -> None:
        super().__init__(logging.NOTSET)
        self._scanner = scanner
        self._formatter = logging.Formatter()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            parts = [self._formatter.format(record), repr(record.args)]
            parts.extend(repr(v) for k, v in vars(record).items() if k not in _RECORD_FIELDS)
            where = f"from logger {record.name!r} ({record.levelname})"
            self._scanner.scan("\n".join(parts), "log record", where)
        except Exception:
            self.handleError(record)


def _scan_spans(scanner: LeakScanner) -> tuple[str, Callable[[], None]]:
    """Search finished spans if an OpenTelemetry SDK is there; return a status and a stop."""
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
    except ImportError:
        return "spans not searched: opentelemetry-sdk is not installed", lambda: None

    class SpanScan(SpanProcessor):
        active = True

        def on_end(self, span: ReadableSpan) -> None:
            if not self.active:
                return
            parts = [span.name, repr(dict(span.attributes or {})), span.status.description or ""]
            for event in span.events:
                parts.extend((event.name, repr(dict(event.attributes or {}))))
            scanner.scan("\n".join(parts), "span", repr(span.name))

    provider = trace.get_tracer_provider()
    installed = ""
    if isinstance(provider, trace.ProxyTracerProvider):  # none set: record spans for the scan
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
        installed = " (the scan installed the SDK tracer provider)"
    if not isinstance(provider, TracerProvider):
        kind = type(provider).__name__
        return f"spans not searched: the tracer provider is a {kind}", lambda: None
    processor = SpanScan()
    provider.add_span_processor(processor)

    def stop() -> None:
        processor.active = False

    return f"spans searched{installed}", stop


class _CanaryFlow:
    """A local key stack in ``directory`` that the canaries go through."""

    def __init__(self, canaries: Canaries, directory: Path, scanner: LeakScanner) -> None:
        from aureus_core import KeyStack

        self._scanner = scanner
        self.stack = KeyStack.from_dict(
            {
                "stack": {"wrapping_keys": [WRAPPING_KEY], "signing_key": SIGNING_KEY},
                "providers": {
                    "local": {
                        "keystore": str(directory),
                        "scrypt_log_n": 10,
                        "insecure_kdf_for_tests": True,
                        "credentials": "leak-canary",
                    }
                },
                "credentials": {
                    "leak-canary": {
                        "source": "static",
                        "values": {"passphrase": canaries.passphrase},
                    }
                },
                "cache": {"backend": "memory"},
                "audit": {
                    "sinks": [{"type": "memory"}, {"type": "logging", "logger": AUDIT_LOGGER}]
                },
            }
        )
        self.values: list[object] = [self.stack]
        self._run(canaries)

    def _run(self, canaries: Canaries) -> None:
        stack = self.stack
        plaintext = canaries.plaintext
        pem = canaries.signing_key_pem.encode()
        self.values += [
            stack.import_key(WRAPPING_KEY, "aes-256", raw=canaries.wrapping_key),
            stack.import_key(SIGNING_KEY, "ed25519", pem=pem),
        ]
        self._wrapped_import(pem)
        message = stack.encrypt(plaintext, context=CONTEXT)
        for _ in range(2):  # the second decrypt takes the data key from the cache
            if stack.decrypt(message, context=CONTEXT) != plaintext:
                raise AssertionError("the canary plaintext did not survive a round trip")
        signature = stack.sign(plaintext)
        if not stack.verify(plaintext, signature) or stack.verify(plaintext + b".", signature):
            raise AssertionError("the canary signature did not verify as it should")
        provider = stack.provider("local")
        context = EncryptionContext(CONTEXT)
        wrapped = provider.wrap(stack.describe_key(WRAPPING_KEY).ref, canaries.data_key, context)
        if provider.unwrap(wrapped.key, wrapped.encrypted, context) != canaries.data_key:
            raise AssertionError("the canary data key did not survive wrap and unwrap")
        source = stack.host.credential_sources.get("static").factory(
            {"values": {"passphrase": canaries.passphrase}}
        )
        self.values += [
            signature,
            provider,
            wrapped,
            stack.cache,
            *stack.audit.sinks,
            source,
            source.get_credentials(),
            KeyMaterial(format="raw", data=Secret(canaries.wrapping_key)),
            KeyMaterial(format="pem", data=Secret(pem)),
            Secret(plaintext),
        ]
        tampered = bytearray(message)
        tampered[-40] ^= 1
        other = EncryptionContext({"purpose": "something else"})
        self._fail("decrypt, wrong context", stack.decrypt, message, context={"purpose": "other"})
        self._fail("decrypt, tampered", stack.decrypt, bytes(tampered))
        self._fail("unwrap, wrong context", provider.unwrap, wrapped.key, wrapped.encrypted, other)
        self._fail(
            "import again", stack.import_key, WRAPPING_KEY, "aes-256", raw=canaries.wrapping_key
        )
        self._fail("PEM as an AES key", stack.import_key, "leak-canary-x", "aes-256", pem=pem)
        self._fail(
            "raw key as Ed25519", stack.import_key, "leak-canary-y", "ed25519", raw=plaintext
        )

    def _wrapped_import(self, pem: bytes) -> None:
        """The canary signing key moved in by wrapped import, and two refusals on the way."""
        stack, name = self.stack, "leak-canary-moved"
        parameters = stack.import_parameters(name, "ed25519")
        material = KeyMaterial(format="pem", data=Secret(pem))

        def wrap(fingerprint: str) -> bytes:
            return wrap_for_import(
                "ed25519",
                material,
                wrapping_public_key=parameters.wrapping_public_key,
                algorithm=parameters.wrapping_algorithm,
                expected_fingerprint=fingerprint,
            )

        self._fail("wrap for a substituted wrapping key", wrap, "sha256:" + "0" * 64)
        blob = wrap(parameters.fingerprint)
        tampered = blob[:-1] + bytes([blob[-1] ^ 1])
        token = parameters.import_token
        self._fail(
            "wrapped import, tampered",
            stack.import_key,
            name,
            "ed25519",
            wrapped=tampered,
            import_token=token,
        )
        self.values += [
            parameters,
            stack.import_key(name, "ed25519", wrapped=blob, import_token=token),
            KeyMaterial(format="wrapped", data=Secret(blob), import_token=token),
        ]

    def _fail(self, what: str, call: Callable[..., object], *args: Any, **kwargs: Any) -> None:
        """Run an operation meant to fail and search its error, with chained causes."""
        try:
            call(*args, **kwargs)
        except Exception as error:
            text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
            self._scanner.scan(f"{text}\n{error!r}", "error", f"({what})")

    def scan_values(self, when: str) -> None:
        """Search the reprs of the values the canaries passed through."""
        for value in self.values:
            self._scanner.scan(repr(value), "repr", f"of a {type(value).__name__} ({when})")


class LeakScan:
    """The pytest plugin object: registered for a session when the scan is on."""

    def __init__(self) -> None:
        self.canaries = Canaries.generate()
        self.scanner = LeakScanner(self.canaries)
        self._handler = _LogScan(self.scanner)
        self._spans = "spans not searched"
        self._stop_spans: Callable[[], None] = lambda: None
        self._directory: tempfile.TemporaryDirectory[str] | None = None
        self._flow: _CanaryFlow | None = None
        self._problems: list[str] = []
        self._worker_leaks: list[str] = []
        """Leaks pytest-xdist workers found, already described (controller only)."""
        self._workers = 0
        self._finished = False

    def _observe(self, event: AuditEvent) -> None:
        self.scanner.scan(repr(event), "audit event", f"({event.operation})")

    # -- session ---------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        """Start listening, then push the canaries through a local stack."""
        logging.getLogger().addHandler(self._handler)
        audit_log = logging.getLogger(AUDIT_LOGGER)
        audit_log.addHandler(self._handler)
        audit_log.setLevel(logging.DEBUG)
        audit_log.propagate = False  # searched here; kept out of the session's captured logs
        add_observer(self._observe)
        self._spans, self._stop_spans = _scan_spans(self.scanner)
        self._directory = tempfile.TemporaryDirectory(prefix="aureus-leak-scan-")
        try:
            self._flow = _CanaryFlow(self.canaries, Path(self._directory.name), self.scanner)
            self._flow.scan_values("after the canaries went through")
        except Exception as error:
            message = self.scanner.safe(f"{type(error).__name__}: {error}")
            self._problems.append(f"the canaries could not be planted: {message}")

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Stop listening; fail the run if a canary was seen anywhere.

        Under pytest-xdist each worker plants its own canaries and searches
        its own process; a worker hands what it found (descriptions and
        counts, never a value) to the controller, which fails the run.
        """
        self._finish()
        workeroutput = getattr(session.config, "workeroutput", None)
        if workeroutput is not None:
            workeroutput[WORKER_OUTPUT] = {
                "leaks": [leak.describe() for leak in self.scanner.leaks],
                "unrecorded": self.scanner.unrecorded,
                "problems": list(self._problems),
                "searched": dict(self.scanner.searched),
                "spans": self._spans,
            }
        failed = bool(self.scanner.leaks or self._problems or self._worker_leaks)
        passing = (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED)
        if failed and session.exitstatus in passing:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        """pytest-xdist controller: take in what a worker's scan found."""
        found = getattr(node, "workeroutput", {}).get(WORKER_OUTPUT)
        worker = getattr(node, "gateway", None)
        name = getattr(worker, "id", "a worker")
        if found is None:
            if error is None:
                self._problems.append(f"{name} sent no leak-scan result")
            return  # a crashed worker already fails the run
        self._workers += 1
        self._worker_leaks += [f"{name}: {line}" for line in found["leaks"]]
        self.scanner.unrecorded += int(found["unrecorded"])
        self._problems += [f"{name}: {line}" for line in found["problems"]]
        self.scanner.searched.update(found["searched"])
        self._spans = str(found["spans"])

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        self.scanner.test = None
        try:
            if self._flow is not None:
                self._flow.scan_values("at the end of the session")
                self._flow.stack.close()
        finally:
            logging.getLogger().removeHandler(self._handler)
            logging.getLogger(AUDIT_LOGGER).removeHandler(self._handler)
            remove_observer(self._observe)
            self._stop_spans()
            if self._directory is not None:
                self._directory.cleanup()

    def pytest_unconfigure(self) -> None:
        """Release everything even if the session never finished."""
        self._finish()

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        """Report what was searched and what was found."""
        scanner = self.scanner
        counts = ", ".join(f"{n} {source}s" for source, n in sorted(scanner.searched.items()))
        if self._workers:
            counts += f" (in {self._workers} xdist workers and the controller)"
        if not scanner.leaks and not self._problems and not self._worker_leaks:
            terminalreporter.write_line(
                f"aureus leak scan: no canary secret found; searched {counts}; {self._spans}"
            )
            return
        terminalreporter.write_sep("=", "aureus leak scan: FAILED", red=True, bold=True)
        for problem in self._problems:
            terminalreporter.write_line(f"- {problem}", red=True)
        for leak in scanner.leaks:
            terminalreporter.write_line(f"- {leak.describe()}", red=True)
        for line in self._worker_leaks:
            terminalreporter.write_line(f"- {line}", red=True)
        if scanner.unrecorded:
            terminalreporter.write_line(f"- and {scanner.unrecorded} more", red=True)
        terminalreporter.write_line(f"searched {counts}; {self._spans}")

    # -- what is searched during the session -------------------------------------

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        """Name the running test in what is found."""
        self.scanner.test = nodeid

    def pytest_runtest_logfinish(self) -> None:
        """No test is running any more."""
        self.scanner.test = None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Search failure text and captured output."""
        self._scan_report(report.longreprtext, report.sections, f"({report.when})")

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        """Search collection errors."""
        self._scan_report(report.longreprtext, report.sections, f"(collecting {report.nodeid})")

    def _scan_report(self, text: str, sections: Iterable[tuple[str, str]], detail: str) -> None:
        parts = [text, *(f"{title}\n{content}" for title, content in sections)]
        self.scanner.scan("\n".join(parts), "test report", detail)

    def pytest_warning_recorded(self, warning_message: warnings.WarningMessage) -> None:
        """Search warning messages."""
        category = warning_message.category.__name__
        self.scanner.scan(str(warning_message.message), "warning", f"({category})")

    @pytest.fixture
    def aureus_leak_canaries(self) -> Canaries:
        """The session's canaries (tests of the scan itself leak them on purpose)."""
        return self.canaries


__all__ = ["Canaries", "Leak", "LeakScan", "LeakScanner"]
