import json
import textwrap

import pytest

from aureus_core.audit import AuditEvent, AuditTrail
from aureus_core.audit.observers import add_observer, remove_observer
from aureus_core.testing.leak_scan import Canaries, LeakScanner
from aureus_core.testing.leaks import find_secret

pytest_plugins = ["pytester"]

ON = "[pytest]\naureus_leak_scan = true\n"

# Each inner test hands its canaries to the outer test through a file, so the
# outer test can check that the scan's own message does not show them.
SAVE = """
import json, pathlib

def save(canaries):
    named = {k: v if isinstance(v, str) else v.hex() for k, v in canaries.named().items()}
    pathlib.Path("canaries.json").write_text(json.dumps(named))
"""

LEAKS = {
    "log": (
        """
        import logging
        def test_leaky(aureus_leak_canaries):
            save(aureus_leak_canaries)
            key = aureus_leak_canaries.data_key.hex()
            logging.getLogger("acme.kms").warning("unwrapped %s", key)
        """,
        "*the canary data key (as hex) in a log record from logger 'acme.kms' (WARNING),"
        " during test_leaky.py::test_leaky",
    ),
    "exception in a log": (
        """
        import logging
        def test_leaky(aureus_leak_canaries):
            save(aureus_leak_canaries)
            try:
                raise ValueError(aureus_leak_canaries.passphrase)
            except ValueError:
                logging.getLogger("acme").exception("failed")
        """,
        "*the canary keystore passphrase (as plain text) in a log record from logger 'acme'*",
    ),
    "audit": (
        """
        from aureus_core.audit import AuditEvent, AuditTrail
        def test_leaky(aureus_leak_canaries):
            save(aureus_leak_canaries)
            note = aureus_leak_canaries.plaintext.decode()
            AuditTrail().emit(AuditEvent(operation="encrypt", details=(("note", note),)))
        """,
        "*the canary plaintext (as bytes repr) in a audit event (encrypt), during*",
    ),
    "span": (
        """
        import base64
        from opentelemetry import trace
        def test_leaky(aureus_leak_canaries):
            save(aureus_leak_canaries)
            value = base64.b64encode(aureus_leak_canaries.wrapping_key).decode()
            with trace.get_tracer("acme").start_as_current_span("wrap") as span:
                span.set_attribute("acme.key", value)
        """,
        "*the canary wrapping key (as base64) in a span 'wrap', during*",
    ),
    "failure report": (
        """
        def test_leaky(aureus_leak_canaries):
            save(aureus_leak_canaries)
            assert aureus_leak_canaries.signing_key_pem == "something else"
        """,
        "*the canary private key (DER) (as base64) in a test report (call), during*",
    ),
    "captured output": (
        """
        def test_leaky(aureus_leak_canaries):
            save(aureus_leak_canaries)
            print(aureus_leak_canaries.signing_key_der.hex())
        """,
        "*the canary private key (DER) (as hex) in a test report (call), during*",
    ),
}


@pytest.mark.parametrize("where", list(LEAKS))
def test_a_leaked_canary_fails_the_run(pytester: pytest.Pytester, where: str):
    source, expected = LEAKS[where]
    pytester.makeini(ON)
    pytester.makepyfile(test_leaky=SAVE + textwrap.dedent(source))
    if where == "span":
        pytest.importorskip("opentelemetry.sdk")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    outcomes = {"failed": 1} if where == "failure report" else {"passed": 1}
    result.assert_outcomes(**outcomes)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*aureus leak scan: FAILED*", expected])
    section = result.stdout.str().split("aureus leak scan: FAILED", 1)[1]
    canaries = json.loads((pytester.path / "canaries.json").read_text())
    assert find_secret(section, canaries.values()) is None


def test_a_clean_run_passes_and_says_what_it_searched(pytester: pytest.Pytester):
    pytester.makeini(ON)
    pytester.makepyfile(
        """
        import logging
        from aureus_core import KeyStack

        def test_stack(tmp_path, aureus_leak_canaries):
            with KeyStack.local(tmp_path, wrapping_keys=["local://k"]) as stack:
                stack.create_key("k")
                assert stack.decrypt(stack.encrypt(b"hello")) == b"hello"
            logging.getLogger("acme").warning("all fine")
            assert "hidden" in repr(aureus_leak_canaries)
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        ["aureus leak scan: no canary secret found; searched *audit events*log records*"]
    )


def test_the_scan_is_opt_in(pytester: pytest.Pytester):
    pytester.makepyfile(
        """
        def test_no_fixture(request):
            with __import__("pytest").raises(Exception):
                request.getfixturevalue("aureus_leak_canaries")
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "aureus leak scan" not in result.stdout.str()


def test_a_leak_fails_a_real_pytest_process(pytester: pytest.Pytester):
    pytester.makeini(ON)
    pytester.makepyfile(
        """
        def test_leaky(aureus_leak_canaries):
            print(aureus_leak_canaries.plaintext)
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*the canary plaintext (as bytes repr) in a test report*"])


def test_a_secret_whose_repr_shows_its_value_is_caught(pytester: pytest.Pytester):
    pytester.makeini(ON)
    pytester.makeconftest(
        """
        from aureus_core.sensitive import Secret

        Secret.__repr__ = lambda self: f"Secret({self.reveal()!r})"  # the regression
        """
    )
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*the canary keystore passphrase (as plain text) in a repr of a Credentials*",
            "*the canary wrapping key (as bytes repr) in a repr of a KeyMaterial*outside any test",
        ]
    )


def test_scanner_finds_every_form_and_names_no_secret():
    canaries = Canaries.generate()
    scanner = LeakScanner(canaries)
    assert not scanner.scan("nothing to see", "log record")
    assert scanner.scan(f"x{canaries.wrapping_key.hex().upper()}y", "log record", "here")
    assert scanner.scan(repr(canaries.signing_key), "span")
    (first, second) = scanner.leaks
    assert first.describe() == (
        "the canary wrapping key (as upper-case hex) in a log record here, outside any test"
    )
    assert second.canary == "private key"
    assert scanner.scan(json.dumps({"pem": canaries.signing_key_pem}), "log record", "json")
    assert scanner.leaks[-1].form == "escaped text"
    assert scanner.searched == {"log record": 3, "span": 1}
    assert scanner.safe(f"boom {canaries.passphrase}") == "<message withheld: it contains a canary>"
    assert scanner.safe("boom") == "boom"
    assert "hidden" in repr(canaries)


def test_audit_observers_see_every_event_until_removed():
    seen: list[AuditEvent] = []
    add_observer(seen.append)
    try:
        AuditTrail().emit(AuditEvent(operation="describe"))
    finally:
        remove_observer(seen.append)
    remove_observer(seen.append)  # removing twice is harmless
    AuditTrail().emit(AuditEvent(operation="describe"))
    assert [e.operation for e in seen] == ["describe"]


@pytest.mark.parametrize("leaky", [True, False])
def test_under_xdist_the_workers_scans_decide_the_run(pytester: pytest.Pytester, leaky: bool):
    """Each xdist worker plants and searches its own canaries; the controller fails the run."""
    pytest.importorskip("xdist")
    pytester.makeini(ON)
    leak = "print(aureus_leak_canaries.plaintext)" if leaky else "pass"
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.parametrize("n", range(4))
        def test_maybe_leaky(n, aureus_leak_canaries):
            if n == 3:
                {leak}
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "xdist", "-n", "2")
    result.assert_outcomes(passed=4)
    if leaky:
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        result.stdout.fnmatch_lines(
            [
                "*aureus leak scan: FAILED*",
                "*- gw?: the canary plaintext (as bytes repr) in a test report"
                "*test_maybe_leaky[[]3[]]*",
            ]
        )
    else:
        assert result.ret == pytest.ExitCode.OK
        result.stdout.fnmatch_lines(
            [
                "aureus leak scan: no canary secret found; searched "
                "*(in 2 xdist workers and the controller)*"
            ]
        )
