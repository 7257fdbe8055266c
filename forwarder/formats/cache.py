"""The bounded cache used on the hot paths: a plain dict, emptied when it grows too big.

Lookups stay ``dict.get`` (the fastest there is); only an insert goes through
``remember``. Emptying the whole dict at the limit costs one rebuild of what is still in
use, which the events of a file (a few thousand seconds, a few dozen field lists) repay
at once; an LRU would cost on every lookup.
"""

from __future__ import annotations

from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")

# Entries kept before a cache is emptied.
ENTRIES = 4096


def remember(cache: dict[K, V], key: K, value: V, limit: int = ENTRIES) -> V:
    """Store *value* under *key* in *cache* (emptied first when it holds *limit* entries);
    return *value*."""
    if len(cache) >= limit:
        cache.clear()
    cache[key] = value
    return value
