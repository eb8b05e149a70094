"""The workspace certificate authority. Rules: one CA per workspace, an ECDSA P-256 key kept by the
control plane only (``ca.key``, mode 0600); it signs the control plane's HTTPS certificate and each
enrolled agent's certificate. The CA decides an agent certificate's subject (agent id, site,
workspace) and usages (TLS client and server) itself; it copies only the public key from a CSR,
after checking the CSR's signature."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from reelsync.errors import ConfigError, ValidationError
from reelsync.pki.identity import ORGANIZATION_PREFIX, agent_subject
from reelsync.pki.pemfile import read_pem, read_private_pem, write_pem, write_private_pem

__all__ = [
    "CA_CERT_FILE",
    "CA_KEY_FILE",
    "CertificateAuthority",
    "KeyPair",
    "make_agent_key_and_csr",
    "new_private_key",
    "private_key_pem",
    "subject_alt_names",
]

CA_CERT_FILE = "ca.crt"
CA_KEY_FILE = "ca.key"
_CLOCK_SKEW = dt.timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A certificate and its private key, both PEM."""

    cert_pem: bytes
    key_pem: bytes = b""

    def __repr__(self) -> str:  # never show the key
        return f"KeyPair(cert_pem=<{len(self.cert_pem)} bytes>, key_pem=<hidden>)"


def new_private_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def private_key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def subject_alt_names(names: Iterable[str]) -> list[x509.GeneralName]:
    """DNS names and IP addresses for a SAN extension (each name once, order kept)."""
    out: list[x509.GeneralName] = []
    seen: set[str] = set()
    for raw in names:
        name = raw.strip().strip("[]")
        if not name or name.lower() in seen:
            continue
        seen.add(name.lower())
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            out.append(x509.DNSName(name.lower()))
    return out


def make_agent_key_and_csr(agent_id: str, site: str, workspace: str = "") -> KeyPair:
    """Made on the agent: a fresh private key and a CSR for it (``cert_pem`` holds the CSR)."""
    key = new_private_key()
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(agent_subject(agent_id, site, workspace))
        .sign(key, hashes.SHA256())
    )
    return KeyPair(
        cert_pem=csr.public_bytes(serialization.Encoding.PEM), key_pem=private_key_pem(key)
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class CertificateAuthority:
    """A workspace CA: its certificate and private key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def __repr__(self) -> str:
        return f"CertificateAuthority(workspace={self.workspace!r}, key=<hidden>)"

    @property
    def workspace(self) -> str:
        attrs = self.cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        org = str(attrs[0].value) if attrs else ""
        return org.removeprefix(ORGANIZATION_PREFIX)

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @classmethod
    def create(cls, workspace: str, *, days: int = 3650) -> CertificateAuthority:
        key = new_private_key()
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION_PREFIX + workspace),
                x509.NameAttribute(NameOID.COMMON_NAME, f"reelsync {workspace} CA"),
            ]
        )
        now = _now()
        public = key.public_key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _CLOCK_SKEW)
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
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
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(cert=cert, key=key)

    def save(self, directory: Path) -> None:
        """Write ``ca.crt`` (0644) and ``ca.key`` (0600) into ``directory``."""
        write_private_pem(directory / CA_KEY_FILE, private_key_pem(self.key))
        write_pem(directory / CA_CERT_FILE, self.cert_pem)

    @classmethod
    def load(cls, directory: Path) -> CertificateAuthority:
        cert_pem = read_pem(directory / CA_CERT_FILE)
        key_pem = read_private_pem(directory / CA_KEY_FILE)
        try:
            cert = x509.load_pem_x509_certificate(cert_pem)
            key = serialization.load_pem_private_key(key_pem, password=None)
        except ValueError as exc:
            raise ConfigError(f"the workspace CA in {directory} is damaged: {exc}") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ConfigError(f"the workspace CA key in {directory} is not an ECDSA key")
        if cert.public_key() != key.public_key():
            raise ConfigError(f"the workspace CA certificate and key in {directory} do not match")
        return cls(cert=cert, key=key)

    def _leaf(
        self,
        subject: x509.Name,
        public: ec.EllipticCurvePublicKey,
        names: list[x509.GeneralName],
        days: int,
        usages: list[x509.ObjectIdentifier],
    ) -> x509.Certificate:
        now = _now()
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _CLOCK_SKEW)
            .not_valid_after(min(now + dt.timedelta(days=days), self.cert.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=True,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return builder.sign(self.key, hashes.SHA256())

    def issue_server_cert(self, names: Iterable[str] = (), *, days: int = 825) -> KeyPair:
        """The control plane's HTTPS certificate: SANs for localhost, 127.0.0.1, ::1, this
        machine's hostname and every extra name or IP given."""
        hostname = socket.gethostname()
        all_names = ["localhost", "127.0.0.1", "::1", hostname, socket.getfqdn(), *names]
        key = new_private_key()
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION_PREFIX + self.workspace),
                x509.NameAttribute(NameOID.COMMON_NAME, hostname or "localhost"),
            ]
        )
        cert = self._leaf(
            subject,
            key.public_key(),
            subject_alt_names(all_names),
            days,
            [ExtendedKeyUsageOID.SERVER_AUTH],
        )
        return KeyPair(cert.public_bytes(serialization.Encoding.PEM), private_key_pem(key))

    def sign_agent_csr(
        self,
        csr_pem: bytes,
        *,
        agent_id: str,
        site: str,
        days: int = 365,
        names: Iterable[str] = (),
    ) -> bytes:
        """Sign an agent's CSR: TLS client and server usage, subject set by the CA. Returns the
        certificate PEM."""
        try:
            csr = x509.load_pem_x509_csr(csr_pem)
        except ValueError as exc:
            raise ValidationError("the certificate request is not a valid PEM CSR") from exc
        try:
            valid = csr.is_signature_valid
        except InvalidSignature:  # pragma: no cover - cryptography returns False instead
            valid = False
        if not valid:
            raise ValidationError("the certificate request's signature does not verify")
        public = csr.public_key()
        if not isinstance(public, ec.EllipticCurvePublicKey):
            raise ValidationError("the certificate request must use an ECDSA P-256 key")
        cert = self._leaf(
            agent_subject(agent_id, site, self.workspace),
            public,
            subject_alt_names(names),
            days,
            [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH],
        )
        return cert.public_bytes(serialization.Encoding.PEM)
