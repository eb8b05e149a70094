"""One accsyn event being handled, and the backend handle the router runs it with.

Rules: the caller is authenticated for every event (e-mail + reelsync API key, through the same
service the native API uses); handlers get a :class:`Call` and call the services with
``call.db``/``call.actor``; the request's ``Idempotency-Key`` header, when a client sends one
(the official client does not), is ``call.idempotency_key``; ``call.fence_s`` is the server's
fence for a pause or an abort (``ServerConfig.fence_s``); a handler that needs the files of a
volume returns a :class:`PendingFileOp`, which the router hands to the FileOperator outside the
thread pool.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from reelsync.config import DEFAULT_FENCE_S
from reelsync.db import Database
from reelsync.domain.fileops import FileRequest
from reelsync.domain.records import Actor
from reelsync.server.accsyn.wire import Credentials, Envelope
from reelsync.services import auth, workspace

__all__ = ["Backend", "Call", "FileLister", "PendingFileOp", "PreSubmit"]

#: The server's pre-submit hook (``app.state.submit_hook``, the admin's command run before a job
#: is accepted): called with the payload before anything is written; raises to refuse.
PreSubmit = Callable[[Database, Actor, Mapping[str, Any]], None]


class FileLister(Protocol):
    """Runs a file operation on the agent serving its volume, from the handler's worker thread
    (given ``timeout_s``, gives up after that long with TimeoutError)."""

    def __call__(self, request: FileRequest, /, timeout_s: float | None = None) -> Any: ...


@dataclass(frozen=True, slots=True)
class Call:
    db: Database
    actor: Actor
    envelope: Envelope
    verb: str
    kind: str
    action: str
    workspace_code: str
    submit_hook: PreSubmit | None = None
    list_files: FileLister | None = None
    idempotency_key: str | None = None
    fence_s: float = DEFAULT_FENCE_S

    @property
    def data(self) -> dict[str, Any]:
        return self.envelope.data_dict


@dataclass(frozen=True, slots=True)
class PendingFileOp:
    """File operations resolved and allowed; ``labels`` set when the caller sent a path list."""

    requests: tuple[FileRequest, ...]
    labels: tuple[Any, ...] | None = None


class Backend:
    """The services handle of one app: its database and workspace."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._workspace_code: str | None = None

    def workspace_code(self) -> str:
        if self._workspace_code is None:
            self._workspace_code = workspace.get_workspace(self.db).code
        return self._workspace_code

    def authenticate(self, credentials: Credentials) -> Actor:
        return auth.authenticate(self.db, credentials.api_key, email=credentials.username)

    def run(
        self,
        credentials: Credentials,
        handler: Callable[[Call], Any],
        envelope: Envelope,
        verb: str,
        kind: str,
        action: str,
        submit_hook: PreSubmit | None = None,
        list_files: FileLister | None = None,
        idempotency_key: str | None = None,
        fence_s: float = DEFAULT_FENCE_S,
    ) -> Any:
        actor = self.authenticate(credentials)
        call = Call(
            self.db,
            actor,
            envelope,
            verb,
            kind,
            action,
            self.workspace_code(),
            submit_hook,
            list_files,
            idempotency_key,
            fence_s,
        )
        return handler(call)
