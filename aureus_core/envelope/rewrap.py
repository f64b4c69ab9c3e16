"""Rewrap: give a message new recipients without decrypting or re-encrypting its body.

A message's data key is unwrapped once (through the same checks as decrypt)
and wrapped again under the new keys.  The new message keeps the suite,
message ID, frame length and commitment value, so the derived key and every
frame's IV, associated data and tag stay valid: the body frames are copied
byte for byte.  Only the encrypted data keys, the header authentication tag
and, for the signed suite, the public key in the context and the footer change.

Integrity of the body:

* The input's header is authenticated (commitment and header tag) before
  anything is written, exactly as on decrypt.
* Every frame's place is checked as it is copied (sequence numbers, the final
  frame's length, nothing after the end).
* With ``verify_body=True`` (the default) every frame's tag is checked with
  the derived key as well; the plaintext goes only into one scratch buffer,
  wiped at the end.  With ``verify_body=False`` the tags are not checked:
  a changed frame is copied as it is and fails whoever decrypts the new
  message (the tag is still bound to the same key, message ID and position),
  so a rewrap never launders a change, but it does not report one either.
* The signed suite's old signature is checked over the old header and body as
  the body streams; the new message's final frame and footer are written only
  once it has verified.  The new message is signed by a fresh key pair.

:class:`~aureus_core.stack.KeyStack` (``rewrap``, ``rewrap_stream``) is the
API; this module holds the parts it composes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..errors import ConfigError
from ..keyref import KeyRef
from .header import Limits
from .keyring import ProviderLookup, wrap_for_all
from .message import (
    EncryptionMaterials,
    MessageReader,
    MessageWriter,
    new_signing_key,
    signed_context,
)

OnUnlock = Callable[[MessageReader, bytearray], None]
"""Called by the stack's read path with the reader and the data key, right after unlock."""

Write = Callable[[bytes | memoryview], object]
"""Where the new message goes: ``dst.write``, or ``list.append`` for one-shot rewraps."""


def parse_recipients(to_keys: Sequence[str | KeyRef], limits: Limits) -> tuple[KeyRef, ...]:
    """The new wrapping keys, checked before any provider is called."""
    if isinstance(to_keys, (str, KeyRef)):
        raise ConfigError("to_keys takes a list of key URIs, e.g. to_keys=['local://name']")
    refs = tuple(KeyRef.parse(key) for key in to_keys)
    if not refs:
        raise ConfigError("rewrap needs at least one new wrapping key (to_keys=[URI, ...], --to)")
    if len(set(refs)) != len(refs):
        raise ConfigError("the same new wrapping key is listed twice")
    limits.check_recipients(len(refs))
    return refs


class Rewrap:
    """One rewrap: :meth:`prepare` while the data key is unwrapped, then :meth:`copy`."""

    def __init__(self, lookup: ProviderLookup, to_keys: Sequence[KeyRef]) -> None:
        self._lookup = lookup
        self._to_keys = tuple(to_keys)
        self._writer: MessageWriter | None = None
        self.recipients: tuple[KeyRef, ...] = ()
        """The new wrapping keys, pinned to the versions that wrapped (after :meth:`prepare`)."""

    def prepare(self, reader: MessageReader, data_key: bytearray) -> None:
        """Wrap the unlocked message's data key for the new recipients and set up the writer.

        Called with the data key of a reader whose header has been
        authenticated; the key is not kept (the caller wipes it).
        """
        header = reader.header
        suite = header.suite
        if suite.message_version != 2:
            raise ConfigError(
                f"cannot rewrap a format-version-1 message (suite 0x{suite.suite_id:04X}): "
                "rewrap keeps the algorithm suite and Aureus writes only committing suites; "
                "decrypt and encrypt it again instead"
            )
        signing_key = new_signing_key()[0] if suite.signed else None
        # Signed suites: the new public key replaces the old one, and the new
        # data keys are wrapped with the new context as associated data.
        context = signed_context(header.context, signing_key)
        encrypted, used = wrap_for_all(self._lookup, self._to_keys, data_key, context)
        materials = EncryptionMaterials(
            suite=suite,
            data_key=data_key,
            encrypted_data_keys=encrypted,
            context=context,
            signing_key=signing_key,
        )
        writer = MessageWriter(materials, header.frame_length, message_id=header.message_id)
        # Same data key, message ID and suite: the same commitment (checked by unlock).
        assert writer.header.suite_data == header.suite_data
        self._writer = writer
        self.recipients = tuple(used)

    def copy(self, reader: MessageReader, write: Write, *, verify_body: bool) -> int:
        """Write the new header, the input's frames unchanged, and the new footer.

        Returns the plaintext bytes the body carries (known from the frame
        lengths, without decrypting).  Raises
        :class:`~aureus_core.errors.DecryptionError` when the input does not
        check; what was written by then must be discarded (for the signed
        suite it never includes the final frame or the footer).
        """
        writer = self._writer
        if writer is None:
            raise RuntimeError("Rewrap.copy() before prepare()")
        write(writer.start())
        scratch = bytearray(reader.header.frame_length) if verify_body else None
        content = 0
        try:
            for frame in reader.sealed_frames():
                if scratch is not None:
                    reader.authenticate(frame, scratch)
                for part in frame.parts():
                    writer.add_sealed(part)
                    write(part)
                content += frame.content_length
        finally:
            if scratch is not None:
                scratch[:] = bytes(len(scratch))
        write(writer.finish())
        return content

    def details(self, *, verify_body: bool) -> tuple[tuple[str, str], ...]:
        """Audit details: the new recipients (with versions), signed, verify_body."""
        signed = self._writer is not None and self._writer.header.suite.signed
        return (
            ("recipients", ",".join(ref.uri for ref in self.recipients)),
            ("signed", str(signed).lower()),
            ("verify_body", str(verify_body).lower()),
        )


def snapshot(message: bytes | bytearray | memoryview) -> bytes | memoryview:
    """An immutable view of a one-shot input (frames are checked, then copied later)."""
    view = memoryview(message)
    return view if isinstance(view.obj, bytes) else bytes(view)
