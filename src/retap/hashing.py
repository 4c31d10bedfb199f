"""blake2b, the hash of dispatch ids and value digests, imported when first asked for.

Importing hashlib loads OpenSSL (about 3 ms of a start-up), which a command that only reads
a store, such as ``retap runs``, never needs.
"""

from __future__ import annotations

from typing import Any

__all__ = ["blake2b"]

_blake2b: Any = None


def blake2b() -> Any:
    """``hashlib.blake2b``."""
    global _blake2b
    if _blake2b is None:
        from hashlib import blake2b as _blake2b
    return _blake2b
