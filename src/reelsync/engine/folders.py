"""Folders as one transfer item: the files of a folder travel as files, their outcomes fold back
into one result for the folder's key.

Rules: the sending side lists a folder (recursively, never following symlinks, never listing
reelsync's temporary files) when it builds the manifest; each file gets a *child key*,
``<folder key>`` + :data:`CHILD_SEP` + its path below the folder, and travels like any other file.
A folder's result is known once its file count is known and every file has an outcome: failed if
any file failed (the first failures are named, retryable if every failure is), skipped if every
file was skipped, else done; ``size`` and ``bytes_sent`` are the sums. An empty folder is done at
once (the receiver creates it). :class:`FolderObserver` passes a folder's progress on as the sum
of its files' progress and swallows its files' own results, so the observer sees one key per
folder, as it asked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from reelsync.engine.model import FileResult, NullObserver, TransferObserver
from reelsync.errors import PathBusyError

__all__ = ["CHILD_SEP", "FolderObserver", "FolderTally", "child_key", "folder_key"]

#: Separates a folder's key from the path of one of its files in a child key.
CHILD_SEP = "\x1f"
_NAMED = 3  # failures named in a folder's error message


def child_key(folder: str, rel: str) -> str:
    return f"{folder}{CHILD_SEP}{rel}"


def folder_key(key: str) -> str | None:
    """The folder key of a child key; None for an ordinary key."""
    head, sep, _ = key.partition(CHILD_SEP)
    return head if sep else None


@dataclass(slots=True)
class FolderTally:
    """The outcomes of one folder's files, until all are in: counts and sums (and the first
    failures, to name them), so a folder of 100,000 files holds no result per file."""

    key: str
    expected: int | None = None
    size: int = 0
    count: int = 0
    sizes: int = 0
    sent: int = 0
    skipped: int = 0
    failures: int = 0
    failed: list[FileResult] = field(default_factory=list)  # the first ones
    retryable: bool = True  # every failure so far is
    busy: bool = True  # every failure so far is ``path_busy`` (no try, see scheduler/reports)
    other_code: str | None = None  # else: the first other failure's code

    def expect(self, files: int, size: int) -> FileResult | None:
        self.expected, self.size = files, size
        return self._complete()

    def add(self, result: FileResult) -> FileResult | None:
        self._take(result)
        return self._complete()

    def add_done(self, count: int, size: int, sent: int) -> FileResult | None:
        """``count`` files of ``size`` bytes in all, published (``sent`` bytes sent)."""
        self.count += count
        self.sizes += size
        self.sent += sent
        return self._complete()

    def add_skipped(self, count: int, size: int) -> FileResult | None:
        """``count`` files of ``size`` bytes in all, skipped (already at the destination)."""
        self.count += count
        self.skipped += count
        self.sizes += size
        return self._complete()

    def _take(self, r: FileResult) -> None:
        self.count += 1
        self.sizes += r.size
        self.sent += r.bytes_sent
        if r.status == "skipped":
            self.skipped += 1
        elif r.status == "failed":
            self.failures += 1
            self.retryable = self.retryable and r.retryable
            if self.busy and r.error_code != PathBusyError.code:
                self.busy, self.other_code = False, r.error_code
            if len(self.failed) < _NAMED:
                self.failed.append(r)

    def _complete(self) -> FileResult | None:
        if self.expected is None or self.count < self.expected:
            return None
        return self.result()

    def result(self) -> FileResult:
        size, sent, count = self.sizes, self.sent, self.count
        if self.failures:
            failed = self.failed
            named = "; ".join(
                f"{(r.key.partition(CHILD_SEP)[2] or r.key)}: {r.error_message}" for r in failed
            )
            more = f" (+{self.failures - _NAMED} more)" if self.failures > _NAMED else ""
            return FileResult(
                self.key,
                "failed",
                max(size, self.size),
                sent,
                None,
                failed[0].error_code if self.busy else self.other_code,
                f"{self.failures} of {count} files failed: {named}{more}",
                retryable=self.retryable,
                files=count,
            )
        if count and self.skipped == count:
            return FileResult(self.key, "skipped", size, sent, files=count)
        return FileResult(self.key, "done", size, sent, files=count)


class FolderObserver:
    """Passes progress and results on, folding a folder's files into the folder's key."""

    def __init__(self, inner: TransferObserver) -> None:
        self.inner = inner
        self._files: dict[str, tuple[int, int]] = {}  # child key -> (done, size)
        self._folders: dict[str, tuple[int, int]] = {}  # folder key -> (done, size) sums
        self._totals: dict[str, int] = {}  # folder key -> announced total size

    def announce(self, folder: str, size: int) -> None:
        """The folder's total size, once known (it sizes the progress)."""
        self._totals[folder] = size

    def file_progress(self, key: str, bytes_done: int, size: int) -> None:
        folder = folder_key(key)
        if folder is None:
            self.inner.file_progress(key, bytes_done, size)
            return
        old_done, old_size = self._files.get(key, (0, 0))
        self._files[key] = (bytes_done, size)
        done, total = self._folders.get(folder, (0, 0))
        done += bytes_done - old_done
        total += size - old_size
        self._folders[folder] = (done, total)
        self.inner.file_progress(folder, done, max(total, self._totals.get(folder, 0)))

    def file_finished(self, result: FileResult) -> None:
        if folder_key(result.key) is None:
            self.inner.file_finished(result)
            return
        self.file_progress(result.key, result.size, result.size)  # a finished file counts whole
        self._files.pop(result.key, None)  # settled: nothing more comes for it

    def files_done(self, done: list[tuple[str, int]]) -> None:
        """Files (key, size) of one folder published at once, as :meth:`file_finished` of each
        would say it: one progress call for their folder."""
        if not done:
            return
        folder = folder_key(done[0][0])
        if folder is None:
            for key, size in done:
                self.file_finished(FileResult(key, "done", size))
            return
        self._fold(folder, done)

    def files_skipped(self, skipped: list[tuple[str, int]]) -> None:
        """Files (key, size) of one folder skipped at once, as :meth:`file_finished` of each
        would say it: child keys as one progress call for their folder; other keys (a
        listener's) one result each, unless nobody listens."""
        if not skipped:
            return
        folder = folder_key(skipped[0][0])
        if folder is None:
            if not isinstance(self.inner, NullObserver):
                for key, size in skipped:
                    self.file_finished(FileResult(key, "skipped", size))
            return
        self._fold(folder, skipped)

    def _fold(self, folder: str, finished: list[tuple[str, int]]) -> None:
        """Files (key, size) of ``folder`` finished: counted whole, one progress call."""
        done, total = self._folders.get(folder, (0, 0))
        files = self._files
        for key, size in finished:
            old_done, old_size = files.pop(key, (0, 0))
            done += size - old_done
            total += size - old_size
        self._folders[folder] = (done, total)
        self.inner.file_progress(folder, done, max(total, self._totals.get(folder, 0)))

    def count_skipped(
        self,
        folder: str | None,
        count: int,
        size: int,
        listed: Callable[[], Iterable[tuple[str, int]]],
    ) -> None:
        """``count`` files of ``size`` bytes in all, skipped at once before any progress of
        theirs (a run of a folder planned ``skip``): files of ``folder`` (a key), one progress
        call; else (a listener's keys, ``folder`` None) what :meth:`files_skipped` says of
        ``listed()``, which is only called when somebody listens."""
        if not count:
            return
        if folder is None:
            if not isinstance(self.inner, NullObserver):
                self.files_skipped(list(listed()))
            return
        done, total = self._folders.get(folder, (0, 0))
        done, total = done + size, total + size
        self._folders[folder] = (done, total)
        self.inner.file_progress(folder, done, max(total, self._totals.get(folder, 0)))
