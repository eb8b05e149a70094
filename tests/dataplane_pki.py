"""Test certificates for the data plane, issued by reelsync.pki: a workspace CA and agent
certificates (key + CSR made as on an agent, signed by the CA), plus a foreign workspace."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from reelsync.pki import (
    CertificateAuthority,
    client_ssl_context,
    make_agent_key_and_csr,
    server_ssl_context,
)


@dataclass(frozen=True)
class AgentFiles:
    cert: Path
    key: Path
    ca: Path

    def client(self) -> ssl.SSLContext:
        return client_ssl_context(
            self.ca, cert_file=self.cert, key_file=self.key, check_hostname=False
        )

    def server(self) -> ssl.SSLContext:
        return server_ssl_context(self.cert, self.key, self.ca)


class Workspace:
    """A workspace CA in ``folder`` that issues agent certificates."""

    def __init__(self, folder: Path, code: str = "acme") -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.code = folder, code
        self.ca = CertificateAuthority.create(code)
        self.ca_file = folder / "ca.crt"
        self.ca_file.write_bytes(self.ca.cert_pem)

    def agent(self, agent_id: str, site: str = "hq") -> AgentFiles:
        pair = make_agent_key_and_csr(agent_id, site, self.code)
        cert = self.ca.sign_agent_csr(pair.cert_pem, agent_id=agent_id, site=site)
        cert_file = self.folder / f"{agent_id}.crt"
        key_file = self.folder / f"{agent_id}.key"
        cert_file.write_bytes(cert)
        key_file.write_bytes(pair.key_pem)
        key_file.chmod(0o600)
        return AgentFiles(cert_file, key_file, self.ca_file)
