"""Mutation testing of the security-critical modules with mutmut, one module group at a time.

mutmut names a mutant after its file's path (``plugins/aureus_local/keystore.py`` would become
``plugins.aureus_local.keystore``) while the tests import the flat package
(``aureus_local.keystore``), so every run happens in a staging folder where the core and each
first-party plugin sit side by side at the top, as they are on ``sys.path`` once installed.
mutmut first runs the group's tests once to record which tests reach which function, then runs
each mutant against only those tests.

Usage: ``python tools/mutation.py [GROUP ...] [--max-children N]`` (no group: every group).
Prints the score per group and each surviving mutant with file:line and the changed line, and
writes ``.mutation/<group>.json``.  Known equivalent mutants (``EQUIVALENT`` below) are counted
apart, not as survivors.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGING = ROOT / ".mutation"
PACKAGES = ("aureus_core", *(p.name for p in sorted((ROOT / "plugins").glob("aureus_*"))))


@dataclass(frozen=True)
class Group:
    """Source files to mutate and the test paths that reach them."""

    files: tuple[str, ...]
    tests: tuple[str, ...]
    # Names of tests left out (pytest ``-k "not NAME"``): slow tests whose checks others cover.
    deselect: tuple[str, ...] = field(default=())
    functions: tuple[str, ...] = field(default=())
    """Only these functions and methods are mutated; empty: all of ``files``.

    A name is bare (``wrap``: in every file of the group that defines one) or qualified
    by its file's stem (``imports._path``: in that file only).
    """
    exclude_functions: tuple[str, ...] = field(default=())
    """Every function and method of ``files`` but these (named as in ``functions``)."""

    def __post_init__(self) -> None:
        defined = defined_functions(self.files)
        known = {name for _, name in defined} | {f"{module}.{name}" for module, name in defined}
        unknown = sorted(set(self.functions + self.exclude_functions) - known)
        if unknown:
            raise ValueError(f"no such function in {', '.join(self.files)}: {', '.join(unknown)}")

    def mutates(self, function: str, module: str) -> bool:
        """Whether ``function`` of the file with stem ``module`` is in this group's scope."""
        if self.exclude_functions:
            return not _named(self.exclude_functions, function, module)
        return not self.functions or _named(self.functions, function, module)

    def covers(self, mutant: str) -> bool:
        """Whether a mutant (or mangled function name) of mutmut's is in this group's scope."""
        return self.mutates(function_of(mutant), module_of(mutant))

    def patterns(self) -> list[str]:
        """Name patterns of the mutated functions for mutmut (none: all of ``files``)."""
        if not self.functions and not self.exclude_functions:
            return []
        return [
            pattern
            for module, name in defined_functions(self.files)
            if self.mutates(name, module)
            for pattern in (
                f"*.{module}.x\u01c1*\u01c1{name}",
                f"*.{module}.x\u01c1*\u01c1{name}__mutmut_*",
                f"*.{module}.x_{name}",
                f"*.{module}.x_{name}__mutmut_*",
            )
        ]


def _named(entries: tuple[str, ...], function: str, module: str) -> bool:
    return function in entries or f"{module}.{function}" in entries


def defined_functions(files: tuple[str, ...]) -> list[tuple[str, str]]:
    """``(file stem, name)`` of the top-level functions and methods of repository files.

    These are what mutmut mutates (a nested function belongs to the one around it).
    """
    found: list[tuple[str, str]] = []
    for repo_file in files:
        module = Path(repo_file).stem
        tree = ast.parse((ROOT / repo_file).read_text())
        for top in tree.body:
            for node in top.body if isinstance(top, ast.ClassDef) else [top]:
                if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                if (module, node.name) not in found:
                    found.append((module, node.name))
    return found


def module_of(mutant: str) -> str:
    """The module's last part in a mutmut mutant name (``mod.xǁClassǁname__mutmut_3``)."""
    return mutant.rsplit(".", 1)[0].rsplit(".", 1)[-1]


def function_of(mutant: str) -> str:
    """The function or method name in a mutmut mutant name (``mod.xǁClassǁname__mutmut_3``)."""
    func = mutant.rsplit(".", 1)[-1].split("__mutmut_")[0]
    return func.split("\u01c1")[-1] if "\u01c1" in func else func.removeprefix("x_")


# Paths are as in the repository; tests run with the repository's pytest settings.
GROUPS: dict[str, Group] = {
    "envelope": Group(
        files=(
            "aureus_core/envelope/header.py",
            "aureus_core/envelope/keys.py",
            "aureus_core/envelope/frames.py",
            "aureus_core/envelope/message.py",
        ),
        tests=(
            "tests/core/envelope/test_roundtrip.py",
            "tests/core/envelope/test_tampering.py",
            "tests/core/envelope/test_forgery.py",
            "tests/core/envelope/test_suites.py",
            "tests/core/envelope/test_interop.py",
            "tests/core/envelope/test_parse_limits.py",
            "tests/core/envelope/test_writer_contract.py",
            "tests/core/envelope/test_required_context.py",
            "tests/core/envelope/test_read_paths.py",
        ),
    ),
    "signature": Group(
        files=("aureus_core/signature.py", "plugins/aureus_local/signing.py"),
        tests=(
            "tests/plugins/aureus_local/test_local_signing.py",
            "tests/core/test_signature_record.py",
            "tests/core/test_stack.py",
        ),
    ),
    # The Redis tests reach the shared-backend paths (reserve, claim, key_changed); they
    # skip without contrib/aureus-redis installed and a redis-server on PATH.
    "cache": Group(
        files=("aureus_core/cache.py",),
        tests=("tests/core/test_cache.py", "tests/contrib/aureus_redis"),
    ),
    # The chain's format and verifier live in the core, its writer is the jsonl sink;
    # plugins/aureus_builtin/audit_chain.py only re-exports the verifier's names.
    "audit": Group(
        files=(
            "aureus_core/audit/chain.py",
            "plugins/aureus_builtin/jsonl_sink.py",
            "plugins/aureus_builtin/audit_sinks.py",
        ),
        tests=(
            "tests/core/test_audit_chain.py",
            "tests/plugins/aureus_builtin/test_audit_sinks.py",
            "tests/plugins/aureus_builtin/test_jsonl_sink.py",
        ),
        # Four processes appending together: 8 s each under mutmut, for every mutant of the
        # writer. The threaded contract tests keep exercising the lock.
        deselect=("test_processes_appending_together_keep_one_chain",),
    ),
    # The local keystore, split by file: one run of all of it takes hours at one child.
    "local-crypto": Group(
        files=(
            "plugins/aureus_local/sealing.py",
            "plugins/aureus_local/wrapping.py",
            "plugins/aureus_local/macs.py",
        ),
        tests=("tests/plugins/aureus_local",),
    ),
    "local-state": Group(
        files=("plugins/aureus_local/generations.py", "plugins/aureus_local/atomic.py"),
        tests=("tests/plugins/aureus_local",),
    ),
    # The keystore's security checks only: reading, verifying and writing the document, the
    # pins and the generation floor, unlocking, the master key file, the wrap limit, and the
    # parsing of everything read before the MAC is checked.  The subprocess tests (kill -9,
    # CLI, the official SDK) are left out: each surviving mutant would pay their ~30 s.
    "local-store": Group(
        files=("plugins/aureus_local/keystore.py", "plugins/aureus_local/document.py"),
        tests=(
            *(
                f"tests/plugins/aureus_local/test_local_{name}.py"
                for name in (
                    "conformance",
                    "keys",
                    "lifecycle",
                    "macs",
                    "oracle",
                    "passphrase",
                    "properties",
                    "rollback",
                    "storage",
                    "wrap_limit",
                    "wrapped_import",
                    "wrapping",
                    "keystore_admin",
                )
            ),
            "tests/plugins/aureus_local/test_raw_keys.py",
        ),
        deselect=("test_cli_import_describe_and_inspect",),
        functions=(
            "snapshot",
            "material",
            "reserve_wrap",
            "_take_wrap",
            "_own_wraps",
            "_write",
            "_commit",
            "_read_file",
            "_adopt",
            "_verify",
            "_check_identity",
            "_check_generation",
            "_seen_in_process",
            "_record_generation",
            "_pinned",
            "_unlock",
            "_new_document",
            "_read_master_key",
            "_read_or_create_master_key",
            "_check_adopted_master_key",
            "_replace",
            "_ensure_directory",
            "_locked",
            "load_json",
            "parse_header",
            "_object",
            "_fields",
            "_int",
            "_bytes",
            "_no_duplicates",
            "_is_hex_id",
        ),
    ),
    # The local provider: the entry points that choose the trusted key and accept key
    # material (wrap, unwrap, sign, verify, owner_of, the raw keyring keys, imports), and
    # what they call in naming, material and rawkeys.  The subprocess tests are left out
    # (see local-store); the naming memos are emptied around each test (conftest.py).
    "local-provider": Group(
        files=(
            "plugins/aureus_local/provider.py",
            "plugins/aureus_local/rawkeys.py",
            "plugins/aureus_local/imports.py",
            "plugins/aureus_local/material.py",
            "plugins/aureus_local/naming.py",
        ),
        tests=tuple(
            f"tests/plugins/aureus_local/test_{name}.py"
            for name in (
                "local_conformance",
                "local_keys",
                "local_lifecycle",
                "local_macs",
                "local_oracle",
                "local_passphrase",
                "local_properties",
                "local_rollback",
                "local_signing",
                "local_signing_der",
                "local_storage",
                "local_wrap_limit",
                "local_wrapped_import",
                "local_wrapping",
                "raw_keys",
                "raw_keyring_interop",
            )
        ),
        deselect=("test_cli_import_describe_and_inspect",),
        functions=(
            # provider.py
            "wrap",
            "unwrap",
            "sign",
            "verify",
            "owner_of",
            "public_key",
            "mac",
            "import_key",
            "import_parameters",
            "_import_wrapped",
            "_import_raw",
            "_raw_owner",
            "_unwrap_raw",
            "_now",
            "_check_spec",
            "_locate",
            "_version",
            "_signing_key",
            "_private_key",
            "_refuse_aes",
            "_pinned",
            "_refuse_raw_versions",
            "_check_usable",
            "set_version_state",
            "set_min_decryption_version",
            "destroy_version",
            # rawkeys.py
            "parse",
            "scheme",
            "check_text",
            "keyring_from_options",
            "stored_material",
            "sealed_sizes",
            "public_key_pem",
            "names",
            "_public",
            "_stored_private",
            "_is_public_pem",
            "_load_private",
            "_load_public",
            # imports.py
            "_unknown",
            "imports._path",  # plugin.py has one too: local-admin's
            "create",
            "open",
            "claim",
            "sweep",
            # material.py
            "check_supported",
            "generate",
            "from_import",
            "private_key",
            "_load_pem",
            "_stored_form",
            "_p256_scalar",
            # naming.py
            "is_valid_name",
            "check_name",
            "parse_version",
        ),
    ),
    "rotation": Group(
        files=("aureus_core/rotation.py",),
        tests=("tests/core/test_rotation.py",),
    ),
    "context": Group(
        files=("aureus_core/context.py", "aureus_core/keyref.py"),
        tests=("tests/core/test_context.py", "tests/core/test_keyref.py"),
    ),
}


# The rest of the keystore (local-store measures its security functions only), in two runs
# that each finish within an hour at one child.  First what decides which key version is used
# and whether a limit holds: the parse of keys and versions after the MAC check, the
# document's records and its JSON, the usage counters and rotation.
_STORE_REST = (
    "used",
    "version",
    "with_version",
    "replacing",
    "with_key",
    "to_json",
    "render",
    "parse_document",
    "_key_json",
    "_parse_key",
    "_parse_keyring",
    "_parse_version",
    "_no_float",
    "_reason",
    "_b64",
    "_time",
    "_parse_time",
    "aead",
    "loaded",
    "decrypted",
    "record_use",
    "unflushed_use",
    "flush_usage",
    "_flush_usage_quietly",
    "_take_usage",
    "_settle_usage",
    "_release_wraps_quietly",
    "_with_usage",
    "add_version",
    "update_key",
    "_update",
    "not_found",
    "_seal_version",
)
GROUPS["local-store-rest"] = Group(
    files=GROUPS["local-store"].files,
    tests=GROUPS["local-store"].tests,
    deselect=GROUPS["local-store"].deselect,
    functions=_STORE_REST,
)
# Then everything neither run mutates: the options, key creation, passphrase change,
# describing and listing, the error builders and temporary files.
GROUPS["local-store-admin"] = Group(
    files=GROUPS["local-store"].files,
    tests=GROUPS["local-store"].tests,
    deselect=GROUPS["local-store"].deselect,
    exclude_functions=GROUPS["local-store"].functions + _STORE_REST,
)

# The rest of the local provider and its plugin module: the options a config gives, the
# keystore's administration through the provider (create, describe, list, rotate, change the
# passphrase, close) and the reference and description helpers.
_PROVIDER_FILES = (*GROUPS["local-provider"].files, "plugins/aureus_local/plugin.py")
GROUPS["local-admin"] = Group(
    files=_PROVIDER_FILES,
    tests=(
        *GROUPS["local-provider"].tests,
        "tests/plugins/aureus_local/test_local_plugin.py",
        "tests/plugins/aureus_local/test_local_keystore_admin.py",
    ),
    deselect=GROUPS["local-provider"].deselect,
    exclude_functions=GROUPS["local-provider"].functions,
)


@dataclass(frozen=True)
class Equivalent:
    """Survivors that cannot change behaviour: a file, the mutated line's pattern, and why."""

    path: str
    after: str
    """A regular expression the line after the mutation matches (``search``)."""
    reason: str
    before: str = ""
    """A regular expression the line before the mutation matches, to narrow ``after``."""


_BYTEORDER = "Python 3.11+ defaults byteorder to 'big', the value removed (3.10 raises TypeError)"
_INJECTIVE = (
    "the cache-entry key needs only distinct inputs to give distinct keys; another width, "
    "label or separator keeps every field framed"
)

_FOUND = (
    "reserve_wrap is called for a key version the caller just found, and no write removes a "
    "key or a version (an older document without it is refused as a rollback)"
)

_RAW_ONE_VERSION = (
    "a raw keyring key has one version, its current one, which can be neither disabled, "
    "destroyed nor put below the minimum (the parser refuses a second version, a current "
    "version that is not enabled and a minimum above the current): the usability check "
    "never refuses it"
)

# Listed once, with the reason, in docs/testing.md ("Equivalent mutants").
EQUIVALENT: tuple[Equivalent, ...] = (
    Equivalent("*", r"\.to_bytes\(\d+, \)", _BYTEORDER),
    Equivalent("*", r"int\.from_bytes\([^,()]+(\([^()]*\))?, \)", _BYTEORDER),
    Equivalent("*", r'\.(de|en)code\("(ASCII|UTF-8)"\)', "codec names are case-insensitive"),
    Equivalent(
        "aureus_core/envelope/message.py",
        r"while filled <= len\(buffer\)|if \(current == frame_length\) or True",
        "one more read at the end of the input, or into an empty view, returns 0 again",
    ),
    Equivalent(
        "aureus_core/envelope/message.py",
        r"if self\._hash is None and self\._signing_key is None",
        "the writer refuses a signing key without a signed suite and the reverse, so the "
        "hash and the key are both present or both absent",
    ),
    Equivalent(
        "aureus_core/envelope/message.py",
        r"^position [-+]?= writer\.(single_block_into|frame_into)\("
        r"data(\[regular \* frame_length :\])?, view\[position:\](, final=True)?\)$",
        "the last write's position is not read again: the buffer's size was fixed beforehand",
    ),
    Equivalent(
        "aureus_core/envelope/message.py",
        r"^signed = self\._signed if \(self\._hash is not None\) or True else None$",
        "_signed does nothing without a hash: calling it for every frame is slower, not different",
    ),
    Equivalent(
        "aureus_core/envelope/message.py",
        r"final=None\)$",
        "None is as false as False for frame_into's final flag",
    ),
    Equivalent(
        "aureus_core/envelope/message.py",
        r"if \((signed|size is not None|out is None)\) (or True|and False) else None$",
        "choosing the scratch buffer for every message is slower, not different: same bytes out",
    ),
    Equivalent(
        "aureus_core/envelope/header.py",
        r"read_up_to\(max\(1, _PEEK - len\(seen\)\)\)|"
        r"read_up_to\(max\(0, _PEEK \+ len\(seen\)\)\)",
        "describe_start looks at the first 16 bytes only; reading more changes nothing it says",
    ),
    Equivalent(
        "aureus_core/envelope/header.py",
        r'struct\.pack\(">(bi|bibi)"',
        "content type (1 or 2) and frame length (at most 2**31 - 1) fit signed fields alike",
    ),
    Equivalent(
        "aureus_core/envelope/header.py",
        r'^text = None$|ch in "XX\\t\\r\\nXX"',
        "None is as empty as the empty text it replaces; X is printable already",
    ),
    Equivalent(
        "aureus_core/envelope/keys.py",
        r'^return (bytes\(data_key\)|encryption_key), b"XXXX"$',
        "a non-committing suite's commitment is never stored (format 1) nor checked",
    ),
    Equivalent(
        "aureus_core/envelope/keys.py",
        r"\(line deleted\)",
        "HKDF's salt defaults to None, the value deleted",
        before=r"^salt=None,$",
    ),
    Equivalent(
        "aureus_core/envelope/header.py",
        r'_not_a_message\(reader, b"XXXX"\.join\(pieces\)\)',
        "after a first byte of 01 or 02 the input is binary, and only its first byte is named",
    ),
    Equivalent(
        "aureus_core/envelope/header.py",
        r"if \(suite\.suite_data_length\) or True else",
        "taking 0 bytes of suite data gives the same empty bytes",
    ),
    Equivalent(
        "aureus_core/envelope/message.py",
        r"^self\._policy = None$",
        "the reader applies its commitment policy in __init__ and never reads it again",
    ),
    Equivalent(
        "aureus_core/envelope/message.py",
        r"^(size|out) = None$",
        "read_all's exact-size buffer is an optimisation: without it the frames are "
        "decrypted into a scratch buffer, with the same checks and the same result",
    ),
    Equivalent(
        "aureus_core/envelope/header.py",
        r"^data = None$"
        r"|^if data is not None and len\(data\) (\+ start >= 3|- start > 3|- start >= 4) "
        r"and data\[start\] == 2:$"
        r"|^suite = (None|SUITES\.get\((None|_U16\.unpack_from\(data, \)\[0\])\))$"
        r"|^if suite is not None and suite\.message_version == 3:$",
        "the direct entry for a version-2 header in memory is an optimisation: skipped, the "
        "stream parser's start reads the same version and suite and hands the rest to the same "
        "offset parser (test_read_paths.py holds both to one verdict)",
    ),
    Equivalent(
        "aureus_core/envelope/header.py",
        r'if suite\.suite_data_length else b"XXXX"$',
        "every format-2 suite commits, so its suite data (the commitment) is never empty",
    ),
    Equivalent(
        "aureus_core/envelope/message.py",
        r"^if pos (- 4|\+ 5) > size:$|^if pos \+ 4 >= size:$|^if body >= size:$"
        r"|^if number != sequence or end >= size or position \+ length > capacity:$"
        r"|^if number != sequence or content > length (or end > size and|and end > size or) "
        r"position \+ content > capacity:$"
        r"|^if number != sequence or content > length or end > size or "
        r"position - content > capacity:$",
        "defence in depth: _plaintext_size fixed the frame count and the final frame's length "
        "from the message's size first, so a frame that runs past the end, a final frame "
        "longer than the room left or than the output, fails these checks and another one "
        "alike (a tag, the end-of-message check)",
    ),
    Equivalent(
        "aureus_core/envelope/message.py",
        r"frame_size\((self\.header\.frame_length|0), suite\.iv_length, \)",
        "the tag length's default (16) is every suite's tag length",
    ),
    Equivalent(
        "aureus_core/cache.py",
        r".",
        "_positive builds the policy validators when the module is imported, before "
        "mutmut's workers switch to a mutant; test_policy_numbers_* pin them",
        before=r"0 < value <= limit|must be a number above 0",
    ),
    Equivalent(
        "aureus_core/cache.py", r'b"(XX)?(encrypt|decrypt|ENCRYPT|DECRYPT)(XX)?",', _INJECTIVE
    ),
    Equivalent(
        "aureus_core/cache.py", r"\(line deleted\)", _INJECTIVE, before=r'^b"(en|de)crypt",$'
    ),
    Equivalent("aureus_core/cache.py", r"to_bytes\((3|9), \"big\"\)", _INJECTIVE),
    Equivalent("aureus_core/cache.py", r'b"XXXX"\.join|"XX\\nXX"\.join', _INJECTIVE),
    Equivalent(
        "aureus_core/cache.py",
        r"^return True, cached$",
        "_claim's first element says whether this process holds the claim, and lookup reads it "
        "only when no cached key came back: with one, it returns at once and releases nothing",
        before=r"^return False, cached$",
    ),
    Equivalent(
        "aureus_core/cache.py",
        r"^if time\.monotonic\(\) > deadline:$",
        "the wait ends one poll (5 ms) later only if the clock reads the deadline exactly; the "
        "outcome, a fill of this process's own without the claim, is the same",
    ),
    Equivalent(
        "aureus_core/cache.py",
        r"^first = self\.take\(None, plaintext_bytes=plaintext_bytes, count_miss=False\)$",
        "the lock-free first look only spares a hit the entry's flight lock: looking up no "
        "entry there, the hit is taken under that lock, with the same counts and checks",
    ),
    Equivalent(
        "aureus_core/cache.py",
        r"^claimed = None$",
        "None is as false as False for the flag that says this process holds the claim",
    ),
    # -- local (local-crypto, local-state, local-store) --
    Equivalent(
        "plugins/aureus_local/wrapping.py",
        r'head\.decode\((errors="strict"|"utf-8", |"UTF-8", errors="strict")\)',
        "decode's defaults are UTF-8 and strict, and codec names are case-insensitive",
    ),
    Equivalent(
        "plugins/aureus_local/wrapping.py",
        r'text\.partition\(":"\)',
        "a valid name holds no ':', so splitting at the first or the last colon gives an "
        "invalid name or an invalid version alike whenever the two differ",
    ),
    Equivalent(
        "plugins/aureus_local/wrapping.py",
        r"if not sep and version is None or not is_valid_name\(name\)",
        "without a ':' rpartition leaves the name empty, which is never valid",
    ),
    Equivalent(
        "plugins/aureus_local/wrapping.py",
        r"if len\(head\) < _MEMO_MAX_HEAD",
        "the memoised parse is the same function; every valid head (128 + 1 + 10 bytes at "
        "most) is below 160 either way",
    ),
    Equivalent(
        "plugins/aureus_local/macs.py",
        r"HKDF\(algorithm=hashes\.SHA256\(\), length=KEY_SIZE, info=",
        "HKDF's salt defaults to None, the value deleted",
    ),
    Equivalent(
        "plugins/aureus_local/sealing.py",
        r"HKDF\(algorithm=hashes\.SHA256\(\), length=32, info=",
        "HKDF's salt defaults to None, the value deleted",
    ),
    Equivalent(
        "plugins/aureus_local/generations.py",
        r"^stale\.unlink\(missing_ok=(None|False)\)$",
        "only a holder of the state file's lock removes its temporary files, and the caller "
        "holds it: a file the glob found is still there",
    ),
    Equivalent(
        "plugins/aureus_local/generations.py",
        r"secrets\.token_hex\((None|9)\)",
        "a temporary name needs only to be unique and to match the stale-file pattern; any "
        "length does",
    ),
    Equivalent(
        "plugins/aureus_local/keystore.py",
        r'^owner = getattr\(os, "geteuid", \)$',
        "every POSIX os has geteuid; the default is for Windows, where the owner is not checked",
    ),
    Equivalent(
        "plugins/aureus_local/keystore.py",
        r"^stored = None if \(record is None\) and False else record\.version\(version\)$|"
        r"^if record is None and stored is None:$",
        _FOUND,
    ),
    Equivalent(
        "plugins/aureus_local/keystore.py",
        r".",
        _FOUND,
        before=r"^raise self\.not_found\(name, version\)$",
    ),
    Equivalent(
        "plugins/aureus_local/keystore.py",
        r"^self\._wraps_left\[slot\] = self\._wraps_left\.get\(None, 0\) \+ granted - 1$",
        "a block is reserved only when the slot has no wrap left (checked under the write "
        "lock every reservation holds), so its count is 0 either way",
    ),
    Equivalent(
        "plugins/aureus_local/keystore.py",
        r"^and time\.monotonic\(\) <= self\._fresh_until$|"
        r"^and _WRITES\.get\(self\._path_text, (None|1)?\) == self\._writes_seen$|"
        r"^writes = _WRITES\.get\(self\._path_text, (None|1)?\)  # before the stat|"
        r"^self\._loaded = (None|_Loaded\(None, content, snapshot\)|"
        r"_Loaded\(signature, None, snapshot\))$",
        "the verified-document cache and its freshness check save a stat or a verification "
        "only: without them the file is read and verified again, with the same checks",
    ),
    Equivalent(
        "plugins/aureus_local/keystore.py",
        r"^signature = None$",
        "a loaded document without its file signature is read again and found equal: the "
        "signature saves that read only",
    ),
    Equivalent(
        "plugins/aureus_local/keystore.py",
        r'^carried = ""$',
        "a snapshot takes dict(cache or {}): an empty string is as empty a cache as None",
    ),
    Equivalent(
        "plugins/aureus_local/keystore.py",
        r"^key = file\.read\((None|MASTER_KEY_SIZE \+ 2)\)$",
        "reading 33 bytes only bounds the read: a file longer than 32 bytes is refused either way",
    ),
    Equivalent(
        "plugins/aureus_local/keystore.py",
        r"^write_new_file\(temp, secrets\.token_bytes\(None\)\)$",
        "secrets.token_bytes defaults to 32 bytes, the master key's size",
    ),
    Equivalent(
        "plugins/aureus_local/keystore.py",
        r"^_WRITES\[self\._path_text\] = _WRITES\.get\(self\._path_text, [01]\) [-+] [12]$",
        "the per-path write counter only has to change on every write: other keystore "
        "objects of the process recheck the file when it differs from what they saw",
    ),
    Equivalent(
        "plugins/aureus_local/keystore.py",
        r"^temp\.unlink\(missing_ok=(None|False)\)$",
        "in _read_or_create_master_key the temporary key exists when it is unlinked (written "
        "before the link, which leaves it); the same line in _replace is killed by "
        "test_a_keystore_write_that_fails_reports_its_own_error_and_changes_nothing",
        before=r"^temp\.unlink\(missing_ok=True\)$",
    ),
    Equivalent(
        "plugins/aureus_local/keystore.py",
        r"^written = None$",
        "None is as false as False for the flag that says the usage counters were written",
    ),
    Equivalent(
        "plugins/aureus_local/keystore.py",
        r"^cached = (None|self\._cache\.get\(None\))$|^self\._cache\[slot\] = None$",
        "the material cache saves a decryption only: without it the same material is "
        "decrypted again, with the same check",
    ),
    Equivalent(
        "plugins/aureus_local/keystore.py",
        r"^if version\.nonce is None and version\.ciphertext is None:$",
        "the parser refuses a version with one of nonce and ciphertext but not the other",
    ),
    Equivalent(
        "plugins/aureus_local/keystore.py",
        r"^if self\._take_wrap\(None\):$",
        "the same check is made again under the write lock: without this lock-free one each "
        "wrap only takes the lock",
    ),
    Equivalent(
        "plugins/aureus_local/keystore.py",
        r"_record_generation\(document\.keystore_id, found, quiet=None\)",
        "None is as false as False for the quiet flag",
    ),
    Equivalent(
        "plugins/aureus_local/sealing.py",
        r"allow_nan=(None|True)|ensure_ascii=True, \)",
        "a keystore document holds no floats (its parser refuses them), so allow_nan never applies",
    ),
    Equivalent(
        "plugins/aureus_local/sealing.py",
        r'separators=\(",", ":"\), allow_nan=False',
        "json.dumps's ensure_ascii defaults to True, the value deleted",
    ),
    # local-store-rest: the rest of plugins/aureus_local/keystore.py and document.py
    Equivalent(
        "plugins/aureus_local/document.py",
        r'check_text\(obj\["(namespace|key_name)"\], '
        r'(None|"XXkey (namespace|name)XX"|"KEY (NAMESPACE|NAME)")\)',
        "the label only words check_text's error, which _parse_keyring replaces with its own",
    ),
    Equivalent(
        "plugins/aureus_local/document.py",
        r"^return parsed\.astimezone\(None\)$",
        "every reader of a stored time converts it to UTC again (KeyMetadata, KeyVersion, the "
        "writer's _time) or compares instants, the same in any zone",
    ),
    Equivalent(
        "plugins/aureus_local/document.py",
        r"^counters = range\(MAX_COUNT \+ 1\)$",
        "a range starts at 0 by default, the value removed",
    ),
    Equivalent(
        "plugins/aureus_local/keystore.py",
        r'self\.loaded\(key, version, (None|"XXaes-gcmXX"|"AES-GCM"), AESGCM\)',
        "the kind only keeps the cached objects of different loaders apart; the other loaders "
        'use "public" and "private:<type>", so any other label keeps them apart alike',
    ),
    Equivalent(
        "plugins/aureus_local/keystore.py",
        r"^cached = (None|self\._objects\.get\(None\))$|^return cast\(None, ",
        "the object cache saves a rebuild only (setdefault then returns the object cached "
        "first); typing.cast returns its value whatever the type named",
    ),
    Equivalent(
        "plugins/aureus_local/keystore.py",
        r"^if cached is not None and version\.nonce is None:$",
        "a snapshot never caches an object for a destroyed version (material raises first) "
        "and a destroy makes a new snapshot with an empty cache, so a cached object always "
        "belongs to a version with material: the mutant only rebuilds it",
    ),
    Equivalent(
        "plugins/aureus_local/keystore.py",
        r"^stored = None if \(record is None\) and False else record\.version\(number\)$",
        "the wraps handed back belong to key versions this process reserved them for, and no "
        "write removes a key or a version (an older document without it is refused as a "
        "rollback)",
    ),
    Equivalent(
        "plugins/aureus_local/document.py",
        r'^return \(json\.dumps\(\{\*\*unsigned, "mac": _b64\(mac\)\}, '
        r"(indent=(None|3), sort_keys=True|indent=2, sort_keys=(None|False)|sort_keys=True"
        r'|indent=2, )\) \+ "\\n"\)\.encode\(\)$',
        "the file's layout is cosmetic: the MAC covers the canonical JSON of the document "
        "(sealing), and readers parse the JSON, not its spacing or key order",
    ),
    Equivalent(
        "plugins/aureus_local/document.py",
        r"^return value\.astimezone\(None\)\.isoformat\(\)$",
        "a stored time is read back as an instant and converted to UTC (_parse_time): the "
        "same instant in any zone",
    ),
    Equivalent(
        "plugins/aureus_local/keystore.py",
        r"^version = None if \(record is None\) and False else record\.version\(number\)$"
        r"|^if record is not None or version is not None:$",
        "the counts belong to key versions this process used, and no write removes a key or "
        "a version (an older document without it is refused as a rollback)",
    ),
    Equivalent(
        "plugins/aureus_local/keystore.py",
        r"^old = self\._usage_in_flight\.pop\(slot, (None|\(1, 0\)|\(0, 1\)|)\)$"
        r"|^if rest != \((1, 0|0, 1)\):$",
        "a keystore object carries one write's counts at a time (every write holds the write "
        "lock from its take to its settle, and no write's change records a use): the slot "
        "was put in flight by this write's take, and what is left after it is (0, 0)",
    ),
    Equivalent(
        "plugins/aureus_local/keystore.py",
        r"^created_at=created_at\.astimezone\(None\),$",
        "a stored time is written in UTC (_time) and read back as an instant: the same "
        "instant in any zone",
    ),
    # local-store-admin: the rest of keystore.py and document.py
    Equivalent(
        "plugins/aureus_local/keystore.py",
        r"^self\._fresh_until = 1\.0$|^self\._writes_seen = (None|1)$",
        "snapshot's fast path needs a verified document (_loaded), and the first one is "
        "loaded by the slow path, which sets _fresh_until and _writes_seen itself",
    ),
    Equivalent(
        "plugins/aureus_local/keystore.py",
        r"^self\._commit\(resealed, sealer, None\)$",
        "the decrypted material carried to the new snapshot saves a decryption only: without "
        "it the re-sealed material is decrypted again, with the same check",
    ),
    Equivalent(
        "plugins/aureus_local/keystore.py",
        r"^self\._derived = None$|^if self\._derived is not None and self\._derived\[1\] == "
        r"scrypt:$",
        "the derived master key is a cache: without it the passphrase is derived again under "
        "the same parameters, giving the same key",
        before=r"^self\._derived = \((params|scrypt), sealer\)$|^if self\._derived is not None",
    ),
    Equivalent(
        "plugins/aureus_local/keystore.py",
        r"^current_version=(None|1),$",
        "with_version makes the appended version 1 current, replacing the empty record's "
        "placeholder",
        before=r"^current_version=0,$",
    ),
    Equivalent(
        "plugins/aureus_local/keystore.py",
        r"^with contextlib\.suppress\(None\):$",
        "only a holder of the keystore's lock removes its temporary files, and the caller "
        "holds it: a file the scan found is still there",
    ),
    Equivalent(
        "plugins/aureus_local/keystore.py",
        r'^"the keystore file disappeared before unused wraps were handed back", '
        r"(provider=None|\))$",
        "_release_wraps_quietly catches this error and logs its message only",
    ),
    # local-admin: the rest of provider.py, rawkeys.py, imports.py, material.py, naming.py, and
    # plugin.py
    Equivalent(
        "plugins/aureus_local/plugin.py",
        r"^return value if \(isinstance\(value, Secret\)\) and False else Secret\(revealed\)$",
        "a Secret is wrapped again around the same revealed text",
    ),
    Equivalent(
        "plugins/aureus_local/material.py",
        r'^name = type\(key\)\.__name__\.(removesuffix\("_"\)|removeprefix\("XX_XX"\))\.',
        "cryptography (>= 47, as required) names its key classes without a leading underscore "
        "(RSAPrivateKey, Ed448PrivateKey): the strip is for older backends and changes "
        "nothing here",
    ),
    Equivalent(
        "plugins/aureus_local/material.py",
        r"""^return f"a key of type \{name or '(XXunknownXX|UNKNOWN)'\}"$""",
        "the name is empty only for a class named exactly PrivateKey, which cryptography has not",
    ),
    # local-provider: provider.py, rawkeys.py, imports.py, material.py, naming.py
    Equivalent(
        "plugins/aureus_local/provider.py",
        r"^data_key\[:\] = (None|bytes\(None\))$|^_check_usable\((None, version|record, None|"
        r"version|record, )\)$",
        _RAW_ONE_VERSION,
        before=r"^data_key\[:\] = bytes\(len\(data_key\)\)$|^_check_usable\(record, version\)$",
    ),
    Equivalent(
        "plugins/aureus_local/provider.py",
        r".",
        "the loaders table only saves loading a signing key again (snapshot.loaded caches it); "
        "its None branch is never taken: every caller refuses an aes-256 or raw key first "
        "(_refuse_aes), and private_key loads a signing key alike",
        before=r"^found = _PRIVATE_KEY_LOADERS\.get\(record\.key_type\)$|"
        r"^if found is None:  # not a signing key type|"
        r"^return key_material\.private_key\(record\.key_type, "
        r"snapshot\.material\(record, version\)\)$",
    ),
    Equivalent(
        "plugins/aureus_local/provider.py",
        r"^and \(minimum is None or number > minimum\)$",
        "_check_usable's first test is a fast path: a usable version it lets through to the "
        "checks that build the message (one exactly at the minimum) reaches their final "
        "else, which returns too",
    ),
    Equivalent(
        "plugins/aureus_local/provider.py",
        r'snapshot\.loaded\(record, version, (None|"XXpublicXX"|"PUBLIC"), lambda',
        "the label only names the public key's slot in the snapshot's cache; any label but "
        "the private keys' ('private:<type>') and the AES key's ('aes-gcm') serves",
    ),
    Equivalent(
        "plugins/aureus_local/provider.py",
        r'self\._signing_key\(key, "it has no public key", usable=None\)',
        "None is as false as False for the usable flag",
    ),
    Equivalent(
        "plugins/aureus_local/rawkeys.py",
        r".",
        "a text that does not encode to UTF-8 holds a lone surrogate, which is not printable: "
        "the control-character check refuses it first",
        before=r'raise ConfigError\(f"the raw key\'s \{what\} is not valid Unicode text"\)',
    ),
    Equivalent(
        "plugins/aureus_local/rawkeys.py",
        r"^material, password=None, (unsafe_skip_rsa_key_validation=False|\))$",
        "the skipped check is for speed: the key's consistency was checked when it was "
        "imported, and the keystore authenticates it since",
    ),
    Equivalent("plugins/aureus_local/material.py", r"\.to_bytes\(MATERIAL_SIZE, \)", _BYTEORDER),
    Equivalent(
        "plugins/aureus_local/imports.py",
        r".",
        "the ValueError's words are never shown: open turns it into ImportRefused",
        before=r'^raise ValueError\("(not an import job|the job is for another token)"\)$',
    ),
    Equivalent(
        "plugins/aureus_local/rawkeys.py",
        r"^head = bytes\(material\.data\.reveal\(\)\)\.lstrip\(\)\[:41\]$",
        "the head is only compared with prefixes of 26 and 30 bytes",
    ),
    Equivalent(
        "plugins/aureus_local/provider.py",
        r"^return now\.astimezone\(None\)$",
        "every stored time is converted to UTC again when written, and times are compared as "
        "instants, the same in any zone",
    ),
    Equivalent(
        "plugins/aureus_local/provider.py",
        r"^elif minimum is not None (or number < minimum|and number <= minimum):$",
        "reached only by a version that is neither destroyed nor disabled and that the fast "
        "path did not let through, so a minimum is set and the number is below it",
    ),
    Equivalent(
        "plugins/aureus_local/imports.py",
        r"^sort_keys=(None|False),$|^\)\.encode\(\)$",
        "the job file's outer key order is cosmetic: open reads its fields by name, and the "
        "sealed job is the stored job string",
        before=r"^sort_keys=True,$",
    ),
    Equivalent(
        "plugins/aureus_local/imports.py",
        r"secrets\.token_hex\((None|9)\)",
        "the temporary name only needs to be unpredictable and unused: 16 or 18 random hex "
        "digits serve as 32 do",
    ),
    Equivalent(
        "plugins/aureus_local/material.py",
        r"^return secrets\.token_bytes\(None\)$",
        "token_bytes's default size is 32, MATERIAL_SIZE",
    ),
    Equivalent(
        "plugins/aureus_local/material.py",
        r"^check_supported\(None\)$|^raise AssertionError\(None\)",
        "unreachable: every caller passes a type check_supported accepted, and generate has "
        "a branch for each",
    ),
    # context: aureus_core/context.py, keyref.py
    Equivalent(
        "aureus_core/context.py",
        r"^encoded\.sort\(key=None\)$",
        "keys are unique and so are their UTF-8 encodings: whole tuples sort by their first item",
    ),
    Equivalent(
        "aureus_core/context.py",
        r'struct\.unpack_from\(">H", view, \)',
        "unpack_from's offset defaults to 0, the value removed",
    ),
    Equivalent(
        "aureus_core/keyref.py",
        r"if \(isinstance\(value, Mapping\)\) and False else \(value or \(\)\)",
        "dict() reads a mapping as it reads the mapping's items",
    ),
    # rotation: aureus_core/rotation.py
    Equivalent(
        "aureus_core/rotation.py",
        r"^return now\.astimezone\(None\)$",
        "every use of now is arithmetic on instants, the same in any zone; no result shows "
        "now's zone",
    ),
    # signature: aureus_core/signature.py, plugins/aureus_local/signing.py
    Equivalent(
        "plugins/aureus_local/signing.py",
        r"^if s >= _P256_HALF_ORDER:$",
        "OpenSSL draws each nonce, so s is exactly (n - 1) / 2 with probability 2**-255; "
        "verify's side of the same boundary is tested",
    ),
    Equivalent(
        "plugins/aureus_local/signing.py",
        r".",
        "cryptography (>= 47, as required) decodes with a strict DER parser that refuses "
        "non-minimal lengths, padded integers and trailing bytes first, so no input decodes "
        "and then re-encodes differently; the comparison stays as defence in depth",
        before=r'^"(malformed ECDSA signature: it is not strict DER|integers, or trailing bytes\))',
    ),
    # audit: the chain's format and verifier, its writer (the jsonl sink) and the sinks.
    Equivalent(
        "plugins/aureus_builtin/audit_sinks.py",
        r"^self\._closed = None$",
        "_closed is only tested for truth: None is as false as False",
    ),
    Equivalent(
        "aureus_core/audit/chain.py",
        r'^self\._(since|last_signed|decl|first_seq)(: [^=]+)? = (None|1|"")$',
        "a verifier's starting values: every walk starts with a file record, which sets them "
        "(a file without one fails first)",
    ),
    Equivalent(
        "aureus_core/audit/chain.py",
        r"if (head is not None or head_data is not None|anchor is not None or marks is not None):",
        "the head (anchor) is loaded exactly when it is given",
    ),
    Equivalent(
        "aureus_core/audit/chain.py",
        r"^return (\+1|\+2|-2)$|else (\+1|\+2|-2)$",
        "where a file whose first line has no whole seq sorts: it fails at that line wherever it "
        "is walked, and only which of two broken files is named first could change",
        before=r"return -1$|else -1$",
    ),
    Equivalent(
        "aureus_core/audit/chain.py",
        r"allow_nan=(None|True)\)|separators=\(\",\", \":\"\), allow_nan=False\)"
        r"|ensure_ascii=True, \)\.encode\(",
        "encode_line writes a record whose hash canonical() computed first, and canonical() "
        "refuses NaN; ensure_ascii is json.dumps's default",
        before=r"json\.dumps\(record, separators",
    ),
    Equivalent(
        "aureus_core/audit/chain.py",
        r'readline\(None\)|rstrip\(None\)|lstrip\(b"\\n"\)|rstrip\(b"XX\\nXX"\)',
        "the first line is parsed as JSON, which ignores the whitespace around it; the limit "
        "only bounds the read of a damaged file",
        before=r'return handle\.readline\(limit\)\.rstrip\(b"\\n"\)',
    ),
    Equivalent(
        "aureus_core/audit/chain.py",
        r"if n >= number and _seq_of\(line\) == expected",
        "the line at ``number`` holds the record being checked, whose seq is not the one "
        "looked for",
    ),
    Equivalent(
        "plugins/aureus_builtin/jsonl_sink.py",
        r'reader\.string\((name|"path"), (None|"XXXX")\)',
        "the default is never used: from_options reads the option only when it is present",
    ),
    Equivalent(
        "aureus_core/audit/chain.py",
        r"^first = self\._first_seq if (\(self\._first_seq is not None\) or True"
        r"|self\._first_seq is not None) else [01]$"
        r"|^every = self\._decl\.params\.checkpoint_every if \(self\._decl\) or True else None$",
        "the anchor and the trailing checkpoint are checked only after a record was walked, "
        "and that sets _first_seq and _decl",
    ),
    Equivalent(
        "plugins/aureus_builtin/jsonl_sink.py",
        r"^self\._unsynced = (None|1)$|^break$",
        "durability only: close() fsyncs, and a closed sink refuses every append; "
        "starting the batch count at 1 fsyncs one append early. No process reads a "
        "difference; only a power loss would show one",
    ),
    Equivalent(
        "plugins/aureus_builtin/jsonl_sink.py",
        r".",
        "durability only: these decide when the log, head and anchor are fsynced (and an "
        "append that writes no signed record opens the anchor for nothing); no process reads "
        "a difference, only a power loss would show one",
        before=r'^sync = self\.sync == "record" or anchored or self\._unsynced \+ 1 >= '
        r"self\.sync_every$|^self\._unsynced = 0 if sync else self\._unsynced \+ 1$"
        r'|^anchored = self\.anchor is not None and any\("sig" in record for record in records\)$'
        r"|^size = self\._write\(data, sync=sync\)$|^sync=sync,$",
    ),
    Equivalent(
        "plugins/aureus_builtin/jsonl_sink.py",
        r"and tail\.seq >= info\.first_seq$|^unsigned = tail\.unsigned if tail is not None else 1$"
        r"|unsigned >= \(params\.checkpoint_every or 2\):$"
        r"|checkpoint_every=self\.checkpoint_every if \(self\.checkpoint_key\) or True else None,",
        "a file's first append writes its file record and an event, so it never holds the "
        "file record alone; a new log starts a new file, which resets the count; "
        "checkpoint_every is set whenever a checkpoint key is; the file record writes "
        "checkpoint_every only beside a checkpoint key",
    ),
    Equivalent(
        "plugins/aureus_builtin/jsonl_sink.py",
        r"tail = self\._tail_of\(records, decl\.index, size, (None|1)\)$"
        r"|if decl\.index != 1 and info\.first_seq != 0 or len"
        r'|if stat\.st_size <= head\["size"\]:$|if tail\.seq >= seq and not self\._still_holds'
        r"|entry\.unlink\(missing_ok=(None|False)\)",
        "records scanned from a file's start begin with its file record, which resets the "
        "count; file 1 is the only file that starts at seq 0; equal sizes returned just "
        "before; this writer's own last record reads back as itself; temp files are removed "
        "under the lock, so none vanishes meanwhile",
    ),
    Equivalent(
        "plugins/aureus_builtin/jsonl_sink.py",
        r"or now - self\._mac_checked > self\.key_check_interval$",
        "the monotonic clock moves between two appends: equality with the interval lasts no time",
    ),
    Equivalent(
        "plugins/aureus_builtin/jsonl_sink.py",
        r"^info = (None|self\._files\.get\(None\))$|^self\._files\[line\] = None$",
        "the parsed file records are a cache: without it each append parses the first line again",
    ),
    Equivalent(
        "plugins/aureus_builtin/jsonl_sink.py",
        r'getattr\((None|os), "(XX)?(O_CLOEXEC|o_cloexec)(XX)?",? ?(0|1|None)?\)',
        "close-on-exec: each descriptor is closed before the function returns, so it matters "
        "only for a child another thread starts in that moment, which no test can time",
    ),
    Equivalent(
        "plugins/aureus_builtin/jsonl_sink.py",
        r'os\.lseek\(fd, size (\+ 1|- 2), os\.SEEK_SET\)|os\.read\(fd, 2\) != b"\\n"'
        r'|os\.read\(fd, 1\) != b"XX\\nXX"',
        "it only decides whether to look for a torn last anchor line; looking when there is "
        "none re-reads the anchor and cuts it at its last newline, its end: slower, not "
        "different",
    ),
    Equivalent(
        "plugins/aureus_builtin/jsonl_sink.py",
        r"^window = 4097$|^window \*= 3$|^start = max\(1, reached\.end - window\)$"
        r'|rfind\(b"\\n", (None|1), len\(data\) - 1\)|rfind\(b"\\n", 0, len\(data\) - 2\)'
        r"|^if cut >= 0 and start == 0:$|^if cut (> 0|>= 1) or start == 0:$"
        r"|^if cut >= 0 or start == 1:$",
        "how far back a writer reads to find the start of its own last line: reading more, "
        "or from one byte later, finds the same line (never a file's first line: a file "
        "record is always followed by an event in the same append)",
    ),
)


def is_equivalent(path: str, before: str, after: str) -> bool:
    """Whether a survivor matches an entry of :data:`EQUIVALENT`."""
    return any(
        entry.path in ("*", path)
        and re.search(entry.after, after)
        and (not entry.before or re.search(entry.before, before))
        for entry in EQUIVALENT
    )


def staged_path(repo_path: str) -> str:
    """Where a repository file sits in the staging folder (plugins are lifted to the top)."""
    return repo_path.removeprefix("plugins/")


def repo_path(staged: str) -> str:
    """The repository path of a staged source file."""
    top = staged.split("/", 1)[0]
    return staged if top == "aureus_core" else f"plugins/{staged}"


def stage(name: str, group: Group) -> Path:
    """Build a fresh staging folder for one group: flat packages, tests, mutmut config."""
    work = STAGING / name
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "aureus_core", work / "aureus_core", ignore=ignore)
    for package in PACKAGES[1:]:
        shutil.copytree(ROOT / "plugins" / package, work / package, ignore=ignore)
    shutil.copytree(ROOT / "tests", work / "tests", ignore=ignore)
    pytest_options = _pytest_options()
    lines = [
        "[tool.mutmut]",
        f"source_paths = {json.dumps(list(PACKAGES))}",
        f"only_mutate = {json.dumps([staged_path(f) for f in group.files])}",
        f"pytest_add_cli_args_test_selection = {json.dumps(list(group.tests))}",
        # Same options the suite runs with, without the cache provider and leak scan noise.
        f"pytest_add_cli_args = {json.dumps(['-p', 'no:randomly', '-q', '-x', *_deselect(group)])}",
        "",
        "[tool.pytest.ini_options]",
        *pytest_options,
    ]
    (work / "pyproject.toml").write_text("\n".join(lines) + "\n")
    return work


def _deselect(group: Group) -> list[str]:
    """The pytest arguments that leave out a group's deselected tests."""
    if not group.deselect:
        return []
    return ["-k", " and ".join(f"not {name}" for name in group.deselect)]


def _pytest_options() -> list[str]:
    """The repository's [tool.pytest.ini_options] table body, copied verbatim."""
    text = (ROOT / "pyproject.toml").read_text()
    match = re.search(r"^\[tool\.pytest\.ini_options\]\n(.*?)(?=^\[)", text, re.S | re.M)
    if match is None:
        raise SystemExit("pyproject.toml has no [tool.pytest.ini_options] table")
    return match.group(1).rstrip().splitlines()


def mutmut(work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the mutmut CLI in the staging folder."""
    return subprocess.run(
        [sys.executable, "-m", "mutmut", *args],
        cwd=work,
        capture_output=True,
        text=True,
        check=False,
    )


@dataclass
class Survivor:
    """One mutant no test killed."""

    name: str
    path: str
    line: int
    before: str
    after: str

    @property
    def equivalent(self) -> bool:
        """Whether docs/testing.md lists this mutant as unable to change behaviour."""
        return is_equivalent(self.path, self.before, self.after)


# Run inside the staging folder with mutmut's own readers: every mutant's status, and the
# diff of each survivor (one process, rather than one ``mutmut show`` per survivor).
_COLLECT = """
import json
from mutmut.mutation.data import SourceFileMutationData
from mutmut.mutation.diff_apply import get_diff_for_mutant
from mutmut.stats import status_by_exit_code
from mutmut.utils.file_utils import walk_mutatable_files

out = []
for path in walk_mutatable_files():
    data = SourceFileMutationData(path=path)
    data.load()
    for name, code in data.exit_code_by_key.items():
        status = status_by_exit_code[code]
        diff = get_diff_for_mutant(name, path=path) if status == "survived" else ""
        out.append({"name": name, "path": str(path), "status": status, "diff": diff})
print(json.dumps(out))
"""


def locate(name: str, staged: str, diff: str) -> Survivor:
    """A survivor's repository file, line and change, from its diff."""
    lines_of_diff = [line for line in diff.splitlines() if line]
    removed = [x[1:] for x in lines_of_diff if x.startswith("-") and not x.startswith("---")]
    added = [x[1:] for x in lines_of_diff if x.startswith("+") and not x.startswith("+++")]
    before = removed[0] if removed else ""
    after = added[0] if added else "(line deleted)"
    path = repo_path(staged)
    # The diff is of the function alone: its line numbers count from the ``def``.
    offset = 0
    for text in lines_of_diff:
        hunk = re.match(r"@@ -(\d+)", text)
        if hunk:
            offset = int(hunk.group(1))
        elif text.startswith("-") and not text.startswith("---"):
            break
        elif not text.startswith("+"):
            offset += 1
    line_no = 0
    source = ROOT / path
    if source.exists():
        lines = source.read_text().splitlines()
        func = name.rsplit(".", 1)[-1].split("__mutmut_")[0].split("\u01c1")[-1]
        func = func.removeprefix("x_")
        start = next(
            (i for i, text in enumerate(lines) if re.match(rf"\s*(async\s+)?def {func}\(", text)),
            None,
        )
        if start is not None:
            # mutmut reprints the signature, so the offset is only near: take the line
            # that reads as the mutated one, nearest to it.
            guess = start + offset
            wanted = before.strip()
            matches = [i + 1 for i in range(start, len(lines)) if lines[i].strip() == wanted]
            line_no = min(matches, key=lambda n: abs(n - guess)) if matches else guess
    return Survivor(name, path, line_no, before.strip(), after.strip())


def collect(work: Path) -> list[dict[str, str]]:
    """Every mutant of the last run in ``work``: name, staged path, status, survivor diff."""
    collected = subprocess.run(
        [sys.executable, "-c", _COLLECT], cwd=work, capture_output=True, text=True, check=False
    )
    if collected.returncode != 0 or not collected.stdout.strip():
        sys.stderr.write(collected.stderr[-4000:])
        raise SystemExit(f"{work.name}: mutmut left no results (log: {work / 'mutmut-run.log'})")
    rows: list[dict[str, str]] = json.loads(collected.stdout)
    return rows


def refresh_tests(work: Path, group: Group) -> None:
    """Copy the current tests and the current sources into a staged run.

    The source files the group does not mutate are copied too, so a test written against a
    fix elsewhere passes its clean run; a change to a mutated file needs a full run.
    mutmut keeps each mutant's verdict and finds new tests by itself; changing the group's
    list of test files (rather than adding tests to those files) makes it start over.  A
    source file that changed (a fix) is copied with a new mtime: mutmut mutates it again,
    keeping the verdicts of the functions whose code did not change.
    """
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for target in (work / "tests", work / "mutants" / "tests"):
        shutil.copytree(ROOT / "tests", target, ignore=ignore, dirs_exist_ok=True)
    for repo_file in group.files:
        staged = work / staged_path(repo_file)
        if staged.read_bytes() != (ROOT / repo_file).read_bytes():
            shutil.copyfile(ROOT / repo_file, staged)
    for package in PACKAGES:
        source = ROOT / repo_path(package)
        for path in source.rglob("*.py"):
            repo_file = path.relative_to(ROOT).as_posix()
            if repo_file in group.files or "__pycache__" in path.parts:
                continue
            for base in (work, work / "mutants"):
                target = base / staged_path(repo_file)
                if target.parent.is_dir():
                    shutil.copy2(path, target)


def run_group(
    name: str, group: Group, max_children: int, *, mode: str = "full"
) -> dict[str, object]:
    """Run one group and collect its results.

    ``mode`` is ``full`` (stage afresh and run every mutant), ``survivors`` (run the last
    run's survivors again against the current tests) or ``report`` (run nothing).
    """
    work = STAGING / name
    started = time.monotonic()
    if mode == "full" or not (work / "mutants").is_dir():
        work = stage(name, group)
        run = mutmut(work, "run", "--max-children", str(max_children), *group.patterns())
        (work / "mutmut-run.log").write_text(run.stdout + run.stderr)
    elif mode == "survivors":
        before = {row["name"]: row for row in collect(work)}
        again = [
            row["name"]
            for row in before.values()
            if group.covers(row["name"])
            and (
                row["status"] == "no tests"
                or (
                    row["status"] == "survived"
                    and not locate(row["name"], row["path"], row["diff"]).equivalent
                )
            )
        ]
        refresh_tests(work, group)
        run = mutmut(work, "run", "--max-children", str(max_children), *again)
        log = run.stdout + run.stderr
        # Functions a fix changed lost their verdicts when mutmut mutated them again (a
        # mutant an interrupted run never reached stays unchecked: run the group again).
        changed = [
            row["name"]
            for row in collect(work)
            if row["status"] == "not checked"
            and (row["name"] not in before or before[row["name"]]["status"] != "not checked")
        ]
        if changed:
            run = mutmut(work, "run", "--max-children", str(max_children), *changed)
            log += run.stdout + run.stderr
        (work / "mutmut-rerun.log").write_text(log)
    elapsed = time.monotonic() - started
    rows = [row for row in collect(work) if group.covers(row["name"])]
    status = {row["name"]: row["status"] for row in rows}
    survivors = [
        locate(row["name"], row["path"], row["diff"]) for row in rows if row["status"] == "survived"
    ]
    equivalent = [s for s in survivors if s.equivalent]
    real = [s for s in survivors if not s.equivalent]
    counted = {k: v for k, v in status.items() if v in ("killed", "survived", "timeout")}
    killed = sum(1 for v in counted.values() if v in ("killed", "timeout"))
    tested = len(counted) - len(equivalent)
    other = {v for v in status.values() if v not in ("killed", "survived", "timeout")}
    return {
        "group": name,
        "seconds": round(elapsed),
        "mutants": len(status),
        "killed": killed,
        "tested": tested,
        "equivalent": len(equivalent),
        "untested": {v: sum(1 for x in status.values() if x == v) for v in sorted(other)},
        "score": round(100 * killed / tested, 1) if tested else 100.0,
        "survivors": [s.__dict__ for s in real],
    }


def delete_raises(name: str, group: Group) -> dict[str, object]:
    """The mutants mutmut does not make: each ``raise`` of the group deleted, one at a time.

    Each deletion runs the tests that reach the function holding it (from mutmut's record
    of the group's last run) in a staged copy; a deletion no test notices is reported.
    """
    work = STAGING / name
    stats_file = work / "mutants" / "mutmut-stats.json"
    if not stats_file.exists():
        raise SystemExit(f"{name}: run the group first (its test map comes from mutmut)")
    reach: dict[str, list[str]] = json.loads(stats_file.read_text())[
        "tests_by_mangled_function_name"
    ]
    scratch = STAGING / f"{name}-raises"
    if scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True)
    for entry in (work / "mutants").iterdir():
        if entry.is_dir() and (entry.name in PACKAGES or entry.name == "tests"):
            shutil.copytree(
                ROOT / repo_path(entry.name) if entry.name in PACKAGES else ROOT / "tests",
                scratch / entry.name,
            )
    (scratch / "pyproject.toml").write_text(
        "[tool.pytest.ini_options]\n" + "\n".join(_pytest_options()) + "\n"
    )
    env = {**os.environ, "PYTHONPATH": str(scratch)}
    results = []
    for repo_file in group.files:
        target = scratch / staged_path(repo_file)
        original = target.read_text()
        module = staged_path(repo_file)[: -len(".py")].replace("/", ".")
        tree = ast.parse(original)
        # mutmut maps tests to top-level functions and methods; a nested function's
        # raise belongs to the function around it.
        outer = [
            func
            for top in tree.body
            for func in ([top] if not isinstance(top, ast.ClassDef) else top.body)
            if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef))
        ]
        owners = {
            id(node): func.name
            for func in outer
            for node in ast.walk(func)
            if isinstance(node, ast.Raise)
        }
        for node in ast.walk(tree):
            if not isinstance(node, ast.Raise) or id(node) not in owners:
                continue
            func = owners[id(node)]
            if not group.mutates(func, Path(repo_file).stem):
                continue
            tests = sorted(
                {
                    t
                    for key, names in reach.items()
                    if key.startswith(f"{module}.") and re.search(rf"(x_|\u01c1){func}$", key)
                    for t in names
                }
            )
            lines = original.splitlines(keepends=True)
            first, last = node.lineno - 1, (node.end_lineno or node.lineno) - 1
            indent = lines[first][: len(lines[first]) - len(lines[first].lstrip())]
            lines[first : last + 1] = [f"{indent}pass\n"] + ["\n"] * (last - first)
            target.write_text("".join(lines))
            verdict = "no tests"
            if tests:
                run = subprocess.run(
                    [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:randomly", *tests],
                    cwd=scratch,
                    env=env,
                    capture_output=True,
                    text=True,
                    check=False,
                )
                verdict = "killed" if run.returncode != 0 else "survived"
            target.write_text(original)
            results.append(
                {"path": repo_file, "line": node.lineno, "function": func, "status": verdict}
            )
            if verdict != "killed":
                print(
                    f"   raise deleted at {repo_file}:{node.lineno} ({func}): {verdict}", flush=True
                )
    killed = sum(1 for r in results if r["status"] == "killed")
    print(f"   raise deletions: {killed}/{len(results)} killed", flush=True)
    return {"group": name, "killed": killed, "deleted": len(results), "raises": results}


def main() -> None:
    """Run the chosen groups and print scores and survivors."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("groups", nargs="*", metavar="GROUP", help=", ".join(GROUPS))
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="report the last run of each group again, without running mutants",
    )
    parser.add_argument(
        "--delete-raises",
        action="store_true",
        help="after the run, delete each raise in turn and run the tests that reach it",
    )
    parser.add_argument(
        "--survivors",
        action="store_true",
        help="run the last run's survivors (and untested mutants) again, against the current tests",
    )
    args = parser.parse_args()
    # Mutation runs are background work on a shared machine: yield the CPU to others.
    os.nice(10)
    chosen = args.groups or list(GROUPS)
    unknown = sorted(set(chosen) - set(GROUPS))
    if unknown:
        parser.error(f"unknown group {', '.join(unknown)}: choose from {', '.join(GROUPS)}")
    reports = []
    for name in chosen:
        print(f"== {name}: {', '.join(GROUPS[name].files)}", flush=True)
        mode = "report" if args.report_only else "survivors" if args.survivors else "full"
        report = run_group(name, GROUPS[name], args.max_children, mode=mode)
        reports.append(report)
        (STAGING / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
        if args.delete_raises:
            deleted = delete_raises(name, GROUPS[name])
            (STAGING / f"{name}-raises.json").write_text(json.dumps(deleted, indent=2) + "\n")
        print(
            f"   {report['score']} % killed ({report['killed']}/{report['tested']}), "
            f"{report['equivalent']} equivalent, not run: {report['untested']}, "
            f"{report['seconds']} s",
            flush=True,
        )
        for s in report["survivors"]:  # type: ignore[attr-defined]
            print(f"   survived {s['path']}:{s['line']}: {s['before']!r} -> {s['after']!r}")


if __name__ == "__main__":
    main()
