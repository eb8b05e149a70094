"""The control plane's ASGI app.

``create_app(config, database, routers=...)`` builds the FastAPI app: it puts ``config`` and
``database`` on ``app.state`` (read them through :mod:`reelsync.server.dependencies`), installs the
one error table of :mod:`reelsync.server.errors`, mounts the native REST API at ``/api/v1`` (its
OpenAPI at ``/api/v1/openapi.json``), then every router in ``routers`` (other parts' routers, e.g.
the accsyn v3 adapter or the agent endpoints, each carrying its own prefix), and the web UI at
``/ui/`` (:mod:`reelsync.server.ui`) and Prometheus metrics at ``/metrics`` (admins), all behind
the intake (:mod:`reelsync.server.intake`: body limits, credentials before bodies, the sign-in
throttle). The app
neither opens nor closes the database: its owner (the server process, a test) does.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, FastAPI

from reelsync import __version__
from reelsync.config import ServerConfig
from reelsync.db import Database
from reelsync.server.api_v1 import router as api_v1_router
from reelsync.server.errors import install_error_handlers
from reelsync.server.intake import Intake, SignInThrottle
from reelsync.server.jobbell import JobBell
from reelsync.server.metrics import router as metrics_router
from reelsync.server.metrics import shared_scrape
from reelsync.server.ui import install_ui
from reelsync.services.jobs import SubmitHook

__all__ = ["API_PREFIX", "create_app"]

API_PREFIX = "/api/v1"


def create_app(
    config: ServerConfig,
    database: Database,
    *,
    routers: Sequence[APIRouter] = (),
    submit_hook: SubmitHook | None = None,
    throttle: SignInThrottle | None = None,
) -> FastAPI:
    app = FastAPI(
        title="reelsync control plane",
        version=__version__,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
    )
    app.state.config = config
    app.state.database = database
    app.state.submit_hook = submit_hook  # the pre-submit hook (reelsync.notify.hooks.PreSubmitHook)
    app.state.job_bell = JobBell()  # rung by agent reports; wakes GET /jobs/{id}?wait=
    app.state.metrics_scrape = shared_scrape(database)  # concurrent scrapes share one
    install_error_handlers(app)
    app.include_router(api_v1_router, prefix=API_PREFIX)
    app.include_router(metrics_router)
    for router in routers:
        app.include_router(router)
    install_ui(app, config)
    if throttle is None:  # several workers share one (server/workers.py)
        throttle = SignInThrottle(burst=config.signin_burst, per_s=1 / config.signin_refill_s)
    app.add_middleware(Intake, throttle=throttle)  # limits and credentials before bodies
    return app
