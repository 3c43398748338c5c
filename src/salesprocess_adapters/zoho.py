"""Zoho CRM adapter (CRM API v8 over httpx), with Blueprint.

Pull
    ``GET /crm/v8/{Deals|Accounts|Contacts}`` with the ``fields`` v8 requires, sorted by
    ``Modified_Time`` ascending, with ``If-Modified-Since`` one second before the cursor (Zoho's
    times are whole seconds; a 304 means nothing changed). Pages go by ``page`` for the first
    2,000 records and by ``page_token`` beyond. The cursor after each page is the newest
    modification time seen and the ids seen at that instant, so a resumed pull starts a new
    listing there, skipping what it already has; an expired or refused page token does the
    same. When a listing sees a record it already listed come back with a newer time (it was
    changed while the listing ran, which shifts the records after it by one place), the adapter
    lists again from that record's old time, so no record is skipped. Deals come with their
    ``Stage_History`` related list (one call per changed deal; ``history=False`` turns it off).

Pipelines and Blueprint
    Pipelines come from ``/settings/pipeline?layout_id=`` (``maps`` are the stages; their
    ``forecast_type`` says open, won or lost). The layout's active Blueprint
    (``/settings/blueprints``) becomes the pipelines' transition rules: its transitions are the
    moves the proposed process allows, and the fields a transition makes mandatory become the
    entry criteria of its target stage (see :func:`salesprocess.sync.propose`).

Push
    New deals go out through ``POST /Deals/upsert`` keyed by a unique custom field holding our deal
    id (``SalesProcess_Id`` by default), so a retried create never duplicates; changes to known
    deals through ``PUT /Deals`` (100 rows a call, 207 read row by row). A stage change of a deal
    under a Blueprint is made through the Blueprint: the adapter reads the transitions open from
    the deal's current state (``GET /Deals/{id}/actions/blueprint``) and executes the one leading
    to the target (``PUT``), or a shortest chain of them, sending the values the transitions make
    mandatory. When no chain leads there, or a mandatory value is missing, the record fails with
    ``NO_TRANSITION`` or ``MANDATORY_NOT_FOUND`` and Zoho's rules stay unbroken.

Limits
    Zoho counts API credits over a rolling 24 hours (writes cost one per ten records). Set
    ``rate_limit=(credits, 86400)`` to spend at most that; 429 ``TOO_MANY_REQUESTS`` is retried
    after ``details.retry_after`` (or ``Retry-After``), with backoff otherwise.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

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
    RemoteStageChange,
    RemoteTransition,
)
from salesprocess.sync.timing import RetryPolicy, Secret

from ._http import HttpClient, Response, VendorPolicy, Verdict

__all__ = ["FIELD_NAMES", "ZohoAdapter", "ZohoPolicy", "parse_zoho_time"]

log = logging.getLogger("salesprocess.adapters.zoho")

FIELD_NAMES: dict[str, str] = {
    "Deal_Name": "name", "Amount": "amount", "Closing_Date": "close_date", "Owner": "owner_id",
    "Account_Name": "account_id", "Contact_Name": "contact_ids", "Probability": "probability",
}
"""Zoho Deals fields and the local deal fields they are (others become ``custom.<API name>``)."""

_RESTART = frozenset({"EXPIRED_VALUE", "TOKEN_BOUND_DATA_MISMATCH", "PAGINATION_LIMIT_EXCEEDED",
                      "DISCRETE_PAGINATION_LIMIT_EXCEEDED"})
_RETRIABLE_ROWS = frozenset({"INTERNAL_ERROR", "TOO_MANY_REQUESTS", "RATE_LIMIT_EXCEEDED"})


def parse_zoho_time(v: Any) -> datetime | None:
    """A Zoho datetime (``2026-01-05T17:00:01+08:00``) as an aware datetime."""
    if not v:
        return None
    d = datetime.fromisoformat(str(v).replace("Z", "+00:00"))
    return d if d.tzinfo is not None else d.replace(tzinfo=UTC)


def _header_time(at: datetime) -> str:
    return at.astimezone(UTC).replace(microsecond=0).isoformat()


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def _dec(v: Any) -> Decimal | None:
    if v is None or v == "" or isinstance(v, bool):
        return None
    if isinstance(v, float):  # JSON is parsed with Decimal numbers; a float here is a bug
        raise AdapterError(f"refusing a binary float amount {v!r}")
    try:
        return Decimal(str(v))
    except InvalidOperation:
        return None


def _lookup(v: Any) -> str | None:
    if isinstance(v, Mapping):
        i = v.get("id")
        return None if i in (None, "") else str(i)
    return None if v in (None, "") else str(v)


def _name(v: Any) -> str | None:
    if isinstance(v, Mapping):
        n = v.get("name") or v.get("actual_value") or v.get("display_value")
        return None if n is None else str(n)
    return None if v in (None, "") else str(v)


def _details(body: Mapping[str, Any]) -> dict[str, Any]:
    d = body.get("details")
    return dict(d) if isinstance(d, Mapping) else {}


def _secret(v: Secret | str | None) -> Secret | None:
    if v is None or isinstance(v, Secret):
        return v
    return Secret(v)


class ZohoPolicy(VendorPolicy):
    """How Zoho answers: ``{code, message, status, details}`` bodies, ``Zoho-oauthtoken`` auth,
    401 ``INVALID_TOKEN`` when the token expired, 429 ``TOO_MANY_REQUESTS``."""

    name = "zoho"

    def auth_headers(self, token: Secret) -> dict[str, str]:
        return {"Authorization": f"Zoho-oauthtoken {token.reveal()}"}

    def judge(self, r: Response, what: str) -> Verdict:
        if 200 <= r.status < 300 or r.status == 304:
            return Verdict("ok")
        body = r.body if isinstance(r.body, dict) else {}
        if r.status == 400 and isinstance(body.get("data"), list):
            return Verdict("ok")  # a write whose every row failed: the rows say why
        code = str(body.get("code") or f"HTTP_{r.status}")
        details = _details(body)
        msg = f"{what}: Zoho answered {r.status} {code}: {body.get('message') or 'no message'}"
        if r.status == 401:
            if code in ("INVALID_TOKEN", "AUTHENTICATION_FAILURE", f"HTTP_{r.status}"):
                return Verdict("refresh", AuthError(msg, vendor_code=code, status=401))
            return Verdict("raise", AuthError(msg, vendor_code=code, status=401))
        if r.status == 403:
            return Verdict("raise", AuthError(msg, vendor_code=code, status=403))
        if r.status == 429 or code in ("TOO_MANY_REQUESTS", "RATE_LIMIT_EXCEEDED"):
            wait: float | None = None
            for v in (details.get("retry_after"), r.headers.get("retry-after")):
                if v is None:
                    continue
                try:
                    wait = max(0.0, float(Decimal(str(v))))
                    break
                except (InvalidOperation, ValueError):
                    continue
            return Verdict("retry", RateLimited(msg, vendor_code=code, retry_after=wait, status=r.status), wait, True)
        if r.status >= 500:
            return Verdict("retry", RemoteUnavailable(msg, vendor_code=code, status=r.status))
        fields = [str(details[k]) for k in ("api_name", "param_name") if details.get(k)]
        return Verdict("raise", RemoteValidationError(msg, vendor_code=code, fields=fields, status=r.status))


class ZohoAdapter:
    """The Zoho CRM :class:`~salesprocess.sync.CrmAdapter`.

    :param base_url: the data centre's API domain (``https://www.zohoapis.com``,
        ``https://www.zohoapis.com.cn``, ...), or a fake's URL.
    :param accounts_url: the accounts server that refreshes tokens
        (``https://accounts.zoho.com``, ``https://accounts.zoho.com.cn``, ...).
    :param token: the OAuth access token; with ``refresh_token``, ``client_id`` and
        ``client_secret`` it is refreshed when Zoho reports it expired (or fetched at the start
        when no token is given).
    :param page_size: records per page (Zoho allows 200).
    :param rate_limit: ``(credits, seconds)`` for the client-side limiter, e.g. ``(50000, 86400)``;
        ``None`` (the default) relies on Zoho's 429 answers.
    :param layout_id: the Deals layout whose pipelines and Blueprint are read (default: the first
        active one).
    :param id_field: the unique custom Deals field holding our deal id, for upserts.
    :param history: fetch each changed deal's ``Stage_History``.
    :param blueprint: read the Blueprint into the proposed process and push stage changes
        through its transitions.
    :param currency_field: ``Currency`` in multi-currency organisations, else ``None``.
    :param history_fields: the Stage_History fields holding the stage and the time it was set.
    """

    name = "zoho"
    capabilities = frozenset({
        AdapterCapability.PUSH, AdapterCapability.STAGE_HISTORY, AdapterCapability.PIPELINES,
        AdapterCapability.ACCOUNTS, AdapterCapability.CONTACTS, AdapterCapability.RATE_LIMITS,
        AdapterCapability.CREDENTIALS,
    })
    push_batch_size = 100

    def __init__(
        self,
        *,
        token: Secret | str | None = None,
        base_url: str = "https://www.zohoapis.com",
        accounts_url: str = "https://accounts.zoho.com",
        refresh_token: Secret | str | None = None,
        client_id: str | None = None,
        client_secret: Secret | str | None = None,
        client: Any = None,
        transport: Any = None,
        page_size: int = 200,
        rate_limit: tuple[int, float] | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        seed: int | None = None,
        layout_id: str | None = None,
        id_field: str = "SalesProcess_Id",
        history: bool = True,
        blueprint: bool = True,
        currency_field: str | None = None,
        history_fields: tuple[str, str] = ("Stage", "Modified_Time"),
        discrete_limit: int = 2000,
        trigger: Sequence[str] | None = None,
        max_moves: int = 12,
        connection: str | None = None,
    ) -> None:
        if not 1 <= page_size <= 200:
            raise ValueError(f"page_size must be between 1 and 200 (Zoho's per_page limit), got {page_size}")
        self._refresh_token = _secret(refresh_token)
        self._client_secret = _secret(client_secret)
        self._client_id = client_id
        self.accounts_url = accounts_url.rstrip("/")
        can_refresh = self._refresh_token is not None and client_id is not None and self._client_secret is not None
        if token is None and not can_refresh:
            raise AuthError("the zoho adapter needs a token, or a refresh token with client_id and client_secret")
        self.http = HttpClient(
            base_url=base_url, vendor=ZohoPolicy(), token=_secret(token),
            refresher=self._refresh if can_refresh else None, client=client, transport=transport,
            timeout=timeout, retry=retry, rate_limit=rate_limit, clock=clock, sleep=sleep, seed=seed,
        )
        self.api = "/crm/v8"
        self.page_size = page_size
        self.layout_id = layout_id
        self.id_field = id_field
        self.history = history
        self.blueprint = blueprint
        self.currency_field = currency_field
        self.history_fields = history_fields
        self.discrete_limit = discrete_limit
        self.trigger = None if trigger is None else list(trigger)
        self.max_moves = max_moves
        self.connection = connection
        self._graph: dict[str, set[str]] | None = None
        self.deal_fields = tuple(
            f for f in ("Deal_Name", "Stage", "Pipeline", "Amount", "Closing_Date", "Owner", "Account_Name",
                        "Contact_Name", "Created_Time", "Modified_Time", id_field, currency_field) if f
        )

    def __repr__(self) -> str:
        return f"ZohoAdapter({self.http.base_url!r})"

    def close(self) -> None:
        self.http.close()

    # --- auth --------------------------------------------------------------------------------------
    def _refresh(self, http: HttpClient) -> tuple[Secret, float | None]:
        assert self._refresh_token is not None
        assert self._client_secret is not None
        try:
            r = http.request("POST", self.accounts_url + "/oauth/v2/token", form={
                "grant_type": "refresh_token", "client_id": self._client_id or "",
                "client_secret": self._client_secret.reveal(), "refresh_token": self._refresh_token.reveal(),
            }, auth=False, limiter=False, what="token refresh")
        except RemoteValidationError as e:
            raise AuthError("Zoho refused the refresh token; authorise the client again",
                            vendor_code=e.vendor_code) from None
        body = r.body if isinstance(r.body, dict) else {}
        if body.get("error"):
            raise AuthError(f"Zoho refused the refresh token ({body['error']}); authorise the client again",
                            vendor_code=str(body["error"]))
        tok = body.get("access_token")
        if not isinstance(tok, str) or not tok:
            raise AuthError("Zoho's token endpoint returned no access token")
        exp = body.get("expires_in")
        return Secret(tok), float(exp) if isinstance(exp, int | Decimal) else None

    def _ensure_token(self) -> None:
        if not self.http.has_token:
            self.http.set_token(*self._refresh(self.http))

    def _get(self, path: str, params: Mapping[str, Any] | None = None, *, what: str,
             headers: Mapping[str, str] | None = None) -> Response:
        self._ensure_token()
        return self.http.request("GET", self.api + path, params=params, headers=headers, what=what)

    def _spend(self, credits: int) -> None:
        """Take ``credits`` more slots from the limiter (calls that cost more than one credit)."""
        lim = self.http.limiter
        if lim is not None:
            for _ in range(max(0, credits)):
                lim.acquire()

    # --- pipelines and Blueprint --------------------------------------------------------------------
    def layout(self) -> str:
        """The Deals layout id in use."""
        if self.layout_id is None:
            r = self._get("/settings/layouts", {"module": "Deals"}, what="read Deals layouts")
            layouts = (r.body or {}).get("layouts") or []
            active = [x for x in layouts if x.get("status", "active") == "active"] or layouts
            if not active:
                raise AdapterError("Zoho reports no Deals layout")
            self.layout_id = str(active[0]["id"])
        return self.layout_id

    def pipelines(self) -> list[RemotePipeline]:
        lid = self.layout()
        r = self._get("/settings/pipeline", {"layout_id": lid}, what="read deal pipelines")
        rules = self.blueprint_transitions() if self.blueprint else None
        out = []
        for p in (r.body or {}).get("pipeline") or []:
            stages = []
            for m in p.get("maps") or []:
                ftype = str(m.get("forecast_type") or "Open")
                prob = _dec(m.get("probability"))
                stages.append(RemoteStage(
                    id=str(m["actual_value"]), label=str(m.get("display_value") or m["actual_value"]),
                    order=int(m.get("sequence_number") or 0), probability=None if prob is None else prob / 100,
                    closed=ftype != "Open", won=ftype == "Closed Won",
                ))
            ids = {s.id for s in stages}
            mine = None if rules is None else tuple(t for t in rules if t.source in ids and t.target in ids) or None
            pid = str(p.get("actual_value") or p.get("display_value") or p["id"])
            out.append(RemotePipeline(pid, str(p.get("display_value") or pid), tuple(stages), mine))
        return out

    def blueprint_transitions(self) -> list[RemoteTransition] | None:
        """The active Deals Blueprint of the layout as transitions (``None`` when there is none
        or the token may not read Blueprint settings)."""
        lid = self.layout()
        try:
            r = self._get("/settings/blueprints", {"module": "Deals", "layout_id": lid, "status": "active"},
                          what="read Blueprints")
        except (AuthError, RemoteValidationError) as e:
            log.warning("zoho: cannot read Blueprints (%s); moves are not restricted", e.vendor_code)
            self._graph = {}
            return None
        heads = ((r.body or {}).get("blueprints") or []) if r.status == 200 else []
        out: list[RemoteTransition] = []
        graph: dict[str, set[str]] = {}
        for head in heads:
            pf = head.get("process_field") or head.get("field") or {}
            if pf and pf.get("api_name", "Stage") != "Stage":
                continue
            d = self._get(f"/settings/blueprints/{head['id']}", {"include": "state,transition"},
                          what="read a Blueprint")
            for bp in (d.body or {}).get("blueprints") or []:
                for t in bp.get("transitions") or []:
                    target = _name(t.get("next_state") or t.get("to_state") or t.get("to"))
                    if target is None:
                        continue
                    sources = t.get("from_states") or t.get("source_states") or t.get("from") or []
                    required = tuple(
                        FIELD_NAMES.get(str(f["api_name"]), f"custom.{f['api_name']}")
                        for f in t.get("fields") or [] if f.get("mandatory") and f.get("api_name")
                    )
                    for s in sources:
                        src = _name(s)
                        if src is None:
                            continue
                        out.append(RemoteTransition(src, target, str(t.get("name") or ""), str(t.get("id") or ""),
                                                    required))
                        graph.setdefault(src, set()).add(target)
        self._graph = graph
        return out or None

    # --- pull --------------------------------------------------------------------------------------
    def pull(self, kind: str, cursor: Mapping[str, Any] | None) -> Iterator[Page]:
        if kind == ObjectKind.DEALS:
            yield from self._listing("Deals", self.deal_fields, cursor, self._deals)
        elif kind == ObjectKind.ACCOUNTS:
            yield from self._listing("Accounts", ("Account_Name", "Industry", "Billing_Country", "Owner",
                                                  "Parent_Account", "Modified_Time"), cursor, self._accounts)
        elif kind == ObjectKind.CONTACTS:
            yield from self._listing("Contacts", ("First_Name", "Last_Name", "Email", "Phone", "Title",
                                                  "Account_Name", "Modified_Time"), cursor, self._contacts)

    def _listing(self, module: str, fields: Sequence[str], cursor: Mapping[str, Any] | None,
                 convert: Callable[[list[dict[str, Any]]], list[RemoteRecord]]) -> Iterator[Page]:
        cur = dict(cursor or {})
        ts = parse_zoho_time(cur.get("ts"))
        seen: set[str] = set(cur.get("ids", ()))
        pending = parse_zoho_time(cur.get("repair"))
        if pending is not None and (ts is None or pending < ts):
            ts, seen = pending, set()
        emitted: set[tuple[str, datetime]] = set()
        while True:
            since, since_ids = ts, set(seen)
            top, top_ids = ts, set(seen)
            listed: dict[str, datetime] = {}
            repair: datetime | None = None
            headers = {} if since is None else {"If-Modified-Since": _header_time(since - timedelta(seconds=1))}
            page, token = 1, None
            restart = False
            repeats = 0
            while True:
                params: dict[str, Any] = {"fields": ",".join(fields), "per_page": self.page_size,
                                          "sort_by": "Modified_Time", "sort_order": "asc"}
                if token is not None:
                    params["page_token"] = token
                else:
                    params["page"] = page
                try:
                    r = self._get(f"/{module}", params, headers=headers, what=f"list {module}")
                except RemoteValidationError as e:
                    if e.vendor_code in _RESTART and (token is not None or page > 1):
                        restart = True  # the token expired or paging hit a limit: go on from the newest seen
                        break
                    raise
                body = r.body if r.status == 200 and isinstance(r.body, dict) else {}
                rows = [o for o in body.get("data") or [] if isinstance(o, dict)]
                info = body.get("info") or {}
                got = info.get("page")
                if rows and ((token is None and got is not None and str(got) != str(page))
                             or (token is not None and info.get("next_page_token") == token)):
                    repeats += 1  # an earlier page came back again: ask once more
                    if repeats > self.http.retry.attempts:
                        raise RemoteUnavailable(f"list {module}: Zoho keeps answering an earlier page")
                    continue
                repeats = 0
                fresh: list[dict[str, Any]] = []
                for o in rows:
                    rid = str(o["id"])
                    m = parse_zoho_time(o.get("Modified_Time"))
                    if m is None:
                        raise RemoteUnavailable(f"Zoho {module} {rid} came without Modified_Time")
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
                state: dict[str, Any] = {"ts": _iso(top), "ids": sorted(top_ids)}
                if repair is not None:
                    state["repair"] = _iso(repair)
                yield Page(tuple(convert(fresh)) if fresh else (), state)
                if not info.get("more_records"):
                    break
                nxt = info.get("next_page_token")
                if token is None and (page + 1) * self.page_size <= self.discrete_limit:
                    page += 1
                elif nxt:
                    token = str(nxt)
                else:
                    restart = True
                    break
            if restart:
                if repair is not None:  # records slid back meanwhile: go on from the earliest of them
                    ts, seen = repair, set()
                    continue
                if top == ts and top_ids == seen:
                    raise AdapterError(f"listing Zoho {module} makes no progress past {_iso(ts)}")
                ts, seen = top, top_ids
                continue
            if repair is not None:
                log.info("zoho: %s changed while listed; listing again from %s", module, repair.isoformat())
                ts, seen = repair, set()
                continue
            return

    def stage_history(self, deal_id: str) -> tuple[RemoteStageChange, ...]:
        """A deal's stage history, oldest first (consecutive repeats dropped)."""
        stage_f, time_f = self.history_fields
        rows: list[dict[str, Any]] = []
        page = 1
        while True:
            r = self._get(f"/Deals/{deal_id}/Stage_History", {"fields": f"{stage_f},{time_f}", "page": page,
                                                              "per_page": 200}, what="read Stage_History")
            if r.status != 200 or not isinstance(r.body, dict):
                break
            rows.extend(x for x in r.body.get("data") or [] if isinstance(x, dict))
            if not (r.body.get("info") or {}).get("more_records"):
                break
            page += 1
        stamped = sorted(
            ((at, str(x[stage_f])) for x in rows if x.get(stage_f) and (at := parse_zoho_time(x.get(time_f)))),
            key=lambda p: p[0],
        )
        out: list[RemoteStageChange] = []
        for at, st in stamped:
            if not out or out[-1].stage != st:
                out.append(RemoteStageChange(st, at))
        return tuple(out)

    def _deals(self, rows: list[dict[str, Any]]) -> list[RemoteRecord]:
        out: list[RemoteRecord] = []
        for o in rows:
            rid = str(o["id"])
            modified = parse_zoho_time(o.get("Modified_Time"))
            assert modified is not None
            cd = o.get("Closing_Date")
            contact = _lookup(o.get("Contact_Name"))
            out.append(RemoteDeal(
                id=rid, modified_at=modified, name=str(o.get("Deal_Name") or ""),
                stage=None if o.get("Stage") is None else str(o["Stage"]), pipeline=_name(o.get("Pipeline")),
                amount=_dec(o.get("Amount")),
                currency=(str(o[self.currency_field]) if self.currency_field and o.get(self.currency_field) else None),
                close_date=date.fromisoformat(str(cd)) if cd else None, owner=_lookup(o.get("Owner")),
                account=_lookup(o.get("Account_Name")), contacts=(contact,) if contact else (),
                created_at=parse_zoho_time(o.get("Created_Time")), local_id=o.get(self.id_field) or None,
                history=self.stage_history(rid) if self.history else None,
            ))
        return out

    def _accounts(self, rows: list[dict[str, Any]]) -> list[RemoteRecord]:
        out: list[RemoteRecord] = []
        for o in rows:
            modified = parse_zoho_time(o.get("Modified_Time"))
            assert modified is not None
            out.append(RemoteAccount(
                id=str(o["id"]), modified_at=modified, name=str(o.get("Account_Name") or ""),
                industry=o.get("Industry") or None, country=o.get("Billing_Country") or None,
                owner=_lookup(o.get("Owner")), parent=_lookup(o.get("Parent_Account")),
            ))
        return out

    def _contacts(self, rows: list[dict[str, Any]]) -> list[RemoteRecord]:
        out: list[RemoteRecord] = []
        for o in rows:
            modified = parse_zoho_time(o.get("Modified_Time"))
            assert modified is not None
            name = " ".join(str(x) for x in (o.get("First_Name"), o.get("Last_Name")) if x)
            out.append(RemoteContact(
                id=str(o["id"]), modified_at=modified, name=name, email=o.get("Email") or None,
                phone=o.get("Phone") or None, title=o.get("Title") or None, account=_lookup(o.get("Account_Name")),
            ))
        return out

    # --- push --------------------------------------------------------------------------------------
    def _zoho_values(self, values: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if "name" in values:
            out["Deal_Name"] = values["name"] or ""
        if "stage" in values:
            out["Stage"] = values["stage"]
        if "amount" in values:
            out["Amount"] = values["amount"]
        if self.currency_field and values.get("currency"):
            out[self.currency_field] = values["currency"]
        if "close_date" in values:
            cd = values["close_date"]
            out["Closing_Date"] = None if cd is None else (cd.isoformat() if isinstance(cd, date) else str(cd))
        if values.get("owner") is not None:
            out["Owner"] = {"id": str(values["owner"])}
        return out

    def _write(self, method: str, path: str, rows: list[dict[str, Any]], what: str,
               extra: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        self._ensure_token()
        self._spend(-(-len(rows) // 10) - 1)
        body: dict[str, Any] = {"data": rows, **(extra or {})}
        if self.trigger is not None:
            body["trigger"] = self.trigger
        r = self.http.request(method, self.api + path, json_body=body, what=what)
        data = r.body.get("data") if isinstance(r.body, dict) else None
        if not isinstance(data, list):
            raise AdapterError(f"{what}: Zoho's answer had no per-record results")
        if len(data) != len(rows):
            raise AdapterError(f"{what}: Zoho answered {len(data)} rows for {len(rows)} records")
        return [x if isinstance(x, dict) else {} for x in data]

    @staticmethod
    def _row_failure(item: PushItem, row: Mapping[str, Any]) -> PushResult:
        code = str(row.get("code") or "ERROR")
        details = _details(row)
        fields = tuple(str(details[k]) for k in ("api_name",) if details.get(k))
        return PushResult(item.local_id, False, code=code, message=str(row.get("message") or code),
                          retriable=code in _RETRIABLE_ROWS, fields=fields)

    def push(self, items: Sequence[PushItem]) -> list[PushResult]:
        if len(items) > self.push_batch_size:
            raise ValueError(f"Zoho takes at most {self.push_batch_size} records per call")
        results: dict[str, PushResult] = {}
        creates = [i for i in items if i.remote_id is None]
        updates = [i for i in items if i.remote_id is not None]
        if creates:
            rows = []
            for i in creates:
                row = self._zoho_values(i.values)
                row[self.id_field] = i.local_id
                if i.pipeline:
                    row["Pipeline"] = i.pipeline
                rows.append(row)
            answers = self._write("POST", "/Deals/upsert", rows, "upsert deals",
                                  {"duplicate_check_fields": [self.id_field]})
            for item, row in zip(creates, answers, strict=True):
                details = _details(row)
                if row.get("status") == "success" and details.get("id"):
                    results[item.local_id] = PushResult(item.local_id, True, remote_id=str(details["id"]),
                                                        created=row.get("action", "insert") == "insert")
                elif details.get("api_name") == "Stage" and details.get("id"):
                    # the deal exists already (a retried create) and is under a Blueprint
                    updates.append(PushItem(item.local_id, str(details["id"]), item.values, item.pipeline))
                else:
                    results[item.local_id] = self._row_failure(item, row)
        if updates:
            plain = []
            for i in updates:
                row = {k: v for k, v in self._zoho_values(i.values).items() if k != "Stage"}
                if row:
                    plain.append((i, {"id": i.remote_id, **row}))
            if plain:
                answers = self._write("PUT", "/Deals", [r for _, r in plain], "update deals")
                for (item, _), row in zip(plain, answers, strict=True):
                    if row.get("status") != "success":
                        results[item.local_id] = self._row_failure(item, row)
            for item in updates:
                if item.local_id in results:
                    continue
                res = self._move(item) if "stage" in item.values else None
                results[item.local_id] = res or PushResult(item.local_id, True, remote_id=item.remote_id)
        return [results[i.local_id] for i in items]

    # --- Blueprint moves ---------------------------------------------------------------------------
    def _next_hop(self, current: str, target: str, open_now: set[str]) -> str | None:
        if target in open_now:
            return target
        if self._graph is None and self.blueprint:
            self.blueprint_transitions()
        graph = self._graph or {}
        prev: dict[str, str] = {}
        todo: deque[str] = deque()
        for s in sorted(open_now):
            if s not in prev:
                prev[s] = s
                todo.append(s)
        while todo:
            s = todo.popleft()
            if s == target:
                return prev[s]
            for n in sorted(graph.get(s, ())):
                if n not in prev and n != current:
                    prev[n] = prev[s]
                    todo.append(n)
        return None

    def _set_stage(self, item: PushItem) -> PushResult:
        answers = self._write("PUT", "/Deals", [{"id": item.remote_id, "Stage": item.values["stage"]}], "move a deal")
        row = answers[0]
        if row.get("status") != "success":
            return self._row_failure(item, row)
        return PushResult(item.local_id, True, remote_id=item.remote_id)

    def _move(self, item: PushItem) -> PushResult:
        """Move a deal to ``item.values["stage"]``: through Blueprint transitions when it is under
        a Blueprint, else by a plain update."""
        target = str(item.values["stage"])
        if not self.blueprint:
            return self._set_stage(item)
        wanted = self._zoho_values(item.values)
        for _ in range(self.max_moves):
            try:
                r = self._get(f"/Deals/{item.remote_id}/actions/blueprint", what="read a deal's Blueprint")
            except RemoteValidationError as e:
                if e.vendor_code == "RECORD_NOT_IN_PROCESS":
                    return self._set_stage(item)
                return PushResult(item.local_id, False, code=e.vendor_code or "INVALID_DATA", message=str(e),
                                  retriable=False, fields=e.fields)
            bp = (r.body or {}).get("blueprint") or {}
            current = str((bp.get("process_info") or {}).get("field_value") or "")
            if current == target:
                return PushResult(item.local_id, True, remote_id=item.remote_id)
            transitions = [t for t in bp.get("transitions") or [] if isinstance(t, dict)]
            hop = self._next_hop(current, target, {str(t.get("next_field_value")) for t in transitions})
            if hop is None:
                return PushResult(
                    item.local_id, False, code="NO_TRANSITION", retriable=False, fields=("Stage",),
                    message=f"deal {item.remote_id}: no Blueprint transition leads from {current!r} to {target!r}",
                )
            t = next(x for x in transitions if str(x.get("next_field_value")) == hop)
            data: dict[str, Any] = {}
            missing = []
            for f in t.get("fields") or []:
                api = f.get("api_name")
                if not api or not f.get("mandatory"):
                    continue
                v = wanted.get(api, (t.get("data") or {}).get(api))
                if v in (None, ""):
                    missing.append(str(api))
                else:
                    data[api] = v
            if missing:
                return PushResult(
                    item.local_id, False, code="MANDATORY_NOT_FOUND", retriable=False, fields=tuple(missing),
                    message=f"deal {item.remote_id}: the Blueprint transition {t.get('name')!r} to {hop!r} "
                            f"needs {', '.join(missing)}",
                )
            try:
                self.http.request("PUT", f"{self.api}/Deals/{item.remote_id}/actions/blueprint",
                                  json_body={"blueprint": [{"transition_id": str(t["id"]), "data": data}]},
                                  what="execute a Blueprint transition")
            except RemoteValidationError as e:
                if e.vendor_code == "INVALID_DATA" and "transition" in str(e):
                    continue  # the state moved meanwhile (or the transition ran already): read it again
                return PushResult(item.local_id, False, code=e.vendor_code or "INVALID_DATA", message=str(e),
                                  retriable=False, fields=e.fields)
        return PushResult(item.local_id, False, code="NO_TRANSITION", retriable=True, fields=("Stage",),
                          message=f"deal {item.remote_id}: {target!r} not reached in {self.max_moves} Blueprint moves")


def _factory(config: Mapping[str, Any], **options: Any) -> ZohoAdapter:
    """Build the adapter from a connection's config (see :class:`~salesprocess.sync.Connection`)."""
    from salesprocess.sync.connections import parse_rate

    cfg = {**dict(config), **options}
    cfg.pop("app", None)
    kw: dict[str, Any] = {}
    for key in ("token", "base_url", "accounts_url", "refresh_token", "client_id", "client_secret", "client",
                "transport", "page_size", "retry", "timeout", "clock", "sleep", "seed", "layout_id", "id_field",
                "history", "blueprint", "currency_field", "discrete_limit", "max_moves", "connection"):
        if key in cfg:
            kw[key] = cfg.pop(key)
    if "rate_limit" in cfg:
        v = cfg.pop("rate_limit")
        kw["rate_limit"] = parse_rate(v) if isinstance(v, str) else (None if v is False else v)
    if "history_fields" in cfg:
        kw["history_fields"] = tuple(cfg.pop("history_fields"))
    if "trigger" in cfg:
        kw["trigger"] = tuple(cfg.pop("trigger"))
    if cfg:
        raise AdapterError(f"unknown zoho adapter option(s): {', '.join(sorted(cfg))}")
    return ZohoAdapter(**kw)


@hookimpl
def salesprocess_register_adapters(register: Callable[..., None]) -> None:
    register("crm", "zoho", _factory, "Zoho CRM v8 (Deals with pipelines, Stage_History and Blueprint; Accounts, Contacts)")
