"""How far behind the forwarder is, and progress lines while it catches up.

``Backlog`` keeps the source's latest listing of the objects still to deliver, less those
done since, and answers "how many objects (and bytes) are still to send" and "the lag":
seconds between the newest object's time (S3 LastModified) and the time of the object
delivered last (or, before one is, the first one fetched). A source that does not list
(``discovery: probe``) leaves pending unknown (NaN); the newest object is then the newest
one found so far.

``Progress`` turns that into a log line every ``log.progress_interval_secs`` while a
backlog lasts (files and events remaining, rate, estimated time to catch up), one line
when it is caught up, and, on a terminal, a live status line.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from forwarder.core.checkpoint import Position
from forwarder.core.observer import Observer
from forwarder.sources.base import LogObject

log = logging.getLogger(__name__)

NAN = math.nan
# A backlog begins with more than this many files waiting (the exporter writes one every
# 30 s, and one or two wait between polls in normal running), and ends with none.
BACKLOG_FILES = 2
# The live line's rate is taken over about this many seconds.
LIVE_RATE_WINDOW_SECS = 5.0
LIVE_REFRESH_SECS = 0.5


@dataclass(frozen=True)
class BacklogState:
    """A snapshot: what is still to send and how late delivery is (NaN: not known)."""

    pending_files: float
    pending_bytes: float
    lag_secs: float
    newest_file_time: float  # epoch seconds; 0 = not known
    delivered_file_time: float
    position: Position | None
    oldest_pending_time: float = 0.0  # S3 time of the oldest object still to send; 0 = none or not known


class Backlog(Observer):
    """Tracks the source's listings and what was delivered since; ``state()`` is safe from any
    thread (it reads what one assignment replaced)."""

    def __init__(self) -> None:
        self._pending: dict[str, LogObject] | None = None  # by key, as of the last listing
        self._newest_found = 0.0
        self._delivered_time = 0.0
        self.position: Position | None = None

    def listed(self, objects: Sequence[LogObject]) -> None:
        self._pending = {o.key: o for o in objects}
        self._newest_found = max([self._newest_found, *(o.modified for o in objects)])

    def fetched(self, obj: LogObject | None, error: Exception | None) -> None:
        if obj is not None and obj.modified:
            self._newest_found = max(self._newest_found, obj.modified)
            if not self._delivered_time:  # the first object of a run: delivery is at least this late
                self._delivered_time = obj.modified

    def saved(self, position: Position) -> None:
        self.position = position

    def file_done(self, obj: LogObject, records: int) -> None:
        self._done(obj)

    def quarantined(self, obj: LogObject) -> None:
        self._done(obj)

    def _done(self, obj: LogObject) -> None:
        if obj.modified:
            self._delivered_time = obj.modified
        pending = self._pending
        if pending is not None and obj.key in pending:
            self._pending = {k: o for k, o in pending.items() if k != obj.key}

    def state(self) -> BacklogState:
        """Objects and bytes still to send (as of the last listing, less what was done since),
        and the lag."""
        pending, position = self._pending, self.position
        pending_files = pending_bytes = NAN
        oldest = 0.0
        if pending is not None:
            objects = list(pending.values())
            pending_files, pending_bytes = float(len(objects)), float(sum(o.size for o in objects))
            oldest = min((o.modified for o in objects if o.modified), default=0.0)
        newest, delivered = self._newest_found, self._delivered_time
        lag = max(0.0, newest - delivered) if newest and delivered else NAN
        return BacklogState(pending_files, pending_bytes, lag, newest, delivered, position, oldest)


class Progress(Observer):
    """Backlog progress: a log line every *interval_secs* (0: none), and a live *status* line."""

    def __init__(
        self,
        backlog: Backlog,
        interval_secs: float,
        status: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._backlog = backlog
        self._interval = interval_secs
        self._status = status
        self._clock = clock
        self._events = 0  # sent, in all
        self._files = 0
        self._file_records = 0  # records and object bytes of the files done: events per byte
        self._file_bytes = 0
        self._behind_since: float | None = None
        self._line_at = 0.0
        self._line_events = 0  # self._events when the last line (or the backlog) began
        self._reported = False
        self._start_events = self._start_files = 0
        self._samples: deque[tuple[float, int]] = deque()
        self._live_at = -math.inf
        self._live_shown = False

    def sent(self, collector: str, events: int, size: int, ack_secs: float) -> None:
        self._events += events
        self._tick()

    def file_done(self, obj: LogObject, records: int) -> None:
        self._files += 1
        self._file_records += records
        self._file_bytes += obj.size
        self._tick()

    def pass_done(self) -> None:
        self._tick()

    def close(self) -> None:
        """Clear the live line (at exit)."""
        if self._status is not None and self._live_shown:
            self._status("")
            self._live_shown = False

    def _tick(self) -> None:
        now = self._clock()
        state = self._backlog.state()
        behind = state.pending_files > (0 if self._behind_since is not None else BACKLOG_FILES)
        if not behind:
            if self._reported:
                took = now - (self._behind_since or now)
                log.info(
                    "caught up: %s events from %s files in %s",
                    f"{self._events - self._start_events:,}",
                    f"{self._files - self._start_files:,}",
                    _duration(took),
                    extra={"files_remaining": 0, "lag_secs": _number(state.lag_secs)},
                )
            self._behind_since, self._reported = None, False
            self._live(now, "")
            return
        if self._behind_since is None:
            self._behind_since = self._line_at = now
            self._line_events = self._start_events = self._events
            self._start_files = self._files
        self._samples.append((now, self._events))
        while len(self._samples) > 2 and now - self._samples[1][0] >= LIVE_RATE_WINDOW_SECS:
            self._samples.popleft()
        if self._interval and now - self._line_at >= self._interval:
            self._line(state, (self._events - self._line_events) / (now - self._line_at))
            self._line_at, self._line_events, self._reported = now, self._events, True
        if now - self._behind_since >= 1.0:
            first_at, first_events = self._samples[0]
            rate = (self._events - first_events) / (now - first_at) if now > first_at else 0.0
            self._live(now, self._live_text(state, rate))

    def _remaining_events(self, state: BacklogState) -> float:
        if not self._file_bytes or math.isnan(state.pending_bytes):
            return NAN
        return state.pending_bytes * self._file_records / self._file_bytes

    def _line(self, state: BacklogState, rate: float) -> None:
        events = self._remaining_events(state)
        eta = events / rate if rate > 0 and not math.isnan(events) else NAN
        log.info(
            "backlog: %s files (%s events, %s) remaining, lag %s; %s events/s; caught up in %s",
            f"{int(state.pending_files):,}",
            "?" if math.isnan(events) else f"~{int(events):,}",
            _size(state.pending_bytes),
            _duration(state.lag_secs),
            f"{rate:,.0f}",
            "?" if math.isnan(eta) else f"~{_duration(eta)}",
            extra={
                "files_remaining": int(state.pending_files),
                "events_remaining": _number(events),
                "events_per_sec": round(rate, 1),
                "eta_secs": _number(eta),
                "lag_secs": _number(state.lag_secs),
            },
        )

    def _live_text(self, state: BacklogState, rate: float) -> str:
        events = self._remaining_events(state)
        eta = events / rate if rate > 0 and not math.isnan(events) else NAN
        left = "" if math.isnan(events) else f" (~{int(events):,} events)"
        return (
            f"backlog: {int(state.pending_files):,} files{left} left | {rate:,.0f} events/s | "
            f"ETA {'?' if math.isnan(eta) else _duration(eta)} | lag {_duration(state.lag_secs)}"
        )

    def _live(self, now: float, text: str) -> None:
        if self._status is None or (not text and not self._live_shown):
            return
        if text and now - self._live_at < LIVE_REFRESH_SECS:
            return
        self._status(text)
        self._live_at, self._live_shown = now, bool(text)


def _number(value: float) -> float | None:
    """*value* for a JSON field: None when not known."""
    return None if math.isnan(value) else round(value, 1)


def _duration(secs: float) -> str:
    """1d2h, 3h12m, 5m10s, 42s; ? when not known."""
    if math.isnan(secs):
        return "?"
    whole = int(round(secs))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes}m"
    if minutes:
        return f"{minutes}m{seconds}s"
    return f"{seconds}s"


def _size(count: float) -> str:
    if math.isnan(count):
        return "? bytes"
    for unit in ("bytes", "KB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:,.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError("unreachable")
