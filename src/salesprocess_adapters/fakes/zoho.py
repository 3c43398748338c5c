"""A faithful local fake of the Zoho CRM v8 API (the parts the adapter uses, and a little more).

- ``POST /oauth/v2/token`` (refresh-token grant; failures as ``{"error": ...}`` with HTTP 200);
- records: ``GET /crm/v8/{Deals|Accounts|Contacts}`` with the required ``fields`` (≤ 50),
  ``per_page`` ≤ 200, ``sort_by``/``sort_order``, ``page`` for the first 2,000 records
  (``DISCRETE_PAGINATION_LIMIT_EXCEEDED`` past them) and ``page_token`` beyond (tokens bound to
  the query, ``TOKEN_BOUND_DATA_MISMATCH``, ``EXPIRED_VALUE`` after ``page_token_expiry``,
  ``PAGINATION_LIMIT_EXCEEDED`` past 100,000 records); ``If-Modified-Since`` (304 when nothing
  changed since, 204 when nothing matches); ``GET /crm/v8/Deals/{id}``;
- writes: ``POST``/``PUT /crm/v8/Deals`` and ``POST /crm/v8/Deals/upsert`` with
  ``duplicate_check_fields`` (≤ 100 rows, per-row ``{code, status, message, details}``;
  HTTP 201/200 when every row passed, 207 when some failed, 400 when all failed);
- ``GET /crm/v8/Deals/{id}/Stage_History`` (the stage history related list, newest first);
- ``GET /crm/v8/settings/layouts``, ``/settings/pipeline?layout_id=`` (``maps`` are the stages,
  with ``forecast_type``), ``/settings/blueprints`` and ``/settings/blueprints/{id}?include=state,transition``;
- Blueprint on records: ``GET``/``PUT /crm/v8/Deals/{id}/actions/blueprint`` (the transitions
  open from the record's state, their fields and current values; executing one moves the
  record). While a record is in the Blueprint, a plain update cannot change its ``Stage``;
- ``Authorization: Zoho-oauthtoken``; 401 ``INVALID_TOKEN``; 429 ``TOO_MANY_REQUESTS`` when the
  API credits of the rolling window are spent (each call costs its credits: writes one per ten
  records); errors ``{code, message, status: "error", details}``.

Times are whole seconds in the organisation's time zone (``+08:00`` by default), as Zoho sends
them. What public material does not show exactly (the shape of the Blueprint settings response,
the code refusing a ``Stage`` change on a record under a Blueprint, the Stage_History field
names, probabilities in pipeline ``maps``) is modelled plausibly and listed in the reference.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import unquote

from ._server import FakeApp, FakeClock, FakeHarness, FakeRequest, FakeResponse, RateWindow

__all__ = ["DEFAULT_BLUEPRINT", "DEFAULT_STAGES", "ZohoFake", "ZohoHarness", "zoho_time"]

DEFAULT_STAGES: tuple[tuple[str, int, str, str], ...] = (
    ("初步接洽", 10, "Open", "Pipeline"),
    ("需求确定", 30, "Open", "Pipeline"),
    ("方案报价", 50, "Open", "Pipeline"),
    ("谈判审核", 80, "Open", "Best Case"),
    ("赢单", 100, "Closed Won", "Closed"),
    ("输单", 0, "Closed Lost", "Omitted"),
)
"""The default pipeline's stages: (picklist value, probability %, forecast type, forecast category)."""

DEFAULT_BLUEPRINT: tuple[tuple[str, tuple[str, ...], str, tuple[str, ...]], ...] = (
    ("确认需求", ("初步接洽",), "需求确定", ()),
    ("提交方案", ("需求确定",), "方案报价", ("Amount",)),
    ("进入谈判", ("方案报价",), "谈判审核", ("Closing_Date",)),
    ("签约赢单", ("谈判审核",), "赢单", ("Amount", "Closing_Date")),
    ("退回初步接洽", ("需求确定",), "初步接洽", ()),
    ("退回需求确定", ("方案报价",), "需求确定", ()),
    ("退回方案报价", ("谈判审核",), "方案报价", ()),
    ("输单", ("初步接洽", "需求确定", "方案报价", "谈判审核"), "输单", ()),
    ("重新打开", ("赢单", "输单"), "初步接洽", ()),
)
"""The default Blueprint on the Deals layout: (transition, from states, to state, mandatory fields)."""

MODULES = ("Deals", "Accounts", "Contacts")
FIELDS: dict[str, tuple[str, ...]] = {
    "Deals": ("id", "Deal_Name", "Stage", "Pipeline", "Amount", "Currency", "Closing_Date", "Probability",
              "Owner", "Account_Name", "Contact_Name", "Next_Step", "Description", "Created_Time",
              "Modified_Time", "Created_By", "Modified_By", "$state"),
    "Accounts": ("id", "Account_Name", "Industry", "Billing_Country", "Owner", "Parent_Account", "Created_Time",
                 "Modified_Time"),
    "Contacts": ("id", "First_Name", "Last_Name", "Full_Name", "Email", "Phone", "Title", "Account_Name",
                 "Created_Time", "Modified_Time"),
}
READ_ONLY = frozenset({"id", "Created_Time", "Modified_Time", "Created_By", "Modified_By", "$state", "Full_Name"})
HISTORY_FIELDS = ("id", "Stage", "Amount", "Closing_Date", "Probability", "Expected_Revenue", "Modified_Time",
                  "Modified_By")
_ADMIN = {"name": "Admin", "id": "5725767000000411001", "email": "admin@example.com"}


def zoho_time(at: datetime, tz: timezone) -> str:
    """Zoho's datetime format: ISO 8601 to the second with the organisation's offset."""
    return at.astimezone(tz).replace(microsecond=0).isoformat()


def _parse_time(v: str) -> datetime:
    d = datetime.fromisoformat(v.strip().replace("Z", "+00:00"))
    return d if d.tzinfo is not None else d.replace(tzinfo=UTC)


class _Credits(RateWindow):
    """The rolling credit window: a call takes as many slots as it costs."""

    def __init__(self, window: RateWindow, cost: int) -> None:
        self._w = window
        self._cost = cost

    def take(self) -> tuple[bool, int]:
        w = self._w
        now = w._monotonic()
        while w._calls and w._calls[0] + w.period <= now:
            w._calls.popleft()
        if len(w._calls) + self._cost > w.max_calls:
            return False, 0
        w._calls.extend([now] * self._cost)
        return True, w.max_calls - len(w._calls)

    def retry_after(self) -> float:
        w = self._w
        return max(0.0, (w._calls[0] + w.period - w._monotonic()) if w._calls else 0.0)


class _Module:
    """One module's records and their modification-time index."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.index: list[tuple[datetime, str]] = []

    def put(self, rid: str, rec: dict[str, Any], old: datetime | None) -> None:
        if old is not None:
            i = bisect.bisect_left(self.index, (old, rid))
            if i < len(self.index) and self.index[i] == (old, rid):
                del self.index[i]
        self.rows[rid] = rec
        bisect.insort(self.index, (rec["Modified_Time"], rid))


class ZohoFake(FakeApp):
    """A Zoho CRM organisation in memory, served by :meth:`transport` or :meth:`serve`.

    :param token: the access token it accepts.
    :param refresh_token: with ``client_id``/``client_secret``, what ``/oauth/v2/token`` takes.
    :param rate_limit: API credits per window ``(credits, seconds)`` (Zoho: a rolling 24 hours,
        e.g. ``(5000, 86400)`` for the free edition); ``None`` for no limit.
    :param stages: the default pipeline's stages (see :data:`DEFAULT_STAGES`).
    :param blueprint: the Deals layout's Blueprint transitions (see :data:`DEFAULT_BLUEPRINT`);
        ``None`` for no Blueprint.
    :param mandatory: fields a new deal must have.
    :param tz: the organisation's UTC offset in hours.
    :param discrete_limit: records reachable with ``page`` (Zoho: 2,000); ``token_limit`` with
        page tokens (100,000); ``page_token_ttl`` seconds a token lives (a day).
    :param external_id_fields: custom Deals fields marked unique (usable as upsert keys).
    """

    vendor = "zoho"

    def __init__(
        self,
        *,
        token: str = "1000.fake-zoho-access-token",
        refresh_token: str = "1000.fake-zoho-refresh-token",
        client_id: str = "1000.FAKECLIENTID",
        client_secret: str = "fake-zoho-client-secret",
        rate_limit: tuple[int, float] | None = None,
        stages: Iterable[tuple[str, int, str, str]] = DEFAULT_STAGES,
        pipeline: str = "标准销售流程",
        blueprint: Iterable[tuple[str, Sequence[str], str, Sequence[str]]] | None = DEFAULT_BLUEPRINT,
        mandatory: Iterable[str] = ("Deal_Name", "Stage", "Closing_Date"),
        tz: float = 8.0,
        batch_limit: int = 100,
        discrete_limit: int = 2000,
        token_limit: int = 100_000,
        page_token_ttl: float = 86400.0,
        external_id_fields: Iterable[str] = ("SalesProcess_Id",),
        monotonic: Callable[[], float] = time.monotonic,
        clock: FakeClock | None = None,
        timeout_delay: float = 1.0,
    ) -> None:
        super().__init__(monotonic=monotonic, timeout_delay=timeout_delay, rate_limit=rate_limit)
        self.clock = clock or FakeClock(step=timedelta(seconds=1))
        self.tz = timezone(timedelta(hours=tz))
        self._tokens = {token}
        self._refresh = refresh_token
        self._client = (client_id, client_secret)
        self._issued = 0
        self.batch_limit = batch_limit
        self.discrete_limit = discrete_limit
        self.token_limit = token_limit
        self.page_token_ttl = page_token_ttl
        self.mandatory = tuple(mandatory)
        self.ext_fields = tuple(external_id_fields)
        self.fields = {m: f + (self.ext_fields if m == "Deals" else ()) for m, f in FIELDS.items()}
        self.modules: dict[str, _Module] = {m: _Module() for m in MODULES}
        self.history: dict[str, list[dict[str, Any]]] = {}
        self._ids = itertools.count(5725767000001000001)
        self._tokens_issued: dict[str, tuple[str, int, float]] = {}
        self._reject: str | None = None
        self._cost = 1
        self.layout = {"id": "5725767000000091055", "name": "Standard"}
        self.pipelines: list[dict[str, Any]] = []
        self.add_pipeline(pipeline, stages, default=True)
        self.blueprint_id = "5725767000000700001"
        self.blueprint_name = "商机推进"
        self.transitions: list[dict[str, Any]] = []
        if blueprint is not None:
            self.set_blueprint(blueprint)
        self.blueprint_active = blueprint is not None
        self.on_list: Callable[[str, int], None] | None = None
        """Called (module, page number) before a listing page is cut (tests change records there)."""

    def __repr__(self) -> str:
        return f"ZohoFake({len(self.modules['Deals'].rows)} deals)"

    # --- setup ----------------------------------------------------------------------------------
    def _new_id(self) -> str:
        return str(next(self._ids))

    def add_pipeline(self, name: str, stages: Iterable[tuple[str, int, str, str]], *, default: bool = False) -> None:
        """Add a pipeline (``maps`` are its stages) to the Deals layout."""
        with self._lock:
            maps = []
            for i, (value, prob, ftype, fcat) in enumerate(stages):
                maps.append({
                    "id": self._new_id(), "display_value": value, "actual_value": value, "sequence_number": i + 1,
                    "probability": prob, "forecast_type": ftype,
                    "forecast_category": {"name": fcat, "id": self._new_id()}, "colour_code": None,
                })
            self.pipelines.append({"id": self._new_id(), "display_value": name, "actual_value": name,
                                   "default": default, "child_available": False, "maps": maps})

    def set_blueprint(self, transitions: Iterable[tuple[str, Sequence[str], str, Sequence[str]]] | None) -> None:
        """Replace the Deals Blueprint's transitions (``None`` turns the Blueprint off)."""
        with self._lock:
            if transitions is None:
                self.blueprint_active = False
                self.transitions = []
                return
            self.transitions = [
                {"id": self._new_id(), "name": name, "from": tuple(src), "to": dst, "fields": tuple(fields)}
                for name, src, dst, fields in transitions
            ]
            self.blueprint_active = True

    def _states(self) -> list[str]:
        out: list[str] = []
        for t in self.transitions:
            for s in (*t["from"], t["to"]):
                if s not in out:
                    out.append(s)
        return out

    def _in_blueprint(self, rec: Mapping[str, Any]) -> bool:
        return self.blueprint_active and rec.get("Stage") in self._states()

    def _pipeline(self, name: str | None) -> dict[str, Any] | None:
        for p in self.pipelines:
            if p["actual_value"] == name:
                return p
        return None

    def _default_pipeline(self) -> dict[str, Any]:
        return next((p for p in self.pipelines if p["default"]), self.pipelines[0])

    def _map(self, pipeline: Mapping[str, Any], stage: Any) -> dict[str, Any] | None:
        for m in pipeline["maps"]:
            if m["actual_value"] == stage:
                return dict(m)
        return None

    # --- remote control (as a Zoho user or admin would; Blueprint rules do not apply) ---------------
    def stage_ids(self) -> list[str]:
        maps = self._default_pipeline()["maps"]
        return ([m["actual_value"] for m in maps if m["forecast_type"] == "Open"]
                + [m["actual_value"] for m in maps if m["forecast_type"] == "Closed Won"]
                + [m["actual_value"] for m in maps if m["forecast_type"] == "Closed Lost"])

    def open_stage_ids(self) -> list[str]:
        return [m["actual_value"] for m in self._default_pipeline()["maps"] if m["forecast_type"] == "Open"]

    def now(self) -> datetime:
        return self.clock.now()

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.clock.advance(seconds)

    def freeze(self, frozen: bool = True) -> None:
        with self._lock:
            self.clock.frozen = frozen

    def reject_names(self, prefix: str | None) -> None:
        """Refuse (per row, INVALID_DATA on Deal_Name) written deals whose name starts with ``prefix``."""
        self._reject = prefix

    def expire_tokens(self) -> None:
        self._tokens = set()

    def expire_page_tokens(self) -> None:
        with self._lock:
            self._tokens_issued.clear()

    @staticmethod
    def _neutral(fields: Mapping[str, Any]) -> dict[str, Any]:
        names = {"name": "Deal_Name", "stage": "Stage", "amount": "Amount", "close_date": "Closing_Date",
                 "owner": "Owner", "pipeline": "Pipeline", "account": "Account_Name", "currency": "Currency",
                 "next_step": "Next_Step"}
        out: dict[str, Any] = {}
        for k, v in fields.items():
            if k not in names:
                raise KeyError(f"unknown deal field {k!r}")
            if k == "amount" and v is not None:
                v = Decimal(str(v))
            if k in ("owner", "account") and isinstance(v, str):
                v = {"id": v, "name": v}
            out[names[k]] = v
        return out

    def create_deal(self, name: str, stage: str | None = None, *, amount: Decimal | str | None = None,
                    close_date: date | None = None, owner: str | None = None, pipeline: str | None = None,
                    account: str | None = None) -> str:
        """Create a deal as a Zoho user would; returns its id."""
        with self._lock:
            p = self._pipeline(pipeline) if pipeline else self._default_pipeline()
            assert p is not None, f"no pipeline {pipeline!r}"
            f = self._neutral({"name": name, "stage": stage or p["maps"][0]["actual_value"], "amount": amount})
            f["Pipeline"] = p["actual_value"]
            f["Closing_Date"] = close_date or (self.clock.now().date() + timedelta(days=30))
            f["Owner"] = {"id": owner, "name": owner} if owner else dict(_ADMIN)
            if account:
                f["Account_Name"] = {"id": account, "name": self.modules["Accounts"].rows.get(account, {}).get(
                    "Account_Name", account)}
            return str(self._write("Deals", None, f)["id"])

    def update_deal(self, remote_id: str, **fields: Any) -> None:
        """Change ``name``, ``stage``, ``amount``, ``close_date``, ``owner``, ``pipeline`` or
        ``next_step`` as an administrator would (no Blueprint rules)."""
        with self._lock:
            self._write("Deals", self.modules["Deals"].rows[remote_id], self._neutral(fields))

    def get_deal(self, remote_id: str) -> dict[str, Any]:
        with self._lock:
            r = self.modules["Deals"].rows[remote_id]
            return {"name": r.get("Deal_Name") or "", "stage": r.get("Stage"), "amount": r.get("Amount"),
                    "close_date": r.get("Closing_Date"), "owner": (r.get("Owner") or {}).get("id"),
                    "pipeline": r.get("Pipeline"), "next_step": r.get("Next_Step"),
                    "local_id": r.get(self.ext_fields[0]) if self.ext_fields else None,
                    "modified": r["Modified_Time"]}

    def deal_ids(self) -> list[str]:
        with self._lock:
            return list(self.modules["Deals"].rows)

    def stage_history(self, remote_id: str) -> list[str]:
        """The deal's stages, oldest first (as the Stage_History related list records them)."""
        with self._lock:
            return [h["Stage"] for h in self.history.get(remote_id, [])]

    def create_account(self, name: str, *, industry: str | None = None, country: str | None = None) -> str:
        with self._lock:
            return str(self._write("Accounts", None, {"Account_Name": name, "Industry": industry,
                                                      "Billing_Country": country, "Owner": dict(_ADMIN)})["id"])

    def create_contact(self, first: str, last: str, *, email: str | None = None, account: str | None = None) -> str:
        with self._lock:
            acc = None if account is None else {"id": account, "name": self.modules["Accounts"].rows[account]["Account_Name"]}
            return str(self._write("Contacts", None, {"First_Name": first, "Last_Name": last, "Email": email,
                                                      "Account_Name": acc})["id"])

    def seed_deals(self, n: int, *, stage_moves: bool = True) -> list[str]:
        """Add ``n`` deals quickly (for benchmarks), some moved on a stage, with their history."""
        opens = self.open_stage_ids()
        every = self.stage_ids()
        out = []
        with self._lock:
            for i in range(n):
                rid = self.create_deal(f"商机 {i}", opens[0], amount=Decimal(1000 + (i * 37) % 90000),
                                       close_date=date(2026, 1 + i % 12, 1 + i % 28), owner=f"57257670000{i % 17:08d}")
                if stage_moves and i % 3:
                    target = every[i % len(every)]
                    if target != opens[0]:
                        self.update_deal(rid, stage=target)
                out.append(rid)
        return out

    # --- writing records ------------------------------------------------------------------------------
    def _write(self, module: str, rec: dict[str, Any] | None, changes: Mapping[str, Any]) -> dict[str, Any]:
        at = self.clock.tick().replace(microsecond=0)
        mod = self.modules[module]
        old: datetime | None = None
        if rec is None:
            rec = dict.fromkeys(self.fields[module])
            rec["id"] = self._new_id()
            rec["Created_Time"] = at
            rec["Created_By"] = dict(_ADMIN)
            if module == "Deals":
                rec["$state"] = "save"
            before: dict[str, Any] | None = None
        else:
            old = rec["Modified_Time"]
            before = {k: rec.get(k) for k in ("Stage", "Amount", "Closing_Date", "Probability")}
        rec.update(changes)
        rec["Modified_Time"] = at
        rec["Modified_By"] = dict(_ADMIN)
        if module == "Contacts":
            rec["Full_Name"] = " ".join(x for x in (rec.get("First_Name"), rec.get("Last_Name")) if x)
        if module == "Deals":
            if before is None or before["Stage"] != rec["Stage"]:
                p = self._pipeline(rec.get("Pipeline")) or self._default_pipeline()
                m = self._map(p, rec.get("Stage"))
                if m is not None and "Probability" not in changes:
                    rec["Probability"] = m["probability"]
            after = {k: rec.get(k) for k in ("Stage", "Amount", "Closing_Date", "Probability")}
            if before is None or after != before:
                amount, prob = rec.get("Amount"), rec.get("Probability")
                self.history.setdefault(rec["id"], []).append({
                    "id": self._new_id(), "Stage": rec.get("Stage"), "Amount": amount,
                    "Closing_Date": rec.get("Closing_Date"), "Probability": prob,
                    "Expected_Revenue": None if amount is None or prob is None else amount * Decimal(prob) / 100,
                    "Modified_Time": at, "Modified_By": dict(_ADMIN),
                })
        mod.put(rec["id"], rec, old)
        return rec

    # --- FakeApp hooks ----------------------------------------------------------------------------------
    def authorized(self, req: FakeRequest) -> bool:
        scheme, _, tok = req.headers.get("authorization", "").partition(" ")
        return scheme == "Zoho-oauthtoken" and tok in self._tokens

    @staticmethod
    def _error(status: int, code: str, message: str, **details: Any) -> FakeResponse:
        return FakeResponse.of(status, {"code": code, "details": details, "message": message, "status": "error"})

    def unauthorized(self, req: FakeRequest) -> FakeResponse:
        if not req.headers.get("authorization"):
            return self._error(401, "AUTHENTICATION_FAILURE", "Authentication failed")
        return self._error(401, "INVALID_TOKEN", "invalid oauth token")

    def unavailable(self, req: FakeRequest) -> FakeResponse:
        return self._error(500, "INTERNAL_ERROR", "Internal Server Error")

    def throttled(self, req: FakeRequest, route: str) -> FakeResponse:
        win = self.window_for(route, take=False)
        details: dict[str, Any] = {}
        if isinstance(win, _Credits):
            details = {"retry_after": round(win.retry_after(), 3), "limit": win._w.max_calls,
                       "window": win._w.period}
        return self._error(429, "TOO_MANY_REQUESTS", "Rate limit exceeded. Please retry after the specified time.",
                           **details)

    def window_for(self, route: str, take: bool = True) -> Any:
        if self.window is None:
            return None
        return _Credits(self.window, self._cost)

    def is_public(self, route: str) -> bool:
        return route == "oauth"

    def is_page(self, route: str) -> bool:
        return route.startswith("list:")

    def page_key(self, req: FakeRequest, route: str) -> str:
        return f"{route}|{req.headers.get('if-modified-since', '')}|{req.arg('fields')}"

    def has_next(self, resp: FakeResponse) -> bool:
        return b'"more_records":true' in resp.body

    def dispatch(self, req: FakeRequest) -> tuple[str, Callable[[FakeRequest], FakeResponse]] | None:
        parts = [unquote(p) for p in req.path.split("/") if p]
        m = req.method
        self._cost = 1
        if parts == ["oauth", "v2", "token"] and m == "POST":
            return "oauth", self._oauth
        if parts[:2] != ["crm", "v8"] or len(parts) < 3:
            return None
        rest = parts[2:]
        if rest[0] == "settings":
            if rest == ["settings", "layouts"] and m == "GET":
                return "settings", self._layouts
            if rest == ["settings", "pipeline"] and m == "GET":
                return "settings", self._pipelines
            if rest == ["settings", "blueprints"] and m == "GET":
                return "settings", self._blueprints
            if len(rest) == 3 and rest[:2] == ["settings", "blueprints"] and m == "GET":
                return "settings", lambda r: self._blueprint_config(rest[2], r)
            return None
        module = rest[0]
        if module not in MODULES:
            return None
        if len(rest) == 1 and m == "GET":
            return f"list:{module}", lambda r: self._list(module, r)
        if module != "Deals":
            return None
        if len(rest) == 1 and m in ("POST", "PUT"):
            self._cost = self._write_cost(req)
            return "write", lambda r: self._rows(r, "insert" if m == "POST" else "update")
        if rest[1:] == ["upsert"] and m == "POST":
            self._cost = self._write_cost(req)
            return "write", lambda r: self._rows(r, "upsert")
        if len(rest) == 2 and m == "GET":
            return "get", lambda r: self._get(rest[1])
        if len(rest) == 3 and rest[2] == "Stage_History" and m == "GET":
            return "history", lambda r: self._history(rest[1], r)
        if len(rest) == 4 and rest[2:] == ["actions", "blueprint"] and m in ("GET", "PUT"):
            return "blueprint", lambda r: self._record_blueprint(rest[1], r)
        return None

    def _write_cost(self, req: FakeRequest) -> int:
        try:
            rows = (req.json() or {}).get("data") or []
        except ValueError:
            return 1
        return max(1, -(-len(rows) // 10)) if isinstance(rows, list) else 1

    # --- handlers ----------------------------------------------------------------------------------------
    def _oauth(self, req: FakeRequest) -> FakeResponse:
        f = {k: v[-1] for k, v in req.query.items()}
        if req.body:
            f.update(req.form())
        if f.get("grant_type") != "refresh_token":
            return FakeResponse.of(200, {"error": "unsupported_grant_type"})
        if (f.get("client_id"), f.get("client_secret")) != self._client:
            return FakeResponse.of(200, {"error": "invalid_client"})
        if f.get("refresh_token") != self._refresh:
            return FakeResponse.of(200, {"error": "invalid_code"})
        self._issued += 1
        tok = f"1000.refreshed-{self._issued:06d}"
        self._tokens = {tok}
        return FakeResponse.of(200, {"access_token": tok, "api_domain": req.base_url, "token_type": "Bearer",
                                     "expires_in": 3600})

    def _layouts(self, req: FakeRequest) -> FakeResponse:
        if req.arg("module") != "Deals":
            return self._error(400, "INVALID_MODULE", "the module name given seems to be invalid", param_name="module")
        return FakeResponse.of(200, {"layouts": [{**self.layout, "status": "active", "visible": True}]})

    def _pipelines(self, req: FakeRequest) -> FakeResponse:
        lid = req.arg("layout_id")
        if not lid:
            return self._error(400, "REQUIRED_PARAM_MISSING", "One of the expected parameter is missing",
                               param_name="layout_id")
        if lid != self.layout["id"]:
            return self._error(400, "INVALID_DATA", "invalid data", param_name="layout_id")
        return FakeResponse.of(200, {"pipeline": self.pipelines})

    def _bp_head(self) -> dict[str, Any]:
        return {"id": self.blueprint_id, "name": self.blueprint_name, "status": "active",
                "module": {"api_name": "Deals", "id": "5725767000000002181"}, "layout": dict(self.layout),
                "process_field": {"api_name": "Stage", "id": "5725767000000002565"}}

    def _blueprints(self, req: FakeRequest) -> FakeResponse:
        if req.arg("module") not in (None, "Deals") or not self.blueprint_active:
            return FakeResponse(204)
        if req.arg("layout_id") not in (None, self.layout["id"]) or req.arg("status") not in (None, "active"):
            return FakeResponse(204)
        return FakeResponse.of(200, {"blueprints": [self._bp_head()], "info": {"per_page": 200, "count": 1,
                                                                               "page": 1, "more_records": False}})

    def _blueprint_config(self, bid: str, req: FakeRequest) -> FakeResponse:
        if bid != self.blueprint_id or not self.blueprint_active:
            return self._error(400, "INVALID_DATA", "the id given seems to be invalid", api_name="id")
        include = set((req.arg("include") or "").split(","))
        d = self._bp_head()
        states = self._states()
        ids = {s: f"57257670000008{i:05d}" for i, s in enumerate(states)}
        if "state" in include:
            ends = {s for s in states if not any(s in t["from"] for t in self.transitions)}
            starts = {s for s in states if not any(t["to"] == s for t in self.transitions)}
            d["states"] = [{"id": ids[s], "name": s, "type": "start" if s in starts else ("end" if s in ends else "normal")}
                           for s in states]
        if "transition" in include:
            d["transitions"] = [{
                "id": t["id"], "name": t["name"], "trigger_type": "manual", "transition_type": "standalone_transition",
                "from_states": [{"id": ids[s], "name": s} for s in t["from"]],
                "next_state": {"id": ids[t["to"]], "name": t["to"]},
                "fields": [{"api_name": f, "mandatory": True} for f in t["fields"]],
            } for t in self.transitions]
        return FakeResponse.of(200, {"blueprints": [d]})

    def _value(self, v: Any) -> Any:
        if isinstance(v, datetime):
            return zoho_time(v, self.tz)
        if isinstance(v, date):
            return v.isoformat()
        if isinstance(v, dict):
            return dict(v)
        return v

    def _fields_param(self, module: str, req: FakeRequest, allowed: Sequence[str]) -> list[str] | FakeResponse:
        raw = req.arg("fields")
        if not raw:
            return self._error(400, "REQUIRED_PARAM_MISSING", "One of the expected parameter is missing",
                               param_name="fields")
        names = [f.strip() for f in raw.split(",") if f.strip()]
        if len(names) > 50:
            return self._error(400, "LIMIT_EXCEEDED", "Maximum number of fields exceeded", limit=50,
                               param_name="fields")
        for f in names:
            if f not in allowed:
                return self._error(400, "INVALID_DATA", "the field name given seems to be invalid", api_name=f,
                                   param_name="fields")
        return names

    def _list(self, module: str, req: FakeRequest) -> FakeResponse:
        names = self._fields_param(module, req, self.fields[module])
        if isinstance(names, FakeResponse):
            return names
        try:
            per_page = int(req.arg("per_page") or 200)
        except ValueError:
            return self._error(400, "INVALID_DATA", "invalid data", param_name="per_page")
        if not 1 <= per_page <= 200:
            return self._error(400, "INVALID_DATA", "per_page must be between 1 and 200", param_name="per_page")
        sort_by = req.arg("sort_by") or "id"
        order = req.arg("sort_order") or "desc"
        if sort_by not in ("id", "Created_Time", "Modified_Time") or order not in ("asc", "desc"):
            return self._error(400, "INVALID_DATA", "invalid data", param_name="sort_by")
        since_raw = req.headers.get("if-modified-since")
        since: datetime | None = None
        if since_raw:
            try:
                since = _parse_time(since_raw)
            except ValueError:
                return self._error(400, "INVALID_DATA", "invalid data", param_name="If-Modified-Since")
        signature = hashlib.sha1("|".join((module, ",".join(names), str(per_page), sort_by, order,
                                           since_raw or "")).encode()).hexdigest()
        token = req.arg("page_token")
        if token is not None:
            if req.arg("page") is not None:
                return self._error(400, "INVALID_DATA", "page and page_token cannot be used together",
                                   param_name="page")
            found = self._tokens_issued.get(token)
            if found is None or self.monotonic() - found[2] > self.page_token_ttl:
                self._tokens_issued.pop(token, None)
                return self._error(400, "EXPIRED_VALUE", "Page token expired", api_name="page_token",
                                   json_path="$.query.page_token")
            if found[0] != signature:
                return self._error(400, "TOKEN_BOUND_DATA_MISMATCH",
                                   "The page_token given seems to be invalid or input param is added or altered or deleted",
                                   param_name="page_token")
            offset = found[1]
            page = offset // per_page + 1
        else:
            try:
                page = int(req.arg("page") or 1)
            except ValueError:
                return self._error(400, "INVALID_DATA", "invalid data", param_name="page")
            if page < 1:
                return self._error(400, "INVALID_DATA", "invalid data", param_name="page")
            offset = (page - 1) * per_page
            if offset + per_page > self.discrete_limit:
                return self._error(400, "DISCRETE_PAGINATION_LIMIT_EXCEEDED",
                                   f"You can only get the first {self.discrete_limit} records without using page_token param",
                                   limit=self.discrete_limit)
        if offset >= self.token_limit:
            return self._error(400, "PAGINATION_LIMIT_EXCEEDED",
                               f"You can only get the first {self.token_limit} records", limit=self.token_limit)
        if self.on_list is not None:
            self.on_list(module, page)
        mod = self.modules[module]
        if sort_by == "Modified_Time":
            keys = mod.index
            lo = 0 if since is None else bisect.bisect_right(keys, (since, "\uffff"))
            ids = [rid for _, rid in keys[lo:]]
            if order == "desc":
                ids.reverse()
        else:
            rows = [r for r in mod.rows.values() if since is None or r["Modified_Time"] > since]
            rows.sort(key=lambda r: (r[sort_by], r["id"]), reverse=order == "desc")
            ids = [r["id"] for r in rows]
        if not ids:
            return FakeResponse(304 if since is not None else 204)
        chunk = ids[offset:offset + per_page]
        if not chunk:
            return FakeResponse(204)
        more = offset + per_page < len(ids) and offset + per_page < self.token_limit
        nxt = None
        expiry = None
        if more:
            nxt = hashlib.sha1(f"{signature}{offset + per_page}{self.next_id()}".encode()).hexdigest()[:24]
            self._tokens_issued[nxt] = (signature, offset + per_page, self.monotonic())
            expiry = zoho_time(self.clock.now() + timedelta(seconds=self.page_token_ttl), self.tz)
        data = []
        for rid in chunk:
            rec = mod.rows[rid]
            data.append({f: self._value(rec.get(f)) for f in ("id", *names)})
        info = {"per_page": per_page, "count": len(data), "page": page, "sort_by": sort_by, "sort_order": order,
                "more_records": more, "next_page_token": nxt, "previous_page_token": None,
                "page_token_expiry": expiry, "call": False, "email": False}
        return FakeResponse.of(200, {"data": data, "info": info})

    def _get(self, rid: str) -> FakeResponse:
        rec = self.modules["Deals"].rows.get(rid)
        if rec is None:
            return FakeResponse(204)
        return FakeResponse.of(200, {"data": [{k: self._value(v) for k, v in rec.items()}]})

    def _history(self, rid: str, req: FakeRequest) -> FakeResponse:
        if rid not in self.modules["Deals"].rows:
            return self._error(400, "INVALID_DATA", "the related id given seems to be invalid", api_name="id")
        names = self._fields_param("Stage_History", req, HISTORY_FIELDS)
        if isinstance(names, FakeResponse):
            return names
        rows = list(reversed(self.history.get(rid, [])))
        try:
            page = int(req.arg("page") or 1)
            per_page = min(200, int(req.arg("per_page") or 200))
        except ValueError:
            return self._error(400, "INVALID_DATA", "invalid data", param_name="page")
        chunk = rows[(page - 1) * per_page: page * per_page]
        if not chunk:
            return FakeResponse(204)
        data = [{f: self._value(h.get(f)) for f in ("id", *names)} for h in chunk]
        return FakeResponse.of(200, {"data": data, "info": {"per_page": per_page, "count": len(data), "page": page,
                                                            "more_records": page * per_page < len(rows)}})

    # writes
    def _row_error(self, code: str, message: str, **details: Any) -> dict[str, Any]:
        return {"code": code, "details": details, "message": message, "status": "error"}

    def _coerce(self, row: Mapping[str, Any], target: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any] | None]:
        clean: dict[str, Any] = {}
        for k, v in row.items():
            if k == "id":
                continue
            if k not in self.fields["Deals"] or k in READ_ONLY:
                return {}, self._row_error("INVALID_DATA", "invalid data", api_name=k, json_path=f"$.data[0].{k}")
            if k == "Amount" and v is not None:
                if not isinstance(v, int | Decimal) or isinstance(v, bool):
                    return {}, self._row_error("INVALID_DATA", "invalid data", api_name=k, expected_data_type="double")
                v = Decimal(v)
            elif k == "Closing_Date" and v is not None:
                try:
                    v = date.fromisoformat(str(v))
                except ValueError:
                    return {}, self._row_error("INVALID_DATA", "invalid data", api_name=k, expected_data_type="date")
            elif k in ("Owner", "Account_Name", "Contact_Name") and v is not None:
                if isinstance(v, str):
                    v = {"id": v}
                if not isinstance(v, dict) or not v.get("id"):
                    return {}, self._row_error("INVALID_DATA", "invalid data", api_name=k, expected_data_type="lookup")
                v = {"id": str(v["id"]), "name": str(v.get("name") or v["id"])}
            clean[k] = v
        merged = {**(target or {}), **clean}
        pipe = self._pipeline(merged.get("Pipeline")) if merged.get("Pipeline") else self._default_pipeline()
        if pipe is None:
            return {}, self._row_error("INVALID_DATA", "invalid data", api_name="Pipeline")
        if target is None and not merged.get("Pipeline"):
            clean["Pipeline"] = pipe["actual_value"]
        if "Stage" in clean and self._map(pipe, clean["Stage"]) is None:
            return {}, self._row_error("INVALID_DATA", "invalid data", api_name="Stage", expected_data_type="picklist")
        if target is None:
            missing = [f for f in self.mandatory if merged.get(f) in (None, "")]
            if missing:
                return {}, self._row_error("MANDATORY_NOT_FOUND", "required field not found", api_name=missing[0],
                                           json_path=f"$.data[0].{missing[0]}")
        elif "Stage" in clean and clean["Stage"] != target.get("Stage") and self._in_blueprint(target):
            return {}, self._row_error("INVALID_DATA", "the Stage of a record in a Blueprint changes through its transitions",
                                       api_name="Stage", id=target["id"])
        name = merged.get("Deal_Name")
        if self._reject and isinstance(name, str) and name.startswith(self._reject):
            return {}, self._row_error("INVALID_DATA", f"deal name {name!r} is not allowed", api_name="Deal_Name")
        return clean, None

    def _rows(self, req: FakeRequest, mode: str) -> FakeResponse:
        try:
            body = req.json() or {}
        except ValueError:
            return self._error(400, "INVALID_DATA", "body is not valid JSON")
        rows = body.get("data")
        if not isinstance(rows, list) or not rows:
            return self._error(400, "REQUIRED_PARAM_MISSING", "One of the expected parameter is missing",
                               param_name="data")
        if len(rows) > self.batch_limit:
            return self._error(400, "LIMIT_EXCEEDED", f"Maximum of {self.batch_limit} records can be written",
                               limit=self.batch_limit, api_name="data")
        dup = body.get("duplicate_check_fields") or []
        if mode == "upsert":
            for f in dup:
                if f not in ("Deal_Name", *self.ext_fields):
                    return self._error(400, "INVALID_DATA", "the field is not unique", api_name=f,
                                       param_name="duplicate_check_fields")
        mod = self.modules["Deals"]
        out: list[dict[str, Any]] = []
        ok = 0
        for row in rows:
            if not isinstance(row, dict):
                out.append(self._row_error("INVALID_DATA", "invalid data"))
                continue
            target: dict[str, Any] | None = None
            dup_field = None
            if mode == "update":
                rid = row.get("id")
                target = mod.rows.get(str(rid)) if rid else None
                if target is None:
                    out.append(self._row_error("INVALID_DATA", "the id given seems to be invalid", api_name="id"))
                    continue
            elif mode == "upsert":
                for f in dup:
                    v = row.get(f)
                    if v in (None, ""):
                        continue
                    target = next((r for r in mod.rows.values() if r.get(f) == v), None)
                    if target is not None:
                        dup_field = f
                        break
            clean, err = self._coerce(row, target)
            if err is not None:
                out.append(err)
                continue
            created = target is None
            rec = self._write("Deals", target, clean)
            ok += 1
            res: dict[str, Any] = {"code": "SUCCESS", "details": {
                "Modified_Time": zoho_time(rec["Modified_Time"], self.tz), "Modified_By": dict(_ADMIN),
                "Created_Time": zoho_time(rec["Created_Time"], self.tz), "id": rec["id"], "Created_By": dict(_ADMIN)},
                "message": "record added" if created else "record updated", "status": "success"}
            if mode == "upsert":
                res["action"] = "insert" if created else "update"
                res["duplicate_field"] = dup_field
            out.append(res)
        if ok == len(rows):
            status = 201 if mode == "insert" or (mode == "upsert" and all(r.get("action") == "insert" for r in out)) else 200
        elif ok == 0:
            status = 400
        else:
            status = 207
        return FakeResponse.of(status, {"data": out})

    # Blueprint on a record
    def _record_blueprint(self, rid: str, req: FakeRequest) -> FakeResponse:
        rec = self.modules["Deals"].rows.get(rid)
        if rec is None:
            return self._error(400, "INVALID_DATA", "the id given seems to be invalid", api_name="id")
        if not self._in_blueprint(rec):
            return self._error(400, "RECORD_NOT_IN_PROCESS", "record not in process")
        current = rec["Stage"]
        open_now = [t for t in self.transitions if current in t["from"]]
        if req.method == "GET":
            def shape(t: Mapping[str, Any]) -> dict[str, Any]:
                return {
                    "id": t["id"], "name": t["name"], "next_field_value": t["to"], "criteria_matched": True,
                    "type": "manual", "percent_partial_save": None, "criteria_message": None,
                    "fields": [{"api_name": f, "display_label": f, "mandatory": True, "system_mandatory": False}
                               for f in t["fields"]],
                    "data": {f: self._value(rec.get(f)) for f in t["fields"]},
                    "next_transitions": [{"id": n["id"], "name": n["name"], "criteria_matched": True, "type": "manual"}
                                         for n in self.transitions if t["to"] in n["from"]],
                }
            return FakeResponse.of(200, {"blueprint": {
                "process_info": {"field_id": 5725767000000002565, "is_continuous": False, "api_name": "Stage",
                                 "continuous": False, "field_label": "Stage", "name": self.blueprint_name,
                                 "column_name": "STAGE", "field_value": current, "id": self.blueprint_id,
                                 "field_name": "Stage", "escalation": None},
                "transitions": [shape(t) for t in open_now]}})
        try:
            body = req.json() or {}
        except ValueError:
            return self._error(400, "INVALID_DATA", "invalid data")
        items = body.get("blueprint")
        if not isinstance(items, list) or len(items) != 1 or not isinstance(items[0], dict):
            return self._error(400, "INVALID_DATA", "invalid data", api_name="blueprint")
        tid = str(items[0].get("transition_id") or "")
        t = next((x for x in open_now if x["id"] == tid), None)
        if t is None:
            return self._error(400, "INVALID_DATA", "invalid transition", api_name="transition_id")
        data = items[0].get("data") or {}
        clean, err = self._coerce({k: v for k, v in data.items() if k != "Stage"}, rec)
        if err is not None:
            return self._error(400, err["code"], err["message"], **err["details"])
        merged = {**rec, **clean}
        for f in t["fields"]:
            if merged.get(f) in (None, ""):
                return self._error(400, "INVALID_DATA", "mandatory field missing", api_name=f,
                                   info_message=f"{f} is mandatory for the transition {t['name']}")
        clean["Stage"] = t["to"]
        self._write("Deals", rec, clean)
        return FakeResponse.of(200, {"code": "SUCCESS", "status": "success",
                                     "message": "transition updated successfully", "details": {}})


class ZohoHarness(FakeHarness):
    """A :class:`ZohoFake` plus adapters wired to it (see
    :class:`~salesprocess_adapters.fakes.HubSpotHarness` for the two modes)."""

    fake_host = "zoho.fake"

    def __init__(self, mode: str = "transport", **fake_options: Any) -> None:
        from ..zoho import ZohoAdapter

        self._start(mode, ZohoFake, {"timeout_delay": 0.6}, fake_options, ZohoAdapter.capabilities)
        self.token = "1000.fake-zoho-access-token"
        self.secrets = (self.token, "1000.fake-zoho-refresh-token", "fake-zoho-client-secret")

    def adapter(self, *, page_size: int | None = None, rate_limit: tuple[int, float] | bool | None = True,
                token: str | None = None, retry: Any = None, **options: Any) -> Any:
        from salesprocess.sync import RetryPolicy

        from ..zoho import ZohoAdapter

        rl = self._rate_limit(rate_limit, self._window_limit())
        kw = self._clock_kw()
        kw.update(options)
        a = ZohoAdapter(
            base_url=self.base_url, accounts_url=self.base_url, token=token or self.token,
            refresh_token=None if token else "1000.fake-zoho-refresh-token", client_id="1000.FAKECLIENTID",
            client_secret="fake-zoho-client-secret", page_size=page_size or 200, rate_limit=rl,
            timeout=0.3 if self.mode == "http" else 5.0,
            retry=retry or RetryPolicy(attempts=5, base=0.02, cap=0.2), seed=17, **kw,
        )
        return self._track(a)
