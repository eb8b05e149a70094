"""``[party:]path`` of the accsyn job JSON (accsyn-compat spec section 4), parsed without I/O.

Rules:
- The text splits at its first ``:`` only when what comes before is a party: the workspace code,
  ``site=CODE``, ``client=ID``, an e-mail or ``email@host``. Otherwise the whole text is a path, so
  ``C:\\x`` and ``volume=p/a:b`` stay paths. A bare party (``site=london``) has no path.
- Paths: ``volume=CODE/p``, ``volume=(default)/p``, ``share=CODE|ID/p``, a relative ``a/b`` (the
  default volume), or an absolute path (matched against volume prefixes later, by the services).
  ``folder=``, ``home=``, ``collection=`` and ``~`` are not supported.
- A path is normalised to ``/``-separated segments relative to its volume; ``.`` and empty
  segments go; a ``..`` segment is refused (:class:`PathError`), and so is a path that breaks the
  rules of :mod:`reelsync.domain.paths` (lengths, control characters, reserved names). A trailing
  ``/`` or ``\\`` marks a directory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from reelsync.domain.paths import check_path_rules, shorten
from reelsync.errors import NotSupportedError, PathError, ValidationError

__all__ = [
    "DEFAULT_VOLUME",
    "Location",
    "Party",
    "PartyKind",
    "PartyPath",
    "format_party_path",
    "join_path",
    "normalise_relative",
    "parse_party_path",
]

#: The spelling of "the default volume" inside ``volume=`` / ``share=``.
DEFAULT_VOLUME = "(default)"

_CODE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_EMAIL_RE = re.compile(r"^[^@\s:/\\]+@[^@\s:/\\]+$")
_EMAIL_HOST_RE = re.compile(r"^[^@\s:/\\]+@[^@\s:/\\]+@[^@\s:/\\]+$")
_WINDOWS_ABS_RE = re.compile(r"^[A-Za-z]:[\\/]")
_UNSUPPORTED_PREFIXES = ("folder=", "home=", "collection=")


class PartyKind(StrEnum):
    WORKSPACE = "workspace"  # no party or the workspace code: the main site
    SITE = "site"
    USER = "user"  # an e-mail: the user's own app (reelsync has no user apps)
    CLIENT = "client"


@dataclass(frozen=True, slots=True)
class Party:
    kind: PartyKind
    value: str | None = None  # site code, e-mail (or email@host) or client id


@dataclass(frozen=True, slots=True)
class Location:
    """Where a file is: ``volume`` is a code or id, ``None`` for the default volume.

    ``absolute`` locations carry the normalised absolute path in ``path`` and no volume; the
    services find the volume whose prefix at the party's site contains it.
    """

    volume: str | None
    path: str
    is_dir: bool = False
    absolute: bool = False


@dataclass(frozen=True, slots=True)
class PartyPath:
    party: Party
    location: Location | None  # None: only a party was given (mirror the other side's path)


_WORKSPACE = Party(PartyKind.WORKSPACE)


def _party_of(prefix: str, workspace_code: str | None) -> Party | None:
    """The party named by ``prefix``, or None when it is not a party."""
    lowered = prefix.lower()
    if lowered == "":
        return _WORKSPACE
    if workspace_code is not None and lowered == workspace_code.lower():
        return _WORKSPACE
    if lowered.startswith("site="):
        code = prefix[5:]
        if not _CODE_RE.match(code):
            raise ValidationError(f"bad site code {code!r} in {prefix!r}")
        return Party(PartyKind.SITE, code)
    if lowered.startswith("client="):
        ident = prefix[7:]
        if not ident:
            raise ValidationError(f"empty client id in {prefix!r}")
        return Party(PartyKind.CLIENT, ident)
    if _EMAIL_RE.match(prefix) or _EMAIL_HOST_RE.match(prefix):
        return Party(PartyKind.USER, prefix)
    return None


def normalise_relative(text: str) -> str:
    """``a//b/./c`` -> ``a/b/c``; refuses ``..`` and what the path rules refuse. Backslashes
    count as separators."""
    if "\\" in text:
        text = text.replace("\\", "/")
    check_path_rules(text)
    split = text.split("/")
    if "" not in split and "." not in split and ".." not in split:
        return text  # the common case: already normal
    parts = []
    for segment in split:
        if segment in ("", "."):
            continue
        if segment == "..":
            raise PathError(f"'..' is not allowed in a path: {shorten(text)}")
        parts.append(segment)
    return "/".join(parts)


def join_path(directory: str, name: str) -> str:
    """Join two normalised relative paths."""
    if not directory:
        return name
    if not name:
        return directory
    return f"{directory}/{name}"


def _is_dir(text: str) -> bool:
    return text.endswith(("/", "\\"))


def _split_code(rest: str) -> tuple[str, str]:
    match = re.search(r"[\\/]", rest)
    if match is None:
        return rest, ""
    return rest[: match.start()], rest[match.end() :]


def _location_of(text: str, original: str) -> Location:
    if "=" not in text and text[0] not in "/\\~" and not _WINDOWS_ABS_RE.match(text):
        path = normalise_relative(text)  # the common case: a path in the default volume
        return Location(volume=None, path=path, is_dir=bool(path) and _is_dir(text))
    lowered = text.lower()
    for prefix in _UNSUPPORTED_PREFIXES:
        if lowered.startswith(prefix):
            raise NotSupportedError(
                f"{prefix[:-1]} paths are not supported in {original!r}",
                hint="use volume=CODE/path or share=CODE/path",
            )
    if text == "~" or text.startswith(("~/", "~\\")):
        raise NotSupportedError(
            f"home paths (~) are not supported in {original!r}", hint="use volume=CODE/path"
        )
    for kind in ("volume=", "share="):
        if lowered.startswith(kind):
            code, tail = _split_code(text[len(kind) :])
            if not code:
                raise ValidationError(
                    f"{kind} needs a code in {original!r}, e.g. {kind}projects/a/b"
                )
            volume = None if code.lower() == DEFAULT_VOLUME else code
            if volume is not None and not _CODE_RE.match(volume):
                raise ValidationError(f"bad volume code {code!r} in {original!r}")
            path = normalise_relative(tail)
            return Location(volume=volume, path=path, is_dir=bool(path) and _is_dir(tail))
    if text.startswith(("/", "\\")) or _WINDOWS_ABS_RE.match(text):
        drive = ""
        body = text
        if _WINDOWS_ABS_RE.match(text):
            drive, body = text[:2].upper(), text[2:]
        path = normalise_relative(body)
        return Location(
            volume=None, path=f"{drive}/{path}", is_dir=bool(path) and _is_dir(text), absolute=True
        )
    path = normalise_relative(text)
    return Location(volume=None, path=path, is_dir=bool(path) and _is_dir(text))


def parse_party_path(text: str, *, workspace_code: str | None = None) -> PartyPath:
    """Parse one ``[party:]path`` string (a task's source or destination)."""
    if not isinstance(text, str):
        raise ValidationError(f"a source or destination must be a string, got {text!r}")
    text = text.strip()
    if not text:
        raise ValidationError("a source or destination may not be empty")
    prefix, sep, rest = text.partition(":")
    if sep:
        party = _party_of(prefix, workspace_code)
        if party is not None:
            return PartyPath(party, _location_of(rest, text) if rest else None)
    else:
        party = _party_of(text, workspace_code) if "=" in text.partition("/")[0] else None
        if party is not None and party.kind in (PartyKind.SITE, PartyKind.CLIENT):
            return PartyPath(party, None)
    return PartyPath(_WORKSPACE, _location_of(text, text))


def format_party_path(value: PartyPath) -> str:
    """The canonical text of a parsed value (``parse(format(x)) == x``)."""
    party = value.party
    head = ""
    if party.kind is PartyKind.SITE:
        head = f"site={party.value}"
    elif party.kind is PartyKind.CLIENT:
        head = f"client={party.value}"
    elif party.kind is PartyKind.USER:
        head = str(party.value)
    loc = value.location
    if loc is None:
        return head
    if loc.absolute:
        body = loc.path + ("/" if loc.is_dir else "")
    else:
        code = loc.volume if loc.volume is not None else DEFAULT_VOLUME
        body = f"volume={code}/{loc.path}" + ("/" if loc.is_dir else "")
    return f"{head}:{body}"
