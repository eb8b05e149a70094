"""The accsyn v3 wire format: event envelopes in, ``result``/``message`` bodies out (spec §1).

Rules (what the official ``accsyn-python-api`` client sends and expects):

- GET and DELETE carry the whole envelope as the *raw* query string, ``quote(json.dumps(env))``
  (not key=value pairs; ``+`` is not a space). POST and PUT carry it as the body, JSON without a
  content type. ``gz_data`` (base64 of gzipped JSON) replaces ``data`` for big payloads.
- ``workspace`` names the workspace (3.0 called it ``domain``); it and the ``X-Accsyn-Workspace``
  header must name this workspace.
- ``Authorization: basic <b64(user)>:<b64(api key)>``: each part base64'd on its own, scheme in
  any case. An RFC 7617 ``Basic b64(user:key)`` header is accepted too.
- Success is ``{"result": ...}`` and never carries ``message``/``exception``; failure is
  ``{"message": ..., "message_hr": ...}``. Datetimes go out as naive UTC
  ``YYYY-MM-DDTHH:MM:SS`` (the client reads them as UTC).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import urllib.parse
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from reelsync.errors import AuthenticationError, ValidationError

__all__ = [
    "MAX_ENVELOPE_BYTES",
    "Credentials",
    "Envelope",
    "decode_body",
    "decode_query_string",
    "dumps",
    "error_body",
    "parse_authorization",
    "parse_envelope",
    "wire_datetime",
]

#: The largest envelope (after percent-decoding or gunzipping) the adapter accepts.
MAX_ENVELOPE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str
    api_key: str


@dataclass(frozen=True, slots=True)
class Envelope:
    """One decoded event: ``uri`` lower-cased in its first segment, ``data`` already unzipped."""

    uri: str
    workspace: str | None
    data: Any
    query: str | None
    id: str | None
    session: str | None
    eid: str | None
    ident: str | None

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(part for part in self.uri.split("/") if part)

    @property
    def data_dict(self) -> dict[str, Any]:
        """``data`` as an object; ``null`` counts as ``{}``."""
        if self.data is None:
            return {}
        if not isinstance(self.data, dict):
            raise ValidationError(f"{self.uri}: data must be a JSON object, not {_kind(self.data)}")
        return self.data


def _kind(value: object) -> str:
    return {
        list: "a list",
        str: "a string",
        int: "a number",
        float: "a number",
        bool: "a boolean",
    }.get(type(value), type(value).__name__)


def _b64(text: str, what: str) -> str:
    try:
        return base64.b64decode(text.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise AuthenticationError(
            f"the Authorization header's {what} is not base64",
            hint="send 'basic <base64 user>:<base64 api key>'",
        ) from None


def parse_authorization(header: str | None) -> Credentials:
    """Credentials from the client's split-base64 ``basic`` header (or RFC Basic)."""
    if not header or not header.strip():
        raise AuthenticationError(
            "no Authorization header: log in with your e-mail and reelsync API key",
            hint="set ACCSYN_API_USER and ACCSYN_API_KEY",
        )
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "basic" or not rest.strip():
        raise AuthenticationError(
            f"unsupported Authorization scheme {scheme!r}; expected 'basic'",
        )
    rest = rest.strip()
    if ":" in rest:
        user_part, _, key_part = rest.partition(":")
        username, api_key = _b64(user_part, "user"), _b64(key_part, "API key")
    else:
        username, sep, api_key = _b64(rest, "credential").partition(":")
        if not sep:
            raise AuthenticationError("the Authorization header holds no API key")
    if not username or not api_key:
        raise AuthenticationError("the Authorization header needs both a user and an API key")
    return Credentials(username.strip(), api_key.strip())


def _loads(raw: bytes, where: str) -> Any:
    if len(raw) > MAX_ENVELOPE_BYTES:
        raise ValidationError(f"the {where} is larger than {MAX_ENVELOPE_BYTES} bytes")
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValidationError(f"the {where} is not valid JSON ({exc})") from None


def decode_query_string(raw: bytes) -> Any:
    """The JSON object percent-encoded as a whole query string (GET and DELETE)."""
    text = raw.decode("latin-1").strip()
    if not text:
        raise ValidationError(
            "the request carries no event: GET and DELETE send the JSON envelope"
            " as the query string"
        )
    return _loads(urllib.parse.unquote_to_bytes(text), "query string")


def decode_body(raw: bytes) -> Any:
    """The JSON body of POST and PUT, whatever its content type."""
    if not raw.strip():
        raise ValidationError("the request body is empty: POST and PUT send the JSON envelope")
    return _loads(raw, "request body")


def _gunzip(text: object) -> Any:
    if not isinstance(text, str):
        raise ValidationError("gz_data must be a base64 string")
    try:
        packed = base64.b64decode(text, validate=True)
        inflater = zlib.decompressobj(wbits=47)  # gzip or zlib header
        raw = inflater.decompress(packed, MAX_ENVELOPE_BYTES + 1)
    except (binascii.Error, ValueError, zlib.error):
        raise ValidationError("gz_data is not base64 of gzipped JSON") from None
    return _loads(raw, "gz_data payload")


def _optional_str(envelope: Mapping[str, Any], key: str) -> str | None:
    value = envelope.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool | int | float):
        return str(value)
    if not isinstance(value, str):
        raise ValidationError(f"the envelope's {key!r} must be a string")
    return value


def parse_envelope(payload: Any) -> Envelope:
    """Validate a decoded event envelope."""
    if not isinstance(payload, dict):
        raise ValidationError(f"the event must be a JSON object, not {_kind(payload)}")
    uri = payload.get("uri")
    if not isinstance(uri, str) or not uri.strip("/ "):
        raise ValidationError("the event has no 'uri' (the operation, like 'job/find')")
    parts = [p for p in uri.strip().split("/") if p]
    parts[0] = parts[0].lower()
    data = (
        _gunzip(payload["gz_data"]) if payload.get("gz_data") is not None else payload.get("data")
    )
    workspace = _optional_str(payload, "workspace") or _optional_str(payload, "domain")
    return Envelope(
        uri="/".join(parts),
        workspace=workspace,
        data=data,
        query=_optional_str(payload, "query"),
        id=_optional_str(payload, "id"),
        session=_optional_str(payload, "session"),
        eid=_optional_str(payload, "eid"),
        ident=_optional_str(payload, "ident"),
    )


def wire_datetime(value: dt.datetime) -> str:
    """Naive UTC with second precision, the form the client turns back into a datetime."""
    if value.tzinfo is not None:
        if value.utcoffset():
            value = value.astimezone(dt.UTC)
        value = value.replace(tzinfo=None)
    return value.isoformat(timespec="seconds")


def _json_default(value: object) -> Any:
    if isinstance(value, dt.datetime):
        return wire_datetime(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


_ORJSON = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS


def dumps(body: Mapping[str, Any]) -> bytes:
    """``body`` as compact UTF-8 JSON, datetimes in wire form (one pass, no copy). orjson writes
    it (several times faster than :mod:`json` on a find of 500 jobs); NaN and infinities are
    written ``null``; what orjson refuses (integers past 64 bits) goes through :mod:`json`."""
    try:
        return orjson.dumps(body, default=_json_default, option=_ORJSON)
    except (orjson.JSONEncodeError, TypeError):
        pass
    return json.dumps(
        body, default=_json_default, ensure_ascii=False, separators=(",", ":"), allow_nan=False
    ).encode("utf-8")


def error_body(message: str, message_hr: str | None = None) -> dict[str, str]:
    """The only shape an error takes on the wire."""
    return {"message": message, "message_hr": message_hr or message}
