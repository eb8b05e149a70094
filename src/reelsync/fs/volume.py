"""A volume root on this machine and the file operations an agent performs inside it.

Rules: every operation takes a path relative to the root and checks it with
:func:`~reelsync.fs.paths.normalize_relpath`; the path is then resolved (symlinks followed) and
must still lie inside the root's resolved path, else PathError. Resolved folders are cached
for a couple of seconds (one ``lstat`` per file instead of one per path component); the final
component is checked every time and opened with ``O_NOFOLLOW`` so a symlink swapped in is not
followed. Listing never follows symlinks and never shows reelsync's temporary files (a folder's
walk, :meth:`Volume.walk_files`, starts from its resolved path, so its files stay below it).
An ACL's granted sub-path (a *scope*) is judged on resolved paths too: :meth:`Volume.check_within`.
Writers hold the destination folder open (:meth:`Volume.open_folder`, proven to be the folder
resolved) and create, rename and remove files relative to that descriptor, so a symlink swapped
into the path mid-transfer cannot redirect a write.
"""

from __future__ import annotations

import errno
import itertools
import os
import shutil
import stat as stat_mod
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from reelsync.domain.paths import shorten
from reelsync.errors import ConflictError, NotFoundError, PathError, PermissionDeniedError
from reelsync.fs.paths import JOURNAL_SUFFIX, PART_SUFFIX, is_reserved_name, normalize_relpath

__all__ = [
    "DIR_CACHE_SECONDS",
    "WALK_KEPT_FILES",
    "WALK_KEPT_S",
    "Entry",
    "Volume",
    "path_in_folder",
]

DIR_CACHE_SECONDS = 2.0
WALK_KEPT_S = 5.0  # how long a folder's listing is kept for the next walk (walk_files keep=)
WALK_KEPT_FILES = 50_000  # larger listings are not kept (memory stays flat on big trees)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_PROC_FDS = os.path.isdir("/proc/self/fd")
_RESERVED_SUFFIXES = (PART_SUFFIX, JOURNAL_SUFFIX)  # is_reserved_name, inlined in walks


@dataclass(frozen=True, slots=True)
class Entry:
    """A file or folder seen in a volume; ``path`` is relative to the volume root."""

    path: str
    is_dir: bool
    size: int
    mtime_ns: int
    mode: int


def path_in_folder(folder_fd: int, folder: str, name: str) -> str:
    """A path naming ``name`` inside the open folder ``folder_fd`` itself (on Linux, through
    ``/proc/self/fd``), for code that takes a path (the resume journal)."""
    if _PROC_FDS:
        return f"/proc/self/fd/{folder_fd}/{name}"
    return f"{folder}/{name}"


def _is_at(fd: int, folder: str) -> bool:
    """Whether the open folder ``fd`` is ``folder`` (a resolved path): the kernel's name for it."""
    if _PROC_FDS:
        try:
            return os.readlink(f"/proc/self/fd/{fd}") == folder
        except OSError:
            pass
    st = os.fstat(fd)
    try:
        there = os.stat(folder, follow_symlinks=False)
    except OSError:
        return False
    same = (there.st_dev, there.st_ino) == (st.st_dev, st.st_ino)
    return same and os.path.realpath(folder) == folder


def _entry(rel: str, st: os.stat_result) -> Entry:
    is_dir = stat_mod.S_ISDIR(st.st_mode)
    return Entry(
        rel, is_dir, 0 if is_dir else st.st_size, st.st_mtime_ns, stat_mod.S_IMODE(st.st_mode)
    )


class Volume:
    """The files under ``root``, addressed by relative paths, confined to the root."""

    def __init__(self, code: str, root: Path | str) -> None:
        self.code = code
        self.root = Path(root)
        try:
            self.real_root = Path(os.path.realpath(self.root, strict=True))
        except OSError as exc:
            raise NotFoundError(f"volume {code!r}: root {self.root} does not exist") from exc
        if not self.real_root.is_dir():
            raise PathError(f"volume {code!r}: root {self.root} is not a folder")
        self._dirs: dict[str, tuple[str, float]] = {}
        # folder -> (when, its walk): a listing kept for the next walk of it (see walk_files)
        self._kept: dict[str, tuple[float, list[tuple[str, os.stat_result]]]] = {}
        #: called with (relative path, resolved path) on each lookup; raises to refuse it (the
        #: agent holds paths to the scopes of the tickets naming them, see agent/scopes.py)
        self.confine: Callable[[str, str], None] | None = None
        self._root_str = str(self.real_root)
        self._root_prefix = self._root_str.rstrip("/") + "/"

    def __repr__(self) -> str:
        return f"Volume({self.code!r}, {str(self.root)!r})"

    # -- confinement -----------------------------------------------------------------------------
    def resolve(self, rel: str) -> Path:
        """The absolute, symlink-free path of ``rel``, proven to be inside the root.

        The resolved folders are cached for :data:`DIR_CACHE_SECONDS` (a folder replaced by a
        symlink is noticed after that); the final component is checked on every call."""
        return Path(self.resolve_str(rel))

    def resolve_str(self, rel: str) -> str:
        """:meth:`resolve` as a string (the per-file hot path: no pathlib objects)."""
        return self.lookup(rel)[0]

    def lookup(self, rel: str) -> tuple[str, os.stat_result | None]:
        """:meth:`resolve_str` plus the stat of what the path names (None when nothing is
        there), from the same system call (saves a stat per file when planning). With
        :attr:`confine` set, it judges every resolved path too."""
        found = self._lookup(rel)
        if self.confine is not None:
            self.confine(normalize_relpath(rel), found[0])
        return found

    def _lookup(self, rel: str) -> tuple[str, os.stat_result | None]:
        norm = normalize_relpath(rel)
        if not norm:
            return self._root_str, os.stat(self._root_str)
        parent_rel, _, name = norm.rpartition("/")
        candidate = self._real_dir(parent_rel) + "/" + name
        try:
            st = os.lstat(candidate)
        except OSError:
            return candidate, None
        if not stat_mod.S_ISLNK(st.st_mode):
            return candidate, st
        real = self._inside(os.path.realpath(candidate), rel)
        try:
            return real, os.stat(real)
        except OSError:
            return real, None

    def resolve_folder(self, rel: str) -> str:
        """The resolved path of the folder ``rel`` (it need not exist yet), proven inside the
        root and judged by :attr:`confine`, for code that then names many files directly in it
        (``f"{folder}/{name}"``, ``name`` one plain component, its final symlink checked by the
        caller's ``lstat``): the folder's resolution and checks are paid once, not per file."""
        norm = normalize_relpath(rel)
        real = self._real_dir(norm)
        if self.confine is not None:
            self.confine(norm, real)
        return real

    def _inside(self, real: str, rel: str) -> str:
        if real != self._root_str and not real.startswith(self._root_prefix):
            raise PathError(f"path {rel!r} resolves outside volume {self.code!r} (symlink)")
        return real

    def _real_dir(self, parent_rel: str) -> str:
        """The resolved path of the folder ``parent_rel`` (normalized), folder by folder from
        the deepest one resolved recently: a folder not seen yet costs one ``lstat`` (and a
        ``realpath`` only when it is a symlink), not one per component of its path."""
        if not parent_rel:
            return self._root_str
        now = time.monotonic()
        dirs = self._dirs
        hit = dirs.get(parent_rel)
        if hit is not None and now - hit[1] < DIR_CACHE_SECONDS:
            return hit[0]
        real, prefix = self._root_str, ""
        for name in parent_rel.split("/"):
            prefix = f"{prefix}/{name}" if prefix else name
            hit = dirs.get(prefix)
            if hit is not None and now - hit[1] < DIR_CACHE_SECONDS:
                real = hit[0]
                continue
            candidate = self._root_prefix + name if real == self._root_str else f"{real}/{name}"
            try:
                linked = stat_mod.S_ISLNK(os.lstat(candidate).st_mode)
            except OSError:  # nothing there (yet): the path as it will be made
                linked = False
            real = self._inside(os.path.realpath(candidate), prefix) if linked else candidate
            if len(dirs) > 4096:
                dirs.clear()
            dirs[prefix] = (real, now)
        return real

    def check_within(self, rel: str, scope: str | None) -> None:
        """Raise PermissionDeniedError unless ``rel``, symlinks followed (uncached), lies inside
        ``scope``, symlinks followed too; ``""`` is the whole volume, None allows nothing."""
        if scope is None:
            raise PermissionDeniedError(f"{self.code}:{shorten(rel)}: no access granted")
        if not scope:
            return
        real_scope = os.path.realpath(self._root_prefix + normalize_relpath(scope))
        real = os.path.realpath(self._root_prefix + normalize_relpath(rel))
        if real != real_scope and not real.startswith(real_scope.rstrip("/") + "/"):
            raise PermissionDeniedError(
                f"{self.code}:{shorten(rel)} leads outside {scope!r}, the part of the volume "
                "granted (a symlink)",
                hint="ask an admin for a grant on where the symlink leads",
            )

    def open_folder(self, folder: str, rel: str) -> int:
        """A descriptor of ``folder`` (resolved, inside the root; made when missing) that is
        proven to be that folder now, not one a symlink in its path leads to; PathError when it
        is not. Files made, renamed or removed relative to it stay in it whatever is swapped
        into its path later."""
        try:
            try:
                fd = os.open(folder, _DIR_FLAGS)
            except FileNotFoundError:  # made here, proven below by the folder opened
                self.make_folder(folder, rel, check=False)
                fd = os.open(folder, _DIR_FLAGS)
        except OSError as exc:
            where = f"{self.code}:{shorten(rel)}"
            if exc.errno == errno.ELOOP or os.path.islink(folder):
                self.forget()
                raise PathError(f"the folder of {where} became a symlink") from exc
            if isinstance(exc, NotADirectoryError | FileExistsError):
                raise ConflictError(f"a parent of {where} is not a folder") from exc
            raise
        if not _is_at(fd, folder):
            os.close(fd)
            self.forget()
            raise PathError(
                f"the folder of {self.code}:{shorten(rel)} moved while it was being written "
                "(a symlink in its path)"
            )
        return fd

    def make_folder(self, folder: str, rel: str, *, check: bool = True) -> None:
        """Make ``folder`` (resolved, inside the root) and its parents for ``rel``, then
        :meth:`check_folder` it; ``check=False`` for a caller that opens it and proves the
        folder opened instead (:meth:`open_folder`: the kernel's name for it, not one
        ``realpath``, an ``lstat`` per component, per folder made)."""
        try:
            os.makedirs(folder, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as exc:
            raise ConflictError(f"a parent of {self.code}:{shorten(rel)} is not a folder") from exc
        except PermissionError as exc:
            raise PermissionDeniedError(
                f"cannot create the folder of {self.code}:{shorten(rel)}"
            ) from exc
        if check:
            self.check_folder(folder, rel)

    def check_folder(self, folder: str, rel: str) -> None:
        """Re-check, uncached, that ``folder`` (just created for ``rel``) is still itself:
        a symlink planted while it was being made must not lead outside the root."""
        if os.path.realpath(folder) != folder:
            raise PathError(f"{self.code}:{rel} moved while its folder was being created")

    def forget(self) -> None:
        """Drop cached folder resolutions (after folders were renamed or deleted)."""
        self._dirs.clear()

    def relative(self, path: Path) -> str:
        return path.relative_to(self.real_root).as_posix()

    # -- queries ---------------------------------------------------------------------------------
    def stat(self, rel: str) -> Entry:
        path = self.resolve(rel)
        try:
            st = os.stat(path, follow_symlinks=False)
        except FileNotFoundError as exc:
            raise NotFoundError(f"{self.code}:{rel} does not exist") from exc
        except PermissionError as exc:
            raise PermissionDeniedError(f"{self.code}:{rel}: permission denied") from exc
        return _entry(normalize_relpath(rel), st)

    def exists(self, rel: str) -> bool:
        try:
            self.stat(rel)
        except NotFoundError:
            return False
        return True

    def size(self, rel: str) -> int:
        entry = self.stat(rel)
        if entry.is_dir:
            raise ConflictError(f"{self.code}:{rel} is a folder")
        return entry.size

    def list(self, rel: str = "", *, recursive: bool = False) -> list[Entry]:
        """Files and folders under ``rel`` (sorted by path), without following symlinks."""
        return sorted(self.iter(rel, recursive=recursive), key=lambda e: e.path)

    def iter(self, rel: str = "", *, recursive: bool = False) -> Iterator[Entry]:
        base = self.resolve(rel)
        if not base.is_dir():
            if base.exists():
                yield self.stat(rel)
                return
            raise NotFoundError(f"{self.code}:{rel} does not exist")
        # strings, not Path objects: this walks every file of a folder being sent or sized
        stack = [(str(base), self.relative(base) if base != self.real_root else "")]
        while stack:
            folder, folder_rel = stack.pop()
            try:
                with os.scandir(folder) as it:
                    for de in it:
                        if is_reserved_name(de.name) or de.is_symlink():
                            continue
                        st = de.stat(follow_symlinks=False)
                        rel_path = f"{folder_rel}/{de.name}" if folder_rel else de.name
                        yield _entry(rel_path, st)
                        if recursive and stat_mod.S_ISDIR(st.st_mode):
                            stack.append((de.path, rel_path))
            except PermissionError as exc:
                raise PermissionDeniedError(f"{folder}: permission denied") from exc

    def walk_files(
        self, folder: str, *, keep: bool = False, reuse: bool = False
    ) -> Iterator[tuple[str, os.stat_result]]:
        """The regular files below ``folder`` (a resolved path inside the root, as
        :meth:`lookup` gives it), recursively: (path below ``folder``, its ``lstat``), from one
        ``scandir`` per folder and one ``lstat`` per file (a sub-folder is known by the
        listing's file type). Symlinks are never followed (nor
        listed) and reelsync's temporary files are skipped, so every file lies below the real
        ``folder``: a scope judged on ``folder`` holds for them all.

        ``keep``: the listing is kept for :data:`WALK_KEPT_S` seconds (up to
        :data:`WALK_KEPT_FILES` files) and a walk of the same folder with ``reuse`` takes it
        instead of walking again, once: a folder sized when a sync is submitted is listed for
        its transfer a moment later from that same walk (the sender still checks each file's
        size, mtime and ctime when it opens it)."""
        if reuse:
            kept = self._kept.pop(folder, None)
            if kept is not None and time.monotonic() - kept[0] < WALK_KEPT_S:
                return iter(kept[1])
        if keep:
            walk = self._walk(folder)
            listing = list(itertools.islice(walk, WALK_KEPT_FILES + 1))
            if len(listing) > WALK_KEPT_FILES:  # too many to keep: the rest is not held
                return itertools.chain(listing, walk)
            now = time.monotonic()
            for old in [k for k, (t, _) in list(self._kept.items()) if now - t >= WALK_KEPT_S]:
                self._kept.pop(old, None)  # another thread's walk may have dropped it meanwhile
            self._kept[folder] = (now, listing)
            return iter(listing)
        return self._walk(folder)

    def _walk(self, folder: str) -> Iterator[tuple[str, os.stat_result]]:
        stack = [(folder, "")]
        while stack:
            here, prefix = stack.pop()
            try:
                with os.scandir(here) as it:
                    for de in it:
                        name = de.name
                        if name.endswith(_RESERVED_SUFFIXES):
                            continue
                        # the listing's file type first (no system call): only a file is
                        # stat'ed, and its lstat has the last word (it may have been swapped)
                        if de.is_file(follow_symlinks=False):
                            st = de.stat(follow_symlinks=False)
                            if stat_mod.S_ISREG(st.st_mode):
                                yield prefix + name, st
                        elif de.is_dir(follow_symlinks=False):
                            stack.append((de.path, prefix + name + "/"))
            except FileNotFoundError:
                if here == folder:
                    raise NotFoundError(f"{folder} does not exist") from None
            except NotADirectoryError:
                if here == folder:
                    raise
            except PermissionError as exc:
                raise PermissionDeniedError(f"{here}: permission denied") from exc

    # -- changes ---------------------------------------------------------------------------------
    def mkdir(self, rel: str) -> None:
        path = self.resolve(rel)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except FileExistsError as exc:
            raise ConflictError(f"{self.code}:{rel} exists and is not a folder") from exc
        # a symlink planted between resolve() and mkdir() must not lead us outside
        self.check_folder(str(path), rel)

    def rename(self, src: str, dst: str, *, overwrite: bool = False) -> None:
        a, b = self.resolve(src), self.resolve(dst)
        if not a.exists():
            raise NotFoundError(f"{self.code}:{src} does not exist")
        if b.exists() and not overwrite:
            raise ConflictError(f"{self.code}:{dst} already exists")
        b.parent.mkdir(parents=True, exist_ok=True)
        os.replace(a, b)
        self.forget()

    def delete(self, rel: str, *, recursive: bool = False) -> None:
        path = self.resolve(rel)
        if path == self.real_root:
            raise PathError(f"refusing to delete the root of volume {self.code!r}")
        self.forget()
        try:
            if path.is_dir():
                if recursive:
                    shutil.rmtree(path)
                else:
                    path.rmdir()
            else:
                path.unlink()
        except FileNotFoundError as exc:
            raise NotFoundError(f"{self.code}:{rel} does not exist") from exc
        except OSError as exc:
            if exc.errno == errno.ENOTEMPTY:
                raise ConflictError(f"{self.code}:{rel} is a folder that is not empty") from exc
            raise

    def open_read(self, rel: str, resolved: str | None = None, *, checked: bool = True) -> int:
        """A read-only descriptor of the file ``rel`` (``O_NOFOLLOW`` on the final component);
        ``resolved`` is a path :meth:`resolve` just returned for it. ``checked=False`` skips the
        ``fstat`` proving it a regular file, for a caller that fstats the descriptor after
        reading anyway (it must check the type then); the file is opened non-blocking, so a
        FIFO swapped in meanwhile never blocks the open or the read."""
        path = resolved or self.resolve(rel)
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(path, flags if checked else flags | os.O_NONBLOCK)
        except FileNotFoundError as exc:
            raise NotFoundError(f"{self.code}:{rel} does not exist") from exc
        except PermissionError as exc:
            raise PermissionDeniedError(f"{self.code}:{rel}: permission denied") from exc
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise PathError(f"{self.code}:{rel} became a symlink") from exc
            raise
        if checked and not stat_mod.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise ConflictError(f"{self.code}:{rel} is not a regular file")
        return fd
