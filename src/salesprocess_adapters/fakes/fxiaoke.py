"""A local fake of the 纷享销客 (Fxiaoke / ShareCRM) OpenAPI, as far as public material describes it.

- ``POST /cgi/corpAccessToken/get/V2`` ``{appId, appSecret, permanentCode}`` →
  ``{corpAccessToken, corpId, expiresIn}`` (the same token until it nears expiry; 10 calls a
  minute);
- every call is a ``POST`` with a JSON body, answered with HTTP 200 and an ``errorCode`` (0 for
  success): the legacy form carries ``corpAccessToken``, ``corpId`` and ``currentOpenUserId`` in
  the body; the newer form sends ``authorization: Bearer``, ``x-fs-ea`` and ``x-fs-userid``
  headers with a ``thirdTraceId`` query parameter. An expired token is ``errorCode`` 20016;
- ``/cgi/crm/v2/data/query`` (``search_query_info`` with ``filters``, ``orders``,
  ``fieldProjection``, ``offset``/``limit``; ``total`` only with ``find_explicit_total_num``;
  ``offset`` beyond 10,000 is ``errorCode`` 10013), ``/data/get``, ``/data/create``,
  ``/data/update`` (one record a call) over 商机2.0 ``NewOpportunityObj``, ``AccountObj`` and
  ``ContactObj``;
- ``/cgi/crm/v2/object/describe``: field metadata, ``sales_process_id`` options (销售流程) whose
  ``child_options`` name the ``sales_stage`` options (销售阶段) of each process;
- values as Fxiaoke sends them: epoch milliseconds for times and dates (dates at midnight in the
  tenant's time zone), money and other numbers as strings, owners as lists of user ids;
- limits: 100 calls per 20 seconds per interface (``errorCode`` 14001 beyond), an optional daily
  quota (30002); server trouble as HTTP 502 or ``errorCode`` -1; unknown paths as ``errorCode``
  10006.

Not confirmed from public material, so modelled plausibly and adjustable: the describe nesting and
the ``child_options`` scoping, the create answer's ``dataId``, how won and lost stages are
marked (by label here), the code of a validation failure (32000), and the newer header form's
token endpoint (the legacy one is used for both).
"""

from __future__ import annotations

import bisect
import itertools
import json
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from ._server import FakeApp, FakeClock, FakeHarness, FakeRequest, FakeResponse, RateWindow

__all__ = ["DEFAULT_PROCESSES", "FxiaokeFake", "FxiaokeHarness", "epoch_ms"]

DEFAULT_PROCESSES: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
    ("64ec36f86815cf000178aec1", "标准销售流程", (
        ("1", "初步接洽"), ("2", "需求确定"), ("3", "方案报价"), ("4", "谈判审核"), ("5", "赢单"), ("6", "输单"),
    )),
)
"""Sales processes (销售流程): (id, name, ((stage value, stage label), ...))."""

OBJECTS = ("NewOpportunityObj", "AccountObj", "ContactObj")
FIELDS: dict[str, tuple[str, ...]] = {
    "NewOpportunityObj": ("_id", "name", "account_id", "amount", "close_date", "sales_process_id", "sales_stage",
                          "probability", "owner", "life_status", "is_deleted", "create_time", "last_modified_time",
                          "version", "mc_currency"),
    "AccountObj": ("_id", "name", "industry", "country", "owner", "parent_account_id", "life_status", "is_deleted",
                   "create_time", "last_modified_time", "version"),
    "ContactObj": ("_id", "name", "email", "mobile", "job_title", "account_id", "owner", "life_status",
                   "is_deleted", "create_time", "last_modified_time", "version"),
}
READ_ONLY = frozenset({"_id", "create_time", "last_modified_time", "version", "is_deleted"})
NUMBER_FIELDS = frozenset({"amount", "probability"})
MS_FIELDS = frozenset({"close_date", "create_time", "last_modified_time"})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
OPERATORS = ("EQ", "N", "GT", "GTE", "LT", "LTE", "IN", "NIN", "IS", "ISN", "LIKE")


def epoch_ms(at: datetime) -> int:
    """An aware datetime as epoch milliseconds."""
    return (at - _EPOCH) // timedelta(milliseconds=1)


class _Table:
    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.index: list[tuple[int, str]] = []
        self.deleted = 0

    def put(self, rec: dict[str, Any], old: int | None) -> None:
        if old is not None:
            i = bisect.bisect_left(self.index, (old, rec["_id"]))
            if i < len(self.index) and self.index[i] == (old, rec["_id"]):
                del self.index[i]
        self.rows[rec["_id"]] = rec
        bisect.insort(self.index, (rec["last_modified_time"], rec["_id"]))


class FxiaokeFake(FakeApp):
    """A Fxiaoke tenant in memory, served by :meth:`transport` or :meth:`serve`.

    :param app_id: with ``app_secret`` and ``permanent_code``, what the token endpoint takes.
    :param rate_limit: calls per interface ``(calls, seconds)`` (Fxiaoke: 100 per 20 s); ``None``.
    :param token_rate_limit: the token endpoint's limit (10 a minute).
    :param daily_limit: calls a day before ``errorCode`` 30002; ``None`` for no quota.
    :param processes: the sales processes and their stages (see :data:`DEFAULT_PROCESSES`).
    :param token_ttl: seconds a token lives (7,200); a new one is issued once less than
        ``token_ttl - reissue_after`` is left.
    :param offset_cap: the largest ``offset`` a query takes (10,000); ``max_limit`` the largest
        ``limit``.
    :param tz: the tenant's time zone (dates are midnight there).
    """

    vendor = "fxiaoke"

    def __init__(
        self,
        *,
        app_id: str = "FSAID_fake0001",
        app_secret: str = "fake-fxiaoke-app-secret",
        permanent_code: str = "fake-fxiaoke-permanent-code",
        corp_id: str = "FSCID_FAKE0001",
        user_id: str = "FSUID_FAKE0001",
        rate_limit: tuple[int, float] | None = (100, 20.0),
        token_rate_limit: tuple[int, float] | None = (10, 60.0),
        daily_limit: int | None = None,
        processes: Iterable[tuple[str, str, Iterable[tuple[str, str]]]] = DEFAULT_PROCESSES,
        token_ttl: float = 7200.0,
        reissue_after: float = 6600.0,
        offset_cap: int = 10_000,
        max_limit: int = 1000,
        tz: str = "Asia/Shanghai",
        external_id_fields: Iterable[str] = ("salesprocess_id__c",),
        monotonic: Callable[[], float] = time.monotonic,
        clock: FakeClock | None = None,
        timeout_delay: float = 1.0,
    ) -> None:
        self._windows: dict[str, RateWindow] = {}
        self._limit = rate_limit
        super().__init__(monotonic=monotonic, timeout_delay=timeout_delay, rate_limit=rate_limit)
        self.clock = clock or FakeClock()
        self.tz = ZoneInfo(tz)
        self._app = (app_id, app_secret, permanent_code)
        self.corp_id = corp_id
        self.user_id = user_id
        self.token_ttl = token_ttl
        self.reissue_after = reissue_after
        self._token: tuple[str, float] | None = None
        self._issued = 0
        self.token_window = None if token_rate_limit is None else RateWindow(*token_rate_limit, monotonic)
        self.daily_limit = daily_limit
        self.daily_used = 0
        self.offset_cap = offset_cap
        self.max_limit = max_limit
        self.ext_fields = tuple(external_id_fields)
        self.fields = {k: v + (self.ext_fields if k == "NewOpportunityObj" else ()) for k, v in FIELDS.items()}
        self.tables: dict[str, _Table] = {k: _Table() for k in OBJECTS}
        self.processes = [(pid, name, tuple(stages)) for pid, name, stages in processes]
        self._ids = itertools.count(1)
        self._reject: str | None = None
        self._busy = 0
        self.on_query: Callable[[str, int], None] | None = None
        """Called (object, offset) before a query's page is cut (tests change records there)."""

    def __repr__(self) -> str:
        return f"FxiaokeFake({len(self.tables['NewOpportunityObj'].rows)} opportunities)"

    # --- ids, values ------------------------------------------------------------------------------
    def _new_id(self) -> str:
        return f"65{next(self._ids):022x}"

    def _label(self, pid: str | None, value: Any) -> str | None:
        for p, _, stages in self.processes:
            if pid in (None, p):
                for v, lab in stages:
                    if v == value:
                        return lab
        return None

    def _value_of(self, pid: str, label: str) -> str | None:
        for p, _, stages in self.processes:
            if p == pid:
                for v, lab in stages:
                    if lab == label:
                        return v
        return None

    def _date_ms(self, d: date) -> int:
        return epoch_ms(datetime(d.year, d.month, d.day, tzinfo=self.tz))

    def _ms_date(self, ms: int) -> date:
        return (_EPOCH + timedelta(milliseconds=ms)).astimezone(self.tz).date()

    # --- remote control (as a Fxiaoke user would; stages by label) --------------------------------------
    def stage_ids(self) -> list[str]:
        labels = [lab for _, lab in self.processes[0][2]]
        won = [x for x in labels if x in ("赢单",)]
        lost = [x for x in labels if x in ("输单", "无效")]
        return [x for x in labels if x not in won and x not in lost] + won + lost

    def open_stage_ids(self) -> list[str]:
        return [x for x in self.stage_ids() if x not in ("赢单", "输单", "无效")]

    def now(self) -> datetime:
        return self.clock.now()

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.clock.advance(seconds)

    def freeze(self, frozen: bool = True) -> None:
        with self._lock:
            self.clock.frozen = frozen

    def reject_names(self, prefix: str | None) -> None:
        """Refuse (``errorCode`` 32000) written opportunities whose name starts with ``prefix``."""
        self._reject = prefix

    def expire_tokens(self) -> None:
        self._token = None

    def _neutral(self, fields: Mapping[str, Any], pid: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in fields.items():
            if k == "name":
                out["name"] = v
            elif k == "stage":
                value = self._value_of(pid, str(v))
                if value is None:
                    raise KeyError(f"no stage {v!r} in process {pid}")
                out["sales_stage"] = value
            elif k == "amount":
                out["amount"] = None if v is None else Decimal(str(v))
            elif k == "close_date":
                out["close_date"] = None if v is None else self._date_ms(v)
            elif k == "owner":
                out["owner"] = None if v is None else [str(v)]
            elif k == "account":
                out["account_id"] = v
            elif k == "life_status":
                out["life_status"] = v
            else:
                raise KeyError(f"unknown opportunity field {k!r}")
        return out

    def create_deal(self, name: str, stage: str | None = None, *, amount: Decimal | str | None = None,
                    close_date: date | None = None, owner: str | None = None, process: str | None = None,
                    account: str | None = None) -> str:
        """Create an opportunity (商机) as a Fxiaoke user would; returns its ``_id``."""
        with self._lock:
            pid = process or self.processes[0][0]
            f = self._neutral({"name": name, "stage": stage or self.stage_ids()[0], "amount": amount,
                               "close_date": close_date or (self.clock.now().date() + timedelta(days=30)),
                               "owner": owner or "1000", "account": account}, pid)
            f["sales_process_id"] = pid
            return str(self._write("NewOpportunityObj", None, f)["_id"])

    def update_deal(self, remote_id: str, **fields: Any) -> None:
        with self._lock:
            rec = self.tables["NewOpportunityObj"].rows[remote_id]
            self._write("NewOpportunityObj", rec, self._neutral(fields, rec["sales_process_id"]))

    def get_deal(self, remote_id: str) -> dict[str, Any]:
        with self._lock:
            r = self.tables["NewOpportunityObj"].rows[remote_id]
            return {"name": r.get("name") or "", "stage": self._label(r["sales_process_id"], r.get("sales_stage")),
                    "amount": r.get("amount"),
                    "close_date": None if r.get("close_date") is None else self._ms_date(r["close_date"]),
                    "owner": (r.get("owner") or [None])[0], "process": r.get("sales_process_id"),
                    "local_id": r.get(self.ext_fields[0]) if self.ext_fields else None,
                    "modified": r["last_modified_time"]}

    def deal_ids(self) -> list[str]:
        with self._lock:
            return [k for k, r in self.tables["NewOpportunityObj"].rows.items() if not r.get("is_deleted")]

    def create_account(self, name: str, *, industry: str | None = None, country: str | None = None) -> str:
        with self._lock:
            return str(self._write("AccountObj", None, {"name": name, "industry": industry, "country": country,
                                                        "owner": ["1000"]})["_id"])

    def create_contact(self, name: str, *, email: str | None = None, account: str | None = None) -> str:
        with self._lock:
            return str(self._write("ContactObj", None, {"name": name, "email": email, "account_id": account,
                                                        "owner": ["1000"]})["_id"])

    def seed_deals(self, n: int, *, stage_moves: bool = True) -> list[str]:
        """Add ``n`` opportunities quickly (for benchmarks), many in later stages."""
        labels = self.stage_ids()
        out = []
        with self._lock:
            for i in range(n):
                out.append(self.create_deal(
                    f"商机 {i}", labels[i % len(labels)] if stage_moves else labels[0],
                    amount=Decimal(1000 + (i * 37) % 90000) + Decimal(i % 100) / 100,
                    close_date=date(2026, 1 + i % 12, 1 + i % 28), owner=str(1000 + i % 17)))
        return out

    def _write(self, obj: str, rec: dict[str, Any] | None, changes: Mapping[str, Any]) -> dict[str, Any]:
        at = epoch_ms(self.clock.tick())
        table = self.tables[obj]
        old = None
        if rec is None:
            rec = dict.fromkeys(self.fields[obj])
            rec.update(_id=self._new_id(), create_time=at, life_status="normal", is_deleted=False, version=0)
        else:
            old = rec["last_modified_time"]
        rec.update(changes)
        rec["last_modified_time"] = at
        rec["version"] = int(rec.get("version") or 0) + 1
        table.put(rec, old)
        return rec

    # --- answers ---------------------------------------------------------------------------------------
    def _answer(self, code: int, message: str, **extra: Any) -> FakeResponse:
        body: dict[str, Any] = {"errorCode": code, "errorMessage": message, "traceId": f"E-O.fake.{self.next_id()}"}
        body.update(extra)
        return FakeResponse.of(200, body)

    def _out(self, v: Any, field: str) -> Any:
        if isinstance(v, Decimal):
            return str(v if v.as_tuple().exponent < -2 else v.quantize(Decimal("0.01")))  # type: ignore[operator]
        if field in ("probability", "version") and v is not None:
            return str(v)
        return v

    # --- FakeApp hooks ------------------------------------------------------------------------------------
    def set_rate_limit(self, limit: tuple[int, float] | None) -> None:
        with self._lock:
            self._limit = limit
            self._windows = {}
            self.window = None if limit is None else RateWindow(limit[0], limit[1], self.monotonic)

    def window_for(self, route: str) -> Any:
        if self.daily_limit is not None and route != "token":
            if self.daily_used >= self.daily_limit:
                return _Closed()
            self.daily_used += 1
        if route == "token":
            return self.token_window
        if self._limit is None:
            return None
        w = self._windows.get(route)
        if w is None:
            w = self._windows[route] = RateWindow(self._limit[0], self._limit[1], self.monotonic)
        return w

    def _token_ok(self, tok: str | None) -> bool:
        return (tok is not None and self._token is not None and tok == self._token[0]
                and self.monotonic() - self._token[1] < self.token_ttl)

    def authorized(self, req: FakeRequest) -> bool:
        if req.path == "/cgi/corpAccessToken/get/V2":
            return True
        auth = req.headers.get("authorization", "")
        if auth:
            scheme, _, tok = auth.partition(" ")
            return (scheme.lower() == "bearer" and self._token_ok(tok) and req.headers.get("x-fs-ea") == self.corp_id
                    and bool(req.headers.get("x-fs-userid")) and req.arg("thirdTraceId") is not None)
        try:
            body = req.json() or {}
        except ValueError:
            return True  # the handler reports the broken body
        return (isinstance(body, dict) and self._token_ok(body.get("corpAccessToken"))
                and body.get("corpId") == self.corp_id and bool(body.get("currentOpenUserId")))

    def unauthorized(self, req: FakeRequest) -> FakeResponse:
        try:
            body = req.json() or {}
        except ValueError:
            body = {}
        if not req.headers.get("authorization") and isinstance(body, dict) and not body.get("corpAccessToken"):
            return self._answer(10013, "缺少参数corpAccessToken")
        return self._answer(20016, "corpAccessToken不存在或者已经过期")

    def unavailable(self, req: FakeRequest) -> FakeResponse:
        self._busy += 1
        if self._busy % 2:
            return FakeResponse(502, b"<html><body>502 Bad Gateway</body></html>", {"Content-Type": "text/html"})
        return self._answer(-1, "系统繁忙")

    def throttled(self, req: FakeRequest, route: str) -> FakeResponse:
        if self.daily_limit is not None and self.daily_used >= self.daily_limit and route != "token":
            return self._answer(30002, "当天访问频次超限（0点重新统计）")
        return self._answer(14001, "接口调用超过限制")

    def not_found(self, req: FakeRequest) -> FakeResponse:
        return self._answer(10006, f"the request uri=[{req.path}], apiName=[null] is not exists")

    def is_page(self, route: str) -> bool:
        return route == "query"

    def page_key(self, req: FakeRequest, route: str) -> str:
        try:
            body = req.json() or {}
            data = dict(body.get("data") or {})
            info = dict(data.get("search_query_info") or {})
        except (ValueError, AttributeError, TypeError):
            return route
        info.pop("offset", None)
        return "query:" + json.dumps({"o": data.get("dataObjectApiName"), "q": info}, sort_keys=True, default=str)

    def has_next(self, resp: FakeResponse) -> bool:
        try:
            d = json.loads(resp.body).get("data") or {}
        except ValueError:
            return False
        return int(d.get("offset", 0)) + len(d.get("dataList") or []) < int(d.get("total") or 0)

    def dispatch(self, req: FakeRequest) -> tuple[str, Callable[[FakeRequest], FakeResponse]] | None:
        if req.method != "POST":
            return None
        p = req.path
        if p == "/cgi/corpAccessToken/get/V2":
            return "token", self._issue
        routes: dict[str, Callable[[FakeRequest], FakeResponse]] = {
            "/cgi/crm/v2/data/query": self._query, "/cgi/crm/v2/data/get": self._get,
            "/cgi/crm/v2/data/create": self._create, "/cgi/crm/v2/data/update": self._update,
            "/cgi/crm/v2/object/describe": self._describe,
        }
        h = routes.get(p)
        if h is None:
            return None
        return p.rsplit("/", 1)[-1], h

    # --- handlers -------------------------------------------------------------------------------------------
    def _data(self, req: FakeRequest) -> dict[str, Any] | FakeResponse:
        try:
            body = req.json()
        except ValueError:
            return self._answer(12004, "POST的数据包为空")
        if not isinstance(body, dict):
            return self._answer(12004, "POST的数据包为空")
        data = body.get("data")
        if not isinstance(data, dict):
            return self._answer(32000, "参数错误: data is required")
        return data

    def _issue(self, req: FakeRequest) -> FakeResponse:
        try:
            body = req.json() or {}
        except ValueError:
            body = {}
        got = (body.get("appId"), body.get("appSecret"), body.get("permanentCode"))
        if not got[0]:
            return self._answer(10001, "缺少参数appId")
        if got[:2] != self._app[:2]:
            return self._answer(20006, "appId或appSecret错误")
        if got[2] != self._app[2]:
            return self._answer(20015, "永久授权码错误")
        now = self.monotonic()
        if self._token is None or now - self._token[1] >= self.reissue_after:
            self._issued += 1
            self._token = (f"FAKECORPTOKEN{self._issued:08d}", now)
        left = max(0, int(self.token_ttl - (now - self._token[1])))
        return self._answer(0, "success", corpAccessToken=self._token[0], corpId=self.corp_id, expiresIn=left)

    def _describe(self, req: FakeRequest) -> FakeResponse:
        try:
            body = req.json() or {}
        except ValueError:
            body = {}
        name = body.get("apiName") or (body.get("data") or {}).get("apiName")
        if name not in OBJECTS:
            return self._answer(32000, f"参数错误: unknown object {name!r}")
        fields: dict[str, Any] = {f: {"api_name": f, "type": "text", "label": f} for f in self.fields[str(name)]}
        if name == "NewOpportunityObj":
            fields["sales_process_id"] = {
                "api_name": "sales_process_id", "type": "select_one", "label": "销售流程",
                "options": [{"label": pname, "value": pid, "child_options": [{"sales_stage": [v for v, _ in st]}]}
                            for pid, pname, st in self.processes]}
            seen: dict[str, str] = {}
            for _, _, st in self.processes:
                for v, lab in st:
                    seen.setdefault(v, lab)
            fields["sales_stage"] = {"api_name": "sales_stage", "type": "select_one", "label": "销售阶段",
                                     "cascade_parent_api_name": "sales_process_id",
                                     "options": [{"label": lab, "value": v, "not_usable": False} for v, lab in seen.items()]}
            fields["amount"]["type"] = "currency"
            for f in ("close_date",):
                fields[f]["type"] = "date"
        return self._answer(0, "OK", data={"describe": {"api_name": name, "display_name": name, "fields": fields}})

    def _query(self, req: FakeRequest) -> FakeResponse:
        data = self._data(req)
        if isinstance(data, FakeResponse):
            return data
        obj = data.get("dataObjectApiName")
        if obj not in OBJECTS:
            return self._answer(32000, f"参数错误: unknown object {obj!r}")
        info = data.get("search_query_info") or {}
        try:
            offset = int(info.get("offset") or 0)
            limit = int(info.get("limit") or 20)
        except (TypeError, ValueError):
            return self._answer(32000, "参数错误: offset and limit are numbers")
        if offset > self.offset_cap:
            return self._answer(10013, f"offset out of range {self.offset_cap}", errorDescription=f"offset 不能超过{self.offset_cap}")
        if not 1 <= limit <= self.max_limit:
            return self._answer(32000, f"参数错误: limit must be between 1 and {self.max_limit}")
        if self.on_query is not None:
            self.on_query(str(obj), offset)
        table = self.tables[str(obj)]
        filters = list(info.get("filters") or [])
        for f in filters:
            if not isinstance(f, dict) or f.get("operator") not in OPERATORS or f.get("field_name") not in self.fields[str(obj)]:
                return self._answer(32000, f"参数错误: bad filter {f!r}")
        if not any(f.get("field_name") == "is_deleted" for f in filters):
            filters.append({"field_name": "is_deleted", "operator": "EQ", "field_values": [False]})
        orders = [(str(o.get("fieldName")), bool(o.get("isAsc", True))) for o in info.get("orders") or []]
        total_rows: int
        if orders[:1] == [("last_modified_time", True)] and orders[1:] in ([], [("_id", True)]):
            lo, hi = 0, len(table.index)
            rest = []
            for f in filters:
                vals = f.get("field_values") or []
                if f["field_name"] == "last_modified_time" and f["operator"] in ("GTE", "GT", "EQ") and vals:
                    v = int(vals[0])
                    if f["operator"] == "GT":
                        lo = max(lo, bisect.bisect_right(table.index, (v, "\uffff")))
                    else:
                        lo = max(lo, bisect.bisect_left(table.index, (v, "")))
                    if f["operator"] == "EQ":
                        hi = min(hi, bisect.bisect_right(table.index, (v, "\uffff")))
                else:
                    rest.append(f)
            ids = (rid for _, rid in table.index[lo:max(lo, hi)])
            if all(f["field_name"] == "is_deleted" and f["operator"] == "EQ" and f.get("field_values") == [False]
                   for f in rest) and not table.deleted:
                window = table.index[lo:max(lo, hi)]
                total_rows = len(window)
                rows = [table.rows[rid] for _, rid in window[offset:offset + limit]]
                offset_in_rows = 0
            else:
                rows = [r for r in (table.rows[rid] for rid in ids) if all(self._match(r, f) for f in rest)]
                total_rows = len(rows)
                offset_in_rows = offset
        else:
            rows = [r for r in table.rows.values() if all(self._match(r, f) for f in filters)]
            for name, asc in reversed(orders or [("last_modified_time", False)]):
                def key(r: Mapping[str, Any], n: str = name) -> tuple[bool, Any]:
                    v = r.get(n)
                    return (v is None, v if v is not None else "")

                rows.sort(key=key, reverse=not asc)
            total_rows = len(rows)
            offset_in_rows = offset
        proj = info.get("fieldProjection") or list(self.fields[str(obj)])
        chunk = rows[offset_in_rows:offset_in_rows + limit]
        out = [{f: self._out(r.get(f), f) for f in ("_id", *proj) if f in r} for r in chunk]
        for d in out:
            d["dataObjectApiName"] = obj
        total = total_rows if data.get("find_explicit_total_num") else 0
        return self._answer(0, "OK", data={"dataList": out, "total": total, "offset": offset, "limit": limit})

    @staticmethod
    def _norm(v: Any, field: str) -> Any:
        if v is None or isinstance(v, bool):
            return v
        try:
            if field in MS_FIELDS:
                return int(v)
            if field in NUMBER_FIELDS:
                return Decimal(str(v))
        except (TypeError, ValueError, InvalidOperation):
            return v
        return v if isinstance(v, str) else str(v)

    def _match(self, r: Mapping[str, Any], f: Mapping[str, Any]) -> bool:
        name, op = f["field_name"], f["operator"]
        vals = [self._norm(v, name) for v in (f.get("field_values") or [])]
        have = r.get(name)
        if isinstance(have, list):
            have = have[0] if have else None
        have = self._norm(have, name)
        if op == "IS":
            return bool(have in (None, ""))
        if op == "ISN":
            return bool(have not in (None, ""))
        if op in ("IN", "NIN"):
            return bool((have in vals) == (op == "IN"))
        if not vals:
            return False
        v = vals[0]
        try:
            if op == "EQ":
                return bool(have == v)
            if op == "N":
                return bool(have != v)
            if op == "LIKE":
                return str(v) in str(have or "")
            if have is None:
                return False
            return bool({"GT": have > v, "GTE": have >= v, "LT": have < v, "LTE": have <= v}[op])
        except TypeError:
            return False

    def _get(self, req: FakeRequest) -> FakeResponse:
        data = self._data(req)
        if isinstance(data, FakeResponse):
            return data
        obj, rid = data.get("dataObjectApiName"), data.get("objectDataId")
        rec = self.tables.get(str(obj), _Table()).rows.get(str(rid))
        if rec is None or rec.get("is_deleted"):
            return self._answer(32000, "数据不存在或已删除")
        return self._answer(0, "OK", data={"data": {k: self._out(v, k) for k, v in rec.items()}})

    def _clean(self, obj: str, od: Mapping[str, Any], rec: Mapping[str, Any] | None) -> dict[str, Any] | str:
        clean: dict[str, Any] = {}
        for k, v in od.items():
            if k in ("dataObjectApiName", "_id"):
                continue
            if k not in self.fields[obj] or k in READ_ONLY:
                return f"字段 {k} 不存在或不可写"
            if k in NUMBER_FIELDS and v is not None:
                if isinstance(v, bool) or not isinstance(v, str | int | Decimal):
                    return f"字段 {k} 需要数字"
                try:
                    v = Decimal(str(v))
                except InvalidOperation:
                    return f"字段 {k} 需要数字"
                if not v.is_finite():
                    return f"字段 {k} 需要数字"
            elif k in MS_FIELDS and v is not None:
                try:
                    v = int(v)
                except (TypeError, ValueError):
                    return f"字段 {k} 需要毫秒时间戳"
            elif k == "owner" and v is not None:
                if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                    return "字段 owner 需要员工ID列表"
            clean[k] = v
        merged = {**(rec or {}), **clean}
        if obj == "NewOpportunityObj":
            pid = merged.get("sales_process_id")
            if pid not in {p for p, _, _ in self.processes}:
                return "销售流程不存在"
            if "sales_stage" in clean and self._label(str(pid), clean["sales_stage"]) is None:
                return f"销售阶段 {clean['sales_stage']!r} 不属于该销售流程"
            if rec is None and not merged.get("sales_stage"):
                return "销售阶段不能为空"
        if not merged.get("name"):
            return "名称不能为空"
        name = merged.get("name")
        if obj == "NewOpportunityObj" and self._reject and isinstance(name, str) and name.startswith(self._reject):
            return f"商机名称 {name!r} 不允许"
        return clean

    def _create(self, req: FakeRequest) -> FakeResponse:
        data = self._data(req)
        if isinstance(data, FakeResponse):
            return data
        od = data.get("object_data")
        if not isinstance(od, dict) or od.get("dataObjectApiName") not in OBJECTS:
            return self._answer(32000, "参数错误: object_data.dataObjectApiName is required")
        obj = str(od["dataObjectApiName"])
        clean = self._clean(obj, od, None)
        if isinstance(clean, str):
            return self._answer(32000, f"参数错误: {clean}")
        if obj == "NewOpportunityObj" and "owner" not in clean:
            clean["owner"] = ["1000"]
        rec = self._write(obj, None, clean)
        return self._answer(0, "OK", dataId=rec["_id"])

    def _update(self, req: FakeRequest) -> FakeResponse:
        data = self._data(req)
        if isinstance(data, FakeResponse):
            return data
        od = data.get("object_data")
        if not isinstance(od, dict) or od.get("dataObjectApiName") not in OBJECTS:
            return self._answer(32000, "参数错误: object_data.dataObjectApiName is required")
        obj = str(od["dataObjectApiName"])
        rec = self.tables[obj].rows.get(str(od.get("_id")))
        if rec is None or rec.get("is_deleted"):
            return self._answer(32000, "数据不存在或已删除")
        clean = self._clean(obj, od, rec)
        if isinstance(clean, str):
            return self._answer(32000, f"参数错误: {clean}")
        self._write(obj, rec, clean)
        return self._answer(0, "OK")


class _Closed:
    def take(self) -> tuple[bool, int]:
        return False, 0


class FxiaokeHarness(FakeHarness):
    """A :class:`FxiaokeFake` plus adapters wired to it (see
    :class:`~salesprocess_adapters.fakes.HubSpotHarness` for the two modes)."""

    fake_host = "fxiaoke.fake"

    def __init__(self, mode: str = "transport", **fake_options: Any) -> None:
        from ..fxiaoke import FxiaokeAdapter

        self._start(mode, FxiaokeFake, {"timeout_delay": 0.6, "rate_limit": None}, fake_options, FxiaokeAdapter.capabilities)
        self.secrets = ("fake-fxiaoke-app-secret", "fake-fxiaoke-permanent-code", "FAKECORPTOKEN")

    def adapter(self, *, page_size: int | None = None, rate_limit: tuple[int, float] | bool | None = True,
                token: str | None = None, retry: Any = None, **options: Any) -> Any:
        from salesprocess.sync import RetryPolicy

        from ..fxiaoke import FxiaokeAdapter

        rl = self._rate_limit(rate_limit, self.fake._limit)
        kw = self._clock_kw()
        if token is not None:
            kw.update(token=token, permanent_code=None)
        else:
            kw.update(permanent_code="fake-fxiaoke-permanent-code")
        kw.update(options)
        a = FxiaokeAdapter(
            base_url=self.base_url, app_id="FSAID_fake0001", app_secret="fake-fxiaoke-app-secret",
            corp_id="FSCID_FAKE0001", user_id="FSUID_FAKE0001", page_size=page_size or 100, rate_limit=rl,
            timeout=0.3 if self.mode == "http" else 5.0,
            retry=retry or RetryPolicy(attempts=5, base=0.02, cap=0.2), seed=19, **kw,
        )
        return self._track(a)
