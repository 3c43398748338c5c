"""The limiter that counts each call from its answer (``_pacing``), as the HTTP client drives it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from salesprocess.sync import ManualClock, RateLimiter
from salesprocess_adapters._pacing import MARGIN, PacedLimiter, paced


@given(st.lists(st.floats(0, 0.7), min_size=1, max_size=60), st.integers(1, 6), st.sampled_from([0.5, 1.0, 10.0]))
def test_no_window_at_the_server_holds_one_call_too_many(durations: list[float], mx: int, period: float) -> None:
    # the server counts a call at any moment between its start and its answer: even when the
    # earlier call is counted as late as possible and the later one as early as possible, the
    # later call lands a full window after the earlier one
    clock = ManualClock()
    lim = paced(RateLimiter(mx, period, clock=clock.now, sleep=clock.sleep))
    assert lim is not None
    spans = []
    for d in durations:
        lim.acquire()
        start = clock.now()
        clock.sleep(d)
        lim.answered()
        lim.observe(None)
        spans.append((start, clock.now()))
    for i in range(len(spans) - mx):
        assert spans[i + mx][0] - spans[i][1] >= period - 1e-9


def test_the_answer_counts_not_the_parsing_after_it() -> None:
    clock = ManualClock()
    lim = paced(RateLimiter(1, 1.0, clock=clock.now, sleep=clock.sleep))
    assert isinstance(lim, PacedLimiter)
    lim.acquire()
    clock.sleep(0.2)
    lim.answered()  # the answer is in at 0.2 s
    clock.sleep(0.3)  # parsing it takes a while
    lim.observe(None)
    lim.acquire()
    assert abs(clock.now() - (0.2 + lim.window)) < 1e-9
    assert abs(lim.window - (1.0 + MARGIN)) < 1e-12


def test_a_caller_that_only_observes_is_stamped_then() -> None:
    clock = ManualClock()
    lim = paced(RateLimiter(1, 1.0, clock=clock.now, sleep=clock.sleep))
    assert lim is not None
    lim.acquire()
    clock.sleep(0.4)
    lim.observe(None)
    lim.acquire()
    assert abs(clock.now() - (0.4 + lim.window)) < 1e-9


def test_the_plain_limiter_ignores_answers() -> None:
    clock = ManualClock()
    lim = RateLimiter(1, 1.0, clock=clock.now, sleep=clock.sleep, margin=0, slack=0)
    lim.acquire()
    clock.sleep(0.4)
    lim.answered()
    lim.acquire()
    assert abs(clock.now() - 1.0) < 1e-9


def test_read_ahead_keeps_the_chain_order_and_raises_after_the_pages_before_the_error() -> None:
    import pytest

    from salesprocess_adapters._readahead import read_ahead

    sent: list[int] = []

    def fetch(n: int) -> object:
        def go() -> int:
            sent.append(n)
            if n == 4:
                raise ValueError("page 4 failed")
            return n
        return go

    got = []
    with pytest.raises(ValueError, match="page 4"):
        for a in read_ahead(fetch(0), lambda n: fetch(n + 1)):
            got.append(a)
    assert got == [0, 1, 2, 3]
    assert sent == [0, 1, 2, 3, 4]

    assert list(read_ahead(fetch(0), lambda n: fetch(n + 1) if n < 2 else None)) == [0, 1, 2]


def test_read_ahead_stops_fetching_when_the_reader_stops() -> None:
    import threading
    import time

    from salesprocess_adapters._readahead import read_ahead

    sent: list[int] = []

    def fetch(n: int) -> object:
        def go() -> int:
            sent.append(n)
            return n
        return go

    it = read_ahead(fetch(0), lambda n: fetch(n + 1), name="test-read-ahead")
    assert next(it) == 0
    time.sleep(0.1)
    assert len(sent) <= 3, "no more than two answers wait beyond the one being read"
    it.close()  # type: ignore[attr-defined]
    assert not any(t.name == "test-read-ahead" for t in threading.enumerate())
    n = len(sent)
    time.sleep(0.1)
    assert len(sent) == n
