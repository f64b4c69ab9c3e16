"""k-of-n signing: a pinned policy of n keys and a threshold, and DSSE bundles of signatures.

A bundle is a DSSE envelope (the signing envelope of in-toto and Sigstore)::

    {"payloadType": "...", "payload": "<base64>",
     "signatures": [{"keyid": "<key URI with version>", "sig": "<base64>"}, ...]}

Each signature is over DSSE's pre-authentication encoding
``"DSSEv1" SP len(type) SP type SP len(payload) SP payload``.  The policy
(keys and threshold) never comes from the bundle: the verifier names a policy
file whose SHA-256 it pins, so whoever hands over a bundle cannot lower the
threshold or add a key.  A key counts once however many of its signatures
the bundle holds, and two policy entries that turn out to be one key (an
alias and its ARN, say: the same public key) count once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from .errors import AureusError, ConfigError, SignatureError, UnsupportedOperation
from .keyref import KeyRef
from .signature import Signature

if TYPE_CHECKING:
    from .stack import KeyStack

DEFAULT_PAYLOAD_TYPE = "application/octet-stream"
POLICY_FORMAT = "aureus-signing-policy/1"


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding of a payload and its type: what is signed."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def digest_of(data: bytes) -> str:
    """The SHA-256 of a policy document's bytes, in hex: what a verifier pins."""
    return hashlib.sha256(data).hexdigest()


@attrs.frozen(kw_only=True)
class SigningPolicy:
    """``threshold`` distinct keys of ``keys`` must sign.

    The document is JSON: ``{"format": "aureus-signing-policy/1", "name": "release",
    "threshold": 2, "keys": ["local://alice", "aws-kms://alias/bob", ...]}``.
    A key URI without a version accepts any version that still verifies (so a
    key can rotate); with one, only that version.
    """

    name: str
    threshold: int
    keys: tuple[KeyRef, ...]
    digest: str
    """SHA-256 (hex) of the document this policy was read from."""

    @classmethod
    def parse(cls, data: bytes) -> SigningPolicy:
        """Read a policy document; :class:`ConfigError` says what is wrong."""
        try:
            doc: Any = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise ConfigError("the signing policy is not valid JSON") from None
        if not isinstance(doc, dict) or doc.get("format") != POLICY_FORMAT:
            raise ConfigError(
                f'a signing policy is a JSON object with "format": "{POLICY_FORMAT}", '
                '"threshold": K and "keys": [key URIs]'
            )
        unknown = set(doc) - {"format", "name", "threshold", "keys"}
        if unknown:
            raise ConfigError(
                f"unknown field(s) in the signing policy: {', '.join(sorted(unknown))}"
            )
        keys_raw, threshold, name = doc.get("keys"), doc.get("threshold"), doc.get("name", "")
        if not isinstance(keys_raw, list) or not keys_raw:
            raise ConfigError('the signing policy needs "keys": a non-empty list of key URIs')
        keys = tuple(KeyRef.parse(uri) for uri in keys_raw)
        bases = [key.with_version(None) for key in keys]
        if len(set(bases)) != len(bases):
            raise ConfigError("the signing policy lists a key twice; each key counts once")
        if (
            isinstance(threshold, bool)
            or not isinstance(threshold, int)
            or not 1 <= threshold <= len(keys)
        ):
            raise ConfigError(
                f"the signing policy's threshold must be between 1 and {len(keys)} "
                f"(its number of keys), not {threshold!r}"
            )
        if not isinstance(name, str):
            raise ConfigError('the signing policy\'s "name" must be a string')
        return cls(name=name, threshold=threshold, keys=keys, digest=digest_of(data))

    @classmethod
    def load(cls, path: str | Path, *, pins: Sequence[str]) -> SigningPolicy:
        """Read a policy file whose SHA-256 is one of ``pins``; else :class:`ConfigError`."""
        try:
            data = Path(path).read_bytes()
        except OSError as error:
            raise ConfigError(f"cannot read signing policy {path}: {error.strerror}") from None
        digest = digest_of(data)
        if digest not in {pin.lower() for pin in pins}:
            raise ConfigError(
                f"signing policy {path} (SHA-256 {digest}) is not pinned: after checking its "
                "keys and threshold, add the digest to [stack] policy_pins or pass "
                "--policy-sha256; a policy is never trusted because a file says so"
            )
        return cls.parse(data)

    def to_json(self) -> str:
        """The document form (its digest differs from the file's if the file was formatted)."""
        return json.dumps(
            {
                "format": POLICY_FORMAT,
                "name": self.name,
                "threshold": self.threshold,
                "keys": [key.uri for key in self.keys],
            },
            indent=2,
        )


@attrs.frozen(kw_only=True)
class BundleSignature:
    """One DSSE signature: the key (URI with version) and the raw signature."""

    keyid: str
    sig: bytes = attrs.field(repr=lambda v: f"<{len(v)} bytes>")


@attrs.frozen(kw_only=True)
class Bundle:
    """A DSSE envelope: a payload and any number of signatures over it."""

    payload_type: str
    payload: bytes = attrs.field(repr=lambda v: f"<{len(v)} bytes>")
    signatures: tuple[BundleSignature, ...] = ()

    def signed_bytes(self) -> bytes:
        """What each signature covers (DSSE PAE)."""
        return pae(self.payload_type, self.payload)

    def to_json(self) -> str:
        """The DSSE JSON envelope."""
        return json.dumps(
            {
                "payloadType": self.payload_type,
                "payload": base64.b64encode(self.payload).decode("ascii"),
                "signatures": [
                    {"keyid": s.keyid, "sig": base64.b64encode(s.sig).decode("ascii")}
                    for s in self.signatures
                ],
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Bundle:
        """Parse a DSSE JSON envelope; :class:`SignatureError` if malformed."""
        try:
            doc: Any = json.loads(text)
            signatures = tuple(
                BundleSignature(
                    keyid=str(entry.get("keyid", "")),
                    sig=base64.b64decode(entry["sig"], validate=True),
                )
                for entry in doc.get("signatures", [])
            )
            return cls(
                payload_type=str(doc["payloadType"]),
                payload=base64.b64decode(doc["payload"], validate=True),
                signatures=signatures,
            )
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
            raise SignatureError(
                "malformed signing bundle: expected a DSSE JSON envelope with payloadType, "
                "payload (base64) and signatures [{keyid, sig}]"
            ) from None

    def add(self, signature: Signature) -> Bundle:
        """A copy with one more signature (keyid: the key URI pinned to its version)."""
        keyid = KeyRef.parse(signature.key_uri).with_version(signature.key_version).uri
        entry = BundleSignature(keyid=keyid, sig=signature.value)
        return attrs.evolve(self, signatures=(*self.signatures, entry))


@attrs.frozen(kw_only=True)
class Verdict:
    """The outcome of checking a bundle against a policy."""

    threshold: int
    signed: tuple[str, ...]
    """Policy keys (URIs) with a valid signature, each once."""
    missing: tuple[str, ...]
    """Policy keys without one."""
    notes: tuple[str, ...] = ()
    """Signatures not counted, and why (unknown key, invalid, a duplicate)."""

    @property
    def valid(self) -> bool:
        """Whether at least ``threshold`` distinct policy keys signed."""
        return len(self.signed) >= self.threshold

    def describe(self) -> str:
        """One line for people: the count, who signed and who is missing."""
        state = "valid" if self.valid else "INVALID"
        return (
            f"bundle {state}: {len(self.signed)} of the {self.threshold} required signatures "
            f"(signed: {', '.join(self.signed) or 'none'}; missing: "
            f"{', '.join(self.missing) or 'none'})"
        )


def sign(
    stack: KeyStack,
    policy: SigningPolicy,
    bundle: Bundle,
    *,
    keys: Sequence[str | KeyRef] | None = None,
) -> tuple[Bundle, list[str]]:
    """Add signatures from the policy's keys this stack can use; return the bundle and problems.

    ``keys`` narrows the keys to sign with (each must be in the policy).  A
    key that cannot sign here (no access, unreachable) is reported, not fatal;
    with no signature added at all, :class:`SignatureError` says why.
    """
    wanted = policy.keys
    if keys is not None:
        chosen = [KeyRef.parse(k) for k in keys]
        bases = {key.with_version(None) for key in policy.keys}
        for key in chosen:
            if key.with_version(None) not in bases:
                raise ConfigError(
                    f"{key.uri} is not one of the keys of signing policy {policy.name!r}; "
                    f"its keys: {', '.join(k.uri for k in policy.keys)}"
                )
        wanted = tuple(chosen)
    problems: list[str] = []
    added = 0
    message = bundle.signed_bytes()
    for key in wanted:
        try:
            signature = stack.sign(message, key=key)
        except AureusError as error:
            problems.append(f"{key.uri}: {error}")
            continue
        bundle = bundle.add(signature)
        added += 1
    if not added:
        raise SignatureError("no key of the signing policy could sign here: " + "; ".join(problems))
    return bundle, problems


def verify(stack: KeyStack, policy: SigningPolicy, bundle: Bundle) -> Verdict:
    """Count the policy keys with a valid signature in ``bundle``; each key once.

    A signature counts only for the policy key its ``keyid`` names (with that
    version, which must still verify: an old version counts while it is
    enabled); one without a version is tried against the key's usable
    versions.  Signatures naming keys outside the policy never count.
    """
    message = bundle.signed_bytes()
    signed: list[str] = []
    notes: list[str] = []
    public_keys: dict[bytes, str] = {}
    claimed: dict[int, KeyRef | None] = {}
    for position, entry in enumerate(bundle.signatures):
        try:
            claimed[position] = KeyRef.parse(entry.keyid)
        except AureusError:
            claimed[position] = None
            notes.append(f"signature {position + 1}: keyid {entry.keyid[:80]!r} is not a key URI")
    for key in policy.keys:
        base = key.with_version(None)
        counted: KeyRef | None = None
        for position, entry in enumerate(bundle.signatures):
            ref = claimed[position]
            if ref is None or ref.with_version(None) != base:
                continue
            if counted is not None:
                notes.append(
                    f"signature {position + 1}: another signature of {base.uri}, counted once"
                )
                continue
            if key.version is not None and ref.version not in (None, key.version):
                notes.append(
                    f"signature {position + 1}: version {ref.version} of {base.uri}; "
                    f"the policy accepts version {key.version} only"
                )
                continue
            record: Signature | bytes = (
                Signature(value=entry.sig, key_uri=base.uri, key_version=ref.version, algorithm="")
                if ref.version is not None
                else entry.sig
            )
            try:
                ok = stack.verify(message, record, key=[key])
            except AureusError as error:
                notes.append(f"signature {position + 1} ({base.uri}): not checked: {error}")
                continue
            if not ok:
                notes.append(f"signature {position + 1} ({base.uri}): invalid")
                continue
            counted = ref
        if counted is None:
            continue
        same = _same_key(stack, counted if counted.version else key, public_keys, base.uri)
        if same is not None:
            notes.append(f"{base.uri} is the same key as {same}: counted once")
            continue
        signed.append(base.uri)
    for position, ref in claimed.items():
        if ref is not None and ref.with_version(None) not in {
            k.with_version(None) for k in policy.keys
        }:
            notes.append(f"signature {position + 1}: {ref.uri} is not a key of the policy")
    missing = [
        k.with_version(None).uri for k in policy.keys if k.with_version(None).uri not in signed
    ]
    return Verdict(
        threshold=policy.threshold, signed=tuple(signed), missing=tuple(missing), notes=tuple(notes)
    )


def _same_key(stack: KeyStack, ref: KeyRef, seen: dict[bytes, str], uri: str) -> str | None:
    """The policy key already counted whose public key equals ``ref``'s, if any."""
    try:
        public = stack.public_key(ref)
    except (UnsupportedOperation, AureusError):
        return None
    if public in seen:
        return seen[public]
    seen[public] = uri
    return None
