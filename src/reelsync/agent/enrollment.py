"""``reelsync agent enroll``: trade a one-time token for this agent's identity.

Rules: the private key is made here and never leaves the machine (only its CSR is sent); nothing
is written unless the control plane accepted the token, and a data dir that already holds an
enrolled agent is refused (delete it or use another one); the key and the secret are written
0600, the data dir 0700.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

from reelsync.agent.controlplane import ControlPlane
from reelsync.agent.settings import AgentFiles, split_server_urls, write_agent_config
from reelsync.errors import ConflictError, InternalError
from reelsync.pki import make_agent_key_and_csr, write_pem, write_private_pem

__all__ = ["EnrollResult", "enroll"]


@dataclass(frozen=True, slots=True)
class EnrollResult:
    server_id: str
    site: str
    workspace: str
    data_dir: Path
    config_file: Path


async def enroll(
    server_url: str,
    token: str,
    data_dir: Path,
    *,
    ca_file: Path | None = None,
    insecure: bool = False,
    hostname: str | None = None,
    listen: str = "0.0.0.0:45190-45210",
    advertise: str | None = None,
    dialable: bool = True,
    bandwidth_limit_mib_s: float | None = None,
) -> EnrollResult:
    """Enroll with the control plane at ``server_url`` (several, comma-separated: the replicas
    of one workspace, all kept for failover) and write the agent's data dir."""
    files = AgentFiles(data_dir)
    if files.config.exists():
        raise ConflictError(
            f"{data_dir} already holds an enrolled agent ({files.config})",
            hint="run it with: reelsync agent run --data-dir DIR, or enroll into a new dir",
        )
    name = hostname or socket.gethostname()
    pair = make_agent_key_and_csr(name, "pending")
    urls = split_server_urls(server_url)
    async with ControlPlane(urls, ca_file=ca_file, insecure=insecure) as control:
        answer = await control.enroll(token=token, hostname=name, csr_pem=pair.cert_pem.decode())
    try:
        server_id, site = str(answer["server_id"]), str(answer["site"])
        workspace = str(answer.get("workspace") or "")
        cert, ca = answer["certificate"].encode(), answer["ca_certificate"].encode()
        ticket_key = answer["ticket_public_key"].encode()
        secret = str(answer["agent_secret"])
    except (KeyError, AttributeError, TypeError) as exc:
        raise InternalError("the control plane's enrollment answer is incomplete") from exc
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    data_dir.chmod(0o700)
    write_private_pem(files.key, pair.key_pem)
    write_pem(files.cert, cert)
    write_pem(files.ca, ca)
    write_pem(files.ticket_key, ticket_key)
    config = write_agent_config(
        data_dir,
        server_url=",".join(urls),
        server_id=server_id,
        site=site,
        workspace=workspace,
        secret=secret,
        listen=listen,
        advertise=advertise,
        dialable=dialable,
        bandwidth_limit_mib_s=bandwidth_limit_mib_s,
    )
    return EnrollResult(server_id, site, workspace, data_dir, config)
