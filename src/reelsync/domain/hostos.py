"""Operating system names as accsyn writes them: ``linux``, ``windows``, ``mac``.

Rules: an agent reports :func:`host_os` in its heartbeat; a volume's per-OS prefixes (accsyn's
``{"paths": {"windows": ..., "linux": ..., "mac": ...}}``) are keyed by these names, with the
``*_vpn`` variants accsyn also allows; anything else is not an OS key.
"""

from __future__ import annotations

import sys

__all__ = ["OS_KEYS", "OS_NAMES", "host_os", "is_os_key"]

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
