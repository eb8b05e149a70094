"""pytest fixtures over :mod:`support.servers` (loaded by tests/conftest.py):

- ``live_server`` (module scope, parametrized ``sqlite`` and ``postgres``): one real control plane
  per test module and database, HTTPS with the workspace CA.
- ``server_factory`` (function scope): ``start(database="sqlite"|"postgres", tls=True,
  accsyn_dev_port=None, extra_args=(), env=None) -> RunningServer`` for tests that need their own
  server or options; every server started is stopped with SIGTERM and must exit cleanly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from support.postgres import fresh_database
from support.servers import RunningServer, running_server

__all__ = ["DATABASES", "live_server", "server_factory"]

DATABASES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _start(stack: ExitStack, base: Path, database: str, **options: Any) -> RunningServer:
    if database not in ("sqlite", "postgres"):
        raise ValueError(f"database must be sqlite or postgres, not {database!r}")
    url = stack.enter_context(fresh_database()) if database == "postgres" else None
    return stack.enter_context(running_server(base, database_url=url, **options))


@pytest.fixture(scope="module", params=DATABASES)
def live_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    with ExitStack() as stack:
        yield _start(stack, tmp_path_factory.mktemp(f"server-{request.param}"), request.param)


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    with ExitStack() as stack:
        count = 0

        def start(database: str = "sqlite", **options: Any) -> RunningServer:
            nonlocal count
            count += 1
            return _start(stack, tmp_path / f"server{count}", database, **options)

        yield start
