"""Odoo CRM adapter (external API: JSON-2 for Odoo 19 and later, JSON-RPC ``execute_kw`` before).

Transports
    ``protocol="json2"`` posts to ``/json/2/<model>/<method>`` with ``Authorization: bearer
    <API key>`` and ``X-Odoo-Database``; ``protocol="jsonrpc"`` posts ``execute_kw(db, uid, key,
    model, method, args, kwargs)`` to ``/jsonrpc`` (the uid comes from ``common.authenticate``
    with ``login`` unless given); ``protocol="auto"`` (the default) asks ``common.version`` once
    and takes JSON-2 from Odoo 19 on. The key is a :class:`~salesprocess.sync.Secret`: it goes
    into the one header or request body that needs it, never into a URL, log line or error.

Pull
    Opportunities are ``crm.lead`` records with ``type = 'opportunity'``, read with
    ``search_read`` ordered by ``write_date, id`` and the context ``active_test: false``, so
    archived (lost) opportunities come too. Odoo has no cursors: each page is a new query from
    the newest ``write_date`` seen (``write_date >= ts``, leaving out the ids already read at
    that second), so records changed while a pull runs cannot shift others out of view. Odoo
    gives every record of one transaction the same ``write_date``; when more than ``tie_limit``
    records share one second, the adapter reads that second by id
    (``ts <= write_date < ts + 1s, id > last``) before going on.

Stages, won and lost
    ``crm.stage`` records are the stages, in ``sequence`` order; a stage with ``is_won`` is a won
    stage. Odoo has no lost stage: a lost opportunity is archived (``active = False``) with
    probability 0 and usually a lost reason, whatever stage it was in. Each pipeline is therefore
    proposed with Odoo's stages plus a closed stage ``lost``, and an opportunity that is archived
    with a lost reason or probability 0 is in it. One pipeline holds every stage by default;
    ``by_team=True`` makes one pipeline per sales team (``crm.team`` with ``use_opportunities``)
    with the shared stages and the team's own.

Stage history
    From the chatter's tracking: ``mail.tracking.value`` records of ``stage_id`` and ``active``
    for the page's opportunities and their ``mail.message`` dates (two calls per page). The
    tracking field is ``field_id`` from Odoo 17 and ``field`` before (``tracking_field``). When the
    API user may not read tracking values, the adapter warns once and goes on without history.

Money
    Odoo keeps money as binary floats and sends them as JSON floats (``48000.1`` may come as
    ``48000.100000000006``). The JSON is parsed with :class:`~decimal.Decimal` numbers (never
    ``float``) and each amount is taken through its string form and rounded half-even to the
    currency's minor units (2 for USD and CNY, 0 for JPY, 3 for KWD): the exact amount Odoo
    rounded it to when it was written. The currency is the company's (``company_currency``).
    Odoo has no empty amount: ``0.0`` reads as no amount, and no amount is written as ``0``.

Push
    New opportunities are first looked up by a custom field holding our deal id (``id_field``,
    ``x_salesprocess_id`` by default; create it with Studio), then created in one ``create``
    call per batch (one transaction: when Odoo refuses one record, each is created alone to
    find it). A create whose answer was lost is looked up again before it is sent a second
    time. Changes go out with ``write`` per record: a lost deal is archived with probability 0
    (and ``lost_reason_id`` when configured); moving it to another stage reactivates it.

Limits
    Odoo publishes no API rate limit; a reverse proxy may answer 429 (retried after
    ``Retry-After``) or 502/503 (retried with backoff). Set ``rate_limit`` to stay under a
    proxy's limit; each call counts from when its answer came back.
"""

from __future__ import annotations

import itertools
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from salesprocess.errors import (
    AdapterError,
    AuthError,
    DomainError,
    RateLimited,
    RemoteUnavailable,
    RemoteValidationError,
)
from salesprocess.hookspecs import hookimpl
from salesprocess.money import minor_units
from salesprocess.sync.adapter import (
    AdapterCapability,
    ObjectKind,
    Page,
    PushItem,
    PushResult,
    RemoteDeal,
    RemotePipeline,
    RemoteRecord,
    RemoteStage,
    RemoteStageChange,
)
from salesprocess.sync.timing import RetryPolicy, Secret

from ._http import HttpClient, Response, VendorPolicy, Verdict
from ._pacing import paced

__all__ = ["LOST", "PIPELINE", "OdooAdapter", "OdooPolicy", "odoo_money", "parse_odoo_time"]

log = logging.getLogger("salesprocess.adapters.odoo")

LOST = "lost"
"""The stage id a lost (archived) opportunity is in."""
PIPELINE = "crm"
"""The pipeline id of the single pipeline (when pipelines are not split by sales team)."""

_DT = "%Y-%m-%d %H:%M:%S"
_RETRY_NAMES = ("psycopg2", "SerializationFailure", "OperationalError", "LockNotAvailable", "ConcurrencyError")


def parse_odoo_time(v: Any) -> datetime | None:
    """An Odoo datetime (``"2025-05-14 16:02:41"``, UTC) as an aware datetime; ``False`` → ``None``."""
    if v in (None, False, ""):
        return None
    s = str(v).strip()
    try:
        d = datetime.strptime(s[:19], _DT)
    except ValueError:
        d = datetime.fromisoformat(s.replace("Z", "+00:00"))
    return d if d.tzinfo is not None else d.replace(tzinfo=UTC)


def _odoo_time(at: datetime) -> str:
    return at.astimezone(UTC).strftime(_DT)


def odoo_money(v: Any, currency: str | None) -> Decimal | None:
    """An Odoo money value as an exact Decimal: through its string form, rounded half-even to the
    currency's minor units. ``0`` (Odoo's empty amount) and ``False`` are ``None``. A binary
    ``float`` is refused: the JSON must have been parsed with Decimal numbers."""
    if v is None or v is False or v == "":
        return None
    if isinstance(v, float):
        raise AdapterError(f"refusing a binary float amount {v!r}; parse the JSON with Decimal numbers")
    if isinstance(v, bool) or not isinstance(v, int | Decimal | str):
        raise AdapterError(f"an Odoo amount must be a number, got {type(v).__name__}")
    try:
        d = Decimal(str(v))
    except InvalidOperation:
        raise AdapterError(f"an Odoo amount must be a number, got {v!r}") from None
    if not d.is_finite():
        raise AdapterError(f"an Odoo amount must be finite, got {v!r}")
    if currency:
        try:
            d = d.quantize(Decimal(1).scaleb(-minor_units(currency)), rounding=ROUND_HALF_EVEN)
        except DomainError:
            pass  # not an ISO currency: left exact, the engine reports it
    return d if d else None


def _m2o(v: Any) -> tuple[int, str] | None:
    if isinstance(v, list | tuple) and len(v) == 2 and isinstance(v[0], int):
        return v[0], str(v[1])
    if isinstance(v, int) and not isinstance(v, bool) and v:
        return v, ""
    return None


def _m2o_id(v: Any) -> str | None:
    p = _m2o(v)
    return None if p is None else str(p[0])


def _secret(v: Secret | str | None) -> Secret | None:
    if v is None or isinstance(v, Secret):
        return v
    return Secret(v)


def _version(info: Any) -> int | None:
    """The major version from ``common.version`` (``19``, ``"saas~18"`` → 18)."""
    if not isinstance(info, Mapping):
        return None
    vi = info.get("server_version_info")
    head = vi[0] if isinstance(vi, list | tuple) and vi else info.get("server_version")
    m = re.search(r"(\d+)", str(head or ""))
    return int(m.group(1)) if m else None


class OdooPolicy(VendorPolicy):
    """How Odoo answers: JSON-2 errors as 4xx/5xx ``{name, message, arguments}``, JSON-RPC errors
    inside HTTP 200 (``error.data.name`` is the exception), proxies' 429/502/503 pages."""

    name = "odoo"

    def __init__(self, protocol: str = "json2") -> None:
        self.protocol = protocol

    def auth_headers(self, token: Secret) -> dict[str, str]:
        if self.protocol == "json2":
            return {"Authorization": f"bearer {token.reveal()}"}
        return {}

    @staticmethod
    def _classify(name: str, msg: str, status: int) -> Verdict:
        if name in ("odoo.exceptions.AccessDenied", "werkzeug.exceptions.Unauthorized") or "SessionExpired" in name:
            return Verdict("raise", AuthError(msg, vendor_code=name, status=status))
        if any(x in name for x in _RETRY_NAMES):
            return Verdict("retry", RemoteUnavailable(msg, vendor_code=name, status=status))
        return Verdict("raise", RemoteValidationError(msg, vendor_code=name, status=status))

    def judge(self, r: Response, what: str) -> Verdict:
        body = r.body if isinstance(r.body, dict) else {}
        if 200 <= r.status < 300:
            err = body.get("error") if self.protocol == "jsonrpc" or "jsonrpc" in body else None
            if isinstance(err, Mapping):
                raw = err.get("data")
                data: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
                name = str(data.get("name") or err.get("message") or "odoo.error")
                msg = f"{what}: Odoo refused: {data.get('message') or err.get('message') or name} ({name})"
                if err.get("code") == 100:
                    return Verdict("raise", AuthError(msg, vendor_code=name, status=r.status))
                return self._classify(name, msg, r.status)
            if self.protocol == "jsonrpc" and "result" not in body:
                return Verdict("retry", RemoteUnavailable(f"{what}: Odoo's answer has neither result nor error",
                                                          status=r.status))
            return Verdict("ok")
        name = str(body.get("name") or f"HTTP_{r.status}")
        msg = f"{what}: Odoo answered {r.status}: {body.get('message') or 'no message'} ({name})"
        if r.status == 429:
            wait: float | None = None
            try:
                wait = max(0.0, float(r.headers.get("retry-after", "")))
            except ValueError:
                wait = None
            return Verdict("retry", RateLimited(msg, vendor_code=name, retry_after=wait, status=429), wait, True)
        if r.status >= 500 and not body.get("name"):
            return Verdict("retry", RemoteUnavailable(msg, vendor_code=name, status=r.status))
        if r.status == 401:
            return Verdict("raise", AuthError(msg, vendor_code=name, status=401))
        if r.status == 404 and not body:
            return Verdict("raise", RemoteValidationError(
                f"{what}: Odoo answered 404 without a JSON body (no JSON-2 API before Odoo 19: set protocol = \"jsonrpc\")",
                vendor_code="HTTP_404", status=404))
        if r.status >= 500:
            return self._classify(name, msg, r.status) if any(x in name for x in _RETRY_NAMES) else Verdict(
                "retry", RemoteUnavailable(msg, vendor_code=name, status=r.status))
        return self._classify(name, msg, r.status)


class OdooAdapter:
    """The Odoo :class:`~salesprocess.sync.CrmAdapter` (CRM opportunities).

    :param base_url: the Odoo server (``https://mycompany.odoo.com``), or a fake's URL.
    :param db: the database name.
    :param token: the API key (or, with JSON-RPC, the user's password).
    :param login: the API user's login (JSON-RPC: to get the uid); or give ``uid``.
    :param protocol: ``json2`` (Odoo 19+), ``jsonrpc`` (``execute_kw``) or ``auto``.
    :param page_size: records per ``search_read`` page.
    :param rate_limit: ``(calls, seconds)`` for the client-side limiter (a proxy's limit); Odoo
        publishes none, so the default is ``None``.
    :param id_field: the custom ``crm.lead`` char field holding our deal id (``None``: no lookup
        before creates).
    :param history: read stage history from the chatter's tracking values.
    :param tracking_field: ``field_id`` (Odoo 17+) or ``field`` (earlier); ``None`` picks by version.
    :param by_team: one pipeline per sales team instead of one for all.
    :param lost_reason_id: the ``crm.lost.reason`` id written when a deal is pushed as lost.
    :param currency: the currency of amounts when ``company_currency`` cannot be read.
    :param tie_limit: how many records may share one ``write_date`` second before the adapter
        reads that second by id.
    :param context: extra context for every call (``lang``, ``tz``, ``allowed_company_ids``).
    """

    name = "odoo"
    capabilities = frozenset({
        AdapterCapability.PUSH, AdapterCapability.STAGE_HISTORY, AdapterCapability.PIPELINES,
        AdapterCapability.RATE_LIMITS, AdapterCapability.CREDENTIALS,
    })
    push_batch_size = 100

    def __init__(
        self,
        *,
        base_url: str,
        db: str,
        token: Secret | str,
        login: str | None = None,
        uid: int | None = None,
        protocol: str = "auto",
        version: int | None = None,
        client: Any = None,
        transport: Any = None,
        page_size: int = 500,
        rate_limit: tuple[int, float] | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        seed: int | None = None,
        id_field: str | None = "x_salesprocess_id",
        history: bool = True,
        tracking_field: str | None = None,
        by_team: bool = False,
        lost_reason_id: int | None = None,
        currency: str | None = None,
        tie_limit: int = 1000,
        context: Mapping[str, Any] | None = None,
        connection: str | None = None,
    ) -> None:
        if protocol not in ("auto", "json2", "jsonrpc"):
            raise ValueError(f"protocol is 'auto', 'json2' or 'jsonrpc', got {protocol!r}")
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, got {page_size}")
        if tie_limit < 1:
            raise ValueError(f"tie_limit must be at least 1, got {tie_limit}")
        if uid is None and login is None and protocol != "json2":
            raise AuthError("the odoo adapter needs login (or uid) for JSON-RPC")
        self.db = db
        self.login = login
        self.uid = uid
        self._key = _secret(token)
        if self._key is None or not self._key:
            raise AuthError("the odoo adapter needs an API key (name its environment variable with token_env)")
        self.protocol = protocol
        self.version = version if version is not None else (19 if protocol == "json2" else None)
        self.policy = OdooPolicy("json2" if protocol == "json2" else "jsonrpc")
        common: dict[str, Any] = {"base_url": base_url, "vendor": self.policy, "token": self._key,
                                  "timeout": timeout, "clock": clock, "sleep": sleep, "seed": seed}
        self.http = HttpClient(client=client, transport=transport, retry=retry, rate_limit=rate_limit, **common)
        self.http.limiter = paced(self.http.limiter)
        self.retry = self.http.retry
        self.http_once = HttpClient(client=self.http._client, retry=RetryPolicy(attempts=1), **common)
        """For creates: a lost answer is looked up, never blindly sent again."""
        self.http_once.limiter = self.http.limiter
        self._sleep = sleep
        self.page_size = page_size
        self.id_field = id_field
        self.history = history
        self.tracking_field = tracking_field
        self.by_team = by_team
        self.lost_reason_id = lost_reason_id
        self.currency = currency
        self.tie_limit = tie_limit
        self.context = dict(context or {})
        self.connection = connection
        self._ids = itertools.count(1)
        self._history_ok = history
        self._tracked: dict[str, int] | None = None
        self._company_currency: str | None = None

    def __repr__(self) -> str:
        return f"OdooAdapter({self.http.base_url!r}, db={self.db!r}, protocol={self.protocol!r})"

    def close(self) -> None:
        self.http.close()

    @property
    def calls(self) -> int:
        return self.http.calls + self.http_once.calls

    @property
    def throttled(self) -> int:
        return self.http.throttled + self.http_once.throttled

    # --- calls -------------------------------------------------------------------------------------
    def _rpc(self, service: str, method: str, args: list[Any], *, what: str, once: bool = False) -> Any:
        http = self.http_once if once else self.http
        body = {"jsonrpc": "2.0", "method": "call", "id": next(self._ids),
                "params": {"service": service, "method": method, "args": args}}
        r = http.request("POST", "/jsonrpc", json_body=body, auth=False, what=what)
        return r.body.get("result") if isinstance(r.body, dict) else None

    def server_version(self) -> int | None:
        """The server's major version (``common.version``, no login needed)."""
        if self.version is None:
            saved = self.policy.protocol
            self.policy.protocol = "jsonrpc"
            try:
                self.version = _version(self._rpc("common", "version", [], what="read the Odoo version"))
            finally:
                self.policy.protocol = saved
        return self.version

    def _ready(self) -> None:
        if self.protocol == "auto":
            v = self.server_version()
            self.protocol = "json2" if v is not None and v >= 19 else "jsonrpc"
            self.policy.protocol = self.protocol
            log.info("odoo: server version %s, using %s", v, self.protocol)
        if self.protocol == "jsonrpc" and self.uid is None:
            assert self._key is not None
            uid = self._rpc("common", "authenticate", [self.db, self.login, self._key.reveal(), {}],
                            what="log in to Odoo")
            if not isinstance(uid, int) or isinstance(uid, bool) or uid <= 0:
                raise AuthError(f"Odoo refused the login {self.login!r} with this API key on database {self.db!r}",
                                vendor_code="odoo.exceptions.AccessDenied")
            self.uid = uid

    def execute(self, model: str, method: str, *, ids: Sequence[int] | None = None, once: bool = False,
                context: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
        """Call ``model.method`` with named arguments over the configured protocol; returns its result."""
        self._ready()
        ctx = {**self.context, **(context or {})}
        what = f"{model}.{method}"
        http = self.http_once if once else self.http
        if self.protocol == "json2":
            body: dict[str, Any] = dict(kwargs)
            if ids is not None:
                body["ids"] = list(ids)
            if ctx:
                body["context"] = ctx
            r = http.request("POST", f"/json/2/{model}/{method}", json_body=body,
                             headers={"X-Odoo-Database": self.db}, what=what)
            return r.body
        assert self._key is not None
        kw = dict(kwargs)
        if ctx:
            kw["context"] = ctx
        args = [list(ids)] if ids is not None else []
        return self._rpc("object", "execute_kw", [self.db, self.uid, self._key.reveal(), model, method, args, kw],
                         what=what, once=once)

    # --- pipelines ----------------------------------------------------------------------------------
    def pipelines(self) -> list[RemotePipeline]:
        stages = self.execute("crm.stage", "search_read", domain=[],
                              fields=["name", "sequence", "is_won", "fold", "team_id"], order="sequence, id")
        stages = [s for s in stages or [] if isinstance(s, Mapping)]

        def remote(ss: Sequence[Mapping[str, Any]]) -> tuple[RemoteStage, ...]:
            out = [RemoteStage(str(s["id"]), str(s.get("name") or s["id"]), int(s.get("sequence") or 0),
                               Decimal(1) if s.get("is_won") else None, closed=bool(s.get("is_won")),
                               won=bool(s.get("is_won"))) for s in ss]
            top = max((x.order for x in out), default=0)
            out.append(RemoteStage(LOST, "Lost", top + 1, Decimal(0), closed=True, won=False))
            return tuple(out)

        if not self.by_team:
            return [RemotePipeline(PIPELINE, "Pipeline", remote(stages))]
        teams = self.execute("crm.team", "search_read", domain=[["use_opportunities", "=", True]],
                             fields=["name", "sequence"], order="sequence, id")
        out = []
        for t in teams or []:
            mine = [s for s in stages if _m2o_id(s.get("team_id")) in (None, str(t["id"]))]
            out.append(RemotePipeline(str(t["id"]), str(t.get("name") or t["id"]), remote(mine)))
        return out

    # --- pull ----------------------------------------------------------------------------------------
    def pull(self, kind: str, cursor: Mapping[str, Any] | None) -> Iterator[Page]:
        if kind == ObjectKind.DEALS:
            yield from self._listing(cursor)

    def _lead_fields(self) -> list[str]:
        f = ["name", "type", "stage_id", "team_id", "user_id", "partner_id", "expected_revenue", "probability",
             "date_deadline", "active", "lost_reason_id", "company_currency", "create_date", "write_date"]
        if self.id_field:
            f.append(self.id_field)
        return f

    def _listing(self, cursor: Mapping[str, Any] | None) -> Iterator[Page]:
        cur = dict(cursor or {})
        ts = parse_odoo_time(cur.get("ts"))
        seen: set[int] = {int(i) for i in cur.get("ids", ())}
        drain: int | None = cur.get("drain")
        fields = self._lead_fields()
        base: list[Any] = [["type", "=", "opportunity"]]
        ctx = {"active_test": False}
        emitted: set[int] = set(seen)
        repeats = 0
        while True:
            if drain is not None and ts is not None:
                domain = [*base, ["write_date", ">=", _odoo_time(ts)],
                          ["write_date", "<", _odoo_time(ts + timedelta(seconds=1))], ["id", ">", drain]]
                rows = self.execute("crm.lead", "search_read", domain=domain, fields=fields, limit=self.page_size,
                                    order="id asc", context=ctx) or []
                rows = [o for o in rows if isinstance(o, Mapping)]
                bucket = [o for o in rows if parse_odoo_time(o.get("write_date")) == ts and int(o["id"]) > drain]
                if rows and not bucket:
                    repeats += 1  # an answer to another question: ask again
                    if repeats > self.retry.attempts:
                        raise RemoteUnavailable("listing crm.lead: Odoo keeps answering another page")
                    continue
                repeats = 0
                fresh = [o for o in bucket if int(o["id"]) not in emitted]
                emitted.update(int(o["id"]) for o in fresh)
                if len(rows) < self.page_size:  # the second is read: go on after it
                    ts, seen, drain = ts + timedelta(seconds=1), set(), None
                    emitted = set()
                    state: dict[str, Any] = {"ts": _odoo_time(ts), "ids": []}
                else:
                    drain = max(int(o["id"]) for o in bucket)
                    state = {"ts": _odoo_time(ts), "ids": [], "drain": drain}
                yield Page(tuple(self._deals(fresh)) if fresh else (), state)
                continue
            domain = list(base)
            if ts is not None:
                domain.append(["write_date", ">=", _odoo_time(ts)])
            if ts is not None and seen:  # leave out what was read at that second, unless changed since
                domain += ["|", ["write_date", ">=", _odoo_time(ts + timedelta(seconds=1))], ["id", "not in", sorted(seen)]]
            rows = self.execute("crm.lead", "search_read", domain=domain, fields=fields, limit=self.page_size,
                                order="write_date asc, id asc", context=ctx) or []
            rows = [o for o in rows if isinstance(o, Mapping)]
            if not rows:
                return
            fresh = []
            for o in rows:
                m = parse_odoo_time(o.get("write_date"))
                if m is None:
                    raise RemoteUnavailable(f"Odoo crm.lead {o.get('id')} came without write_date")
                rid = int(o["id"])
                if ts is not None and (m < ts or (m == ts and rid in seen)):
                    continue
                fresh.append((m, rid, o))
            if not fresh:
                repeats += 1  # a page already read came back: ask again
                if repeats > self.retry.attempts:
                    raise RemoteUnavailable("listing crm.lead: Odoo keeps answering a page already read")
                continue
            repeats = 0
            top = max(m for m, _, _ in fresh)
            if ts is not None and top == ts:
                seen |= {rid for m, rid, _ in fresh if m == top}
            else:
                ts, seen = top, {rid for m, rid, _ in fresh if m == top}
                emitted = set(seen)
            emitted.update(rid for _, rid, _ in fresh)
            full = len(rows) >= self.page_size
            state = {"ts": _odoo_time(ts), "ids": sorted(seen)}
            if full and len(seen) >= self.tie_limit:
                drain = 0  # too many records share this second for an exclusion list: read it by id
                state = {"ts": _odoo_time(ts), "ids": [], "drain": 0}
                emitted = set(seen)
            yield Page(tuple(self._deals([o for _, _, o in fresh])), state)
            if not full:
                return

    def _tracked_fields(self) -> dict[str, int]:
        if self._tracked is None:
            rows = self.execute("ir.model.fields", "search_read",
                                domain=[["model", "=", "crm.lead"], ["name", "in", ["stage_id", "active"]]],
                                fields=["name"])
            self._tracked = {str(r["name"]): int(r["id"]) for r in rows or [] if isinstance(r, Mapping)}
        return self._tracked

    def _history(self, ids: list[int]) -> dict[int, list[tuple[datetime, int, str, Any, Any]]] | None:
        """Tracked stage and archive changes of the leads ``ids``: (date, order, field, old, new)."""
        if not self._history_ok or not ids:
            return None if not self._history_ok else {}
        tf = self.tracking_field
        if tf is None:
            v = self.server_version()
            tf = self.tracking_field = "field" if v is not None and v < 17 else "field_id"
        try:
            fids = self._tracked_fields()
            if not fids:
                return {}
            names = {v: k for k, v in fids.items()}
            tvs = self.execute("mail.tracking.value", "search_read", domain=[
                [tf, "in", sorted(fids.values())], ["mail_message_id.model", "=", "crm.lead"],
                ["mail_message_id.res_id", "in", ids],
            ], fields=[tf, "mail_message_id", "old_value_integer", "new_value_integer"], order="id")
            tvs = [t for t in tvs or [] if isinstance(t, Mapping)]
            mids = sorted({p[0] for t in tvs if (p := _m2o(t.get("mail_message_id"))) is not None})
            msgs = self.execute("mail.message", "search_read", domain=[["id", "in", mids]],
                                fields=["res_id", "date"]) if mids else []
        except (RemoteValidationError, AuthError) as e:
            log.warning("odoo: cannot read stage tracking (%s); going on without stage history", e.vendor_code)
            self._history_ok = False
            return None
        when = {int(m["id"]): (int(m.get("res_id") or 0), parse_odoo_time(m.get("date")))
                for m in msgs or [] if isinstance(m, Mapping)}
        out: dict[int, list[tuple[datetime, int, str, Any, Any]]] = {}
        for t in tvs:
            msg = _m2o(t.get("mail_message_id"))
            field = _m2o(t.get(tf))
            if msg is None or field is None or msg[0] not in when:
                continue
            res_id, at = when[msg[0]]
            if at is None:
                continue
            out.setdefault(res_id, []).append((at, int(t["id"]), names.get(field[0], ""),
                                               t.get("old_value_integer"), t.get("new_value_integer")))
        return out

    def _is_lost(self, o: Mapping[str, Any]) -> bool:
        if o.get("active", True):
            return False
        return bool(_m2o(o.get("lost_reason_id"))) or not o.get("probability")

    def _deal_history(self, o: Mapping[str, Any], changes: list[tuple[datetime, int, str, Any, Any]] | None
                      ) -> tuple[RemoteStageChange, ...] | None:
        if changes is None:
            return None
        created = parse_odoo_time(o.get("create_date"))
        if created is None:
            return None
        # archiving counts as losing, except for a record archived now without being lost
        use_active = self._is_lost(o) or bool(o.get("active", True))
        changes = sorted(changes, key=lambda c: (c[0], c[1]))
        stage_ch = [c for c in changes if c[2] == "stage_id"]
        active_ch = [c for c in changes if c[2] == "active"] if use_active else []
        stage = str(stage_ch[0][3]) if stage_ch and stage_ch[0][3] else (_m2o_id(o.get("stage_id")) or "")
        active = bool(active_ch[0][3]) if active_ch else True
        hist = [RemoteStageChange(stage if active else LOST, created)]
        for at, _, name, _old, new in changes:
            if name == "stage_id" and new:
                stage = str(new)
            elif name == "active" and use_active:
                active = bool(new)
            else:
                continue
            now = stage if active else LOST
            if now != hist[-1].stage:
                hist.append(RemoteStageChange(now, max(at, hist[-1].at)))
        return tuple(hist)

    def _deals(self, rows: list[Mapping[str, Any]]) -> list[RemoteRecord]:
        hist = self._history([int(o["id"]) for o in rows]) if self.history else None
        out: list[RemoteRecord] = []
        for o in rows:
            modified = parse_odoo_time(o.get("write_date"))
            assert modified is not None
            cur = _m2o(o.get("company_currency"))
            currency = self.currency or (cur[1] if cur and cur[1] else None)
            if currency and self.currency is None:
                self._company_currency = currency
            cd = o.get("date_deadline")
            team = _m2o_id(o.get("team_id"))
            local = o.get(self.id_field) if self.id_field else None
            rid = int(o["id"])
            out.append(RemoteDeal(
                id=str(rid), modified_at=modified, name=str(o.get("name") or ""),
                stage=LOST if self._is_lost(o) else _m2o_id(o.get("stage_id")),
                pipeline=team if self.by_team else PIPELINE,
                amount=odoo_money(o.get("expected_revenue"), currency), currency=currency,
                close_date=date.fromisoformat(str(cd)[:10]) if cd else None, owner=_m2o_id(o.get("user_id")),
                account=_m2o_id(o.get("partner_id")), created_at=parse_odoo_time(o.get("create_date")),
                local_id=str(local) if local else None,
                history=None if hist is None else self._deal_history(o, hist.get(rid, [])),
                archived=not o.get("active", True),
            ))
        return out

    # --- push ----------------------------------------------------------------------------------------
    def company_currency(self) -> str | None:
        """The currency of Odoo amounts (configured, seen in a pull, or read from the company)."""
        if self.currency:
            return self.currency
        if self._company_currency is None:
            rows = self.execute("res.company", "search_read", domain=[], fields=["currency_id"], limit=1)
            cur = _m2o(rows[0].get("currency_id")) if rows else None
            self._company_currency = cur[1] if cur else None
        return self._company_currency

    def _vals(self, item: PushItem, creating: bool) -> dict[str, Any]:
        v = item.values
        out: dict[str, Any] = {}
        if "name" in v:
            out["name"] = str(v["name"] or "")
        if "amount" in v:
            amount = v["amount"]
            cur = v.get("currency")
            company = self.company_currency() if amount is not None and cur else None
            if amount is not None and cur and company and cur != company:
                raise RemoteValidationError(
                    f"deal {item.local_id}: an amount in {cur} cannot go into Odoo, whose amounts are in {company}",
                    vendor_code="CURRENCY_MISMATCH", fields=("expected_revenue",))
            out["expected_revenue"] = 0 if amount is None else amount
        if "close_date" in v:
            cd = v["close_date"]
            out["date_deadline"] = False if cd is None else (cd.isoformat() if isinstance(cd, date) else str(cd))
        if "owner" in v:
            owner = v["owner"]
            if owner is None:
                out["user_id"] = False
            else:
                try:
                    out["user_id"] = int(str(owner))
                except ValueError:
                    raise RemoteValidationError(f"deal {item.local_id}: owner {owner!r} is not an Odoo user id",
                                                vendor_code="INVALID_OWNER", fields=("user_id",)) from None
        if "stage" in v:
            stage = str(v["stage"])
            if stage == LOST:
                out.update(active=False, probability=0)
                if self.lost_reason_id is not None:
                    out["lost_reason_id"] = self.lost_reason_id
            else:
                try:
                    out["stage_id"] = int(stage)
                except ValueError:
                    raise RemoteValidationError(f"deal {item.local_id}: {stage!r} is not an Odoo stage id",
                                                vendor_code="INVALID_STAGE", fields=("stage_id",)) from None
                if not creating:
                    out.update(active=True, lost_reason_id=False)
        if creating:
            out["type"] = "opportunity"
            if self.id_field:
                out[self.id_field] = item.local_id
            if self.by_team and item.pipeline:
                try:
                    out["team_id"] = int(item.pipeline)
                except ValueError:
                    pass
        return out

    def find(self, local_ids: Sequence[str]) -> dict[str, str]:
        """Our deal ids already in Odoo (in the ``id_field``, archived leads included) → lead ids."""
        if not self.id_field or not local_ids:
            return {}
        rows = self.execute("crm.lead", "search_read", domain=[[self.id_field, "in", list(local_ids)]],
                            fields=[self.id_field], context={"active_test": False})
        return {str(r[self.id_field]): str(r["id"]) for r in rows or [] if isinstance(r, Mapping) and r.get(self.id_field)}

    @staticmethod
    def _failure(item: PushItem, e: AdapterError, retriable: bool = False) -> PushResult:
        fields = e.fields if isinstance(e, RemoteValidationError) else ()
        return PushResult(item.local_id, False, code=e.vendor_code or type(e).__name__, message=str(e),
                          retriable=retriable, fields=fields)

    def _write(self, item: PushItem, rid: str) -> PushResult:
        try:
            vals = self._vals(item, False)
        except RemoteValidationError as e:
            return self._failure(item, e)
        if vals:
            try:
                self.execute("crm.lead", "write", ids=[int(rid)], vals=vals)
            except RemoteValidationError as e:
                return self._failure(item, e)
            except RemoteUnavailable as e:
                return self._failure(item, e, retriable=True)
            except RateLimited as e:
                if not e.retriable:
                    raise
                return self._failure(item, e, retriable=True)
        return PushResult(item.local_id, True, remote_id=rid)

    def _create(self, items: list[PushItem]) -> dict[str, PushResult]:
        out: dict[str, PushResult] = {}
        todo: list[tuple[PushItem, dict[str, Any]]] = []
        for i in items:
            try:
                todo.append((i, self._vals(i, True)))
            except RemoteValidationError as e:
                out[i.local_id] = self._failure(i, e)
        last: AdapterError | None = None
        for attempt in range(self.retry.attempts):
            if not todo:
                return out
            if attempt:
                asked = last.retry_after if isinstance(last, RateLimited) else None
                self._sleep(self.retry.delay(attempt - 1, self.http._rng, asked))
            try:
                ids = self.execute("crm.lead", "create", vals_list=[v for _, v in todo], once=True)
            except RateLimited as e:
                if not e.retriable:
                    raise
                last = e  # refused before it ran: send it again
                continue
            except RemoteUnavailable as e:
                last = e  # it may have run: look before sending it again
                found = self.find([i.local_id for i, _ in todo])
                for i, _ in todo:
                    if i.local_id in found:
                        out[i.local_id] = PushResult(i.local_id, True, remote_id=found[i.local_id], created=True)
                todo = [(i, v) for i, v in todo if i.local_id not in found]
                continue
            except RemoteValidationError as e:
                if len(todo) == 1:
                    out[todo[0][0].local_id] = self._failure(todo[0][0], e)
                    return out
                for i, _ in todo:  # one transaction refused: find the record Odoo refuses
                    out.update(self._create([i]))
                return out
            if not isinstance(ids, list) or len(ids) != len(todo):
                raise AdapterError(f"Odoo answered {ids!r} to the creation of {len(todo)} opportunities")
            for (i, _), rid in zip(todo, ids, strict=True):
                out[i.local_id] = PushResult(i.local_id, True, remote_id=str(rid), created=True)
            return out
        assert last is not None
        for i, _ in todo:
            out[i.local_id] = self._failure(i, last, retriable=True)
        return out

    def push(self, items: Sequence[PushItem]) -> list[PushResult]:
        if len(items) > self.push_batch_size:
            raise ValueError(f"push at most {self.push_batch_size} records at a time")
        results: dict[str, PushResult] = {}
        new = [i for i in items if i.remote_id is None]
        known = self.find([i.local_id for i in new])
        for item in items:
            if item.remote_id is not None:
                results[item.local_id] = self._write(item, item.remote_id)
            elif item.local_id in known:
                res = self._write(item, known[item.local_id])
                results[item.local_id] = PushResult(res.local_id, res.ok, res.remote_id, True, res.code, res.message,
                                                    res.retriable, res.fields) if res.ok else res
        fresh = [i for i in new if i.local_id not in known]
        if fresh:
            results.update(self._create(fresh))
        return [results[i.local_id] for i in items]


def _factory(config: Mapping[str, Any], **options: Any) -> OdooAdapter:
    """Build the adapter from a connection's config (see :class:`~salesprocess.sync.Connection`):
    ``token_env`` names the API key; ``db`` and ``login`` (or ``uid``) are options."""
    from salesprocess.sync.connections import parse_rate

    cfg = {**dict(config), **options}
    cfg.pop("app", None)
    kw: dict[str, Any] = {}
    for key in ("token", "base_url", "db", "login", "uid", "protocol", "version", "client", "transport",
                "page_size", "retry", "timeout", "clock", "sleep", "seed", "id_field", "history", "tracking_field",
                "by_team", "lost_reason_id", "tie_limit", "connection"):
        if key in cfg:
            kw[key] = cfg.pop(key)
    if "currency" in cfg:
        kw["currency"] = cfg.pop("currency")
    if "context" in cfg:
        kw["context"] = dict(cfg.pop("context"))
    if "rate_limit" in cfg:
        v = cfg.pop("rate_limit")
        kw["rate_limit"] = parse_rate(v) if isinstance(v, str) else (None if v is False else v)
    if cfg:
        raise AdapterError(f"unknown odoo adapter option(s): {', '.join(sorted(cfg))}")
    for key in ("token", "base_url", "db"):
        if key not in kw:
            what = {"token": "an API key (name its environment variable with token_env)", "base_url": "base_url",
                    "db": "db (the database name)"}[key]
            raise AuthError(f"the odoo adapter needs {what}") if key == "token" else AdapterError(
                f"the odoo adapter needs {what}")
    return OdooAdapter(**kw)


@hookimpl
def salesprocess_register_adapters(register: Callable[..., None]) -> None:
    register("crm", "odoo", _factory, "Odoo CRM (crm.lead opportunities and crm.stage, JSON-2 or JSON-RPC)")
