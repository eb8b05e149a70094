"""Signed agent requests: every call an agent makes to the control plane proves possession of
the private key of the certificate enrolled for it.

Rules: the agent signs, with its ECDSA P-256 key (ECDSA-SHA256), the canonical text
``reelsync-agent-request-v1``, the method, the request target (path and query, as sent), the
unix time, a random nonce and the SHA-256 of the body, one per line; it sends the signature as
``X-Reelsync-Signature: v1 t=<time> n=<nonce> s=<base64>`` and its certificate (DER, base64) as
``X-Reelsync-Certificate``. The control plane accepts a request only when the certificate is the
one recorded at enrollment (SHA-256 fingerprint), was issued by this workspace's CA and is within
its validity, the signature verifies with its public key, the time is within ``window_s`` of the
control plane's clock, and the nonce was not seen within the window (replay). Nonces are kept in
memory per control-plane process. Sans-I/O: callers pass headers in and get headers out.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from reelsync.errors import AuthenticationError, ConfigError
from reelsync.pki.identity import load_certificate

__all__ = [
    "CERTIFICATE_HEADER",
    "SIGNATURE_HEADER",
    "RequestSigner",
    "RequestVerifier",
    "canonical_request",
    "fingerprint",
]

SIGNATURE_HEADER = "X-Reelsync-Signature"
CERTIFICATE_HEADER = "X-Reelsync-Certificate"
_SCHEME = "reelsync-agent-request-v1"
_MAX_NONCES = 200_000


def fingerprint(cert: x509.Certificate) -> str:
    """The SHA-256 fingerprint (hex) recorded for an agent at enrollment."""
    return cert.fingerprint(hashes.SHA256()).hex()


def canonical_request(method: str, target: str, stamp: int, nonce: str, body: bytes) -> bytes:
    """The bytes an agent signs for one request."""
    digest = hashlib.sha256(body).hexdigest()
    return "\n".join((_SCHEME, method.upper(), target, str(stamp), nonce, digest)).encode()


class RequestSigner:
    """The agent's side: its key and certificate (PEM), signing each request."""

    def __init__(self, key_pem: bytes, cert_pem: bytes) -> None:
        try:
            key = serialization.load_pem_private_key(key_pem, password=None)
            cert = load_certificate(cert_pem)
        except ValueError as exc:
            raise ConfigError(f"cannot load the agent's key or certificate: {exc}") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ConfigError("the agent's key must be an ECDSA P-256 key")
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        der = serialization.Encoding.DER
        if key.public_key().public_bytes(der, spki) != cert.public_key().public_bytes(der, spki):
            raise ConfigError(
                "the agent's key does not match its certificate", hint="enroll the agent again"
            )
        self._key = key
        self._cert_b64 = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()

    def headers(
        self, method: str, target: str, body: bytes, *, now: float | None = None
    ) -> dict[str, str]:
        """The two headers that authenticate one request (``target``: path and query)."""
        stamp = int(time.time() if now is None else now)
        nonce = secrets.token_hex(16)
        data = canonical_request(method, target, stamp, nonce, body)
        signature = self._key.sign(data, ec.ECDSA(hashes.SHA256()))
        value = f"v1 t={stamp} n={nonce} s={base64.b64encode(signature).decode()}"
        return {SIGNATURE_HEADER: value, CERTIFICATE_HEADER: self._cert_b64}


def _parse_signature(value: str) -> tuple[int, str, bytes]:
    version, _, rest = value.strip().partition(" ")
    if version != "v1":
        raise AuthenticationError(f"unknown agent signature version {version!r}")
    fields = dict(part.partition("=")[::2] for part in rest.split())
    try:
        stamp = int(fields["t"])
        nonce = fields["n"]
        signature = base64.b64decode(fields["s"], validate=True)
    except (KeyError, ValueError, binascii.Error) as exc:
        raise AuthenticationError("the agent signature header is malformed") from exc
    if not 16 <= len(nonce) <= 64:
        raise AuthenticationError("the agent signature's nonce is malformed")
    return stamp, nonce, signature


class RequestVerifier:
    """The control plane's side: checks requests against the workspace CA and the fingerprint
    recorded for the agent. One per process (it remembers nonces); thread-safe."""

    def __init__(self, ca_cert_pem: bytes, *, window_s: float = 120.0) -> None:
        self.ca = load_certificate(ca_cert_pem)
        self.window_s = window_s
        self._nonces: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def verify(
        self,
        headers: Mapping[str, str],
        *,
        method: str,
        target: str,
        body: bytes,
        agent: str,
        enrolled_fingerprint: str | None,
        now: float | None = None,
    ) -> None:
        """Raise AuthenticationError unless the request is signed by ``agent``'s enrolled key."""
        value, cert_b64 = headers.get(SIGNATURE_HEADER), headers.get(CERTIFICATE_HEADER)
        if not value or not cert_b64:
            raise AuthenticationError(
                f"agent {agent}: the request is not signed with the agent's key",
                hint="upgrade the agent: every agent request must carry X-Reelsync-Signature",
            )
        stamp, nonce, signature = _parse_signature(value)
        try:
            cert = x509.load_der_x509_certificate(base64.b64decode(cert_b64, validate=True))
        except (ValueError, binascii.Error) as exc:
            raise AuthenticationError(
                f"agent {agent}: the certificate header is malformed"
            ) from exc
        presented = fingerprint(cert)
        if not enrolled_fingerprint or presented != enrolled_fingerprint:
            raise AuthenticationError(
                f"agent {agent}: the certificate is not the one enrolled for this agent",
                hint="the agent's key and certificate must be those made at enrollment",
            )
        try:
            cert.verify_directly_issued_by(self.ca)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise AuthenticationError(
                f"agent {agent}: the certificate was not issued by this workspace's CA"
            ) from exc
        moment = time.time() if now is None else now
        when = dt.datetime.fromtimestamp(moment, dt.UTC)
        if not cert.not_valid_before_utc <= when <= cert.not_valid_after_utc:
            raise AuthenticationError(
                f"agent {agent}: the certificate expired on {cert.not_valid_after_utc:%Y-%m-%d}",
                hint="enroll the agent again",
            )
        public = cert.public_key()
        if not isinstance(public, ec.EllipticCurvePublicKey):
            raise AuthenticationError(f"agent {agent}: the certificate's key is not ECDSA")
        try:
            public.verify(
                signature,
                canonical_request(method, target, stamp, nonce, body),
                ec.ECDSA(hashes.SHA256()),
            )
        except InvalidSignature as exc:
            raise AuthenticationError(
                f"agent {agent}: the request signature does not verify"
            ) from exc
        age = moment - stamp
        if abs(age) > self.window_s:
            when_text = f"{age:.0f} s ago" if age > 0 else f"{-age:.0f} s in the future"
            raise AuthenticationError(
                f"agent {agent}: the request was signed {when_text}, outside the "
                f"{self.window_s:.0f} s window (expired, replayed or a wrong clock)",
                hint="check the clocks of the agent and the control plane (NTP)",
            )
        self._remember(f"{presented}:{nonce}", moment, agent)

    def _remember(self, key: str, moment: float, agent: str) -> None:
        with self._lock:
            horizon = moment - 2 * self.window_s
            while self._nonces:
                oldest, seen = next(iter(self._nonces.items()))
                if seen >= horizon and len(self._nonces) < _MAX_NONCES:
                    break
                del self._nonces[oldest]
            if key in self._nonces:
                raise AuthenticationError(f"agent {agent}: the request was replayed (nonce seen)")
            self._nonces[key] = moment
