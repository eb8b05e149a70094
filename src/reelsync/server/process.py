"""The control plane process: uvicorn serving one ASGI app. Rules: sockets are bound before
anything starts, so a busy port is one clear error and nothing runs; HTTPS (TLS 1.2 or 1.3 with
forward-secret AEAD ciphers only, the certificate issued by the workspace CA) unless ``tls`` is
off; the optional accsyn dev listener is
plain HTTP on 127.0.0.1 only and serves the same app; SIGTERM and SIGINT stop both listeners
gracefully (in-flight requests finish, the app's lifespan shutdown runs) and the process exits 0;
logs go to stderr. The event loop is uvloop's where it is installed (its loop and TLS cost a
request ~10-20 % less CPU than asyncio's), asyncio's otherwise."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import socket
import ssl
from collections.abc import Generator
from typing import Any

import uvicorn

try:
    import uvloop
except ImportError:  # pragma: no cover - a platform without it: asyncio's own loop
    uvloop = None  # type: ignore[assignment]

from reelsync.config import SERVER_CONFIG_FILE, ServerConfig
from reelsync.errors import ConfigError
from reelsync.pki import https_ssl_context

__all__ = ["bind_listeners", "bind_socket", "check_data_dir", "log_config", "serve"]

_log = logging.getLogger("reelsync.server")

# The accsyn client sends whole queries in a GET's query string (a few thousand codes).
MAX_REQUEST_HEAD = 1024 * 1024


def log_config(level: str, worker: int | None = None) -> dict[str, Any]:
    """uvicorn's and reelsync's loggers, all to stderr (each line says its ``worker``, 1-based,
    when the server runs several)."""
    tag = "" if worker is None else f"[worker {worker}] "
    fmt = f"%(asctime)s %(levelname)-7s {tag}%(name)s: %(message)s"
    handler = {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "formatter": "plain"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": fmt}},
        "handlers": {"stderr": handler},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            "uvicorn.access": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            "reelsync": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
        },
    }


def check_data_dir(config: ServerConfig) -> None:
    """Refuse to start on a data dir ``reelsync server init`` did not make."""
    data_dir = config.data_dir
    if not data_dir.is_dir():
        raise ConfigError(
            f"data dir {data_dir} does not exist",
            hint=f"run: reelsync server init --data-dir {data_dir} ...",
        )
    if not (data_dir / SERVER_CONFIG_FILE).is_file():
        raise ConfigError(
            f"{data_dir} is not a reelsync data dir (no {SERVER_CONFIG_FILE})",
            hint=f"run: reelsync server init --data-dir {data_dir} ...",
        )
    if config.tls:
        for path in (config.cert_file, config.key_file):
            if not path.is_file():
                raise ConfigError(f"TLS file {path} is missing", hint="or run with --no-tls")


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket, or a one-line ConfigError (busy port, unknown address)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    family, kind, proto, _, addr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(addr)
        sock.listen(2048)
        sock.set_inheritable(True)
    except OSError as exc:
        sock.close()
        reason = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise ConfigError(f"cannot listen on {host}:{port}: {reason}") from exc
    return sock


class _Server(uvicorn.Server):
    """A uvicorn server whose signals are handled by :func:`serve`, for all listeners at once,
    and whose idle connections end at once when it stops."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's graceful stop, but a connection it closes (an idle keep-alive one at once,
        one answering a request once its response is written) is cut as soon as nothing is left
        to write: over TLS a close waits for the peer's close_notify, which an idle client (a
        browser tab, a script's or a CLI's connection pool) never sends, so any of them held
        every stop for the whole graceful timeout (10 s). What was written still reaches
        the peer (the socket is closed, not reset)."""
        stopping = asyncio.ensure_future(super().shutdown(sockets))
        await asyncio.sleep(0)  # uvicorn has run up to its first wait: every close is asked
        while not stopping.done():
            for connection in list(self.server_state.connections):
                transport: Any = getattr(connection, "transport", None)  # asyncio's or uvloop's
                if transport is None or not transport.is_closing():
                    continue  # still answering a request: it finishes as uvicorn lets it
                if transport.get_write_buffer_size() == 0:
                    transport.abort()
            await asyncio.wait({stopping}, timeout=0.05)
        await stopping


def _tls_context(config: ServerConfig) -> ssl.SSLContext:
    return https_ssl_context(config.cert_file, config.key_file)


def _run_stop_hooks(app: Any) -> None:
    """Callables in ``app.state.stop_hooks`` run when a stop signal arrives, before uvicorn waits
    for open requests (the agents' work long-polls end at once instead of holding the stop)."""
    for hook in getattr(getattr(app, "state", None), "stop_hooks", ()):
        hook()


async def _serve_all(
    servers: list[tuple[_Server, socket.socket]], signals: tuple[signal.Signals, ...]
) -> None:
    loop = asyncio.get_running_loop()

    def stop(signame: str) -> None:
        _log.info("received %s, shutting down", signame)
        for server, _ in servers:
            if server.should_exit:
                server.force_exit = True
            server.should_exit = True
        _run_stop_hooks(servers[0][0].config.app)

    for sig in signals:
        loop.add_signal_handler(sig, stop, sig.name)
    try:
        first, first_sock = servers[0]
        tasks = [asyncio.create_task(first.serve(sockets=[first_sock]))]
        while not first.started and not tasks[0].done():
            await asyncio.sleep(0.02)
        for server, sock in servers[1:]:
            tasks.append(asyncio.create_task(server.serve(sockets=[sock])))
        await asyncio.gather(*tasks)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
    if not first.started:
        raise ConfigError("the control plane failed to start (see the log above)")


def bind_listeners(config: ServerConfig) -> list[socket.socket]:
    """Bind the main listener and, if asked, the accsyn dev listener; all or none."""
    socks = [bind_socket(config.host, config.port)]
    try:
        if config.accsyn_dev_port is not None:
            socks.append(bind_socket("127.0.0.1", config.accsyn_dev_port))
    except ConfigError:
        for sock in socks:
            sock.close()
        raise
    return socks


def serve(
    config: ServerConfig,
    app: Any,
    sockets: list[socket.socket] | None = None,
    *,
    worker: int | None = None,
) -> None:
    """Run ``app`` until SIGTERM or SIGINT on ``sockets`` (from :func:`bind_listeners`; bound
    here when not given). The sockets are closed on return. ``worker`` (1-based): one of several
    worker processes, stopped by SIGTERM only (their parent turns a SIGINT into one)."""
    socks = sockets if sockets is not None else bind_listeners(config)
    main_sock = socks[0]
    logs = log_config(config.log_level, worker)
    main_cfg = uvicorn.Config(
        app,
        log_config=logs,
        lifespan="on",
        timeout_graceful_shutdown=10,
        h11_max_incomplete_event_size=MAX_REQUEST_HEAD,
        ssl_certfile=str(config.cert_file) if config.tls else None,
        ssl_keyfile=str(config.key_file) if config.tls else None,
        ssl_context_factory=(lambda _cfg, _default: _tls_context(config)) if config.tls else None,
    )
    servers = [(_Server(main_cfg), main_sock)]
    if len(socks) > 1:
        dev_cfg = uvicorn.Config(
            app,
            log_config=None,
            lifespan="off",
            timeout_graceful_shutdown=10,
            h11_max_incomplete_event_size=MAX_REQUEST_HEAD,
        )
        servers.append((_Server(dev_cfg), socks[1]))
    if worker is None or worker == 1:
        _log.info("reelsync control plane at %s (web UI at %s/ui/)", config.url, config.url)
    if (worker is None or worker == 1) and config.smtp.host is None:
        _log.warning(
            "no SMTP server is configured: job e-mails wait in the outbox unsent "
            "(set [smtp] host in server.toml or REELSYNC_SMTP_HOST, and restart)"
        )
    if config.accsyn_dev_port is not None:
        _log.info("accsyn dev listener at http://127.0.0.1:%d", config.accsyn_dev_port)
    signals = (signal.SIGTERM,) if worker is not None else (signal.SIGTERM, signal.SIGINT)
    loop_factory = uvloop.new_event_loop if uvloop is not None else None
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(_serve_all(servers, signals))
    finally:
        for sock in socks:
            sock.close()
