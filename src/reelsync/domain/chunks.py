"""Chunk arithmetic and checksums shared by the wire protocol and the file layer.

Rules: a chunk checksum is the xxh3-128 digest of the chunk's bytes, 16 bytes big-endian; a file's
digest is the xxh3-128 digest of the concatenated checksums of its chunks, in index order (a hash
list: computable from verified chunks without reading the file again); its text form is
``xxh3-128t:<hex>``. Files of ``chunk_size`` bytes or less are one chunk; an empty file is one
empty chunk.
"""

from __future__ import annotations

from collections.abc import Iterable

import xxhash

__all__ = [
    "CHECKSUM_SIZE",
    "DIGEST_PREFIX",
    "chunk_checksum",
    "chunk_count",
    "chunk_span",
    "digest_text",
    "file_digest",
]

CHECKSUM_SIZE = 16
DIGEST_PREFIX = "xxh3-128t:"


def chunk_checksum(data: bytes | bytearray | memoryview) -> bytes:
    """The checksum of one chunk (xxhash releases the GIL on large buffers)."""
    return xxhash.xxh3_128_digest(data)


def file_digest(checksums: Iterable[bytes]) -> bytes:
    """The whole-file digest from its chunk checksums in index order."""
    h = xxhash.xxh3_128()
    for c in checksums:
        h.update(c)
    return h.digest()


def digest_text(digest: bytes) -> str:
    return DIGEST_PREFIX + digest.hex()


def chunk_count(size: int, chunk_size: int) -> int:
    """How many chunks a file of ``size`` bytes has (at least one)."""
    if size <= 0:
        return 1
    return (size + chunk_size - 1) // chunk_size


def chunk_span(size: int, chunk_size: int, index: int) -> tuple[int, int]:
    """(offset, length) of chunk ``index`` of a file of ``size`` bytes."""
    offset = index * chunk_size
    return offset, max(0, min(chunk_size, size - offset))
