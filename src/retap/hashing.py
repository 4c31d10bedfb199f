"""blake2b, the hash of dispatch ids and value digests, imported when first called.

Importing hashlib loads OpenSSL (about 3 ms of a start-up), which a command that only reads
a store, such as ``retap runs``, never needs. Call it as ``hashing.blake2b(...)``: the first
call puts hashlib's own in its place, so every later one costs what hashlib's does.
"""

from __future__ import annotations

from typing import Any

__all__ = ["blake2b"]


def blake2b(data: bytes = b"", **options: Any) -> Any:
    """``hashlib.blake2b(data, **options)``."""
    from hashlib import blake2b as real

    globals()["blake2b"] = real
    return real(data, **options)
