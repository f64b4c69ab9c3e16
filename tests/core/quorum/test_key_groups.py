"""Key groups: a data key split so that keys of k of n groups are needed to decrypt."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aureus_core import KeyStack
from aureus_core.context import EncryptionContext
from aureus_core.datakey import EncryptedDataKey
from aureus_core.envelope.quorum import PROVIDER_ID, Quorum, QuorumNotReached, encode, parse
from aureus_core.errors import ConfigError, DecryptionError
from aureus_core.keyref import KeyRef
from aureus_core.testing import forge

NAMES = [f"k{i}" for i in range(8)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyStack]:
    with KeyStack.local(tmp_path_factory.mktemp("quorum") / "ks") as stack:
        for name in [*NAMES, "spare"]:
            stack.import_key(name, "aes-256", raw=os.urandom(32))
        yield stack


def groups_of(n: int) -> dict[str, list[str]]:
    return {f"g{i + 1}": [f"local://{NAMES[i]}"] for i in range(n)}


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(n=st.integers(1, 8), data=st.data())
def test_decrypt_succeeds_iff_k_groups_are_reachable(
    stack: KeyStack, n: int, data: st.DataObject
) -> None:
    k = data.draw(st.integers(1, n), label="k")
    reachable = data.draw(st.sets(st.integers(0, n - 1)), label="reachable")
    message = stack.encrypt(b"payload", keys=Quorum.of(k, groups_of(n)), context={"a": "b"})
    keys = [f"local://{NAMES[i]}" for i in sorted(reachable)] or ["local://spare"]
    if len(reachable) >= k:
        assert stack.decrypt(message, keys=keys) == b"payload"
    else:
        with pytest.raises(DecryptionError) as caught:
            stack.decrypt(message, keys=keys)
        if k > 1:
            reached = ", ".join(f"g{i + 1}" for i in sorted(reachable)) or "none"
            assert (
                f"needs key shares from {k} of its {n} key groups; "
                f"reached {len(reachable)} ({reached})"
            ) in str(caught.value)


def test_the_header_shows_groups_and_threshold_without_a_key(stack: KeyStack) -> None:
    quorum = Quorum.of(
        2, {"aws": ["local://k0"], "gcp": ["local://k1", "local://k2"], "hsm": ["local://k3"]}
    )
    info = stack.inspect(stack.encrypt(b"x", keys=quorum))
    assert info.key_groups is not None
    assert info.key_groups.threshold == 2
    assert info.key_groups.groups == ("aws", "gcp", "hsm")
    assert info.to_dict()["key_groups"] == {
        "threshold": 2,
        "groups": ["aws", "gcp", "hsm"],
        "readable_by_aws_encryption_sdk": False,
    }
    assert [(r.provider_id, r.group, r.share_index, r.key) for r in info.recipients] == [
        (PROVIDER_ID, "aws", 1, "k0:1"),
        (PROVIDER_ID, "gcp", 2, "k1:1"),
        (PROVIDER_ID, "gcp", 2, "k2:1"),
        (PROVIDER_ID, "hsm", 3, "k3:1"),
    ]


def test_any_key_of_a_group_brings_its_share_and_later_groups_are_not_asked(
    stack: KeyStack,
) -> None:
    quorum = Quorum.of(
        2, {"a": ["local://k0"], "b": ["local://k1", "local://k2"], "c": ["local://k3"]}
    )
    message = stack.encrypt(b"secret", keys=quorum, signed=True)
    assert stack.decrypt(message, keys=["local://k2", "local://k3"]) == b"secret"
    assert stack.decrypt(message, keys=["local://k0", "local://k1"]) == b"secret"


def test_threshold_one_is_todays_multi_recipient_message(stack: KeyStack) -> None:
    message = stack.encrypt(b"x", keys=Quorum.of(1, {"a": ["local://k0"], "b": ["local://k1"]}))
    info = stack.inspect(message)
    assert info.key_groups is None
    assert [r.provider_id for r in info.recipients] == ["aureus-local", "aureus-local"]
    assert stack.decrypt(message, keys=["local://k1"]) == b"x"


def test_bad_groups_are_refused_before_any_key_is_used() -> None:
    with pytest.raises(ConfigError, match="in key groups 'a' and 'b'"):
        Quorum.of(2, {"a": ["local://k0"], "b": ["local://k0?version=1"]})
    with pytest.raises(ConfigError, match="threshold of 3 of 2"):
        Quorum.of(3, {"a": ["local://k0"], "b": ["local://k1"]})
    with pytest.raises(ConfigError, match="has no keys"):
        Quorum.of(1, {"a": []})
    with pytest.raises(ConfigError, match="group name"):
        Quorum.of(1, {"a,b": ["local://k0"]})


def test_config_key_groups(tmp_path: Path) -> None:
    config = tmp_path / "aureus.toml"
    config.write_text(
        "[stack]\nthreshold = 2\n[stack.key_groups]\n"
        'one = ["local://k0"]\ntwo = ["local://k1"]\nthree = ["local://k2"]\n'
        f'[providers.local]\nkeystore = "{tmp_path / "ks"}"\n'
    )
    with KeyStack.from_config(config) as stack:
        for name in ("k0", "k1", "k2"):
            stack.import_key(name, "aes-256", raw=os.urandom(32))
        message = stack.encrypt(b"configured")
        info = stack.inspect(message)
        assert info.key_groups is not None
        assert info.key_groups.threshold == 2
        assert stack.decrypt(message) == b"configured"
        assert stack.decrypt(message, keys=["local://k0", "local://k2"]) == b"configured"
        with pytest.raises(DecryptionError, match=r"reached 1 \(two\)"):
            stack.decrypt(message, keys=["local://k1"])
    config.write_text(
        '[stack]\nwrapping_keys = ["local://k0"]\nthreshold = 1\n[stack.key_groups]\na = ["local://k1"]\n'
    )
    with pytest.raises(ConfigError, match="either wrapping_keys or key_groups"):
        KeyStack.from_config(config)
    config.write_text("[stack]\nthreshold = 2\n")
    with pytest.raises(ConfigError, match="threshold needs"):
        KeyStack.from_config(config)


def test_rewrap_changes_groups_and_threshold_with_a_fresh_split(stack: KeyStack) -> None:
    old = stack.encrypt(b"rewrapped", keys=Quorum.of(2, groups_of(3)), context={"p": "q"})
    new = stack.rewrap(
        old, to_keys=Quorum.of(3, {"x": ["local://k4"], "y": ["local://k5"], "z": ["local://k6"]})
    )
    before, after = stack.inspect(old), stack.inspect(new)
    assert after.key_groups is not None
    assert after.key_groups.threshold == 3
    assert after.message_id != before.message_id
    assert after.context == before.context
    old_split = {r.key for r in before.recipients}
    assert not old_split & {r.key for r in after.recipients}
    assert stack.decrypt(new, keys=["local://k4", "local://k5", "local://k6"]) == b"rewrapped"
    with pytest.raises(DecryptionError, match="reached 2"):
        stack.decrypt(new, keys=["local://k4", "local://k5", "local://k0", "local://k1"])
    # and back to a single key
    single = stack.rewrap(new, to_keys=["local://k7"])
    assert stack.inspect(single).key_groups is None
    assert stack.decrypt(single, keys=["local://k7"]) == b"rewrapped"


# -- hostile headers, built byte by byte ------------------------------------------


def _binding_fields(edk: EncryptedDataKey) -> tuple[int, int, int, int, bytes, str, int]:
    """(version, k, n, index, split ID, group, offset of the inner part) from provider info."""
    info = edk.provider_info
    name_length = info[20]
    return (
        info[0],
        info[1],
        info[2],
        info[3],
        info[4:20],
        info[21 : 21 + name_length].decode(),
        21 + name_length,
    )


def _relabel(
    edk: EncryptedDataKey,
    *,
    k: int | None = None,
    index: int | None = None,
    group: str | None = None,
    split_id: bytes | None = None,
) -> EncryptedDataKey:
    version, old_k, n, old_index, old_split, old_group, inner = _binding_fields(edk)
    name = (group or old_group).encode()
    info = bytes((version, k or old_k, n, index or old_index)) + (split_id or old_split)
    info += bytes((len(name),)) + name + edk.provider_info[inner:]
    return EncryptedDataKey(
        provider_id=edk.provider_id, provider_info=info, ciphertext=edk.ciphertext
    )


def _with_edks(message: bytes, edks: list[EncryptedDataKey]) -> bytes:
    """``message`` with its encrypted data keys replaced (header re-serialized field by field)."""
    header, tag_at = forge.read_header(message)
    context = forge.serialize_context(dict(header.context.items()))
    body = forge.header_body(
        header.suite.suite_id,
        header.message_id,
        context,
        edks,
        header.frame_length,
        header.suite_data,
    )
    return body + message[tag_at:]


def test_a_share_from_another_message_is_refused(stack: KeyStack) -> None:
    # The holder of g1 wants the victim's data key but holds no other group's key.
    # The victim's stack decrypts other messages for them (a service, say); a
    # share the attacker lifts from another message must not be accepted in
    # place of the victim's.
    quorum = Quorum.of(2, groups_of(3))
    victim = stack.encrypt(b"victim", keys=quorum)
    other = stack.encrypt(b"other", keys=quorum)
    edks = list(forge.read_header(victim)[0].encrypted_data_keys)
    foreign = parse(forge.read_header(other)[0].encrypted_data_keys[2])
    # the foreign share's own wrap (inner provider info and ciphertext), under the
    # victim's binding (index 3, group g3, the victim's split ID)
    edks[2] = encode(parse(edks[2]).binding, foreign.inner)
    spliced = _with_edks(victim, edks)
    with pytest.raises(
        QuorumNotReached, match=r"reached 1 \(g1\); not reached: g2: .*; g3: "
    ) as caught:
        stack.decrypt(spliced, keys=["local://k0", "local://k2"])
    # the stack keeps the type and what it says, so a caller can tell who is missing
    assert (caught.value.reached, caught.value.missing) == (("g1",), ("g2", "g3"))
    # and the foreign share with its own binding is a share of another split
    edks[2] = encode(foreign.binding, foreign.inner)
    with pytest.raises(DecryptionError, match="different splits"):
        stack.decrypt(_with_edks(victim, edks), keys=["local://k0", "local://k2"])


def test_a_duplicated_share_never_counts_twice(stack: KeyStack) -> None:
    message = stack.encrypt(b"two needed", keys=Quorum.of(2, groups_of(3)))
    edks = list(forge.read_header(message)[0].encrypted_data_keys)
    # the holder of g1 copies its share, once verbatim and once relabelled as g2's
    with pytest.raises(DecryptionError, match="carries shares for 1"):
        stack.decrypt(_with_edks(message, [edks[0], edks[0], edks[0]]), keys=["local://k0"])
    relabelled = _relabel(edks[0], index=2, group="g2")
    with pytest.raises(DecryptionError, match=r"reached 1 \(g1\)"):
        stack.decrypt(_with_edks(message, [edks[0], relabelled, edks[2]]), keys=["local://k0"])


def test_a_lowered_threshold_is_refused(stack: KeyStack) -> None:
    message = stack.encrypt(b"two needed", keys=Quorum.of(2, groups_of(3)))
    edks = [_relabel(e, k=1) for e in forge.read_header(message)[0].encrypted_data_keys]
    with pytest.raises(
        DecryptionError, match=r"needs key shares from 1 of its 3 key groups; reached 0"
    ):
        stack.decrypt(_with_edks(message, edks), keys=["local://k0"])


def test_an_ordinary_key_added_to_a_split_message_is_refused(stack: KeyStack) -> None:
    # The holder of g1's key writes a message of their own: a data key they chose,
    # wrapped under their key as an ordinary encrypted data key, next to the shares
    # of a genuine 2-of-3 message. With key groups, their key alone must not open it.
    data_key = os.urandom(32)
    context = EncryptionContext({"tenant": "acme"})
    ordinary = stack.provider("local").wrap(KeyRef.parse("local://k0"), data_key, context)
    genuine = stack.encrypt(b"two needed", keys=Quorum.of(2, groups_of(3)), context=context)
    shares = list(forge.read_header(genuine)[0].encrypted_data_keys)

    def forged(edks: list[EncryptedDataKey]) -> bytes:
        return forge.unsigned_message(
            data_key=data_key,
            message_id=os.urandom(32),
            context=forge.serialize_context(dict(context.items())),
            edks=edks,
            plaintext=b"forged",
        )

    # control: the attacker's bytes are a well-formed message their key opens
    assert stack.decrypt(forged([ordinary.encrypted]), keys=["local://k0"]) == b"forged"
    for edks in ([*shares, ordinary.encrypted], [ordinary.encrypted, *shares]):
        with pytest.raises(DecryptionError, match="mixes key shares"):
            stack.decrypt(forged(edks), keys=["local://k0"])


def test_one_key_cannot_stand_for_several_groups(stack: KeyStack) -> None:
    """The holder of g1's key alone writes a "2 of 3" message of their own, every share
    wrapped under that key with its correct binding. Before, it decrypted like a genuine
    k-of-n message (configured groups or strict keys alike); now one key opens one group's
    share only, so the quorum is not reached."""
    from aureus_core.envelope import shamir
    from aureus_core.envelope.quorum import _binding, encode, share_context

    provider = stack.provider("local")
    k0 = KeyRef.parse("local://k0")
    data_key = os.urandom(32)
    split_id = os.urandom(16)
    context = EncryptionContext({"tenant": "acme"})
    shares = shamir.split(data_key, 2, 3)
    edks = []
    for index, name in enumerate(("g1", "g2", "g3"), start=1):
        binding = _binding(2, 3, index, split_id, name)
        wrapped = provider.wrap(k0, bytes(shares[index - 1]), share_context(context, binding))
        edks.append(encode(binding, wrapped.encrypted))
    forged = forge.unsigned_message(
        data_key=data_key,
        message_id=os.urandom(32),
        context=forge.serialize_context(dict(context.items())),
        edks=edks,
        plaintext=b"authored by the g1 key alone",
    )
    for keys in (None, ["local://k0"]):
        with pytest.raises(QuorumNotReached) as refused:
            stack.decrypt(forged, keys=keys)
        assert "reached 1 (g1)" in str(refused.value)
        assert (
            "local://k0 already opened the share of group 'g1': one key counts for one group only"
        ) in str(refused.value)
    # A genuine message, one key per group, still opens.
    genuine = stack.encrypt(b"two needed", keys=Quorum.of(2, groups_of(3)), context=context)
    assert stack.decrypt(genuine) == b"two needed"


def test_a_cached_key_group_data_key_is_dropped_when_any_shares_key_is_disabled(
    tmp_path: Path,
) -> None:
    """A decrypted key-group message's cached data key stands for every share's key.

    Before, the entry named only the first share's key version: disabling the second
    group's key left it in the cache, and the message kept decrypting (for up to the
    cache's max_age) although two groups could no longer be reached.
    """
    config = {
        "providers": {"local": {"keystore": str(tmp_path / "ks")}},
        "cache": {"backend": "memory"},
    }
    with KeyStack.from_dict(config) as stack:
        for name in ("a", "b"):
            stack.create_key(name, "aes-256")
        stack.rotate_key("local://b")  # version 1 of b is no longer current: it may be disabled
        message = stack.encrypt(
            b"two-person secret",
            keys=Quorum.of(2, {"g1": ["local://a"], "g2": ["local://b?version=1"]}),
        )
        assert stack.decrypt(message) == b"two-person secret"  # the cache is filled here
        stack.set_version_state("local://b?version=1", "disabled")
        with pytest.raises(QuorumNotReached):
            stack.decrypt(message)
        # The first share's key, disabled instead, drops it the same way.
        stack.set_version_state("local://b?version=1", "enabled")
        assert stack.decrypt(message) == b"two-person secret"
        stack.rotate_key("local://a")
        stack.set_version_state("local://a?version=1", "disabled")
        with pytest.raises(QuorumNotReached):
            stack.decrypt(message)


def test_key_group_messages_bypass_the_data_key_cache(tmp_path: Path) -> None:
    config = {
        "stack": {"threshold": 2, "key_groups": {"a": ["local://k0"], "b": ["local://k1"]}},
        "providers": {"local": {"keystore": str(tmp_path / "ks")}},
        "cache": {"backend": "memory"},
    }
    with KeyStack.from_dict(config) as stack:
        for name in ("k0", "k1"):
            stack.import_key(name, "aes-256", raw=os.urandom(32))
        first, second = stack.encrypt(b"one"), stack.encrypt(b"two")
        split_ids = {
            parse(edk).split_id
            for message in (first, second)
            for edk in forge.read_header(message)[0].encrypted_data_keys
        }
        assert len(split_ids) == 2
        assert stack.decrypt(second) == b"two"
