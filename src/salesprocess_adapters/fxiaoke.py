"""纷享销客 (Fxiaoke / ShareCRM) adapter (OpenAPI over httpx).

Auth
    ``POST /cgi/corpAccessToken/get/V2`` with the app's ``appId``, ``appSecret`` and the tenant's
    ``permanentCode`` gives a ``corpAccessToken`` (about two hours) and the ``corpId``. Calls carry
    them in the JSON body with ``currentOpenUserId`` (``auth="body"``, the long-documented form) or
    as ``authorization: Bearer``, ``x-fs-ea`` and ``x-fs-userid`` headers with a fresh
    ``thirdTraceId`` (``auth="headers"``). The token is fetched again ahead of its expiry and
    once when Fxiaoke answers ``errorCode`` 20016.

Errors
    Fxiaoke answers HTTP 200 whatever happened; the ``errorCode`` in the body says what. Throttling
    (14001, 30004) and server trouble (-1, 50009, HTTP 5xx) are retried with backoff; a spent daily
    quota (30002) stops the sync; refused credentials are :class:`~salesprocess.errors.AuthError`;
    anything else refuses the record (:class:`~salesprocess.errors.RemoteValidationError`). The
    codes are adapter options, since the published code table is not complete.

Pull
    商机2.0 (``NewOpportunityObj``) through ``/cgi/crm/v2/data/query``:
    ``last_modified_time GTE cursor``, ordered by ``last_modified_time`` then ``_id``, paged by
    ``offset``. Before the offset would pass Fxiaoke's cap (10,000) the adapter starts a new
    query from the newest time seen, skipping the ids it already has at that instant; more
    records at one instant than a query reaches are drained by ``_id``. A record listed again
    with a newer time (changed while the listing ran) makes the adapter list again from its old
    time, so offsets shifted by the change lose nothing. Times and dates are epoch milliseconds
    (dates at midnight in ``timezone``); money and other numbers come as strings and are read as
    exact ``Decimal``. ``AccountObj`` and ``ContactObj`` come the same way.

Stages
    Sales processes (销售流程, ``sales_process_id``) are the pipelines; their stages are the
    ``sales_stage`` options the object describe lists for each process. Stage ids are the labels
    (初步接洽 ...) by default (``stage_key="label"``), translated to option values on push;
    won and lost stages are recognised by label (``won_labels``/``lost_labels``). Fxiaoke
    publishes no stage history: moves are the ones seen between pulls.

Push
    One record per call (``/data/create``, ``/data/update``). Fxiaoke offers no upsert, so our
    deal id goes into a custom field (``salesprocess_id__c``); new deals are first looked up by it
    and a create whose answer was lost is looked up again before it is sent a second time, so a
    retried create never duplicates. Each interface is limited client-side to 100 calls in 20
    seconds.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

import attrs

from salesprocess.errors import (
    AdapterError,
    AuthError,
    RateLimited,
    RemoteUnavailable,
    RemoteValidationError,
)
from salesprocess.hookspecs import hookimpl
from salesprocess.sync.adapter import (
    AdapterCapability,
    ObjectKind,
    Page,
    PushItem,
    PushResult,
    RemoteAccount,
    RemoteContact,
    RemoteDeal,
    RemotePipeline,
    RemoteRecord,
    RemoteStage,
)
from salesprocess.sync.timing import RateLimiter, RetryPolicy, Secret

from ._http import HttpClient, Response, VendorPolicy, Verdict, require_httpx

__all__ = ["FxiaokeAdapter", "FxiaokePolicy", "from_ms", "to_ms"]

log = logging.getLogger("salesprocess.adapters.fxiaoke")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TOKEN_PATH = "/cgi/corpAccessToken/get/V2"
QUERY_PATH = "/cgi/crm/v2/data/query"
CREATE_PATH = "/cgi/crm/v2/data/create"
UPDATE_PATH = "/cgi/crm/v2/data/update"
DESCRIBE_PATH = "/cgi/crm/v2/object/describe"


def to_ms(at: datetime) -> int:
    """An aware datetime as epoch milliseconds."""
    return (at - _EPOCH) // timedelta(milliseconds=1)


def from_ms(v: Any) -> datetime | None:
    """Epoch milliseconds (a number or a numeric string) as an aware UTC datetime."""
    if v is None or v == "":
        return None
    try:
        ms = int(Decimal(str(v)))
    except InvalidOperation:
        return None
    return _EPOCH + timedelta(milliseconds=ms)


def _dec(v: Any) -> Decimal | None:
    """Fxiaoke numbers (usually strings) as exact Decimals; never through float."""
    if v is None or v == "" or isinstance(v, bool):
        return None
    if isinstance(v, float):
        raise AdapterError(f"refusing a binary float amount {v!r}")
    try:
        d = Decimal(str(v).replace(",", ""))
    except InvalidOperation:
        return None
    return d if d.is_finite() else None


def _secret(v: Secret | str | None) -> Secret | None:
    if v is None or isinstance(v, Secret):
        return v
    return Secret(v)


def _first(v: Any) -> str | None:
    if isinstance(v, list):
        v = v[0] if v else None
    return None if v in (None, "") else str(v)


class FxiaokePolicy(VendorPolicy):
    """How Fxiaoke answers: HTTP 200 with ``{errorCode, errorMessage, traceId}``; the codes that
    mean an expired token, throttling, server trouble or a spent quota are configurable."""

    name = "fxiaoke"

    def __init__(
        self, *, expired: Sequence[int] = (20016, 20005, 11014), throttled: Sequence[int] = (14001, 30004),
        busy: Sequence[int] = (-1, -2, 50009), quota: Sequence[int] = (30002, 30003),
        auth: Sequence[int] = (20006, 20015, 20017, 20020, 20021, 20022, 11013, 15003, 10013),
    ) -> None:
        self.expired = frozenset(int(c) for c in expired)
        self.throttled_codes = frozenset(int(c) for c in throttled)
        self.busy = frozenset(int(c) for c in busy)
        self.quota = frozenset(int(c) for c in quota)
        self.auth = frozenset(int(c) for c in auth)

    def auth_headers(self, token: Secret) -> dict[str, str]:
        return {}  # the adapter places credentials itself (body or headers)

    def judge(self, r: Response, what: str) -> Verdict:
        if r.status == 429:
            return Verdict("retry", RateLimited(f"{what}: Fxiaoke answered HTTP 429", status=429), None, True)
        if r.status >= 500:
            return Verdict("retry", RemoteUnavailable(f"{what}: Fxiaoke answered HTTP {r.status}", status=r.status))
        if r.status != 200:
            return Verdict("raise", RemoteValidationError(f"{what}: Fxiaoke answered HTTP {r.status}", status=r.status))
        body = r.body if isinstance(r.body, dict) else None
        if body is None or "errorCode" not in body:
            return Verdict("retry", RemoteUnavailable(f"{what}: Fxiaoke's answer has no errorCode", status=200))
        try:
            code = int(body["errorCode"])
        except (TypeError, ValueError):
            return Verdict("retry", RemoteUnavailable(f"{what}: Fxiaoke's errorCode {body['errorCode']!r} is not a number"))
        if code == 0:
            return Verdict("ok")
        trace = body.get("traceId")
        text = body.get("errorMessage") or body.get("errorDescription") or "no message"
        msg = f"{what}: Fxiaoke answered errorCode {code}: {text}"
        vc = str(code)
        if code in self.expired:
            return Verdict("raise", AuthError(msg, vendor_code=vc, request_id=trace))
        if code in self.throttled_codes:
            return Verdict("retry", RateLimited(msg, vendor_code=vc, request_id=trace), None, True)
        if code in self.quota:
            return Verdict("raise", RateLimited(msg + " (the call quota is spent)", vendor_code=vc, request_id=trace,
                                                policy="daily", retriable=False))
        if code in self.busy:
            return Verdict("retry", RemoteUnavailable(msg, vendor_code=vc, request_id=trace, status=200))
        if code in self.auth:
            return Verdict("raise", AuthError(msg, vendor_code=vc, request_id=trace))
        return Verdict("raise", RemoteValidationError(msg, vendor_code=vc, request_id=trace, status=200))


class FxiaokeAdapter:
    """The Fxiaoke :class:`~salesprocess.sync.CrmAdapter`.

    :param base_url: the tenant's cloud (``https://open.fxiaoke.com``; other clouds have their
        own ``open-...`` host), or a fake's URL.
    :param app_id: with ``app_secret`` and ``permanent_code``: fetch (and refetch) the
        ``corpAccessToken``. ``token`` gives one to start with (it cannot be renewed without
        the other three).
    :param corp_id: the tenant (``FSCID_...``); learnt from the token answer when not given.
    :param user_id: the acting user (``currentOpenUserId``, ``FSUID_...``).
    :param auth: ``"body"`` (credentials in the JSON body) or ``"headers"``.
    :param page_size: records per query (100 by default).
    :param rate_limit: ``(calls, seconds)`` per interface (100 per 20 s); ``token_rate_limit``
        for the token endpoint (10 a minute); ``None`` turns a limiter off.
    :param offset_cap: the largest offset a query may use (10,000).
    :param external_id_field: the custom opportunity field holding our deal id.
    :param stage_key: ``"label"`` (stage ids are the stage names) or ``"value"`` (option values).
    :param won_labels: stage labels that mean won; ``lost_labels`` lost.
    :param probabilities: stage label (or value) → win probability in [0, 1], for the proposal.
    :param timezone: the tenant's time zone (dates are midnight there).
    :param currency_field: the opportunity field holding the currency in multi-currency tenants.
    :param codes: error codes by meaning (``expired``, ``throttled``, ``busy``, ``quota``,
        ``auth``) replacing the defaults.
    """

    name = "fxiaoke"
    capabilities = frozenset({
        AdapterCapability.PUSH, AdapterCapability.PIPELINES, AdapterCapability.ACCOUNTS,
        AdapterCapability.CONTACTS, AdapterCapability.RATE_LIMITS, AdapterCapability.CREDENTIALS,
    })
    push_batch_size = 100

    def __init__(
        self,
        *,
        base_url: str = "https://open.fxiaoke.com",
        app_id: str | None = None,
        app_secret: Secret | str | None = None,
        permanent_code: Secret | str | None = None,
        token: Secret | str | None = None,
        corp_id: str | None = None,
        user_id: str,
        auth: str = "body",
        client: Any = None,
        transport: Any = None,
        page_size: int = 100,
        rate_limit: tuple[int, float] | None = (100, 20.0),
        token_rate_limit: tuple[int, float] | None = (10, 60.0),
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        seed: int | None = None,
        object_api_name: str = "NewOpportunityObj",
        offset_cap: int = 10_000,
        external_id_field: str | None = "salesprocess_id__c",
        stage_key: str = "label",
        won_labels: Sequence[str] = ("赢单", "成交", "赢单关闭"),
        lost_labels: Sequence[str] = ("输单", "无效", "输单关闭", "丢单"),
        probabilities: Mapping[str, Any] | None = None,
        timezone: str = "Asia/Shanghai",
        currency_field: str | None = None,
        codes: Mapping[str, Sequence[int]] | None = None,
        connection: str | None = None,
    ) -> None:
        if auth not in ("body", "headers"):
            raise ValueError(f"auth is 'body' or 'headers', got {auth!r}")
        if stage_key not in ("label", "value"):
            raise ValueError(f"stage_key is 'label' or 'value', got {stage_key!r}")
        if not 1 <= page_size <= 1000:
            raise ValueError(f"page_size must be between 1 and 1000, got {page_size}")
        self._app_id = app_id
        self._app_secret = _secret(app_secret)
        self._permanent = _secret(permanent_code)
        self._token = _secret(token)
        self._expires_at: float | None = None
        if self._token is None and not self.can_fetch_token:
            raise AuthError("the fxiaoke adapter needs app_id, app_secret and permanent_code (or a token)")
        self.corp_id = corp_id
        self.user_id = user_id
        self.auth = auth
        httpx = require_httpx()
        self._own = client is None
        self._client = client or httpx.Client(transport=transport, timeout=timeout, follow_redirects=False)
        self.policy = FxiaokePolicy(**{k: tuple(v) for k, v in (codes or {}).items()})
        self.retry = retry or RetryPolicy()
        common: dict[str, Any] = {"base_url": base_url, "vendor": self.policy, "client": self._client,
                                  "clock": clock, "sleep": sleep, "seed": seed}
        self.http = HttpClient(retry=self.retry, rate_limit=None, **common)
        self.http_once = HttpClient(retry=RetryPolicy(attempts=1), rate_limit=None, **common)
        """For creates: a lost answer is looked up, never blindly sent again."""
        self._clock = clock
        self._sleep = sleep
        self._rate = rate_limit
        self.limiters: dict[str, RateLimiter] = {}
        self.token_limiter = None if token_rate_limit is None else RateLimiter(*token_rate_limit, clock=clock, sleep=sleep)
        self.page_size = page_size
        self.object = object_api_name
        self.offset_cap = offset_cap
        self.ext = external_id_field
        self.stage_key = stage_key
        self.won_labels = frozenset(won_labels)
        self.lost_labels = frozenset(lost_labels)
        self.probabilities = dict(probabilities or {})
        self.tz = ZoneInfo(timezone)
        self.currency_field = currency_field
        self.connection = connection
        self._stages: dict[str, list[tuple[str, str]]] | None = None
        self._processes: dict[str, str] = {}
        self.refreshes = 0
        """Tokens fetched again after Fxiaoke said the old one expired."""

    def __repr__(self) -> str:
        return f"FxiaokeAdapter({self.http.base_url!r}, {self.object!r})"

    def close(self) -> None:
        if self._own:
            self._client.close()

    @property
    def calls(self) -> int:
        return self.http.calls + self.http_once.calls

    @property
    def throttled(self) -> int:
        return self.http.throttled + self.http_once.throttled

    @property
    def can_fetch_token(self) -> bool:
        return bool(self._app_id) and self._app_secret is not None and self._permanent is not None

    # --- tokens and calls ----------------------------------------------------------------------------
    def limiter(self, path: str) -> RateLimiter | None:
        """The client-side limiter of one interface."""
        if self._rate is None:
            return None
        lim = self.limiters.get(path)
        if lim is None:
            lim = self.limiters[path] = RateLimiter(*self._rate, clock=self._clock, sleep=self._sleep)
        return lim

    def _fetch_token(self) -> None:
        if not self.can_fetch_token:
            raise AuthError("the Fxiaoke token expired or was refused, and no app secret and permanent code "
                            "are configured to fetch another", vendor_code="20016")
        assert self._app_secret is not None
        assert self._permanent is not None
        r = self.http.request("POST", TOKEN_PATH, json_body={
            "appId": self._app_id, "appSecret": self._app_secret.reveal(), "permanentCode": self._permanent.reveal(),
        }, auth=False, limiter=self.token_limiter or False, what="fetch a corpAccessToken")
        body = r.body if isinstance(r.body, dict) else {}
        tok = body.get("corpAccessToken")
        if not isinstance(tok, str) or not tok:
            raise AuthError("Fxiaoke's token endpoint returned no corpAccessToken")
        self._token = Secret(tok)
        if body.get("corpId"):
            self.corp_id = str(body["corpId"])
        exp = body.get("expiresIn")
        try:
            self._expires_at = self._clock() + float(Decimal(str(exp)))
        except (InvalidOperation, ValueError):
            self._expires_at = None
        log.info("fxiaoke: corpAccessToken fetched")

    def _ensure_token(self) -> None:
        if self._token is None or (self._expires_at is not None and self._clock() >= self._expires_at - 300
                                   and self.can_fetch_token):
            self._fetch_token()

    def call(self, path: str, data: Mapping[str, Any], *, what: str, once: bool = False) -> dict[str, Any]:
        """Send one OpenAPI call; returns the whole answer (``errorCode`` 0). Fetches the token
        again once when Fxiaoke says it expired."""
        self._ensure_token()
        refreshed = False
        while True:
            assert self._token is not None
            body: dict[str, Any] = {"data": dict(data)}
            headers: dict[str, str] = {}
            params: dict[str, str] | None = None
            if self.auth == "body":
                body.update(corpAccessToken=self._token.reveal(), corpId=self.corp_id or "",
                            currentOpenUserId=self.user_id)
            else:
                headers = {"authorization": f"Bearer {self._token.reveal()}", "x-fs-ea": self.corp_id or "",
                           "x-fs-userid": self.user_id}
                params = {"thirdTraceId": str(uuid.uuid4())}
            if path == DESCRIBE_PATH:
                body.update(dict(data.items()))
            http = self.http_once if once else self.http
            try:
                r = http.request("POST", path, json_body=body, headers=headers, params=params, auth=False,
                                 limiter=self.limiter(path) or False, what=what)
            except AuthError as e:
                expired = e.vendor_code in {str(c) for c in self.policy.expired}
                if expired and not refreshed and self.can_fetch_token:
                    refreshed = True
                    self.refreshes += 1
                    self._fetch_token()
                    continue
                raise
            return r.body if isinstance(r.body, dict) else {}

    # --- stages and pipelines ------------------------------------------------------------------------
    def _describe(self) -> None:
        ans = self.call(DESCRIBE_PATH, {"apiName": self.object, "includeDetail": True}, what="describe opportunities")
        data = ans.get("data") or {}
        desc = data.get("describe") if isinstance(data.get("describe"), dict) else data
        fields = (desc or {}).get("fields") or {}
        if isinstance(fields, list):
            fields = {f.get("api_name"): f for f in fields if isinstance(f, dict)}
        stage_opts = [(str(o["value"]), str(o.get("label") or o["value"]))
                      for o in (fields.get("sales_stage") or {}).get("options") or []
                      if isinstance(o, dict) and o.get("value") is not None and not o.get("not_usable")]
        stages: dict[str, list[tuple[str, str]]] = {}
        processes: dict[str, str] = {}
        for o in (fields.get("sales_process_id") or {}).get("options") or []:
            if not isinstance(o, dict) or o.get("value") is None:
                continue
            pid = str(o["value"])
            processes[pid] = str(o.get("label") or pid)
            scoped: list[str] | None = None
            for child in o.get("child_options") or []:
                if isinstance(child, dict) and "sales_stage" in child:
                    scoped = [str(v) for v in child["sales_stage"]]
            if scoped is None:
                stages[pid] = list(stage_opts)
            else:  # the process's own order
                labels = dict(stage_opts)
                stages[pid] = [(v, labels[v]) for v in scoped if v in labels]
        if not processes:  # no process options: one pipeline holding every stage
            processes[""] = "销售流程"
            stages[""] = stage_opts
        self._processes, self._stages = processes, stages

    def _stage_table(self) -> dict[str, list[tuple[str, str]]]:
        if self._stages is None:
            self._describe()
        assert self._stages is not None
        return self._stages

    def _stage_id(self, pid: str | None, value: Any) -> str | None:
        if value in (None, ""):
            return None
        if self.stage_key == "value":
            return str(value)
        for attempt in (0, 1):
            table = self._stage_table()
            for p, opts in table.items():
                if pid in (None, p) or p == "":
                    for v, lab in opts:
                        if v == str(value):
                            return lab
            if attempt == 0:
                self._stages = None  # a stage added since: read the describe again
        return str(value)

    def _stage_value(self, pid: str | None, stage: Any) -> str:
        if self.stage_key == "value":
            return str(stage)
        table = self._stage_table()
        for p, opts in table.items():
            if pid in (None, p) or p == "":
                for v, lab in opts:
                    if lab == stage:
                        return v
        raise RemoteValidationError(f"Fxiaoke sales process {pid!r} has no stage {stage!r}", vendor_code="UNKNOWN_STAGE",
                                    fields=("sales_stage",))

    def pipelines(self) -> list[RemotePipeline]:
        self._describe()
        out = []
        for pid, opts in (self._stages or {}).items():
            stages = []
            for i, (value, label) in enumerate(opts):
                sid = label if self.stage_key == "label" else value
                won = label in self.won_labels
                lost = label in self.lost_labels
                p = self.probabilities.get(label, self.probabilities.get(value))
                stages.append(RemoteStage(id=sid, label=label, order=i, closed=won or lost, won=won,
                                          probability=None if p is None else Decimal(str(p))))
            out.append(RemotePipeline(pid, self._processes.get(pid, pid), tuple(stages)))
        return out

    # --- pull ----------------------------------------------------------------------------------------
    def pull(self, kind: str, cursor: Mapping[str, Any] | None) -> Iterator[Page]:
        if kind == ObjectKind.DEALS:
            fields = ["_id", "name", "sales_stage", "sales_process_id", "amount", "close_date", "owner", "account_id",
                      "life_status", "create_time", "last_modified_time"]
            fields += [f for f in (self.ext, self.currency_field) if f]
            yield from self._listing(self.object, fields, cursor, self._deal)
        elif kind == ObjectKind.ACCOUNTS:
            yield from self._listing("AccountObj", ["_id", "name", "industry", "country", "owner", "parent_account_id",
                                                    "last_modified_time"], cursor, self._account)
        elif kind == ObjectKind.CONTACTS:
            yield from self._listing("ContactObj", ["_id", "name", "email", "mobile", "job_title", "account_id",
                                                    "last_modified_time"], cursor, self._contact)

    def _query(self, obj: str, filters: list[dict[str, Any]], orders: list[dict[str, Any]], fields: Sequence[str],
               offset: int) -> tuple[list[dict[str, Any]], bool]:
        """One page; retried when Fxiaoke hands back another offset's page."""
        for _ in range(self.retry.attempts):
            ans = self.call(QUERY_PATH, {
                "dataObjectApiName": obj,
                "search_query_info": {"offset": offset, "limit": self.page_size, "filters": filters, "orders": orders,
                                      "fieldProjection": list(fields)},
                "find_explicit_total_num": True,
            }, what=f"query {obj}")
            data = ans.get("data") or {}
            rows = [x for x in data.get("dataList") or [] if isinstance(x, dict)]
            if rows and str(data.get("offset", offset)) != str(offset):
                continue  # another page came back: ask again
            total = int(_dec(data.get("total")) or 0)
            more = offset + len(rows) < total if total else len(rows) >= self.page_size
            return rows, more
        raise RemoteUnavailable(f"query {obj}: Fxiaoke keeps answering another page than offset {offset}")

    def _listing(self, obj: str, fields: Sequence[str], cursor: Mapping[str, Any] | None,
                 convert: Callable[[Mapping[str, Any]], RemoteRecord]) -> Iterator[Page]:
        cur = dict(cursor or {})
        ts: int | None = cur.get("ts")
        seen: set[str] = set(cur.get("ids", ()))
        after: str | None = cur.get("after")
        pending: int | None = cur.get("repair")
        if pending is not None and (ts is None or pending < ts):
            ts, seen, after = pending, set(), None
        emitted: set[tuple[str, int]] = set()
        lmt = "last_modified_time"

        def stamp(o: Mapping[str, Any]) -> int:
            m = _dec(o.get(lmt))
            if m is None:
                raise RemoteUnavailable(f"Fxiaoke {obj} {o.get('_id')} came without {lmt}")
            return int(m)

        while True:
            if after is not None and ts is not None:
                # drain one instant by _id (more records share it than a query can page through)
                rows, more = self._query(obj, [
                    {"field_name": lmt, "operator": "EQ", "field_values": [ts]},
                    {"field_name": "_id", "operator": "GT", "field_values": [after]},
                ], [{"fieldName": "_id", "isAsc": True}], fields, 0)
                fresh = [o for o in rows if str(o["_id"]) not in seen and (str(o["_id"]), ts) not in emitted]
                emitted |= {(str(o["_id"]), ts) for o in fresh}
                if rows:
                    after = str(rows[-1]["_id"])
                if more:
                    state: dict[str, Any] = {"ts": ts, "ids": [], "after": after}
                else:  # the instant is done: go on strictly after it
                    state = {"ts": ts + 1, "ids": []}
                    ts, seen, after = ts + 1, set(), None
                yield Page(tuple(convert(o) for o in fresh), state)
                continue
            since, since_ids = ts, set(seen)
            top, top_ids = ts, set(seen)
            listed: dict[str, int] = {}
            repair: int | None = None
            filters = [] if since is None else [{"field_name": lmt, "operator": "GTE", "field_values": [since]}]
            orders = [{"fieldName": lmt, "isAsc": True}, {"fieldName": "_id", "isAsc": True}]
            offset = 0
            capped = False
            while True:
                if offset and offset + self.page_size > self.offset_cap:
                    capped = True
                    break
                rows, more = self._query(obj, filters, orders, fields, offset)
                fresh = []
                for o in rows:
                    rid, m = str(o["_id"]), stamp(o)
                    before = listed.get(rid)
                    if before is not None and before < m:
                        repair = before if repair is None else min(repair, before)
                    listed[rid] = m
                    if since is not None and (m < since or (m == since and rid in since_ids)):
                        continue
                    if top is None or m > top:
                        top, top_ids = m, {rid}
                    elif m == top:
                        top_ids.add(rid)
                    if (rid, m) not in emitted:
                        emitted.add((rid, m))
                        fresh.append(o)
                state = {"ts": top, "ids": sorted(top_ids)}
                if repair is not None:
                    state["repair"] = repair
                yield Page(tuple(convert(o) for o in fresh), state)
                if not more:
                    break
                offset += self.page_size
            if capped:
                if repair is not None:  # records slid back meanwhile: go on from the earliest of them
                    ts, seen = repair, set()
                    continue
                if top == ts and top_ids == seen:
                    ts, seen, after = top, set(), ""  # stuck on one instant: drain it by _id
                    continue
                ts, seen = top, top_ids
                continue
            if repair is not None:
                log.info("fxiaoke: %s changed while listed; listing again from %s", obj, repair)
                ts, seen = repair, set()
                continue
            return

    def _date(self, v: Any) -> date | None:
        at = from_ms(v)
        return None if at is None else at.astimezone(self.tz).date()

    def _deal(self, o: Mapping[str, Any]) -> RemoteRecord:
        modified = from_ms(o.get("last_modified_time"))
        assert modified is not None
        pid = None if o.get("sales_process_id") in (None, "") else str(o["sales_process_id"])
        return RemoteDeal(
            id=str(o["_id"]), modified_at=modified, name=str(o.get("name") or ""),
            stage=self._stage_id(pid, o.get("sales_stage")), pipeline=pid if pid is not None else "",
            amount=_dec(o.get("amount")),
            currency=(str(o[self.currency_field]) if self.currency_field and o.get(self.currency_field) else None),
            close_date=self._date(o.get("close_date")), owner=_first(o.get("owner")),
            account=_first(o.get("account_id")), created_at=from_ms(o.get("create_time")),
            local_id=(o.get(self.ext) or None) if self.ext else None,
            archived=o.get("life_status") == "invalid" or bool(o.get("is_deleted")),
        )

    def _account(self, o: Mapping[str, Any]) -> RemoteRecord:
        modified = from_ms(o.get("last_modified_time"))
        assert modified is not None
        return RemoteAccount(id=str(o["_id"]), modified_at=modified, name=str(o.get("name") or ""),
                             industry=o.get("industry") or None, country=o.get("country") or None,
                             owner=_first(o.get("owner")), parent=_first(o.get("parent_account_id")))

    def _contact(self, o: Mapping[str, Any]) -> RemoteRecord:
        modified = from_ms(o.get("last_modified_time"))
        assert modified is not None
        return RemoteContact(id=str(o["_id"]), modified_at=modified, name=str(o.get("name") or ""),
                             email=o.get("email") or None, phone=o.get("mobile") or None,
                             title=o.get("job_title") or None, account=_first(o.get("account_id")))

    # --- push ----------------------------------------------------------------------------------------
    def _object_data(self, item: PushItem, pid: str | None) -> dict[str, Any]:
        v = item.values
        out: dict[str, Any] = {"dataObjectApiName": self.object}
        if "name" in v:
            out["name"] = v["name"] or ""
        if "stage" in v:
            out["sales_stage"] = self._stage_value(pid, v["stage"])
        if "amount" in v:
            amount = v["amount"]
            out["amount"] = None if amount is None else str(amount)
        if self.currency_field and v.get("currency"):
            out[self.currency_field] = v["currency"]
        if "close_date" in v:
            cd = v["close_date"]
            if isinstance(cd, str):
                cd = date.fromisoformat(cd)
            out["close_date"] = None if cd is None else to_ms(datetime(cd.year, cd.month, cd.day, tzinfo=self.tz))
        if v.get("owner") is not None:
            out["owner"] = [str(v["owner"])]
        return out

    def _pid(self, item: PushItem) -> str | None:
        if item.pipeline:
            return item.pipeline
        table = self._stage_table()
        return next(iter(table), None)

    def find(self, local_ids: Sequence[str]) -> dict[str, str]:
        """Our deal ids already in Fxiaoke (by the external id field) → their ``_id``."""
        if not self.ext or not local_ids:
            return {}
        rows, _ = self._query(self.object, [{"field_name": self.ext, "operator": "IN", "field_values": list(local_ids)}],
                              [{"fieldName": "_id", "isAsc": True}], ["_id", self.ext], 0)
        return {str(o[self.ext]): str(o["_id"]) for o in rows if o.get(self.ext)}

    def _failure(self, item: PushItem, e: AdapterError, retriable: bool = False) -> PushResult:
        fields = e.fields if isinstance(e, RemoteValidationError) else ()
        return PushResult(item.local_id, False, code=e.vendor_code or type(e).__name__, message=str(e),
                          retriable=retriable, fields=fields)

    def _create(self, item: PushItem) -> PushResult:
        try:
            od = self._object_data(item, self._pid(item))
        except RemoteValidationError as e:
            return self._failure(item, e)
        od["sales_process_id"] = self._pid(item) or ""
        if self.ext:
            od[self.ext] = item.local_id
        last: AdapterError | None = None
        for attempt in range(self.retry.attempts):
            if attempt:
                self._sleep(self.retry.delay(attempt - 1, self.http._rng))
            try:
                ans = self.call(CREATE_PATH, {"object_data": od}, what="create an opportunity", once=True)
            except RateLimited as e:
                if not e.retriable:
                    raise
                last = e  # refused before it ran: send it again
                continue
            except RemoteUnavailable as e:
                last = e  # the create may have run: look before sending it again
                if self.ext:
                    found = self.find([item.local_id]).get(item.local_id)
                    if found is not None:
                        return PushResult(item.local_id, True, remote_id=found, created=True)
                continue
            except RemoteValidationError as e:
                return self._failure(item, e)
            rid = ans.get("dataId")
            if not rid and isinstance(ans.get("data"), dict):
                rid = ans["data"].get("dataId") or ans["data"].get("_id")
            if not rid:
                return PushResult(item.local_id, False, code="NO_ID", message="Fxiaoke created the record but sent no id")
            return PushResult(item.local_id, True, remote_id=str(rid), created=True)
        assert last is not None
        return self._failure(item, last, retriable=True)

    def _update(self, item: PushItem, rid: str) -> PushResult:
        try:
            od = self._object_data(item, self._pid(item))
        except RemoteValidationError as e:
            return self._failure(item, e)
        od["_id"] = rid
        try:
            self.call(UPDATE_PATH, {"object_data": od}, what="update an opportunity")
        except RemoteValidationError as e:
            return self._failure(item, e)
        except RemoteUnavailable as e:
            return self._failure(item, e, retriable=True)
        return PushResult(item.local_id, True, remote_id=rid)

    def push(self, items: Sequence[PushItem]) -> list[PushResult]:
        if len(items) > self.push_batch_size:
            raise ValueError(f"push at most {self.push_batch_size} records at a time")
        creates = [i for i in items if i.remote_id is None]
        known = self.find([i.local_id for i in creates])
        out = []
        for item in items:
            if item.remote_id is not None:
                out.append(self._update(item, item.remote_id))
            elif item.local_id in known:
                res = self._update(item, known[item.local_id])
                out.append(attrs.evolve(res, created=True) if res.ok else res)
            else:
                out.append(self._create(item))
        return out


def _factory(config: Mapping[str, Any], **options: Any) -> FxiaokeAdapter:
    """Build the adapter from a connection's config: ``client_id`` is the app id,
    ``client_secret_env`` names the app secret, ``refresh_token_env`` the permanent code and
    ``token_env`` (optional) a corpAccessToken to start with."""
    from salesprocess.sync.connections import parse_rate

    cfg = {**dict(config), **options}
    cfg.pop("app", None)
    kw: dict[str, Any] = {}
    for src, dst in (("client_id", "app_id"), ("client_secret", "app_secret"), ("refresh_token", "permanent_code")):
        if src in cfg:
            kw[dst] = cfg.pop(src)
    for key in ("base_url", "app_id", "app_secret", "permanent_code", "token", "corp_id", "user_id", "auth", "client",
                "transport", "page_size", "retry", "timeout", "clock", "sleep", "seed", "object_api_name",
                "offset_cap", "external_id_field", "stage_key", "timezone", "currency_field", "connection"):
        if key in cfg:
            kw[key] = cfg.pop(key)
    for key in ("rate_limit", "token_rate_limit"):
        if key in cfg:
            v = cfg.pop(key)
            kw[key] = parse_rate(v) if isinstance(v, str) else (None if v is False else v)
    for key in ("won_labels", "lost_labels"):
        if key in cfg:
            kw[key] = tuple(cfg.pop(key))
    if "probabilities" in cfg:
        kw["probabilities"] = dict(cfg.pop("probabilities"))
    if "codes" in cfg:
        kw["codes"] = {k: tuple(v) for k, v in dict(cfg.pop("codes")).items()}
    if cfg:
        raise AdapterError(f"unknown fxiaoke adapter option(s): {', '.join(sorted(cfg))}")
    if "user_id" not in kw:
        raise AdapterError("the fxiaoke adapter needs user_id: the acting user's open id (currentOpenUserId)")
    return FxiaokeAdapter(**kw)


@hookimpl
def salesprocess_register_adapters(register: Callable[..., None]) -> None:
    register("crm", "fxiaoke", _factory, "纷享销客 Fxiaoke OpenAPI (商机2.0 NewOpportunityObj, AccountObj, ContactObj)")
