"""Shamir's secret sharing over GF(2^8), one independent polynomial per secret byte.

The construction is the one sops and HashiCorp Vault use: the field is
GF(2^8) with the AES reduction polynomial x^8 + x^4 + x^3 + x + 1 (0x11B);
byte ``i`` of the secret is the constant term of a random polynomial of
degree ``k - 1`` whose other coefficients come from the operating system's
CSPRNG; share ``x`` (1..255) holds that polynomial's value at ``x`` for every
byte.  Any ``k`` shares give the secret back by Lagrange interpolation at 0;
any ``k - 1`` are uniformly distributed whatever the secret.

The arithmetic is table-free: multiplication is a fixed eight-round
shift-and-add whose conditional steps are masks, not branches, and inversion
is ``a^254`` by a fixed square-and-multiply chain, so no secret byte is used
as a table index or decides a branch.  (CPython gives no timing guarantee for
integer operations; this removes the data-dependent memory accesses and
branches that log-table implementations have.)
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from ..errors import ConfigError, DecryptionError

MAX_SHARES = 255
"""Share x-coordinates are the non-zero field elements."""


def gf_mul(a: int, b: int) -> int:
    """The product of two field elements, without branches or tables."""
    product = 0
    for _ in range(8):
        product ^= -(b & 1) & a
        carry = a >> 7
        a = ((a << 1) ^ (-carry & 0x1B)) & 0xFF
        b >>= 1
    return product


def gf_inv(a: int) -> int:
    """The multiplicative inverse (``a^254``); 0 maps to 0, which callers never pass."""
    # 254 = 2 + 4 + ... + 128: the product of a^(2^i) for i = 1..7, a fixed chain.
    result = 1
    power = a
    for _ in range(7):
        power = gf_mul(power, power)
        result = gf_mul(result, power)
    return result


def split(secret: bytes | bytearray, threshold: int, shares: int) -> list[bytearray]:
    """``shares`` shares of ``secret`` (share ``i`` has x-coordinate ``i + 1``).

    Raises :class:`ConfigError` unless ``1 <= threshold <= shares <= 255``.
    """
    if not 1 <= threshold <= shares <= MAX_SHARES:
        raise ConfigError(
            f"a threshold of {threshold} of {shares} groups is not possible: it needs "
            f"1 <= threshold <= groups <= {MAX_SHARES}"
        )
    length = len(secret)
    coefficients = bytearray(os.urandom(length * (threshold - 1)))
    out = [bytearray(length) for _ in range(shares)]
    try:
        for x in range(1, shares + 1):
            share = out[x - 1]
            for i in range(length):
                # Horner's rule from the highest coefficient down to the secret byte.
                value = 0
                for degree in range(threshold - 1, 0, -1):
                    value = gf_mul(value, x) ^ coefficients[i * (threshold - 1) + degree - 1]
                share[i] = gf_mul(value, x) ^ secret[i]
    finally:
        coefficients[:] = bytes(len(coefficients))
    return out


def combine(shares: Mapping[int, bytes | bytearray]) -> bytearray:
    """The secret from shares keyed by their x-coordinate (exactly ``threshold`` of them).

    Raises :class:`DecryptionError` for an x-coordinate outside 1..255 or
    shares of different lengths; extra or wrong shares give a wrong secret,
    which the message's key commitment then refuses.
    """
    xs = list(shares)
    if not xs or any(not 1 <= x <= MAX_SHARES for x in xs):
        raise DecryptionError("a key share has an invalid index")
    lengths = {len(share) for share in shares.values()}
    if len(lengths) != 1:
        raise DecryptionError("the key shares of the message differ in length")
    length = lengths.pop()
    # Lagrange basis at 0: l_i = prod_{j != i} x_j / (x_j - x_i); subtraction is XOR.
    weights = {}
    for xi in xs:
        numerator, denominator = 1, 1
        for xj in xs:
            if xj != xi:
                numerator = gf_mul(numerator, xj)
                denominator = gf_mul(denominator, xj ^ xi)
        weights[xi] = gf_mul(numerator, gf_inv(denominator))
    secret = bytearray(length)
    for xi, share in shares.items():
        weight = weights[xi]
        for i in range(length):
            secret[i] ^= gf_mul(weight, share[i])
    return secret
