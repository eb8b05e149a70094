"""The scheduler's records and its tunables.

Rules: grants, file grants and reports are frozen slotted dataclasses; volumes are named by CODE and
paths are relative to the volume root. Tunables are read from settings (strings); a value that does
not parse, or is out of range, falls back to the default (a bad setting never stops dispatching).
Setting keys (workspace scope unless noted):

- ``transfer_concurrency`` (8): transfers in flight between one pair of sites.
- ``agent_concurrency`` (4): transfers in flight per agent, dialing or listening.
- ``transfer_lease_target_s`` (2): a lease holds about this many seconds of work at the rate the
  dialing agent measured on its last transfers (at least one file); before any measurement,
  ``FIRST_LEASE_FILES`` files / ``FIRST_LEASE_BYTES`` bytes.
- ``transfer_batch_files`` (10,000) and ``transfer_batch_bytes`` (4 GiB): the most one lease
  holds whatever the rate; a file larger than the byte budget travels alone.
- ``transfer_lease_s`` (120): a lease's lifetime; every report of the transfer renews it.
- ``job_max_retries`` (3; job > queue > workspace): retries of a failed file before it stays failed.
- ``job_retry_delay_s`` (10; also accsyn's ``job_autoretray_delay_s``): the first retry's delay,
  doubling with every try, at most ``MAX_RETRY_DELAY_S``.
- ``queue_weight`` (1; queue scope): a queue's share against other queues of the same priority.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

__all__ = [
    "FIRST_LEASE_BYTES",
    "FIRST_LEASE_FILES",
    "MAX_RETRY_DELAY_S",
    "FileGrant",
    "ReportOutcome",
    "RetryPolicy",
    "SchedulingPolicy",
    "TaskReport",
    "TransferGrant",
    "retry_delay_s",
    "setting_int",
]

MAX_RETRY_DELAY_S = 3600
FIRST_LEASE_FILES = 256
FIRST_LEASE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class FileGrant:
    task_id: str
    src_volume: str
    src_path: str
    dst_volume: str
    dst_path: str
    size: int | None


@dataclass(frozen=True, slots=True)
class TransferGrant:
    """A batch of leased tasks between one sender and one receiver agent, for the dialing agent.

    ``direction`` is "push" when the dialer sends (the receiver listens at ``peer_host``:
    ``peer_port``) and "pull" when the dialer receives (the sender listens)."""

    transfer_id: str
    direction: Literal["push", "pull"]
    sender_id: str
    receiver_id: str
    peer_host: str
    peer_port: int
    files: tuple[FileGrant, ...]
    lease_expires_at: datetime
    priority: int = 0  # the job's queue priority (the dialer sends higher ones first)

    @property
    def dialer_id(self) -> str:
        return self.sender_id if self.direction == "push" else self.receiver_id

    @property
    def listener_id(self) -> str:
        return self.receiver_id if self.direction == "push" else self.sender_id


@dataclass(frozen=True, slots=True)
class TaskReport:
    """What the dialing agent says about one file of a transfer it holds."""

    task_id: str
    status: Literal["executing", "done", "failed"]
    bytes_done: int = 0
    size: int | None = None
    error: str | None = None
    digest: str | None = None
    retryable: bool = True
    files: int | None = None  # a folder task: how many files it held
    transfer_id: str | None = None  # the transfer it came from: must hold the task's lease
    error_code: str | None = None  # the failure's code (``path_busy``: not counted as a try)


@dataclass(frozen=True, slots=True)
class ReportOutcome:
    """``applied``: reports taken; ``revoked``: tasks the agent no longer holds (lease expired,
    job paused or aborted, task edited): it should stop moving them and forget them."""

    applied: tuple[str, ...] = ()
    revoked: tuple[str, ...] = ()


def setting_int(
    settings: Mapping[str, str], key: str, default: int, *, low: int = 0, high: int = 2**62
) -> int:
    raw = settings.get(key)
    if raw is None:
        return default
    try:
        value = int(str(raw).strip())
    except ValueError:
        return default
    return value if low <= value <= high else default


@dataclass(frozen=True, slots=True)
class SchedulingPolicy:
    pair_concurrency: int = 8
    agent_concurrency: int = 4
    batch_files: int = 10_000
    batch_bytes: int = 4 * 1024 * 1024 * 1024
    lease_s: int = 120
    lease_target_s: int = 2

    def lease_size(self, rate_bytes: float | None, rate_files: float | None) -> tuple[int, int]:
        """(files, bytes) for one lease: ``lease_target_s`` of the measured rates, at least one
        file, at most the batch limits; the first lease sizes before any measurement."""
        if not rate_bytes or not rate_files or rate_bytes <= 0 or rate_files <= 0:
            return (
                min(self.batch_files, FIRST_LEASE_FILES),
                min(self.batch_bytes, FIRST_LEASE_BYTES),
            )
        files = max(1, min(self.batch_files, int(rate_files * self.lease_target_s)))
        size = max(1, min(self.batch_bytes, int(rate_bytes * self.lease_target_s)))
        return files, size

    @classmethod
    def from_settings(cls, settings: Mapping[str, str]) -> SchedulingPolicy:
        base = cls()
        return cls(
            pair_concurrency=setting_int(
                settings, "transfer_concurrency", base.pair_concurrency, low=1, high=10_000
            ),
            agent_concurrency=setting_int(
                settings, "agent_concurrency", base.agent_concurrency, low=1, high=10_000
            ),
            batch_files=setting_int(
                settings, "transfer_batch_files", base.batch_files, low=1, high=10_000
            ),
            batch_bytes=setting_int(settings, "transfer_batch_bytes", base.batch_bytes, low=1),
            lease_s=setting_int(settings, "transfer_lease_s", base.lease_s, low=5, high=86_400),
            lease_target_s=setting_int(
                settings, "transfer_lease_target_s", base.lease_target_s, low=1, high=3600
            ),
        )


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_retries: int = 3
    delay_s: int = 10

    @classmethod
    def from_settings(cls, settings: Mapping[str, str]) -> RetryPolicy:
        base = cls()
        delay = setting_int(settings, "job_autoretray_delay_s", base.delay_s, high=86_400)
        return cls(
            max_retries=setting_int(settings, "job_max_retries", base.max_retries, high=1000),
            delay_s=setting_int(settings, "job_retry_delay_s", delay, high=86_400),
        )


def retry_delay_s(policy: RetryPolicy, tries: int) -> int:
    """The wait before try number ``tries + 1``: delay, 2 x delay, 4 x delay, ... (capped)."""
    if policy.delay_s <= 0:
        return 0
    return int(min(MAX_RETRY_DELAY_S, policy.delay_s * 2 ** max(0, min(tries - 1, 30))))
