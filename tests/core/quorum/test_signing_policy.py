"""k-of-n signing: DSSE bundles checked against a pinned policy."""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aureus_core import KeyStack
from aureus_core.errors import ConfigError, SignatureError
from aureus_core.signing_policy import (
    DEFAULT_PAYLOAD_TYPE,
    Bundle,
    BundleSignature,
    SigningPolicy,
    pae,
    sign,
    verify,
)

SIGNERS = [f"s{i}" for i in range(5)]
PAYLOAD = b"release v1.2.3 sha256:abc"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyStack]:
    with KeyStack.local(tmp_path_factory.mktemp("signing") / "ks") as stack:
        for name in [*SIGNERS, "outsider"]:
            stack.create_key(name, "ed25519")
        yield stack


def policy_of(k: int, names: list[str]) -> SigningPolicy:
    doc = {"format": "aureus-signing-policy/1", "name": "release", "threshold": k}
    doc["keys"] = [f"local://{n}" for n in names]
    return SigningPolicy.parse(json.dumps(doc).encode())


def signed_by(stack: KeyStack, policy: SigningPolicy, names: list[str]) -> Bundle:
    bundle = Bundle(payload_type=DEFAULT_PAYLOAD_TYPE, payload=PAYLOAD)
    if names:
        bundle, _ = sign(stack, policy, bundle, keys=[f"local://{n}" for n in names])
    return bundle


def test_pae_is_dsse_v1() -> None:
    # the example of the DSSE protocol document
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


@settings(
    max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(n=st.integers(2, 4), data=st.data())
def test_every_k_combination_verifies_and_no_k_minus_1_does(
    stack: KeyStack, n: int, data: st.DataObject
) -> None:
    k = data.draw(st.integers(1, n), label="k")
    names = SIGNERS[:n]
    policy = policy_of(k, names)
    for combination in itertools.combinations(names, k):
        verdict = verify(stack, policy, signed_by(stack, policy, list(combination)))
        assert verdict.valid, verdict.describe()
        assert set(verdict.signed) == {f"local://{n}" for n in combination}
    for combination in itertools.combinations(names, k - 1):
        verdict = verify(stack, policy, signed_by(stack, policy, list(combination)))
        assert not verdict.valid
        assert len(verdict.missing) == n - (k - 1)


def test_a_duplicated_signature_never_counts_twice(stack: KeyStack) -> None:
    policy = policy_of(2, SIGNERS[:3])
    bundle = signed_by(stack, policy, ["s0"])
    # the holder of s0 signs again (a second, distinct valid signature) and copies it
    again, _ = sign(stack, policy, bundle, keys=["local://s0"])
    copied = Bundle(
        payload_type=again.payload_type,
        payload=again.payload,
        signatures=(*again.signatures, again.signatures[0]),
    )
    verdict = verify(stack, policy, copied)
    assert not verdict.valid
    assert verdict.signed == ("local://s0",)
    assert "another signature of local://s0, counted once" in " ".join(verdict.notes)


def test_signatures_from_keys_outside_the_policy_or_relabelled_never_count(stack: KeyStack) -> None:
    policy = policy_of(2, SIGNERS[:3])
    bundle = signed_by(stack, policy, ["s0"])
    outsider = stack.sign(bundle.signed_bytes(), key="local://outsider")
    # an outsider's valid signature, once under its own name and once claiming to be s1
    forged = Bundle(
        payload_type=bundle.payload_type,
        payload=bundle.payload,
        signatures=(
            *bundle.signatures,
            BundleSignature(
                keyid=f"local://outsider?version={outsider.key_version}", sig=outsider.value
            ),
            BundleSignature(keyid=f"local://s1?version={outsider.key_version}", sig=outsider.value),
        ),
    )
    verdict = verify(stack, policy, forged)
    assert not verdict.valid
    assert verdict.signed == ("local://s0",)
    notes = " ".join(verdict.notes)
    assert "(local://s1): invalid" in notes
    assert "local://outsider?version=1 is not a key of the policy" in notes


def test_a_signature_over_another_payload_or_type_does_not_count(stack: KeyStack) -> None:
    policy = policy_of(1, SIGNERS[:2])
    bundle = signed_by(stack, policy, ["s0"])
    swapped = Bundle(
        payload_type=bundle.payload_type, payload=b"evil", signatures=bundle.signatures
    )
    assert not verify(stack, policy, swapped).valid
    retyped = Bundle(
        payload_type="text/plain", payload=bundle.payload, signatures=bundle.signatures
    )
    assert not verify(stack, policy, retyped).valid
    assert verify(stack, policy, bundle).valid


def test_an_old_version_counts_while_it_verifies(tmp_path: Path) -> None:
    with KeyStack.local(tmp_path / "ks") as stack:
        for name in ("a", "b"):
            stack.create_key(name, "ed25519")
        policy = policy_of(2, ["a", "b"])
        bundle = signed_by(stack, policy, ["a", "b"])
        stack.rotate_key("local://a")
        assert verify(stack, policy, bundle).valid
        stack.set_version_state("local://a?version=1", "disabled")
        verdict = verify(stack, policy, bundle)
        assert not verdict.valid
        assert verdict.missing == ("local://a",)
        # a fresh signature by the new version counts again
        resigned, _ = sign(stack, policy, bundle, keys=["local://a"])
        assert resigned.signatures[-1].keyid == "local://a?version=2"
        assert verify(stack, policy, resigned).valid


def test_policy_documents_are_checked_and_pinned(tmp_path: Path) -> None:
    path = tmp_path / "policy.json"
    text = json.dumps(
        {"format": "aureus-signing-policy/1", "threshold": 2, "keys": ["local://a", "local://b"]}
    )
    path.write_text(text)
    with pytest.raises(ConfigError, match="is not pinned"):
        SigningPolicy.load(path, pins=[])
    policy = SigningPolicy.load(path, pins=[SigningPolicy.parse(text.encode()).digest.upper()])
    assert policy.threshold == 2
    # an attacker lowers k in the file: the pin no longer matches
    path.write_text(text.replace('"threshold": 2', '"threshold": 1'))
    with pytest.raises(ConfigError, match="is not pinned"):
        SigningPolicy.load(path, pins=[policy.digest])
    for bad, why in [
        (
            {
                "format": "aureus-signing-policy/1",
                "threshold": 3,
                "keys": ["local://a", "local://b"],
            },
            "between 1 and 2",
        ),
        (
            {
                "format": "aureus-signing-policy/1",
                "threshold": 1,
                "keys": ["local://a", "local://a?version=2"],
            },
            "twice",
        ),
        ({"threshold": 1, "keys": ["local://a"]}, "format"),
    ]:
        with pytest.raises(ConfigError, match=why):
            SigningPolicy.parse(json.dumps(bad).encode())


def test_bundle_json_round_trip_and_malformed_bundles(stack: KeyStack) -> None:
    policy = policy_of(1, SIGNERS[:2])
    bundle = signed_by(stack, policy, ["s0", "s1"])
    doc = json.loads(bundle.to_json())
    assert set(doc) == {"payloadType", "payload", "signatures"}
    assert base64.b64decode(doc["payload"]) == PAYLOAD
    assert [s["keyid"] for s in doc["signatures"]] == [
        "local://s0?version=1",
        "local://s1?version=1",
    ]
    assert Bundle.from_json(bundle.to_json()) == bundle
    with pytest.raises(SignatureError, match="malformed signing bundle"):
        Bundle.from_json('{"payloadType": "x", "payload": "!!"}')
