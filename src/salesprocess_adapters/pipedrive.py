"""Pipedrive adapter (API v2, with the v1 changelog, over httpx).

Auth
    An API token goes in the ``x-api-token`` header (never in the URL, where proxies and logs
    would keep it). With a refresh token, ``client_id`` and ``client_secret`` the adapter uses
    OAuth instead: ``Authorization: Bearer`` with an access token fetched from
    ``https://oauth.pipedrive.com/oauth/token`` (client credentials as HTTP Basic) at the start
    and again whenever Pipedrive answers 401. The token answer's ``api_domain`` becomes the base
    URL.

Pull
    ``GET /api/v2/deals`` (then ``/organizations`` and ``/persons``) sorted by ``update_time``
    ascending, ``limit`` up to 500, paged by ``next_cursor``. Later pulls ask for
    ``updated_since`` one second before the cursor (Pipedrive times are whole seconds) and skip
    what they already have: the cursor after each page is the newest ``update_time`` seen and the
    ids seen at that instant. A page Pipedrive hands out twice (its ``next_cursor`` is the cursor
    just sent) is asked for again.

Won, lost and stages
    Pipedrive stages carry no won/lost flag: a deal's ``status`` (``open``, ``won``, ``lost``)
    says whether it closed. Each pipeline is therefore proposed with its stages plus two closed
    stages, ``won`` and ``lost``, and a deal whose status is won or lost is in one of them
    (whatever stage it closed from). Pushing ``won``/``lost`` sets the status; pushing an open
    stage sets ``stage_id`` and ``status=open`` (reopening a closed deal).

Stage history
    From the v1 changelog (``GET /api/v1/deals/{id}/changelog``): the ``stage_id`` and
    ``status`` changes, oldest first, after the stage the deal was created in (the old value of
    its first stage change). One call per changed deal; a deal that never moved (no
    ``stage_change_time``, still open, never closed) needs none.

Push
    Pipedrive has no batch write for deals: each record is its own ``POST``/``PATCH``. Our deal id
    goes into a custom field (``id_field``, the field's 40-character key); new deals are first
    looked up there with an exact-match search (its own limit, 10 per 2 seconds), and a create
    whose answer was lost is looked up again before it is sent a second time, so a retried create
    never duplicates.

Limits
    A client-side limiter keeps to the burst window of the plan (``rate_limit``; by default the
    lowest plan's: 20 per 2 seconds for an API token, 80 for OAuth), counting each call from when
    its answer came back (so a delay on the way cannot crowd Pipedrive's window), and follows
    ``x-ratelimit-remaining``; a 429 is retried after ``x-ratelimit-reset`` (or ``Retry-After``).
    A spent daily token budget (``x-daily-ratelimit-token-remaining: 0``) stops the sync with a
    :class:`~salesprocess.errors.RateLimited` that is not retriable.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

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
    RemoteStageChange,
)
from salesprocess.sync.timing import RateLimiter, RetryPolicy, Secret

from ._http import HttpClient, Response, VendorPolicy, Verdict
from ._pacing import paced

__all__ = ["LOST", "WON", "PipedriveAdapter", "PipedrivePolicy", "parse_pipedrive_time"]

log = logging.getLogger("salesprocess.adapters.pipedrive")

WON = "won"
"""The stage id a won deal is in (Pipedrive marks it by ``status``, not by a stage)."""
LOST = "lost"
"""The stage id a lost deal is in."""

_MAX_LIMIT = 500


def parse_pipedrive_time(v: Any) -> datetime | None:
    """A Pipedrive time as an aware datetime: v2's RFC 3339 (``2025-05-14T16:02:41Z``) or v1's
    ``2025-05-14 16:02:41`` (UTC)."""
    if v is None or v == "":
        return None
    d = datetime.fromisoformat(str(v).strip().replace("Z", "+00:00"))
    return d if d.tzinfo is not None else d.replace(tzinfo=UTC)


def _rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).replace(microsecond=0, tzinfo=None).isoformat() + "Z"


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def _dec(v: Any) -> Decimal | None:
    """A wire number as an exact Decimal (JSON is parsed with Decimal numbers, never floats)."""
    if v is None or v == "" or isinstance(v, bool):
        return None
    if isinstance(v, float):
        raise AdapterError(f"refusing a binary float amount {v!r}")
    try:
        return Decimal(str(v))
    except InvalidOperation:
        return None


def _id(v: Any) -> str | None:
    if isinstance(v, Mapping):
        v = v.get("value", v.get("id"))
    return None if v in (None, "", 0) else str(v)


def _secret(v: Secret | str | None) -> Secret | None:
    if v is None or isinstance(v, Secret):
        return v
    return Secret(v)


def _int(v: Any) -> int | None:
    try:
        return int(str(v))
    except (TypeError, ValueError):
        return None


class PipedrivePolicy(VendorPolicy):
    """How Pipedrive answers: ``{success: false, error, error_info}`` bodies, ``x-ratelimit-*``
    headers, 429 with ``x-ratelimit-reset``; the token goes in ``x-api-token`` or, for OAuth,
    ``Authorization: Bearer``."""

    name = "pipedrive"

    def __init__(self, auth: str = "api_token") -> None:
        self.auth = auth

    def auth_headers(self, token: Secret) -> dict[str, str]:
        if self.auth == "oauth":
            return {"Authorization": f"Bearer {token.reveal()}"}
        return {"x-api-token": token.reveal()}

    def remaining(self, r: Response) -> int | None:
        v = r.headers.get("x-ratelimit-remaining")
        return int(v) if v is not None and v.isdigit() else None

    def judge(self, r: Response, what: str) -> Verdict:
        if 200 <= r.status < 300:
            body = r.body if isinstance(r.body, dict) else None
            if body is not None and body.get("success") is False:
                return Verdict("raise", RemoteValidationError(
                    f"{what}: Pipedrive answered {r.status} but reported a failure: {body.get('error') or 'no message'}",
                    status=r.status))
            return Verdict("ok")
        body = r.body if isinstance(r.body, dict) else {}
        code = str(body.get("code") or body.get("errorCode") or f"HTTP_{r.status}")
        msg = f"{what}: Pipedrive answered {r.status}: {body.get('error') or body.get('message') or 'no message'}"
        if r.status == 401:
            return Verdict("refresh", AuthError(msg, vendor_code=code, status=401))
        if r.status in (402, 403) and "text/html" not in r.headers.get("content-type", ""):
            if code.startswith("feature_capping"):  # a plan limit (e.g. on open deals): refuses the record
                return Verdict("raise", RemoteValidationError(msg, vendor_code=code, status=r.status))
            return Verdict("raise", AuthError(msg, vendor_code=code, status=r.status))
        if r.status == 429 or r.status == 403:  # a 403 HTML page: Cloudflare after repeated 429s
            if r.headers.get("x-daily-ratelimit-token-remaining") == "0":
                return Verdict("raise", RateLimited(
                    msg + " (the daily token budget is spent; run the sync again after midnight, server time)",
                    vendor_code=code, policy="DAILY", retriable=False, status=r.status))
            wait: float | None = None
            for h in ("retry-after", "x-ratelimit-reset"):
                v = r.headers.get(h)
                if v is None:
                    continue
                try:
                    wait = max(0.0, float(v))
                    break
                except ValueError:
                    continue
            return Verdict("retry", RateLimited(msg, vendor_code=code, retry_after=wait, policy="BURST",
                                                status=r.status), wait, True)
        if r.status >= 500:
            return Verdict("retry", RemoteUnavailable(msg, vendor_code=code, status=r.status))
        return Verdict("raise", RemoteValidationError(msg, vendor_code=code, status=r.status))


class PipedriveAdapter:
    """The Pipedrive :class:`~salesprocess.sync.CrmAdapter`.

    :param base_url: ``https://COMPANY.pipedrive.com`` (or ``https://api.pipedrive.com``), or a
        fake's URL. Paths ``/api/v2/...`` and ``/api/v1/...`` are added to it.
    :param token: the API token (``x-api-token``); or an OAuth access token with
        ``auth="oauth"``.
    :param refresh_token: with ``client_id`` and ``client_secret``: use OAuth and refresh the
        access token when Pipedrive reports it expired (or fetch one at the start).
    :param oauth_url: the OAuth server (``https://oauth.pipedrive.com``).
    :param page_size: records per page (Pipedrive allows 500).
    :param rate_limit: ``(calls, seconds)`` for the client-side limiter (default: the lowest
        plan's burst window, 20 per 2 s for API tokens and 80 per 2 s for OAuth); ``None`` turns it
        off.
    :param search_rate_limit: the search endpoint's limit (10 per 2 s).
    :param id_field: the key of the custom deal field holding our deal id (create a text field
        in Pipedrive and copy its key); ``None`` turns the lookup before creates off.
    :param history: read each changed deal's stage history from the v1 changelog.
    :param lost_reason: the lost reason written when a deal is pushed as lost.
    """

    name = "pipedrive"
    capabilities = frozenset({
        AdapterCapability.PUSH, AdapterCapability.STAGE_HISTORY, AdapterCapability.PIPELINES,
        AdapterCapability.ACCOUNTS, AdapterCapability.CONTACTS, AdapterCapability.RATE_LIMITS,
        AdapterCapability.CREDENTIALS,
    })
    push_batch_size = 50
    """Records per push call; each is still its own request (Pipedrive has no batch write for deals)."""

    def __init__(
        self,
        *,
        token: Secret | str | None = None,
        base_url: str = "https://api.pipedrive.com",
        auth: str | None = None,
        refresh_token: Secret | str | None = None,
        client_id: str | None = None,
        client_secret: Secret | str | None = None,
        oauth_url: str = "https://oauth.pipedrive.com",
        client: Any = None,
        transport: Any = None,
        page_size: int = 500,
        rate_limit: tuple[int, float] | bool | None = True,
        search_rate_limit: tuple[int, float] | None = (10, 2.0),
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        seed: int | None = None,
        id_field: str | None = None,
        history: bool = True,
        lost_reason: str | None = None,
        connection: str | None = None,
    ) -> None:
        if not 1 <= page_size <= _MAX_LIMIT:
            raise ValueError(f"page_size must be between 1 and {_MAX_LIMIT} (Pipedrive's limit), got {page_size}")
        self._refresh_token = _secret(refresh_token)
        self._client_secret = _secret(client_secret)
        self._client_id = client_id
        can_refresh = self._refresh_token is not None and client_id is not None and self._client_secret is not None
        if auth is None:
            auth = "oauth" if can_refresh else "api_token"
        if auth not in ("api_token", "oauth"):
            raise ValueError(f"auth is 'api_token' or 'oauth', got {auth!r}")
        if auth == "api_token" and token is None:
            raise AuthError("the pipedrive adapter needs an API token, or an OAuth refresh token with "
                            "client_id and client_secret")
        if auth == "oauth" and token is None and not can_refresh:
            raise AuthError("OAuth needs an access token, or a refresh token with client_id and client_secret")
        self.auth = auth
        self.oauth_url = oauth_url.rstrip("/")
        if rate_limit is True:
            rate_limit = (80, 2.0) if auth == "oauth" else (20, 2.0)
        elif rate_limit is False:
            rate_limit = None
        common: dict[str, Any] = {
            "base_url": base_url, "vendor": PipedrivePolicy(auth), "token": _secret(token),
            "refresher": self._refresh if (auth == "oauth" and can_refresh) else None,
            "timeout": timeout, "clock": clock, "sleep": sleep, "seed": seed,
        }
        self.http = HttpClient(client=client, transport=transport, retry=retry, rate_limit=rate_limit, **common)
        self.http.limiter = paced(self.http.limiter)
        self.retry = self.http.retry
        shared = self.http._client
        self.http_once = HttpClient(client=shared, retry=RetryPolicy(attempts=1), **common)
        """For creates: a lost answer is looked up, never blindly sent again."""
        self.http_once.limiter = self.http.limiter
        self.search_limiter = None if search_rate_limit is None else RateLimiter(*search_rate_limit, clock=clock, sleep=sleep)
        self._sleep = sleep
        self.page_size = page_size
        self.id_field = id_field
        self.history = history
        self.lost_reason = lost_reason
        self.connection = connection
        self.history_calls = 0
        """Changelog pages read (the cost of stage history)."""

    def __repr__(self) -> str:
        return f"PipedriveAdapter({self.http.base_url!r}, auth={self.auth!r})"

    def close(self) -> None:
        self.http.close()

    @property
    def calls(self) -> int:
        return self.http.calls + self.http_once.calls

    @property
    def throttled(self) -> int:
        return self.http.throttled + self.http_once.throttled

    # --- auth --------------------------------------------------------------------------------------
    def _refresh(self, http: HttpClient) -> tuple[Secret, float | None]:
        assert self._refresh_token is not None
        assert self._client_secret is not None
        basic = base64.b64encode(f"{self._client_id}:{self._client_secret.reveal()}".encode()).decode()
        try:
            r = self.http.request("POST", self.oauth_url + "/oauth/token", form={
                "grant_type": "refresh_token", "refresh_token": self._refresh_token.reveal(),
            }, headers={"Authorization": f"Basic {basic}"}, auth=False, limiter=False, what="token refresh")
        except (RemoteValidationError, AuthError) as e:
            raise AuthError("Pipedrive refused the refresh token or the client credentials; authorise the app again",
                            vendor_code=e.vendor_code) from None
        body = r.body if isinstance(r.body, dict) else {}
        tok = body.get("access_token")
        if not isinstance(tok, str) or not tok:
            raise AuthError("Pipedrive's token endpoint returned no access token")
        domain = body.get("api_domain")
        if isinstance(domain, str) and domain.startswith(("http://", "https://")):
            for h in (self.http, self.http_once):
                h.base_url = domain.rstrip("/")
        exp = body.get("expires_in")
        expires = float(exp) if isinstance(exp, int | Decimal) else None
        other = self.http_once if http is self.http else self.http
        other.set_token(Secret(tok), expires)
        return Secret(tok), expires

    def _ensure_token(self) -> None:
        if not self.http.has_token:
            tok, exp = self._refresh(self.http)
            self.http.set_token(tok, exp)
        elif not self.http_once.has_token or self.http_once._token != self.http._token:
            assert self.http._token is not None
            self.http_once.set_token(self.http._token)

    def _get(self, path: str, params: Mapping[str, Any] | None = None, *, what: str,
             limiter: RateLimiter | bool = True) -> dict[str, Any]:
        self._ensure_token()
        r = self.http.request("GET", path, params=params, what=what, limiter=limiter)
        return r.body if isinstance(r.body, dict) else {}

    # --- pipelines ---------------------------------------------------------------------------------
    def _all(self, path: str, params: Mapping[str, Any], what: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(10_000):
            p = dict(params)
            if cursor:
                p["cursor"] = cursor
            body = self._get(path, p, what=what)
            out.extend(x for x in body.get("data") or [] if isinstance(x, dict))
            nxt = (body.get("additional_data") or {}).get("next_cursor")
            if not nxt or nxt == cursor:
                break
            cursor = str(nxt)
        return out

    def pipelines(self) -> list[RemotePipeline]:
        pipes = self._all("/api/v2/pipelines", {"limit": _MAX_LIMIT}, "read pipelines")
        stages = self._all("/api/v2/stages", {"limit": _MAX_LIMIT}, "read stages")
        out = []
        for p in sorted(pipes, key=lambda p: (p.get("order_nr") or 0, p["id"])):
            if p.get("is_deleted"):
                continue
            use_prob = p.get("is_deal_probability_enabled", True)
            mine = sorted((s for s in stages if s.get("pipeline_id") == p["id"] and not s.get("is_deleted")),
                          key=lambda s: (s.get("order_nr") or 0, s["id"]))
            rs = []
            for s in mine:
                prob = _dec(s.get("deal_probability")) if use_prob else None
                rs.append(RemoteStage(str(s["id"]), str(s.get("name") or s["id"]), int(s.get("order_nr") or 0),
                                      None if prob is None else prob / 100))
            top = max((x.order for x in rs), default=0)
            rs.append(RemoteStage(WON, "Won", top + 1, Decimal(1), closed=True, won=True))
            rs.append(RemoteStage(LOST, "Lost", top + 2, Decimal(0), closed=True, won=False))
            out.append(RemotePipeline(str(p["id"]), str(p.get("name") or p["id"]), tuple(rs)))
        return out

    # --- pull --------------------------------------------------------------------------------------
    def pull(self, kind: str, cursor: Mapping[str, Any] | None) -> Iterator[Page]:
        if kind == ObjectKind.DEALS:
            yield from self._listing("/api/v2/deals", cursor, self._deals)
        elif kind == ObjectKind.ACCOUNTS:
            yield from self._listing("/api/v2/organizations", cursor, self._orgs)
        elif kind == ObjectKind.CONTACTS:
            yield from self._listing("/api/v2/persons", cursor, self._persons)

    def _listing(self, path: str, cursor: Mapping[str, Any] | None,
                 convert: Callable[[list[dict[str, Any]]], list[RemoteRecord]]) -> Iterator[Page]:
        cur = dict(cursor or {})
        since = parse_pipedrive_time(cur.get("ts"))
        since_ids = set(cur.get("ids", ()))
        top, top_ids = since, set(since_ids)
        params: dict[str, Any] = {"sort_by": "update_time", "sort_direction": "asc", "limit": self.page_size}
        if since is not None:
            params["updated_since"] = _rfc3339(since - timedelta(seconds=1))
        emitted: set[tuple[str, datetime]] = set()
        sent: str | None = None
        repeats = 0
        while True:
            p = dict(params)
            if sent is not None:
                p["cursor"] = sent
            body = self._get(path, p, what=f"list {path.rsplit('/', 1)[-1]}")
            rows = [o for o in body.get("data") or [] if isinstance(o, dict)]
            nxt = (body.get("additional_data") or {}).get("next_cursor")
            if sent is not None and nxt == sent and rows:
                repeats += 1  # the page before came back again: ask once more
                if repeats > self.retry.attempts:
                    raise RemoteUnavailable(f"list {path}: Pipedrive keeps answering an earlier page")
                continue
            repeats = 0
            fresh: list[dict[str, Any]] = []
            for o in rows:
                rid = str(o["id"])
                m = parse_pipedrive_time(o.get("update_time"))
                if m is None:
                    raise RemoteUnavailable(f"Pipedrive record {rid} of {path} came without update_time")
                if since is not None and (m < since or (m == since and rid in since_ids)):
                    continue
                if top is None or m > top:
                    top, top_ids = m, {rid}
                elif m == top:
                    top_ids.add(rid)
                if (rid, m) not in emitted:
                    emitted.add((rid, m))
                    fresh.append(o)
            yield Page(tuple(convert(fresh)) if fresh else (), {"ts": _iso(top), "ids": sorted(top_ids)})
            if not nxt:
                return
            sent = str(nxt)

    def changelog(self, deal_id: str) -> list[dict[str, Any]]:
        """A deal's v1 changelog entries (every page), as Pipedrive sends them."""
        out: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            p: dict[str, Any] = {"limit": _MAX_LIMIT}
            if cursor:
                p["cursor"] = cursor
            self.history_calls += 1
            body = self._get(f"/api/v1/deals/{deal_id}/changelog", p, what="read a deal's changelog")
            out.extend(x for x in body.get("data") or [] if isinstance(x, dict))
            nxt = (body.get("additional_data") or {}).get("next_cursor")
            if not nxt or nxt == cursor:
                return out
            cursor = str(nxt)

    @staticmethod
    def _closed(status: Any) -> str | None:
        return status if status in (WON, LOST) else None

    def stage_history(self, o: Mapping[str, Any]) -> tuple[RemoteStageChange, ...]:
        """The stage history of a deal (a v2 deal record), oldest first: the stage it was created
        in, then its moves, ``won``/``lost`` when its status closed it."""
        added = parse_pipedrive_time(o.get("add_time"))
        status = o.get("status")
        stage = str(o.get("stage_id"))
        closed_at = parse_pipedrive_time(o.get("won_time") or o.get("lost_time") or o.get("close_time"))
        quiet = o.get("stage_change_time") in (None, "") and status == "open" and closed_at is None
        if quiet or not self.history:
            entries: list[dict[str, Any]] = []
        else:
            entries = [e for e in self.changelog(str(o["id"])) if e.get("field_key") in ("stage_id", "status")]
        stamped = []
        for i, e in enumerate(entries):
            at = parse_pipedrive_time(e.get("time"))
            if at is not None:
                stamped.append((at, 0 if e["field_key"] == "stage_id" else 1, -i, e))
        stamped.sort(key=lambda x: x[:3])  # Pipedrive lists newest first; ties keep their order
        first_stage = next((e for *_, e in stamped if e["field_key"] == "stage_id"), None)
        first_status = next((e for *_, e in stamped if e["field_key"] == "status"), None)
        cur_stage = str(first_stage["old_value"]) if first_stage and first_stage.get("old_value") else stage
        cur_status = str(first_status["old_value"]) if first_status and first_status.get("old_value") else str(status)
        if added is None:
            return ()
        hist = [RemoteStageChange(self._closed(cur_status) or cur_stage, added)]
        for at, _, _, e in stamped:
            if e["field_key"] == "stage_id":
                cur_stage = str(e.get("new_value"))
            else:
                cur_status = str(e.get("new_value"))
            if cur_status == "deleted":
                continue
            now = self._closed(cur_status) or cur_stage
            if now != hist[-1].stage:
                hist.append(RemoteStageChange(now, max(at, hist[-1].at)))
        final = self._closed(status) or stage
        if hist[-1].stage != final and not stamped and closed_at is not None:
            hist.append(RemoteStageChange(final, max(closed_at, hist[-1].at)))
        return tuple(hist)

    def _deals(self, rows: list[dict[str, Any]]) -> list[RemoteRecord]:
        out: list[RemoteRecord] = []
        for o in rows:
            modified = parse_pipedrive_time(o.get("update_time"))
            assert modified is not None
            status = o.get("status")
            cd = o.get("expected_close_date")
            custom = o.get("custom_fields") or {}
            local = custom.get(self.id_field) if self.id_field and isinstance(custom, Mapping) else None
            person = _id(o.get("person_id"))
            out.append(RemoteDeal(
                id=str(o["id"]), modified_at=modified, name=str(o.get("title") or ""),
                stage=self._closed(status) or _id(o.get("stage_id")), pipeline=_id(o.get("pipeline_id")),
                amount=_dec(o.get("value")) or None, currency=o.get("currency") or None,
                close_date=date.fromisoformat(str(cd)) if cd else None, owner=_id(o.get("owner_id")),
                account=_id(o.get("org_id")), contacts=(person,) if person else (),
                created_at=parse_pipedrive_time(o.get("add_time")), local_id=str(local) if local else None,
                history=self.stage_history(o) if self.history else None,
                archived=bool(o.get("is_archived") or o.get("is_deleted") or status == "deleted"),
            ))
        return out

    def _orgs(self, rows: list[dict[str, Any]]) -> list[RemoteRecord]:
        out: list[RemoteRecord] = []
        for o in rows:
            modified = parse_pipedrive_time(o.get("update_time"))
            assert modified is not None
            out.append(RemoteAccount(
                id=str(o["id"]), modified_at=modified, name=str(o.get("name") or ""),
                country=o.get("address_country") or None, owner=_id(o.get("owner_id")),
            ))
        return out

    def _persons(self, rows: list[dict[str, Any]]) -> list[RemoteRecord]:
        out: list[RemoteRecord] = []
        for o in rows:
            modified = parse_pipedrive_time(o.get("update_time"))
            assert modified is not None

            def primary(v: Any) -> str | None:
                items = [x for x in v or [] if isinstance(x, Mapping) and x.get("value")]
                best = next((x for x in items if x.get("primary")), items[0] if items else None)
                return None if best is None else str(best["value"])

            out.append(RemoteContact(
                id=str(o["id"]), modified_at=modified, name=str(o.get("name") or ""),
                email=primary(o.get("emails")), phone=primary(o.get("phones")), title=o.get("job_title") or None,
                account=_id(o.get("org_id")),
            ))
        return out

    # --- push --------------------------------------------------------------------------------------
    def _body(self, item: PushItem, creating: bool) -> dict[str, Any]:
        v = item.values
        out: dict[str, Any] = {}
        if "name" in v:
            out["title"] = str(v["name"] or "")
        if "amount" in v:
            out["value"] = v["amount"]
        if v.get("currency"):
            out["currency"] = str(v["currency"])
        if "close_date" in v:
            cd = v["close_date"]
            out["expected_close_date"] = None if cd is None else (cd.isoformat() if isinstance(cd, date) else str(cd))
        if v.get("owner") is not None:
            owner = _int(v["owner"])
            if owner is None:
                raise RemoteValidationError(f"deal {item.local_id}: owner {v['owner']!r} is not a Pipedrive user id",
                                            vendor_code="INVALID_OWNER", fields=("owner_id",))
            out["owner_id"] = owner
        if "stage" in v:
            stage = str(v["stage"])
            if stage in (WON, LOST):
                out["status"] = stage
                if stage == LOST and self.lost_reason:
                    out["lost_reason"] = self.lost_reason
            else:
                sid = _int(stage)
                if sid is None:
                    raise RemoteValidationError(f"deal {item.local_id}: {stage!r} is not a Pipedrive stage id",
                                                vendor_code="INVALID_STAGE", fields=("stage_id",))
                out["stage_id"] = sid
                out["status"] = "open"
        if creating:
            pid = _int(item.pipeline) if item.pipeline else None
            if pid is not None and "stage_id" not in out:
                out["pipeline_id"] = pid
            if self.id_field:
                out["custom_fields"] = {self.id_field: item.local_id}
        return out

    def find(self, local_ids: Sequence[str]) -> dict[str, str]:
        """Our deal ids already in Pipedrive (in the ``id_field``) → their Pipedrive ids."""
        if not self.id_field:
            return {}
        out: dict[str, str] = {}
        for lid in local_ids:
            body = self._get("/api/v2/deals/search", {"term": lid, "fields": "custom_fields", "exact_match": "true",
                                                      "limit": 10}, what="look a deal up by its id field",
                             limiter=self.search_limiter or True)
            items = ((body.get("data") or {}).get("items") or []) if isinstance(body.get("data"), dict) else []
            for it in items:
                d = it.get("item") if isinstance(it, Mapping) else None
                if isinstance(d, Mapping) and lid in (d.get("custom_fields") or []):
                    out[lid] = str(d["id"])
                    break
        return out

    @staticmethod
    def _failure(item: PushItem, e: AdapterError, retriable: bool = False) -> PushResult:
        fields = e.fields if isinstance(e, RemoteValidationError) else ()
        return PushResult(item.local_id, False, code=e.vendor_code or type(e).__name__, message=str(e),
                          retriable=retriable, fields=fields)

    def _create(self, item: PushItem) -> PushResult:
        try:
            body = self._body(item, True)
        except RemoteValidationError as e:
            return self._failure(item, e)
        last: AdapterError | None = None
        for attempt in range(self.retry.attempts):
            if attempt:
                asked = last.retry_after if isinstance(last, RateLimited) else None
                self._sleep(self.retry.delay(attempt - 1, self.http._rng, asked))
            self._ensure_token()
            try:
                r = self.http_once.request("POST", "/api/v2/deals", json_body=body, what="create a deal")
            except RateLimited as e:
                if not e.retriable:
                    raise
                last = e  # refused before it ran: send it again
                continue
            except RemoteUnavailable as e:
                last = e  # it may have run: look before sending it again
                found = self.find([item.local_id]).get(item.local_id)
                if found is not None:
                    return PushResult(item.local_id, True, remote_id=found, created=True)
                continue
            except RemoteValidationError as e:
                return self._failure(item, e)
            d = (r.body or {}).get("data") if isinstance(r.body, dict) else None
            if not isinstance(d, Mapping) or d.get("id") is None:
                return PushResult(item.local_id, False, code="NO_ID", message="Pipedrive created the deal but sent no id")
            return PushResult(item.local_id, True, remote_id=str(d["id"]), created=True)
        assert last is not None
        return self._failure(item, last, retriable=True)

    def _update(self, item: PushItem, rid: str) -> PushResult:
        try:
            body = self._body(item, False)
        except RemoteValidationError as e:
            return self._failure(item, e)
        if not body:
            return PushResult(item.local_id, True, remote_id=rid)
        self._ensure_token()
        try:
            self.http.request("PATCH", f"/api/v2/deals/{rid}", json_body=body, what="update a deal")
        except RemoteValidationError as e:
            return self._failure(item, e)
        except RemoteUnavailable as e:
            return self._failure(item, e, retriable=True)
        except RateLimited as e:
            if not e.retriable:
                raise
            return self._failure(item, e, retriable=True)
        return PushResult(item.local_id, True, remote_id=rid)

    def push(self, items: Sequence[PushItem]) -> list[PushResult]:
        if len(items) > self.push_batch_size:
            raise ValueError(f"push at most {self.push_batch_size} records at a time")
        known = self.find([i.local_id for i in items if i.remote_id is None])
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


def _factory(config: Mapping[str, Any], **options: Any) -> PipedriveAdapter:
    """Build the adapter from a connection's config (see :class:`~salesprocess.sync.Connection`):
    ``token_env`` names the API token; or ``refresh_token_env``, ``client_id`` and
    ``client_secret_env`` the OAuth app."""
    from salesprocess.sync.connections import parse_rate

    cfg = {**dict(config), **options}
    cfg.pop("app", None)
    kw: dict[str, Any] = {}
    for key in ("token", "base_url", "auth", "refresh_token", "client_id", "client_secret", "oauth_url", "client",
                "transport", "page_size", "retry", "timeout", "clock", "sleep", "seed", "id_field", "history",
                "lost_reason", "connection"):
        if key in cfg:
            kw[key] = cfg.pop(key)
    for key in ("rate_limit", "search_rate_limit"):
        if key in cfg:
            v = cfg.pop(key)
            kw[key] = parse_rate(v) if isinstance(v, str) else (None if v is False else v)
    if cfg:
        raise AdapterError(f"unknown pipedrive adapter option(s): {', '.join(sorted(cfg))}")
    return PipedriveAdapter(**kw)


@hookimpl
def salesprocess_register_adapters(register: Callable[..., None]) -> None:
    register("crm", "pipedrive", _factory, "Pipedrive API v2 (deals with status and changelog history, organizations, persons)")
