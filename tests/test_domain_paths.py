"""The path rules (reelsync.domain.paths) and the linear-time patterns (reelsync.domain.regex):
examples at the limits, and properties over generated paths and patterns."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reelsync.domain.party import normalise_relative, parse_party_path
from reelsync.domain.paths import (
    JOURNAL_SUFFIX,
    MAX_COMPONENT_BYTES,
    MAX_PATH_BYTES,
    PART_SUFFIX,
    check_path_rules,
    shorten,
)
from reelsync.domain.regex import MAX_PATTERN_CHARS, PatternError, compile_pattern
from reelsync.errors import PathError
from reelsync.fs import normalize_relpath


def test_lengths_at_the_limits() -> None:
    check_path_rules("a" * MAX_COMPONENT_BYTES)
    check_path_rules("/".join(["b" * 255] * 16))  # 4,095 bytes
    with pytest.raises(PathError, match="256 bytes long; at most 255"):
        check_path_rules("x/" + "a" * 256)
    # bytes, not characters: 128 two-byte letters are 256 bytes
    with pytest.raises(PathError, match="256 bytes long"):
        check_path_rules("é" * 128)
    check_path_rules("é" * 127)
    with pytest.raises(PathError, match=f"at most {MAX_PATH_BYTES}"):
        check_path_rules("/".join(["c" * 200] * 21))


def test_control_characters_and_reserved_names_are_refused() -> None:
    for bad in ("a\tb", "a/b\nc", "\x00", "x\x7f", "sh\x1b[31m"):
        with pytest.raises(PathError, match="control character"):
            check_path_rules(bad)
    for bad in (f"a/b{PART_SUFFIX}", f"a{JOURNAL_SUFFIX}/b", f".x{PART_SUFFIX}"):
        with pytest.raises(PathError, match="reserved"):
            check_path_rules(bad)
    check_path_rules("a/b.reelsync-partial")  # only the exact suffixes are reserved


def test_every_entry_point_applies_the_rules() -> None:
    """Submit (party paths), ACLs and file operations (normalise_relative), the agents (fs)."""
    long_name = "n" * 5000
    for check in (
        normalise_relative,
        normalize_relpath,
        lambda p: parse_party_path(f"volume=projects/{p}"),
        lambda p: parse_party_path(f"site=london:/mnt/{p}"),
    ):
        with pytest.raises(PathError) as info:
            check(f"proj001/{long_name}")
        assert len(info.value.message) < 400  # the message never grows with the path
        with pytest.raises(PathError, match="control character"):
            check("proj001/a\rb")
        with pytest.raises(PathError, match="reserved"):
            check(f"proj001/a{PART_SUFFIX}")


def test_shorten_keeps_messages_short() -> None:
    assert shorten("abc") == "'abc'"
    cut = shorten("x" * 10_000)
    assert len(cut) < 120
    assert "more" in cut


_name = st.text(
    alphabet=st.characters(blacklist_characters="/", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=300,
)


@given(st.lists(_name, min_size=1, max_size=20))
def test_rules_hold_for_any_path(parts: list[str]) -> None:
    path = "/".join(parts)
    refused: PathError | None = None
    try:
        check_path_rules(path)
    except PathError as exc:
        refused = exc
    if refused is not None:
        assert len(refused.message) < 500
        sizes = [len(p.encode("utf-8")) for p in parts]
        assert (
            max(sizes) > MAX_COMPONENT_BYTES
            or len(path.encode("utf-8")) > MAX_PATH_BYTES
            or any(ord(c) < 32 or ord(c) == 127 for c in path)
            or any(p.endswith((PART_SUFFIX, JOURNAL_SUFFIX)) for p in parts)
        )
        return
    assert all(len(p.encode("utf-8")) <= MAX_COMPONENT_BYTES for p in parts)
    assert len(path.encode("utf-8")) <= MAX_PATH_BYTES
    assert not any(ord(c) < 32 or ord(c) == 127 for c in path)


@given(st.text(max_size=200))
def test_normalised_paths_obey_the_rules(text: str) -> None:
    try:
        norm = normalize_relpath(text)
    except PathError:
        return
    check_path_rules(norm)
    assert normalize_relpath(norm) == norm
    assert ".." not in norm.split("/")


def test_patterns_run_in_linear_time() -> None:
    evil = compile_pattern("^(a+)+b")
    started = time.perf_counter()
    assert not evil.found("a" * 200_000)
    assert time.perf_counter() - started < 1.0  # backtracking would take longer than the universe
    assert compile_pattern("ABC").found("xabcx")
    assert not compile_pattern("ABC", ignore_case=False).found("xabcx")
    assert compile_pattern("x").found("\ud800x")  # a lone surrogate does not break a search


def test_patterns_refused_with_a_reason() -> None:
    for bad, words in (
        ("(a)\\1", "back-references"),
        ("(?=a)", "look-around"),
        ("(", "missing )"),
        ("a{1000}{1000}", "repetition"),
        ("a" * (MAX_PATTERN_CHARS + 1), "longer than"),
    ):
        with pytest.raises(PatternError, match=words.replace("(", r"\(").replace(")", r"\)")):
            compile_pattern(bad)


@given(st.text(max_size=40))
def test_any_pattern_compiles_or_is_refused_cleanly(text: str) -> None:
    try:
        pattern = compile_pattern(text)
    except PatternError as exc:
        refused = str(exc)
        assert refused, "a refusal says why"  # noqa: PT017
        return
    assert isinstance(pattern.found("some text " + text), bool)
