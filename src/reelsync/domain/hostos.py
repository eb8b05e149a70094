"""Operating system names as accsyn writes them: ``linux``, ``windows``, ``mac``; and how many
cores this process may run on.

Rules: an agent reports :func:`host_os` in its heartbeat; a volume's per-OS prefixes (accsyn's
``{"paths": {"windows": ..., "linux": ..., "mac": ...}}``) are keyed by these names, with the
``*_vpn`` variants accsyn also allows; anything else is not an OS key. :func:`usable_cores` counts
the cores the process is allowed on (``taskset``, a container's cpuset), not the machine's.
"""

from __future__ import annotations

import os
import sys

__all__ = ["OS_KEYS", "OS_NAMES", "host_os", "is_os_key", "usable_cores"]

OS_NAMES = ("linux", "windows", "mac")
OS_KEYS = frozenset(OS_NAMES) | {f"{name}_vpn" for name in OS_NAMES}


def host_os(platform: str | None = None) -> str:
    """This machine's OS name (``platform`` defaults to ``sys.platform``)."""
    value = sys.platform if platform is None else platform
    if value.startswith("win"):
        return "windows"
    if value == "darwin":
        return "mac"
    return "linux"


def is_os_key(key: str) -> bool:
    return key.strip().lower() in OS_KEYS


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity where the OS tells it (Linux), else
    the machine's count; at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)
