"""HubSpot CRM adapter (CRM v3 REST API over httpx).

Pull
    A first pull lists each object type with ``GET /crm/v3/objects/{type}`` (100 per page, deals
    with ``propertiesWithHistory=dealstage`` and their company and contact associations), after
    noting the newest modification time (the *mark*). Later pulls, and the end of the first one,
    use the search API: ``hs_lastmodifieddate GTE cursor``, ascending. Each page re-queries from
    the newest timestamp seen so far, skipping the ids already seen at exactly that instant, so
    records that share a timestamp across a page boundary are neither lost nor doubled, records
    changed while paging cannot shift others out of view, and the 10,000-result cap of one search
    query is never reached. Changed deals are read back in one batch with their stage history and
    associations.

Push
    New deals go out through ``batch/upsert`` keyed by a unique property holding our deal id
    (``salesprocess_id`` by default: create it in HubSpot as a unique single-line text property),
    so a retried create never duplicates; known deals through ``batch/update``. 207 responses are
    read record by record.

Limits
    A client-side limiter keeps to 100 requests per 10 seconds (set ``rate_limit`` for higher
    tiers) and to 5 searches per second, each call counted from when its answer came back; 429 responses are retried after ``Retry-After`` or the
    ``X-HubSpot-RateLimit-Interval-Milliseconds`` window; a ``DAILY`` policy stops the sync.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
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
from salesprocess.sync.timing import RateLimiter, RetryPolicy, Secret

from ._http import HttpClient, Response, VendorPolicy, Verdict
from ._pacing import paced
from ._readahead import read_ahead

__all__ = ["ENGAGEMENT_TYPES", "HubSpotAdapter", "HubSpotPolicy"]

ENGAGEMENT_TYPES = ("calls", "meetings", "tasks", "notes", "emails")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_SEARCH_LIMIT = 200


def parse_time(v: str | None) -> datetime | None:
    """A HubSpot timestamp (ISO 8601 or epoch milliseconds) as an aware datetime."""
    if v is None or v == "":
        return None
    if v.isdigit():
        return _EPOCH + timedelta(milliseconds=int(v))
    d = datetime.fromisoformat(v.replace("Z", "+00:00"))
    return d if d.tzinfo is not None else d.replace(tzinfo=UTC)


def _change_time(change: tuple[datetime | None, str]) -> datetime:
    return change[0] or _EPOCH


def _next_after(body: Mapping[str, Any]) -> str | None:
    """The cursor of the next list page, or ``None`` on the last one."""
    nxt = ((body.get("paging") or {}).get("next") or {}).get("after")
    return str(nxt) if nxt else None


def to_ms(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(milliseconds=1)


class HubSpotPolicy(VendorPolicy):
    """How HubSpot answers: error bodies with ``category`` and ``correlationId``, 429 with
    ``policyName``, rate-limit headers."""

    name = "hubspot"

    def remaining(self, r: Response) -> int | None:
        v = r.headers.get("x-hubspot-ratelimit-remaining")
        return int(v) if v is not None and v.isdigit() else None

    def judge(self, r: Response, what: str) -> Verdict:
        if 200 <= r.status < 300:
            return Verdict("ok")
        body = r.body if isinstance(r.body, dict) else {}
        cid = body.get("correlationId") or r.headers.get("x-hubspot-correlation-id")
        cat = body.get("category") or body.get("errorType") or f"HTTP_{r.status}"
        msg = f"{what}: HubSpot answered {r.status} {cat}: {body.get('message') or 'no message'}"
        if r.status == 401:
            return Verdict("refresh", AuthError(msg, vendor_code=cat, request_id=cid, status=401))
        if r.status == 403:
            return Verdict("raise", AuthError(msg, vendor_code=cat, request_id=cid, status=403))
        if r.status == 429:
            policy = body.get("policyName")
            if policy == "DAILY":
                return Verdict("raise", RateLimited(
                    msg + " (the daily quota is spent; run the sync again tomorrow)", vendor_code="DAILY",
                    request_id=cid, policy="DAILY", retriable=False, status=429))
            wait: float | None = None
            if "retry-after" in r.headers:
                try:
                    wait = float(r.headers["retry-after"])
                except ValueError:
                    wait = None
            elif "x-hubspot-ratelimit-interval-milliseconds" in r.headers:
                try:
                    wait = int(r.headers["x-hubspot-ratelimit-interval-milliseconds"]) / 1000
                except ValueError:
                    wait = None
            return Verdict("retry", RateLimited(msg, vendor_code=policy or cat, request_id=cid, policy=policy,
                                                retry_after=wait, status=429), wait, True)
        if r.status >= 500:
            return Verdict("retry", RemoteUnavailable(msg, vendor_code=cat, request_id=cid, status=r.status))
        fields = [str(e["in"]) for e in body.get("errors", []) if isinstance(e, dict) and e.get("in")]
        return Verdict("raise", RemoteValidationError(msg, vendor_code=cat, request_id=cid, fields=fields, status=r.status))


def _dec(v: Any) -> Decimal | None:
    if v is None or v == "":
        return None
    try:
        return Decimal(str(v))
    except InvalidOperation:
        return None


class HubSpotAdapter:
    """The HubSpot :class:`~salesprocess.sync.CrmAdapter`.

    :param base_url: ``https://api.hubapi.com``, or a fake's URL.
    :param token: a private-app token or OAuth access token (a :class:`Secret`, or a str wrapped
        at once).
    :param refresh_token: with ``client_id`` and ``client_secret``: refresh an OAuth token when
        HubSpot reports it expired.
    :param client: a shared ``httpx.Client``; or ``transport`` for a client the adapter owns.
    :param page_size: records per list page (HubSpot allows 100).
    :param rate_limit: ``(calls, seconds)`` for the client-side limiter (default 100 per 10 s,
        HubSpot's lowest tier); ``None`` turns it off.
    :param search_rate_limit: the search endpoints' limit (default 5 per second).
    :param id_property: the unique deal property holding our deal id, for upserts.
    :param history: fetch deal stage history.
    """

    name = "hubspot"
    capabilities = frozenset({
        AdapterCapability.PUSH, AdapterCapability.STAGE_HISTORY, AdapterCapability.PIPELINES,
        AdapterCapability.ACCOUNTS, AdapterCapability.CONTACTS, AdapterCapability.ACTIVITIES,
        AdapterCapability.RATE_LIMITS, AdapterCapability.CREDENTIALS,
    })
    push_batch_size = 100

    def __init__(
        self,
        *,
        token: Secret | str,
        base_url: str = "https://api.hubapi.com",
        refresh_token: Secret | str | None = None,
        client_id: str | None = None,
        client_secret: Secret | str | None = None,
        client: Any = None,
        transport: Any = None,
        page_size: int = 100,
        rate_limit: tuple[int, float] | None = (100, 10.0),
        search_rate_limit: tuple[int, float] | None = (5, 1.0),
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        seed: int | None = None,
        id_property: str = "salesprocess_id",
        history: bool = True,
        engagements: Sequence[str] = ENGAGEMENT_TYPES,
        connection: str | None = None,
    ) -> None:
        if not 1 <= page_size <= 100:
            raise ValueError(f"page_size must be between 1 and 100 (HubSpot's list limit), got {page_size}")
        self._refresh_token = _secret(refresh_token)
        self._client_secret = _secret(client_secret)
        self._client_id = client_id
        can_refresh = self._refresh_token is not None and client_id is not None and self._client_secret is not None
        self.http = HttpClient(
            base_url=base_url, vendor=HubSpotPolicy(), token=_secret(token),
            refresher=self._refresh if can_refresh else None, client=client, transport=transport,
            timeout=timeout, retry=retry, rate_limit=rate_limit, clock=clock, sleep=sleep, seed=seed,
        )
        # each call counts from its answer (see _pacing): the limit is used to the full without
        # an allowance for jitter, and the server never sees one call too many in a window
        self.http.limiter = paced(self.http.limiter)
        self.search_limiter = paced(
            None if search_rate_limit is None else RateLimiter(*search_rate_limit, clock=clock, sleep=sleep))
        self.page_size = page_size
        self.id_property = id_property
        self.history = history
        self.engagements = tuple(engagements)
        self.connection = connection
        self.deal_properties = (
            "dealname", "dealstage", "pipeline", "amount", "deal_currency_code", "closedate",
            "hubspot_owner_id", "createdate", "hs_lastmodifieddate", id_property,
        )

    def __repr__(self) -> str:
        return f"HubSpotAdapter({self.http.base_url!r})"

    def close(self) -> None:
        self.http.close()

    def _refresh(self, http: HttpClient) -> tuple[Secret, float | None]:
        assert self._refresh_token is not None
        assert self._client_secret is not None
        try:
            r = http.request("POST", "/oauth/v1/token", form={
                "grant_type": "refresh_token", "client_id": self._client_id or "",
                "client_secret": self._client_secret.reveal(), "refresh_token": self._refresh_token.reveal(),
            }, auth=False, limiter=False, what="token refresh")
        except RemoteValidationError as e:
            raise AuthError("HubSpot refused the refresh token; authorise the app again",
                            vendor_code=e.vendor_code, request_id=e.request_id) from None
        body = r.body if isinstance(r.body, dict) else {}
        tok = body.get("access_token")
        if not isinstance(tok, str) or not tok:
            raise AuthError("HubSpot's token endpoint returned no access token")
        exp = body.get("expires_in")
        return Secret(tok), float(exp) if isinstance(exp, int | Decimal) else None

    # --- pipelines -------------------------------------------------------------------------------
    def pipelines(self) -> list[RemotePipeline]:
        r = self.http.request("GET", "/crm/v3/pipelines/deals", what="read deal pipelines")
        out = []
        for p in (r.body or {}).get("results", []):
            if p.get("archived"):
                continue
            stages = []
            for s in p.get("stages", []):
                if s.get("archived"):
                    continue
                md = s.get("metadata") or {}
                prob = _dec(md.get("probability"))
                closed = str(md.get("isClosed", "false")).lower() == "true"
                stages.append(RemoteStage(
                    id=str(s["id"]), label=str(s.get("label") or s["id"]), order=int(s.get("displayOrder", 0)),
                    probability=prob, closed=closed, won=closed and prob is not None and prob >= 1,
                ))
            out.append(RemotePipeline(str(p["id"]), str(p.get("label") or p["id"]), tuple(stages)))
        return out

    # --- pull ------------------------------------------------------------------------------------
    def pull(self, kind: str, cursor: Mapping[str, Any] | None) -> Iterator[Page]:
        if kind == ObjectKind.DEALS:
            yield from self._pull_type("deals", cursor, self._deal)
        elif kind == ObjectKind.ACCOUNTS:
            yield from self._pull_type("companies", cursor, self._company)
        elif kind == ObjectKind.CONTACTS:
            yield from self._pull_type("contacts", cursor, self._contact)
        elif kind == ObjectKind.ACTIVITIES:
            cur = dict(cursor or {})
            for t in self.engagements:
                convert: Callable[[Mapping[str, Any]], RemoteRecord] = partial(self._activity, t)
                for page in self._pull_type(t, cur.get(t), convert):
                    cur[t] = dict(page.cursor)
                    yield Page(page.records, dict(cur))

    def _modprop(self, t: str) -> str:
        return "lastmodifieddate" if t == "contacts" else "hs_lastmodifieddate"

    def _props(self, t: str) -> tuple[str, ...]:
        if t == "deals":
            return self.deal_properties
        if t == "companies":
            return ("name", "industry", "country", "hubspot_owner_id", "hs_parent_company_id", "hs_lastmodifieddate")
        if t == "contacts":
            return ("firstname", "lastname", "email", "phone", "jobtitle", "associatedcompanyid", "lastmodifieddate")
        return ("hs_timestamp", "hs_lastmodifieddate", "hubspot_owner_id", "hs_call_title", "hs_call_status",
                "hs_call_duration", "hs_meeting_title", "hs_meeting_outcome", "hs_task_subject", "hs_task_status",
                "hs_note_body", "hs_email_subject", "hs_email_status")

    def _assoc_types(self, t: str) -> tuple[str, ...]:
        if t == "deals":
            return ("companies", "contacts")
        if t in ENGAGEMENT_TYPES:
            return ("deals", "companies", "contacts")
        return ()

    def _search(self, t: str, body: Mapping[str, Any]) -> tuple[list[dict[str, Any]], bool]:
        """One search page and whether the query has more."""
        r = self.http.request("POST", f"/crm/v3/objects/{t}/search", json_body=body,
                              limiter=self.search_limiter, what=f"search {t}")
        b = r.body or {}
        return list(b.get("results", [])), bool((b.get("paging") or {}).get("next"))

    def _modified(self, t: str, o: Mapping[str, Any]) -> datetime:
        v = parse_time((o.get("properties") or {}).get(self._modprop(t))) or parse_time(o.get("updatedAt"))
        if v is None:
            raise RemoteUnavailable(f"HubSpot {t} {o.get('id')} came without a modification time")
        return v

    def _pull_type(self, t: str, cursor: Mapping[str, Any] | None,
                   convert: Callable[[Mapping[str, Any]], RemoteRecord]) -> Iterator[Page]:
        cur = dict(cursor or {})
        mod = self._modprop(t)
        if cur.get("phase") != "search":
            mark = cur.get("mark")
            if mark is None:
                top, _ = self._search(t, {"sorts": [{"propertyName": mod, "direction": "DESCENDING"}],
                                       "properties": [mod], "limit": 1, "after": "0"})
                mark = {"ts": to_ms(self._modified(t, top[0])), "ids": [str(top[0]["id"])]} if top else {"ts": 0, "ids": []}
            after = cur.get("after")
            params: dict[str, Any] = {"limit": self.page_size, "properties": ",".join(self._props(t)), "archived": "false"}
            if t == "deals" and self.history:
                params["propertiesWithHistory"] = "dealstage"
            if self._assoc_types(t):
                params["associations"] = ",".join(self._assoc_types(t))

            def page_after(after: str | None) -> Callable[[], dict[str, Any]]:
                def fetch() -> dict[str, Any]:
                    p = {**params, "after": after} if after else params
                    body = self.http.request("GET", f"/crm/v3/objects/{t}", params=p, what=f"list {t}").body
                    return body if isinstance(body, dict) else {}
                return fetch

            def follow(body: dict[str, Any]) -> Callable[[], dict[str, Any]] | None:
                nxt = _next_after(body)
                return page_after(nxt) if nxt else None

            # the next page is requested while this one is converted and handed on
            for body in read_ahead(page_after(after), follow, name=f"hubspot-{t}"):
                records = [convert(o) for o in body.get("results", [])]
                nxt = _next_after(body)
                if nxt:
                    cur = {"phase": "list", "after": nxt, "mark": mark}
                else:
                    cur = {"phase": "search", "ts": mark["ts"], "ids": list(mark["ids"])}
                yield Page(tuple(records), cur)
        ts = int(cur.get("ts", 0))
        seen = set(cur.get("ids", ()))
        drain: str | None = cur.get("drain")
        strict = bool(cur.get("strict"))
        props = list(self._props(t))
        while True:
            if drain is None and not strict and len(seen) + self.page_size > _MAX_SEARCH_LIMIT:
                drain = "0"  # more records share one instant than a search page holds
            if drain is not None:
                # drain the bucket of records modified at exactly `ts`, by id
                raw, more = self._search(t, {
                    "filterGroups": [{"filters": [
                        {"propertyName": mod, "operator": "EQ", "value": str(ts)},
                        {"propertyName": "hs_object_id", "operator": "GT", "value": drain},
                    ]}],
                    "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
                    "properties": props, "limit": self.page_size, "after": "0",
                })
                fresh = [o for o in raw if str(o["id"]) not in seen]
                if raw:
                    drain = str(raw[-1]["id"])
                if more:
                    state: dict[str, Any] = {"phase": "search", "ts": ts, "ids": sorted(seen), "drain": drain}
                else:  # the bucket is done: continue strictly after it
                    state = {"phase": "search", "ts": ts, "ids": [], "strict": True}
                    drain, strict, seen = None, True, set()
                yield Page(tuple(convert(o) for o in (self._enrich(t, fresh) if fresh else [])), state)
                continue
            raw, more = self._search(t, {
                "filterGroups": [{"filters": [
                    {"propertyName": mod, "operator": "GT" if strict else "GTE", "value": str(ts)}]}],
                "sorts": [{"propertyName": mod, "direction": "ASCENDING"}],
                "properties": props, "limit": self.page_size + len(seen), "after": "0",
            })
            if not raw:
                return
            stamped = [(to_ms(self._modified(t, o)), str(o["id"]), o) for o in raw]
            fresh = [o for ms, oid, o in stamped if not (ms == ts and oid in seen)]
            new_ts = max(ms for ms, _, _ in stamped)
            if new_ts == ts:
                seen |= {oid for ms, oid, _ in stamped if ms == ts}
            else:
                seen = {oid for ms, oid, _ in stamped if ms == new_ts}
                strict = False
            ts = new_ts
            if fresh:
                yield Page(tuple(convert(o) for o in self._enrich(t, fresh)),
                           {"phase": "search", "ts": ts, "ids": sorted(seen)})
            if not more:
                return
            if not fresh:
                raise AdapterError(
                    f"HubSpot search for {t} returned a page of records already seen; "
                    f"{len(seen)} records share the modification time {ts}"
                )

    def _enrich(self, t: str, objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Read changed records back with their stage history and associations (search returns
        neither), in batches of at most 100."""
        out: list[dict[str, Any]] = []
        for i in range(0, len(objs), 100):
            out.extend(self._enrich_batch(t, objs[i:i + 100]))
        return out

    def _enrich_batch(self, t: str, objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        ids = [str(o["id"]) for o in objs]
        if t == "deals" and self.history:
            r = self.http.request("POST", f"/crm/v3/objects/{t}/batch/read", json_body={
                "inputs": [{"id": i} for i in ids], "properties": list(self._props(t)),
                "propertiesWithHistory": ["dealstage"],
            }, what=f"read {t} history")
            by_id = {str(o["id"]): o for o in (r.body or {}).get("results", [])}
            objs = [by_id.get(str(o["id"]), o) for o in objs]
        for to in self._assoc_types(t):
            r = self.http.request("POST", f"/crm/v4/associations/{t}/{to}/batch/read",
                                  json_body={"inputs": [{"id": i} for i in ids]}, what=f"read {t} associations")
            links = {str(x["from"]["id"]): [str(y["toObjectId"]) for y in x.get("to", [])]
                     for x in (r.body or {}).get("results", [])}
            for o in objs:
                ass = o.setdefault("associations", {})
                got = links.get(str(o["id"]), [])
                if got:
                    ass[to] = {"results": [{"id": i} for i in got]}
        return objs

    # --- converters --------------------------------------------------------------------------------
    @staticmethod
    def _assoc(o: Mapping[str, Any], to: str) -> list[str]:
        a = (o.get("associations") or {}).get(to) or {}
        return [str(x["id"]) for x in a.get("results", [])]

    def _deal(self, o: Mapping[str, Any]) -> RemoteDeal:
        p = o.get("properties") or {}
        hist_raw = (o.get("propertiesWithHistory") or {}).get("dealstage")
        history = None
        if hist_raw is not None:
            # HubSpot lists the versions newest first: read them oldest first, so that the sort
            # (stable) keeps changes made in the same millisecond in the order they happened
            changes = sorted(
                ((parse_time(h.get("timestamp")), str(h["value"])) for h in reversed(hist_raw) if h.get("value")),
                key=_change_time,
            )
            hs: list[RemoteStageChange] = []
            for at, v in changes:
                if at is not None and (not hs or hs[-1].stage != v):
                    hs.append(RemoteStageChange(v, at))
            history = tuple(hs)
        cd = parse_time(p.get("closedate"))
        comps = self._assoc(o, "companies")
        return RemoteDeal(
            id=str(o["id"]), modified_at=self._modified("deals", o), name=p.get("dealname") or "",
            stage=p.get("dealstage"), pipeline=p.get("pipeline"), amount=_dec(p.get("amount")),
            currency=p.get("deal_currency_code") or None, close_date=None if cd is None else cd.astimezone(UTC).date(),
            owner=p.get("hubspot_owner_id") or None, account=comps[0] if comps else None,
            contacts=tuple(self._assoc(o, "contacts")),
            created_at=parse_time(p.get("createdate")) or parse_time(o.get("createdAt")),
            local_id=p.get(self.id_property) or None, history=history, archived=bool(o.get("archived")),
        )

    def _company(self, o: Mapping[str, Any]) -> RemoteAccount:
        p = o.get("properties") or {}
        return RemoteAccount(
            id=str(o["id"]), modified_at=self._modified("companies", o), name=p.get("name") or "",
            industry=p.get("industry") or None, country=p.get("country") or None,
            owner=p.get("hubspot_owner_id") or None, parent=p.get("hs_parent_company_id") or None,
        )

    def _contact(self, o: Mapping[str, Any]) -> RemoteContact:
        p = o.get("properties") or {}
        name = " ".join(x for x in (p.get("firstname"), p.get("lastname")) if x) or (p.get("email") or "")
        return RemoteContact(
            id=str(o["id"]), modified_at=self._modified("contacts", o), name=name, email=p.get("email") or None,
            phone=p.get("phone") or None, title=p.get("jobtitle") or None,
            account=p.get("associatedcompanyid") or None,
        )

    def _activity(self, t: str, o: Mapping[str, Any]) -> RemoteActivity:
        p = o.get("properties") or {}
        kind = {"calls": ActivityKind.CALL, "meetings": ActivityKind.MEETING, "tasks": ActivityKind.TASK,
                "notes": ActivityKind.NOTE, "emails": ActivityKind.EMAIL}[t]
        subject = p.get({"calls": "hs_call_title", "meetings": "hs_meeting_title", "tasks": "hs_task_subject",
                         "notes": "hs_note_body", "emails": "hs_email_subject"}[t]) or ""
        status = ActivityStatus.DONE
        if t == "tasks" and (p.get("hs_task_status") or "") != "COMPLETED":
            status = ActivityStatus.PLANNED
        if t == "calls" and p.get("hs_call_status") in ("SCHEDULED", "QUEUED"):
            status = ActivityStatus.PLANNED
        if t == "meetings" and p.get("hs_meeting_outcome") == "CANCELED":
            status = ActivityStatus.CANCELLED
        dur = _dec(p.get("hs_call_duration"))
        deals, comps, contacts = self._assoc(o, "deals"), self._assoc(o, "companies"), self._assoc(o, "contacts")
        modified = self._modified(t, o)
        return RemoteActivity(
            id=str(o["id"]), modified_at=modified, kind=kind,
            at=parse_time(p.get("hs_timestamp")) or modified, subject=subject[:500], status=status,
            deal=deals[0] if deals else None, account=comps[0] if comps else None,
            contact=contacts[0] if contacts else None, owner=p.get("hubspot_owner_id") or None,
            duration_minutes=None if dur is None else int(dur // 60000),
        )

    # --- push ------------------------------------------------------------------------------------
    def _properties(self, item: PushItem) -> dict[str, str]:
        v = item.values
        out: dict[str, str] = {}
        if "name" in v:
            out["dealname"] = str(v["name"] or "")
        if "stage" in v:
            out["dealstage"] = str(v["stage"] or "")
        if "amount" in v:
            out["amount"] = "" if v["amount"] is None else str(v["amount"])
        if v.get("currency"):
            out["deal_currency_code"] = str(v["currency"])
        if "close_date" in v:
            cd = v["close_date"]
            out["closedate"] = "" if cd is None else (cd.isoformat() if isinstance(cd, date) else str(cd))
        if "owner" in v:
            out["hubspot_owner_id"] = "" if v["owner"] is None else str(v["owner"])
        if item.remote_id is None and item.pipeline:
            out["pipeline"] = item.pipeline
        return out

    def _read_results(self, r: Response, key: Callable[[Mapping[str, Any]], str | None],
                      by_key: Mapping[str, PushItem], created: bool | None) -> dict[str, PushResult]:
        out: dict[str, PushResult] = {}
        body = r.body or {}
        for res in body.get("results", []):
            k = key(res)
            item = by_key.get(k or "")
            if item is None:
                continue
            out[item.local_id] = PushResult(item.local_id, True, remote_id=str(res["id"]),
                                            created=bool(res.get("new", created)))
        for err in body.get("errors", []):
            ids = [str(x) for x in ((err.get("context") or {}).get("ids") or [])]
            cat = err.get("category") or "ERROR"
            details = err.get("errors") or []
            fields = tuple(str(d["in"]) for d in details if isinstance(d, dict) and d.get("in"))
            for k in ids:
                item = by_key.get(k)
                if item is not None and item.local_id not in out:
                    out[item.local_id] = PushResult(
                        item.local_id, False, code=cat, message=str(err.get("message") or cat),
                        retriable=cat not in ("VALIDATION_ERROR", "OBJECT_NOT_FOUND", "CONFLICT"), fields=fields)
        return out

    def push(self, items: Sequence[PushItem]) -> list[PushResult]:
        if len(items) > self.push_batch_size:
            raise ValueError(f"HubSpot takes at most {self.push_batch_size} records per batch")
        results: dict[str, PushResult] = {}
        creates = [i for i in items if i.remote_id is None]
        updates = [i for i in items if i.remote_id is not None]
        if creates:
            r = self.http.request("POST", "/crm/v3/objects/deals/batch/upsert", json_body={"inputs": [
                {"id": i.local_id, "idProperty": self.id_property, "properties": self._properties(i)} for i in creates
            ]}, what="upsert deals")
            idp = self.id_property
            results.update(self._read_results(
                r, lambda res: (res.get("properties") or {}).get(idp), {i.local_id: i for i in creates}, True))
        if updates:
            r = self.http.request("POST", "/crm/v3/objects/deals/batch/update", json_body={"inputs": [
                {"id": i.remote_id, "properties": self._properties(i)} for i in updates
            ]}, what="update deals")
            results.update(self._read_results(
                r, lambda res: str(res.get("id")), {str(i.remote_id): i for i in updates}, False))
        return [
            results.get(i.local_id) or PushResult(
                i.local_id, False, code="MISSING", message="HubSpot's answer did not mention this record",
                retriable=True)
            for i in items
        ]


def _secret(v: Secret | str | None) -> Secret | None:
    if v is None or isinstance(v, Secret):
        return v
    return Secret(v)


def _factory(config: Mapping[str, Any], **options: Any) -> HubSpotAdapter:
    """Build the adapter from a connection's config (see :class:`~salesprocess.sync.Connection`)."""
    from salesprocess.sync.connections import parse_rate

    cfg = {**dict(config), **options}
    cfg.pop("app", None)
    kw: dict[str, Any] = {}
    for key in ("token", "base_url", "refresh_token", "client_id", "client_secret", "client", "transport",
                "page_size", "retry", "timeout", "clock", "sleep", "seed", "id_property", "history",
                "connection"):
        if key in cfg:
            kw[key] = cfg.pop(key)
    for key in ("rate_limit", "search_rate_limit"):
        if key in cfg:
            v = cfg.pop(key)
            kw[key] = parse_rate(v) if isinstance(v, str) else (None if v is False else v)
    if "engagements" in cfg:
        kw["engagements"] = tuple(cfg.pop("engagements"))
    if "token" not in kw:
        raise AuthError("the hubspot adapter needs a token (name its environment variable with token_env)")
    if cfg:
        raise AdapterError(f"unknown hubspot adapter option(s): {', '.join(sorted(cfg))}")
    return HubSpotAdapter(**kw)


@hookimpl
def salesprocess_register_adapters(register: Callable[..., None]) -> None:
    register("crm", "hubspot", _factory, "HubSpot CRM v3 (deals, companies, contacts, engagements)")
