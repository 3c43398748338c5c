"""A faithful local fake of the HubSpot CRM v3 API (the parts the adapter uses, and a little more).

Paths, auth scheme, paging keys, error bodies and limits follow HubSpot's published contract:

- objects: ``/crm/v3/objects/{deals|companies|contacts|calls|meetings|notes|tasks|emails}``
  (object type ids like ``0-3`` work too): list (``limit`` ≤ 100, opaque ``after``,
  ``properties``, ``propertiesWithHistory``, ``associations``), read, create, update, search
  (``filterGroups``, one sort, ``limit`` ≤ 200, numeric ``after``, 10,000-result cap: paging
  beyond it is a 400), batch read/create/update/upsert (≤ 100 inputs; 207 with ``errors`` when
  some records fail; upsert by a unique ``idProperty``);
- ``/crm/v4/associations/{from}/{to}/batch/read``; ``/crm/v3/pipelines/deals``;
- ``POST /oauth/v1/token`` (refresh-token grant);
- ``Authorization: Bearer``; 401 ``EXPIRED_AUTHENTICATION``/``INVALID_AUTHENTICATION``;
  429 with ``policyName`` and the ``X-HubSpot-RateLimit-*`` headers on every non-search
  response; error bodies ``{status, message, correlationId, category, errors, context}``.

The record clock is deterministic (:class:`~salesprocess_adapters.fakes.FakeClock`): each write
moves it one millisecond, and a frozen clock gives many records one ``hs_lastmodifieddate``.
"""

from __future__ import annotations

import bisect
import re
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from ._server import FakeApp, FakeClock, FakeHarness, FakeRequest, FakeResponse, RateWindow

__all__ = ["DEFAULT_STAGES", "HubSpotFake", "HubSpotHarness"]

DEFAULT_STAGES: tuple[tuple[str, str, str, bool], ...] = (
    ("appointmentscheduled", "Appointment scheduled", "0.2", False),
    ("qualifiedtobuy", "Qualified to buy", "0.4", False),
    ("presentationscheduled", "Presentation scheduled", "0.6", False),
    ("decisionmakerboughtin", "Decision maker bought-in", "0.8", False),
    ("contractsent", "Contract sent", "0.9", False),
    ("closedwon", "Closed won", "1.0", True),
    ("closedlost", "Closed lost", "0.0", True),
)
"""The default deal pipeline: (stage id, label, probability, closed)."""

TYPES = ("deals", "companies", "contacts", "calls", "meetings", "notes", "tasks", "emails")
TYPE_IDS = {"0-1": "contacts", "0-2": "companies", "0-3": "deals", "0-48": "calls",
            "0-47": "meetings", "0-46": "notes", "0-27": "tasks", "0-49": "emails"}
ENGAGEMENTS = ("calls", "meetings", "notes", "tasks", "emails")
DATE_PROPS = frozenset({"createdate", "hs_lastmodifieddate", "lastmodifieddate", "closedate",
                        "hs_timestamp", "hs_createdate"})
READ_ONLY = frozenset({"hs_object_id", "createdate", "hs_lastmodifieddate", "lastmodifieddate"})
DEFAULT_PROPS = {
    "deals": ("dealname", "amount", "closedate", "pipeline", "dealstage", "createdate", "hs_lastmodifieddate", "hs_object_id"),
    "companies": ("name", "domain", "createdate", "hs_lastmodifieddate", "hs_object_id"),
    "contacts": ("firstname", "lastname", "email", "createdate", "lastmodifieddate", "hs_object_id"),
}
ASSOC_TYPE_IDS = {("deals", "companies"): 5, ("deals", "contacts"): 3, ("companies", "deals"): 6,
                  ("contacts", "deals"): 4, ("calls", "deals"): 206, ("meetings", "deals"): 212,
                  ("notes", "deals"): 214, ("tasks", "deals"): 216, ("emails", "deals"): 210}
OPERATORS = ("EQ", "NEQ", "LT", "LTE", "GT", "GTE", "BETWEEN", "IN", "NOT_IN", "HAS_PROPERTY",
             "NOT_HAS_PROPERTY", "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN")


def hs_time(at: datetime) -> str:
    """HubSpot's timestamp format: ISO 8601 in UTC with milliseconds and ``Z``."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def to_ms(v: str | None) -> int | None:
    """A HubSpot date value (ISO string or epoch milliseconds) as epoch milliseconds."""
    if v is None or v == "":
        return None
    if re.fullmatch(r"-?\d+", v):
        return int(v)
    s = v.replace("Z", "+00:00")
    if len(s) == 10:
        s += "T00:00:00+00:00"
    d = datetime.fromisoformat(s)
    if d.tzinfo is None:
        d = d.replace(tzinfo=UTC)
    return (d - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def _norm_type(t: str) -> str | None:
    t = TYPE_IDS.get(t, t)
    return t if t in TYPES else None


def modified_prop(t: str) -> str:
    return "lastmodifieddate" if t == "contacts" else "hs_lastmodifieddate"


class _Obj:
    __slots__ = ("archived", "assoc", "created", "history", "id", "props", "updated")

    def __init__(self, oid: str, props: dict[str, str | None], at: datetime) -> None:
        self.id = oid
        self.props = props
        self.history: dict[str, list[tuple[str | None, datetime]]] = {}
        self.created = at
        self.updated = at
        self.archived = False
        self.assoc: dict[str, list[str]] = {}


class HubSpotFake(FakeApp):
    """A HubSpot account in memory, served by :meth:`transport` or :meth:`serve`.

    :param token: the private-app (or OAuth access) token it accepts.
    :param refresh_token: with ``client_id``/``client_secret``, what ``/oauth/v1/token`` takes.
    :param rate_limit: the burst limit ``(calls, seconds)`` (HubSpot: 100 per 10 s); ``None``.
    :param search_rate_limit: the search endpoints' own limit (HubSpot: 5 per second); ``None``.
    :param daily_limit: calls per day before 429 ``DAILY``; ``None`` for no daily cap.
    :param search_cap: results one search query may page through (HubSpot: 10,000).
    :param retry_after: seconds to send in ``Retry-After`` with a 429 (HubSpot does not promise
        the header; ``None`` leaves it out and clients wait the interval).
    :param monotonic: the clock the rate limits count with (a ManualClock in tests).
    """

    vendor = "hubspot"

    def __init__(
        self,
        *,
        token: str = "pat-na1-00000000-fake",
        refresh_token: str = "fake-refresh-token",
        client_id: str = "fake-client-id",
        client_secret: str = "fake-client-secret",
        rate_limit: tuple[int, float] | None = (100, 10.0),
        search_rate_limit: tuple[int, float] | None = (5, 1.0),
        daily_limit: int | None = None,
        search_cap: int = 10_000,
        batch_limit: int = 100,
        retry_after: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        clock: FakeClock | None = None,
        timeout_delay: float = 1.0,
        unique_properties: Iterable[str] = ("salesprocess_id",),
        portal_id: int = 4242,
    ) -> None:
        super().__init__(monotonic=monotonic, timeout_delay=timeout_delay, rate_limit=rate_limit)
        self.clock = clock or FakeClock()
        self._tokens = {token}
        self._expired: set[str] = set()
        self._refresh = refresh_token
        self._client = (client_id, client_secret)
        self._issued = 0
        self.search_window = None if search_rate_limit is None else RateWindow(*search_rate_limit, monotonic)
        self.daily_limit = daily_limit
        self._daily_used = 0
        self.search_cap = search_cap
        self.batch_limit = batch_limit
        self.retry_after = retry_after
        self.unique = frozenset(unique_properties)
        self.portal_id = portal_id
        self.objects: dict[str, dict[str, _Obj]] = {t: {} for t in TYPES}
        self._order: dict[str, list[int]] = {t: [] for t in TYPES}
        self._next = 10_000
        self._reject: str | None = None
        self.pipelines: list[dict[str, Any]] = [self._pipeline("default", "Sales Pipeline", DEFAULT_STAGES)]

    def __repr__(self) -> str:
        return f"HubSpotFake({len(self.objects['deals'])} deals)"

    # --- setup and CRM-side edits ---------------------------------------------------------------
    def _pipeline(self, pid: str, label: str, stages: Iterable[tuple[str, str, str, bool]]) -> dict[str, Any]:
        epoch = "1970-01-01T00:00:00Z"
        return {
            "id": pid, "label": label, "displayOrder": len(getattr(self, "pipelines", [])), "archived": False,
            "createdAt": epoch, "updatedAt": epoch,
            "stages": [
                {"id": sid, "label": lab, "displayOrder": i, "archived": False,
                 "metadata": {"isClosed": "true" if closed else "false", "probability": prob},
                 "createdAt": epoch, "updatedAt": epoch, "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT"}
                for i, (sid, lab, prob, closed) in enumerate(stages)
            ],
        }

    def add_pipeline(self, pid: str, label: str, stages: Iterable[tuple[str, str, str, bool]]) -> None:
        with self._lock:
            self.pipelines.append(self._pipeline(pid, label, stages))

    def _stage_ids(self, pipeline: str = "default") -> list[str]:
        for p in self.pipelines:
            if p["id"] == pipeline:
                return [s["id"] for s in p["stages"]]
        return []

    def stage_ids(self) -> list[str]:
        return self._stage_ids("default")

    def open_stage_ids(self) -> list[str]:
        p = self.pipelines[0]
        return [s["id"] for s in p["stages"] if s["metadata"]["isClosed"] != "true"]

    def now(self) -> datetime:
        return self.clock.now()

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.clock.advance(seconds)

    def freeze(self, frozen: bool = True) -> None:
        with self._lock:
            self.clock.frozen = frozen

    def reject_names(self, prefix: str | None) -> None:
        """Refuse (per record, as a VALIDATION_ERROR) written deals whose name starts with ``prefix``."""
        self._reject = prefix

    def expire_tokens(self) -> None:
        self._expired |= self._tokens
        self._tokens = set()

    def _new_id(self) -> str:
        self._next += 1
        return str(self._next)

    def _create(self, t: str, props: Mapping[str, str | None], at: datetime | None = None) -> _Obj:
        at = at or self.clock.tick()
        oid = self._new_id()
        p: dict[str, str | None] = dict(props)
        p["hs_object_id"] = oid
        p["createdate"] = hs_time(at)
        p[modified_prop(t)] = hs_time(at)
        if t == "deals":
            p.setdefault("pipeline", "default")
        obj = _Obj(oid, p, at)
        for k in ("dealstage", "amount"):
            if k in p:
                obj.history[k] = [(p[k], at)]
        self.objects[t][oid] = obj
        self._order[t].append(int(oid))
        return obj

    def _update(self, t: str, obj: _Obj, props: Mapping[str, str | None]) -> None:
        at = self.clock.tick()
        for k, v in props.items():
            if k in ("dealstage", "amount") and obj.props.get(k) != v:
                obj.history.setdefault(k, []).append((v, at))
            obj.props[k] = v
        obj.props[modified_prop(t)] = hs_time(at)
        obj.updated = at

    @staticmethod
    def _neutral(fields: Mapping[str, Any]) -> dict[str, str | None]:
        names = {"name": "dealname", "stage": "dealstage", "amount": "amount", "close_date": "closedate",
                 "owner": "hubspot_owner_id", "pipeline": "pipeline", "currency": "deal_currency_code"}
        out: dict[str, str | None] = {}
        for k, v in fields.items():
            if k not in names:
                raise KeyError(f"unknown deal field {k!r}")
            if v is None:
                out[names[k]] = None
            elif isinstance(v, date):
                out[names[k]] = f"{v.isoformat()}T00:00:00Z"
            else:
                out[names[k]] = str(v)
        return out

    def create_deal(self, name: str, stage: str = "appointmentscheduled", *, amount: Decimal | str | None = None,
                    close_date: date | None = None, owner: str | None = None, pipeline: str = "default",
                    company: str | None = None, contacts: Iterable[str] = ()) -> str:
        """Create a deal as a HubSpot user would; returns its id."""
        with self._lock:
            props = self._neutral({"name": name, "stage": stage, "amount": amount, "close_date": close_date,
                                   "owner": owner, "pipeline": pipeline})
            obj = self._create("deals", {k: v for k, v in props.items() if v is not None})
            if company:
                self._associate("deals", obj.id, "companies", company)
            for c in contacts:
                self._associate("deals", obj.id, "contacts", c)
            return obj.id

    def update_deal(self, remote_id: str, **fields: Any) -> None:
        """Change ``name``, ``stage``, ``amount``, ``close_date``, ``owner`` or ``pipeline``."""
        with self._lock:
            self._update("deals", self.objects["deals"][remote_id], self._neutral(fields))

    def get_deal(self, remote_id: str) -> dict[str, Any]:
        with self._lock:
            p = self.objects["deals"][remote_id].props
            amount = p.get("amount")
            cd = p.get("closedate")
            return {
                "name": p.get("dealname") or "", "stage": p.get("dealstage"),
                "amount": None if amount in (None, "") else Decimal(str(amount)),
                "close_date": None if not cd else date.fromisoformat(str(cd)[:10]),
                "owner": p.get("hubspot_owner_id"), "local_id": p.get("salesprocess_id"),
                "modified": p.get("hs_lastmodifieddate"),
            }

    def deal_ids(self) -> list[str]:
        with self._lock:
            return [k for k, o in self.objects["deals"].items() if not o.archived]

    def archive(self, t: str, oid: str) -> None:
        with self._lock:
            obj = self.objects[t][oid]
            obj.archived = True
            obj.updated = self.clock.tick()

    def create_company(self, name: str, *, industry: str | None = None, country: str | None = None) -> str:
        with self._lock:
            props = {"name": name, "industry": industry, "country": country}
            return self._create("companies", {k: v for k, v in props.items() if v is not None}).id

    def update_company(self, oid: str, **props: str | None) -> None:
        with self._lock:
            self._update("companies", self.objects["companies"][oid], props)

    def create_contact(self, first: str, last: str, *, email: str | None = None, company: str | None = None) -> str:
        with self._lock:
            props = {"firstname": first, "lastname": last, "email": email}
            obj = self._create("contacts", {k: v for k, v in props.items() if v is not None})
            if company:
                obj.props["associatedcompanyid"] = company
                self._associate("contacts", obj.id, "companies", company)
            return obj.id

    def create_engagement(self, t: str, *, at: datetime, subject: str = "", deal: str | None = None,
                          status: str | None = None, **props: str) -> str:
        """Log a call, meeting, note, task or e-mail (optionally on a deal)."""
        if t not in ENGAGEMENTS:
            raise ValueError(f"not an engagement type: {t!r}")
        with self._lock:
            title = {"calls": "hs_call_title", "meetings": "hs_meeting_title", "notes": "hs_note_body",
                     "tasks": "hs_task_subject", "emails": "hs_email_subject"}[t]
            p: dict[str, str | None] = {"hs_timestamp": hs_time(at), title: subject, **props}
            if status is not None:
                p[{"calls": "hs_call_status", "tasks": "hs_task_status", "meetings": "hs_meeting_outcome",
                   "emails": "hs_email_status", "notes": "hs_note_status"}[t]] = status
            obj = self._create(t, p)
            if deal:
                self._associate(t, obj.id, "deals", deal)
            return obj.id

    def _associate(self, t: str, oid: str, to: str, to_id: str) -> None:
        a = self.objects[t][oid].assoc.setdefault(to, [])
        if to_id not in a:
            a.append(to_id)
        if to_id in self.objects.get(to, {}):
            b = self.objects[to][to_id].assoc.setdefault(t, [])
            if oid not in b:
                b.append(oid)

    def seed_deals(self, n: int, *, companies: int = 0, stage_moves: bool = True) -> list[str]:
        """Add ``n`` deals quickly (for benchmarks): varied stages, amounts and close dates,
        with stage history; ``companies`` of them... every deal is associated with one of
        ``companies`` companies when given."""
        stages = self.open_stage_ids()
        all_stages = self.stage_ids()
        out = []
        with self._lock:
            comp = [self.create_company(f"Company {i}") for i in range(companies)]
            for i in range(n):
                at = self.clock.tick()
                first = stages[0]
                obj = self._create("deals", {
                    "dealname": f"Deal {i}", "dealstage": first, "amount": str(1000 + (i * 37) % 90000),
                    "closedate": hs_time(datetime(2026, 1 + i % 12, 1 + i % 28, tzinfo=UTC)),
                    "pipeline": "default", "hubspot_owner_id": str(100 + i % 17),
                }, at)
                if stage_moves and i % 3:
                    target = all_stages[i % len(all_stages)]
                    if target != first:
                        obj.props["dealstage"] = target
                        obj.history["dealstage"].append((target, at))
                if comp:
                    self._associate("deals", obj.id, "companies", comp[i % len(comp)])
                out.append(obj.id)
        return out

    # --- FakeApp hooks ----------------------------------------------------------------------------
    def authorized(self, req: FakeRequest) -> bool:
        h = req.headers.get("authorization", "")
        scheme, _, tok = h.partition(" ")
        return scheme == "Bearer" and tok in self._tokens

    def _error(self, status: int, category: str, message: str, *, sub: str | None = None,
               context: Mapping[str, Any] | None = None, errors: list[dict[str, Any]] | None = None,
               headers: Mapping[str, str] | None = None) -> FakeResponse:
        cid = self.correlation_id()
        body: dict[str, Any] = {"status": "error", "message": message, "correlationId": cid, "category": category}
        if sub:
            body["subCategory"] = sub
        if errors:
            body["errors"] = errors
        if context:
            body["context"] = dict(context)
        body["links"] = {}
        return FakeResponse.of(status, body, {"X-HubSpot-Correlation-Id": cid, **(headers or {})})

    def unauthorized(self, req: FakeRequest) -> FakeResponse:
        tok = req.headers.get("authorization", "").partition(" ")[2]
        if tok in self._expired:
            return self._error(401, "EXPIRED_AUTHENTICATION", "The OAuth token used to make this call expired.")
        return self._error(401, "INVALID_AUTHENTICATION", "Authentication credentials not found.")

    def unavailable(self, req: FakeRequest) -> FakeResponse:
        return self._error(503, "SERVICE_UNAVAILABLE", "The service is temporarily unavailable.")

    def _rate_headers(self, remaining: int | None) -> dict[str, str]:
        w = self.window
        if w is None:
            return {}
        h = {
            "X-HubSpot-RateLimit-Max": str(w.max_calls),
            "X-HubSpot-RateLimit-Remaining": str(remaining if remaining is not None else w.max_calls),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(w.period * 1000)),
        }
        if self.daily_limit is not None:
            h["X-HubSpot-RateLimit-Daily"] = str(self.daily_limit)
            h["X-HubSpot-RateLimit-Daily-Remaining"] = str(max(0, self.daily_limit - self._daily_used))
        return h

    def throttled(self, req: FakeRequest, route: str) -> FakeResponse:
        search = route.endswith(":search")
        daily = self.daily_limit is not None and self._daily_used >= self.daily_limit
        policy = "DAILY" if daily else ("SECONDLY" if search else "TEN_SECONDLY_ROLLING")
        cid = self.correlation_id()
        body = {
            "status": "error", "errorType": "RATE_LIMIT", "correlationId": cid, "policyName": policy,
            "requestId": cid,
            "message": "You have reached your daily limit." if daily else
            f"You have reached your {policy.lower()} limit.",
        }
        h = {} if search else self._rate_headers(0)
        if self.retry_after is not None and not daily:
            h["Retry-After"] = f"{self.retry_after:g}"
        return FakeResponse.of(429, body, {"X-HubSpot-Correlation-Id": cid, **h})

    def window_for(self, route: str) -> RateWindow | None:
        if route.endswith(":search"):
            return self.search_window
        if self.daily_limit is not None:
            if self._daily_used >= self.daily_limit:
                return _Closed()
            self._daily_used += 1
        return self.window

    def decorate(self, resp: FakeResponse, route: str, remaining: int | None) -> None:
        if not route.endswith(":search"):
            resp.headers.update(self._rate_headers(remaining))

    def is_page(self, route: str) -> bool:
        return route.endswith((":list", ":search"))

    def has_next(self, resp: FakeResponse) -> bool:
        return b'"paging"' in resp.body

    def is_public(self, route: str) -> bool:
        return route == "oauth"

    def dispatch(self, req: FakeRequest) -> tuple[str, Callable[[FakeRequest], FakeResponse]] | None:
        parts = [p for p in req.path.split("/") if p]
        m = req.method
        if parts == ["oauth", "v1", "token"] and m == "POST":
            return "oauth", self._oauth
        if parts[:3] == ["crm", "v3", "pipelines"] and len(parts) >= 4 and m == "GET":
            return "pipelines", self._pipelines
        if parts[:3] == ["crm", "v4", "associations"] and len(parts) == 7 and parts[5:] == ["batch", "read"] and m == "POST":
            return "assoc", self._assoc_batch
        if parts[:3] == ["crm", "v3", "objects"] and len(parts) >= 4:
            t = _norm_type(parts[3])
            if t is None:
                return None
            rest = parts[4:]
            if not rest and m == "GET":
                return f"{t}:list", lambda r: self._list(t, r)
            if not rest and m == "POST":
                return f"{t}:create", lambda r: self._create_one(t, r)
            if rest == ["search"] and m == "POST":
                return f"{t}:search", lambda r: self._search(t, r)
            if len(rest) == 2 and rest[0] == "batch" and m == "POST" and rest[1] in ("read", "create", "update", "upsert", "archive"):
                op = rest[1]
                return f"{t}:batch", lambda r: self._batch(t, op, r)
            if len(rest) == 1 and m == "GET":
                return f"{t}:read", lambda r: self._read(t, rest[0], r)
            if len(rest) == 1 and m == "PATCH":
                return f"{t}:update", lambda r: self._patch(t, rest[0], r)
        return None

    # --- handlers ---------------------------------------------------------------------------------
    def _oauth(self, req: FakeRequest) -> FakeResponse:
        f = req.form()
        if f.get("grant_type") != "refresh_token":
            return FakeResponse.of(400, {"status": "BAD_GRANT_TYPE", "message": "unsupported grant_type"})
        if f.get("refresh_token") != self._refresh or (f.get("client_id"), f.get("client_secret")) != self._client:
            return FakeResponse.of(400, {"status": "BAD_REFRESH_TOKEN", "message": "missing or unknown refresh token"})
        self._issued += 1
        tok = f"fake-access-{self._issued:06d}"
        self._tokens = {tok}
        return FakeResponse.of(200, {"access_token": tok, "refresh_token": self._refresh,
                                     "expires_in": 1800, "token_type": "bearer"})

    def _pipelines(self, req: FakeRequest) -> FakeResponse:
        parts = [p for p in req.path.split("/") if p]
        if parts[3] not in ("deals", "0-3"):
            return self._error(400, "VALIDATION_ERROR", f"no pipelines for object type {parts[3]}")
        if len(parts) == 4:
            return FakeResponse.of(200, {"results": self.pipelines})
        for p in self.pipelines:
            if p["id"] == parts[4]:
                if len(parts) == 6 and parts[5] == "stages":
                    return FakeResponse.of(200, {"results": p["stages"]})
                return FakeResponse.of(200, p)
        return self._error(404, "OBJECT_NOT_FOUND", f"pipeline {parts[4]} not found")

    @staticmethod
    def _names(req: FakeRequest, key: str) -> list[str] | None:
        vals = req.query.get(key)
        if not vals:
            return None
        out: list[str] = []
        for v in vals:
            out.extend(x for x in v.split(",") if x)
        return out

    def _render(self, t: str, obj: _Obj, props: Iterable[str] | None, history: Iterable[str] = (),
                assoc: Iterable[str] = ()) -> dict[str, Any]:
        names = list(props) if props is not None else list(DEFAULT_PROPS.get(t, ("hs_object_id", "hs_createdate", "hs_lastmodifieddate")))
        p = {n: obj.props.get(n) for n in names}
        for always in ("hs_object_id", "createdate", modified_prop(t)):
            p[always] = obj.props.get(always)
        out: dict[str, Any] = {
            "id": obj.id, "properties": p, "createdAt": hs_time(obj.created), "updatedAt": hs_time(obj.updated),
            "archived": obj.archived,
        }
        if obj.archived:
            out["archivedAt"] = hs_time(obj.updated)
        hist = list(history)
        if hist:
            out["propertiesWithHistory"] = {
                h: [{"value": v, "timestamp": hs_time(at), "sourceType": "CRM_UI"}
                    for v, at in reversed(obj.history.get(h, []))]
                for h in hist
            }
        ass = {}
        for to in assoc:
            to_t = _norm_type(to)
            ids = obj.assoc.get(to_t or to, [])
            if ids:
                ass[to] = {"results": [{"id": i, "type": f"{t[:-1]}_to_{(to_t or to)[:-1]}"} for i in ids]}
        if ass:
            out["associations"] = ass
        return out

    def _list(self, t: str, req: FakeRequest) -> FakeResponse:
        try:
            limit = int(req.arg("limit", "10") or 10)
        except ValueError:
            return self._error(400, "VALIDATION_ERROR", "limit must be an integer")
        if limit < 1 or limit > 100:
            return self._error(400, "VALIDATION_ERROR", f"limit must be between 1 and 100, got {limit}")
        archived = (req.arg("archived", "false") or "false").lower() == "true"
        after = req.arg("after")
        order = self._order[t]
        start = 0
        if after:
            try:
                start = bisect.bisect_left(order, int(after))
            except ValueError:
                return self._error(400, "VALIDATION_ERROR", f"invalid after {after!r}")
        props = self._names(req, "properties")
        hist = self._names(req, "propertiesWithHistory") or []
        assoc = self._names(req, "associations") or []
        out: list[dict[str, Any]] = []
        i = start
        objs = self.objects[t]
        while i < len(order) and len(out) < limit:
            o = objs[str(order[i])]
            if o.archived == archived:
                out.append(self._render(t, o, props, hist, assoc))
            i += 1
        while i < len(order) and objs[str(order[i])].archived != archived:
            i += 1
        body: dict[str, Any] = {"results": out}
        if i < len(order):
            nxt = str(order[i])
            body["paging"] = {"next": {"after": nxt, "link": f"{req.base_url}{req.path}?after={nxt}"}}
        return FakeResponse.of(200, body)

    def _read(self, t: str, oid: str, req: FakeRequest) -> FakeResponse:
        obj = self.objects[t].get(oid)
        id_prop = req.arg("idProperty")
        if id_prop:
            obj = next((o for o in self.objects[t].values() if o.props.get(id_prop) == oid), None)
        if obj is None or obj.archived:
            return self._error(404, "OBJECT_NOT_FOUND", f"{t[:-1]} {oid} does not exist")
        return FakeResponse.of(200, self._render(t, obj, self._names(req, "properties"),
                                                 self._names(req, "propertiesWithHistory") or [],
                                                 self._names(req, "associations") or []))

    # search
    def _value(self, prop: str, v: str | None) -> Any:
        if v is None or v == "":
            return None
        if prop in DATE_PROPS:
            return to_ms(v)
        try:
            return Decimal(v)
        except InvalidOperation:
            return v

    def _match(self, obj: _Obj, f: Mapping[str, Any]) -> bool:
        prop = f.get("propertyName", "")
        op = f.get("operator", "EQ")
        have = self._value(prop, obj.props.get(prop))
        if op == "HAS_PROPERTY":
            return have is not None
        if op == "NOT_HAS_PROPERTY":
            return have is None
        if op in ("IN", "NOT_IN"):
            vals = [self._value(prop, str(x)) for x in f.get("values", [])]
            return bool((have in vals) == (op == "IN"))
        want = self._value(prop, None if f.get("value") is None else str(f.get("value")))
        if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
            tok = str(f.get("value", "")).strip("*").lower()
            found = tok in str(obj.props.get(prop) or "").lower()
            return bool(found == (op == "CONTAINS_TOKEN"))
        if have is None or want is None:
            return bool(op == "NEQ" and have != want)
        try:
            if op == "EQ":
                return bool(have == want)
            if op == "NEQ":
                return bool(have != want)
            if op == "LT":
                return bool(have < want)
            if op == "LTE":
                return bool(have <= want)
            if op == "GT":
                return bool(have > want)
            if op == "GTE":
                return bool(have >= want)
            if op == "BETWEEN":
                hi = self._value(prop, str(f.get("highValue")))
                return bool(want <= have <= hi)
        except TypeError:
            return False
        return False

    def _search(self, t: str, req: FakeRequest) -> FakeResponse:
        try:
            body = req.json() or {}
        except ValueError:
            return self._error(400, "VALIDATION_ERROR", "Invalid input JSON")
        groups = body.get("filterGroups") or []
        if len(groups) > 5 or any(len(g.get("filters", [])) > 6 for g in groups) or sum(len(g.get("filters", [])) for g in groups) > 18:
            return self._error(400, "VALIDATION_ERROR", "too many filters: at most 5 groups, 6 filters per group, 18 in all")
        for g in groups:
            for f in g.get("filters", []):
                if f.get("operator", "EQ") not in OPERATORS:
                    return self._error(400, "VALIDATION_ERROR", f"unknown operator {f.get('operator')!r}")
        sorts = body.get("sorts") or []
        if len(sorts) > 1:
            return self._error(400, "VALIDATION_ERROR", "only one sort is allowed")
        limit = int(body.get("limit", 10))
        if limit < 1 or limit > 200:
            return self._error(400, "VALIDATION_ERROR", f"limit must be between 1 and 200, got {limit}")
        try:
            after = int(str(body.get("after") or 0))
        except ValueError:
            return self._error(400, "VALIDATION_ERROR", "after must be an integer")
        if after >= self.search_cap:
            return self._error(400, "VALIDATION_ERROR",
                               f"The maximum number of results a search can page through is {self.search_cap}.")
        objs = [o for o in self.objects[t].values() if not o.archived and
                (not groups or any(all(self._match(o, f) for f in g.get("filters", [])) for g in groups))]
        if sorts:
            s = sorts[0]
            if isinstance(s, str):
                prop, desc = s.lstrip("-"), s.startswith("-")
            else:
                prop, desc = s.get("propertyName", "createdate"), str(s.get("direction", "ASCENDING")).upper() == "DESCENDING"

            def key(o: _Obj) -> tuple[int, Any, int]:
                v = self._value(prop, o.props.get(prop))
                return (0 if v is None else 1, v if v is not None else 0, int(o.id))

            objs.sort(key=key, reverse=desc)
        else:
            objs.sort(key=lambda o: int(o.id))
        end = min(after + limit, len(objs), self.search_cap)
        page = objs[after:end]
        props = body.get("properties")
        out: dict[str, Any] = {"total": len(objs), "results": [self._render(t, o, props) for o in page]}
        if end < len(objs):
            out["paging"] = {"next": {"after": str(end)}}
        return FakeResponse.of(200, out)

    # writes
    def _check_props(self, t: str, props: Mapping[str, Any], pipeline: str) -> tuple[dict[str, str | None], list[dict[str, Any]]]:
        errs: list[dict[str, Any]] = []
        clean: dict[str, str | None] = {}
        for k, v in props.items():
            if k in READ_ONLY:
                errs.append({"message": f"Property \"{k}\" is read-only", "code": "READ_ONLY_VALUE", "in": k})
                continue
            if v is not None and not isinstance(v, str):
                v = str(v)
            if k == "amount" and v not in (None, ""):
                try:
                    Decimal(str(v))
                except InvalidOperation:
                    errs.append({"message": f"{v!r} was not a valid number.", "code": "INVALID_DECIMAL", "in": k})
                    continue
            if k in ("closedate", "hs_timestamp") and v not in (None, ""):
                try:
                    ms = to_ms(str(v))
                except ValueError:
                    errs.append({"message": f"{v!r} is not a valid date.", "code": "INVALID_DATE", "in": k})
                    continue
                assert ms is not None
                v = hs_time(datetime.fromtimestamp(ms / 1000, tz=UTC))
            clean[k] = None if v == "" else v
        if t == "deals":
            stage = clean.get("dealstage")
            pl = clean.get("pipeline") or pipeline
            if stage is not None and stage not in self._stage_ids(pl):
                errs.append({"message": f"{stage} was not one of the allowed options for pipeline {pl}",
                             "code": "INVALID_OPTION", "in": "dealstage"})
            name = clean.get("dealname")
            if self._reject and isinstance(name, str) and name.startswith(self._reject):
                errs.append({"message": f"deal name {name!r} is not allowed", "code": "INVALID_VALUE", "in": "dealname"})
        return clean, errs

    def _create_one(self, t: str, req: FakeRequest) -> FakeResponse:
        body = req.json() or {}
        clean, errs = self._check_props(t, body.get("properties") or {}, "default")
        if errs:
            return self._error(400, "VALIDATION_ERROR", errs[0]["message"], errors=errs)
        obj = self._create(t, clean)
        return FakeResponse.of(201, self._render(t, obj, list(clean)))

    def _patch(self, t: str, oid: str, req: FakeRequest) -> FakeResponse:
        obj = self.objects[t].get(oid)
        if obj is None or obj.archived:
            return self._error(404, "OBJECT_NOT_FOUND", f"{t[:-1]} {oid} does not exist")
        body = req.json() or {}
        clean, errs = self._check_props(t, body.get("properties") or {}, obj.props.get("pipeline") or "default")
        if errs:
            return self._error(400, "VALIDATION_ERROR", errs[0]["message"], errors=errs)
        self._update(t, obj, clean)
        return FakeResponse.of(200, self._render(t, obj, list(clean)))

    def _batch(self, t: str, op: str, req: FakeRequest) -> FakeResponse:
        try:
            body = req.json() or {}
        except ValueError:
            return self._error(400, "VALIDATION_ERROR", "Invalid input JSON")
        inputs = body.get("inputs")
        if not isinstance(inputs, list):
            return self._error(400, "VALIDATION_ERROR", "inputs is required")
        if len(inputs) > self.batch_limit:
            return self._error(400, "VALIDATION_ERROR",
                               f"Batch input too large: {len(inputs)} inputs, at most {self.batch_limit}",
                               context={"limit": [str(self.batch_limit)]})
        started = hs_time(self.clock.now())
        results: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []

        def fail(category: str, message: str, ident: str, details: list[dict[str, Any]] | None = None) -> None:
            errors.append({"status": "error", "category": category, "message": message,
                           "context": {"ids": [ident]}, "errors": details or []})

        if op == "read":
            id_prop = body.get("idProperty")
            props = body.get("properties") or None
            hist = body.get("propertiesWithHistory") or []
            for inp in inputs:
                ident = str(inp.get("id"))
                obj = (next((o for o in self.objects[t].values() if o.props.get(id_prop) == ident), None)
                       if id_prop else self.objects[t].get(ident))
                if obj is None or obj.archived:
                    fail("OBJECT_NOT_FOUND", f"Could not get some {t} objects, they may be deleted or not exist.", ident)
                else:
                    results.append(self._render(t, obj, props, hist))
        elif op == "archive":
            for inp in inputs:
                obj = self.objects[t].get(str(inp.get("id")))
                if obj is not None:
                    obj.archived = True
                    obj.updated = self.clock.tick()
            return FakeResponse(204)
        elif op == "create":
            for inp in inputs:
                clean, errs = self._check_props(t, inp.get("properties") or {}, "default")
                if errs:
                    fail("VALIDATION_ERROR", errs[0]["message"], str(len(results) + len(errors)), errs)
                    continue
                results.append(self._render(t, self._create(t, clean), list(clean)))
        elif op == "update":
            for inp in inputs:
                ident = str(inp.get("id"))
                obj = self.objects[t].get(ident)
                if obj is None or obj.archived:
                    fail("OBJECT_NOT_FOUND", f"Object {ident} does not exist.", ident)
                    continue
                clean, errs = self._check_props(t, inp.get("properties") or {}, obj.props.get("pipeline") or "default")
                if errs:
                    fail("VALIDATION_ERROR", errs[0]["message"], ident, errs)
                    continue
                self._update(t, obj, clean)
                results.append(self._render(t, obj, list(clean)))
        elif op == "upsert":
            for inp in inputs:
                id_prop = inp.get("idProperty")
                ident = str(inp.get("id"))
                if id_prop not in self.unique:
                    return self._error(400, "VALIDATION_ERROR",
                                       f"idProperty {id_prop!r} is not a unique property of {t}")
                obj = next((o for o in self.objects[t].values() if o.props.get(id_prop) == ident and not o.archived), None)
                clean, errs = self._check_props(t, inp.get("properties") or {},
                                                (obj.props.get("pipeline") if obj else None) or "default")
                if errs:
                    fail("VALIDATION_ERROR", errs[0]["message"], ident, errs)
                    continue
                clean[id_prop] = ident
                if obj is None:
                    obj = self._create(t, clean)
                    new = True
                else:
                    self._update(t, obj, clean)
                    new = False
                results.append({**self._render(t, obj, list(clean)), "new": new})
        out: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": started,
                               "completedAt": hs_time(self.clock.now())}
        if errors:
            out["numErrors"] = len(errors)
            out["errors"] = errors
            return FakeResponse.of(207, out)
        return FakeResponse.of(201 if op == "create" else 200, out)

    def _assoc_batch(self, req: FakeRequest) -> FakeResponse:
        parts = [p for p in req.path.split("/") if p]
        frm, to = _norm_type(parts[3]), _norm_type(parts[4])
        if frm is None or to is None:
            return self._error(400, "VALIDATION_ERROR", "unknown object type")
        body = req.json() or {}
        results = []
        for inp in body.get("inputs") or []:
            ident = str(inp.get("id"))
            obj = self.objects[frm].get(ident)
            if obj is None:
                continue
            ids = obj.assoc.get(to, [])
            results.append({
                "from": {"id": ident},
                "to": [{"toObjectId": int(i) if i.isdigit() else i,
                        "associationTypes": [{"category": "HUBSPOT_DEFINED",
                                              "typeId": ASSOC_TYPE_IDS.get((frm, to), 1), "label": None}]}
                       for i in ids],
            })
        return FakeResponse.of(200, {"status": "COMPLETE", "results": results,
                                     "startedAt": hs_time(self.clock.now()),
                                     "completedAt": hs_time(self.clock.now())})


class _Closed(RateWindow):
    """A window with no room (the daily cap is spent)."""

    def __init__(self) -> None:
        super().__init__(1, 1.0, lambda: 0.0)

    def take(self) -> tuple[bool, int]:
        return False, 0


class HubSpotHarness(FakeHarness):
    """A :class:`HubSpotFake` plus adapters wired to it, for the adapter conformance kit and for
    application tests.

    ``mode="transport"`` serves the fake in-process and counts rate limits on a
    :class:`~salesprocess.sync.ManualClock` shared with the adapters (no real waiting);
    ``mode="http"`` serves it on a loopback port in real time.
    """

    fake_host = "hubspot.fake"

    def __init__(self, mode: str = "transport", **fake_options: Any) -> None:
        from ..hubspot import HubSpotAdapter

        self._start(mode, HubSpotFake, {"rate_limit": None, "search_rate_limit": None, "timeout_delay": 1.5}, fake_options, HubSpotAdapter.capabilities)
        self.token = "pat-na1-00000000-fake"
        self.secrets = (self.token, "fake-refresh-token", "fake-client-secret")
        self._limit: tuple[int, float] | None = None

    def adapter(self, *, page_size: int | None = None, rate_limit: tuple[int, float] | bool | None = True,
                token: str | None = None, retry: Any = None) -> Any:
        from salesprocess.sync import RetryPolicy

        from ..hubspot import HubSpotAdapter

        rl = self._rate_limit(rate_limit, self._window_limit())
        kw = self._clock_kw()
        a = HubSpotAdapter(
            base_url=self.base_url, token=token or self.token,
            refresh_token=None if token else "fake-refresh-token", client_id="fake-client-id",
            client_secret="fake-client-secret", page_size=page_size or 100,
            rate_limit=rl, search_rate_limit=None, timeout=0.8 if self.mode == "http" else 5.0,
            retry=retry or RetryPolicy(attempts=5, base=0.02, cap=0.2), seed=11, **kw,
        )
        return self._track(a)

