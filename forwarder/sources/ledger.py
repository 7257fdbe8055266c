"""The ledger of ``kind: events_integration``: the objects done, over a look-back window.

Cato's keys under the Folder say nothing about order, so no key or time says "everything
before this is done" (peers lost data resuming from StartAfter or a LastModified
watermark). The ledger names each object delivered, by its key after the prefix and its
ETag, as long as its LastModified lies within ``source.lookback_secs`` of the newest one
delivered; ``since`` is where that window begins, and an object written before it that the
ledger does not name counts as delivered. So an object that shows up late, or whose key
sorts before the keys already done, is still found, and one done is never sent again. It
is the source's cursor state: the pipeline stores it in the checkpoint, the source reads it.

    {"since": 1764309600, "newest": 1764313200,
     "done": {"2026/11/28/07/5f0c2b7e.gz": "1764313200 9dd4e461268c8034f5c8564e155c67a6"}}

``since`` only moves forward: lowering ``lookback_secs`` prunes at the next object done,
raising it widens the window from then on (objects pruned before are not sent again).
LastModified is S3's clock (whole seconds), never this machine's.

Each entry is one string ("LastModified ETag"), not a list: the checkpoint is written with
the standard library's JSON encoder after every batch, and it writes a string 3.4 times as
fast as a two-item list (20,000 entries: 17 ms instead of 58; benchmarks/listing.py has
the whole cost of a save by ledger size).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from forwarder.errors import CheckpointError
from forwarder.sources.base import Cursor

NEW, DONE, REPLACED = "new", "done", "replaced"


class Ledger:
    """A ledger read from a cursor (``Ledger.of``); ``with_done`` gives the next one."""

    def __init__(self, since: int = 0, newest: int = 0, done: Mapping[str, str] | None = None) -> None:
        self.since = since
        self.newest = newest
        self.done: Mapping[str, str] = done if done is not None else {}  # name -> "LastModified ETag"

    @classmethod
    def of(cls, cursor: Cursor) -> Ledger:
        """The ledger a cursor holds; CheckpointError when it holds none (another kind's cursor)."""
        data = cursor.get("ledger")
        try:
            if not isinstance(data, dict):
                raise TypeError("no ledger")
            since, newest, done = data["since"], data["newest"], data["done"]
            if type(since) is not int or type(newest) is not int or not isinstance(done, dict):
                raise TypeError("since and newest must be whole numbers, done an object")
            for entry in done.values():
                if not (isinstance(entry, str) and entry.partition(" ")[0].isdigit()):
                    raise TypeError(f'a done entry is "LastModified ETag", not {entry!r}')
        except (KeyError, TypeError) as exc:
            raise CheckpointError(
                f"the checkpoint's cursor is not an events_integration ledger ({exc}): was it written "
                "by another source.kind? Give this source its own checkpoint.path"
            ) from None
        return cls(since, newest, done)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Ledger:
        """The ledger ``to_json`` gave (a cursor this source wrote: not checked again)."""
        return cls(data["since"], data["newest"], data["done"])

    def to_json(self) -> dict[str, Any]:
        return {"since": self.since, "newest": self.newest, "done": self.done}

    def __len__(self) -> int:
        return len(self.done)

    def state(self, name: str, etag: str) -> str:
        """NEW, DONE or REPLACED (done, but with another ETag) for the object *name* (its key
        after the prefix) with *etag*."""
        entry = self.done.get(name)
        if entry is None:
            return NEW
        return DONE if entry.partition(" ")[2] == etag else REPLACED

    def etag(self, name: str) -> str:
        """The ETag the ledger has for *name* ("" when none)."""
        return self.done.get(name, "").partition(" ")[2]

    def before_window(self, modified: float) -> bool:
        """True when an object written at *modified* (epoch seconds) is older than the window:
        done, unless the ledger says otherwise."""
        return int(modified) < self.since

    def with_done(self, name: str, modified: float, etag: str, lookback_secs: float) -> Ledger:
        """This ledger with object *name* (written at *modified*, ETag *etag*) done, the window
        moved to the newest object done and the entries before it pruned."""
        second = int(modified)
        newest = max(self.newest, second)
        since = max(self.since, newest - int(lookback_secs))
        if since == self.since:
            done = dict(self.done)
        else:
            done = {key: entry for key, entry in self.done.items() if int(entry.partition(" ")[0]) >= since}
        if second >= since:
            done[name] = f"{second} {etag}"
        return Ledger(since, newest, done)


def ledger_size(cursor: Cursor | None) -> int | None:
    """How many objects the ledger in *cursor* names; None when *cursor* holds no ledger."""
    data = cursor.get("ledger") if cursor else None
    done = data.get("done") if isinstance(data, dict) else None
    return len(done) if isinstance(done, dict) else None
