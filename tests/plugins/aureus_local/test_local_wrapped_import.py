"""The local provider's import jobs: files an attacker with write access may edit or copy."""

from __future__ import annotations

import json
import os
import stat
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from aureus_core.errors import ConfigError, ImportRefused, KeyExists, KeyNotFound
from aureus_core.interfaces import KeyMaterial
from aureus_core.keyref import KeyRef
from aureus_core.keys import KeySpec, KeyType
from aureus_core.sensitive import Secret
from aureus_core.testing.concurrency import run_in_threads
from aureus_core.testing.key_material import fresh_material
from aureus_core.wrapped_import import IMPORT_TOKEN_LIFETIME, ImportParameters, wrap_for_import
from aureus_local import LocalKeyProvider
from aureus_local.imports import JOB_FILE_LIMIT, ImportJobs

AES = KeySpec(key_type=KeyType.AES_256)


def _wrapped(parameters: ImportParameters) -> KeyMaterial:
    blob = wrap_for_import(
        parameters.key_type,
        fresh_material(parameters.key_type),
        wrapping_public_key=parameters.wrapping_public_key,
        algorithm=parameters.wrapping_algorithm,
        expected_fingerprint=parameters.fingerprint,
    )
    return KeyMaterial(format="wrapped", data=Secret(blob), import_token=parameters.import_token)


def _job_file(provider: LocalKeyProvider, parameters: ImportParameters) -> Path:
    return provider.keystore_dir / "imports" / f"{parameters.import_token}.json"


def test_job_file_is_private_and_holds_no_plain_private_key(tmp_path: Path) -> None:
    provider = LocalKeyProvider(tmp_path / "ks")
    parameters = provider.import_parameters("k", AES)
    path = _job_file(provider, parameters)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    content = path.read_bytes()
    assert b"PRIVATE KEY" not in content
    assert json.loads(content)["public_key"].encode() == parameters.wrapping_public_key


def test_a_job_edited_to_live_longer_or_for_another_key_is_refused(tmp_path: Path) -> None:
    """The job JSON is authenticated: a later expiry or another key name does not open."""
    provider = LocalKeyProvider(tmp_path / "ks")
    parameters = provider.import_parameters("k", AES)
    wrapped = _wrapped(parameters)
    path = _job_file(provider, parameters)
    original = path.read_bytes()
    for field, value in (
        ("expires_at", (datetime.fromisoformat("2099-01-01T00:00:00+00:00")).isoformat()),
        ("name", "victim"),
    ):
        document = json.loads(original)
        job = json.loads(document["job"])
        job[field] = value
        document["job"] = json.dumps(job, sort_keys=True, separators=(",", ":"))
        path.write_text(json.dumps(document))
        name = "victim" if field == "name" else "k"
        with pytest.raises(ImportRefused, match="was altered"):
            provider.import_key(name, AES, wrapped)
    path.write_bytes(original)
    assert provider.import_key("k", AES, wrapped).uri == "local://k"


def test_a_job_file_of_another_format_or_not_utf8_is_refused(tmp_path: Path) -> None:
    """The format name is outside the sealed part: it is checked by itself."""
    provider = LocalKeyProvider(tmp_path / "ks")
    parameters = provider.import_parameters("k", AES)
    path = _job_file(provider, parameters)
    document = json.loads(path.read_text())
    document["format"] = "aureus-local-import-job-v0"
    wrapped = _wrapped(parameters)
    refusal = (
        f"the import job file {path} is damaged, was altered or belongs to another keystore: "
        "delete it and run `aureus keys import-params` again"
    )
    # Another format name; bytes that are not UTF-8 (a damaged file) are refused alike.
    for content in (json.dumps(document).encode(), b'{"format": "\xff\xfe"}'):
        path.write_bytes(content)
        with pytest.raises(ImportRefused) as caught:
            provider.import_key("k", AES, wrapped)
        assert str(caught.value) == refusal
        assert caught.value.provider == "local"


def test_a_job_file_over_its_size_limit_is_refused_unread_and_swept(tmp_path: Path) -> None:
    """A job is about 4 KiB: one grown past JOB_FILE_LIMIT is damaged, however it parses."""
    provider = LocalKeyProvider(tmp_path / "ks")
    parameters = provider.import_parameters("k", AES)
    path = _job_file(provider, parameters)
    content = path.read_bytes()
    assert len(content) < 8 * 1024
    # Trailing spaces keep the JSON valid: at the limit the job opens, one byte over it not.
    path.write_bytes(content + b" " * (JOB_FILE_LIMIT + 1 - len(content)))
    with pytest.raises(ImportRefused, match=f"the import job file {path} is damaged"):
        provider.import_key("k", AES, _wrapped(parameters))
    path.write_bytes(content + b" " * (JOB_FILE_LIMIT - len(content)))
    provider.import_key("k", AES, _wrapped(parameters))
    assert dict(provider.describe_key(KeyRef.parse("local://k")).extra)["origin"] == "imported"
    # The sweep reads no more than the limit either, and removes the oversized job.
    grown = provider.import_parameters("g", AES)
    grown_path = _job_file(provider, grown)
    grown_path.write_bytes(grown_path.read_bytes() + b" " * JOB_FILE_LIMIT)
    kept = _job_file(provider, provider.import_parameters("h", AES))
    assert not grown_path.exists()
    assert kept.exists()


@pytest.mark.parametrize("field", ["nonce", "private_key"])
def test_a_job_file_whose_base64_is_not_strict_is_refused(tmp_path: Path, field: str) -> None:
    """A character outside base64 in the sealed key or its nonce is damage, not skipped."""
    provider = LocalKeyProvider(tmp_path / "ks")
    parameters = provider.import_parameters("k", AES)
    path = _job_file(provider, parameters)
    original = path.read_bytes()
    document = json.loads(original)
    document[field] = "*" + document[field]
    path.write_text(json.dumps(document))
    wrapped = _wrapped(parameters)
    with pytest.raises(ImportRefused, match="is damaged, was altered"):
        provider.import_key("k", AES, wrapped)
    path.write_bytes(original)
    assert provider.import_key("k", AES, wrapped).uri == "local://k"


def test_a_job_copied_into_another_keystore_is_refused(tmp_path: Path) -> None:
    first = LocalKeyProvider(tmp_path / "first")
    second = LocalKeyProvider(tmp_path / "second")
    second.create_key("existing", AES)
    parameters = first.import_parameters("k", AES)
    target = second.keystore_dir / "imports"
    target.mkdir(mode=0o700)
    (target / _job_file(first, parameters).name).write_bytes(
        _job_file(first, parameters).read_bytes()
    )
    with pytest.raises(ImportRefused, match="belongs to another keystore"):
        second.import_key("k", AES, _wrapped(parameters))


def test_two_concurrent_imports_of_one_blob_make_one_key(tmp_path: Path) -> None:
    """Replay by racing: one import wins, the other is told the token is used."""
    provider = LocalKeyProvider(tmp_path / "ks")
    provider.create_key("k", AES)
    parameters = provider.import_parameters("k", AES, new_version=True)
    wrapped = _wrapped(parameters)

    def attempt(thread: int, operation: int) -> str:
        try:
            return provider.import_key("k", AES, wrapped, new_version=True).current_version
        except ImportRefused as error:
            return "refused" if "already used" in str(error) else str(error)

    outcomes = sorted(run_in_threads(attempt, threads=4, operations=1))
    assert outcomes == ["2", "refused", "refused", "refused"]
    versions = provider.describe_key(KeyRef.parse("local://k")).versions
    assert [v.version for v in versions] == ["1", "2"]


def test_a_token_this_keystore_never_issued_is_refused_by_the_local_provider(
    tmp_path: Path,
) -> None:
    provider = LocalKeyProvider(tmp_path / "ks")
    parameters = provider.import_parameters("k", AES)
    foreign = "0123456789abcdef" * 2
    material = KeyMaterial(format="wrapped", data=Secret(b"x"), import_token=foreign)
    with pytest.raises(ImportRefused) as caught:
        provider.import_key("k", AES, material)
    assert str(caught.value) == (
        f"import token {foreign} is unknown to this keystore or was already used: run "
        "`aureus keys import-params` for a new one"
    )
    assert caught.value.provider == "local"
    assert _job_file(provider, parameters).exists()


def test_a_token_that_is_not_one_never_reaches_the_filesystem(tmp_path: Path) -> None:
    provider = LocalKeyProvider(tmp_path / "ks")
    (tmp_path / "outside.json").write_text("{}")
    for token in ("../../outside", "0" * 31, "A" * 32):
        with pytest.raises(ConfigError, match="32 lowercase hex"):
            provider.import_key(
                "k", AES, KeyMaterial(format="wrapped", data=Secret(b"x"), import_token=token)
            )


def test_the_job_directory_is_private(tmp_path: Path) -> None:
    provider = LocalKeyProvider(tmp_path / "ks")
    old = os.umask(0o022)
    try:
        provider.import_parameters("k", AES)
    finally:
        os.umask(old)
    assert stat.S_IMODE((provider.keystore_dir / "imports").stat().st_mode) == 0o700


def test_a_job_file_that_no_longer_parses_is_swept(tmp_path: Path) -> None:
    provider = LocalKeyProvider(tmp_path / "ks")
    provider.import_parameters("a", AES)
    damaged = provider.keystore_dir / "imports" / "damaged.json"
    damaged.write_bytes(b"{not json")
    provider.import_parameters("b", AES)
    assert not damaged.exists()
    assert len(os.listdir(provider.keystore_dir / "imports")) == 2


def test_expired_jobs_are_swept_when_the_next_is_made(tmp_path: Path) -> None:
    now = [datetime.fromisoformat("2026-01-01T00:00:00+00:00")]
    provider = LocalKeyProvider(tmp_path / "ks", clock=lambda: now[0])
    old = provider.import_parameters("a", AES)
    now[0] += timedelta(days=2)
    provider.import_parameters("b", AES)
    assert not _job_file(provider, old).exists()
    assert len(os.listdir(provider.keystore_dir / "imports")) == 1


def test_an_import_refused_at_its_expiry_sweeps_the_expired_jobs_only(tmp_path: Path) -> None:
    """A token is expired from its expiry instant on; refusing it removes the expired job
    files, and only those."""
    start = datetime.fromisoformat("2026-01-01T00:00:00+00:00")
    now = [start]
    provider = LocalKeyProvider(tmp_path / "ks", clock=lambda: now[0])
    expiring = provider.import_parameters("k", AES)
    now[0] = start + timedelta(hours=1)
    later = provider.import_parameters("b", AES)
    now[0] = start + IMPORT_TOKEN_LIFETIME
    with pytest.raises(ImportRefused) as caught:
        provider.import_key("k", AES, _wrapped(expiring))
    assert str(caught.value).startswith(
        f"import token {expiring.import_token} expired at {now[0].isoformat()}: run "
    )
    assert caught.value.provider == "local"
    assert not _job_file(provider, expiring).exists()
    assert _job_file(provider, later).exists()
    assert provider.import_key("b", AES, _wrapped(later)).uri == "local://b"


def test_a_token_for_a_new_key_refuses_a_new_version_naming_the_key(tmp_path: Path) -> None:
    provider = LocalKeyProvider(tmp_path / "ks")
    parameters = provider.import_parameters("k", AES)
    with pytest.raises(ImportRefused) as caught:
        provider.import_key("k", AES, _wrapped(parameters), new_version=True)
    assert str(caught.value) == (
        f"import token {parameters.import_token} was issued to import a new key of "
        "local://k: drop --new-version"
    )
    assert _job_file(provider, parameters).exists()


def test_import_parameters_are_given_for_a_new_key_or_a_new_version_of_an_existing_one(
    tmp_path: Path,
) -> None:
    provider = LocalKeyProvider(tmp_path / "ks")
    first = provider.import_parameters("k", AES)  # no keystore yet
    assert (first.key_uri, first.new_version) == ("local://k", False)
    provider.create_key("k", AES)
    with pytest.raises(KeyExists) as exists:
        provider.import_parameters("k", AES)
    assert str(exists.value) == (
        "key local://k already exists: ask for parameters with new_version to import a new "
        "version of it"
    )
    assert exists.value.provider == "local"
    with pytest.raises(KeyNotFound, match=r"^no key local://other in keystore "):
        provider.import_parameters("other", AES, new_version=True)
    again = provider.import_parameters("k", AES, new_version=True)
    assert (again.key_uri, again.new_version, again.key_type) == (
        "local://k",
        True,
        KeyType.AES_256,
    )
    assert sorted(os.listdir(provider.keystore_dir / "imports")) == sorted(
        f"{p.import_token}.json" for p in (first, again)
    )


def test_a_token_is_claimed_once(tmp_path: Path) -> None:
    provider = LocalKeyProvider(tmp_path / "ks")
    parameters = provider.import_parameters("k", AES)
    jobs = ImportJobs(provider.keystore)
    jobs.claim(parameters.import_token)
    assert not _job_file(provider, parameters).exists()
    with pytest.raises(ImportRefused) as caught:
        jobs.claim(parameters.import_token)
    assert str(caught.value) == (
        f"import token {parameters.import_token} is unknown to this keystore or was already "
        "used: run `aureus keys import-params` for a new one"
    )


def test_a_job_another_process_swept_first_is_skipped_quietly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [datetime.fromisoformat("2026-01-01T00:00:00+00:00")]
    provider = LocalKeyProvider(tmp_path / "ks", clock=lambda: now[0])
    old = provider.import_parameters("a", AES)
    real_unlink = Path.unlink

    def swept_meanwhile(path: Path, missing_ok: bool = False) -> None:
        if path.suffix == ".json":  # another process removed it between listing and unlink
            real_unlink(path)
            raise FileNotFoundError(str(path))
        real_unlink(path, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", swept_meanwhile)
    now[0] += timedelta(days=2)
    new = provider.import_parameters("b", AES)
    assert not _job_file(provider, old).exists()
    assert _job_file(provider, new).exists()
