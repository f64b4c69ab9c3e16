"""The header parser meets arbitrary bytes: only DecryptionError, quickly, bounded."""

import contextlib
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aureus_core import AureusError
from aureus_core.envelope.header import Limits, parse_header
from aureus_core.envelope.reader import Reader


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600))
def test_arbitrary_bytes(data):
    started = time.perf_counter()
    with contextlib.suppress(AureusError):
        parse_header(Reader(data), Limits())
    assert time.perf_counter() - started < 0.5


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_mutated_real_headers(stack, data):
    message = bytearray(
        stack.encrypt(b"payload", context={"a": "b"}, keys=["local://alpha", "local://beta"])
    )
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(message) - 1))
        message[index] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(message)))
    with contextlib.suppress(AureusError):
        stack.decrypt(bytes(message[:cut]))
    with contextlib.suppress(AureusError):
        stack.inspect(bytes(message[:cut]))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_messages_of_every_suite_and_content_type(data):
    """Any suite, framed or not, streamed or not: a changed message is refused, never more."""
    from test_suites import SUITE_IDS, read, write  # type: ignore[import-not-found]

    from aureus_core.envelope.suites import SUITES

    suite = SUITES[data.draw(st.sampled_from(SUITE_IDS))]
    framed = data.draw(st.booleans())
    plaintext = data.draw(st.binary(max_size=200))
    message, data_key = write(suite, plaintext, framed=framed, frame_length=48)
    # Signatures vary in length: positions are drawn independently of it.
    changed = bytearray(message)
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, 2**16)) % len(changed)
        changed[index] = data.draw(st.integers(0, 255))
    cut = len(changed) - data.draw(st.integers(0, 2**16)) % (len(changed) + 1)
    hostile = bytes(changed[:cut])
    started = time.perf_counter()
    for stream in (False, True):
        try:
            got = read(hostile, data_key, stream=stream)
        except AureusError:
            continue
        # Only an unchanged message may decrypt, and only to its plaintext.
        assert hostile == message
        assert got == plaintext
    assert time.perf_counter() - started < 0.5
