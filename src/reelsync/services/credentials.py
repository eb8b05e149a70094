"""Shared secrets handed out once and stored only as hashes: API keys, enrollment tokens and agent
secrets.

Rules: a secret is 32 random bytes (64 hex characters) after a readable kind prefix; what is stored
is a lookup prefix and the SHA-256 of the whole secret (high-entropy secrets need no slow hash);
comparisons are constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

__all__ = ["PREFIX_LEN", "hash_secret", "lookup_prefix", "new_secret", "same_secret"]

PREFIX_LEN = 16


def new_secret(kind: str) -> str:
    """A fresh secret such as ``rsk_<64 hex>`` (kind ``rsk``); kinds are short (<= 4)."""
    return f"{kind}_{secrets.token_hex(32)}"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def lookup_prefix(secret: str) -> str:
    """The part stored in clear to find the row (the kind and the first hex digits)."""
    return secret[:PREFIX_LEN]


def same_secret(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)
