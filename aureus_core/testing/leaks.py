"""Checks that secret values do not show up in reprs, messages or logs.

A secret can leak in more than its own spelling: as hex, as base64, or as
the escaped text of a ``bytes`` repr.  :func:`assert_no_secret` looks for all
of them and, when it finds one, names the form, never the value.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable

MIN_CHECKABLE_LENGTH = 8
"""Shorter secrets are not searched for: they would match ordinary text by chance."""


def secret_forms(secret: bytes | bytearray | str) -> dict[str, str]:
    """The textual forms of ``secret`` worth searching for, by name of the form."""
    if isinstance(secret, str):
        raw = secret.encode("utf-8")
        forms = {"plain text": secret}
    else:
        raw = bytes(secret)
        forms = {"bytes repr": repr(raw)[2:-1]}
    forms.update(
        {
            "hex": raw.hex(),
            "upper-case hex": raw.hex().upper(),
            "base64": base64.b64encode(raw).decode("ascii").rstrip("="),
            "url-safe base64": base64.urlsafe_b64encode(raw).decode("ascii").rstrip("="),
        }
    )
    return {name: form for name, form in forms.items() if len(form) >= MIN_CHECKABLE_LENGTH}


def is_checkable(secret: bytes | bytearray | str) -> bool:
    """Whether ``secret`` is long enough for a leak search to mean anything."""
    return len(secret) >= MIN_CHECKABLE_LENGTH


def find_secret(text: str, secrets: Iterable[bytes | bytearray | str]) -> str | None:
    """The name of the first form of a secret that ``text`` contains, or ``None``."""
    for secret in secrets:
        if not is_checkable(secret):
            continue
        for name, form in secret_forms(secret).items():
            if form in text:
                return name
    return None


def assert_no_secret(text: str, secrets: Iterable[bytes | bytearray | str], where: str) -> None:
    """Fail if ``text`` shows any of ``secrets``; the message names ``where`` and the form."""
    __tracebackhide__ = True  # pytest would print this frame's arguments: the secrets
    form = find_secret(text, secrets)
    if form is not None:
        raise AssertionError(f"{where} shows a secret value (as {form})")
