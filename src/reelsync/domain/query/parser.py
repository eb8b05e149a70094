"""The accsyn query language: tokenizer and recursive-descent parser.

Grammar (keywords in any case; AND binds tighter than OR)::

    query      := [WORD WHERE] condition
    condition  := value                    -- a lone value: lookup by id, code or e-mail
                | expr
    expr       := term (OR term)*
    term       := factor (AND factor)*
    factor     := '(' expr ')' | attr op value | attr [NOT] IN list
    op         := = | == | != | <> | < | > | <= | >= | [NOT] CONTAINS | [NOT] MATCHES
    list       := value (',' value)* | '(' value (',' value)* ')'
                  -- one quoted value with commas, 'a,b' (no parentheses), lists its items
    attr       := name ('.' name)*
    value      := '...' | "..." | bare

Rules: a bare value is a run of characters other than white space, ``( ) , ' " = < >`` and ``!=``
(so ``lisa@example.com``, ``user:<id>``, ``share=x/y`` after its operator, ``* backup`` quoted);
bare ``true``/``false`` become booleans, bare numbers int/float, bare ``null`` None; quoted values
stay strings (backslash escapes the quote). ``matches`` patterns are compiled here (RE2, linear
time: :mod:`reelsync.domain.regex`), so a bad regular expression is a syntax error. Every error is a
:class:`QuerySyntaxError` saying where it failed. Bounds keep every query cheap to evaluate: at
most :data:`MAX_QUERY_LENGTH` characters, :data:`MAX_COMPARISONS` comparisons,
:data:`MAX_LIST_VALUES` values in one ``in`` list and :data:`MAX_DEPTH` nested parentheses; a query
over them is a :class:`QueryTooCostlyError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from reelsync.domain.query.nodes import And, Comparison, Lookup, Node, Op, Or, Query, Value
from reelsync.domain.regex import PatternError, compile_pattern
from reelsync.errors import QuerySyntaxError, QueryTooCostlyError

__all__ = [
    "MAX_COMPARISONS",
    "MAX_DEPTH",
    "MAX_LIST_VALUES",
    "MAX_QUERY_LENGTH",
    "parse_condition",
    "parse_query",
]

MAX_QUERY_LENGTH = 100_000
MAX_DEPTH = 32
MAX_COMPARISONS = 256
MAX_LIST_VALUES = 10_000
_COSTLY_HINT = "split it into several queries, or use 'in' with a list of values"

_ATTR_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_SYMBOL_OPS = {
    "=": Op.EQ,
    "==": Op.EQ,
    "!=": Op.NE,
    "<>": Op.NE,
    "<": Op.LT,
    ">": Op.GT,
    "<=": Op.LE,
    ">=": Op.GE,
}
_WORD_OPS = {"in": Op.IN, "contains": Op.CONTAINS, "matches": Op.MATCHES}
_NEGATED = {Op.IN: Op.NOT_IN, Op.CONTAINS: Op.NOT_CONTAINS, Op.MATCHES: Op.NOT_MATCHES}
_KEYWORDS = frozenset({"and", "or", "not", "in", "contains", "matches", "where"})
_STOP = frozenset(" \t\r\n\f\v(),'\"=<>")


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "(" ")" "," "op" "word" "string" "end"
    text: str
    pos: int

    @property
    def keyword(self) -> str | None:
        if self.kind == "word" and self.text.lower() in _KEYWORDS:
            return self.text.lower()
        return None


def _where(text: str, pos: int) -> str:
    near = text[pos : pos + 20]
    return f"at position {pos + 1} (near {near!r})" if near else "at the end of the query"


def _fail(text: str, pos: int, what: str) -> QuerySyntaxError:
    return QuerySyntaxError(
        f"query syntax error {_where(text, pos)}: {what}",
        hint="queries look like: code='proj001' AND (status=waiting OR status=paused)",
    )


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "(),":
            tokens.append(_Token(ch, ch, i))
            i += 1
        elif ch in "=<>!":
            two = text[i : i + 2]
            if two in _SYMBOL_OPS:
                tokens.append(_Token("op", two, i))
                i += 2
            elif ch in _SYMBOL_OPS:
                tokens.append(_Token("op", ch, i))
                i += 1
            else:  # a lone "!" starts a bare word
                i = _word(text, i, tokens)
        elif ch in "'\"":
            i = _string(text, i, tokens)
        else:
            i = _word(text, i, tokens)
    tokens.append(_Token("end", "", n))
    return tokens


def _ends_word(text: str, i: int) -> bool:
    ch = text[i]
    return ch in _STOP or ch.isspace() or (ch == "!" and text[i + 1 : i + 2] == "=")


def _word(text: str, start: int, tokens: list[_Token]) -> int:
    i, n = start, len(text)
    while i < n and not _ends_word(text, i):
        i += 1
    if i == start:  # "!" at the very end or before a stop character
        i += 1
    tokens.append(_Token("word", text[start:i], start))
    return i


def _string(text: str, start: int, tokens: list[_Token]) -> int:
    quote = text[start]
    out: list[str] = []
    i, n = start + 1, len(text)
    while i < n:
        ch = text[i]
        if ch == "\\" and i + 1 < n:
            out.append(text[i + 1])
            i += 2
            continue
        if ch == quote:
            tokens.append(_Token("string", "".join(out), start))
            return i + 1
        out.append(ch)
        i += 1
    raise _fail(text, start, f"the quote {quote} is never closed")


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0
        self.depth = 0
        self.comparisons = 0

    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def peek(self, ahead: int = 1) -> _Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def take(self) -> _Token:
        tok = self.tokens[self.i]
        if tok.kind != "end":
            self.i += 1
        return tok

    def fail(self, what: str, tok: _Token | None = None) -> QuerySyntaxError:
        return _fail(self.text, (tok or self.tok).pos, what)

    def too_costly(self, what: str, hint: str = _COSTLY_HINT) -> QueryTooCostlyError:
        return QueryTooCostlyError(
            f"the query is too costly {_where(self.text, self.tok.pos)}: {what}", hint=hint
        )

    def describe(self, tok: _Token) -> str:
        if tok.kind == "end":
            return "the end of the query"
        if tok.kind == "string":
            return "a quoted value"
        return repr(tok.text)

    # query := [WORD WHERE] condition
    def query(self, *, allow_type: bool) -> Query:
        entitytype: str | None = None
        if allow_type and self.tok.kind == "word" and self.peek().keyword == "where":
            if not _ATTR_RE.match(self.tok.text):
                raise self.fail(f"{self.tok.text!r} is not an entity type")
            entitytype = self.take().text.lower()
            self.take()
            if self.tok.kind == "end":
                raise self.fail("expected a condition after WHERE")
        if self.tok.kind == "end":
            raise self.fail("the query is empty")
        # A lone value: lookup by id, code or e-mail.
        if self.tok.kind in ("word", "string") and self.peek().kind == "end":
            tok = self.take()
            if tok.kind == "word" and tok.keyword is not None:
                raise self.fail(f"{tok.text!r} is a keyword; quote it to look it up", tok)
            return Query(entitytype, Lookup(tok.text))
        node = self.expr()
        if self.tok.kind != "end":
            raise self.fail(
                f"expected AND, OR or the end of the query, found {self.describe(self.tok)}"
            )
        return Query(entitytype, node)

    def expr(self) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH + 1:  # the top level is not a parenthesis
            raise self.too_costly(f"parentheses nest deeper than {MAX_DEPTH} levels")
        items = [self.term()]
        while self.tok.keyword == "or":
            self.take()
            items.append(self.term())
        self.depth -= 1
        return items[0] if len(items) == 1 else Or(tuple(items))

    def term(self) -> Node:
        items = [self.factor()]
        while self.tok.keyword == "and":
            self.take()
            items.append(self.factor())
        return items[0] if len(items) == 1 else And(tuple(items))

    def factor(self) -> Node:
        tok = self.tok
        if tok.kind == "(":
            self.take()
            node = self.expr()
            if self.tok.kind != ")":
                raise self.fail(f"expected ')' to close the '(' at position {tok.pos + 1}")
            self.take()
            return node
        if tok.kind != "word" or tok.keyword is not None or not _ATTR_RE.match(tok.text):
            raise self.fail(
                f"expected an attribute name (like code or job.id), found {self.describe(tok)}"
            )
        attr = self.take().text.lower()
        self.comparisons += 1
        if self.comparisons > MAX_COMPARISONS:
            raise self.too_costly(f"more than {MAX_COMPARISONS} comparisons")
        op = self.operator(attr)
        if op in (Op.IN, Op.NOT_IN):
            return Comparison(attr, op, self.value_list(attr))
        value_tok = self.tok
        value = self.value(f"after {attr} {op.value}")
        if op in (Op.MATCHES, Op.NOT_MATCHES):
            self.check_regex(value, value_tok)
        return Comparison(attr, op, (value,))

    def operator(self, attr: str) -> Op:
        tok = self.tok
        if tok.kind == "op":
            self.take()
            return _SYMBOL_OPS[tok.text]
        negate = False
        if tok.keyword == "not":
            negate = True
            self.take()
        word = self.tok.keyword
        if word in _WORD_OPS:
            self.take()
            op = _WORD_OPS[word]
            return _NEGATED[op] if negate else op
        expected = "IN, CONTAINS or MATCHES after NOT" if negate else "an operator"
        raise self.fail(
            f"expected {expected} after {attr!r} (one of = != <> < > <= >= in contains matches),"
            f" found {self.describe(self.tok)}"
        )

    def value(self, context: str) -> Value:
        tok = self.tok
        if tok.kind == "string" or (tok.kind == "word" and tok.keyword is None):
            self.take()
            return Value(tok.text, quoted=tok.kind == "string")
        if tok.kind == "word":
            raise self.fail(f"expected a value {context}; quote {tok.text!r} to use it as a value")
        raise self.fail(f"expected a value {context}, found {self.describe(tok)}")

    def value_list(self, attr: str) -> tuple[Value, ...]:
        paren = self.tok.kind == "("
        if paren:
            self.take()
        values = [self.value(f"in the list for {attr}")]
        while self.tok.kind == ",":
            self.take()
            values.append(self.value(f"in the list for {attr}"))
            if len(values) > MAX_LIST_VALUES:
                raise self.too_costly(
                    f"more than {MAX_LIST_VALUES} values in the list for {attr}",
                    hint="split the list over several queries",
                )
        if paren:
            if self.tok.kind != ")":
                raise self.fail(f"expected ',' or ')' in the list for {attr}")
            self.take()
        if not paren and len(values) == 1 and values[0].quoted and "," in values[0].text:
            # ``status in 'waiting,paused'``: one quoted comma list is its items (accsyn's form).
            items = [part.strip() for part in values[0].text.split(",")]
            return tuple(Value(part, quoted=True) for part in items if part)
        return tuple(values)

    def check_regex(self, value: Value, tok: _Token) -> None:
        try:
            compile_pattern(value.text)
        except PatternError as exc:
            shown = value.text if len(value.text) <= 60 else value.text[:60] + "..."
            raise self.fail(f"{shown!r} is not a valid regular expression ({exc})", tok) from None


def _check_length(text: str) -> None:
    if len(text) > MAX_QUERY_LENGTH:
        raise QueryTooCostlyError(
            f"the query is too costly: longer than {MAX_QUERY_LENGTH} characters",
            hint=_COSTLY_HINT,
        )


def parse_query(text: str) -> Query:
    """Parse a query that may start with ``<type> WHERE``; raise QuerySyntaxError."""
    _check_length(text)
    return _Parser(text).query(allow_type=True)


def parse_condition(text: str) -> Node:
    """Parse a bare condition (no ``<type> WHERE`` prefix)."""
    _check_length(text)
    return _Parser(text).query(allow_type=False).where
