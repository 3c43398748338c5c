"""Fetch a chain of pages one request ahead of the code that reads them.

A paged listing is a chain: the answer to one request names the next (a cursor, a locator).
Fetched in line, the next request leaves only after the caller has turned the page into
records, so every page costs a round trip plus the conversion. :func:`read_ahead` sends the
requests from a thread of its own: as soon as an answer is in and the next request is known,
that request is sent (the rate limiter still decides when), while the caller converts the page
it already has. Requests go out in the same order as in line, one at a time, so a limiter that
counts each call from its answer (see ``_pacing``) stays exact.

At most two answers wait beyond the one the caller holds, so memory stays flat. An error is
raised in the caller after the pages fetched before it; closing the iterator stops the thread
after the request it is sending.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import suppress
from typing import Any, TypeVar

__all__ = ["read_ahead"]

B = TypeVar("B")

_END = object()


def read_ahead(first: Callable[[], B], follow: Callable[[B], Callable[[], B] | None],
               *, name: str = "salesprocess-read-ahead") -> Iterator[B]:
    """Answers of the chain ``first()``, ``follow(a1)()``, ``follow(a2)()``, ... until ``follow``
    returns ``None``, fetched in a background thread one request ahead of the caller."""
    q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(item: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        fetch: Callable[[], B] | None = first
        try:
            while fetch is not None:
                answer = fetch()
                fetch = follow(answer)
                if not put(("page", answer)):
                    return
        except BaseException as e:  # handed to the caller, which re-raises it
            put(("error", e))
            return
        put(("end", _END))

    t = threading.Thread(target=run, name=name, daemon=True)
    t.start()
    try:
        while True:
            what, value = q.get()
            if what == "page":
                yield value
            elif what == "error":
                raise value
            else:
                return
    finally:
        stop.set()
        with suppress(queue.Empty):
            while True:
                q.get_nowait()
        t.join(timeout=5)
