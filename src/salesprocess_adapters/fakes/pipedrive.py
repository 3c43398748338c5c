"""A faithful local fake of the Pipedrive API (v2, plus the v1 endpoints v2 still lacks).

- auth: ``x-api-token: <token>`` (API tokens never expire) or ``Authorization: Bearer <access
  token>`` from ``POST /oauth/token`` (``grant_type=refresh_token``, client id and secret as HTTP
  Basic; access tokens expire); 401 ``{"success": false, "error": "unauthorized access", ...}``;
- ``GET /api/v2/deals`` with ``updated_since``/``updated_until`` (RFC 3339, ``updated_since``
  inclusive), ``sort_by`` (``id``, ``update_time``, ``add_time``), ``sort_direction``, ``status``
  (deleted deals only when asked for), ``pipeline_id``, ``stage_id``, ``owner_id``, ``ids``,
  ``limit`` (at most 500, 100 by default) and ``cursor``; pages are
  ``{success, data, additional_data: {next_cursor}}`` with ``next_cursor`` null at the end. The
  cursor is a keyset position (the sort value and id of the last record handed out), so records
  changed while a listing runs move to its end instead of shifting others out of it;
- ``GET /api/v2/deals/{id}``, ``POST /api/v2/deals``, ``PATCH /api/v2/deals/{id}`` (one record per
  call: Pipedrive has no batch write for deals), ``GET /api/v2/deals/search`` (``term``,
  ``fields=custom_fields``, ``exact_match``; its own burst limit);
- ``GET /api/v2/pipelines`` and ``GET /api/v2/stages`` (``pipeline_id``; stages carry no won/lost
  flag: a deal's ``status`` says it);
- ``GET /api/v1/deals/{id}/changelog`` (field changes, ``stage_id`` and ``status`` included,
  newest first, v1 times ``YYYY-MM-DD HH:MM:SS`` UTC, cursor paged);
- ``GET /api/v2/persons`` and ``/api/v2/organizations`` (the same listing shape);
- limits: a rolling burst window per token (``rate_limit``, e.g. ``(20, 2.0)`` for the Essential
  plan's API token), reported in ``x-ratelimit-limit``, ``x-ratelimit-remaining`` and
  ``x-ratelimit-reset`` (seconds) on every answer and refused with 429 once spent; the search
  endpoint's own window (``search_rate_limit``, Pipedrive: 10 per 2 seconds); optionally a daily
  token budget (``daily_budget``) spent by each call's cost and announced in
  ``x-daily-ratelimit-token-remaining``.

What public material does not pin down (the per-endpoint token costs of v2, the wording of the
429 body, whether the changelog is newest first, the daily-budget header) is modelled plausibly
and listed in the reference.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import itertools
import json
import math
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import unquote

from ._server import FakeApp, FakeClock, FakeHarness, FakeRequest, FakeResponse, RateWindow

__all__ = ["DEFAULT_STAGES", "ID_FIELD_KEY", "PipedriveFake", "PipedriveHarness", "rfc3339", "v1_time"]

DEFAULT_STAGES: tuple[tuple[str, int], ...] = (
    ("Qualified", 10),
    ("Contact made", 20),
    ("Demo scheduled", 40),
    ("Proposal made", 60),
    ("Negotiations started", 80),
)
"""The default pipeline's stages: (name, deal probability %)."""

ID_FIELD_KEY = "5f3c9a1b2d4e6f708192a3b4c5d6e7f801234567"
"""The key of the fake's custom deal field that holds a caller's own record id (Pipedrive keys
custom fields by a 40-character hash)."""

OWNER_ID = 13540546
ERROR_INFO = "Please check developers.pipedrive.com for more information about Pipedrive API."
STATUSES = ("open", "won", "lost", "deleted")
COSTS = {"list": 10, "get": 1, "write": 5, "search": 20, "changelog": 20, "settings": 5}
"""Daily-budget tokens a call costs, by route kind (v2 costs are not published; these are
assumptions in the spirit of v1's list 20, get 2, update 10, search 40)."""
DEAL_WRITABLE = frozenset({
    "title", "owner_id", "person_id", "org_id", "pipeline_id", "stage_id", "value", "currency", "status",
    "probability", "lost_reason", "visible_to", "expected_close_date", "label_ids", "custom_fields",
    "close_time", "won_time", "lost_time",
})
TRACKED = ("title", "value", "currency", "stage_id", "pipeline_id", "status", "owner_id", "expected_close_date",
           "lost_reason", "org_id", "person_id")


def rfc3339(at: datetime) -> str:
    """Pipedrive v2's time format: RFC 3339 in UTC to the second (``2025-05-14T16:02:41Z``)."""
    return at.astimezone(UTC).replace(microsecond=0, tzinfo=None).isoformat() + "Z"


def v1_time(at: datetime) -> str:
    """Pipedrive v1's time format: ``YYYY-MM-DD HH:MM:SS`` in UTC."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _parse_rfc3339(v: str) -> datetime:
    d = datetime.fromisoformat(v.strip().replace("Z", "+00:00"))
    if d.tzinfo is None:
        raise ValueError("no offset")
    return d.astimezone(UTC)


class _Daily:
    """The daily token budget (counts only; resets when the fake is told to)."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.spent = 0

    @property
    def left(self) -> int:
        return max(0, self.budget - self.spent)


class _Table:
    """One object type's records and their (update_time, id) index."""

    def __init__(self) -> None:
        self.rows: dict[int, dict[str, Any]] = {}
        self.index: list[tuple[datetime, int]] = []

    def put(self, rec: dict[str, Any], old: datetime | None) -> None:
        if old is not None:
            i = bisect.bisect_left(self.index, (old, rec["id"]))
            if i < len(self.index) and self.index[i] == (old, rec["id"]):
                del self.index[i]
        self.rows[rec["id"]] = rec
        bisect.insort(self.index, (rec["update_time"], rec["id"]))


class PipedriveFake(FakeApp):
    """A Pipedrive company in memory, served by :meth:`transport` or :meth:`serve`.

    :param token: the API token it accepts (``x-api-token``).
    :param client_id: with ``client_secret`` and ``refresh_token``: what ``/oauth/token`` takes
        to issue access tokens (``Authorization: Bearer``) that live ``token_ttl`` seconds.
    :param rate_limit: the burst window ``(calls, seconds)`` per token (Pipedrive: 20 to 120 per
        2 seconds for API tokens, 80 to 480 for OAuth, by plan); ``None`` for none.
    :param search_rate_limit: the search endpoint's window (Pipedrive: 10 per 2 seconds).
    :param daily_budget: daily tokens (``None``: unlimited); each call spends its cost.
    :param stages: the default pipeline's stages (see :data:`DEFAULT_STAGES`).
    :param currency: the company's default currency.
    :param id_field: the key of the custom deal field holding a caller's record id.
    """

    vendor = "pipedrive"

    def __init__(
        self,
        *,
        token: str = "fake-pipedrive-api-token-0001",
        client_id: str = "fake-pipedrive-client-id",
        client_secret: str = "fake-pipedrive-client-secret",
        refresh_token: str = "fake-pipedrive-refresh-token",
        token_ttl: float = 3599.0,
        rate_limit: tuple[int, float] | None = None,
        search_rate_limit: tuple[int, float] | None = None,
        daily_budget: int | None = None,
        stages: Iterable[tuple[str, int]] = DEFAULT_STAGES,
        pipeline: str = "Sales",
        currency: str = "USD",
        id_field: str = ID_FIELD_KEY,
        max_limit: int = 500,
        monotonic: Callable[[], float] = time.monotonic,
        clock: FakeClock | None = None,
        timeout_delay: float = 1.0,
    ) -> None:
        super().__init__(monotonic=monotonic, timeout_delay=timeout_delay, rate_limit=rate_limit)
        self.clock = clock or FakeClock(step=timedelta(seconds=1))
        self.api_token = token
        self._client = (client_id, client_secret)
        self._refresh = refresh_token
        self.token_ttl = token_ttl
        self._access: dict[str, float] = {}
        self._issued = 0
        self.search_window = None if search_rate_limit is None else RateWindow(*search_rate_limit, monotonic)
        self.daily = None if daily_budget is None else _Daily(daily_budget)
        self.currency = currency
        self.id_field = id_field
        self.max_limit = max_limit
        self.deals = _Table()
        self.persons = _Table()
        self.orgs = _Table()
        self.changelog: dict[int, list[dict[str, Any]]] = {}
        self.pipelines: dict[int, dict[str, Any]] = {}
        self.stages: dict[int, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self._deal_ids = itertools.count(1001)
        self._reject: str | None = None
        self._route_kind = "get"
        self.on_list: Callable[[str, int], None] | None = None
        """Called (object type, page number) before a listing page is cut (tests change records there)."""
        self._pages: dict[str, int] = {}
        self.add_pipeline(pipeline, stages)

    def __repr__(self) -> str:
        return f"PipedriveFake({len(self.deals.rows)} deals)"

    # --- setup -------------------------------------------------------------------------------------
    def add_pipeline(self, name: str, stages: Iterable[tuple[str, int]]) -> int:
        """Add a pipeline with its stages; returns its id."""
        with self._lock:
            at = self.clock.now()
            pid = len(self.pipelines) + 1
            self.pipelines[pid] = {"id": pid, "name": name, "order_nr": pid, "is_deleted": False,
                                   "is_deal_probability_enabled": True, "add_time": at, "update_time": at}
            for i, (sname, prob) in enumerate(stages):
                sid = len(self.stages) + 1
                self.stages[sid] = {"id": sid, "order_nr": i + 1, "name": sname, "is_deleted": False,
                                    "deal_probability": prob, "pipeline_id": pid, "is_deal_rot_enabled": False,
                                    "days_to_rotten": None, "add_time": at, "update_time": at}
            return pid

    def _pipeline_stages(self, pid: int) -> list[dict[str, Any]]:
        return sorted((s for s in self.stages.values() if s["pipeline_id"] == pid and not s["is_deleted"]),
                      key=lambda s: (s["order_nr"], s["id"]))

    # --- remote control (as a Pipedrive user would) ------------------------------------------------
    def stage_ids(self) -> list[str]:
        """The default pipeline's stages, then ``won`` and ``lost`` (a deal's status, not a stage)."""
        return [*self.open_stage_ids(), "won", "lost"]

    def open_stage_ids(self) -> list[str]:
        return [str(s["id"]) for s in self._pipeline_stages(1)]

    def now(self) -> datetime:
        return self.clock.now()

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.clock.advance(seconds)

    def freeze(self, frozen: bool = True) -> None:
        with self._lock:
            self.clock.frozen = frozen

    def reject_names(self, prefix: str | None) -> None:
        """Refuse (HTTP 400) written deals whose title starts with ``prefix``."""
        self._reject = prefix

    def expire_tokens(self) -> None:
        """Expire every OAuth access token (API tokens do not expire)."""
        self._access.clear()

    def reset_daily_budget(self) -> None:
        with self._lock:
            if self.daily is not None:
                self.daily.spent = 0

    @staticmethod
    def _neutral(fields: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in fields.items():
            if k == "name":
                out["title"] = v
            elif k == "stage":
                if v in ("won", "lost"):
                    out["status"] = v
                else:
                    out["stage_id"] = int(v)
                    out["status"] = "open"
            elif k == "amount":
                out["value"] = Decimal(0) if v is None else Decimal(str(v))
            elif k == "close_date":
                out["expected_close_date"] = v
            elif k == "owner":
                out["owner_id"] = None if v is None else int(v)
            elif k in ("currency", "org_id", "person_id", "pipeline_id", "lost_reason"):
                out[k] = v
            else:
                raise KeyError(f"unknown deal field {k!r}")
        return out

    def create_deal(self, name: str, stage: str | None = None, *, amount: Decimal | str | None = None,
                    close_date: date | None = None, owner: str | int | None = None,
                    org: int | None = None, person: int | None = None, currency: str | None = None) -> str:
        """Create a deal as a Pipedrive user would (``stage`` a stage id, ``won`` or ``lost``); returns its id."""
        with self._lock:
            first = self._pipeline_stages(1)[0]["id"]
            f = self._neutral({"name": name, "amount": amount, "close_date": close_date})
            if stage in ("won", "lost"):
                f.update(stage_id=first, status=stage)
            else:
                f.update(stage_id=int(stage) if stage else first, status="open")
            f["owner_id"] = int(owner) if owner is not None else OWNER_ID
            f["currency"] = currency or self.currency
            f["org_id"], f["person_id"] = org, person
            return str(self._write_deal(None, f)["id"])

    def update_deal(self, remote_id: str, **fields: Any) -> None:
        """Change ``name``, ``stage`` (a stage id, ``won`` or ``lost``), ``amount``, ``close_date``,
        ``owner`` or ``currency`` as a Pipedrive user would."""
        with self._lock:
            self._write_deal(self.deals.rows[int(remote_id)], self._neutral(fields))

    def get_deal(self, remote_id: str) -> dict[str, Any]:
        with self._lock:
            r = self.deals.rows[int(remote_id)]
            stage = r["status"] if r["status"] in ("won", "lost") else str(r["stage_id"])
            amount = r["value"] if r["value"] else None  # Pipedrive keeps no empty value: 0 is none
            return {"name": r["title"] or "", "stage": stage, "amount": amount, "currency": r["currency"],
                    "close_date": r["expected_close_date"], "owner": str(r["owner_id"]), "status": r["status"],
                    "stage_id": str(r["stage_id"]), "local_id": (r["custom_fields"] or {}).get(self.id_field),
                    "modified": r["update_time"]}

    def deal_ids(self) -> list[str]:
        with self._lock:
            return [str(i) for i, r in self.deals.rows.items() if r["status"] != "deleted"]

    def delete_deal(self, remote_id: str) -> None:
        """Delete a deal (it stays listable with ``status=deleted``)."""
        with self._lock:
            self._write_deal(self.deals.rows[int(remote_id)], {"status": "deleted"})

    def create_org(self, name: str, *, country: str | None = None) -> str:
        with self._lock:
            return str(self._write_simple(self.orgs, None, {"name": name, "address_country": country,
                                                            "owner_id": OWNER_ID})["id"])

    def create_person(self, name: str, *, email: str | None = None, org: int | None = None) -> str:
        with self._lock:
            emails = [{"value": email, "primary": True, "label": "work"}] if email else []
            return str(self._write_simple(self.persons, None, {"name": name, "emails": emails, "phones": [],
                                                               "org_id": org, "owner_id": OWNER_ID})["id"])

    def update_org(self, org_id: str, **fields: Any) -> None:
        with self._lock:
            self._write_simple(self.orgs, self.orgs.rows[int(org_id)], fields)

    def seed_deals(self, n: int, *, stage_moves: bool = True) -> list[str]:
        """Add ``n`` deals quickly (for benchmarks and demos); two in three move on a stage or close."""
        opens = self.open_stage_ids()
        every = self.stage_ids()
        out = []
        with self._lock:
            for i in range(n):
                rid = self.create_deal(f"Deal {i}", opens[0], amount=Decimal(1000 + (i * 37) % 90000) + Decimal("0.25"),
                                       close_date=date(2026, 1 + i % 12, 1 + i % 28), owner=OWNER_ID + i % 7)
                if stage_moves and i % 3:
                    target = every[i % len(every)]
                    if target != opens[0]:
                        self.update_deal(rid, stage=target)
                out.append(rid)
        return out

    # --- writing -----------------------------------------------------------------------------------
    def _write_simple(self, table: _Table, rec: dict[str, Any] | None, changes: Mapping[str, Any]) -> dict[str, Any]:
        at = self.clock.tick().replace(microsecond=0)
        old = None
        if rec is None:
            rec = {"id": next(self._ids), "add_time": at, "is_deleted": False}
        else:
            old = rec["update_time"]
        rec.update(changes)
        rec["update_time"] = at
        table.put(rec, old)
        return rec

    def _write_deal(self, rec: dict[str, Any] | None, changes: Mapping[str, Any]) -> dict[str, Any]:
        at = self.clock.tick().replace(microsecond=0)
        old: datetime | None = None
        before: dict[str, Any] = {}
        if rec is None:
            rec = {"id": next(self._deal_ids), "title": "", "owner_id": OWNER_ID, "person_id": None, "org_id": None,
                   "pipeline_id": 1, "stage_id": None, "value": Decimal(0), "currency": self.currency, "add_time": at,
                   "update_time": at, "stage_change_time": None, "is_deleted": False, "is_archived": False,
                   "status": "open", "probability": None, "lost_reason": None, "visible_to": 3,
                   "close_time": None, "won_time": None, "lost_time": None, "expected_close_date": None,
                   "label_ids": [], "origin": "API", "custom_fields": {}}
            creating = True
        else:
            old = rec["update_time"]
            before = {k: rec.get(k) for k in TRACKED}
            creating = False
        ch = dict(changes)
        if "custom_fields" in ch:
            ch["custom_fields"] = {**(rec.get("custom_fields") or {}), **(ch["custom_fields"] or {})}
        if "stage_id" in ch and ch["stage_id"] is not None:
            ch["pipeline_id"] = self.stages[int(ch["stage_id"])]["pipeline_id"]
        elif "pipeline_id" in ch and ch["pipeline_id"] != rec.get("pipeline_id"):
            ch["stage_id"] = self._pipeline_stages(int(ch["pipeline_id"]))[0]["id"]
        rec.update(ch)
        if rec["stage_id"] is None:
            rec["stage_id"] = self._pipeline_stages(rec["pipeline_id"])[0]["id"]
        if not creating and before.get("stage_id") != rec["stage_id"]:
            rec["stage_change_time"] = at
        if creating or before.get("status") != rec["status"]:
            st = rec["status"]
            rec["is_deleted"] = st == "deleted"
            if st == "won":
                rec.update(won_time=at, close_time=at, lost_time=None, lost_reason=None)
            elif st == "lost":
                rec.update(lost_time=at, close_time=at, won_time=None)
            elif st == "open":
                rec.update(won_time=None, lost_time=None, close_time=None, lost_reason=None)
        rec["update_time"] = at
        if not creating:
            log = self.changelog.setdefault(rec["id"], [])
            for k in TRACKED:
                if before.get(k) != rec.get(k):
                    log.append({"field_key": k, "old_value": _log_value(before.get(k)),
                                "new_value": _log_value(rec.get(k)), "actor_user_id": OWNER_ID, "time": at,
                                "change_source": "api", "change_source_user_agent": "salesprocess-fake",
                                "is_bulk_update_flag": False})
        self.deals.put(rec, old)
        return rec

    # --- FakeApp hooks -----------------------------------------------------------------------------
    def authorized(self, req: FakeRequest) -> bool:
        tok = req.headers.get("x-api-token") or req.arg("api_token")
        if tok is not None:
            return tok == self.api_token
        scheme, _, value = req.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        exp = self._access.get(value)
        return exp is not None and self.monotonic() < exp

    @staticmethod
    def _error(status: int, message: str, **extra: Any) -> FakeResponse:
        return FakeResponse.of(status, {"success": False, "error": message, "error_info": ERROR_INFO,
                                        "data": None, "additional_data": None, **extra})

    def unauthorized(self, req: FakeRequest) -> FakeResponse:
        return self._error(401, "unauthorized access", errorCode=401)

    def unavailable(self, req: FakeRequest) -> FakeResponse:
        return self._error(503, "Service is temporarily unavailable")

    def window_for(self, route: str) -> RateWindow | None:
        if route == "search" and self.search_window is not None:
            return self.search_window
        return self.window

    def _reset(self, win: RateWindow | None) -> int:
        if win is None or not win._calls:
            return 0
        return max(1, math.ceil(win._calls[0] + win.period - self.monotonic()))

    def throttled(self, req: FakeRequest, route: str) -> FakeResponse:
        win = self.window_for(route)
        resp = self._error(429, "Rate limit exceeded", errorCode=429)
        if win is not None:
            resp.headers.update({"x-ratelimit-limit": str(win.max_calls), "x-ratelimit-remaining": "0",
                                 "x-ratelimit-reset": str(self._reset(win))})
        return resp

    def decorate(self, resp: FakeResponse, route: str, remaining: int | None) -> None:
        win = self.window_for(route)
        if win is not None and remaining is not None:
            resp.headers.update({"x-ratelimit-limit": str(win.max_calls), "x-ratelimit-remaining": str(remaining),
                                 "x-ratelimit-reset": str(self._reset(win))})

    def finish(self, resp: FakeResponse) -> None:
        if self.daily is not None and resp.status != 401:
            resp.headers["x-daily-ratelimit-token-remaining"] = str(self.daily.left)

    def is_public(self, route: str) -> bool:
        return route == "oauth"

    def is_page(self, route: str) -> bool:
        return route.startswith("list:")

    def page_key(self, req: FakeRequest, route: str) -> str:
        return f"{route}|{req.arg('updated_since')}|{req.arg('sort_by')}"

    def has_next(self, resp: FakeResponse) -> bool:
        return b'"next_cursor":null' not in resp.body

    def handle(self, req: FakeRequest) -> FakeResponse:
        with self._lock:
            if self.daily is not None:
                found = self.dispatch(req)
                if found is not None and not self.is_public(found[0]) and self.daily.left <= 0:
                    self.status_counts["requests"] += 1
                    self.status_counts["throttled"] += 1
                    resp = self._error(429, "Daily rate limit exceeded", errorCode=429)
                    return self._count(resp)
                if found is not None and not self.is_public(found[0]):
                    self.daily.spent += COSTS.get(self._route_kind, 1)
            return super().handle(req)

    def dispatch(self, req: FakeRequest) -> tuple[str, Callable[[FakeRequest], FakeResponse]] | None:
        parts = [unquote(p) for p in req.path.split("/") if p]
        m = req.method
        if parts == ["oauth", "token"] and m == "POST":
            return "oauth", self._oauth
        if len(parts) < 3 or parts[0] != "api":
            return None
        ver, rest = parts[1], parts[2:]
        if ver == "v1":
            if len(rest) == 3 and rest[0] == "deals" and rest[2] == "changelog" and m == "GET":
                self._route_kind = "changelog"
                return "changelog", lambda r: self._changelog(rest[1], r)
            return None
        if ver != "v2":
            return None
        if rest == ["pipelines"] and m == "GET":
            self._route_kind = "settings"
            return "settings", self._pipelines
        if rest == ["stages"] and m == "GET":
            self._route_kind = "settings"
            return "settings", self._stages
        if rest == ["deals", "search"] and m == "GET":
            self._route_kind = "search"
            return "search", self._search
        table = {"deals": self.deals, "persons": self.persons, "organizations": self.orgs}.get(rest[0])
        if table is None:
            return None
        if len(rest) == 1 and m == "GET":
            self._route_kind = "list"
            return f"list:{rest[0]}", lambda r: self._list(rest[0], r)
        if rest[0] != "deals":
            return None
        if len(rest) == 1 and m == "POST":
            self._route_kind = "write"
            return "write", lambda r: self._create(r)
        if len(rest) == 2 and m == "GET":
            self._route_kind = "get"
            return "get", lambda r: self._get(rest[1])
        if len(rest) == 2 and m == "PATCH":
            self._route_kind = "write"
            return "write", lambda r: self._patch(rest[1], r)
        return None

    # --- handlers ----------------------------------------------------------------------------------
    def _oauth(self, req: FakeRequest) -> FakeResponse:
        scheme, _, cred = req.headers.get("authorization", "").partition(" ")
        try:
            cid, _, secret = base64.b64decode(cred).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            cid, secret = "", ""
        if scheme.lower() != "basic" or (cid, secret) != self._client:
            return FakeResponse.of(401, {"success": False, "message": "Invalid client credentials",
                                         "error": "invalid_client"})
        f = req.form()
        if f.get("grant_type") != "refresh_token":
            return FakeResponse.of(400, {"success": False, "message": "Unsupported grant type",
                                         "error": "unsupported_grant_type"})
        if f.get("refresh_token") != self._refresh:
            return FakeResponse.of(400, {"success": False, "message": "Invalid grant: refresh token is invalid",
                                         "error": "invalid_grant"})
        self._issued += 1
        tok = f"v1:fake-access-{self._issued:06d}"
        self._access[tok] = self.monotonic() + self.token_ttl
        return FakeResponse.of(200, {"access_token": tok, "token_type": "Bearer", "refresh_token": self._refresh,
                                     "scope": "base,deals:full", "expires_in": int(self.token_ttl),
                                     "api_domain": req.base_url})

    def _deal_out(self, r: Mapping[str, Any]) -> dict[str, Any]:
        out = {k: _out(v) for k, v in r.items()}
        out["custom_fields"] = dict(r.get("custom_fields") or {})
        return out

    def _limit(self, req: FakeRequest) -> int | FakeResponse:
        try:
            limit = int(req.arg("limit") or 100)
        except ValueError:
            return self._error(400, "Validation failed: limit: Expected number, received string")
        if not 1 <= limit <= self.max_limit:
            return self._error(400, f"Validation failed: limit: Number must be less than or equal to {self.max_limit}")
        return limit

    def _list(self, kind: str, req: FakeRequest) -> FakeResponse:
        table = {"deals": self.deals, "persons": self.persons, "organizations": self.orgs}[kind]
        limit = self._limit(req)
        if isinstance(limit, FakeResponse):
            return limit
        sort_by = req.arg("sort_by") or "id"
        direction = req.arg("sort_direction") or "asc"
        if sort_by not in ("id", "update_time", "add_time") or direction not in ("asc", "desc"):
            return self._error(400, "Validation failed: sort_by: Invalid enum value")
        try:
            since = _parse_rfc3339(req.arg("updated_since") or "") if req.arg("updated_since") else None
            until = _parse_rfc3339(req.arg("updated_until") or "") if req.arg("updated_until") else None
        except ValueError:
            return self._error(400, "Validation failed: updated_since: Invalid datetime")
        statuses: tuple[str, ...] = ("open", "won", "lost")
        if kind == "deals" and req.arg("status"):
            statuses = tuple(s for s in (req.arg("status") or "").split(",") if s)
            if not set(statuses) <= set(STATUSES):
                return self._error(400, "Validation failed: status: Invalid enum value")
        after: tuple[Any, int] | None = None
        cur = req.arg("cursor")
        if cur:
            try:
                d = json.loads(base64.urlsafe_b64decode(cur.encode() + b"==").decode())
                if d["field"] != sort_by or d["dir"] != direction:
                    raise ValueError("another query's cursor")
                after = (d["v"], int(d["id"]))
            except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
                return self._error(400, "Invalid cursor")
        page_no = self._pages.get(kind, 0) + 1
        self._pages[kind] = page_no if cur else 1
        if self.on_list is not None:
            self.on_list(kind, self._pages[kind])

        def key(r: Mapping[str, Any]) -> tuple[Any, int]:
            return ((rfc3339(r[sort_by]) if sort_by != "id" else r["id"]), r["id"])

        if sort_by == "update_time" and direction == "asc" and not req.arg("ids"):
            lo = 0
            if since is not None:
                lo = bisect.bisect_left(table.index, (since, -1))
            if after is not None:
                at = _parse_rfc3339(after[0])
                lo = max(lo, bisect.bisect_right(table.index, (at, after[1])))
            candidates: Iterable[dict[str, Any]] = (table.rows[i] for _, i in itertools.islice(table.index, lo, None))
            ordered = True
        else:
            candidates = sorted(table.rows.values(), key=key, reverse=direction == "desc")
            ordered = False
        wanted_ids = {int(x) for x in (req.arg("ids") or "").split(",") if x.strip().isdigit()} or None
        filters = {k: req.arg(k) for k in ("pipeline_id", "stage_id", "owner_id", "org_id", "person_id") if req.arg(k)}
        rows: list[dict[str, Any]] = []
        more = False
        for r in candidates:
            if until is not None and r["update_time"] >= until:
                if ordered:
                    break
                continue
            if since is not None and r["update_time"] < since:
                continue
            if after is not None and not ordered:
                k = key(r)
                if (direction == "asc" and k <= after) or (direction == "desc" and k >= after):
                    continue
            if kind == "deals" and r["status"] not in statuses:
                continue
            if wanted_ids is not None and r["id"] not in wanted_ids:
                continue
            if any(str(r.get(f)) != v for f, v in filters.items()):
                continue
            if len(rows) == limit:
                more = True
                break
            rows.append(r)
        nxt = None
        if more and rows:
            last = key(rows[-1])
            nxt = base64.urlsafe_b64encode(json.dumps(
                {"field": sort_by, "dir": direction, "v": last[0], "id": last[1]}, separators=(",", ":")
            ).encode()).decode().rstrip("=")
        data = [self._deal_out(r) if kind == "deals" else {k: _out(v) for k, v in r.items()} for r in rows]
        return FakeResponse.of(200, {"success": True, "data": data, "additional_data": {"next_cursor": nxt}})

    def _get(self, rid: str) -> FakeResponse:
        r = self.deals.rows.get(int(rid)) if rid.isdigit() else None
        if r is None:
            return self._error(404, "Deal not found")
        return FakeResponse.of(200, {"success": True, "data": self._deal_out(r), "additional_data": None})

    def _pipelines(self, req: FakeRequest) -> FakeResponse:
        data = [{k: _out(v) for k, v in p.items()} for p in sorted(self.pipelines.values(), key=lambda p: p["order_nr"])]
        return FakeResponse.of(200, {"success": True, "data": data, "additional_data": {"next_cursor": None}})

    def _stages(self, req: FakeRequest) -> FakeResponse:
        limit = self._limit(req)
        if isinstance(limit, FakeResponse):
            return limit
        pid = req.arg("pipeline_id")
        rows = sorted((s for s in self.stages.values() if not s["is_deleted"] and (pid is None or str(s["pipeline_id"]) == pid)),
                      key=lambda s: (s["pipeline_id"], s["order_nr"], s["id"]))
        start = 0
        cur = req.arg("cursor")
        if cur:
            try:
                start = int(base64.urlsafe_b64decode(cur.encode() + b"==").decode())
            except (ValueError, binascii.Error):
                return self._error(400, "Invalid cursor")
        chunk = rows[start:start + limit]
        nxt = None
        if start + limit < len(rows):
            nxt = base64.urlsafe_b64encode(str(start + limit).encode()).decode().rstrip("=")
        return FakeResponse.of(200, {"success": True, "data": [{k: _out(v) for k, v in s.items()} for s in chunk],
                                     "additional_data": {"next_cursor": nxt}})

    def _search(self, req: FakeRequest) -> FakeResponse:
        term = req.arg("term") or ""
        if len(term) < 2 and req.arg("exact_match") != "true":
            return self._error(400, "Validation failed: term: String must contain at least 2 character(s)")
        fields = set((req.arg("fields") or "custom_fields,notes,title").split(","))
        exact = req.arg("exact_match") == "true"
        items = []
        for r in self.deals.rows.values():
            if r["status"] == "deleted":
                continue
            hits = []
            if "title" in fields and (r["title"] == term if exact else term.lower() in (r["title"] or "").lower()):
                hits.append(r["title"])
            if "custom_fields" in fields:
                for v in (r["custom_fields"] or {}).values():
                    if isinstance(v, str) and (v == term if exact else term.lower() in v.lower()):
                        hits.append(v)
            if hits:
                st = self.stages[r["stage_id"]]
                items.append({"result_score": 1.0, "item": {
                    "id": r["id"], "type": "deal", "title": r["title"], "value": r["value"], "currency": r["currency"],
                    "status": r["status"], "visible_to": r["visible_to"], "owner": {"id": r["owner_id"]},
                    "stage": {"id": st["id"], "name": st["name"]},
                    "person": None if r["person_id"] is None else {"id": r["person_id"]},
                    "organization": None if r["org_id"] is None else {"id": r["org_id"]},
                    "custom_fields": [h for h in hits if h != r["title"]], "notes": []}})
        return FakeResponse.of(200, {"success": True, "data": {"items": items}, "additional_data": {"next_cursor": None}})

    def _changelog(self, rid: str, req: FakeRequest) -> FakeResponse:
        r = self.deals.rows.get(int(rid)) if rid.isdigit() else None
        if r is None:
            return self._error(404, "Deal not found")
        limit = self._limit(req)
        if isinstance(limit, FakeResponse):
            return limit
        rows = list(reversed(self.changelog.get(r["id"], [])))
        start = 0
        cur = req.arg("cursor")
        if cur:
            try:
                start = int(base64.urlsafe_b64decode(cur.encode() + b"==").decode())
            except (ValueError, binascii.Error):
                return self._error(400, "Invalid cursor")
        chunk = rows[start:start + limit]
        nxt = None
        if start + limit < len(rows):
            nxt = base64.urlsafe_b64encode(str(start + limit).encode()).decode().rstrip("=")
        data = [{**c, "time": v1_time(c["time"])} for c in chunk]
        return FakeResponse.of(200, {"success": True, "data": data, "additional_data": {"next_cursor": nxt}})

    def _check(self, body: Any, rec: Mapping[str, Any] | None) -> dict[str, Any] | FakeResponse:
        if not isinstance(body, dict):
            return self._error(400, "Validation failed: body: Expected object")
        unknown = sorted(set(body) - DEAL_WRITABLE)
        if unknown:
            return self._error(400, f"Validation failed: Unrecognized key(s) in object: {', '.join(unknown)}")
        ch: dict[str, Any] = {}
        for k, v in body.items():
            if k == "title":
                if not isinstance(v, str) or not v.strip():
                    return self._error(400, "Validation failed: title: Required")
            elif k == "value":
                if v is not None and (isinstance(v, bool) or not isinstance(v, int | Decimal)):
                    return self._error(400, "Validation failed: value: Expected number")
                v = Decimal(0) if v is None else Decimal(v)  # an omitted or null value is 0
            elif k == "status":
                if v not in STATUSES:
                    return self._error(400, "Validation failed: status: Invalid enum value")
            elif k == "stage_id":
                if not isinstance(v, int) or v not in self.stages or self.stages[v]["is_deleted"]:
                    return self._error(400, "Stage not found")
            elif k == "pipeline_id":
                if not isinstance(v, int) or v not in self.pipelines:
                    return self._error(400, "Pipeline not found")
            elif k == "expected_close_date":
                if v is not None:
                    try:
                        v = date.fromisoformat(str(v))
                    except ValueError:
                        return self._error(400, "Validation failed: expected_close_date: Invalid date")
            elif k == "owner_id":
                if not isinstance(v, int):
                    return self._error(400, "Validation failed: owner_id: Expected number")
            elif k == "currency":
                if not isinstance(v, str) or len(v) != 3:
                    return self._error(400, "Validation failed: currency: Invalid currency")
            elif k == "custom_fields" and not isinstance(v, dict):
                return self._error(400, "Validation failed: custom_fields: Expected object")
            ch[k] = v
        if "stage_id" in ch and "pipeline_id" in ch and self.stages[ch["stage_id"]]["pipeline_id"] != ch["pipeline_id"]:
            return self._error(400, "Stage does not belong to the pipeline")
        title = ch.get("title", (rec or {}).get("title"))
        if rec is None and not title:
            return self._error(400, "Validation failed: title: Required")
        if self._reject and isinstance(title, str) and title.startswith(self._reject):
            return self._error(400, f"Deal title {title!r} is not allowed")
        return ch

    def _create(self, req: FakeRequest) -> FakeResponse:
        try:
            body = req.json()
        except ValueError:
            return self._error(400, "Invalid JSON body")
        ch = self._check(body, None)
        if isinstance(ch, FakeResponse):
            return ch
        ch.setdefault("status", "open")
        rec = self._write_deal(None, ch)
        return FakeResponse.of(200, {"success": True, "data": self._deal_out(rec), "additional_data": None})

    def _patch(self, rid: str, req: FakeRequest) -> FakeResponse:
        rec = self.deals.rows.get(int(rid)) if rid.isdigit() else None
        if rec is None or rec["status"] == "deleted":
            return self._error(404, "Deal not found")
        try:
            body = req.json()
        except ValueError:
            return self._error(400, "Invalid JSON body")
        ch = self._check(body, rec)
        if isinstance(ch, FakeResponse):
            return ch
        rec = self._write_deal(rec, ch)
        return FakeResponse.of(200, {"success": True, "data": self._deal_out(rec), "additional_data": None})


def _out(v: Any) -> Any:
    if isinstance(v, datetime):
        return rfc3339(v)
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, dict):
        return dict(v)
    if isinstance(v, list):
        return list(v)
    return v


def _log_value(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, date):
        return v.isoformat()
    return str(v)


class PipedriveHarness(FakeHarness):
    """A :class:`PipedriveFake` plus adapters wired to it (see
    :class:`~salesprocess_adapters.fakes.HubSpotHarness` for the two modes).

    ``auth="oauth"`` (the default) hands adapters an OAuth access token they refresh when it
    expires; ``auth="api_token"`` the API token (``x-api-token``), which never expires.
    """

    fake_host = "pipedrive.fake"

    def __init__(self, mode: str = "transport", *, auth: str = "oauth", **fake_options: Any) -> None:
        from ..pipedrive import PipedriveAdapter

        if auth not in ("oauth", "api_token"):
            raise ValueError("auth is 'oauth' or 'api_token'")
        self.auth = auth
        self._start(mode, PipedriveFake, {"timeout_delay": 0.6}, fake_options, PipedriveAdapter.capabilities)
        self.secrets = (self.fake.api_token, self.fake._refresh, self.fake._client[1])

    def adapter(self, *, page_size: int | None = None, rate_limit: tuple[int, float] | bool | None = True,
                token: str | None = None, retry: Any = None, **options: Any) -> Any:
        from salesprocess.sync import RetryPolicy

        from ..pipedrive import PipedriveAdapter

        rl = self._rate_limit(rate_limit, self._window_limit())
        kw = self._clock_kw()
        if token is not None:
            kw.update(token=token, auth=self.auth)
        elif self.auth == "api_token":
            kw.update(token=self.fake.api_token)
        else:
            kw.update(refresh_token=self.fake._refresh, client_id=self.fake._client[0],
                      client_secret=self.fake._client[1])
        kw.update(oauth_url=self.base_url, search_rate_limit=None)
        kw.update(options)
        a = PipedriveAdapter(
            base_url=self.base_url, page_size=page_size or 500, rate_limit=rl,
            timeout=0.3 if self.mode == "http" else 5.0,
            retry=retry or RetryPolicy(attempts=5, base=0.02, cap=0.2), seed=23, id_field=self.fake.id_field, **kw,
        )
        return self._track(a)
