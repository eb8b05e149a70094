"""Two settings of an ``ssl.SSLContext`` that Python's ``ssl`` module (3.11) has no switch for,
made through the libssl that module uses: the order of the TLS 1.3 cipher suites, and
read-ahead (OpenSSL filling its record buffer with each socket read instead of reading a
record in two calls, header then body).

Rules: the context's ``SSL_CTX`` pointer is the first field after the object header of
CPython's ``_ssl`` context; it is used only once ``SSL_CTX_get_options`` through it returns the
context's own ``options`` exactly, and each setting is read back (the suites through
``SSLContext.get_ciphers``, read-ahead through ``SSL_CTX_ctrl``). Where anything does not fit
(another Python, no ctypes, a libssl without the function) nothing is changed and the caller
is told so: OpenSSL's defaults, as before. The pointer is read only on the CPython versions whose
context layout was checked (:data:`LAYOUT_CHECKED`: 3.11, 3.12 and 3.13 with OpenSSL 3.0), since
proving it means calling libssl with it; on any other the defaults stay.
"""

from __future__ import annotations

import ctypes
import ssl
import sys
from typing import Any

__all__ = ["LAYOUT_CHECKED", "order_tls13_suites", "reads_ahead", "set_read_ahead"]

#: CPython versions whose ``PySSLContext`` starts with its ``SSL_CTX *`` (checked by hand)
LAYOUT_CHECKED = frozenset({(3, 11), (3, 12), (3, 13)})

_CTRL_GET_READ_AHEAD = 40  # ssl.h: SSL_CTRL_GET_READ_AHEAD
_CTRL_SET_READ_AHEAD = 41  # ssl.h: SSL_CTRL_SET_READ_AHEAD


class _LibSSL:
    """The libssl functions used here, typed."""

    def __init__(self, lib: Any) -> None:
        self.get_options = lib.SSL_CTX_get_options
        self.get_options.argtypes, self.get_options.restype = [ctypes.c_void_p], ctypes.c_uint64
        self.set_suites = lib.SSL_CTX_set_ciphersuites
        self.set_suites.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        self.set_suites.restype = ctypes.c_int
        self.ctrl = lib.SSL_CTX_ctrl
        self.ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
        self.ctrl.restype = ctypes.c_long


def _load() -> _LibSSL | None:
    """libssl as Python's ``_ssl`` module links it (its dependencies answer the look-ups), or
    None where that cannot be had."""
    if sys.implementation.name != "cpython" or sys.version_info[:2] not in LAYOUT_CHECKED:
        return None
    try:
        import _ssl

        return _LibSSL(ctypes.CDLL(_ssl.__file__))
    except (ImportError, OSError, AttributeError):
        return None


_LIB = _load()


def _pointer(ctx: ssl.SSLContext) -> int | None:
    """The ``SSL_CTX *`` of ``ctx``, proven by its options, or None."""
    if _LIB is None:
        return None
    try:
        pointer = ctypes.c_void_p.from_address(id(ctx) + object.__basicsize__).value
    except (ValueError, OSError):
        return None
    if not pointer or _LIB.get_options(pointer) != int(ctx.options):
        return None
    return pointer


def order_tls13_suites(ctx: ssl.SSLContext, suites: str) -> bool:
    """Make ``suites`` (OpenSSL's colon-separated TLS 1.3 names) the context's TLS 1.3 suites, in
    that order; True when the context now lists them first in that order."""
    pointer = _pointer(ctx)
    if pointer is None or _LIB is None:
        return False
    if _LIB.set_suites(pointer, suites.encode("ascii")) != 1:
        return False
    names = suites.split(":")
    return [c["name"] for c in ctx.get_ciphers()[: len(names)]] == names


def set_read_ahead(ctx: ssl.SSLContext) -> bool:
    """Have the connections made from ``ctx`` read ahead: each socket read fills OpenSSL's
    record buffer (one full record and the start of the next) instead of reading a record's
    5-byte header and then its body, so a bulk receiver makes one ``read`` per record instead of
    two. The buffer keeps its default size (one record): OpenSSL 3.0 moves what is left in it
    to its front at every ``SSL_read``, so a larger buffer copies more than it saves (64 KiB:
    ~1.3 more copies of every byte received; see benchmarks/README.md). True when set."""
    pointer = _pointer(ctx)
    if pointer is None or _LIB is None:
        return False
    _LIB.ctrl(pointer, _CTRL_SET_READ_AHEAD, 1, None)
    return bool(_LIB.ctrl(pointer, _CTRL_GET_READ_AHEAD, 0, None))


def reads_ahead(ctx: ssl.SSLContext) -> bool | None:
    """Whether connections made from ``ctx`` read ahead; None when it cannot be asked."""
    pointer = _pointer(ctx)
    if pointer is None or _LIB is None:
        return None
    return bool(_LIB.ctrl(pointer, _CTRL_GET_READ_AHEAD, 0, None))
