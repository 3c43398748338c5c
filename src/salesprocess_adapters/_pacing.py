"""A client-side rate limiter that counts each call from the moment its answer came back.

:class:`~salesprocess.sync.RateLimiter` stamps a call when it starts. A server counts it when the
request arrives, which may be any time until the answer leaves; when that delay varies (a busy
network, a busy machine), two calls one window apart by their start times may land closer than a
window apart at the server, and the second is refused. Stamping each call again when it ends
(:meth:`~salesprocess.sync.RateLimiter.answered` is called as soon as the answer is in, before its
body is parsed, and also when the call failed on the way) closes the gap: the call ``max_calls``
places later starts at least a window after the earlier one ended, so after it arrived. For
sequential calls this costs one round trip per window, and the fixed allowance for jitter
(``slack``) is no longer needed: only a margin for clocks running at slightly different rates
stays, and 0.5 % of the window is thousands of times what clocks drift.
"""

from __future__ import annotations

from salesprocess.sync.timing import RateLimiter

__all__ = ["MARGIN", "PacedLimiter", "paced"]

MARGIN = 0.005
"""The window is widened by this fraction (clock rates differ by parts per million)."""


class PacedLimiter(RateLimiter):
    """A :class:`~salesprocess.sync.RateLimiter` whose latest call counts from its answer."""

    _ended = True

    def acquire(self) -> float:
        waited = super().acquire()
        with self._lock:
            self._ended = False
        return waited

    def _stamp(self) -> None:
        if self._calls:
            now = self._clock()
            if self._calls[-1] < now:
                self._calls[-1] = now

    def answered(self) -> None:
        with self._lock:
            self._stamp()
            self._ended = True

    def observe(self, remaining: int | None) -> None:
        with self._lock:
            if not self._ended:  # a caller that does not report the end of its calls
                self._stamp()
        super().observe(remaining)


def paced(limiter: RateLimiter | None) -> PacedLimiter | None:
    """The same limit as ``limiter``, counted from answers (``None`` stays ``None``)."""
    if limiter is None:
        return None
    return PacedLimiter(limiter.max_calls, limiter.period, clock=limiter._clock, sleep=limiter._sleep,
                        margin=MARGIN, slack=0.0)
