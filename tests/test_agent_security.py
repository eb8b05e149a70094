"""Agent authentication against a real control plane process and real agent processes: every
agent request must be signed by the key enrolled for it (the secret alone is refused), stale and
replayed signatures are refused, a certificate of another workspace is refused, and an agent an
admin revoked (``reelsync agent revoke``) is refused by the control plane and by its peers, and
stops with one clear line."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from dataplane_pki import Workspace
from reelsync.agent.controlplane import AGENT_API, ControlPlane
from reelsync.engine import Assignment, Engine, EngineSettings, FileSpec, PeerAddress, VolumePath
from reelsync.errors import AuthenticationError, RevokedError, ValidationError
from reelsync.fs import Volume
from reelsync.pki import (
    CertificateAuthority,
    RequestSigner,
    Ticket,
    TicketFile,
    TicketSigner,
    client_ssl_context,
    make_agent_key_and_csr,
)
from support.agents import RunningAgent, add_london_and_projects, running_agent, wait_until
from support.servers import RunningServer, running_server

pytestmark = pytest.mark.slow

SERVER_ENV = {"REELSYNC_AGENT_OFFLINE_AFTER_S": "2"}
HEARTBEAT = f"{AGENT_API}/heartbeat"
BODY = json.dumps({"version": "test", "dialable": False}).encode()


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """A control plane with sites hq and london, volume ``projects`` and one agent per site."""
    tmp = tmp_path_factory.mktemp("agentsec")
    roots = {site: tmp / f"{site}-projects" for site in ("hq", "london")}
    for root in roots.values():
        root.mkdir()
    with ExitStack() as stack:
        server = stack.enter_context(running_server(tmp / "server", env=SERVER_ENV))
        add_london_and_projects(server, roots, default=False)
        agents = {
            site: stack.enter_context(running_agent(server, site, tmp / f"agent-{site}"))
            for site in ("hq", "london")
        }
        for agent in agents.values():
            agent.wait_online()
        yield {"server": server, "agents": agents, "roots": roots, "tmp": tmp}


def _secret(agent: RunningAgent) -> str:
    return (agent.data_dir / "agent.secret").read_text().strip()


def _own_signer(agent: RunningAgent) -> RequestSigner:
    return RequestSigner(
        (agent.data_dir / "agent.key").read_bytes(), (agent.data_dir / "agent.crt").read_bytes()
    )


def _post(server: RunningServer, secret: str, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(
        server.url + HEARTBEAT,
        content=BODY,
        headers={"Authorization": f"Agent {secret}", "Content-Type": "application/json", **headers},
        verify=ssl.create_default_context(cafile=str(server.ca_file)),
        timeout=10,
    )


def _refused(response: httpx.Response, code: str, words: str) -> str:
    assert response.status_code == 401, response.text
    body = response.json()["error"]
    assert body["code"] == code, body
    assert words in body["message"], body
    return str(body["message"])


def test_a_valid_agent_works_and_its_requests_are_signed(studio: dict) -> None:
    server: RunningServer = studio["server"]
    london: RunningAgent = studio["agents"]["london"]
    listed = json.loads(server.cli("agent", "list", "--json").stdout)
    assert sorted(a["status"] for a in listed) == ["online", "online"]
    signer = _own_signer(london)
    ok = _post(server, _secret(london), signer.headers("POST", HEARTBEAT, BODY))
    assert ok.status_code == 200, ok.text
    assert ok.json()["server_id"] == london.server_id
    # the same request again, byte for byte: a replay
    headers = signer.headers("POST", HEARTBEAT, BODY)
    assert _post(server, _secret(london), headers).status_code == 200
    _refused(_post(server, _secret(london), headers), "unauthenticated", "replayed")
    # a signature older than the window
    stale = signer.headers("POST", HEARTBEAT, BODY, now=time.time() - 600)
    _refused(_post(server, _secret(london), stale), "unauthenticated", "s ago, outside the")
    # the signature covers the body
    other_body = signer.headers("POST", HEARTBEAT, b'{"dialable": false}')
    _refused(_post(server, _secret(london), other_body), "unauthenticated", "does not verify")
    assert "Traceback" not in server.log()


def test_the_right_secret_with_another_key_is_refused(studio: dict) -> None:
    server: RunningServer = studio["server"]
    london: RunningAgent = studio["agents"]["london"]
    secret = _secret(london)
    # no signature at all: the secret alone is not enough
    message = _refused(_post(server, secret, {}), "unauthenticated", "not signed")
    assert london.server_id in message
    # a new key with a certificate the workspace CA really signed for this agent id
    ca = CertificateAuthority.load(server.ca_file.parent)
    pair = make_agent_key_and_csr(london.server_id, "london", server.workspace)
    cert = ca.sign_agent_csr(pair.cert_pem, agent_id=london.server_id, site="london")
    impostor = RequestSigner(pair.key_pem, cert)
    _refused(
        _post(server, secret, impostor.headers("POST", HEARTBEAT, BODY)),
        "unauthenticated",
        "not the one enrolled",
    )
    # a certificate from another workspace's CA (same workspace code, same agent id)
    foreign_files = Workspace(studio["tmp"] / "foreign", code=server.workspace).agent(
        london.server_id, "london"
    )
    foreign = RequestSigner(foreign_files.key.read_bytes(), foreign_files.cert.read_bytes())
    _refused(
        _post(server, secret, foreign.headers("POST", HEARTBEAT, BODY)),
        "unauthenticated",
        "not the one enrolled",
    )

    # the agent's own client code, with the stolen secret and the impostor's key
    async def heartbeat() -> None:
        async with ControlPlane(
            server.url, secret=secret, signer=impostor, ca_file=server.ca_file
        ) as control:
            await control.heartbeat(peer_address=None, peer_port=None, dialable=False)

    with pytest.raises(AuthenticationError, match="not the one enrolled") as caught:
        asyncio.run(heartbeat())
    assert caught.value.remote
    assert "refused a request of agent" in server.log()
    # the real agent is untouched
    assert london.wait_online()["status"] == "online"


def _dial_with(files_dir: Path, agent_id: str, port: int, ticket: str, src: Path) -> list:
    """Push ``x.bin`` to the listener at ``port`` as agent ``agent_id`` (its data dir's key)."""

    async def push() -> list:
        engine = Engine(
            EngineSettings(streams=1, retry_deadline=1, connect_timeout=5),
            client_ssl=client_ssl_context(
                files_dir / "ca.crt",
                cert_file=files_dir / "agent.crt",
                key_file=files_dir / "agent.key",
                check_hostname=False,
            ),
            volumes={"projects": Volume("projects", src)},
        )
        try:
            spec = FileSpec("k", VolumePath("projects", "x.bin"), VolumePath("projects", "x.bin"))
            job = Assignment("t-revoked", PeerAddress("127.0.0.1", port), (spec,), ticket)
            return await engine.push(job)
        finally:
            await engine.aclose()

    return asyncio.run(push())


def test_a_revoked_agent_is_refused_by_the_control_plane_and_its_peers(
    studio: dict, tmp_path: Path
) -> None:
    server: RunningServer = studio["server"]
    hq: RunningAgent = studio["agents"]["hq"]
    roots: dict[str, Path] = studio["roots"]
    src = tmp_path / "src"
    src.mkdir()
    (src / "x.bin").write_bytes(b"from a revoked agent")
    with running_agent(server, "london", tmp_path / "london-2", check_clean_exit=False) as doomed:
        doomed.wait_online()
        port = hq.wait_online()["peer_port"]
        ticket = TicketSigner.load_or_create(server.ca_file.parent).sign(
            Ticket(
                transfer_id="t-revoked",
                sender_id=doomed.server_id,
                receiver_id=hq.server_id,
                files=(TicketFile("projects", "x.bin", "projects", "x.bin"),),
                expires_at=time.time() + 600,
            )
        )
        # before: the ticket is good (the file moves), the peer accepts this agent
        [before] = _dial_with(doomed.data_dir, doomed.server_id, port, ticket, src)
        assert before.status == "done", before
        (roots["hq"] / "x.bin").unlink()

        done = server.cli("agent", "revoke", doomed.data_dir.name)  # by hostname
        assert done.returncode == 0, done.stderr
        assert f"revoked agent {doomed.data_dir.name} ({doomed.server_id})" in done.stderr
        listed = {a["id"]: a for a in json.loads(server.cli("agent", "list", "--json").stdout)}
        assert listed[doomed.server_id]["status"] == "revoked"

        # the agent stops with one clear line
        code = doomed.process.wait(timeout=30)
        log = doomed.log()
        assert code == RevokedError.exit_code, log
        assert "was revoked by an admin" in log
        assert "Traceback" not in log

        # its own key and secret no longer open the control plane (no work, no heartbeat)
        signer = _own_signer(doomed)
        _refused(
            _post(server, _secret(doomed), signer.headers("POST", HEARTBEAT, BODY)),
            "revoked",
            "was revoked by an admin",
        )
        work = httpx.get(
            f"{server.url}{AGENT_API}/work",
            params={"wait": 0, "transfers": 4},
            headers={
                "Authorization": f"Agent {_secret(doomed)}",
                **signer.headers("GET", f"{AGENT_API}/work?wait=0&transfers=4", b""),
            },
            verify=ssl.create_default_context(cafile=str(server.ca_file)),
        )
        _refused(work, "revoked", "was revoked")

        # its peers refuse its certificate, even with a ticket that is still valid, once they
        # have heard of the revocation (their next heartbeat, within 10 s; SECURITY.md)
        def refused_by_peer() -> object:
            (roots["hq"] / "x.bin").unlink(missing_ok=True)  # taken before hq had heard of it
            [after] = _dial_with(doomed.data_dir, doomed.server_id, port, ticket, src)
            return after if after.status == "failed" else None

        after = wait_until(refused_by_peer, 20, "the hq agent to refuse the revoked agent")
        assert after.error_code == "forbidden", after
        assert "was revoked" in (after.error_message or "")
        assert not (roots["hq"] / "x.bin").exists()
        # a revoked agent cannot be enabled again
        with server.session() as admin, pytest.raises(ValidationError, match="was revoked"):
            admin.request("PATCH", f"/servers/{doomed.server_id}", json_body={"status": "enabled"})
    # and a job still flows between the agents that remain
    (roots["hq"] / "after.bin").write_bytes(b"still moving")
    with server.session() as admin:
        job = admin.submit_job(
            {"source": "volume=projects/after.bin", "destination": "site=london"}
        )
        final = wait_until(
            lambda: (j := admin.get_entity("job", job["id"]))["status"] in ("done", "failed") and j,
            60,
            "the job after the revocation",
        )
    assert final["status"] == "done", final
    assert (roots["london"] / "after.bin").read_bytes() == b"still moving"


def test_revoke_cli_refuses_unknown_and_ambiguous_names(studio: dict) -> None:
    server: RunningServer = studio["server"]
    unknown = server.cli("agent", "revoke", "no-such-agent")
    assert unknown.returncode != 0
    assert "no agent 'no-such-agent'" in unknown.stderr
    assert "Traceback" not in unknown.stderr
