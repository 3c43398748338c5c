"""A faithful local fake of the Salesforce REST API (the parts the adapter uses, and a little more).

- ``GET /services/data/`` (versions), ``/services/data/vNN.0/limits``;
- SOQL: ``GET .../query?q=`` and ``.../queryAll?q=`` over Opportunity, OpportunityStage,
  OpportunityHistory, Account, Contact, Task and Event (a subset big enough for incremental sync:
  see :mod:`._soql`, child subqueries such as ``OpportunityHistories`` included); results are a
  snapshot taken when the query runs, paged through ``nextRecordsUrl`` locators (batch size from
  ``Sforce-Query-Options: batchSize=N``) that expire (``INVALID_QUERY_LOCATOR``);
- sObject Collections: ``POST/PATCH /composite/sobjects`` and the upsert by external id
  ``PATCH /composite/sobjects/{Type}/{ExternalIdField}`` (≤ 200 records, per-row
  ``{id, success, errors[{statusCode, message, fields}], created}``, ``allOrNone`` rollback);
  ``GET/PATCH/DELETE /sobjects/{Type}/{id}``, ``PATCH /sobjects/{Type}/{Field}/{value}``,
  ``/sobjects/{Type}/updated`` and ``/deleted`` windows;
- ``POST /services/oauth2/token`` (refresh-token grant; ``invalid_grant`` on failure);
- errors as JSON arrays ``[{message, errorCode, fields}]``; 401 ``INVALID_SESSION_ID``;
  403 ``REQUEST_LIMIT_EXCEEDED`` (``ConcurrentRequests`` when throttled, ``TotalRequests`` when
  the daily allocation is spent); ``Sforce-Limit-Info: api-usage=N/MAX`` on every response.

Opportunity writes derive ``IsClosed``, ``IsWon``, ``Probability`` and ``ForecastCategoryName``
from the stage and append ``OpportunityHistory`` rows, as Salesforce does.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import unquote

from ._server import FakeApp, FakeClock, FakeHarness, FakeRequest, FakeResponse
from ._soql import Query, SoqlError, parse, parse_datetime

__all__ = ["DEFAULT_STAGES", "SalesforceFake", "SalesforceHarness", "sf_time"]

DEFAULT_STAGES: tuple[tuple[str, int, bool, bool, str], ...] = (
    ("Prospecting", 10, False, False, "Pipeline"),
    ("Qualification", 10, False, False, "Pipeline"),
    ("Needs Analysis", 20, False, False, "Pipeline"),
    ("Value Proposition", 50, False, False, "Pipeline"),
    ("Id. Decision Makers", 60, False, False, "Pipeline"),
    ("Perception Analysis", 70, False, False, "Pipeline"),
    ("Proposal/Price Quote", 75, False, False, "Pipeline"),
    ("Negotiation/Review", 90, False, False, "Best Case"),
    ("Closed Won", 100, True, True, "Closed"),
    ("Closed Lost", 0, True, False, "Omitted"),
)
"""A standard org's opportunity stages: (name, default probability %, closed, won, forecast)."""

PREFIX = {"Opportunity": "006", "Account": "001", "Contact": "003", "Task": "00T", "Event": "00U",
          "OpportunityHistory": "008", "OpportunityStage": "01J"}
COMMON = ("Id", "IsDeleted", "CreatedDate", "CreatedById", "LastModifiedDate", "SystemModstamp")
SCHEMA: dict[str, tuple[str, ...]] = {
    "Opportunity": COMMON + ("Name", "AccountId", "OwnerId", "StageName", "Amount", "CloseDate", "Probability",
                             "ForecastCategory", "ForecastCategoryName", "IsClosed", "IsWon", "Type",
                             "LeadSource", "NextStep", "Description", "CurrencyIsoCode"),
    "OpportunityStage": ("Id", "ApiName", "MasterLabel", "SortOrder", "IsActive", "IsClosed", "IsWon",
                         "DefaultProbability", "ForecastCategory", "ForecastCategoryName", "SystemModstamp"),
    "OpportunityHistory": COMMON + ("OpportunityId", "StageName", "Amount", "CloseDate", "Probability",
                                    "ForecastCategory", "ExpectedRevenue", "PrevAmount", "PrevCloseDate"),
    "Account": COMMON + ("Name", "Industry", "BillingCountry", "OwnerId", "ParentId", "Type"),
    "Contact": COMMON + ("FirstName", "LastName", "Name", "Email", "Phone", "Title", "AccountId", "OwnerId"),
    "Task": COMMON + ("Subject", "Status", "ActivityDate", "WhatId", "WhoId", "AccountId", "OwnerId",
                      "TaskSubtype", "CallDurationInSeconds", "IsClosed", "Priority"),
    "Event": COMMON + ("Subject", "StartDateTime", "EndDateTime", "DurationInMinutes", "WhatId", "WhoId",
                       "AccountId", "OwnerId", "ActivityDate"),
}
CHILDREN = {("Opportunity", "OpportunityHistories"): ("OpportunityHistory", "OpportunityId"),
            ("Account", "Contacts"): ("Contact", "AccountId"),
            ("Account", "Opportunities"): ("Opportunity", "AccountId")}
PARENTS = {"Account": "Account", "Parent": "Account", "Opportunity": "Opportunity"}
READ_ONLY = frozenset({"Id", "IsDeleted", "CreatedDate", "CreatedById", "LastModifiedDate", "SystemModstamp",
                       "IsClosed", "IsWon", "ForecastCategory", "Name_Contact"})


def sf_time(at: datetime) -> str:
    """Salesforce's datetime format: ``2026-01-05T09:00:01.000+0000``."""
    a = at.astimezone(UTC)
    return a.strftime("%Y-%m-%dT%H:%M:%S.") + f"{a.microsecond // 1000:03d}+0000"


def _json_value(v: Any) -> Any:
    if isinstance(v, datetime):
        return sf_time(v)
    if isinstance(v, date):
        return v.isoformat()
    return v


class SalesforceFake(FakeApp):
    """A Salesforce org in memory, served by :meth:`transport` or :meth:`serve`.

    :param token: the access token it accepts.
    :param refresh_token: with ``client_id``/``client_secret``, what the token endpoint takes.
    :param external_id_fields: Opportunity fields marked as external ids (for upserts).
    :param rate_limit: ``(calls, seconds)``: beyond it, 403 ``REQUEST_LIMIT_EXCEEDED``
        (``ConcurrentRequests``); ``None`` for no limit.
    :param daily_limit: the daily API allocation (403 ``TotalRequests`` when spent).
    :param min_batch_size: the smallest ``batchSize`` honoured (Salesforce: 200).
    :param locator_ttl: seconds a query locator lives; ``max_locators`` open at once.
    """

    vendor = "salesforce"

    def __init__(
        self,
        *,
        token: str = "00Dfake!AQ0AQ.fake-session",
        refresh_token: str = "5Aep-fake-refresh",
        client_id: str = "fake-consumer-key",
        client_secret: str = "fake-consumer-secret",
        external_id_fields: Iterable[str] = ("SalesProcess_Id__c",),
        rate_limit: tuple[int, float] | None = None,
        daily_limit: int | None = None,
        batch_limit: int = 200,
        default_batch_size: int = 2000,
        min_batch_size: int = 200,
        locator_ttl: float = 900.0,
        max_locators: int = 10,
        monotonic: Callable[[], float] = time.monotonic,
        clock: FakeClock | None = None,
        timeout_delay: float = 1.0,
        stages: Iterable[tuple[str, int, bool, bool, str]] = DEFAULT_STAGES,
    ) -> None:
        super().__init__(monotonic=monotonic, timeout_delay=timeout_delay, rate_limit=rate_limit)
        self.clock = clock or FakeClock(step=timedelta(seconds=1))
        self._tokens = {token}
        self._refresh = refresh_token
        self._client = (client_id, client_secret)
        self._issued = 0
        self.ext_fields = tuple(external_id_fields)
        self.daily_limit = daily_limit
        self.daily_used = 0
        self.batch_limit = batch_limit
        self.default_batch_size = default_batch_size
        self.min_batch_size = min_batch_size
        self.locator_ttl = locator_ttl
        self.max_locators = max_locators
        self._locators: dict[str, tuple[list[dict[str, Any]], float, int]] = {}
        self._counter = 0
        self._reject: str | None = None
        self.objects: dict[str, dict[str, dict[str, Any]]] = {k: {} for k in SCHEMA}
        self._deleted_log: list[tuple[str, str, datetime]] = []
        self.schema = {k: v + (self.ext_fields if k == "Opportunity" else ()) for k, v in SCHEMA.items()}
        self._lower = {k: {f.lower(): f for f in v} for k, v in self.schema.items()}
        for i, (name, prob, closed, won, fc) in enumerate(stages):
            self._insert("OpportunityStage", {
                "ApiName": name, "MasterLabel": name, "SortOrder": i + 1, "IsActive": True, "IsClosed": closed,
                "IsWon": won, "DefaultProbability": Decimal(prob), "ForecastCategory": fc.replace(" ", ""),
                "ForecastCategoryName": fc,
            }, self.clock.now())

    def __repr__(self) -> str:
        return f"SalesforceFake({len(self.objects['Opportunity'])} opportunities)"

    # --- records -------------------------------------------------------------------------------
    def _new_id(self, obj: str) -> str:
        self._counter += 1
        return f"{PREFIX[obj]}{self._counter:012d}AAA"

    def _insert(self, obj: str, fields: Mapping[str, Any], at: datetime) -> dict[str, Any]:
        rec: dict[str, Any] = dict.fromkeys(self.schema[obj])
        rec.update(fields)
        rec["Id"] = self._new_id(obj)
        if "IsDeleted" in rec:
            rec["IsDeleted"] = False
        for f in ("CreatedDate", "LastModifiedDate"):
            if f in rec:
                rec[f] = at
        if "CreatedById" in rec:
            rec["CreatedById"] = "005000000000001AAA"
        rec["SystemModstamp"] = at
        self.objects[obj][rec["Id"]] = rec
        return rec

    def _stage(self, name: str | None) -> dict[str, Any] | None:
        for s in self.objects["OpportunityStage"].values():
            if s["ApiName"] == name and s["IsActive"]:
                return s
        return None

    def _apply_opportunity(self, rec: dict[str, Any], changes: Mapping[str, Any], at: datetime, created: bool) -> None:
        before = {k: rec.get(k) for k in ("StageName", "Amount", "CloseDate", "Probability")}
        rec.update(changes)
        if "StageName" in changes or created:
            st = self._stage(rec["StageName"])
            if st is not None:
                rec["IsClosed"], rec["IsWon"] = st["IsClosed"], st["IsWon"]
                rec["ForecastCategoryName"] = st["ForecastCategoryName"]
                rec["ForecastCategory"] = st["ForecastCategory"]
                if "Probability" not in changes and (created or before["StageName"] != rec["StageName"]):
                    rec["Probability"] = st["DefaultProbability"]
        rec["LastModifiedDate"] = rec["SystemModstamp"] = at
        after = {k: rec.get(k) for k in before}
        if created or after != before:
            self._insert("OpportunityHistory", {
                "OpportunityId": rec["Id"], "StageName": rec["StageName"], "Amount": rec["Amount"],
                "CloseDate": rec["CloseDate"], "Probability": rec["Probability"],
                "ForecastCategory": rec.get("ForecastCategory"), "PrevAmount": None if created else before["Amount"],
                "PrevCloseDate": None if created else before["CloseDate"],
                "ExpectedRevenue": None if rec["Amount"] is None or rec["Probability"] is None
                else rec["Amount"] * rec["Probability"] / 100,
            }, at)

    def _write(self, obj: str, rec: dict[str, Any] | None, changes: Mapping[str, Any]) -> dict[str, Any]:
        at = self.clock.tick()
        if obj == "Opportunity":
            if rec is None:
                rec = self._insert(obj, {}, at)
                self._apply_opportunity(rec, changes, at, True)
            else:
                self._apply_opportunity(rec, changes, at, False)
            return rec
        if rec is None:
            rec = self._insert(obj, changes, at)
        else:
            rec.update(changes)
            if "LastModifiedDate" in rec:
                rec["LastModifiedDate"] = at
            rec["SystemModstamp"] = at
        if obj == "Contact":
            rec["Name"] = " ".join(x for x in (rec.get("FirstName"), rec.get("LastName")) if x)
        return rec

    # --- remote control ---------------------------------------------------------------------------
    def stage_ids(self) -> list[str]:
        st = sorted(self.objects["OpportunityStage"].values(), key=lambda s: s["SortOrder"])
        return ([s["ApiName"] for s in st if not s["IsClosed"]] + [s["ApiName"] for s in st if s["IsWon"]]
                + [s["ApiName"] for s in st if s["IsClosed"] and not s["IsWon"]])

    def open_stage_ids(self) -> list[str]:
        st = sorted(self.objects["OpportunityStage"].values(), key=lambda s: s["SortOrder"])
        return [s["ApiName"] for s in st if not s["IsClosed"]]

    def now(self) -> datetime:
        return self.clock.now()

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.clock.advance(seconds)

    def freeze(self, frozen: bool = True) -> None:
        with self._lock:
            self.clock.frozen = frozen

    def reject_names(self, prefix: str | None) -> None:
        """Refuse (per row, FIELD_CUSTOM_VALIDATION_EXCEPTION) written opportunities named ``prefix...``."""
        self._reject = prefix

    def expire_tokens(self) -> None:
        self._tokens = set()

    def expire_locators(self) -> None:
        """Forget every open query locator (next pages then fail with INVALID_QUERY_LOCATOR)."""
        with self._lock:
            self._locators.clear()

    @staticmethod
    def _neutral(fields: Mapping[str, Any]) -> dict[str, Any]:
        names = {"name": "Name", "stage": "StageName", "amount": "Amount", "close_date": "CloseDate",
                 "owner": "OwnerId", "account": "AccountId", "probability": "Probability"}
        out: dict[str, Any] = {}
        for k, v in fields.items():
            if k not in names:
                raise KeyError(f"unknown opportunity field {k!r}")
            out[names[k]] = Decimal(str(v)) if k in ("amount", "probability") and v is not None else v
        return out

    def create_deal(self, name: str, stage: str = "Prospecting", *, amount: Decimal | str | None = None,
                    close_date: date | None = None, owner: str | None = None, account: str | None = None) -> str:
        """Create an opportunity as a Salesforce user would; returns its Id."""
        with self._lock:
            f = self._neutral({"name": name, "stage": stage, "amount": amount, "owner": owner, "account": account})
            f["CloseDate"] = close_date or (self.clock.now().date() + timedelta(days=30))
            f.setdefault("OwnerId", "005000000000001AAA")
            return str(self._write("Opportunity", None, f)["Id"])

    def update_deal(self, remote_id: str, **fields: Any) -> None:
        with self._lock:
            self._write("Opportunity", self.objects["Opportunity"][remote_id], self._neutral(fields))

    def get_deal(self, remote_id: str) -> dict[str, Any]:
        with self._lock:
            r = self.objects["Opportunity"][remote_id]
            return {"name": r["Name"] or "", "stage": r["StageName"], "amount": r["Amount"],
                    "close_date": r["CloseDate"], "owner": r["OwnerId"],
                    "local_id": r.get(self.ext_fields[0]) if self.ext_fields else None,
                    "modified": r["SystemModstamp"]}

    def deal_ids(self) -> list[str]:
        with self._lock:
            return [k for k, r in self.objects["Opportunity"].items() if not r["IsDeleted"]]

    def delete(self, obj: str, rid: str) -> None:
        with self._lock:
            rec = self.objects[obj][rid]
            rec["IsDeleted"] = True
            at = self.clock.tick()
            rec["SystemModstamp"] = at
            self._deleted_log.append((obj, rid, at))

    def create_account(self, name: str, *, industry: str | None = None, country: str | None = None) -> str:
        with self._lock:
            return str(self._write("Account", None, {"Name": name, "Industry": industry, "BillingCountry": country})["Id"])

    def update_account(self, rid: str, **fields: Any) -> None:
        with self._lock:
            self._write("Account", self.objects["Account"][rid], fields)

    def create_contact(self, first: str, last: str, *, email: str | None = None, account: str | None = None) -> str:
        with self._lock:
            return str(self._write("Contact", None, {"FirstName": first, "LastName": last, "Email": email,
                                                     "AccountId": account})["Id"])

    def create_task(self, subject: str, *, what: str | None = None, status: str = "Completed",
                    subtype: str = "Task", activity_date: date | None = None) -> str:
        with self._lock:
            return str(self._write("Task", None, {
                "Subject": subject, "WhatId": what, "Status": status, "TaskSubtype": subtype,
                "ActivityDate": activity_date, "IsClosed": status == "Completed"})["Id"])

    def create_event(self, subject: str, *, start: datetime, what: str | None = None, minutes: int = 60) -> str:
        with self._lock:
            return str(self._write("Event", None, {
                "Subject": subject, "WhatId": what, "StartDateTime": start, "DurationInMinutes": minutes,
                "EndDateTime": start + timedelta(minutes=minutes), "ActivityDate": start.date()})["Id"])

    def seed_deals(self, n: int, *, stage_moves: bool = True) -> list[str]:
        """Add ``n`` opportunities quickly (for benchmarks), some with a second stage in their history."""
        opens = self.open_stage_ids()
        every = self.stage_ids()
        out = []
        with self._lock:
            for i in range(n):
                rid = self.create_deal(f"Opportunity {i}", opens[0], amount=Decimal(1000 + (i * 37) % 90000),
                                       close_date=date(2026, 1 + i % 12, 1 + i % 28), owner=f"005{i % 17:012d}AAA")
                if stage_moves and i % 3:
                    target = every[i % len(every)]
                    if target != opens[0]:
                        self.update_deal(rid, stage=target)
                out.append(rid)
        return out

    # --- FakeApp hooks ------------------------------------------------------------------------------
    def authorized(self, req: FakeRequest) -> bool:
        scheme, _, tok = req.headers.get("authorization", "").partition(" ")
        return scheme == "Bearer" and tok in self._tokens

    @staticmethod
    def _errors(status: int, code: str, message: str, fields: Iterable[str] = ()) -> FakeResponse:
        body: list[dict[str, Any]] = [{"message": message, "errorCode": code}]
        if fields:
            body[0]["fields"] = list(fields)
        return FakeResponse.of(status, body)

    def _limit_info(self) -> dict[str, str]:
        return {"Sforce-Limit-Info": f"api-usage={self.daily_used}/{self.daily_limit or 15000}"}

    def unauthorized(self, req: FakeRequest) -> FakeResponse:
        return self._errors(401, "INVALID_SESSION_ID", "Session expired or invalid")

    def unavailable(self, req: FakeRequest) -> FakeResponse:
        return self._errors(503, "SERVER_UNAVAILABLE", "Server is temporarily unavailable; try again later")

    def throttled(self, req: FakeRequest, route: str) -> FakeResponse:
        if self.daily_limit is not None and self.daily_used >= self.daily_limit:
            r = self._errors(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        else:
            r = self._errors(403, "REQUEST_LIMIT_EXCEEDED",
                             "ConcurrentRequests (Concurrent API Requests) Limit exceeded.")
        return r

    def window_for(self, route: str) -> Any:
        if self.daily_limit is not None:
            if self.daily_used >= self.daily_limit:
                from .hubspot import _Closed

                return _Closed()
            self.daily_used += 1
        elif route != "versions":
            self.daily_used += 1
        return self.window

    def finish(self, resp: FakeResponse) -> None:
        resp.headers.update(self._limit_info())

    def is_page(self, route: str) -> bool:
        return route in ("query", "querymore")

    def has_next(self, resp: FakeResponse) -> bool:
        return b'"nextRecordsUrl"' in resp.body

    def page_key(self, req: FakeRequest, route: str) -> str:
        if route == "query":
            m = re.search(r"\bFROM\s+(\w+)", req.arg("q") or "", re.IGNORECASE)
            return f"query:{m.group(1) if m else ''}"
        return f"querymore:{req.path.rsplit('/', 1)[-1].rpartition('-')[0]}"

    def is_public(self, route: str) -> bool:
        return route in ("oauth", "versions")

    def dispatch(self, req: FakeRequest) -> tuple[str, Callable[[FakeRequest], FakeResponse]] | None:
        parts = [unquote(p) for p in req.path.split("/") if p]
        m = req.method
        if parts == ["services", "oauth2", "token"] and m == "POST":
            return "oauth", self._oauth
        if parts == ["services", "data"] and m == "GET":
            return "versions", self._versions
        if len(parts) < 3 or parts[:2] != ["services", "data"] or not parts[2].startswith("v"):
            return None
        ver, rest = parts[2], parts[3:]
        if rest in (["query"], ["queryAll"]) and m == "GET":
            return "query", lambda r: self._query(ver, r, rest[0] == "queryAll")
        if len(rest) == 2 and rest[0] in ("query", "queryAll") and m == "GET":
            return "querymore", lambda r: self._query_more(ver, rest[1])
        if rest == ["limits"] and m == "GET":
            return "limits", self._limits
        if rest[:2] == ["composite", "sobjects"]:
            if len(rest) == 2 and m in ("POST", "PATCH", "DELETE"):
                return "collections", lambda r: self._collection(ver, r, None, None)
            if len(rest) == 4 and m == "PATCH":
                return "collections", lambda r: self._collection(ver, r, rest[2], rest[3])
        if rest[:1] == ["sobjects"] and len(rest) >= 3:
            obj = rest[1]
            if rest[2] in ("updated", "deleted") and m == "GET":
                return "sobject", lambda r: self._window(obj, rest[2], r)
            if len(rest) == 3 and m in ("GET", "PATCH", "DELETE"):
                return "sobject", lambda r: self._record(ver, obj, rest[2], r)
            if len(rest) == 4 and m == "PATCH":
                return "sobject", lambda r: self._upsert_one(obj, rest[2], rest[3], r)
        return None

    # --- handlers -------------------------------------------------------------------------------------
    def _oauth(self, req: FakeRequest) -> FakeResponse:
        f = req.form()
        if f.get("grant_type") != "refresh_token":
            return FakeResponse.of(400, {"error": "unsupported_grant_type", "error_description": "grant type not supported"})
        if f.get("refresh_token") != self._refresh or (f.get("client_id"), f.get("client_secret")) != self._client:
            return FakeResponse.of(400, {"error": "invalid_grant", "error_description": "expired access/refresh token"})
        self._issued += 1
        tok = f"00Dfake!AQ0AQ.refreshed-{self._issued:06d}"
        self._tokens = {tok}
        return FakeResponse.of(200, {
            "access_token": tok, "instance_url": req.base_url, "token_type": "Bearer",
            "id": f"{req.base_url}/id/00D000000000001AAA/005000000000001AAA",
            "issued_at": str(int(self.clock.now().timestamp() * 1000)), "signature": "ZmFrZQ==",
        })

    def _versions(self, req: FakeRequest) -> FakeResponse:
        return FakeResponse.of(200, [{"label": "Fake", "url": f"/services/data/v{v}.0", "version": f"{v}.0"}
                                     for v in range(58, 67)])

    def _limits(self, req: FakeRequest) -> FakeResponse:
        mx = self.daily_limit or 15000
        return FakeResponse.of(200, {"DailyApiRequests": {"Max": mx, "Remaining": max(0, mx - self.daily_used)}})

    def _field(self, obj: str, name: str) -> str:
        if "." in name:
            rel, _, rest = name.partition(".")
            parent = PARENTS.get(rel)
            if parent is None or f"{rel}Id".lower() not in self._lower[obj]:
                raise SoqlError("INVALID_FIELD", f"Didn't understand relationship '{rel}' in field path.")
            return f"{rel}.{self._field(parent, rest)}"
        canon = self._lower[obj].get(name.lower())
        if canon is None:
            raise SoqlError("INVALID_FIELD", f"No such column '{name}' on entity '{obj}'.")
        return canon

    def _getter(self, obj: str, rec: Mapping[str, Any]) -> Callable[[str], Any]:
        def get(name: str) -> Any:
            canon = self._field(obj, name)
            if "." in canon:
                rel, _, rest = canon.partition(".")
                pid = rec.get(f"{rel}Id")
                parent = self.objects[PARENTS[rel]].get(pid) if pid else None
                return None if parent is None else self._getter(PARENTS[rel], parent)(rest)
            return rec.get(canon)
        return get

    def _run(self, ver: str, q: Query, include_deleted: bool,
             rows: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        obj = q.obj
        if obj not in self.schema:
            raise SoqlError("INVALID_TYPE", f"sObject type '{obj}' is not supported.")
        fields = [self._field(obj, f) for f in q.fields]
        for f in (*q.filter_fields, *(o[0] for o in q.order)):
            self._field(obj, f)
        source = self.objects[obj].values() if rows is None else rows
        rows = [r for r in source if include_deleted or not r.get("IsDeleted")]
        if q.where is not None:
            cond = q.where
            rows = [r for r in rows if cond(self._getter(obj, r))]
        for name, desc, nulls_last in reversed(q.order):
            canon = self._field(obj, name)
            if "." not in canon:
                def value(r: Mapping[str, Any], c: str = canon) -> Any:
                    return r.get(c)
            else:
                def value(r: Mapping[str, Any], c: str = canon) -> Any:
                    return self._getter(obj, r)(c)
            nones = [r for r in rows if value(r) is None]
            vals = sorted((r for r in rows if value(r) is not None), key=value, reverse=desc)
            rows = vals + nones if nulls_last else nones + vals
        if q.offset:
            rows = rows[q.offset:]
        if q.limit is not None:
            rows = rows[: q.limit]
        children = []
        for rel, sub in q.children:
            child = CHILDREN.get((obj, rel))
            if child is None:
                raise SoqlError("INVALID_TYPE", f"Didn't understand relationship '{rel}' in FROM part of query call.")
            cobj, fk = child
            index: dict[Any, list[dict[str, Any]]] = {}
            for c in self.objects[cobj].values():
                index.setdefault(c.get(fk), []).append(c)
            children.append((rel, Query(sub.fields, (), cobj, sub.where, sub.filter_fields, sub.order,
                                        sub.limit, sub.offset), index))
        plain = all("." not in f for f in fields)
        out = []
        for r in rows:
            d: dict[str, Any] = {"attributes": {"type": obj, "url": f"/services/data/{ver}/sobjects/{obj}/{r['Id']}"}}
            if plain:
                for f in fields:
                    d[f] = _json_value(r.get(f))
            else:
                get = self._getter(obj, r)
                for f in fields:
                    d[f] = _json_value(get(f))
            for rel, cq, index in children:
                rows_c = self._run(ver, cq, include_deleted, index.get(r["Id"], []))
                d[rel] = {"totalSize": len(rows_c), "done": True, "records": rows_c} if rows_c else None
            out.append(d)
        return out

    def _page(self, ver: str, rows: list[dict[str, Any]], start: int, batch: int, locator: str | None) -> FakeResponse:
        end = min(start + batch, len(rows))
        body: dict[str, Any] = {"totalSize": len(rows), "done": end >= len(rows), "records": rows[start:end]}
        if end < len(rows):
            if locator is None:
                self._counter += 1
                locator = f"01g{self._counter:012d}AAA"
                self._locators[locator] = (rows, self.monotonic(), batch)
                while len(self._locators) > self.max_locators:
                    self._locators.pop(next(iter(self._locators)))
            body["nextRecordsUrl"] = f"/services/data/{ver}/query/{locator}-{end}"
        elif locator is not None:
            self._locators.pop(locator, None)
        return FakeResponse.of(200, body)

    def _batch_size(self, req: FakeRequest) -> int:
        opt = req.headers.get("sforce-query-options", "")
        for part in opt.split(","):
            k, _, v = part.strip().partition("=")
            if k.strip().lower() == "batchsize" and v.strip().isdigit():
                return max(self.min_batch_size, min(2000, int(v)))
        return self.default_batch_size

    def _query(self, ver: str, req: FakeRequest, include_deleted: bool) -> FakeResponse:
        text = req.arg("q")
        if not text:
            return self._errors(400, "MALFORMED_QUERY", "A query string has to be specified")
        try:
            rows = self._run(ver, parse(text), include_deleted)
        except SoqlError as e:
            return self._errors(400, e.code, e.message)
        return self._page(ver, rows, 0, self._batch_size(req), None)

    def _query_more(self, ver: str, tail: str) -> FakeResponse:
        loc, _, off = tail.rpartition("-")
        found = self._locators.get(loc)
        if found is None or not off.isdigit() or self.monotonic() - found[1] > self.locator_ttl:
            self._locators.pop(loc, None)
            return self._errors(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        rows, _, batch = found
        return self._page(ver, rows, int(off), batch, loc)

    # writes
    def _coerce(self, obj: str, fields: Mapping[str, Any], create: bool) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        errs: list[dict[str, Any]] = []
        clean: dict[str, Any] = {}
        for k, v in fields.items():
            if k in ("attributes", "id"):
                continue
            canon = self._lower[obj].get(k.lower())
            if canon is None:
                errs.append({"statusCode": "INVALID_FIELD", "message": f"No such column '{k}' on sobject of type {obj}", "fields": [k]})
                continue
            if canon in READ_ONLY:
                errs.append({"statusCode": "INVALID_FIELD_FOR_INSERT_UPDATE",
                             "message": f"Unable to create/update fields: {canon}.", "fields": [canon]})
                continue
            try:
                if canon in ("Amount", "Probability") and v is not None:
                    v = Decimal(str(v))
                elif canon in ("CloseDate", "ActivityDate") and v is not None:
                    v = date.fromisoformat(str(v))
                elif canon in ("StartDateTime", "EndDateTime") and v is not None:
                    v = parse_datetime(str(v))
            except (ValueError, InvalidOperation):
                errs.append({"statusCode": "INVALID_TYPE_ON_FIELD_IN_RECORD",
                             "message": f"{canon}: value not of required type: {v}", "fields": [canon]})
                continue
            clean[canon] = v
        if obj == "Opportunity":
            if "StageName" in clean and self._stage(clean["StageName"]) is None:
                errs.append({"statusCode": "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                             "message": f"Stage: bad value for restricted picklist field: {clean['StageName']}",
                             "fields": ["StageName"]})
            if create:
                missing = [f for f in ("Name", "StageName", "CloseDate") if clean.get(f) in (None, "")]
                if missing:
                    errs.append({"statusCode": "REQUIRED_FIELD_MISSING",
                                 "message": f"Required fields are missing: [{', '.join(missing)}]", "fields": missing})
            name = clean.get("Name")
            if self._reject and isinstance(name, str) and name.startswith(self._reject):
                errs.append({"statusCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                             "message": f"Opportunity name {name!r} is not allowed", "fields": ["Name"]})
        return clean, errs

    def _collection(self, ver: str, req: FakeRequest, obj_path: str | None, ext: str | None) -> FakeResponse:
        if req.method == "DELETE":
            ids = [i for i in (req.arg("ids") or "").split(",") if i]
            if len(ids) > self.batch_limit:
                return self._errors(400, "INVALID_REQUEST", f"a collection takes at most {self.batch_limit} records")
            deleted: list[dict[str, Any]] = []
            for rid in ids:
                obj = next((o for o, p in PREFIX.items() if rid.startswith(p)), None)
                rec = self.objects.get(obj or "", {}).get(rid)
                if rec is None or rec.get("IsDeleted"):
                    deleted.append({"id": rid, "success": False, "errors": [
                        {"statusCode": "ENTITY_IS_DELETED", "message": "entity is deleted", "fields": []}]})
                else:
                    self.delete(str(obj), rid)
                    deleted.append({"id": rid, "success": True, "errors": []})
            return FakeResponse.of(200, deleted)
        try:
            body = req.json() or {}
        except ValueError:
            return self._errors(400, "JSON_PARSER_ERROR", "the request body is not JSON")
        records = body.get("records")
        if not isinstance(records, list):
            return self._errors(400, "INVALID_FIELD", "records is required")
        if len(records) > self.batch_limit:
            return self._errors(400, "INVALID_REQUEST",
                                f"a collection takes at most {self.batch_limit} records, got {len(records)}")
        all_or_none = bool(body.get("allOrNone"))
        if ext is not None:
            if obj_path != "Opportunity" or ext not in self.ext_fields:
                return self._errors(400, "INVALID_FIELD", f"Field {ext} is not an external id field of {obj_path}")
        plans: list[tuple[str, dict[str, Any] | None, dict[str, Any], list[dict[str, Any]]]] = []
        for r in records:
            obj = str((r.get("attributes") or {}).get("type") or obj_path or "")
            if obj not in self.schema:
                plans.append((obj, None, {}, [{"statusCode": "INVALID_TYPE", "message": f"no sObject {obj}", "fields": []}]))
                continue
            target: dict[str, Any] | None = None
            errs: list[dict[str, Any]] = []
            if ext is not None:
                val = r.get(ext)
                if not val:
                    errs.append({"statusCode": "MISSING_ARGUMENT", "message": f"{ext} not specified", "fields": [ext]})
                else:
                    matches = [x for x in self.objects[obj].values() if x.get(ext) == val and not x["IsDeleted"]]
                    if len(matches) > 1:
                        errs.append({"statusCode": "DUPLICATE_EXTERNAL_ID",
                                     "message": f"more than one record found for external id field: {matches[0]['Id']}", "fields": [ext]})
                    target = matches[0] if matches else None
            elif req.method == "PATCH":
                rid = r.get("id") or r.get("Id")
                target = self.objects[obj].get(str(rid)) if rid else None
                if not rid:
                    errs.append({"statusCode": "MISSING_ARGUMENT", "message": "Id not specified in an update call", "fields": []})
                elif target is None or target.get("IsDeleted"):
                    errs.append({"statusCode": "ENTITY_IS_DELETED" if target is not None else "INVALID_CROSS_REFERENCE_KEY",
                                 "message": f"invalid cross reference id: {rid}", "fields": []})
                    target = None
            clean, errs2 = self._coerce(obj, {k: v for k, v in r.items() if k != "Id"}, create=target is None and not errs)
            plans.append((obj, target, clean, errs + errs2))
        failed = any(p[3] for p in plans)
        out: list[dict[str, Any]] = []
        for obj, target, clean, errs in plans:
            if errs:
                out.append({"success": False, "errors": errs})
            elif all_or_none and failed:
                out.append({"success": False, "errors": [{
                    "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                    "message": "Record rolled back because not all records were valid and the request was using AllOrNone header",
                    "fields": []}]})
            else:
                created = target is None
                rec = self._write(obj, target, clean)
                row: dict[str, Any] = {"id": rec["Id"], "success": True, "errors": []}
                if ext is not None or req.method == "POST":
                    row["created"] = created
                out.append(row)
        return FakeResponse.of(200, out)

    def _record(self, ver: str, obj: str, rid: str, req: FakeRequest) -> FakeResponse:
        if obj not in self.schema:
            return self._errors(404, "NOT_FOUND", f"The requested resource does not exist: {obj}")
        rec = self.objects[obj].get(rid)
        if rec is None or rec.get("IsDeleted"):
            return self._errors(404, "NOT_FOUND", "The requested resource does not exist")
        if req.method == "DELETE":
            self.delete(obj, rid)
            return FakeResponse(204)
        if req.method == "PATCH":
            clean, errs = self._coerce(obj, req.json() or {}, create=False)
            if errs:
                return FakeResponse.of(400, [{"message": e["message"], "errorCode": e["statusCode"],
                                              "fields": e["fields"]} for e in errs])
            self._write(obj, rec, clean)
            return FakeResponse(204)
        d = {"attributes": {"type": obj, "url": f"/services/data/{ver}/sobjects/{obj}/{rid}"}}
        d.update({k: _json_value(v) for k, v in rec.items()})
        return FakeResponse.of(200, d)

    def _upsert_one(self, obj: str, field: str, value: str, req: FakeRequest) -> FakeResponse:
        if obj != "Opportunity" or field not in self.ext_fields:
            return self._errors(404, "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: {field}")
        matches = [x for x in self.objects[obj].values() if x.get(field) == value and not x["IsDeleted"]]
        if len(matches) > 1:
            return FakeResponse.of(300, [f"/services/data/sobjects/{obj}/{m['Id']}" for m in matches])
        target = matches[0] if matches else None
        clean, errs = self._coerce(obj, req.json() or {}, create=target is None)
        if errs:
            return FakeResponse.of(400, [{"message": e["message"], "errorCode": e["statusCode"],
                                          "fields": e["fields"]} for e in errs])
        clean[field] = value
        rec = self._write(obj, target, clean)
        if target is None:
            return FakeResponse.of(201, {"id": rec["Id"], "success": True, "errors": [], "created": True})
        return FakeResponse.of(200, {"id": rec["Id"], "success": True, "errors": [], "created": False})

    def _window(self, obj: str, which: str, req: FakeRequest) -> FakeResponse:
        try:
            start = parse_datetime(req.arg("start") or "")
            end = parse_datetime(req.arg("end") or "")
        except ValueError:
            return self._errors(400, "INVALID_REPLICATION_DATE", "start and end are required datetimes")
        if end - start > timedelta(days=30 if which == "updated" else 15):
            return self._errors(400, "INVALID_REPLICATION_DATE", "the window is too long")
        if which == "updated":
            ids = [r["Id"] for r in self.objects.get(obj, {}).values() if start <= r["SystemModstamp"] <= end]
            return FakeResponse.of(200, {"ids": ids, "latestDateCovered": sf_time(end)})
        recs = [{"id": rid, "deletedDate": sf_time(at)} for o, rid, at in self._deleted_log
                if o == obj and start <= at <= end]
        return FakeResponse.of(200, {"deletedRecords": recs, "earliestDateAvailable": sf_time(start),
                                     "latestDateCovered": sf_time(end)})


class SalesforceHarness(FakeHarness):
    """A :class:`SalesforceFake` plus adapters wired to it (see
    :class:`~salesprocess_adapters.fakes.HubSpotHarness` for the two modes)."""

    fake_host = "salesforce.fake"

    def __init__(self, mode: str = "transport", **fake_options: Any) -> None:
        from ..salesforce import SalesforceAdapter

        self._start(mode, SalesforceFake, {"timeout_delay": 1.5, "min_batch_size": 1}, fake_options, SalesforceAdapter.capabilities)
        self.token = "00Dfake!AQ0AQ.fake-session"
        self.secrets = (self.token, "5Aep-fake-refresh", "fake-consumer-secret")

    def adapter(self, *, page_size: int | None = None, rate_limit: tuple[int, float] | bool | None = True,
                token: str | None = None, retry: Any = None) -> Any:
        from salesprocess.sync import RetryPolicy

        from ..salesforce import SalesforceAdapter

        rl = self._rate_limit(rate_limit, self._window_limit())
        kw = self._clock_kw()
        a = SalesforceAdapter(
            base_url=self.base_url, token=token or self.token,
            refresh_token=None if token else "5Aep-fake-refresh", client_id="fake-consumer-key",
            client_secret="fake-consumer-secret", page_size=page_size or 2000, rate_limit=rl,
            timeout=0.8 if self.mode == "http" else 5.0,
            retry=retry or RetryPolicy(attempts=5, base=0.02, cap=0.2), seed=13, **kw,
        )
        return self._track(a)
