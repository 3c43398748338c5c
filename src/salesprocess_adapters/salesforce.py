"""Salesforce adapter (REST API over httpx).

Pull
    SOQL ``SELECT ... WHERE SystemModstamp >= cursor ORDER BY SystemModstamp, Id`` per object,
    paged through ``nextRecordsUrl`` (the locator is kept in the cursor, so an interrupted pull
    resumes on the same query; an expired locator restarts the query from the timestamp).
    Records already seen at exactly the cursor's instant are skipped, so equal timestamps at a
    page boundary are neither lost nor doubled. Opportunities come with their
    ``OpportunityHistories`` (the stage history) in the same query; Accounts, Contacts, Tasks and
    Events follow the same pattern.

Push
    ``PATCH /composite/sobjects/Opportunity/{external id field}`` upserts new deals by our deal id
    (create the external id field, ``SalesProcess_Id__c`` by default, on Opportunity), so a
    retried create never duplicates; ``PATCH /composite/sobjects`` updates known ones. 200 records
    per call, ``allOrNone: false``; each row's ``success``/``errors`` is read record by record.

Errors and limits
    ``INVALID_SESSION_ID`` refreshes the token once (with a refresh token) and retries;
    ``REQUEST_LIMIT_EXCEEDED`` for concurrent requests backs off and retries, for the daily
    ``TotalRequests`` allocation stops; the ``Sforce-Limit-Info`` header is watched so a sync
    stops before it spends the allocation kept in ``reserve``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import partial
from typing import Any

from salesprocess.errors import (
    AdapterError,
    AuthError,
    RateLimited,
    RemoteUnavailable,
    RemoteValidationError,
)
from salesprocess.hookspecs import hookimpl
from salesprocess.model import ActivityKind, ActivityStatus
from salesprocess.sync.adapter import (
    AdapterCapability,
    ObjectKind,
    Page,
    PushItem,
    PushResult,
    RemoteAccount,
    RemoteActivity,
    RemoteContact,
    RemoteDeal,
    RemotePipeline,
    RemoteRecord,
    RemoteStage,
    RemoteStageChange,
)
from salesprocess.sync.timing import RetryPolicy, Secret

from ._http import HttpClient, Response, VendorPolicy, Verdict
from ._pacing import paced
from ._readahead import read_ahead

__all__ = ["PIPELINE_ID", "SalesforceAdapter", "SalesforcePolicy", "parse_sf_time"]

PIPELINE_ID = "Opportunity"
"""The id of the one org-wide pipeline the adapter reports (stages from OpportunityStage)."""
_EXPIRED: Any = object()
"""What a next-page fetch returns when Salesforce says its query locator expired."""
_RETRIABLE_ROWS = frozenset({"UNABLE_TO_LOCK_ROW", "ALL_OR_NONE_OPERATION_ROLLED_BACK", "REQUEST_RUNNING_TOO_LONG"})


def parse_sf_time(v: str | None) -> datetime | None:
    """``2026-01-05T09:00:01.000+0000`` (or ISO 8601) as an aware datetime."""
    if not v:
        return None
    t = v.replace("Z", "+00:00")
    if len(t) > 5 and t[-5] in "+-" and t[-3] != ":":
        t = t[:-2] + ":" + t[-2:]
    d = datetime.fromisoformat(t)
    return d if d.tzinfo is not None else d.replace(tzinfo=UTC)


def _soql_time(at: datetime) -> str:
    """A SOQL datetime literal, floored to the second (so a GTE filter never misses anything)."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class SalesforcePolicy(VendorPolicy):
    """How Salesforce answers: JSON arrays of ``{message, errorCode, fields}``, 401
    ``INVALID_SESSION_ID``, 403 ``REQUEST_LIMIT_EXCEEDED``, ``Sforce-Limit-Info``."""

    name = "salesforce"

    def __init__(self, reserve: int = 0) -> None:
        self.reserve = reserve
        self.used: int | None = None
        self.max: int | None = None

    def remaining(self, r: Response) -> int | None:
        info = r.headers.get("sforce-limit-info", "")
        for part in info.split(";"):
            k, _, v = part.strip().partition("=")
            if k == "api-usage" and "/" in v:
                used, _, mx = v.partition("/")
                if used.isdigit() and mx.isdigit():
                    self.used, self.max = int(used), int(mx)
        return None  # the allocation is daily: it does not pace the burst limiter

    def before(self, what: str) -> None:
        if self.used is not None and self.max is not None and self.used >= self.max - self.reserve:
            raise RateLimited(
                f"{what}: the Salesforce daily API allocation is spent down to the reserve "
                f"({self.used}/{self.max} used, {self.reserve} kept)", vendor_code="REQUEST_LIMIT_EXCEEDED",
                policy="TotalRequests", retriable=False,
            )

    def judge(self, r: Response, what: str) -> Verdict:
        if 200 <= r.status < 300:
            return Verdict("ok")
        errs = r.body if isinstance(r.body, list) else ([r.body] if isinstance(r.body, dict) else [])
        first = errs[0] if errs and isinstance(errs[0], dict) else {}
        code = str(first.get("errorCode") or first.get("error") or f"HTTP_{r.status}")
        text = first.get("message") or first.get("error_description") or "no message"
        msg = f"{what}: Salesforce answered {r.status} {code}: {text}"
        fields = [str(f) for f in first.get("fields", []) or []]
        if r.status == 401:
            return Verdict("refresh", AuthError(msg, vendor_code=code, status=401))
        if r.status == 403 and code == "REQUEST_LIMIT_EXCEEDED":
            if "TotalRequests" in str(text):
                return Verdict("raise", RateLimited(msg + " (the daily allocation is spent)", vendor_code=code,
                                                    policy="TotalRequests", retriable=False, status=403))
            return Verdict("retry", RateLimited(msg, vendor_code=code, policy="ConcurrentRequests", status=403),
                           None, True)
        if r.status == 403:
            return Verdict("raise", AuthError(msg, vendor_code=code, status=403))
        if r.status >= 500:
            return Verdict("retry", RemoteUnavailable(msg, vendor_code=code, status=r.status))
        return Verdict("raise", RemoteValidationError(msg, vendor_code=code, fields=fields, status=r.status))


class SalesforceAdapter:
    """The Salesforce :class:`~salesprocess.sync.CrmAdapter`.

    :param base_url: the org's instance URL (``https://acme.my.salesforce.com``) or a fake's.
    :param token: the OAuth access token (session id).
    :param refresh_token: with ``client_id`` and ``client_secret``: refresh once on
        ``INVALID_SESSION_ID``, at ``login_url`` (default: ``base_url``; use
        ``https://login.salesforce.com`` or ``https://test.salesforce.com`` for real orgs).
    :param api_version: the REST API version, e.g. ``"62.0"``.
    :param page_size: the SOQL batch size asked for (200 to 2,000).
    :param rate_limit: ``(calls, seconds)`` for the client-side limiter (off by default:
        Salesforce's allocation is daily); ``reserve``: daily calls never to spend.
    :param external_id_field: the Opportunity external id field holding our deal id.
    :param currency_field: ``CurrencyIsoCode`` in multi-currency orgs, else ``None``.
    """

    name = "salesforce"
    capabilities = frozenset({
        AdapterCapability.PUSH, AdapterCapability.STAGE_HISTORY, AdapterCapability.PIPELINES,
        AdapterCapability.ACCOUNTS, AdapterCapability.CONTACTS, AdapterCapability.ACTIVITIES,
        AdapterCapability.RATE_LIMITS, AdapterCapability.CREDENTIALS,
    })
    push_batch_size = 200

    def __init__(
        self,
        *,
        token: Secret | str,
        base_url: str,
        api_version: str = "62.0",
        refresh_token: Secret | str | None = None,
        client_id: str | None = None,
        client_secret: Secret | str | None = None,
        login_url: str | None = None,
        client: Any = None,
        transport: Any = None,
        page_size: int = 2000,
        rate_limit: tuple[int, float] | None = None,
        reserve: int = 0,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        seed: int | None = None,
        external_id_field: str = "SalesProcess_Id__c",
        history: bool = True,
        currency_field: str | None = None,
        connection: str | None = None,
    ) -> None:
        self._refresh_token = _secret(refresh_token)
        self._client_secret = _secret(client_secret)
        self._client_id = client_id
        self.login_url = (login_url or base_url).rstrip("/")
        can_refresh = self._refresh_token is not None and client_id is not None and self._client_secret is not None
        self.policy = SalesforcePolicy(reserve)
        self.http = HttpClient(
            base_url=base_url, vendor=self.policy, token=_secret(token),
            refresher=self._refresh if can_refresh else None, client=client, transport=transport,
            timeout=timeout, retry=retry, rate_limit=rate_limit, clock=clock, sleep=sleep, seed=seed,
        )
        self.http.limiter = paced(self.http.limiter)  # each call counts from its answer (see _pacing)
        self.api = f"/services/data/v{api_version}"
        self.page_size = page_size
        self.ext = external_id_field
        self.history = history
        self.currency_field = currency_field
        self.connection = connection

    def __repr__(self) -> str:
        return f"SalesforceAdapter({self.http.base_url!r}, {self.api!r})"

    def close(self) -> None:
        self.http.close()

    def _refresh(self, http: HttpClient) -> tuple[Secret, float | None]:
        assert self._refresh_token is not None
        assert self._client_secret is not None
        try:
            r = http.request("POST", self.login_url + "/services/oauth2/token", form={
                "grant_type": "refresh_token", "refresh_token": self._refresh_token.reveal(),
                "client_id": self._client_id or "", "client_secret": self._client_secret.reveal(),
            }, auth=False, limiter=False, what="token refresh")
        except RemoteValidationError as e:
            raise AuthError("Salesforce refused the refresh token; authorise the connected app again",
                            vendor_code=e.vendor_code) from None
        tok = (r.body or {}).get("access_token") if isinstance(r.body, dict) else None
        if not isinstance(tok, str) or not tok:
            raise AuthError("Salesforce's token endpoint returned no access token")
        return Secret(tok), None

    def _get(self, path: str, params: Mapping[str, Any] | None = None, what: str = "query") -> Any:
        r = self.http.request("GET", path, params=params, what=what,
                              headers={"Sforce-Query-Options": f"batchSize={self.page_size}"})
        return r.body

    def query(self, soql: str) -> Iterator[dict[str, Any]]:
        """Every record of a SOQL query, following ``nextRecordsUrl``."""
        body = self._get(f"{self.api}/query", {"q": soql})
        while True:
            yield from body.get("records", [])
            nxt = body.get("nextRecordsUrl")
            if body.get("done", True) or not nxt:
                return
            body = self._get(nxt)

    # --- pipelines -------------------------------------------------------------------------------
    def pipelines(self) -> list[RemotePipeline]:
        stages = []
        for r in self.query("SELECT Id, ApiName, MasterLabel, SortOrder, IsActive, IsClosed, IsWon, "
                            "DefaultProbability FROM OpportunityStage WHERE IsActive = true ORDER BY SortOrder"):
            prob = r.get("DefaultProbability")
            stages.append(RemoteStage(
                id=str(r["ApiName"]), label=str(r.get("MasterLabel") or r["ApiName"]), order=int(r.get("SortOrder") or 0),
                probability=None if prob is None else Decimal(str(prob)) / 100,
                closed=bool(r.get("IsClosed")), won=bool(r.get("IsWon")),
            ))
        return [RemotePipeline(PIPELINE_ID, "Opportunities", tuple(stages))]

    # --- pull ------------------------------------------------------------------------------------
    def pull(self, kind: str, cursor: Mapping[str, Any] | None) -> Iterator[Page]:
        if kind == ObjectKind.DEALS:
            fields = ["Id", "Name", "StageName", "Amount", "CloseDate", "OwnerId", "AccountId", "CreatedDate",
                      "SystemModstamp", self.ext]
            if self.currency_field:
                fields.append(self.currency_field)
            sub = ", (SELECT StageName, CreatedDate FROM OpportunityHistories ORDER BY CreatedDate)" if self.history else ""
            yield from self._pull("Opportunity", ", ".join(fields) + sub, cursor, self._deal)
        elif kind == ObjectKind.ACCOUNTS:
            yield from self._pull("Account", "Id, Name, Industry, BillingCountry, OwnerId, ParentId, SystemModstamp",
                                  cursor, self._account)
        elif kind == ObjectKind.CONTACTS:
            yield from self._pull("Contact", "Id, FirstName, LastName, Email, Phone, Title, AccountId, SystemModstamp",
                                  cursor, self._contact)
        elif kind == ObjectKind.ACTIVITIES:
            cur = dict(cursor or {})
            specs = (
                ("Task", "Id, Subject, Status, ActivityDate, WhatId, WhoId, AccountId, OwnerId, TaskSubtype, "
                         "CallDurationInSeconds, CreatedDate, SystemModstamp"),
                ("Event", "Id, Subject, StartDateTime, DurationInMinutes, WhatId, WhoId, AccountId, OwnerId, "
                          "CreatedDate, SystemModstamp"),
            )
            for obj, flds in specs:
                convert: Callable[[Mapping[str, Any]], RemoteRecord] = partial(self._activity, obj)
                for page in self._pull(obj, flds, cur.get(obj), convert):
                    cur[obj] = dict(page.cursor)
                    yield Page(page.records, dict(cur))

    def _pull(self, obj: str, fields: str, cursor: Mapping[str, Any] | None,
              convert: Callable[[Mapping[str, Any]], RemoteRecord]) -> Iterator[Page]:
        cur = dict(cursor or {})
        ts = parse_sf_time(cur.get("ts"))
        seen = set(cur.get("ids", ()))
        nxt: str | None = cur.get("next")

        def more(locator: str) -> Callable[[], Any]:
            def fetch() -> Any:
                try:
                    return self._get(locator, what=f"query {obj} (next page)")
                except RemoteValidationError as e:
                    if e.vendor_code != "INVALID_QUERY_LOCATOR":
                        raise
                    return _EXPIRED
            return fetch

        def follow(body: Any) -> Callable[[], Any] | None:
            if not isinstance(body, dict) or body.get("done", True):
                return None
            locator = body.get("nextRecordsUrl")
            return more(locator) if locator else None

        while True:
            if nxt:
                first = more(nxt)
            else:
                where = "" if ts is None else f" WHERE SystemModstamp >= {_soql_time(ts)}"
                soql = f"SELECT {fields} FROM {obj}{where} ORDER BY SystemModstamp, Id"
                first = partial(self._get, f"{self.api}/query", {"q": soql}, what=f"query {obj}")
            # the next page is requested while this one is converted and handed on
            for body in read_ahead(first, follow, name=f"salesforce-{obj}"):
                if body is _EXPIRED:
                    break
                records = body.get("records", []) if isinstance(body, dict) else []
                done = bool(body.get("done", True)) if isinstance(body, dict) else True
                nxt = None if done else body.get("nextRecordsUrl")
                stamped = []
                for rec in records:
                    at = parse_sf_time(rec.get("SystemModstamp"))
                    if at is None:
                        raise RemoteUnavailable(f"Salesforce {obj} {rec.get('Id')} came without SystemModstamp")
                    stamped.append((at, str(rec["Id"]), rec))
                fresh = [rec for at, rid, rec in stamped if not (at == ts and rid in seen)]
                if stamped:
                    top = max(at for at, _, _ in stamped)
                    if ts is None or top > ts:
                        ts, seen = top, {rid for at, rid, _ in stamped if at == top}
                    else:
                        seen |= {rid for at, rid, _ in stamped if at == top}
                state: dict[str, Any] = {"ts": None if ts is None else ts.isoformat(), "ids": sorted(seen), "next": nxt}
                if fresh or stamped:
                    yield Page(tuple(convert(r) for r in fresh), state)
                if done:
                    return
            else:
                return  # the chain ended without a last page (an empty answer)
            nxt = None  # the locator expired: query again from the cursor's instant

    # --- converters --------------------------------------------------------------------------------
    def _deal(self, r: Mapping[str, Any]) -> RemoteDeal:
        hist = None
        if self.history:
            rows = (r.get("OpportunityHistories") or {}).get("records", [])
            hs: list[RemoteStageChange] = []
            for h in sorted(rows, key=lambda x: str(x.get("CreatedDate") or "")):
                at = parse_sf_time(h.get("CreatedDate"))
                st = h.get("StageName")
                if at is not None and st and (not hs or hs[-1].stage != st):
                    hs.append(RemoteStageChange(str(st), at))
            hist = tuple(hs)
        modified = parse_sf_time(r.get("SystemModstamp"))
        assert modified is not None
        cd = r.get("CloseDate")
        amount = r.get("Amount")
        return RemoteDeal(
            id=str(r["Id"]), modified_at=modified, name=str(r.get("Name") or ""), stage=r.get("StageName"),
            pipeline=PIPELINE_ID, amount=None if amount is None else Decimal(str(amount)),
            currency=r.get(self.currency_field) if self.currency_field else None,
            close_date=None if not cd else date.fromisoformat(str(cd)), owner=r.get("OwnerId"),
            account=r.get("AccountId"), created_at=parse_sf_time(r.get("CreatedDate")),
            local_id=r.get(self.ext) or None, history=hist,
        )

    def _account(self, r: Mapping[str, Any]) -> RemoteAccount:
        modified = parse_sf_time(r.get("SystemModstamp"))
        assert modified is not None
        return RemoteAccount(
            id=str(r["Id"]), modified_at=modified, name=str(r.get("Name") or ""), industry=r.get("Industry"),
            country=r.get("BillingCountry"), owner=r.get("OwnerId"), parent=r.get("ParentId"),
        )

    def _contact(self, r: Mapping[str, Any]) -> RemoteContact:
        modified = parse_sf_time(r.get("SystemModstamp"))
        assert modified is not None
        name = " ".join(str(x) for x in (r.get("FirstName"), r.get("LastName")) if x)
        return RemoteContact(
            id=str(r["Id"]), modified_at=modified, name=name, email=r.get("Email"), phone=r.get("Phone"),
            title=r.get("Title"), account=r.get("AccountId"),
        )

    def _activity(self, obj: str, r: Mapping[str, Any]) -> RemoteActivity:
        modified = parse_sf_time(r.get("SystemModstamp"))
        assert modified is not None
        what = r.get("WhatId")
        who = r.get("WhoId")
        deal = what if isinstance(what, str) and what.startswith("006") else None
        contact = who if isinstance(who, str) and who.startswith("003") else None
        if obj == "Task":
            sub = str(r.get("TaskSubtype") or "Task")
            kind = {"Call": ActivityKind.CALL, "Email": ActivityKind.EMAIL}.get(sub, ActivityKind.TASK)
            ad = r.get("ActivityDate")
            at = datetime.combine(date.fromisoformat(str(ad)), datetime.min.time(), UTC) if ad else (
                parse_sf_time(r.get("CreatedDate")) or modified)
            status = ActivityStatus.DONE if r.get("Status") == "Completed" else ActivityStatus.PLANNED
            secs = r.get("CallDurationInSeconds")
            dur = None if secs is None else int(Decimal(str(secs)) // 60)
        else:
            kind = ActivityKind.MEETING
            at = parse_sf_time(r.get("StartDateTime")) or modified
            status = ActivityStatus.DONE
            mins = r.get("DurationInMinutes")
            dur = None if mins is None else int(Decimal(str(mins)))
        return RemoteActivity(
            id=str(r["Id"]), modified_at=modified, kind=kind, at=at, subject=str(r.get("Subject") or "")[:500],
            status=status, deal=deal, account=r.get("AccountId"), contact=contact, owner=r.get("OwnerId"),
            duration_minutes=dur,
        )

    # --- push ------------------------------------------------------------------------------------
    def _fields(self, item: PushItem) -> dict[str, Any]:
        v = item.values
        out: dict[str, Any] = {"attributes": {"type": "Opportunity"}}
        if "name" in v:
            out["Name"] = v["name"]
        if "stage" in v:
            out["StageName"] = v["stage"]
        if "amount" in v:
            out["Amount"] = v["amount"]
        if "close_date" in v:
            cd = v["close_date"]
            out["CloseDate"] = None if cd is None else (cd.isoformat() if isinstance(cd, date) else str(cd))
        if "owner" in v and v["owner"] is not None:
            out["OwnerId"] = v["owner"]
        if self.currency_field and v.get("currency"):
            out[self.currency_field] = v["currency"]
        return out

    def _rows(self, items: Sequence[PushItem], body: Any) -> list[PushResult]:
        if not isinstance(body, list) or len(body) != len(items):
            raise AdapterError(f"Salesforce answered {len(body) if isinstance(body, list) else 'no'} rows "
                               f"for {len(items)} records")
        out = []
        for item, row in zip(items, body, strict=True):
            if row.get("success"):
                out.append(PushResult(item.local_id, True, remote_id=str(row.get("id") or item.remote_id),
                                      created=bool(row.get("created", False))))
            else:
                errs = row.get("errors") or [{}]
                e = errs[0]
                code = str(e.get("statusCode") or "ERROR")
                out.append(PushResult(item.local_id, False, code=code, message=str(e.get("message") or code),
                                      retriable=code in _RETRIABLE_ROWS, fields=tuple(e.get("fields") or ())))
        return out

    def push(self, items: Sequence[PushItem]) -> list[PushResult]:
        if len(items) > self.push_batch_size:
            raise ValueError(f"Salesforce takes at most {self.push_batch_size} records per collection")
        results: dict[str, PushResult] = {}
        creates = [i for i in items if i.remote_id is None]
        updates = [i for i in items if i.remote_id is not None]
        if creates:
            r = self.http.request("PATCH", f"{self.api}/composite/sobjects/Opportunity/{self.ext}", json_body={
                "allOrNone": False, "records": [{**self._fields(i), self.ext: i.local_id} for i in creates],
            }, what="upsert opportunities")
            results.update({p.local_id: p for p in self._rows(creates, r.body)})
        if updates:
            r = self.http.request("PATCH", f"{self.api}/composite/sobjects", json_body={
                "allOrNone": False, "records": [{**self._fields(i), "id": i.remote_id} for i in updates],
            }, what="update opportunities")
            results.update({p.local_id: p for p in self._rows(updates, r.body)})
        return [results[i.local_id] for i in items]


def _secret(v: Secret | str | None) -> Secret | None:
    if v is None or isinstance(v, Secret):
        return v
    return Secret(v)


def _factory(config: Mapping[str, Any], **options: Any) -> SalesforceAdapter:
    """Build the adapter from a connection's config (see :class:`~salesprocess.sync.Connection`)."""
    from salesprocess.sync.connections import parse_rate

    cfg = {**dict(config), **options}
    cfg.pop("app", None)
    kw: dict[str, Any] = {}
    for key in ("token", "base_url", "api_version", "refresh_token", "client_id", "client_secret", "login_url",
                "client", "transport", "page_size", "reserve", "retry", "timeout", "clock", "sleep", "seed",
                "external_id_field", "history", "currency_field", "connection"):
        if key in cfg:
            kw[key] = cfg.pop(key)
    if "rate_limit" in cfg:
        v = cfg.pop("rate_limit")
        kw["rate_limit"] = parse_rate(v) if isinstance(v, str) else (None if v is False else v)
    if "token" not in kw:
        raise AuthError("the salesforce adapter needs a token (name its environment variable with token_env)")
    if "base_url" not in kw:
        raise AdapterError("the salesforce adapter needs base_url: the org's instance URL")
    if cfg:
        raise AdapterError(f"unknown salesforce adapter option(s): {', '.join(sorted(cfg))}")
    return SalesforceAdapter(**kw)


@hookimpl
def salesprocess_register_adapters(register: Callable[..., None]) -> None:
    register("crm", "salesforce", _factory, "Salesforce REST (Opportunity, Account, Contact, Task, Event)")
