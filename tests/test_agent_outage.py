"""Agents get back to work as soon as their control plane is back: a real control plane stopped for
a while (long enough for a retry backoff to grow to seconds) and started again, with two real
agents; a one-file job submitted the moment it answers moves about as fast as the same job did
before the outage (the agents' retry pauses while nothing answers are short, and the work poll
follows the heartbeat that got through, not a pause of its own).

The retry pauses are read from the agents' own log (a line per failed try at debug level), so
the check does not depend on how loaded the machine is: a pause that grew the way a doubling
backoff grows shows as a gap of 4-8 s between two tries, a probe every second as gaps of about
one second however slow each try is. The job's own time after the outage is compared with the
same job's time before it, with room for the probe pause and one heartbeat and work poll."""

from __future__ import annotations

import re
import signal
import time
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path

import pytest

from support.agents import add_london_and_projects, agents_at_hq_and_london, wait_until
from support.servers import RunningServer, running_server, start_server_process

pytestmark = pytest.mark.slow

#: How long the control plane stays down: the outage being reproduced (a restart that takes a
#: while); long enough for a doubling backoff from 0.5 s to reach pauses of 4-8 s.
DOWN_S = 9.0
#: What the agents may add to the job's own time once the control plane answers: their retry
#: pause while it is down (1 s), one heartbeat and work poll, and a loaded machine's delays. A
#: work poll that waited a backoff of its own (up to 10 s) shows here; the heartbeat's own
#: pauses are checked exactly from the log.
SLACK_S = DOWN_S / 2
#: The longest gap allowed between two tries while the control plane is down: the probe pause
#: (1 s) plus a try that cannot connect, with ample room for a loaded machine; a backoff that had
#: doubled from 0.5 s would show gaps of 4-8 s by now.
MAX_GAP_S = 3.0
_TRY = re.compile(r"^(\S+ \S+) DEBUG\s+reelsync\.agent: control plane: .*\(retrying\)$", re.M)


def _tries(log: str) -> list[float]:
    """When the agent tried the control plane and failed (quietly: after the first failure)."""
    return [
        datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp() for stamp in _TRY.findall(log)
    ]


def _one_file_job(server: RunningServer, roots: dict[str, Path], name: str) -> float:
    """Seconds from the submit of a one-file job hq -> london until it is done."""
    (roots["hq"] / name).write_bytes(name.encode() * 1000)
    with server.session() as admin:
        started = time.monotonic()
        job = admin.submit_job({"destination": "site=london", "tasks": [f"share=projects/{name}"]})
        wait_until(
            lambda: admin.get_entity("job", job["id"])["status"] == "done", 120, f"job {name}"
        )
        took = time.monotonic() - started
    assert (roots["london"] / name).read_bytes() == name.encode() * 1000
    return took


def test_agents_work_again_within_a_second_of_the_control_plane_coming_back(
    tmp_path: Path,
) -> None:
    roots = {site: tmp_path / site / "projects" for site in ("hq", "london")}
    for root in roots.values():
        root.mkdir(parents=True)
    with ExitStack() as stack:
        server = stack.enter_context(running_server(tmp_path / "server", check_clean_exit=False))
        add_london_and_projects(server, roots)
        agents = agents_at_hq_and_london(
            stack, server, tmp_path, env={"REELSYNC_LOG_LEVEL": "debug"}
        )
        before = min(_one_file_job(server, roots, f"before{i}.bin") for i in range(2))
        marks = {site: len(agent.log()) for site, agent in agents.items()}
        server.stop(signal.SIGTERM)  # a restart: an upgrade, a new setting
        # both agents saw it go (their work long-poll dropped), then it stays down a while
        wait_until(
            lambda: all("control plane:" in a.log()[marks[s] :] for s, a in agents.items()),
            60,
            "the agents to see the outage",
        )
        time.sleep(DOWN_S)  # the outage itself, not a synchronisation
        start_server_process(server)
        after = _one_file_job(server, roots, "after.bin")
        for site, agent in agents.items():
            tries = _tries(agent.log()[marks[site] :])
            assert len(tries) >= 3, (site, tries)  # the agent kept trying while it was down
            gaps = [b - a for a, b in zip(tries, tries[1:], strict=False)]
            assert max(gaps) < MAX_GAP_S, (site, gaps)
        assert after < before + SLACK_S, (before, after, agents["hq"].log()[marks["hq"] :])
