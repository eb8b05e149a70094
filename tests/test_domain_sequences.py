"""Image-sequence paths with a frame range: parsed, expanded into one task per frame, refused
clearly when malformed (pure domain code, no I/O)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reelsync.domain.jobspec import parse_job_spec, parse_task_specs
from reelsync.domain.party import format_party_path
from reelsync.domain.sequences import MAX_FRAMES, frame_path, parse_sequence
from reelsync.errors import ValidationError


def test_printf_and_hash_tokens_name_one_file_per_frame() -> None:
    seq = parse_sequence("proj001/sh0010/plate.%04d.exr[1001-1003]")
    assert seq is not None
    assert seq.paths() == [
        "proj001/sh0010/plate.1001.exr",
        "proj001/sh0010/plate.1002.exr",
        "proj001/sh0010/plate.1003.exr",
    ]
    assert seq.pattern == "proj001/sh0010/plate.%04d.exr"
    hashed = parse_sequence("plate.###.jpg[8-9,100,5]")
    assert hashed is not None
    assert hashed.paths() == ["plate.008.jpg", "plate.009.jpg", "plate.100.jpg", "plate.005.jpg"]
    unpadded = parse_sequence("a/b/x_%d[9-10]")
    assert unpadded is not None
    assert unpadded.paths() == ["a/b/x_9", "a/b/x_10"]
    # repeated frames come once, in the order first given
    again = parse_sequence("f.%02d.png[3-4,4,3,1]")
    assert again is not None
    assert again.frames == (3, 4, 1)


@pytest.mark.parametrize(
    "path",
    ["proj/plate.1001.exr", "proj/take#1.mov", "proj/notes[draft].txt", "proj/%04d/dir/file.exr"],
)
def test_plain_files_are_not_sequences(path: str) -> None:
    assert parse_sequence(path) is None


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("plate.%04d.exr", "no frame range"),
        ("plate.%04d.exr[9-1]", "backwards"),
        ("plate.%04d.exr[a-b]", "bad frame range"),
        ("plate.%04d.exr[]", "bad frame range"),
        ("plate.%04d.%04d.exr[1-2]", "one frame token"),
        (f"plate.%04d.exr[0-{MAX_FRAMES}]", "more than"),
    ],
)
def test_malformed_sequences_are_refused(path: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_sequence(path)


def test_frame_path_fills_a_destination_pattern() -> None:
    assert frame_path("out/comp.####.exr", 7) == "out/comp.0007.exr"
    assert frame_path("comp.%03d.exr", 12) == "comp.012.exr"
    with pytest.raises(ValidationError, match="exactly one"):
        frame_path("out/comp.exr", 1)


def test_a_sequence_task_becomes_one_task_per_frame() -> None:
    specs = parse_task_specs(
        [
            {
                "source": "share=projects/p/sh010/plate.%04d.exr[1001-1003]",
                "destination": "site=london",
            },
            "volume=projects/p/sh010/notes.txt",
        ]
    )
    assert [format_party_path(s.source) for s in specs] == [
        ":volume=projects/p/sh010/plate.1001.exr",
        ":volume=projects/p/sh010/plate.1002.exr",
        ":volume=projects/p/sh010/plate.1003.exr",
        ":volume=projects/p/sh010/notes.txt",
    ]
    assert [format_party_path(s.destination) for s in specs[:3] if s.destination] == [
        "site=london"
    ] * 3


def test_sequence_destinations_folder_pattern_or_refused() -> None:
    (a, b) = parse_task_specs(
        {
            "src": {
                "source": "volume=projects/p/plate.####.exr[1-2]",
                "destination": "site=london:volume=projects/in/comp.%04d.exr",
            }
        }
    )
    assert (a.uri, b.uri) == ("src/1", "src/2")
    assert a.destination is not None
    assert b.destination is not None
    assert format_party_path(a.destination) == "site=london:volume=projects/in/comp.0001.exr"
    assert format_party_path(b.destination) == "site=london:volume=projects/in/comp.0002.exr"
    folder = parse_task_specs(
        [{"source": "p/plate.%04d.exr[1-2]", "destination": "site=london:volume=projects/in/"}]
    )
    assert all(
        s.destination and s.destination.location and s.destination.location.is_dir for s in folder
    )
    with pytest.raises(ValidationError, match="must be a folder"):
        parse_task_specs(
            [{"source": "p/plate.%04d.exr[1-2]", "destination": "site=london:volume=x/one.exr"}]
        )
    with pytest.raises(ValidationError, match="without a frame range"):
        parse_task_specs(
            [{"source": "p/plate.%04d.exr[1-2]", "destination": "site=london:x/o.%04d.exr[1-2]"}]
        )


def test_a_job_level_sequence_source_is_expanded_too() -> None:
    spec = parse_job_spec(
        {"source": "share=projects/p/plate.%04d.exr[10-14]", "destination": "site=london"}
    )
    assert len(spec.tasks) == 5
    assert spec.tasks[-1].source.location is not None
    assert spec.tasks[-1].source.location.path == "p/plate.0014.exr"


@given(
    first=st.integers(0, 10_000),
    count=st.integers(1, 300),
    width=st.integers(0, 6),
    hashes=st.booleans(),
)
def test_expansion_covers_the_range_exactly(
    first: int, count: int, width: int, hashes: bool
) -> None:
    token = "#" * max(1, width) if hashes else f"%0{width}d"
    seq = parse_sequence(f"shot/plate.{token}.exr[{first}-{first + count - 1}]")
    assert seq is not None
    paths = seq.paths()
    assert len(paths) == len(set(paths)) == count
    pad = max(1, width) if hashes else width
    assert paths[0] == f"shot/plate.{first:0{pad}d}.exr"
    assert all(p.startswith("shot/plate.") and p.endswith(".exr") for p in paths)
