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
