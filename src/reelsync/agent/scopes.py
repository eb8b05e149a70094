"""The scopes this agent must hold its files to: for each path a transfer ticket names (a file
or a folder), the granted sub-path its job owner may touch there.

Rules: the gate (tickets it accepts) and the work loop (transfers it dials) record each path's
scope until its ticket expires; every volume this agent serves asks :meth:`ScopeBook.check`
whenever it resolves a path (:attr:`reelsync.fs.Volume.confine`), so a file of a folder, found
while the transfer runs, is held to its folder's scope too. A path no live ticket names is not
this book's to judge; a path whose scope is None (the owner lost access) is refused; otherwise its
resolved form must lie inside the resolved form of one of its live scopes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from reelsync.domain.paths import shorten
from reelsync.errors import PermissionDeniedError
from reelsync.fs import Volume

__all__ = ["HOLD_S", "ScopeBook"]

_REAL_SCOPE_S = 2.0  # how long a scope's resolved path is reused
_PRUNE_S = 60.0  # expired entries are dropped at most this often
HOLD_S = 3600.0  # a path is held to its scope at least this long (a transfer may outlive a ticket)


class ScopeBook:
    def __init__(self) -> None:
        # (volume code, path) -> {scope: expiry (unix time)}
        self._scopes: dict[tuple[str, str], dict[str | None, float]] = {}
        self._real: dict[tuple[str, str], tuple[str, float]] = {}
        self._pruned = time.time()

    def add(self, code: str, path: str, scope: str | None, expires_at: float = 0.0) -> None:
        """Hold ``path`` to ``scope`` until ``expires_at`` and at least :data:`HOLD_S`."""
        now = time.time()
        if now - self._pruned > _PRUNE_S:
            self.prune(now)
        held = self._scopes.setdefault((code, path), {})
        held[scope] = max(expires_at, now + HOLD_S, held.get(scope, 0.0))

    def held(self, code: str, path: str) -> dict[str | None, float]:
        """The scopes ``path`` itself is held to, with their expiry (to pass to another process
        that resolves it: a data-plane worker, agent/dataplane.py)."""
        return dict(self._scopes.get((code, path), {}))

    def prune(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        self._pruned = now
        for key in list(self._scopes):
            live = {s: t for s, t in self._scopes[key].items() if t > now}
            if live:
                self._scopes[key] = live
            else:
                del self._scopes[key]

    def _live(self, code: str, rel: str, now: float) -> list[str | None] | None:
        """The live scopes of the nearest ticket path at or above ``rel`` (None: none names it)."""
        path = rel
        while True:
            held = self._scopes.get((code, path))
            if held is not None:
                live = [s for s, t in held.items() if t > now]
                if live:
                    return live
            if not path:
                return None
            path = path.rpartition("/")[0]

    def _real_scope(self, volume: Volume, scope: str, now: float) -> str:
        hit = self._real.get((volume.code, scope))
        if hit is not None and now - hit[1] < _REAL_SCOPE_S:
            return hit[0]
        real = os.path.realpath(f"{volume.real_root}/{scope}")
        if len(self._real) > 4096:
            self._real.clear()
        self._real[(volume.code, scope)] = (real, now)
        return real

    def check(self, volume: Volume, rel: str, real: str) -> None:
        """Raise PermissionDeniedError when ``rel`` (resolved: ``real``) leaves its scope."""
        if not self._scopes:
            return
        now = time.time()
        scopes = self._live(volume.code, rel, now)
        if scopes is None or "" in scopes:
            return
        for scope in scopes:
            if scope is None:
                continue
            inside = self._real_scope(volume, scope, time.monotonic())
            if real == inside or real.startswith(inside.rstrip("/") + "/"):
                return
        granted = next((s for s in scopes if s is not None), None)
        if granted is None:
            raise PermissionDeniedError(f"{volume.code}:{shorten(rel)}: no access granted")
        raise PermissionDeniedError(
            f"{volume.code}:{shorten(rel)} leads outside {granted!r}, the part of the volume "
            "granted (a symlink)",
            hint="ask an admin for a grant on where the symlink leads",
        )

    def confine(self, volume: Volume) -> Callable[[str, str], None]:
        """The check ``volume`` runs on each path it resolves."""
        return lambda rel, real: self.check(volume, rel, real)
