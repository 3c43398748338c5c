"""Waiting politely: retry backoff with jitter, a client-side rate limiter, a manual clock for
tests, and :class:`Secret`, the wrapper that keeps credentials out of logs and reprs.

Nothing here reads the wall clock on its own: callers pass ``clock`` (a monotonic seconds
function) and ``sleep``; the defaults are :func:`time.monotonic` and :func:`time.sleep`.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable

import attrs

__all__ = ["ManualClock", "RateLimiter", "RetryPolicy", "Secret"]


class Secret:
    """A credential that never shows itself: ``str``, ``repr`` and formatting print ``'****'``.

    Call :meth:`reveal` at the one place the value is needed (building an ``Authorization``
    header). Secrets compare by value and are not picklable, so they do not leak into caches.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("a secret is a str")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('****')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self) -> str:
        raise TypeError("secrets are not picklable")


class ManualClock:
    """A monotonic clock that moves only when told: ``sleep(s)`` advances it by ``s``.

    Give the same clock to an adapter (``clock=c.now, sleep=c.sleep``) and to a fake's rate
    limiter, and rate-limit tests run instantly and deterministically. Thread-safe.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._t = float(start)
        self._lock = threading.Lock()
        self.slept: list[float] = []
        """Every sleep requested, in order (for assertions about backoff)."""

    def now(self) -> float:
        with self._lock:
            return self._t

    def sleep(self, seconds: float) -> None:
        with self._lock:
            if seconds > 0:
                self._t += seconds
            self.slept.append(seconds)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._t += seconds


@attrs.frozen
class RetryPolicy:
    """Exponential backoff with jitter.

    Try ``attempts`` times in all. The n-th retry waits ``min(cap, base * 2**n)`` scaled by a
    random factor in ``[1 - jitter, 1]``; a wait the vendor asked for (``Retry-After``) replaces
    the computed one, capped at ``max_wait``.
    """

    attempts: int = 5
    base: float = 0.5
    cap: float = 30.0
    jitter: float = 0.5
    max_wait: float = 120.0

    def __attrs_post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be within [0, 1]")

    def delay(self, retry: int, rng: random.Random, asked: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (0 for the first retry)."""
        if asked is not None and asked >= 0:
            return min(asked, self.max_wait)
        d = min(self.cap, self.base * (2.0**retry))
        return float(d * (1 - self.jitter * rng.random()))


class RateLimiter:
    """A sliding-window limiter: at most ``max_calls`` calls in any ``period`` seconds.

    ``acquire()`` blocks (through ``sleep``) until a call may start. ``margin`` (a fraction) and
    ``slack`` (seconds) widen the window a little, so that network jitter cannot push one call too
    many into a server-side window. ``pause(s)``
    holds every caller back for ``s`` seconds (after the vendor said to slow down). Thread-safe.
    """

    def __init__(
        self,
        max_calls: int,
        period: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        margin: float = 0.02,
        slack: float = 0.05,
    ) -> None:
        if max_calls < 1 or period <= 0:
            raise ValueError("a rate limit needs max_calls >= 1 and period > 0")
        self.max_calls = max_calls
        self.period = period
        self.window = period * (1 + margin) + slack
        self._clock = clock
        self._sleep = sleep
        self._calls: deque[float] = deque()
        self._hold_until = 0.0
        self._lock = threading.Lock()
        self.waited = 0.0
        """Total seconds spent waiting for a slot."""

    def __repr__(self) -> str:
        return f"RateLimiter({self.max_calls}/{self.period:g}s)"

    def acquire(self) -> float:
        """Wait for a slot and take it; returns the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                while self._calls and self._calls[0] + self.window <= now:
                    self._calls.popleft()
                wait = 0.0
                if now < self._hold_until:
                    wait = self._hold_until - now
                elif len(self._calls) >= self.max_calls:
                    wait = self._calls[0] + self.window - now
                if wait <= 0:
                    self._calls.append(now)
                    self.waited += waited
                    return waited
            self._sleep(wait)
            waited += wait

    def pause(self, seconds: float) -> None:
        """Let no call start for ``seconds`` from now."""
        with self._lock:
            self._hold_until = max(self._hold_until, self._clock() + max(0.0, seconds))

    def answered(self) -> None:
        """Called when the latest call ended (answered, or failed on the way). This limiter
        counts calls from their start and ignores it; a limiter that counts calls from their
        answer stamps the call here."""

    def observe(self, remaining: int | None) -> None:
        """Take the vendor's ``remaining`` count into account: when the vendor has less room left
        than this limiter thinks (another client shares the quota), count the difference as calls
        made now, so the limiter slows down to match."""
        if remaining is None:
            return
        with self._lock:
            now = self._clock()
            while self._calls and self._calls[0] + self.window <= now:
                self._calls.popleft()
            ours_left = self.max_calls - len(self._calls)
            for _ in range(max(0, ours_left - max(0, remaining))):
                self._calls.append(now)
