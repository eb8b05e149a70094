"""The one exception tree of reelsync.

Every error raised on purpose by reelsync code is a :class:`ReelsyncError`. The tree is split by
*behaviour* (can the operation be retried as is?) and then by *origin*::

    ReelsyncError                      fatal unless a subclass says otherwise
    ├── UserError                      the caller asked for something wrong; fix the input (exit 2)
    │   ├── ValidationError            malformed or inconsistent input            (HTTP 400/422)
    │   ├── QuerySyntaxError           a find() expression that does not parse    (HTTP 400)
    │   │   └── QueryTooCostlyError    a query over the bounds on terms, depth, regex (HTTP 400)
    │   ├── TooLargeError              a request body over its route's limit      (HTTP 413)
    │   ├── PathError                  a path outside its volume root, `..`, bad symlink (400)
    │   ├── NotFoundError              unknown id, code, path or e-mail            (HTTP 404)
    │   ├── ConflictError              duplicate code, task, or a resource in use  (HTTP 409)
    │   ├── InvalidTransitionError     a status change the state machine forbids   (HTTP 409)
    │   ├── AuthenticationError        no or bad credentials                       (HTTP 401)
    │   │   └── RevokedError           an agent an admin revoked (it stops for good) (HTTP 401)
    │   ├── PermissionDeniedError      role or ACL forbids it                      (HTTP 403)
    │   └── NotSupportedError          a feature reelsync deliberately does not offer (HTTP 501)
    ├── ConfigError                    a broken config file, data dir or environment (exit 78)
    ├── TransferError                  a data-plane failure of one file            (task fails)
    │   ├── IntegrityError             checksum mismatch, source changed mid-transfer
    │   ├── DiskFullError              the destination volume ran out of space
    │   └── ProtocolError              the peer broke the wire protocol
    ├── RetryableError                 try again later, the same request may succeed
    │   ├── ConnectionLostError        a socket dropped, a peer or the server is unreachable
    │   ├── RateLimitedError           too many failed sign-ins from one address   (HTTP 429)
    │   ├── PathBusyError              another transfer is writing this destination (HTTP 409)
    │   └── UnavailableError           a dependency (agent, database, SMTP) is down  (HTTP 503)
    │       └── AgentOfflineError      no agent online where the request needs one (HTTP 503)
    └── InternalError                  a bug: reelsync broke its own rules          (HTTP 500)

Origin: an error raised locally has ``remote = False``. The HTTP client rebuilds the server's error
as the same class with ``remote = True`` (see :func:`error_from_code`), so callers catch one type
whichever side noticed the problem. Boundaries translate in one place each: the HTTP layer through
:attr:`ReelsyncError.http_status`, the CLI through :attr:`ReelsyncError.exit_code`.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AgentOfflineError",
    "AuthenticationError",
    "ConfigError",
    "ConflictError",
    "ConnectionLostError",
    "DiskFullError",
    "IntegrityError",
    "InternalError",
    "InvalidTransitionError",
    "NotFoundError",
    "NotSupportedError",
    "PathBusyError",
    "PathError",
    "PermissionDeniedError",
    "ProtocolError",
    "QuerySyntaxError",
    "QueryTooCostlyError",
    "RateLimitedError",
    "ReelsyncError",
    "RetryableError",
    "RevokedError",
    "TooLargeError",
    "TransferError",
    "UnavailableError",
    "UserError",
    "ValidationError",
    "error_from_code",
]


class ReelsyncError(Exception):
    """Base of every error reelsync raises on purpose.

    ``message`` is one sentence a person can act on; ``hint`` optionally says what to do next.
    """

    code: ClassVar[str] = "error"
    http_status: ClassVar[int] = 500
    exit_code: ClassVar[int] = 1
    retryable: ClassVar[bool] = False
    # whether a client should repeat the same request for a while before giving up: a retryable
    # error that only a person can clear (an agent to start) says False and is shown at once
    worth_waiting: ClassVar[bool] = True

    def __init__(self, message: str, *, hint: str | None = None, remote: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.remote = remote

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message

    def to_dict(self) -> dict[str, str]:
        """The error as the JSON object the native API answers with."""
        body = {"code": self.code, "message": self.message}
        if self.hint:
            body["hint"] = self.hint
        return body


class UserError(ReelsyncError):
    code = "user_error"
    http_status = 400
    exit_code = 2


class ValidationError(UserError):
    code = "invalid"
    http_status = 400


class QuerySyntaxError(ValidationError):
    code = "query_syntax"


class QueryTooCostlyError(QuerySyntaxError):
    code = "query_too_costly"


class TooLargeError(ValidationError):
    code = "too_large"
    http_status = 413


class PathError(ValidationError):
    code = "bad_path"


class NotFoundError(UserError):
    code = "not_found"
    http_status = 404


class ConflictError(UserError):
    code = "conflict"
    http_status = 409


class InvalidTransitionError(ConflictError):
    code = "invalid_transition"


class AuthenticationError(UserError):
    code = "unauthenticated"
    http_status = 401
    exit_code = 77


class RevokedError(AuthenticationError):
    code = "revoked"


class PermissionDeniedError(UserError):
    code = "forbidden"
    http_status = 403
    exit_code = 77


class NotSupportedError(UserError):
    code = "not_supported"
    http_status = 501


class ConfigError(ReelsyncError):
    code = "config"
    http_status = 500
    exit_code = 78


class TransferError(ReelsyncError):
    code = "transfer_failed"
    http_status = 500
    exit_code = 1


class IntegrityError(TransferError):
    code = "integrity"
    retryable = True


class DiskFullError(TransferError):
    code = "disk_full"
    http_status = 507


class ProtocolError(TransferError):
    code = "protocol"


class RetryableError(ReelsyncError):
    code = "retryable"
    http_status = 503
    exit_code = 75
    retryable = True


class ConnectionLostError(RetryableError):
    code = "connection_lost"


class RateLimitedError(RetryableError):
    code = "rate_limited"
    http_status = 429


class PathBusyError(RetryableError):
    """Another transfer holds the claim on this destination file's part file: try later (the
    scheduler does not count it as a try)."""

    code = "path_busy"
    http_status = 409
    #: How the receiver's messages end (``<where> is being written by another transfer``): the
    #: control plane knows a busy file by them when a dialer reports it without its code (an
    #: agent older than codes in reports, pushing to a newer receiver). Keep them as they are.
    ENDINGS: ClassVar[tuple[str, ...]] = (
        "is being written by another transfer",
        "was changed by another transfer since it was planned",
    )


class UnavailableError(RetryableError):
    code = "unavailable"


class AgentOfflineError(UnavailableError):
    """No agent is online where the request needs one. The server's own answer: a client shows it
    at once instead of waiting its retries out, since an agent is started by a person, not by
    waiting (still exit code 75, temporary: the same command works once one is up)."""

    code = "agent_offline"
    worth_waiting = False

    @classmethod
    def at_site(cls, site: str, agents: list[tuple[str, str]]) -> AgentOfflineError:
        """The error for ``site``, whose agents are ``(hostname, status)`` (maybe none)."""
        state = ", ".join(f"{hostname} {status}" for hostname, status in agents)
        return cls(
            f"no agent is online at site {site}" + (f" ({state})" if state else ""),
            hint="start one there: reelsync agent run" if agents else "enroll one first",
        )


class InternalError(ReelsyncError):
    code = "internal"
    http_status = 500
    exit_code = 70


def _all_subclasses(cls: type[ReelsyncError]) -> list[type[ReelsyncError]]:
    found: list[type[ReelsyncError]] = [cls]
    for sub in cls.__subclasses__():
        found.extend(_all_subclasses(sub))
    return found


def error_from_code(
    code: str, message: str, *, hint: str | None = None, remote: bool = True
) -> ReelsyncError:
    """Rebuild an error from its wire ``code`` (as sent by :meth:`ReelsyncError.to_dict`)."""
    for cls in _all_subclasses(ReelsyncError):
        if cls.code == code:
            return cls(message, hint=hint, remote=remote)
    return ReelsyncError(message, hint=hint, remote=remote)
