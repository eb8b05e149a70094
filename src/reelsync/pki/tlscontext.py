"""TLS contexts for reelsync connections. Rules: TLS 1.3 only between reelsync parts; only the
workspace CA is trusted (never the system store) so a certificate from any other CA is refused;
a server context for the data plane requires a client certificate (mutual TLS). Agent-to-agent
connections do not check host names (peers are dialled by address); they check the peer's
identity (:func:`reelsync.pki.identity.peer_identity_of`) instead. The control plane's HTTPS
listener (:func:`https_ssl_context`) also takes TLS 1.2, for clients whose TLS stops there, with
forward-secret AEAD ciphers only (ECDHE with AES-GCM or ChaCha20-Poly1305), no compression and no
renegotiation.

The mutual-TLS contexts (the data plane's) are made for CPU per byte, where Python's ``ssl``
cannot (:mod:`reelsync.pki.openssl`): TLS 1.3 suites in the order :data:`TLS13_SUITES`
(AES-128-GCM first, RFC 8446's mandatory suite; OpenSSL's default puts AES-256-GCM first; every
suite stays accepted, so any TLS 1.3 peer still connects), and read-ahead (one ``read`` per
TLS record received instead of two); where either cannot be set, OpenSSL's default stays."""

from __future__ import annotations

import ssl
from pathlib import Path

from reelsync.errors import ConfigError
from reelsync.pki.openssl import order_tls13_suites, set_read_ahead

__all__ = [
    "HTTPS_TLS12_CIPHERS",
    "TLS13_SUITES",
    "client_ssl_context",
    "https_ssl_context",
    "server_ssl_context",
]

#: the TLS 1.2 cipher suites the control plane's HTTPS offers (TLS 1.3's are all AEAD already)
HTTPS_TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL:!SHA1:!SHA256:!SHA384:!RSA+AES"


#: the TLS 1.3 suites of the mutual-TLS contexts, in order of preference
TLS13_SUITES = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"


def _base(server_side: bool, ca_file: Path | None, ca_pem: bytes | None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server_side else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    order_tls13_suites(ctx, TLS13_SUITES)
    set_read_ahead(ctx)
    try:
        if ca_pem is not None:
            ctx.load_verify_locations(cadata=ca_pem.decode("ascii"))
        elif ca_file is not None:
            ctx.load_verify_locations(cafile=str(ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the workspace CA {ca_file or '(PEM)'}: {exc}") from exc
    return ctx


def _load_chain(ctx: ssl.SSLContext, cert_file: Path, key_file: Path) -> None:
    try:
        ctx.load_cert_chain(certfile=str(cert_file), keyfile=str(key_file))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"cannot load certificate {cert_file} with key {key_file}: {exc}"
        ) from exc


def server_ssl_context(
    cert_file: Path,
    key_file: Path,
    ca_file: Path | None = None,
    *,
    ca_pem: bytes | None = None,
    require_client_cert: bool = True,
) -> ssl.SSLContext:
    """A TLS 1.3 server context. With ``require_client_cert`` (the default) a client must present
    a certificate signed by the workspace CA (``ca_file`` or ``ca_pem``)."""
    ctx = _base(True, ca_file, ca_pem)
    _load_chain(ctx, cert_file, key_file)
    if require_client_cert:
        if ca_file is None and ca_pem is None:
            raise ConfigError("a mutual-TLS server needs the workspace CA to check clients")
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def https_ssl_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """The control plane's HTTPS context: TLS 1.2 or 1.3, modern ciphers (see the rules)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(HTTPS_TLS12_CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    ctx.options |= getattr(ssl, "OP_NO_RENEGOTIATION", 0)
    ctx.verify_mode = ssl.CERT_NONE
    _load_chain(ctx, cert_file, key_file)
    return ctx


def client_ssl_context(
    ca_file: Path | None = None,
    *,
    ca_pem: bytes | None = None,
    cert_file: Path | None = None,
    key_file: Path | None = None,
    check_hostname: bool = True,
) -> ssl.SSLContext:
    """A TLS 1.3 client context trusting only the workspace CA; with ``cert_file``/``key_file``
    it presents the agent's certificate (mutual TLS)."""
    if ca_file is None and ca_pem is None:
        raise ConfigError("a reelsync TLS client needs the workspace CA to check the server")
    ctx = _base(False, ca_file, ca_pem)
    ctx.check_hostname = check_hostname
    ctx.verify_mode = ssl.CERT_REQUIRED
    if cert_file is not None and key_file is not None:
        _load_chain(ctx, cert_file, key_file)
    return ctx
