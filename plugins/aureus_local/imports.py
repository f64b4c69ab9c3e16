"""Import jobs of the local provider: the RSA key pairs wrapped key material is made for.

Each job is one file, ``imports/TOKEN.json`` in the keystore directory (mode
0600), written atomically::

    {"format": "aureus-local-import-job", "job": "<ImportJob JSON>",
     "public_key": "<PEM>", "nonce": "<base64>", "private_key": "<base64>"}

``private_key`` is the job's RSA-3072 private key (DER PKCS#8) sealed with
AES-256-GCM under the keystore's material key; the associated data binds the
keystore ID, the token and the job JSON, so a job cannot be moved to another
keystore or edited (another key name, a later expiry) without failing to open.
Importing deletes the file before the key is stored: a token imports once.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import secrets
from datetime import datetime
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from aureus_core.errors import ImportRefused
from aureus_core.keys import KeyType
from aureus_core.wrapped_import import (
    RSA_OAEP_SHA256_AES_KWP,
    WRAPPING_KEY_BITS,
    ImportJob,
    check_import_token,
    default_expiry,
    new_import_token,
)

from .atomic import READ_FLAGS, write_new_file
from .keystore import DIRECTORY_MODE, Keystore
from .naming import SCHEME

IMPORTS_DIRECTORY = "imports"
JOB_FORMAT = "aureus-local-import-job"
ALGORITHM = RSA_OAEP_SHA256_AES_KWP
"""The local provider unwraps on the host, so it can ask for OAEP with SHA-256."""
JOB_FILE_LIMIT = 64 * 1024
"""A job file is about 4 KiB; a larger one is not read whole, and is refused as damaged."""


def _unknown(token: str) -> ImportRefused:
    return ImportRefused(
        f"import token {token} is unknown to this keystore or was already used: run "
        "`aureus keys import-params` for a new one",
        provider=SCHEME,
    )


class ImportJobs:
    """The import jobs beside one keystore."""

    def __init__(self, keystore: Keystore) -> None:
        self._keystore = keystore

    @property
    def directory(self) -> Path:
        """Where the job files are."""
        return self._keystore.directory / IMPORTS_DIRECTORY

    def _path(self, token: str) -> Path:
        return self.directory / f"{check_import_token(token)}.json"

    def create(
        self, name: str, key_type: KeyType, *, new_version: bool, now: datetime
    ) -> tuple[ImportJob, bytes]:
        """A new job and its PEM public key; expired jobs are removed first."""
        keystore_id, sealer = self._keystore.sealing()
        self.sweep(now)
        job = ImportJob(
            token=new_import_token(),
            name=name,
            key_type=key_type,
            new_version=new_version,
            algorithm=ALGORITHM,
            expires_at=default_expiry(now),
        )
        private = rsa.generate_private_key(public_exponent=65537, key_size=WRAPPING_KEY_BITS)
        der = private.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        pem = private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        job_json = job.to_json().decode()
        nonce, sealed = sealer.seal(
            der, keystore_id=keystore_id, name=f"import:{job.token}", version=0, key_type=job_json
        )
        content = json.dumps(
            {
                "format": JOB_FORMAT,
                "job": job_json,
                "public_key": pem.decode("ascii"),
                "nonce": base64.b64encode(nonce).decode(),
                "private_key": base64.b64encode(sealed).decode(),
            },
            sort_keys=True,
        ).encode()
        self.directory.mkdir(mode=DIRECTORY_MODE, exist_ok=True)
        path = self._path(job.token)
        temp = self.directory / f".{job.token}.{secrets.token_hex(8)}.tmp"
        try:
            write_new_file(temp, content)
            os.replace(temp, path)
        finally:
            temp.unlink(missing_ok=True)
        return job, pem

    def open(self, token: str) -> tuple[ImportJob, rsa.RSAPrivateKey]:
        """The job and private key of ``token``; :class:`ImportRefused` if there is none."""
        path = self._path(token)
        try:
            fd = os.open(path, READ_FLAGS)
        except FileNotFoundError:
            raise _unknown(token) from None
        with os.fdopen(fd, "rb") as file:
            content = file.read(JOB_FILE_LIMIT + 1)
        keystore_id, sealer = self._keystore.sealing()
        try:
            if len(content) > JOB_FILE_LIMIT:
                raise ValueError("too large for an import job")
            value = json.loads(content)
            if value["format"] != JOB_FORMAT:
                raise ValueError("not an import job")
            job = ImportJob.from_json(value["job"].encode())
            if job.token != token:
                raise ValueError("the job is for another token")
            der = sealer.open(
                base64.b64decode(value["nonce"], validate=True),
                base64.b64decode(value["private_key"], validate=True),
                keystore_id=keystore_id,
                name=f"import:{token}",
                version=0,
                key_type=value["job"],
            )
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error, InvalidTag):
            raise ImportRefused(
                f"the import job file {path} is damaged, was altered or belongs to another "
                "keystore: delete it and run `aureus keys import-params` again",
                provider=SCHEME,
            ) from None
        private = serialization.load_der_private_key(der, password=None)
        assert isinstance(private, rsa.RSAPrivateKey)  # we sealed it
        return job, private

    def claim(self, token: str) -> None:
        """Use ``token`` up (exactly one caller succeeds); :class:`ImportRefused` if it is gone."""
        try:
            os.unlink(self._path(token))
        except FileNotFoundError:
            raise _unknown(token) from None

    def sweep(self, now: datetime) -> None:
        """Delete the files of expired jobs (and of jobs that no longer parse)."""
        if not self.directory.is_dir():
            return
        for path in self.directory.glob("*.json"):
            try:
                with path.open("rb") as file:
                    content = file.read(JOB_FILE_LIMIT + 1)
                if len(content) > JOB_FILE_LIMIT:
                    raise ValueError("too large for an import job")
                value = json.loads(content)
                expired = ImportJob.from_json(value["job"].encode()).expires_at <= now
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                expired = True
            if expired:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
