from __future__ import annotations

import base64
import datetime as dt
import gzip
import json
import urllib.parse

import pytest
from accsyn_api.session import JSONDecoder, Session

from reelsync.errors import AuthenticationError, ValidationError
from reelsync.server.accsyn.wire import (
    Credentials,
    decode_body,
    decode_query_string,
    dumps,
    error_body,
    parse_authorization,
    parse_envelope,
)


def client_header(user: str, key: str) -> str:
    # Exactly what accsyn_api.Session sends.
    return f"basic {Session._base64_encode(user)}:{Session._base64_encode(key)}"


def test_split_base64_header_from_the_client() -> None:
    assert parse_authorization(
        client_header("lisa@example.com", "rs_k3y:with/colon")
    ) == Credentials("lisa@example.com", "rs_k3y:with/colon")


def test_rfc_basic_header_is_accepted_too() -> None:
    token = base64.b64encode(b"lisa@example.com:key").decode()
    assert parse_authorization(f"Basic {token}") == Credentials("lisa@example.com", "key")


@pytest.mark.parametrize(
    ("header", "fragment"),
    [
        (None, "no Authorization header"),
        ("", "no Authorization header"),
        ("Bearer abc", "unsupported Authorization scheme"),
        ("basic !!!:???", "not base64"),
        ("basic " + base64.b64encode(b"nokey").decode(), "no API key"),
        ("basic :" + base64.b64encode(b"k").decode(), "both a user and an API key"),
    ],
)
def test_bad_headers(header: str | None, fragment: str) -> None:
    with pytest.raises(AuthenticationError) as info:
        parse_authorization(header)
    assert fragment in info.value.message


def client_query_string(envelope: dict[str, object]) -> bytes:
    # Session._url_quote, as requests appends it to the URL.
    return Session._url_quote(envelope).encode("ascii")


def test_query_string_envelope_round_trip() -> None:
    env = {
        "audience": "api",
        "workspace": "acmepost",
        "uri": "Transfer/find",
        "data": {"single_entity_query": True},
        "query": "name='proj 001+x' and user=lisa@example.com",
        "created": dt.datetime(2026, 5, 4, 9, 12, 44),
        "id": "0123456789abcdef01234567",
    }
    parsed = parse_envelope(decode_query_string(client_query_string(env)))
    assert parsed.uri == "transfer/find"
    assert parsed.segments == ("transfer", "find")
    assert parsed.query == "name='proj 001+x' and user=lisa@example.com"
    assert parsed.data_dict == {"single_entity_query": True}
    assert parsed.id == "0123456789abcdef01234567"
    assert parsed.workspace == "acmepost"


def test_body_envelope_and_domain_alias() -> None:
    body = Session._safe_dumps(
        {"domain": "acmepost", "uri": "job/task/create", "data": {"tasks": []}}
    )
    parsed = parse_envelope(decode_body(body.encode()))
    assert parsed.workspace == "acmepost"
    assert parsed.uri == "job/task/create"


def test_gz_data_replaces_data() -> None:
    data = {"tasks": [{"source": f"share=projects/f{i}"} for i in range(3)]}
    packed = base64.b64encode(gzip.compress(json.dumps(data).encode())).decode()
    parsed = parse_envelope({"uri": "task/create", "gz_data": packed})
    assert parsed.data == data


def test_bad_gz_data() -> None:
    with pytest.raises(ValidationError, match="gz_data"):
        parse_envelope({"uri": "task/create", "gz_data": "not base64 at all!"})


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"", "no event"),
        (urllib.parse.quote("{not json").encode(), "not valid JSON"),
    ],
)
def test_bad_query_strings(raw: bytes, fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        decode_query_string(raw)


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ([], "must be a JSON object"),
        ({"data": {}}, "no 'uri'"),
        ({"uri": "  "}, "no 'uri'"),
        ({"uri": "job/find", "query": {"a": 1}}, "'query' must be a string"),
    ],
)
def test_bad_envelopes(payload: object, fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        parse_envelope(payload)


def test_data_must_be_an_object_where_expected() -> None:
    env = parse_envelope({"uri": "job/edit", "data": [1]})
    with pytest.raises(ValidationError, match="must be a JSON object"):
        _ = env.data_dict
    assert parse_envelope({"uri": "x", "data": None}).data_dict == {}


def test_datetimes_go_out_as_naive_utc_the_client_decodes() -> None:
    aware = dt.datetime(2026, 5, 4, 11, 12, 44, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    naive = dt.datetime(2026, 5, 4, 9, 12, 44)
    body = json.loads(
        dumps(
            {
                "result": [
                    {
                        "created": aware,
                        "finished": naive,
                        "day": dt.date(2026, 5, 4),
                        "tags": ("x",),
                    }
                ]
            }
        )
    )
    assert body == {
        "result": [
            {
                "created": "2026-05-04T09:12:44",
                "finished": "2026-05-04T09:12:44",
                "day": "2026-05-04",
                "tags": ["x"],
            }
        ]
    }
    decoded = json.loads(json.dumps(body), cls=JSONDecoder)
    assert decoded["result"][0]["created"] == dt.datetime(2026, 5, 4, 9, 12, 44, tzinfo=dt.UTC)


def test_error_body_shape() -> None:
    assert error_body("nope") == {"message": "nope", "message_hr": "nope"}
    assert error_body("a", "b") == {"message": "a", "message_hr": "b"}
