"""The reference adapter: a vendor-neutral CRM in memory and the adapter that talks to it.

:class:`InMemoryCrm` behaves like a small CRM: records with server-side modification times from
a deterministic clock, stage history, one pipeline, an external-id property for upserts, a token
that can expire and be refreshed, an optional rate limit, and fault knobs (the next N calls are
throttled, fail, time out, return a broken body, find the token expired, or repeat the previous
page). :class:`ReferenceAdapter` is the smallest complete :class:`~salesprocess.sync.CrmAdapter`:
keyset paging, retries with backoff, a client-side limiter, token refresh, per-record push
results. The adapter conformance kit runs against it, and it is the model to copy when writing
an adapter (see the tutorial *Write an adapter*).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from ..errors import AuthError, RateLimited, RemoteUnavailable
from .adapter import (
    AdapterCapability,
    ObjectKind,
    Page,
    PushItem,
    PushResult,
    RemoteAccount,
    RemoteDeal,
    RemotePipeline,
    RemoteStage,
    RemoteStageChange,
)
from .timing import RateLimiter, RetryPolicy, Secret

__all__ = ["FAULTS", "CrmFault", "InMemoryCrm", "ReferenceAdapter"]

FAULTS = ("429", "5xx", "timeout", "truncated", "expired_token", "duplicate_page")
"""The fault kinds every fake understands (``fail_next(kind, n)``)."""

_EPOCH = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

_STAGES = (
    RemoteStage("new", "New", 0, Decimal("0.1")),
    RemoteStage("qualified", "Qualified", 1, Decimal("0.3")),
    RemoteStage("proposal", "Proposal", 2, Decimal("0.6")),
    RemoteStage("won", "Won", 3, Decimal("1"), closed=True, won=True),
    RemoteStage("lost", "Lost", 4, Decimal("0"), closed=True, won=False),
)


class CrmFault(Exception):
    """What the :class:`InMemoryCrm` API raises when a call fails, as a vendor SDK would:
    ``kind`` is a fault kind (:data:`FAULTS`) or ``"unauthorized"``; ``retry_after`` the seconds
    the CRM asks a throttled client to wait."""

    def __init__(self, kind: str, retry_after: float | None = None) -> None:
        self.kind = kind
        self.retry_after = retry_after
        super().__init__(kind)


class InMemoryCrm:
    """A neutral CRM held in memory (also the remote control the conformance kit drives).

    :param token: the access token it accepts.
    :param refresh_token: the refresh token that :meth:`api_refresh` exchanges for a new token.
    :param rate_limit: ``(max_calls, period_seconds)`` or ``None``.
    :param monotonic: the clock the rate limit counts with.
    :param tick: how far the record clock moves on each write.
    """

    capabilities = frozenset({AdapterCapability.FAULTS, AdapterCapability.CLOCK})

    def __init__(
        self,
        *,
        token: str = "ref-token-0",
        refresh_token: str = "ref-refresh",
        rate_limit: tuple[int, float] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        tick: timedelta = timedelta(seconds=1),
        retry_after: float = 0.5,
    ) -> None:
        self._lock = threading.RLock()
        self._token = token
        self._tokens = {token}
        self._expired: set[str] = set()
        self._refresh = refresh_token
        self._issued = 0
        self.rate_limit = rate_limit
        self._monotonic = monotonic
        self._calls: deque[float] = deque()
        self.retry_after = retry_after
        self._now = _EPOCH
        self.tick = tick
        self._frozen = False
        self._next_id = 1000
        self.deals: dict[str, dict[str, Any]] = {}
        self.accounts: dict[str, dict[str, Any]] = {}
        self._faults: deque[str] = deque()
        self._reject: str | None = None
        self._last_page: dict[str, Any] = {}
        self.status_counts: Counter[str] = Counter()
        """How many calls ended how: ``ok``, ``throttled``, ``5xx``, ``timeout``, ``truncated``,
        ``expired_token``, ``unauthorized``, ``duplicate_page``."""

    def __repr__(self) -> str:
        return f"InMemoryCrm({len(self.deals)} deals)"

    # --- clock -------------------------------------------------------------------------------
    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += timedelta(seconds=seconds)

    def freeze(self, frozen: bool = True) -> None:
        """While frozen, writes do not move the record clock (several records share a time)."""
        self._frozen = frozen

    def _touch(self) -> datetime:
        if not self._frozen:
            self._now += self.tick
        return self._now

    # --- remote control (what the conformance kit drives) -------------------------------------
    def stage_ids(self) -> list[str]:
        return [s.id for s in _STAGES]

    def open_stage_ids(self) -> list[str]:
        return [s.id for s in _STAGES if not s.closed]

    def create_deal(
        self, name: str, stage: str = "new", *, amount: Decimal | str | None = None,
        close_date: date | None = None, owner: str | None = None, account: str | None = None,
    ) -> str:
        with self._lock:
            self._next_id += 1
            rid = str(self._next_id)
            at = self._touch()
            self.deals[rid] = {
                "name": name, "stage": stage, "amount": None if amount is None else Decimal(amount),
                "currency": "USD", "close_date": close_date, "owner": owner, "account": account,
                "created": at, "modified": at, "local_id": None, "history": [(stage, at)],
            }
            return rid

    def update_deal(self, remote_id: str, **fields: Any) -> None:
        with self._lock:
            d = self.deals[remote_id]
            at = self._touch()
            for k, v in fields.items():
                if k not in ("name", "stage", "amount", "close_date", "owner", "account"):
                    raise KeyError(f"unknown deal field {k!r}")
                if k == "amount" and v is not None:
                    v = Decimal(v)
                if k == "stage" and v != d["stage"]:
                    d["history"].append((v, at))
                d[k] = v
            d["modified"] = at

    def get_deal(self, remote_id: str) -> dict[str, Any]:
        d = self.deals[remote_id]
        return {k: d[k] for k in ("name", "stage", "amount", "close_date", "owner", "local_id", "modified")}

    def deal_ids(self) -> list[str]:
        return sorted(self.deals, key=int)

    def create_account(self, name: str) -> str:
        with self._lock:
            self._next_id += 1
            rid = str(self._next_id)
            self.accounts[rid] = {"name": name, "modified": self._touch()}
            return rid

    def fail_next(self, fault: str, n: int = 1) -> None:
        """Make the next ``n`` API calls fail with ``fault`` (one of :data:`FAULTS`)."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; expected one of {FAULTS}")
        with self._lock:
            self._faults.extend([fault] * n)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def reject_names(self, prefix: str | None) -> None:
        """Refuse (per record) pushed deals whose name starts with ``prefix``."""
        self._reject = prefix

    def expire_token(self) -> None:
        with self._lock:
            self._expired |= self._tokens
            self._tokens = set()

    # --- the API the adapter calls --------------------------------------------------------------
    def _enter(self, token: str) -> str | None:
        """Auth, rate limit and faults for one call; returns a fault left for the call to act
        on (``duplicate_page``, ``truncated``) or ``None``."""
        with self._lock:
            if self.rate_limit is not None:
                mx, per = self.rate_limit
                now = self._monotonic()
                while self._calls and self._calls[0] + per <= now:
                    self._calls.popleft()
                if len(self._calls) >= mx:
                    self.status_counts["throttled"] += 1
                    raise CrmFault("429", self.retry_after)
                self._calls.append(now)
            fault = self._faults.popleft() if self._faults else None
            if fault == "expired_token":
                self._expired |= self._tokens
                self._tokens = set()
            if token not in self._tokens:
                kind = "expired_token" if token in self._expired else "unauthorized"
                self.status_counts[kind] += 1
                raise CrmFault(kind)
            if fault in ("429", "5xx", "timeout"):
                self.status_counts["throttled" if fault == "429" else fault] += 1
                raise CrmFault(fault, self.retry_after if fault == "429" else None)
            return fault

    def _leave(self, fault: str | None, result: Any) -> Any:
        if fault == "truncated":
            self.status_counts["truncated"] += 1
            raise CrmFault("truncated")
        self.status_counts["ok"] += 1
        return result

    def api_refresh(self, refresh_token: str) -> str:
        with self._lock:
            if refresh_token != self._refresh:
                raise CrmFault("unauthorized")
            self._issued += 1
            tok = f"ref-token-{self._issued}"
            self._expired |= self._tokens
            self._tokens = {tok}
            return tok

    def api_pipelines(self, token: str) -> list[RemotePipeline]:
        fault = self._enter(token)
        return list(self._leave(fault, [RemotePipeline("main", "Main pipeline", _STAGES)]))

    def api_changes(
        self, token: str, kind: str, after: tuple[str, str] | None, limit: int,
    ) -> tuple[list[dict[str, Any]], bool]:
        """Records of ``kind`` ordered by (modified, id), strictly after ``after``."""
        fault = self._enter(token)
        with self._lock:
            if fault == "duplicate_page":
                prev = self._last_page.get(kind)
                if prev is not None and prev[1]:  # only a page of a listing under way is repeated
                    self.status_counts["duplicate_page"] += 1
                    rows_, more_ = prev
                    return list(rows_), bool(more_)
                self._faults.appendleft(fault)  # no listing under way: a later page is repeated
                fault = None
            table = self.deals if kind == ObjectKind.DEALS else self.accounts
            rows = sorted(
                ({"id": k, **v} for k, v in table.items()),
                key=lambda r: (r["modified"], int(r["id"])),
            )
            if after is not None:
                ts, last = datetime.fromisoformat(after[0]), int(after[1])
                rows = [r for r in rows if (r["modified"], int(r["id"])) > (ts, last)]
            page = [dict(r, history=list(r.get("history", ()))) for r in rows[:limit]]
            result = (page, len(rows) > limit)
            self._last_page[kind] = result
        return self._leave(fault, result)  # type: ignore[no-any-return]

    def api_upsert(self, token: str, items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Upsert deals by remote id or by our external id; one result per item."""
        fault = self._enter(token)
        out: list[dict[str, Any]] = []
        with self._lock:
            by_local = {d["local_id"]: rid for rid, d in self.deals.items() if d["local_id"]}
            for it in items:
                vals = dict(it["values"])
                name = vals.get("name")
                if self._reject and isinstance(name, str) and name.startswith(self._reject):
                    out.append({"ok": False, "code": "INVALID_NAME", "message": f"name {name!r} is refused", "fields": ["name"]})
                    continue
                stage = vals.get("stage")
                if stage is not None and stage not in {s.id for s in _STAGES}:
                    out.append({"ok": False, "code": "INVALID_STAGE", "message": f"no stage {stage!r}", "fields": ["stage"]})
                    continue
                rid = it.get("remote_id") or by_local.get(it["local_id"])
                created = rid is None
                if rid is not None and rid not in self.deals:
                    out.append({"ok": False, "code": "NOT_FOUND", "message": f"no deal {rid}", "fields": []})
                    continue
                if created:
                    self._next_id += 1
                    rid = str(self._next_id)
                    at = self._touch()
                    self.deals[rid] = {
                        "name": "", "stage": vals.get("stage") or "new", "amount": None, "currency": "USD",
                        "close_date": None, "owner": None, "account": None, "created": at,
                        "modified": at, "local_id": it["local_id"], "history": [(vals.get("stage") or "new", at)],
                    }
                    by_local[it["local_id"]] = rid
                assert rid is not None
                self.update_deal(rid, **{k: v for k, v in vals.items() if k != "currency"})
                if vals.get("currency"):
                    self.deals[rid]["currency"] = vals["currency"]
                out.append({"ok": True, "id": rid, "new": created})
        return self._leave(fault, out)  # type: ignore[no-any-return]


class ReferenceAdapter:
    """The reference :class:`~salesprocess.sync.CrmAdapter` for an :class:`InMemoryCrm`.

    :param crm: the CRM to talk to.
    :param token: the access token (a :class:`Secret` or a str, wrapped at once).
    :param refresh_token: when given, an expired token is refreshed once and the call retried.
    :param page_size: records per pull page.
    :param retry: the :class:`RetryPolicy` for throttling, failures, timeouts and broken bodies.
    :param rate_limit: ``(max_calls, period)`` for the client-side limiter, or ``None``.
    :param clock: monotonic seconds (for the limiter); ``sleep`` waits (backoff, limiter).
    """

    name = "reference"
    capabilities = frozenset({
        AdapterCapability.PUSH, AdapterCapability.STAGE_HISTORY, AdapterCapability.PIPELINES,
        AdapterCapability.ACCOUNTS, AdapterCapability.RATE_LIMITS, AdapterCapability.CREDENTIALS,
    })
    push_batch_size = 25

    def __init__(
        self,
        crm: InMemoryCrm,
        *,
        token: Secret | str,
        refresh_token: Secret | str | None = None,
        page_size: int = 50,
        retry: RetryPolicy | None = None,
        rate_limit: tuple[int, float] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        seed: int | None = None,
    ) -> None:
        self.crm = crm
        self._token = token if isinstance(token, Secret) else Secret(token)
        self._refresh = None if refresh_token is None else (
            refresh_token if isinstance(refresh_token, Secret) else Secret(refresh_token))
        self.page_size = page_size
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._rng = random.Random(seed)
        self.limiter = None if rate_limit is None else RateLimiter(*rate_limit, clock=clock, sleep=sleep)
        self.retries = 0
        """How many calls were retried (throttling, failures)."""

    def __repr__(self) -> str:
        return f"ReferenceAdapter(crm={self.crm!r}, page_size={self.page_size})"

    def close(self) -> None:
        pass

    def _call(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        refreshed = False
        last: Exception | None = None
        tries = self.retry.attempts
        n = 0
        while n < tries:
            if self.limiter is not None:
                self.limiter.acquire()
            try:
                return fn(self._token.reveal(), *args)
            except CrmFault as f:
                if f.kind == "expired_token" and self._refresh is not None and not refreshed:
                    try:
                        self._token = Secret(self.crm.api_refresh(self._refresh.reveal()))
                    except CrmFault:
                        raise AuthError(f"{what}: the refresh token was refused", vendor_code="INVALID_GRANT") from None
                    refreshed = True
                    continue
                if f.kind in ("expired_token", "unauthorized"):
                    raise AuthError(f"{what}: the CRM refused the token ({f.kind})", vendor_code=f.kind.upper()) from None
                if f.kind == "429":
                    last = RateLimited(f"{what}: throttled", vendor_code="RATE_LIMIT", retry_after=f.retry_after)
                    if self.limiter is not None and f.retry_after:
                        self.limiter.pause(f.retry_after)
                else:
                    last = RemoteUnavailable(f"{what}: {f.kind}", vendor_code=f.kind.upper())
                n += 1
                if n < tries:
                    self.retries += 1
                    self._sleep(self.retry.delay(n - 1, self._rng, f.retry_after if f.kind == "429" else None))
        assert last is not None
        raise last

    def pipelines(self) -> list[RemotePipeline]:
        return list(self._call("pipelines", self.crm.api_pipelines))

    def pull(self, kind: str, cursor: Mapping[str, Any] | None) -> Iterator[Page]:
        if kind not in (ObjectKind.DEALS, ObjectKind.ACCOUNTS):
            return
        after = None if not cursor else (str(cursor["ts"]), str(cursor["id"]))
        while True:
            rows, more = self._call(f"pull {kind}", self.crm.api_changes, kind, after, self.page_size)
            if not rows:
                return
            records: list[Any] = []
            for r in rows:
                if kind == ObjectKind.DEALS:
                    records.append(RemoteDeal(
                        id=r["id"], modified_at=r["modified"], name=r["name"], stage=r["stage"],
                        pipeline="main", amount=r["amount"], currency=r["currency"],
                        close_date=r["close_date"], owner=r["owner"], account=r["account"],
                        created_at=r["created"], local_id=r["local_id"],
                        history=tuple(RemoteStageChange(s, at) for s, at in r["history"]),
                    ))
                else:
                    records.append(RemoteAccount(id=r["id"], modified_at=r["modified"], name=r["name"]))
            last = rows[-1]
            after = (last["modified"].isoformat(), last["id"])
            yield Page(tuple(records), {"ts": after[0], "id": after[1]})
            if not more:
                return

    def push(self, items: Sequence[PushItem]) -> list[PushResult]:
        if len(items) > self.push_batch_size:
            raise ValueError(f"at most {self.push_batch_size} items per push")
        payload = [{"local_id": i.local_id, "remote_id": i.remote_id, "values": dict(i.values)} for i in items]
        res = self._call("push", self.crm.api_upsert, payload)
        out = []
        for item, r in zip(items, res, strict=True):
            if r["ok"]:
                out.append(PushResult(item.local_id, True, remote_id=r["id"], created=r["new"]))
            else:
                out.append(PushResult(item.local_id, False, code=r["code"], message=r["message"],
                                      retriable=False, fields=tuple(r["fields"])))
        return out
