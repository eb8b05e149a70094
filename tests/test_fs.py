"""Volume roots, path confinement, atomic publish and the resume journal, on real files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import reelsync.fs as fs
from reelsync.domain.chunks import chunk_checksum
from reelsync.errors import ConflictError, DiskFullError, NotFoundError, PathError
from reelsync.fs import (
    PartFile,
    Volume,
    is_unchanged,
    normalize_relpath,
    same_file,
    write_whole_file,
)


@pytest.fixture
def vol(tmp_path: Path) -> Volume:
    root = tmp_path / "root"
    root.mkdir()
    return Volume("proj", root)


def test_public_api_is_pinned() -> None:
    assert sorted(fs.__all__) == sorted(set(fs.__all__))
    for name in fs.__all__:
        assert hasattr(fs, name)


@pytest.mark.parametrize(
    ("text", "norm"),
    [("a/b/c.exr", "a/b/c.exr"), ("./a//b/", "a/b"), ("", ""), (".", ""), ("é/ü", "é/ü")],
)
def test_normalize_accepts(text: str, norm: str) -> None:
    assert normalize_relpath(text) == norm


@pytest.mark.parametrize(
    "text",
    ["../x", "a/../../b", "a/..", "/etc/passwd", "C:/x", "a\\b", "a\x00b", "a/.x.reelsync-part"],
)
def test_normalize_refuses(text: str) -> None:
    with pytest.raises(PathError):
        normalize_relpath(text)


def test_symlink_escaping_the_root_is_refused(vol: Volume, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("s")
    (vol.root / "esc").symlink_to(outside)
    (vol.root / "inner").mkdir()
    (vol.root / "ok").symlink_to(vol.root / "inner")
    with pytest.raises(PathError):
        vol.resolve("esc/secret")
    with pytest.raises(PathError):
        vol.open_read("esc/secret")
    with pytest.raises(PathError):
        write_whole_file(vol, "esc/new", b"x", mode=0o644, mtime_ns=0)
    assert not (outside / "new").exists()
    assert vol.resolve("ok") == (vol.root / "inner").resolve()  # a link inside the root is fine


def test_open_read_does_not_follow_a_final_symlink(vol: Volume) -> None:
    (vol.root / "f").write_text("x")
    (vol.root / "link").symlink_to(vol.root / "f")
    fd = vol.open_read("f")
    os.close(fd)
    with pytest.raises(ConflictError):
        vol.open_read("")  # a folder


def test_file_operations(vol: Volume) -> None:
    vol.mkdir("a/b")
    (vol.root / "a/b/f.txt").write_bytes(b"hello")
    (vol.root / "a/.f.txt.reelsync-part").write_bytes(b"partial")
    assert vol.exists("a/b/f.txt")
    assert not vol.exists("a/zzz")
    assert vol.size("a/b/f.txt") == 5
    listed = vol.list("a", recursive=True)
    assert [e.path for e in listed] == ["a/b", "a/b/f.txt"]
    assert listed[1].size == 5
    assert not listed[1].is_dir
    assert listed[0].is_dir
    vol.rename("a/b/f.txt", "c/g.txt")
    assert (vol.root / "c/g.txt").read_bytes() == b"hello"
    with pytest.raises(NotFoundError):
        vol.rename("a/b/f.txt", "x")
    (vol.root / "c/h.txt").write_bytes(b"")
    with pytest.raises(ConflictError):
        vol.rename("c/h.txt", "c/g.txt")
    with pytest.raises(ConflictError):
        vol.delete("c")
    vol.delete("c", recursive=True)
    assert not vol.exists("c")
    with pytest.raises(PathError):
        vol.delete("")
    with pytest.raises(NotFoundError):
        vol.size("nope")
    with pytest.raises(NotFoundError):
        Volume("x", vol.root / "missing")


def test_whole_file_publish_keeps_mode_and_mtime(vol: Volume) -> None:
    write_whole_file(vol, "s/h/f.exr", b"data", mode=0o640, mtime_ns=1_600_000_000_123_456_789)
    st = os.stat(vol.root / "s/h/f.exr")
    assert st.st_mode & 0o777 == 0o640
    assert st.st_mtime_ns == 1_600_000_000_123_456_789
    assert is_unchanged(vol, "s/h/f.exr", 4, 1_600_000_000_123_456_789)
    assert not is_unchanged(vol, "s/h/f.exr", 4, 1)
    assert not is_unchanged(vol, "s/h/none", 4, 1)
    assert [p.name for p in (vol.root / "s/h").iterdir()] == ["f.exr"]


def test_part_file_assembles_out_of_order_and_resumes(vol: Volume) -> None:
    data = os.urandom(10_000)
    cs = 4096
    pieces = [data[i : i + cs] for i in range(0, len(data), cs)]
    part = PartFile(vol, "big.mov", size=len(data), mtime_ns=5, chunk_size=cs)
    assert part.part.name == ".big.mov.reelsync-part"
    assert part.chunks == 3
    part.write_chunk(2, pieces[2], chunk_checksum(pieces[2]))
    part.write_chunk(0, pieces[0], chunk_checksum(pieces[0]))
    part.close()  # crash: the part and journal stay
    assert not (vol.root / "big.mov").exists()

    again = PartFile(vol, "big.mov", size=len(data), mtime_ns=5, chunk_size=cs)
    assert sorted(again.resumable()) == [0, 2]
    # damage chunk 2 on disk: it is no longer offered
    with open(again.part, "r+b") as fh:
        fh.seek(2 * cs)
        fh.write(b"\x00")
    assert sorted(again.resumable()) == [0]
    again.write_chunk(1, pieces[1], chunk_checksum(pieces[1]))
    again.write_chunk(2, pieces[2], chunk_checksum(pieces[2]))
    again.publish(mode=0o600, mtime_ns=5)
    assert (vol.root / "big.mov").read_bytes() == data
    assert sorted(p.name for p in vol.root.iterdir()) == ["big.mov"]


def test_part_file_writeback_starts_each_chunk_to_disk_as_it_lands(
    vol: Volume, monkeypatch: pytest.MonkeyPatch
) -> None:
    import reelsync.fs.partfile as partfile

    data = os.urandom(10_000)
    cs = 4096
    real = PartFile(vol, "real.mov", size=len(data), mtime_ns=5, chunk_size=cs, writeback=True)
    for i in (2, 0, 1):  # the real system call (Linux), out of order
        piece = data[i * cs : (i + 1) * cs]
        real.write_chunk(i, piece, chunk_checksum(piece))
    real.publish(mode=0o600, mtime_ns=5)
    assert (vol.root / "real.mov").read_bytes() == data

    asked: list[tuple[int, int, int]] = []
    monkeypatch.setattr(partfile, "_SYNC_FILE_RANGE", lambda fd, o, n, f: asked.append((o, n, f)))
    part = PartFile(vol, "big.mov", size=len(data), mtime_ns=5, chunk_size=cs, writeback=True)
    for i in (2, 0, 1):
        piece = data[i * cs : (i + 1) * cs]
        part.write_chunk(i, piece, chunk_checksum(piece))
    part.publish(mode=0o600, mtime_ns=5)
    assert asked == [(8192, 1808, 2), (0, 4096, 2), (4096, 4096, 2)]
    assert (vol.root / "big.mov").read_bytes() == data
    plain = PartFile(vol, "plain.mov", size=len(data), mtime_ns=5, chunk_size=cs)
    plain.write_chunk(0, data[:cs], chunk_checksum(data[:cs]))
    plain.discard()
    assert len(asked) == 3  # without writeback, no hint


def test_journal_of_another_source_version_is_discarded(vol: Volume) -> None:
    part = PartFile(vol, "f", size=100, mtime_ns=1, chunk_size=50)
    part.write_chunk(0, b"a" * 50, chunk_checksum(b"a" * 50))
    part.close()
    journal = vol.root / ".f.reelsync-journal"
    with open(journal, "ab") as fh:
        fh.write(b"torn")  # a torn record is ignored
    same = PartFile(vol, "f", size=100, mtime_ns=1, chunk_size=50)
    assert list(same.resumable()) == [0]
    same.close()
    newer = PartFile(vol, "f", size=100, mtime_ns=2, chunk_size=50)
    assert newer.resumable() == {}
    newer.discard()
    assert list(vol.root.iterdir()) == []


def test_wrong_chunk_length_is_refused(vol: Volume) -> None:
    part = PartFile(vol, "f", size=100, mtime_ns=1, chunk_size=50)
    with pytest.raises(Exception, match="not 50"):
        part.write_chunk(1, b"x", chunk_checksum(b"x"))
    part.discard()


def test_destination_folder_is_refused(vol: Volume) -> None:
    vol.mkdir("d")
    with pytest.raises(ConflictError):
        PartFile(vol, "d", size=1, mtime_ns=1, chunk_size=1)


def test_disk_full_leaves_nothing(tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.mkdir()
    if os.system(f"mount -t tmpfs -o size=1m tmpfs {small} 2>/dev/null") != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        vol = Volume("small", small)
        with pytest.raises(DiskFullError):
            PartFile(vol, "huge", size=4 << 20, mtime_ns=1, chunk_size=1 << 20)
        with pytest.raises(DiskFullError):
            write_whole_file(vol, "whole", b"x" * (2 << 20), mode=0o644, mtime_ns=1)
        # a one-chunk file is not preallocated: its one write finds the disk full
        one = PartFile(vol, "one", size=2 << 20, mtime_ns=1, chunk_size=4 << 20, journal=False)
        with pytest.raises(DiskFullError):
            one.write_chunk(0, b"x" * (2 << 20), chunk_checksum(b"x" * (2 << 20)))
        assert list(small.iterdir()) == []
    finally:
        os.system(f"umount {small}")


def test_a_folder_swapped_for_an_escaping_symlink_is_refused(vol: Volume, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    vol.mkdir("shots")
    assert vol.resolve("shots/a.exr") == vol.real_root / "shots/a.exr"
    (vol.root / "shots").rmdir()
    (vol.root / "shots").symlink_to(outside)
    vol.forget()  # what a cache expiry (DIR_CACHE_SECONDS) does
    with pytest.raises(PathError):
        vol.resolve("shots/a.exr")
    with pytest.raises(PathError):
        write_whole_file(vol, "shots/b.exr", b"x", mode=0o644, mtime_ns=1)
    assert list(outside.iterdir()) == []


def test_whole_file_onto_a_folder_is_refused_and_leaves_nothing(vol: Volume) -> None:
    vol.mkdir("d/e")
    with pytest.raises(ConflictError, match="is a folder"):
        write_whole_file(vol, "d/e", b"x", mode=0o644, mtime_ns=0)
    assert sorted(p.name for p in (vol.root / "d").iterdir()) == ["e"]
    (vol.root / "f").write_text("file")
    with pytest.raises(ConflictError, match="not a folder"):
        write_whole_file(vol, "f/g", b"x", mode=0o644, mtime_ns=0)


def test_lookup_gives_the_path_and_its_stat(vol: Volume, tmp_path: Path) -> None:
    path, st = vol.lookup("new/dir/f.txt")
    assert st is None
    write_whole_file(vol, "new/dir/f.txt", b"abc", mode=0o600, mtime_ns=7, resolved=path)
    assert (vol.root / "new/dir/f.txt").read_bytes() == b"abc"
    path2, st2 = vol.lookup("new/dir/f.txt")
    assert path2 == path
    assert same_file(st2, 3, 7)
    assert not same_file(st2, 3, 8)
    outside = tmp_path / "outside"
    outside.mkdir()
    (vol.root / "esc").symlink_to(outside / "x")
    with pytest.raises(PathError):
        vol.lookup("esc")


def test_a_kept_walk_is_reused_once_and_not_after_its_time(tmp_path: Path, monkeypatch) -> None:
    """A folder sized at submit (walk kept) is listed for its transfer from that same walk,
    once; a later walk lists it afresh, and a listing older than WALK_KEPT_S is not used."""
    from reelsync.fs import volume as volume_module

    (tmp_path / "v" / "shot" / "sub").mkdir(parents=True)
    (tmp_path / "v" / "shot" / "a.exr").write_bytes(b"aa")
    (tmp_path / "v" / "shot" / "sub" / "b.exr").write_bytes(b"bbb")
    (tmp_path / "v" / "shot" / "link").symlink_to(tmp_path)  # never followed nor listed
    vol = Volume("projects", tmp_path / "v")
    real = vol.resolve_str("shot")
    sized = sorted((below, st.st_size) for below, st in vol.walk_files(real, keep=True))
    assert sized == [("a.exr", 2), ("sub/b.exr", 3)]
    (tmp_path / "v" / "shot" / "c.exr").write_bytes(b"c")  # after the size was taken
    assert sorted(b for b, _ in vol.walk_files(real, reuse=True)) == ["a.exr", "sub/b.exr"]
    assert sorted(b for b, _ in vol.walk_files(real, reuse=True)) == ["a.exr", "c.exr", "sub/b.exr"]
    list(vol.walk_files(real, keep=True))
    (tmp_path / "v" / "shot" / "d.exr").write_bytes(b"d")
    monkeypatch.setattr(volume_module, "WALK_KEPT_S", 0.0)  # the kept one is too old: a new walk
    assert len(list(vol.walk_files(real, reuse=True))) == 4


def test_a_kept_walk_outlives_another_thread_dropping_an_old_one(
    tmp_path: Path, monkeypatch
) -> None:
    """Walks kept by several threads at once (a sync's paths sized in parallel): an expired
    listing another thread drops between this walk's look and its drop is no error."""
    from reelsync.fs import volume as volume_module

    for name in ("sh010", "sh020"):
        (tmp_path / "v" / name).mkdir(parents=True)
        (tmp_path / "v" / name / "a.exr").write_bytes(b"aa")
    vol = Volume("projects", tmp_path / "v")
    list(vol.walk_files(vol.resolve_str("sh010"), keep=True))
    monkeypatch.setattr(volume_module, "WALK_KEPT_S", 0.0)  # every kept walk is now too old

    class Racing(dict):  # the other thread drops each old listing right after it was seen
        def items(self):  # type: ignore[no-untyped-def]
            seen = list(super().items())
            self.clear()
            return seen

    vol._kept = Racing(vol._kept)
    assert [b for b, _ in vol.walk_files(vol.resolve_str("sh020"), keep=True)] == ["a.exr"]
