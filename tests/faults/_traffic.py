"""Load for the fault suite: threads sending requests, every outcome classified.

- **ok**: answered with the expected status;
- **failed**: answered with another status, or refused before it reached serval
  (connection refused: nothing was lost, the client knows at once);
- **lost**: sent and never answered — the connection broke mid-request, or no
  answer within ``timeout_s`` (a hang).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass(frozen=True)
class Outcome:
    started: float  # time.monotonic() when sent
    ended: float
    status: int | None  # None: no HTTP answer
    detail: str  # the answer's body (or the error) in short
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None  # the decoded JSON body of an ok answer

    @property
    def answered(self) -> bool:
        return self.status is not None


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


class Traffic:
    """Sends requests from ``threads`` threads until stopped (a context manager).

    ``request(i)`` builds the i-th request as ``(method, path_or_url, kwargs)`` for
    ``httpx.Client.request``; the default is ``GET url``.
    """

    def __init__(
        self,
        url: str,
        *,
        threads: int = 4,
        timeout_s: float = 30.0,
        expect: int = 200,
        request: Callable[[int], tuple[str, str, dict[str, Any]]] | None = None,
        refused_backoff_s: float = 0.05,
    ) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.expect = expect
        self._request = request or (lambda _i: ("GET", url, {}))
        self._backoff_s = refused_backoff_s
        self._counter = itertools.count()
        self._lock = threading.Lock()
        self.stop = threading.Event()
        self.ok: list[Outcome] = []
        self.failed: list[Outcome] = []
        self.lost: list[Outcome] = []
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    @property
    def sent(self) -> int:
        return len(self.ok) + len(self.failed) + len(self.lost)

    def bodies(self) -> list[Any]:
        return [o.body for o in self.ok]

    def ok_since(self, t: float) -> int:
        return sum(1 for o in self.ok if o.started >= t)

    def wait_ok(self, more: int, timeout_s: float = 60.0) -> None:
        """Wait until ``more`` further requests were answered ok."""
        target = len(self.ok) + more
        deadline = time.monotonic() + timeout_s
        while len(self.ok) < target:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout_s}s waiting for {more} more ok answers "
                    f"({self.summary()})"
                )
            time.sleep(0.02)

    def summary(self) -> str:
        last = (self.failed + self.lost)[-3:]
        return (
            f"sent={self.sent} ok={len(self.ok)} failed={len(self.failed)} "
            f"lost={len(self.lost)}; last problems: {[o.detail for o in last]}"
        )

    def _run(self) -> None:
        with httpx.Client(timeout=self.timeout_s) as client:
            while not self.stop.is_set():
                method, url, kwargs = self._request(next(self._counter))
                started = time.monotonic()
                try:
                    r = client.request(method, url, **kwargs)
                except httpx.ConnectError as exc:
                    self._record(self.failed, Outcome(started, time.monotonic(), None, repr(exc)))
                    time.sleep(self._backoff_s)
                    continue
                except httpx.TransportError as exc:  # broke mid-request, or timed out
                    self._record(self.lost, Outcome(started, time.monotonic(), None, repr(exc)))
                    continue
                ended = time.monotonic()
                if r.status_code == self.expect:
                    body = r.json() if r.headers.get("content-type") == "application/json" else None
                    self._record(self.ok, Outcome(started, ended, r.status_code, "", body=body))
                else:
                    detail = f"{r.status_code}: {_short(r.text)}"
                    headers = dict(r.headers)
                    self._record(
                        self.failed, Outcome(started, ended, r.status_code, detail, headers)
                    )

    def _record(self, bucket: list[Outcome], outcome: Outcome) -> None:
        with self._lock:
            bucket.append(outcome)

    def __enter__(self) -> Traffic:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self._threads:
            t.join(self.timeout_s + 10)
