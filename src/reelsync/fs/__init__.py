"""reelsync.fs: volume roots and path confinement, the file operations of an agent, atomic publish
of received files (direct I/O where the file system takes it) and the resume journal."""

from __future__ import annotations

from reelsync.fs.direct import DIRECT_IO_MODES
from reelsync.fs.journal import JournalHeader, ResumeJournal
from reelsync.fs.partfile import (
    PartFile,
    WholeFile,
    is_unchanged,
    os_error,
    same_file,
    write_whole_file,
    write_whole_files,
)
from reelsync.fs.paths import JOURNAL_SUFFIX, PART_SUFFIX, is_reserved_name, normalize_relpath
from reelsync.fs.volume import Entry, Volume

__all__ = [
    "DIRECT_IO_MODES",
    "JOURNAL_SUFFIX",
    "PART_SUFFIX",
    "Entry",
    "JournalHeader",
    "PartFile",
    "ResumeJournal",
    "Volume",
    "WholeFile",
    "is_reserved_name",
    "is_unchanged",
    "normalize_relpath",
    "os_error",
    "same_file",
    "write_whole_file",
    "write_whole_files",
]
