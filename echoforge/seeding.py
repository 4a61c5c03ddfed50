"""Deterministic per-record randomness: every draw is a pure function of (seed, record, purpose)."""

from __future__ import annotations

import hashlib


def stable_int(*parts: object, bits: int = 63) -> int:
    """A non-negative integer derived from the parts alone (same on every machine and run)."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> (64 - bits)


def stable_uniform(*parts: object) -> float:
    """A float in [0, 1) derived from the parts alone."""
    return stable_int(*parts, bits=53) / float(1 << 53)
