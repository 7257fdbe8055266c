"""Cato's GraphQL API over HTTPS: one call, every error it hides in an HTTP 200, and the budget.

``CatoApi.call(query, variables)`` POSTs one GraphQL request (``x-api-key`` header, gzip
answers, TLS verified, keep-alive, ``HTTPS_PROXY`` honoured) and returns ``data.<operation>``,
or raises. Cato answers most errors with HTTP 200 (``errors``, ``<operation>: null``), so
each answer is checked before it is believed:

- a wrong, revoked or missing key (``permission denied``, or HTTP 401/403): CredentialsError,
  one line saying what to update;
- the rate limit (a message starting ``rate limit for operation``): wait and call again,
  the wait doubling from RATE_LIMIT_FIRST_SECS to the budget's window, reset by a success;
- a marker the API no longer knows (``marker expired``, ``invalid marker``): MarkerRefused,
  for the source to report the gap;
- HTTP 5xx or 429, a connection that fails or breaks, a body that is not JSON, another
  GraphQL error, or ``null`` without an error: tried TRANSIENT_ATTEMPTS times (waits of
  1, 2, 4 s, or Retry-After), then FetchError.

``CallBudget`` keeps the calls of one pipeline under the account's allowance (eventsFeed
100, auditFeed 5 a minute, shared by every key of the account): a call waits only when as
many calls as allowed went out in the last minute, so while pages come back full the next
call goes at once. The key is never logged: no message here holds a header.
"""

from __future__ import annotations

import collections
import gzip
import http.client
import json
import logging
import random
import ssl
import threading
import time
import urllib.request
import zlib
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import orjson

from forwarder.errors import CredentialsError, FetchError

log = logging.getLogger(__name__)

TRANSIENT_ATTEMPTS = 4
# Cato's own scripts wait 5 s after a rate-limit answer; the wait doubles up to the window.
RATE_LIMIT_FIRST_SECS = 5.0
RETRY_AFTER_MAX_SECS = 60.0
USER_AGENT = "forwarder (Cato events to syslog)"


class MarkerRefused(FetchError):
    """The API no longer knows the marker it was given (expired, or never issued)."""


class Interrupted(FetchError):
    """The pipeline is stopping: a wait was cut short, no call was made."""


class _Transient(Exception):
    """An answer worth asking again for; *retry_after* seconds if the server said."""

    def __init__(self, text: str, retry_after: float | None = None) -> None:
        super().__init__(text)
        self.retry_after = retry_after


class _RateLimited(Exception):
    """The account's budget for this query is spent (by this key or another)."""


class CallBudget:
    """At most *calls* calls in any *window_secs* (the account's allowance for one query)."""

    def __init__(self, calls: int, window_secs: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.calls = calls
        self.window_secs = window_secs
        self._clock = clock
        self._sent: collections.deque[float] = collections.deque()

    def wait_secs(self) -> float:
        """How long until the next call fits the budget (0: now)."""
        now = self._clock()
        while self._sent and self._sent[0] <= now - self.window_secs:
            self._sent.popleft()
        if len(self._sent) < self.calls:
            return 0.0
        return self._sent[0] + self.window_secs - now

    def record(self) -> None:
        """A call went out now."""
        self._sent.append(self._clock())


class CatoApi:
    """Calls one GraphQL *operation* (``eventsFeed``, ``auditFeed``) of the API at *url*."""

    def __init__(
        self,
        url: str,
        api_key: str,
        operation: str,
        budget: CallBudget,
        stop: threading.Event,
        *,
        ca_file: str = "",
        connect_timeout_secs: float = 10.0,
        read_timeout_secs: float = 60.0,
        rate_limit_first_secs: float = RATE_LIMIT_FIRST_SECS,
        retry_first_secs: float = 1.0,
    ) -> None:
        self.url = url
        self.operation = operation
        self.budget = budget
        self._key = api_key
        self._stop = stop
        parts = urlsplit(url)
        self.host = parts.hostname or ""
        self._port = parts.port or 443
        self._path = parts.path or "/"
        self._context = ssl.create_default_context(cafile=ca_file or None)
        self._timeouts = (connect_timeout_secs, read_timeout_secs)
        self._conn: http.client.HTTPSConnection | None = None
        self._first_backoff = rate_limit_first_secs
        self._first_retry = retry_first_secs
        self.calls = 0  # answered calls (refused ones included), for status and benchmarks

    def call(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        """``data.<operation>`` of one request; see the module docstring for what raises."""
        body = json.dumps({"query": query, "variables": variables, "operationName": self.operation}).encode()
        transient = 0
        limited = 0
        while True:
            self._wait(self.budget.wait_secs())
            self.budget.record()
            try:
                result = self._checked(self._post(body))
            except _RateLimited:
                limited += 1
                window = self.budget.window_secs
                delay = min(window, self._first_backoff * 2 ** (limited - 1)) * random.uniform(0.5, 1.0)
                log.warning(
                    "%s: %s is rate limited (%d calls a minute per account, shared by every key of "
                    "the account); calling again in %.1fs",
                    self.host, self.operation, self.budget.calls, delay,
                )  # fmt: skip
                self._wait(delay)
                continue
            except _Transient as exc:
                transient += 1
                self.close()
                if transient >= TRANSIENT_ATTEMPTS:
                    raise FetchError(f"{self.url}: {self.operation}: {exc} ({transient} attempts)") from None
                delay = (
                    exc.retry_after
                    if exc.retry_after is not None
                    else self._first_retry * 2 ** (transient - 1)
                )
                log.info("%s: %s: %s; trying again in %.1fs", self.host, self.operation, exc, delay)
                self._wait(delay)
                continue
            return result

    def close(self) -> None:
        """Close the kept-alive connection (the next call opens another)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _wait(self, secs: float) -> None:
        if (secs > 0 and self._stop.wait(secs)) or self._stop.is_set():
            raise Interrupted(f"{self.url}: stopping")

    def _connection(self) -> http.client.HTTPSConnection:
        if self._conn is None:
            connect, read = self._timeouts
            proxy = urllib.request.getproxies().get("https")
            if proxy and not urllib.request.proxy_bypass(self.host):
                where = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
                conn = http.client.HTTPSConnection(
                    where.hostname or "", where.port or 3128, timeout=connect, context=self._context
                )
                conn.set_tunnel(self.host, self._port)
            else:
                conn = http.client.HTTPSConnection(
                    self.host, self._port, timeout=connect, context=self._context
                )
            conn.connect()
            assert conn.sock is not None
            conn.sock.settimeout(read)
            self._conn = conn
        return self._conn

    def _post(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, decoded body) of one POST; _Transient when the exchange broke."""
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "Accept-Encoding": "gzip",
            "User-Agent": USER_AGENT,
            "x-api-key": self._key,
        }
        try:
            conn = self._connection()
            conn.request("POST", self._path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            if response.getheader("Content-Encoding", "").lower() == "gzip":
                data = gzip.decompress(data)
        except ssl.SSLCertVerificationError as exc:
            raise FetchError(
                f"{self.url}: the certificate is not trusted ({exc.verify_message}); "
                "set source.ca_file to the CA that signs it (a TLS-inspecting proxy's, say)"
            ) from None
        except (OSError, http.client.HTTPException, EOFError, zlib.error) as exc:
            raise _Transient(f"the connection failed ({type(exc).__name__}: {exc})") from None
        if response.will_close:
            self.close()
        self.calls += 1
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data

    def _checked(self, answer: tuple[int, dict[str, str], bytes]) -> dict[str, Any]:
        """``data.<operation>`` once the answer is known to be one (see the module docstring)."""
        status, headers, data = answer
        if status in (401, 403):
            raise self._refused(f"HTTP {status}")
        if status == 429 or status >= 500:
            raise _Transient(f"HTTP {status}", _retry_after(headers.get("retry-after")))
        try:
            body = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise _Transient(f"HTTP {status} with a body that is not JSON ({data[:80]!r})") from None
        errors = body.get("errors") if isinstance(body, dict) else None
        payload = body.get("data") if isinstance(body, dict) else None
        result = payload.get(self.operation) if isinstance(payload, dict) else None
        if errors:
            messages = [str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors]
            text = "; ".join(messages)
            codes = {str((e.get("extensions") or {}).get("code", "")) for e in errors if isinstance(e, dict)}
            if any(m.lower().startswith("rate limit for operation") for m in messages):
                raise _RateLimited(text)
            if "Code104" in codes or any(m.lower() == "permission denied" for m in messages):
                raise self._refused(text)
            if any("marker" in m.lower() for m in messages):
                raise MarkerRefused(f"{self.url}: {self.operation}: {text}")
            raise _Transient(f"the API answered an error: {text}")
        if status != 200:
            raise FetchError(f"{self.url}: {self.operation}: HTTP {status}")
        if not isinstance(result, dict):
            raise _Transient(f"the API answered {self.operation}: null without an error")
        return result

    def _refused(self, why: str) -> CredentialsError:
        return CredentialsError(
            f"{self.url}: the API key was refused ({why}): update source.api_key with a valid key "
            "of the account (CMA > Resources > API Keys; view permission, allowed from this address)"
        )


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (delta-seconds only), capped; None when absent or a date."""
    try:
        return min(RETRY_AFTER_MAX_SECS, max(0.0, float(value))) if value else None
    except ValueError:
        return None
