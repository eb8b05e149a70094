from __future__ import annotations

import datetime as dt
import re
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reelsync.domain.query as q
from reelsync.domain.query import (
    And,
    Comparison,
    Lookup,
    Node,
    Op,
    Or,
    Query,
    Value,
    evaluate,
    parse_condition,
    parse_query,
    referenced_attrs,
    to_text,
)
from reelsync.errors import QuerySyntaxError, QueryTooCostlyError


def cmp(attr: str, op: Op, *values: Value) -> Comparison:
    return Comparison(attr, op, values)


def bare(text: str) -> Value:
    return Value(text)


# -- parsing -------------------------------------------------------------------------------------


def test_and_binds_tighter_than_or() -> None:
    node = parse_condition("a=1 OR b=2 AND c=3")
    assert node == Or(
        (cmp("a", Op.EQ, bare("1")), And((cmp("b", Op.EQ, bare("2")), cmp("c", Op.EQ, bare("3")))))
    )


def test_parentheses_override_precedence() -> None:
    node = parse_condition("(a=1 or b=2) and c=3")
    assert node == And(
        (Or((cmp("a", Op.EQ, bare("1")), cmp("b", Op.EQ, bare("2")))), cmp("c", Op.EQ, bare("3")))
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("status!=excluded", cmp("status", Op.NE, bare("excluded"))),
        ("status<>excluded", cmp("status", Op.NE, bare("excluded"))),
        ("priority>=500", cmp("priority", Op.GE, bare("500"))),
        ("priority<= 5", cmp("priority", Op.LE, bare("5"))),
        ("priority <1", cmp("priority", Op.LT, bare("1"))),
        ("priority> 1", cmp("priority", Op.GT, bare("1"))),
        ("code==x", cmp("code", Op.EQ, bare("x"))),
        ("type in 0,2", cmp("type", Op.IN, bare("0"), bare("2"))),
        ("type IN (0, 2)", cmp("type", Op.IN, bare("0"), bare("2"))),
        ("type not in 1", cmp("type", Op.NOT_IN, bare("1"))),
        ("roles CONTAINS storage", cmp("roles", Op.CONTAINS, bare("storage"))),
        ("roles not contains 'x y'", cmp("roles", Op.NOT_CONTAINS, Value("x y", quoted=True))),
        ("name matches '^a.*b$'", cmp("name", Op.MATCHES, Value("^a.*b$", quoted=True))),
        ("name NOT MATCHES x", cmp("name", Op.NOT_MATCHES, bare("x"))),
        ("user=lisa@example.com", cmp("user", Op.EQ, bare("lisa@example.com"))),
        ("entity=user:0123abc", cmp("entity", Op.EQ, bare("user:0123abc"))),
        ("source=projects/a_b-c.d", cmp("source", Op.EQ, bare("projects/a_b-c.d"))),
        ("source='share=x/y'", cmp("source", Op.EQ, Value("share=x/y", quoted=True))),
        ('code="* backup"', cmp("code", Op.EQ, Value("* backup", quoted=True))),
        ("code=*backup*", cmp("code", Op.EQ, bare("*backup*"))),
        ("job.id=abc", cmp("job.id", Op.EQ, bare("abc"))),
        ("Name='It\\'s'", cmp("name", Op.EQ, Value("It's", quoted=True))),
        ('name="say \\"hi\\""', cmp("name", Op.EQ, Value('say "hi"', quoted=True))),
        ("\tcode = 'a'  ", cmp("code", Op.EQ, Value("a", quoted=True))),
        ("lisa@example.com", Lookup("lisa@example.com")),
        ("'proj 001'", Lookup("proj 001")),
    ],
)
def test_parses(text: str, expected: Node) -> None:
    assert parse_condition(text) == expected


def test_leading_type_where() -> None:
    parsed = parse_query('Transfer where name="proj001 download london 260504"')
    assert parsed == Query(
        "transfer", cmp("name", Op.EQ, Value("proj001 download london 260504", quoted=True))
    )
    assert parse_query("acl WHERE entity=user:1 AND target=share:2").entitytype == "acl"
    assert parse_query("code=x").entitytype is None


def test_value_coercion() -> None:
    assert [bare(t).scalar for t in ("true", "False", "12", "-3", "1.5", "null", "abc", "007")] == [
        True,
        False,
        12,
        -3,
        1.5,
        None,
        "abc",
        7,
    ]
    assert Value("12", quoted=True).scalar == "12"
    assert Value.of(3) == bare("3")
    assert Value.of("3") == Value("3", quoted=True)
    assert Value.of(None) == bare("null")
    assert Value.of(True) == bare("true")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("code=", "expected a value after code ="),
        ("code = and", "quote 'and'"),
        ("a=1 and", "expected an attribute name"),
        ("(a=1", "expected ')'"),
        ("a=1)", "expected AND, OR"),
        ("x WHERE", "expected a condition after WHERE"),
        ("a ~ b", "expected an operator after 'a'"),
        ("a not = b", "IN, CONTAINS or MATCHES after NOT"),
        ("name matches '('", "not a valid regular expression"),
        ('a="x', "never closed"),
        ("1abc=2", "expected an attribute name"),
        ("type in 1,", "expected a value in the list"),
        ("type in (1,2", "expected ',' or ')'"),
        ("a=1 b=2", "expected AND, OR"),
        ("and", "keyword"),
        ("(" * 100 + "a=1" + ")" * 100, "deeper than"),
    ],
)
def test_syntax_errors_say_where(text: str, fragment: str) -> None:
    with pytest.raises(QuerySyntaxError) as info:
        parse_query(text)
    assert fragment in info.value.message
    assert re.search(r"at (position \d+|the end of the query)", info.value.message)


def test_error_position_points_at_the_problem() -> None:
    with pytest.raises(QuerySyntaxError) as info:
        parse_query("code='a' AND name matches '[' OR x=1")
    assert "position 27" in info.value.message


def test_too_long_query_is_refused() -> None:
    with pytest.raises(QuerySyntaxError, match="longer than"):
        parse_query("a=" + "x" * (q.MAX_QUERY_LENGTH + 1))


def test_public_names() -> None:
    assert set(q.__all__) >= {"parse_query", "parse_condition", "evaluate", "to_text", "Query"}
    for name in q.__all__:
        assert hasattr(q, name)


# -- evaluation ----------------------------------------------------------------------------------

JOB: dict[str, Any] = {
    "id": "0123456789abcdef01234567",
    "code": "Proj001 Download London",
    "name": "Proj001 Download London",
    "status": "waiting",
    "type": 1,
    "default": True,
    "priority": 500,
    "roles": ["storage", "site"],
    "created": dt.datetime(2026, 5, 4, 9, 12, 44),
    "job": "fedcba9876543210fedcba98",
    "source": {"site": "hq", "path": "projects/x"},
    "size": None,
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("code='proj001 download london'", True),
        ("CODE='PROJ001 DOWNLOAD LONDON'", True),
        ("code='proj001'", False),
        ("code='proj001*'", True),
        ("code=*london", True),
        ("code='* download *'", True),
        ("code='*paris*'", False),
        ("status!=excluded", True),
        ("status<>waiting", False),
        ("type=1", True),
        ("type='1'", True),
        ("type in 0,2", False),
        ("type in 0,1", True),
        ("type not in 0,2", True),
        ("status in 'paused,waiting'", True),
        ("status in 'paused, done'", False),
        ("status not in 'paused,done'", True),
        ("status in ('paused,waiting')", False),
        ("default=true", True),
        ("default=false", False),
        ("default='True'", True),
        ("priority>499 and priority<501", True),
        ("priority>=500 and priority<=500", True),
        ("priority>500", False),
        ("roles contains storage", True),
        ("roles contains stor", False),
        ("roles not contains compute", True),
        ("roles=site", True),
        ("name contains download", True),
        ("name not contains download", False),
        ("name matches '^proj0+1 '", True),
        ("name not matches 'paris'", True),
        ("created>2026-05-01", True),
        ("created<2026-05-04T09:12:45", True),
        ("job.id=fedcba9876543210fedcba98", True),
        ("source.site=hq", True),
        ("source.site=london", False),
        ("source.nothing=x", False),
        ("missing=x", False),
        ("missing!=x", True),
        ("size=null", True),
        ("size>1", False),
        ("0123456789ABCDEF01234567", True),
        ("'proj001 download london'", True),
        ("other", False),
        ("status=paused or type=1 and default=true", True),
        ("(status=paused or type=1) and default=false", False),
    ],
)
def test_evaluate(text: str, expected: bool) -> None:
    assert evaluate(parse_query(text), JOB) is expected


def test_custom_resolver_gives_candidates() -> None:
    record = {"user": "u1"}

    def resolve(rec: Any, attr: str) -> list[object]:
        return [rec["user"], "lisa@example.com"] if attr == "user" else []

    assert evaluate(parse_condition("user=lisa@example.com"), record, resolve=resolve)
    assert evaluate(parse_condition("user=u1"), record, resolve=resolve)
    assert not evaluate(parse_condition("user!=u1"), record, resolve=resolve)


def test_referenced_attrs() -> None:
    assert referenced_attrs(parse_query("a=1 and (b=2 or c.d in 3,4)")) == {"a", "b", "c.d"}
    assert referenced_attrs(parse_query("x")) == frozenset()


# -- properties ----------------------------------------------------------------------------------

_KEYWORDS = {"and", "or", "not", "in", "contains", "matches", "where", "true", "false", "null"}
names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True).filter(
    lambda s: s.lower() not in _KEYWORDS
)
attrs = st.lists(names, min_size=1, max_size=3).map(lambda parts: ".".join(parts).lower())
bare_values = st.from_regex(
    r"[A-Za-z0-9_@.:/*#\-][A-Za-z0-9_@.:/*#!\-]{0,12}", fullmatch=True
).filter(lambda s: s.lower() not in _KEYWORDS and "!=" not in s)
quoted_values = st.text(max_size=12).map(lambda s: Value(s, quoted=True))
values = st.one_of(bare_values.map(Value), quoted_values)
simple_ops = st.sampled_from(
    [op for op in Op if op not in (Op.IN, Op.NOT_IN, Op.MATCHES, Op.NOT_MATCHES)]
)
regexes = st.sampled_from(["^a", "b$", "[0-9]+", "x|y", ".*"]).map(lambda s: Value(s, quoted=True))

comparisons = st.one_of(
    st.builds(lambda a, o, v: Comparison(a, o, (v,)), attrs, simple_ops, values),
    st.builds(
        lambda a, o, vs: Comparison(a, o, tuple(vs)),
        attrs,
        st.sampled_from([Op.IN, Op.NOT_IN]),
        st.lists(values, min_size=1, max_size=4),
    ),
    st.builds(
        lambda a, o, v: Comparison(a, o, (v,)),
        attrs,
        st.sampled_from([Op.MATCHES, Op.NOT_MATCHES]),
        regexes,
    ),
)
trees = st.recursive(
    comparisons,
    lambda children: st.one_of(
        st.lists(children, min_size=2, max_size=3).map(lambda xs: And(tuple(xs))),
        st.lists(children, min_size=2, max_size=3).map(lambda xs: Or(tuple(xs))),
    ),
    max_leaves=12,
)
queries = st.builds(
    Query,
    st.one_of(st.none(), names.map(str.lower)),
    st.one_of(trees, st.text(min_size=1, max_size=10).map(Lookup)),
)


@given(queries)
@settings(max_examples=300)
def test_printing_then_parsing_gives_the_same_tree(query: Query) -> None:
    assert parse_query(to_text(query)) == query


@given(st.text(max_size=60))
@settings(max_examples=300)
def test_garbage_only_ever_raises_query_syntax_error(text: str) -> None:
    message = ""
    try:
        parsed = parse_query(text)
    except QuerySyntaxError as exc:
        message = exc.message
    if message:
        assert "query syntax error" in message
    else:
        assert parse_query(to_text(parsed)) == parsed


_ALPHABET = st.sampled_from(
    list("ab=!<>()'\", *.:@-_/ ")
    + ["and ", "or ", "not ", "in ", "contains ", "matches ", "where "]
)


@given(st.lists(_ALPHABET, max_size=30).map("".join))
@settings(max_examples=300)
def test_query_shaped_garbage_only_ever_raises_query_syntax_error(text: str) -> None:
    try:
        parsed = parse_query(text)
    except QuerySyntaxError:
        return
    assert parse_query(to_text(parsed)) == parsed
    evaluate(parsed, JOB)


@given(
    trees,
    st.dictionaries(
        names.map(str.lower),
        st.one_of(st.integers(), st.text(max_size=5), st.booleans(), st.none()),
    ),
)
@settings(max_examples=200)
def test_boolean_structure(tree: Node, record: dict[str, Any]) -> None:
    result = evaluate(tree, record)
    if isinstance(tree, And):
        assert result == all(evaluate(item, record) for item in tree.items)
    elif isinstance(tree, Or):
        assert result == any(evaluate(item, record) for item in tree.items)
    else:
        positive = {
            Op.NE: Op.EQ,
            Op.NOT_IN: Op.IN,
            Op.NOT_CONTAINS: Op.CONTAINS,
            Op.NOT_MATCHES: Op.MATCHES,
        }
        if tree.op in positive:
            flipped = Comparison(tree.attr, positive[tree.op], tree.values)
            assert result == (not evaluate(flipped, record))


# -- bounds: every query is cheap to evaluate ----------------------------------------------------


def test_a_catastrophic_regex_is_linear() -> None:
    """The attack of issue 10: ``^(a+)+b`` against a name of many ``a`` took 8.4 s at 27."""
    query = parse_query("Job WHERE name matches '^(a+)+b'")
    started = time.perf_counter()
    assert not evaluate(query, {"name": "a" * 100_000})
    assert time.perf_counter() - started < 1.0
    assert evaluate(query, {"name": "AAAB"})


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (" OR ".join(f"a={i}" for i in range(q.MAX_COMPARISONS + 1)), "comparisons"),
        ("(" * (q.MAX_DEPTH + 1) + "a=1" + ")" * (q.MAX_DEPTH + 1), "deeper than"),
        ("code in (" + ",".join(str(i) for i in range(q.MAX_LIST_VALUES + 1)) + ")", "values"),
        ("a=" + "x" * (q.MAX_QUERY_LENGTH + 1), "longer than"),
    ],
)
def test_costly_queries_are_refused_clearly(text: str, fragment: str) -> None:
    with pytest.raises(QueryTooCostlyError) as info:
        parse_query(text)
    assert "too costly" in info.value.message
    assert fragment in info.value.message
    assert info.value.hint


def test_queries_at_the_bounds_parse() -> None:
    parse_query(" OR ".join(f"a={i}" for i in range(q.MAX_COMPARISONS)))
    parse_query("(" * q.MAX_DEPTH + "a=1" + ")" * q.MAX_DEPTH)
    parse_query("code in (" + ",".join(str(i) for i in range(q.MAX_LIST_VALUES)) + ")")


@pytest.mark.parametrize("pattern", ["(a)\\\\1", "(?=a)b", "(?<!a)b"])
def test_patterns_the_linear_engine_cannot_run_are_syntax_errors(pattern: str) -> None:
    with pytest.raises(QuerySyntaxError, match="not a valid regular expression"):
        parse_query(f"name matches '{pattern}'")


_words = st.sampled_from(
    [
        "a",
        "b",
        "code",
        "name",
        "=",
        "!=",
        "in",
        "matches",
        "and",
        "or",
        "not",
        "(",
        ")",
        ",",
        "'x'",
        '"(a+)+b"',
        "1",
        "true",
        "where",
        "*",
    ]
)


@given(st.lists(_words, max_size=30))
def test_any_token_soup_parses_or_fails_cleanly(words: list[str]) -> None:
    text = " ".join(words)
    try:
        query = parse_query(text)
    except QuerySyntaxError as exc:
        assert exc.message, "an error says why"  # noqa: PT017
        return
    assert isinstance(evaluate(query, {"name": "aaaa", "code": "x", "a": 1}), bool)
    assert parse_query(to_text(query)) == query


@given(st.text(max_size=80))
def test_any_text_parses_or_fails_cleanly(text: str) -> None:
    try:
        query = parse_query(text)
    except QuerySyntaxError:
        return
    assert isinstance(evaluate(query, {"name": text}), bool)
