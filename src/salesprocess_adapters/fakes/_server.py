"""Plumbing shared by the vendor fakes: requests and responses, the deterministic record clock,
fault knobs, a server-side rate window, the in-process httpx transport and the loopback server.

A fake is a :class:`FakeApp`: ``handle(request) -> response`` under one lock. The same app runs
in-process (:meth:`FakeApp.transport`, an ``httpx.MockTransport``) and over real HTTP on
127.0.0.1 (:meth:`FakeApp.serve`, a stdlib ``ThreadingHTTPServer`` in a daemon thread).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs

from .._http import dump_json

__all__ = ["FakeApp", "FakeClock", "FakeRequest", "FakeResponse", "FakeServer", "RateWindow", "dump_json"]

FAULT_KINDS = ("429", "5xx", "timeout", "truncated", "expired_token", "duplicate_page")


@attrs.define
class FakeRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    """Header names in lower case."""
    body: bytes = b""
    base_url: str = "http://fake.invalid"

    def arg(self, name: str, default: str | None = None) -> str | None:
        v = self.query.get(name)
        return v[-1] if v else default

    def json(self) -> Any:
        if not self.body:
            return None
        return json.loads(self.body, parse_float=Decimal)

    def form(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(self.body.decode("utf-8"), keep_blank_values=True).items()}


@attrs.define
class FakeResponse:
    status: int
    body: bytes = b""
    headers: dict[str, str] = attrs.Factory(dict)
    hang: bool = False
    """Never answer in time (a timeout)."""

    @classmethod
    def of(cls, status: int, data: Any, headers: Mapping[str, str] | None = None) -> FakeResponse:
        """A JSON response. ``Decimal`` values are written as exact JSON numbers."""
        h = {"Content-Type": "application/json;charset=utf-8", **(headers or {})}
        return cls(status, dump_json(data), h)


class FakeClock:
    """The record clock of a fake: starts at a fixed instant and moves ``step`` on every write,
    so modification times are deterministic. ``freeze()`` stops it (many writes, one instant)."""

    def __init__(self, start: datetime = datetime(2026, 1, 5, 9, 0, tzinfo=UTC),
                 step: timedelta = timedelta(milliseconds=1)) -> None:
        self._now = start
        self.step = step
        self.frozen = False

    def now(self) -> datetime:
        return self._now

    def tick(self) -> datetime:
        if not self.frozen:
            self._now += self.step
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)


class RateWindow:
    """A server-side sliding window: at most ``max_calls`` per ``period`` seconds."""

    def __init__(self, max_calls: int, period: float, monotonic: Callable[[], float]) -> None:
        self.max_calls = max_calls
        self.period = period
        self._monotonic = monotonic
        self._calls: deque[float] = deque()

    def take(self) -> tuple[bool, int]:
        """Count a call if the window has room; returns (allowed, remaining after it)."""
        now = self._monotonic()
        while self._calls and self._calls[0] + self.period <= now:
            self._calls.popleft()
        if len(self._calls) >= self.max_calls:
            return False, 0
        self._calls.append(now)
        return True, self.max_calls - len(self._calls)


class FakeApp:
    """Base of the vendor fakes: locking, faults, counters, transports.

    Subclasses implement :meth:`dispatch` and the vendor's error shapes (:meth:`throttled`,
    :meth:`unavailable`, :meth:`unauthorized`).
    """

    vendor = "fake"

    def __init__(self, *, monotonic: Callable[[], float] = time.monotonic, timeout_delay: float = 1.0,
                 rate_limit: tuple[int, float] | None = None) -> None:
        self._lock = threading.RLock()
        self.monotonic = monotonic
        self.timeout_delay = timeout_delay
        self._faults: deque[str] = deque()
        self._last: dict[str, FakeResponse] = {}
        self.status_counts: Counter[str] = Counter()
        """Responses by HTTP status, plus ``throttled`` (responses telling the client to slow
        down, whatever their form) and ``requests``."""
        self.window: RateWindow | None = None
        self.set_rate_limit(rate_limit)
        self._seq = 0

    # --- knobs ---------------------------------------------------------------------------------
    def fail_next(self, fault: str, n: int = 1) -> None:
        """The next ``n`` API calls get ``fault``: ``429`` (throttled), ``5xx``, ``timeout``,
        ``truncated`` (a body cut short), ``expired_token`` or ``duplicate_page`` (the previous
        page of a listing under way, again: the client asks for the same next page twice)."""
        if fault not in FAULT_KINDS:
            raise ValueError(f"unknown fault {fault!r}; expected one of {FAULT_KINDS}")
        with self._lock:
            self._faults.extend([fault] * n)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def set_rate_limit(self, limit: tuple[int, float] | None) -> None:
        """Enforce ``(max_calls, period_seconds)`` on the API (``None``: no limit)."""
        with self._lock:
            self.window = None if limit is None else RateWindow(limit[0], limit[1], self.monotonic)

    def next_id(self) -> int:
        with self._lock:
            self._seq += 1
            return self._seq

    def correlation_id(self) -> str:
        n = self.next_id()
        return f"00000000-0000-4000-8000-{n:012d}"

    # --- vendor hooks ----------------------------------------------------------------------------
    def dispatch(self, req: FakeRequest) -> tuple[str, Callable[[FakeRequest], FakeResponse]] | None:
        """The route for a request: ``(route key, handler)``; ``None`` for an unknown path."""
        raise NotImplementedError

    def is_page(self, route: str) -> bool:
        """Whether a route returns pages (a ``duplicate_page`` fault repeats its last answer)."""
        return False

    def page_key(self, req: FakeRequest, route: str) -> str:
        """Which listing a page belongs to (a ``duplicate_page`` fault repeats the last page of the
        same listing)."""
        return route

    def has_next(self, resp: FakeResponse) -> bool:
        """Whether a page response points to a next page (only a page of a listing under way is
        repeated: repeating a last page would hand a stale end-of-list to a later listing)."""
        return True

    def is_public(self, route: str) -> bool:
        """Routes without auth, faults or rate limits (the OAuth token endpoint)."""
        return False

    def window_for(self, route: str) -> RateWindow | None:
        return self.window

    def authorized(self, req: FakeRequest) -> bool:
        raise NotImplementedError

    def expire_tokens(self) -> None:
        raise NotImplementedError

    def not_found(self, req: FakeRequest) -> FakeResponse:
        return FakeResponse.of(404, {"message": f"no route {req.method} {req.path}"})

    def throttled(self, req: FakeRequest, route: str) -> FakeResponse:
        raise NotImplementedError

    def unavailable(self, req: FakeRequest) -> FakeResponse:
        raise NotImplementedError

    def unauthorized(self, req: FakeRequest) -> FakeResponse:
        raise NotImplementedError

    def decorate(self, resp: FakeResponse, route: str, remaining: int | None) -> None:
        """Add the vendor's rate-limit headers."""

    # --- the request path -------------------------------------------------------------------------
    def handle(self, req: FakeRequest) -> FakeResponse:
        with self._lock:
            self.status_counts["requests"] += 1
            found = self.dispatch(req)
            if found is None:
                return self._count(self.not_found(req))
            route, handler = found
            if self.is_public(route):
                return self._count(handler(req))
            fault = self._faults.popleft() if self._faults else None
            if fault == "timeout":
                self.status_counts["timeout"] += 1
                return FakeResponse(504, hang=True)
            remaining: int | None = None
            win = self.window_for(route)
            if win is not None:
                ok, remaining = win.take()
                if not ok:
                    self.status_counts["throttled"] += 1
                    return self._count(self.throttled(req, route))
            if fault == "429":
                self.status_counts["throttled"] += 1
                return self._count(self.throttled(req, route))
            if fault == "5xx":
                return self._count(self.unavailable(req))
            if fault == "expired_token":
                self.expire_tokens()
            if not self.authorized(req):
                return self._count(self.unauthorized(req))
            key = self.page_key(req, route) if self.is_page(route) else route
            if fault == "duplicate_page":
                prev = self._last.get(key) if self.is_page(route) else None
                if prev is not None and self.has_next(prev):
                    self.status_counts["duplicate_page"] += 1
                    return self._count(prev)
                self._faults.appendleft(fault)  # no listing under way: repeat a later page
                fault = None
            resp = handler(req)
            self.decorate(resp, route, remaining)
            if self.is_page(route) and resp.status == 200:
                self._last[key] = resp
            if fault == "truncated":
                self.status_counts["truncated"] += 1
                resp = FakeResponse(resp.status, resp.body[: max(1, len(resp.body) // 2)], dict(resp.headers))
            return self._count(resp)

    def _count(self, resp: FakeResponse) -> FakeResponse:
        self.status_counts[str(resp.status)] += 1
        self.finish(resp)
        return resp

    def finish(self, resp: FakeResponse) -> None:
        """Last touch on every response (headers the vendor always sends)."""

    # --- transports ---------------------------------------------------------------------------------
    def transport(self) -> Any:
        """An ``httpx.MockTransport`` that serves this fake in-process."""
        import httpx

        def handler(request: httpx.Request) -> httpx.Response:
            u = request.url
            req = FakeRequest(
                request.method, u.path, parse_qs(u.query.decode("ascii"), keep_blank_values=True),
                {k.lower(): v for k, v in request.headers.items()}, request.read(),
                f"{u.scheme}://{u.netloc.decode('ascii')}",
            )
            resp = self.handle(req)
            if resp.hang:
                raise httpx.ReadTimeout("the fake did not answer in time (injected)", request=request)
            return httpx.Response(resp.status, headers=resp.headers, content=resp.body)

        return httpx.MockTransport(handler)

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> FakeServer:
        """Start serving over HTTP (``port=0`` picks a free port); stop with ``close()``."""
        return FakeServer(self, host, port)


def port_of(server: Any) -> int:
    return int(server.server_address[1])


class FakeServer:
    """A fake on a loopback port, in a daemon thread. Use as a context manager or ``close()``."""

    def __init__(self, app: FakeApp, host: str, port: int) -> None:
        self.app = app

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            wbufsize = -1  # one write per response (headers and body), flushed after the handler
            disable_nagle_algorithm = True

            def _serve(self) -> None:
                u = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                req = FakeRequest(
                    self.command, u.path, parse_qs(u.query, keep_blank_values=True),
                    {k.lower(): v for k, v in self.headers.items()}, body,
                    f"http://{self.headers.get('Host') or f'{host}:{port_of(self.server)}'}",
                )
                resp = app.handle(req)
                if resp.hang:
                    time.sleep(app.timeout_delay)
                    self.close_connection = True
                    return
                try:
                    self.send_response(resp.status)
                    for k, v in resp.headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(resp.body)))
                    self.end_headers()
                    self.wfile.write(resp.body)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: the fake never logs requests (they carry credentials)

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server((host, port), Handler)
        self.host = host
        self.port = int(self._server.server_address[1])
        self.base_url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"fake-{app.vendor}-{self.port}", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"FakeServer({self.app.vendor}, {self.base_url})"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def running(self) -> Iterator[FakeServer]:
        try:
            yield self
        finally:
            self.close()


class FakeHarness:
    """What every vendor harness shares: a fake plus the adapters wired to it.

    ``mode="transport"`` serves the fake in-process and counts rate limits on a
    :class:`~salesprocess.sync.ManualClock` shared with the adapters (no real waiting);
    ``mode="http"`` serves it on a loopback port in real time. Subclasses call :meth:`_start`
    and build their adapters with :meth:`_clock_kw`, :meth:`_rate_limit` and :meth:`_track`.
    """

    fake_host = "fake"
    """Host of the in-process base URL (``http://<fake_host>``)."""

    def _start(
        self,
        mode: str,
        fake_cls: Callable[..., Any],
        defaults: Mapping[str, Any],
        fake_options: Mapping[str, Any],
        adapter_capabilities: frozenset[str],
    ) -> None:
        from salesprocess.sync import AdapterCapability, ManualClock

        if mode not in ("transport", "http"):
            raise ValueError("mode is 'transport' or 'http'")
        self.mode = mode
        self.clock = ManualClock() if mode == "transport" else None
        opts = dict(defaults)
        if self.clock is not None:
            opts["monotonic"] = self.clock.now
        opts.update(fake_options)
        self.fake = fake_cls(**opts)
        self.remote = self.fake
        self.capabilities = frozenset(
            adapter_capabilities | {AdapterCapability.FAULTS, AdapterCapability.CLOCK}
        )
        self.server = self.fake.serve() if mode == "http" else None
        self._adapters: list[Any] = []

    @property
    def base_url(self) -> str:
        return self.server.base_url if self.server is not None else f"http://{self.fake_host}"

    def _window_limit(self) -> tuple[int, float] | None:
        w = self.fake.window
        return None if w is None else (w.max_calls, w.period)

    @staticmethod
    def _rate_limit(
        rate_limit: tuple[int, float] | bool | None, current: tuple[int, float] | None
    ) -> tuple[int, float] | None:
        """``True`` means the fake's own limit, ``False``/``None`` none, a tuple that limit."""
        if rate_limit is True:
            return current
        return None if rate_limit is False else rate_limit

    def _clock_kw(self) -> dict[str, Any]:
        """In transport mode: the in-process transport and the shared manual clock."""
        if self.clock is None:
            return {}
        return {"transport": self.fake.transport(), "clock": self.clock.now, "sleep": self.clock.sleep}

    def _track(self, adapter: Any) -> Any:
        self._adapters.append(adapter)
        return adapter

    def close(self) -> None:
        for a in self._adapters:
            a.close()
        if self.server is not None:
            self.server.close()
