from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reelsync.domain.party import (
    Location,
    Party,
    PartyKind,
    PartyPath,
    format_party_path,
    parse_party_path,
)
from reelsync.errors import NotSupportedError, PathError, ReelsyncError, ValidationError

W, S = PartyKind.WORKSPACE, PartyKind.SITE


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("site=london", PartyPath(Party(S, "london"), None)),
        ("site=london:", PartyPath(Party(S, "london"), None)),
        ("a/b/c", PartyPath(Party(W), Location(None, "a/b/c"))),
        ("a/b/", PartyPath(Party(W), Location(None, "a/b", is_dir=True))),
        ("acmepost:volume=projects/x", PartyPath(Party(W), Location("projects", "x"))),
        ("volume=(default)/x/y", PartyPath(Party(W), Location(None, "x/y"))),
        ("share=projects/x\\y\\", PartyPath(Party(W), Location("projects", "x/y", is_dir=True))),
        ("site=hq:volume=projects", PartyPath(Party(S, "hq"), Location("projects", ""))),
        (
            "site=london:/data/p/a",
            PartyPath(Party(S, "london"), Location(None, "/data/p/a", absolute=True)),
        ),
        ("C:\\proj\\a.exr", PartyPath(Party(W), Location(None, "C:/proj/a.exr", absolute=True))),
        ("volume=p/a:b", PartyPath(Party(W), Location("p", "a:b"))),  # not a party before ':'
        ("hq:volume=p/a", PartyPath(Party(W), Location(None, "hq:volume=p/a"))),
        (
            "lisa@acmepost.com:a",
            PartyPath(Party(PartyKind.USER, "lisa@acmepost.com"), Location(None, "a")),
        ),
        ("client=abc:volume=p/a", PartyPath(Party(PartyKind.CLIENT, "abc"), Location("p", "a"))),
        ("./a//b/.", PartyPath(Party(W), Location(None, "a/b"))),
    ],
)
def test_parse_examples(text: str, expected: PartyPath) -> None:
    assert parse_party_path(text, workspace_code="AcmePost") == expected


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("a/../b", PathError),
        ("volume=p/../../etc", PathError),
        ("/mnt/../etc", PathError),
        ("", ValidationError),
        ("volume=/x", ValidationError),
        ("site=bad code:a", ValidationError),
        ("folder=x/a", NotSupportedError),
        ("~/a", NotSupportedError),
        ("volume=bad!code/a", ValidationError),
    ],
)
def test_parse_refuses(text: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_party_path(text)


_segment = st.text(
    alphabet=st.characters(blacklist_characters="/\\:\x00", blacklist_categories=("Cs", "Cc")),
    min_size=1,
    max_size=8,
).filter(lambda s: s not in (".", "..") and s.strip() == s)
_code = st.from_regex(r"[A-Za-z0-9_.-]{1,10}", fullmatch=True)


@st.composite
def party_paths(draw: st.DrawFn) -> PartyPath:
    party = draw(st.one_of(st.just(Party(W)), _code.map(lambda c: Party(S, c))))
    segments = draw(st.lists(_segment, min_size=0, max_size=4))
    path = "/".join(segments)
    absolute = draw(st.booleans())
    if absolute:
        location = Location(
            None, "/" + path, is_dir=bool(path) and draw(st.booleans()), absolute=True
        )
    else:
        volume = draw(st.one_of(st.none(), _code.filter(lambda c: c.lower() != "(default)")))
        location = Location(volume, path, is_dir=bool(path) and draw(st.booleans()))
    if party.kind is S and draw(st.booleans()):
        return PartyPath(party, None)
    return PartyPath(party, location)


@given(party_paths())
def test_format_then_parse_round_trips(value: PartyPath) -> None:
    assert parse_party_path(format_party_path(value)) == value


@given(st.text(max_size=60))
def test_any_text_parses_or_fails_cleanly(text: str) -> None:
    try:
        parsed = parse_party_path(text, workspace_code="acmepost")
    except ReelsyncError:
        return
    loc = parsed.location
    if loc is not None:
        assert ".." not in loc.path.split("/")
        assert "\\" not in loc.path
        if not loc.absolute:
            assert not loc.path.startswith("/")
            assert not loc.path.endswith("/")


@given(st.lists(_segment, min_size=1, max_size=4), st.integers(min_value=0, max_value=3))
def test_dotdot_anywhere_is_refused(segments: list[str], at: int) -> None:
    segments.insert(min(at, len(segments)), "..")
    with pytest.raises(PathError):
        parse_party_path("volume=projects/" + "/".join(segments))
