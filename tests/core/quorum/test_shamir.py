"""Shamir's scheme over GF(2^8): field arithmetic, thresholds and secrecy of k-1 shares."""

from __future__ import annotations

import os
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aureus_core.envelope.shamir import combine, gf_inv, gf_mul, split
from aureus_core.errors import ConfigError, DecryptionError


def _slow_mul(a: int, b: int) -> int:
    """Schoolbook carry-less product reduced by the AES polynomial, as a reference."""
    product = 0
    for bit in range(8):
        if (b >> bit) & 1:
            product ^= a << bit
    for bit in range(14, 7, -1):
        if (product >> bit) & 1:
            product ^= 0x11B << (bit - 8)
    return product


def test_field_arithmetic_matches_a_reference_and_the_fips_197_example() -> None:
    assert gf_mul(0x57, 0x83) == 0xC1  # FIPS-197 section 4.2
    for a in range(256):
        for b in range(0, 256, 7):
            assert gf_mul(a, b) == _slow_mul(a, b)
    for a in range(1, 256):
        assert gf_mul(a, gf_inv(a)) == 1


@settings(max_examples=150, deadline=None)
@given(
    secret=st.binary(min_size=1, max_size=48),
    n=st.integers(1, 8),
    data=st.data(),
)
def test_any_k_shares_recover_and_k_minus_1_do_not(
    secret: bytes, n: int, data: st.DataObject
) -> None:
    k = data.draw(st.integers(1, n), label="k")
    shares = split(secret, k, n)
    subset = data.draw(st.sets(st.integers(1, n), min_size=1), label="subset")
    chosen = {x: shares[x - 1] for x in subset}
    if len(chosen) >= k:
        # exactly k of them (any k) give the secret back
        picked = dict(sorted(chosen.items())[:k])
        assert combine(picked) == secret
    elif len(secret) >= 16:
        # fewer than k give a different value (all-equal by chance: 2^-128)
        assert combine(chosen) != secret


def _exactly_one_polynomial(k: int, xs: list[int], ys: list[int]) -> None:
    """For k = 2: for every secret s, exactly one slope a gives the k-1 = 1 observed share."""
    (x,), (y,) = xs, ys
    for secret in range(256):
        slopes = [a for a in range(256) if gf_mul(a, x) ^ secret == y]
        assert len(slopes) == 1


def test_one_share_of_a_2_of_n_split_is_consistent_with_every_secret_equally() -> None:
    # Exhaustive over the field: each observed share value fits every secret with
    # exactly one polynomial, so the share says nothing about the secret.
    for x in (1, 2, 7, 255):
        for y in (0, 1, 0x80, 0xFF):
            _exactly_one_polynomial(2, [x], [y])


def test_k_minus_1_shares_are_uniform_whatever_the_secret() -> None:
    # Statistical check on real splits of a one-byte secret: the two shares a
    # 3-of-4 holder of groups 1 and 3 sees, reduced to their XOR and first byte,
    # have the same uniform distribution for secret 0x00 and secret 0xFF.
    samples = 256 * 40
    for secret in (b"\x00", b"\xff"):
        first: Counter[int] = Counter()
        for _ in range(samples):
            shares = split(secret, 3, 4)
            first[shares[0][0] ^ shares[2][0]] += 1
        expected = samples / 256
        chi_square = sum((first[v] - expected) ** 2 / expected for v in range(256))
        # 255 degrees of freedom: P(chi^2 > 360) < 1e-4 for a uniform distribution
        assert chi_square < 360, (secret, chi_square)


def test_threshold_bounds_and_bad_indexes_are_refused() -> None:
    with pytest.raises(ConfigError, match="threshold of 3 of 2"):
        split(os.urandom(32), 3, 2)
    with pytest.raises(ConfigError):
        split(os.urandom(32), 0, 2)
    with pytest.raises(ConfigError):
        split(os.urandom(32), 2, 256)
    with pytest.raises(DecryptionError, match="invalid index"):
        combine({0: b"\x01"})
    with pytest.raises(DecryptionError, match="differ in length"):
        combine({1: b"\x01", 2: b"\x01\x02"})
