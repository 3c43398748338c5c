"""Shared HTTP machinery of the CRM adapters (httpx).

:class:`HttpClient` sends one logical request and deals with everything around it:

- an injectable ``httpx.Client`` or transport (``httpx.MockTransport`` around a fake for tests,
  a shared client in an application);
- a client-side :class:`~salesprocess.sync.RateLimiter` set to the vendor's published limits,
  fed by the vendor's rate-limit headers;
- retries with exponential backoff and jitter on throttling, 5xx, timeouts, network errors and
  broken (truncated) bodies, honouring ``Retry-After`` and the vendor's own signals;
- one token refresh on the vendor's expiry signal (and ahead of a known expiry);
- typed errors (:class:`~salesprocess.errors.AuthError`, :class:`~salesprocess.errors.RateLimited`,
  :class:`~salesprocess.errors.RemoteValidationError`,
  :class:`~salesprocess.errors.RemoteUnavailable`) carrying the vendor's code and correlation id;
- secret hygiene: the token lives in a :class:`~salesprocess.sync.Secret`, goes into the
  ``Authorization`` header of each request and nowhere else (not the client's default headers,
  not a log line, not an error).

Each vendor supplies a :class:`VendorPolicy` that reads its responses. httpx is imported when a
client is built; without it the adapters say which extra to install.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import attrs

from salesprocess.errors import (
    AdapterError,
    AuthError,
    RateLimited,
    RemoteUnavailable,
    RemoteValidationError,
)
from salesprocess.sync.timing import RateLimiter, RetryPolicy, Secret

if TYPE_CHECKING:
    import httpx

__all__ = ["HttpClient", "Response", "VendorPolicy", "Verdict", "require_httpx"]

log = logging.getLogger("salesprocess.adapters.http")


def require_httpx() -> Any:
    """Import httpx, or say which extra brings it."""
    try:
        import httpx
    except ImportError as e:  # pragma: no cover - httpx is installed with the crm extra
        raise AdapterError(
            "the CRM adapters need httpx: install it with  pip install 'salesprocess[crm]'"
        ) from e
    return httpx


@attrs.frozen
class Response:
    """A parsed response: ``body`` is the JSON (floats as ``Decimal``) or ``None``."""

    status: int
    headers: Mapping[str, str]
    body: Any
    url: str


@attrs.frozen
class Verdict:
    """What a :class:`VendorPolicy` makes of a response.

    ``action`` is ``ok``, ``retry`` (wait ``wait`` seconds, or back off when ``None``),
    ``refresh`` (the token expired: refresh once and resend) or ``raise`` (``error``).
    """

    action: str
    error: AdapterError | None = None
    wait: float | None = None
    throttled: bool = False


class VendorPolicy:
    """How to read one vendor's responses. Subclasses override :meth:`judge`."""

    name = "crm"

    def auth_headers(self, token: Secret) -> dict[str, str]:
        return {"Authorization": f"Bearer {token.reveal()}"}

    def remaining(self, r: Response) -> int | None:
        """Calls left in the vendor's current rate window, from its headers."""
        return None

    def before(self, what: str) -> None:
        """Called before each request; raise to refuse it (e.g. a spent daily quota)."""

    def judge(self, r: Response, what: str) -> Verdict:
        if 200 <= r.status < 300:
            return Verdict("ok")
        if r.status == 401:
            return Verdict("refresh", AuthError(f"{what}: HTTP 401", status=401))
        if r.status == 429:
            return Verdict("retry", RateLimited(f"{what}: HTTP 429", status=429), _retry_after(r), True)
        if r.status >= 500:
            return Verdict("retry", RemoteUnavailable(f"{what}: HTTP {r.status}", status=r.status))
        return Verdict("raise", RemoteValidationError(f"{what}: HTTP {r.status}", status=r.status))


def _retry_after(r: Response) -> float | None:
    v = r.headers.get("retry-after")
    if v is None:
        return None
    try:
        return max(0.0, float(v))
    except ValueError:
        return None


class HttpClient:
    """One vendor's HTTP access: limiter, retries, refresh, typed errors.

    :param base_url: the vendor's base URL (a fake's ``http://127.0.0.1:PORT`` works).
    :param vendor: the :class:`VendorPolicy`.
    :param token: the access token.
    :param refresher: called (with this client) to get a fresh ``(token, expires_in)`` after
        the vendor's expiry signal; ``None`` when the token cannot be refreshed.
    :param client: an ``httpx.Client`` to use (not closed by :meth:`close`); or
    :param transport: an httpx transport for a client this object creates and owns.
    :param rate_limit: ``(max_calls, period_seconds)`` for the client-side limiter, or ``None``.
    :param clock: monotonic seconds; ``sleep`` waits. Both are for the limiter and the backoff.
    """

    def __init__(
        self,
        *,
        base_url: str,
        vendor: VendorPolicy,
        token: Secret | None = None,
        refresher: Callable[[HttpClient], tuple[Secret, float | None]] | None = None,
        client: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        rate_limit: tuple[int, float] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        seed: int | None = None,
    ) -> None:
        httpx_ = require_httpx()
        self.base_url = base_url.rstrip("/")
        self.vendor = vendor
        self._token = token
        self._expires_at: float | None = None
        self._refresher = refresher
        self.retry = retry or RetryPolicy()
        self._clock = clock
        self._sleep = sleep
        self._rng = random.Random(seed)
        self.limiter = None if rate_limit is None else RateLimiter(*rate_limit, clock=clock, sleep=sleep)
        self._own = client is None
        self._client: httpx.Client = client or httpx_.Client(
            transport=transport, timeout=timeout, follow_redirects=False,
        )
        self.calls = 0
        """HTTP requests sent (retries and refreshes included)."""
        self.retries = 0
        self.throttled = 0
        """Responses that told us to slow down (429 and the like)."""
        self.refreshes = 0

    def __repr__(self) -> str:
        return f"HttpClient({self.vendor.name}, {self.base_url!r})"

    def close(self) -> None:
        if self._own:
            self._client.close()

    @property
    def has_token(self) -> bool:
        return self._token is not None

    def set_token(self, token: Secret, expires_in: float | None = None) -> None:
        self._token = token
        self._expires_at = None if expires_in is None else self._clock() + expires_in

    def _refresh(self, what: str) -> None:
        if self._refresher is None:
            raise AuthError(f"{what}: the {self.vendor.name} token expired or was refused, and no refresh token is configured")
        tok, expires = self._refresher(self)
        self.refreshes += 1
        self.set_token(tok, expires)
        log.info("%s: access token refreshed", self.vendor.name)

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return self.base_url + (path if path.startswith("/") else "/" + path)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: bool = True,
        limiter: RateLimiter | bool | None = True,
        what: str | None = None,
    ) -> Response:
        """Send a request until it succeeds, retries run out, or the vendor refuses it."""
        httpx_ = require_httpx()
        what = what or f"{method} {path.split('?', 1)[0]}"
        lim = self.limiter if limiter is True else (None if limiter is False else limiter)
        refreshed = False
        tries = 0
        while True:
            self.vendor.before(what)
            if auth and self._refresher is not None and self._expires_at is not None and self._clock() >= self._expires_at - 30:
                self._refresh(what)
            if lim is not None:
                lim.acquire()
            hdrs = dict(headers or {})
            if auth:
                if self._token is None:
                    raise AuthError(f"{what}: no {self.vendor.name} token is configured")
                hdrs.update(self.vendor.auth_headers(self._token))
            body_bytes = None
            if json_body is not None:
                body_bytes = dump_json(json_body)
                hdrs["Content-Type"] = "application/json"
            t0 = time.perf_counter()
            self.calls += 1
            verdict: Verdict
            resp: Response | None = None
            try:
                try:
                    raw = self._client.request(
                        method, self.url(path), params=params, content=body_bytes, data=form, headers=hdrs,
                    )
                finally:
                    if lim is not None:
                        lim.answered()  # before the body is parsed: the call is over for the server
            except httpx_.TimeoutException:
                verdict = Verdict("retry", RemoteUnavailable(f"{what}: the {self.vendor.name} API timed out"))
            except httpx_.TransportError as e:
                verdict = Verdict("retry", RemoteUnavailable(f"{what}: cannot reach the {self.vendor.name} API ({type(e).__name__})"))
            else:
                resp, broken = _parse(raw)
                log.debug("%s %s -> %s (%.0f ms)", method, raw.request.url.path, raw.status_code,
                          (time.perf_counter() - t0) * 1000)
                left = self.vendor.remaining(resp)
                if lim is not None:
                    lim.observe(left)
                if broken and 200 <= resp.status < 300:
                    verdict = Verdict("retry", RemoteUnavailable(
                        f"{what}: the {self.vendor.name} API sent a broken body (HTTP {resp.status})", status=resp.status))
                else:
                    verdict = self.vendor.judge(resp, what)
            if verdict.action == "ok":
                assert resp is not None
                return resp
            if verdict.action == "refresh":
                if self._refresher is not None and not refreshed and auth:
                    refreshed = True
                    self._refresh(what)
                    continue
                err = verdict.error or AuthError(f"{what}: refused")
                raise err
            if verdict.action == "raise":
                assert verdict.error is not None
                raise verdict.error
            # retry
            assert verdict.error is not None
            if verdict.throttled:
                self.throttled += 1
                if lim is not None and verdict.wait:
                    lim.pause(verdict.wait)
            tries += 1
            if tries >= self.retry.attempts:
                raise verdict.error
            wait = self.retry.delay(tries - 1, self._rng, verdict.wait)
            self.retries += 1
            log.warning("%s: %s; retry %d of %d in %.2f s", self.vendor.name, verdict.error,
                        tries, self.retry.attempts - 1, wait)
            self._sleep(wait)


_DEC = re.compile(r'"\\u0000D([^"\\]+)\\u0000"')


def _mark(v: Any) -> Any:
    if isinstance(v, Decimal):
        if not v.is_finite():
            raise ValueError(f"cannot send {v} as a JSON number")
        return f"\x00D{v}\x00"
    if isinstance(v, dict):
        return {k: _mark(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_mark(x) for x in v]
    return v


def _refuse(v: Any) -> Any:
    raise TypeError(type(v).__name__)


def dump_json(data: Any) -> bytes:
    """JSON with ``Decimal`` values written as exact JSON numbers (never through float)."""
    try:
        return json.dumps(data, separators=(",", ":"), ensure_ascii=True, default=_refuse).encode()
    except TypeError:
        text = json.dumps(_mark(data), separators=(",", ":"), ensure_ascii=True)
        return _DEC.sub(r"\1", text).encode()


def _parse(raw: Any) -> tuple[Response, bool]:
    """The response with its JSON body (floats as Decimal); ``broken`` when the body is not
    the JSON it claims to be."""
    content = raw.content
    headers = {k.lower(): v for k, v in raw.headers.items()}
    body: Any = None
    broken = False
    if content:
        try:
            body = json.loads(content, parse_float=Decimal)
        except (ValueError, UnicodeDecodeError):
            broken = "json" in headers.get("content-type", "") or 200 <= raw.status_code < 300
            body = None
    return Response(raw.status_code, headers, body, str(raw.request.url)), broken
