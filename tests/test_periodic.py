"""The background pass the sweep and housekeeping loops share: it runs at once and again after
each interval, a failing pass (a reelsync error, or a defect with its traceback) is logged and
the loop goes on, and stop() waits for the running pass."""

from __future__ import annotations

import asyncio
import logging

import pytest

from reelsync.errors import UnavailableError
from reelsync.scheduler.periodic import PeriodicPass


async def test_a_failing_pass_is_logged_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    passes = 0
    third = asyncio.Event()
    released = asyncio.Event()
    finished = False

    async def run_pass() -> None:
        nonlocal passes, finished
        passes += 1
        if passes == 1:
            raise UnavailableError("the database is down")
        if passes == 2:
            raise RuntimeError("a defect")
        third.set()
        await released.wait()  # stop() must wait for this pass
        finished = True

    log = logging.getLogger("reelsync.test.periodic")
    loop = PeriodicPass(run_pass, interval_s=lambda: 0.01, name="t", what="the pass", log=log)
    with caplog.at_level(logging.INFO, logger="reelsync.test.periodic"):
        await loop.start()
        await asyncio.wait_for(third.wait(), 30)
        stopping = asyncio.create_task(loop.stop())
        await asyncio.sleep(0)
        assert not stopping.done()
        released.set()
        await asyncio.wait_for(stopping, 30)
    assert finished
    assert passes == 3
    warning, defect = caplog.records
    assert (warning.levelno, warning.getMessage()) == (
        logging.WARNING, "the pass failed: the database is down"
    )  # fmt: skip
    assert (defect.levelno, defect.getMessage()) == (logging.ERROR, "the pass failed")
    assert defect.exc_info is not None
