"""What an admin runs into with real agent processes: a bandwidth limit set centrally
(``reelsync agent limit``) that the agent applies at its next heartbeat, the rates agents report
shown by ``reelsync agent list``, and ``reelsync agent run`` meeting a data dir never enrolled, a
broken config, an unreachable control plane or a volume path missing at its site: one clear line
(or a log line and a retry), never a traceback."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from reelsync.errors import ConfigError
from support.agents import (
    RunningAgent,
    add_london_and_projects,
    enroll_agent,
    make_token,
    running_agent,
    start_agent,
    wait_until,
)
from support.servers import RunningServer, child_env, free_port, run_cli, running_server

pytestmark = pytest.mark.slow

MIB = 1 << 20
SERVER_ENV = {"REELSYNC_AGENT_OFFLINE_AFTER_S": "2"}  # agents beat every 0.5 s


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    tmp = tmp_path_factory.mktemp("agentops")
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


def _listed(server: RunningServer, agent: RunningAgent) -> dict:
    done = server.cli("agent", "list", "--json")
    assert done.returncode == 0, done.stderr
    [entry] = [a for a in json.loads(done.stdout) if a["id"] == agent.server_id]
    return dict(entry)


def test_a_central_limit_is_applied_and_rates_are_shown(studio: dict) -> None:
    server: RunningServer = studio["server"]
    london: RunningAgent = studio["agents"]["london"]
    roots: dict[str, Path] = studio["roots"]
    limit = 2 * MIB
    done = server.cli("agent", "limit", london.data_dir.name, "2")
    assert done.returncode == 0, done.stderr
    assert "will use 2 MiB/s each way from its next beat" in done.stderr
    entry = wait_until(
        lambda: (e := _listed(server, london))["applied_limit"] == limit and e,
        20,
        "the london agent to apply the central limit",
    )
    assert entry["bandwidth_limit"] == limit
    assert "bandwidth limit: 2.00 MiB/s (set on the control plane)" in london.log()

    size = 6 * MIB
    (roots["hq"] / "plate.mov").write_bytes(os.urandom(size))
    seen: list[float] = []
    with server.session() as admin:
        job = admin.submit_job(
            {"source": "volume=projects/plate.mov", "destination": "site=london"}
        )
        started = time.monotonic()

        def finished() -> dict | None:
            seen.append(float(_listed(server, london)["rate_received"] or 0.0))
            current: dict = admin.get_entity("job", job["id"])
            return current if current["status"] in ("done", "failed") else None

        final = wait_until(finished, 90, "the limited job")
        took = time.monotonic() - started
    assert final["status"] == "done", final
    assert (roots["london"] / "plate.mov").stat().st_size == size
    # london receives at most its limit (the sender, hq, has none)
    assert took >= 0.95 * size / limit, took
    print(f"central limit 2 MiB/s: 6 MiB job in {took:.2f} s; rates seen {sorted(seen)[-3:]}")
    assert max(seen) > 0.3 * limit, seen  # the rate was reported while it moved
    assert max(seen) <= 1.3 * limit, seen  # and stayed near the limit (0.5 s windows)
    human = server.cli("agent", "list", COLUMNS="200")
    assert "2.0 MiB/s (central)" in human.stdout, human.stdout

    back = server.cli("agent", "limit", london.data_dir.name, "none")
    assert back.returncode == 0, back.stderr
    entry = wait_until(
        lambda: (e := _listed(server, london))["applied_limit"] is None and e,
        20,
        "the london agent to drop the central limit",
    )
    assert entry["bandwidth_limit"] is None
    assert "bandwidth limit: none (agent.toml)" in london.log()
    bad = server.cli("agent", "limit", london.data_dir.name, "fast")
    assert bad.returncode != 0
    assert "the limit must be MiB/s or 'none'" in bad.stderr


def test_a_volume_path_missing_at_the_site_is_one_warning(studio: dict) -> None:
    server: RunningServer = studio["server"]
    london: RunningAgent = studio["agents"]["london"]
    ghost = studio["tmp"] / "not-mounted"
    with server.session() as admin:
        admin.create(
            "volume",
            {"code": "ghost", "paths": {"hq": str(studio["roots"]["hq"]), "london": str(ghost)}},
        )
    wait_until(lambda: "not serving volume ghost" in london.log(), 20, "the warning")
    with server.session() as admin:
        first = admin.get_entity("server", london.server_id)["last_checkin"]
        later: set[str] = set()

        def beats() -> int:
            later.add(admin.get_entity("server", london.server_id)["last_checkin"])
            return len(later - {first})

        # several more heartbeats, each answer naming the volume again (a rare long-poll
        # arrival is a check-in too: four new check-ins are at least three beats)
        wait_until(lambda: beats() >= 4, 30, "several more heartbeats")
    log = london.log()
    assert log.count("not serving volume ghost") == 1, log
    assert "Traceback" not in log
    assert london.wait_online()["status"] == "online"


def _run_agent(data_dir: Path, home: Path) -> tuple[int, str]:
    done = run_cli(["agent", "run", "--data-dir", str(data_dir)], child_env(home))
    return done.returncode, done.stderr


def test_agent_run_with_a_bad_data_dir_is_one_line(tmp_path: Path) -> None:
    code, err = _run_agent(tmp_path / "never-enrolled", tmp_path)
    assert code == ConfigError.exit_code
    assert "is not an enrolled agent's data dir" in err
    assert "reelsync agent enroll" in err
    broken = tmp_path / "broken"
    broken.mkdir()
    for text, words in [
        ("agent = [", "cannot read"),
        ("agent = 5", "[agent] must be a table"),
        ('[agent]\nserver_url = "https://h"\nserver_id = "x"\n', "has no agent.site"),
        (
            '[agent]\nserver_url = "https://h"\nserver_id = "x"\nsite = "hq"\n'
            '[peer]\nlisten = "0.0.0.0:99999"\n',
            "peer ports must be",
        ),
        (
            '[agent]\nserver_url = "https://h"\nserver_id = "x"\nsite = "hq"\n'
            '[transfer]\nbandwidth_limit_mib_s = "lots"\n',
            "bandwidth_limit_mib_s must be a number",
        ),
        (
            '[agent]\nserver_url = "https://h"\nserver_id = "x"\nsite = "hq"\n'
            "report_keepalive_s = 0\n",
            "agent.report_keepalive_s must be at least 0.1",
        ),
    ]:
        (broken / "agent.toml").write_text(text)
        code, err = _run_agent(broken, tmp_path)
        assert code == ConfigError.exit_code, (text, err)
        assert words in err, (text, err)
        assert len(err.strip().splitlines()) == 1, err
        assert "Traceback" not in err


def test_an_unreachable_control_plane_is_logged_once_and_retried(
    studio: dict, tmp_path: Path
) -> None:
    server: RunningServer = studio["server"]
    data_dir = tmp_path / "lonely"
    done = enroll_agent(server, data_dir, make_token(server, "hq"))
    assert done.returncode == 0, done.stderr
    dead = f"https://127.0.0.1:{free_port()}"
    env = {"REELSYNC_AGENT_SERVER_URL": dead, "REELSYNC_LOG_LEVEL": "debug"}  # logs each retry
    process, log_file = start_agent(server, data_dir, env)
    try:
        wait_until(lambda: "cannot reach" in log_file.read_text(), 20, "the warning")
        wait_until(lambda: log_file.read_text().count("(retrying)") >= 3, 30, "several retries")
        assert process.poll() is None, log_file.read_text()
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(30)
    log = log_file.read_text()
    assert code == 0, log
    assert log.count("cannot reach") - log.count("(retrying)") == 1, log  # one warning
    assert "retrying every" in log
    assert "Traceback" not in log
