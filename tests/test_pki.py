"""The workspace CA and mutual TLS, checked with real handshakes over loopback sockets."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import ipaddress
import socket
import ssl
import stat
import sys
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from reelsync import pki
from reelsync.errors import ConfigError, PermissionDeniedError, ValidationError


def _agent(tmp: Path, ca: pki.CertificateAuthority, agent_id: str, site: str) -> tuple[Path, Path]:
    pair = pki.make_agent_key_and_csr(agent_id, site)
    cert_pem = ca.sign_agent_csr(pair.cert_pem, agent_id=agent_id, site=site, days=30)
    cert_file, key_file = tmp / f"{agent_id}.crt", tmp / f"{agent_id}.key"
    pki.write_pem(cert_file, cert_pem)
    pki.write_private_pem(key_file, pair.key_pem)
    return cert_file, key_file


def _agent_contexts(
    tmp: Path, ca: pki.CertificateAuthority
) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """The data plane's contexts of two agents of one workspace: hq listening, london dialling."""
    hq_cert, hq_key = _agent(tmp, ca, "1" * 24, "hq")
    ldn_cert, ldn_key = _agent(tmp, ca, "2" * 24, "london")
    ca_file = tmp / "ca" / pki.CA_CERT_FILE
    server_ctx = pki.server_ssl_context(hq_cert, hq_key, ca_file)
    client_ctx = pki.client_ssl_context(
        ca_file, cert_file=ldn_cert, key_file=ldn_key, check_hostname=False
    )
    return server_ctx, client_ctx


@pytest.fixture
def ca(tmp_path: Path) -> pki.CertificateAuthority:
    authority = pki.CertificateAuthority.create("acme")
    authority.save(tmp_path / "ca")
    return authority


def test_ca_saves_key_0600_and_loads_back(tmp_path: Path, ca: pki.CertificateAuthority) -> None:
    key_file = tmp_path / "ca" / pki.CA_KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    loaded = pki.CertificateAuthority.load(tmp_path / "ca")
    assert loaded.cert == ca.cert
    assert loaded.workspace == "acme"
    assert "BEGIN" not in repr(loaded)


def test_ca_load_refuses_a_key_others_can_read(
    tmp_path: Path, ca: pki.CertificateAuthority
) -> None:
    (tmp_path / "ca" / pki.CA_KEY_FILE).chmod(0o644)
    with pytest.raises(ConfigError, match="readable by others"):
        pki.CertificateAuthority.load(tmp_path / "ca")


def test_ca_load_refuses_a_key_of_another_ca(tmp_path: Path, ca: pki.CertificateAuthority) -> None:
    other = pki.CertificateAuthority.create("acme")
    other.save(tmp_path / "other")
    (tmp_path / "ca" / pki.CA_KEY_FILE).write_bytes(
        (tmp_path / "other" / pki.CA_KEY_FILE).read_bytes()
    )
    with pytest.raises(ConfigError, match="do not match"):
        pki.CertificateAuthority.load(tmp_path / "ca")


def test_server_cert_names(ca: pki.CertificateAuthority) -> None:
    pair = ca.issue_server_cert(["control.acme.test", "10.1.2.3"])
    cert = x509.load_pem_x509_certificate(pair.cert_pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    dns = set(san.get_values_for_type(x509.DNSName))
    ips = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    assert {"localhost", "control.acme.test", socket.gethostname().lower()} <= dns
    assert {"127.0.0.1", "::1", "10.1.2.3"} <= ips
    assert cert.issuer == ca.cert.subject
    assert "<hidden>" in repr(pair)


def test_agent_cert_subject_is_set_by_the_ca(ca: pki.CertificateAuthority) -> None:
    csr = pki.make_agent_key_and_csr("forged-id", "hq", "otherworkspace")
    cert_pem = ca.sign_agent_csr(csr.cert_pem, agent_id="a" * 24, site="london", days=10)
    cert = x509.load_pem_x509_certificate(cert_pem)
    ident = pki.peer_identity(cert_pem)
    assert ident == pki.PeerIdentity(agent_id="a" * 24, site="london", workspace="acme")
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(usages) == {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH}
    lifetime = cert.not_valid_after_utc - dt.datetime.now(dt.UTC)
    assert dt.timedelta(days=9) < lifetime <= dt.timedelta(days=10)
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_sign_refuses_garbage_and_tampered_csr(ca: pki.CertificateAuthority) -> None:
    with pytest.raises(ValidationError, match="not a valid PEM CSR"):
        ca.sign_agent_csr(b"hello", agent_id="x", site="hq")
    csr = pki.make_agent_key_and_csr("a", "hq").cert_pem
    other = pki.make_agent_key_and_csr("b", "hq").cert_pem
    # Splice another request's signature onto this one: the signature no longer verifies.
    body = x509.load_pem_x509_csr(csr)
    forged = x509.load_pem_x509_csr(other)
    der = body.public_bytes(serialization.Encoding.DER)
    tampered = der.replace(body.signature, forged.signature)
    pem = b"-----BEGIN CERTIFICATE REQUEST-----\n"
    pem += base64.encodebytes(tampered) + b"-----END CERTIFICATE REQUEST-----\n"
    with pytest.raises(ValidationError):
        ca.sign_agent_csr(pem, agent_id="x", site="hq")


def test_peer_identity_refuses_a_non_agent_cert(ca: pki.CertificateAuthority) -> None:
    with pytest.raises(PermissionDeniedError):
        pki.peer_identity(ca.cert_pem)


async def _handshake(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext
) -> tuple[pki.PeerIdentity | None, pki.PeerIdentity, str]:
    """One real TLS handshake over loopback, then one message from the server; returns (server's
    view of the client, client's view of the server, TLS version). Raises ``Refused`` when the
    server never got a verified client (TLS 1.3 reports a refused client certificate after the
    client's side of the handshake, as a reset, an alert or an empty read)."""
    seen: asyncio.Future[pki.PeerIdentity | None] = asyncio.get_running_loop().create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        obj = writer.get_extra_info("ssl_object")
        try:
            seen.set_result(pki.peer_identity_of(obj) if obj.getpeercert(True) else None)
            writer.write(b"ok")
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_ctx, server_hostname="127.0.0.1"
        )
        obj = writer.get_extra_info("ssl_object")
        client_view = pki.peer_identity_of(obj)
        version = obj.version()
        try:
            data = await reader.read()
        except (ssl.SSLError, ConnectionResetError) as exc:
            raise Refused(str(exc)) from exc
        finally:
            writer.close()
        if data != b"ok":
            assert not seen.done()
            raise Refused("server closed the connection")
        return await asyncio.wait_for(seen, 5), client_view, version
    finally:
        server.close()
        await server.wait_closed()


class Refused(Exception):
    pass


async def test_mutual_tls_between_two_agents(tmp_path: Path, ca: pki.CertificateAuthority) -> None:
    server_ctx, client_ctx = _agent_contexts(tmp_path, ca)
    server_view, client_view, version = await _handshake(server_ctx, client_ctx)
    assert version == "TLSv1.3"
    assert server_view == pki.PeerIdentity("2" * 24, "london", "acme")
    assert client_view == pki.PeerIdentity("1" * 24, "hq", "acme")


async def test_client_cert_from_another_ca_is_refused(
    tmp_path: Path, ca: pki.CertificateAuthority
) -> None:
    intruder_ca = pki.CertificateAuthority.create("acme")  # same name, different key
    hq_cert, hq_key = _agent(tmp_path, ca, "1" * 24, "hq")
    bad_cert, bad_key = _agent(tmp_path, intruder_ca, "3" * 24, "london")
    ca_file = tmp_path / "ca" / pki.CA_CERT_FILE
    server_ctx = pki.server_ssl_context(hq_cert, hq_key, ca_file)
    client_ctx = pki.client_ssl_context(
        ca_pem=intruder_ca.cert_pem + ca.cert_pem,
        cert_file=bad_cert,
        key_file=bad_key,
        check_hostname=False,
    )
    with pytest.raises(Refused):
        await asyncio.wait_for(_handshake(server_ctx, client_ctx), 5)


async def test_server_cert_from_another_ca_is_refused(
    tmp_path: Path, ca: pki.CertificateAuthority
) -> None:
    intruder_ca = pki.CertificateAuthority.create("acme")
    bad_cert, bad_key = _agent(tmp_path, intruder_ca, "3" * 24, "hq")
    ldn_cert, ldn_key = _agent(tmp_path, ca, "2" * 24, "london")
    server_ctx = pki.server_ssl_context(
        bad_cert, bad_key, ca_pem=intruder_ca.cert_pem + ca.cert_pem
    )
    client_ctx = pki.client_ssl_context(
        tmp_path / "ca" / pki.CA_CERT_FILE,
        cert_file=ldn_cert,
        key_file=ldn_key,
        check_hostname=False,
    )
    with pytest.raises(ssl.SSLCertVerificationError):
        await asyncio.wait_for(_handshake(server_ctx, client_ctx), 5)


async def test_client_without_a_cert_is_refused(
    tmp_path: Path, ca: pki.CertificateAuthority
) -> None:
    hq_cert, hq_key = _agent(tmp_path, ca, "1" * 24, "hq")
    ca_file = tmp_path / "ca" / pki.CA_CERT_FILE
    server_ctx = pki.server_ssl_context(hq_cert, hq_key, ca_file)
    client_ctx = pki.client_ssl_context(ca_file, check_hostname=False)
    with pytest.raises(Refused):
        await asyncio.wait_for(_handshake(server_ctx, client_ctx), 5)


async def test_https_server_cert_verifies_by_host_name(
    tmp_path: Path, ca: pki.CertificateAuthority
) -> None:
    pair = ca.issue_server_cert()
    cert_file, key_file = tmp_path / "server.crt", tmp_path / "server.key"
    pki.write_pem(cert_file, pair.cert_pem)
    pki.write_private_pem(key_file, pair.key_pem)
    ldn_cert, ldn_key = _agent(tmp_path, ca, "2" * 24, "london")
    ca_file = tmp_path / "ca" / pki.CA_CERT_FILE
    server_ctx = pki.server_ssl_context(cert_file, key_file, require_client_cert=False)
    for name in ("localhost", "127.0.0.1"):
        client_ctx = pki.client_ssl_context(ca_file)
        _, _, version = await _handshake_plain(server_ctx, client_ctx, name)
        assert version == "TLSv1.3"
    client_ctx = pki.client_ssl_context(ca_file)
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch|match"):
        await _handshake_plain(server_ctx, client_ctx, "evil.example")


async def _handshake_plain(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, name: str
) -> tuple[None, None, str]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        _, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_ctx, server_hostname=name
        )
        version = writer.get_extra_info("ssl_object").version()
        writer.close()
        return None, None, version
    finally:
        server.close()
        await server.wait_closed()


def test_client_context_needs_a_ca() -> None:
    with pytest.raises(ConfigError):
        pki.client_ssl_context()


def test_subject_alt_names_dedupes() -> None:
    names = pki.subject_alt_names(["LocalHost", "localhost", "[::1]", ""])
    assert names == [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]


def test_ca_subject() -> None:
    ca = pki.CertificateAuthority.create("zz")
    cn = ca.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn == "reelsync zz CA"


def _blocking_handshake(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, payload: bytes
) -> tuple[str, bytes]:
    """A handshake over a socket pair with blocking sockets (as the data plane's streams), then
    ``payload`` from the client; returns (the suite negotiated, what the server read)."""
    a, b = socket.socketpair()
    with a, b:
        server = server_ctx.wrap_socket(a, server_side=True, do_handshake_on_connect=False)
        client = client_ctx.wrap_socket(b, do_handshake_on_connect=False)
        return _exchange(server, client, payload)


def _exchange(server: ssl.SSLSocket, client: ssl.SSLSocket, payload: bytes) -> tuple[str, bytes]:
    with server, client:
        got: list[bytes] = []

        def serve() -> None:
            server.do_handshake()
            data = bytearray()
            while len(data) < len(payload):
                chunk = server.recv(1 << 20)
                if not chunk:
                    break
                data += chunk
            got.append(bytes(data))

        thread = threading.Thread(target=serve)
        thread.start()
        client.do_handshake()
        client.sendall(payload)
        thread.join(10)
        suite = client.cipher()
        assert suite is not None
        return suite[0], got[0]


def test_data_plane_prefers_aes128_and_reads_ahead(
    tmp_path: Path, ca: pki.CertificateAuthority
) -> None:
    """The mutual-TLS contexts negotiate TLS_AES_128_GCM_SHA256 and read ahead (see
    pki/openssl.py); a peer that offers only AES-256-GCM (an older agent's first choice) still
    connects, with that suite; bytes arrive whole in both cases."""
    from reelsync.pki import openssl
    from reelsync.pki.tlscontext import TLS13_SUITES

    server_ctx, client_ctx = _agent_contexts(tmp_path, ca)
    for ctx in (server_ctx, client_ctx):
        names = [c["name"] for c in ctx.get_ciphers()]
        assert names[:3] == TLS13_SUITES.split(":")
        assert openssl.reads_ahead(ctx) is True
    payload = bytes(range(256)) * 4096  # 1 MiB: many records, read ahead
    assert _blocking_handshake(server_ctx, client_ctx, payload) == (
        "TLS_AES_128_GCM_SHA256",
        payload,
    )

    for old_side in ("server", "client"):
        server_ctx, client_ctx = _agent_contexts(tmp_path, ca)
        old = server_ctx if old_side == "server" else client_ctx
        assert openssl.order_tls13_suites(old, "TLS_AES_256_GCM_SHA384")
        assert _blocking_handshake(server_ctx, client_ctx, payload) == (
            "TLS_AES_256_GCM_SHA384",
            payload,
        )


def test_openssl_settings_stay_with_their_context() -> None:
    """The suites' order and read-ahead are the context's own: another context (the control
    plane's HTTPS, a client's) keeps OpenSSL's defaults."""
    from reelsync.pki import openssl

    default = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    before = [c["name"] for c in default.get_ciphers()]
    tuned = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    assert openssl.order_tls13_suites(tuned, "TLS_CHACHA20_POLY1305_SHA256")
    assert openssl.set_read_ahead(tuned)
    assert tuned.get_ciphers()[0]["name"] == "TLS_CHACHA20_POLY1305_SHA256"
    assert [c["name"] for c in default.get_ciphers()] == before
    assert openssl.reads_ahead(default) is False
    assert [c["name"] for c in ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).get_ciphers()] == before


def test_where_the_context_cannot_be_reached_openssls_defaults_stay(
    tmp_path: Path, ca: pki.CertificateAuthority, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On an interpreter whose context layout was not checked (or without ctypes or the libssl
    functions) nothing is poked: the contexts keep OpenSSL's order and read one record at a
    time, and agents still connect with each other."""
    from reelsync.pki import openssl

    assert (sys.version_info[:2] in openssl.LAYOUT_CHECKED) == (openssl._LIB is not None)
    monkeypatch.setattr(openssl, "_LIB", None)
    server_ctx, client_ctx = _agent_contexts(tmp_path, ca)
    default = [c["name"] for c in ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).get_ciphers()]
    for ctx in (server_ctx, client_ctx):
        assert [c["name"] for c in ctx.get_ciphers()][:3] == default[:3]
        assert openssl.reads_ahead(ctx) is None
        assert not openssl.set_read_ahead(ctx)
    payload = bytes(range(256)) * 1024
    suite, got = _blocking_handshake(server_ctx, client_ctx, payload)
    assert got == payload
    assert suite == default[0]
