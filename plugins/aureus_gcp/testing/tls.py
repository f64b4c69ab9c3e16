"""A throw-away certificate authority for the emulator's TLS mode.

:class:`LoopbackCertificates` makes a CA and a server certificate it signs
(for ``127.0.0.1``, ``::1`` and ``localhost``), both P-256 and valid for a
day, and writes the CA certificate to a temporary directory so a client in
another process can trust it (``GRPC_DEFAULT_SSL_ROOTS_FILE_PATH``).  The
directory is removed by :meth:`LoopbackCertificates.cleanup`.
"""

from __future__ import annotations

import datetime
import ipaddress
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


class LoopbackCertificates:
    """A CA, a loopback server certificate it signed, and the CA file on disk."""

    def __init__(self) -> None:
        now = datetime.datetime.now(datetime.timezone.utc)
        start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = _name("aureus emulator test CA")
        ca = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(ca_key, hashes.SHA256())
        )
        server_key = ec.generate_private_key(ec.SECP256R1())
        server = (
            x509.CertificateBuilder()
            .subject_name(_name("localhost"))
            .issuer_name(ca_name)
            .public_key(server_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                        x509.IPAddress(ipaddress.ip_address("::1")),
                        x509.DNSName("localhost"),
                    ]
                ),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        self.ca_pem = ca.public_bytes(serialization.Encoding.PEM)
        """The CA certificate (PEM) clients trust."""
        self.certificate_pem = server.public_bytes(serialization.Encoding.PEM)
        """The server certificate (PEM)."""
        self.private_key_pem = server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        """The server's private key (PEM); it never leaves this process."""
        self._directory: tempfile.TemporaryDirectory[str] | None = tempfile.TemporaryDirectory(
            prefix="aureus-gcp-tls-"
        )
        self.ca_file = str(Path(self._directory.name) / "ca.pem")
        """The path of the CA certificate (removed by :meth:`cleanup`)."""
        Path(self.ca_file).write_bytes(self.ca_pem)

    def cleanup(self) -> None:
        """Remove the CA file and its directory."""
        if self._directory is not None:
            self._directory.cleanup()
            self._directory = None

    def __repr__(self) -> str:
        return f"LoopbackCertificates(ca_file={self.ca_file!r})"
