"""Plugin: a signed-webhook notifier (adapter kind ``notifier``, name ``webhook``).

Each message is POSTed as JSON (``id``, ``subject``, ``body``, ``language``, ``recipient``,
``data``; UTF-8, keys sorted) to ``url`` with these headers:

- ``X-Salesprocess-Signature: sha256=<hex>`` — HMAC-SHA256 of the exact body bytes with the
  shared ``secret`` (check it with :func:`verify_signature`);
- ``X-Salesprocess-Delivery`` and ``Idempotency-Key`` — the message id, the same on every retry,
  so the receiver can drop a repeat.

A 2xx answer is a delivery. Connection errors, timeouts, 408, 425, 429 and 5xx answers are retried
with exponential backoff (``backoff`` seconds doubled per attempt, at most ``max_backoff``; a
``Retry-After`` of a 429 or 503 is honoured up to ``max_backoff``); other 4xx answers raise
:class:`~salesprocess.errors.RemoteValidationError` at once; retries that run out raise
:class:`~salesprocess.errors.RemoteUnavailable`. Only the standard library is used.

Configuration (``factory(config)``): ``url`` and ``secret`` (required), ``header``
(``X-Salesprocess-Signature``), ``timeout`` (10 s), ``retries`` (4), ``backoff`` (0.5 s),
``max_backoff`` (30 s).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

from salesprocess.errors import DefinitionError, Problem, RemoteUnavailable, RemoteValidationError
from salesprocess.hookspecs import hookimpl

if TYPE_CHECKING:  # the automation package loads when a notifier is built, not with the shell
    from salesprocess.automation.notify import Delivery, Message

__all__ = ["SIGNATURE_HEADER", "WebhookNotifier", "sign", "verify_signature"]

SIGNATURE_HEADER = "X-Salesprocess-Signature"
_RETRY = frozenset({408, 425, 429, 500, 502, 503, 504})


def sign(secret: str | bytes, body: bytes) -> str:
    """The signature header value for ``body``: ``sha256=`` and the hex HMAC-SHA256."""
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify_signature(secret: str | bytes, body: bytes, header_value: str | None) -> bool:
    """Whether ``header_value`` is the signature of ``body`` (constant-time comparison)."""
    if not header_value:
        return False
    return hmac.compare_digest(sign(secret, body), header_value.strip())


class WebhookNotifier:
    """POSTs signed JSON messages to one URL."""

    def __init__(
        self,
        url: str,
        *,
        secret: str,
        header: str = SIGNATURE_HEADER,
        timeout: float = 10.0,
        retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise DefinitionError([Problem("url", "value", f"expected an http(s) URL, got {url!r}")],
                                  source="notifier webhook")
        if not secret:
            raise DefinitionError([Problem("secret", "required", "a webhook needs a secret to sign with")],
                                  source="notifier webhook")
        self.url = url
        self._secret = secret
        self.header = header
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._sleep = sleep

    def __repr__(self) -> str:  # never shows the secret
        return f"WebhookNotifier(url={self.url!r})"

    @staticmethod
    def body(message: Message) -> bytes:
        """The exact bytes POSTed for ``message``."""
        return json.dumps(message.to_dict(), ensure_ascii=False, sort_keys=True,
                          separators=(",", ":"), default=str).encode("utf-8")

    def _wait(self, attempt: int, retry_after: str | None) -> float:
        w: float = min(self.backoff * 2 ** (attempt - 1), self.max_backoff)
        if retry_after:
            try:
                w = min(max(w, float(retry_after)), float(self.max_backoff))
            except ValueError:
                pass
        return w

    def send(self, message: Message) -> Delivery:
        import urllib.error
        import urllib.request

        from salesprocess.automation.notify import Delivery

        data = self.body(message)
        headers = {"Content-Type": "application/json; charset=utf-8",
                   self.header: sign(self._secret, data),
                   "X-Salesprocess-Delivery": message.id, "Idempotency-Key": message.id,
                   "User-Agent": "salesprocess-webhook"}
        attempt = 0
        while True:
            attempt += 1
            retry_after = None
            status: int | None = None
            req = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    status = resp.status
                    ref = resp.headers.get("X-Request-Id", "") or ""
                    resp.read()
                return Delivery(message.id, attempt, ref)
            except urllib.error.HTTPError as e:
                status = e.code
                retry_after = e.headers.get("Retry-After") if e.headers else None
                detail = e.read()[:200].decode("utf-8", "replace")
                e.close()
                if status not in _RETRY:
                    raise RemoteValidationError(
                        f"message {message.id}: webhook answered {status}: {detail}",
                        vendor_code=str(status), status=status) from None
                error = f"HTTP {status}"
            except (urllib.error.URLError, OSError) as e:
                error = f"{type(e).__name__}: {getattr(e, 'reason', e)}"
            if attempt > self.retries:
                raise RemoteUnavailable(
                    f"message {message.id}: webhook failed {attempt} time(s); last: {error}",
                    status=status)
            self._sleep(self._wait(attempt, retry_after))


_KEYS = {"url": str, "secret": str, "header": str, "timeout": (int, float), "retries": int,
         "backoff": (int, float), "max_backoff": (int, float)}


def _factory(config: Mapping[str, Any]) -> WebhookNotifier:
    probs = []
    for k, v in config.items():
        t = _KEYS.get(k)
        if t is None:
            probs.append(Problem(k, "unknown_key", f"unknown webhook setting {k!r}"))
        elif not isinstance(v, cast(Any, t)) or (t is int and isinstance(v, bool)):
            probs.append(Problem(k, "type", f"{k}: unexpected value {type(v).__name__}"))
    for k in ("url", "secret"):
        if k not in config:
            probs.append(Problem(k, "required", f"the webhook notifier needs {k!r}"))
    if probs:
        raise DefinitionError(probs, source="notifier webhook")
    cfg = dict(config)
    return WebhookNotifier(cfg.pop("url"), **cfg)


@hookimpl
def salesprocess_register_adapters(register: Callable[..., None]) -> None:
    register("notifier", "webhook", _factory, "signed JSON webhooks (HMAC-SHA256) with retries")
