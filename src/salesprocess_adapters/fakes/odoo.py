"""A faithful local fake of Odoo's external API for CRM (``crm.lead``, ``crm.stage``, ``crm.team``,
``crm.lost.reason`` and the chatter's stage tracking).

Transports
    - **JSON-2** (Odoo 19 and later): ``POST /json/2/<model>/<method>`` with
      ``Authorization: bearer <api key>`` (and optionally ``X-Odoo-Database``); the body holds the
      method's named arguments (``ids``, ``context``, ``domain``, ``fields``, ``limit``, ...); the
      answer is the method's return value as JSON, errors are 4xx/5xx with
      ``{name, message, arguments, context, debug}`` (401 bad key, 403 access, 404 unknown model
      or record, 422 refused values or arguments).
    - **JSON-RPC** (every version, deprecated from 19): ``POST /jsonrpc`` with
      ``{"service": "common", "method": "version" | "authenticate"}`` or
      ``{"service": "object", "method": "execute_kw", "args": [db, uid, key, model, method, args,
      kwargs]}``; answers ``{"jsonrpc": "2.0", "id", "result"}``, errors inside HTTP 200 as
      ``{"error": {"code": 200, "message": "Odoo Server Error", "data": {name, message, ...}}}``.
      With ``version`` below 19 the JSON-2 routes answer 404.

Models and values
    ``search_read``, ``search``, ``search_count``, ``read``, ``create`` (a list of values, one
    transaction: one refused record refuses all), ``write`` (the same values for every id),
    ``unlink``, ``action_set_won`` and ``action_set_lost``. Domains are Odoo's prefix notation
    (``&``, ``|``, ``!``; ``=``, ``!=``, ``<``, ``<=``, ``>``, ``>=``, ``in``, ``not in``,
    ``like``, ``ilike``, ``=?``; dotted paths through many2one fields), ``order`` is
    ``"field [asc|desc], ..."``, archived records are left out unless the domain names
    ``active`` or the context says ``active_test: false``. Values read as Odoo sends them:
    many2one as ``[id, display_name]`` or ``false``, empty text and dates as ``false``,
    datetimes ``"YYYY-MM-DD HH:MM:SS"`` in UTC, money (``expected_revenue``) as a binary float
    rounded to the currency's decimals on write (``0.0`` when empty: Odoo keeps no empty
    amount). Every record written in one call gets the call's timestamp as ``write_date``
    (Odoo uses the transaction's time); with ``subsecond=True`` stored times have microseconds
    while reads show whole seconds, as in a PostgreSQL-backed Odoo.

CRM behaviour
    A lead's stage moves, archiving and lost reason are tracked in ``mail.message`` /
    ``mail.tracking.value`` (``field_id``, or ``field`` before Odoo 17). Entering an ``is_won``
    stage sets the probability to 100; lost is archived (``active = False``) with probability 0
    and usually a lost reason; reactivating clears the lost reason.

Limits
    Odoo publishes no API rate limit. ``rate_limit`` stands for a reverse proxy in front of a
    self-hosted server: past it the answer is a 429 page with ``Retry-After``. Odoo has no
    short-lived access tokens, so the ``expired_token`` fault changes nothing here.
"""

from __future__ import annotations

import bisect
import itertools
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import unquote

from ._server import FakeApp, FakeClock, FakeHarness, FakeRequest, FakeResponse

__all__ = ["DEFAULT_STAGES", "OdooFake", "OdooHarness", "odoo_time"]

DEFAULT_STAGES: tuple[tuple[str, int, bool], ...] = (
    ("New", 1, False),
    ("Qualified", 2, False),
    ("Proposition", 3, False),
    ("Won", 70, True),
)
"""Odoo's default CRM stages: (name, sequence, is_won)."""

LOST_REASONS = ("Too expensive", "We don't have people/skills", "Not enough stock")
CURRENCIES = {"EUR": 2, "USD": 2, "CNY": 2, "JPY": 0, "KWD": 3, "GBP": 2}
_DT = "%Y-%m-%d %H:%M:%S"


def odoo_time(at: datetime) -> str:
    """Odoo's datetime format: ``YYYY-MM-DD HH:MM:SS`` in UTC, whole seconds."""
    return at.astimezone(UTC).strftime(_DT)


class OdooError(Exception):
    """An error as Odoo raises it: ``name`` is the exception's dotted class name."""

    STATUS: ClassVar[dict[str, int]] = {
        "odoo.exceptions.AccessDenied": 401, "werkzeug.exceptions.Unauthorized": 401,
        "werkzeug.exceptions.BadRequest": 400, "odoo.exceptions.AccessError": 403,
        "odoo.exceptions.MissingError": 404, "werkzeug.exceptions.NotFound": 404,
        "odoo.exceptions.ValidationError": 422, "odoo.exceptions.UserError": 422,
        "builtins.ValueError": 422, "builtins.TypeError": 422,
    }

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.message = message

    @property
    def status(self) -> int:
        return self.STATUS.get(self.name, 500)


# field kinds: char, text, int, float, money, bool, date, datetime, selection, m2o:<model>, m2m:<model>
_LEAD_FIELDS: dict[str, str] = {
    "name": "char", "type": "selection", "stage_id": "m2o:crm.stage", "team_id": "m2o:crm.team",
    "user_id": "m2o:res.users", "partner_id": "m2o:res.partner", "partner_name": "char", "contact_name": "char",
    "email_from": "char", "phone": "char", "expected_revenue": "money", "prorated_revenue": "money",
    "recurring_revenue": "money", "probability": "float", "automated_probability": "float",
    "date_deadline": "date", "date_closed": "datetime", "date_last_stage_update": "datetime",
    "date_open": "datetime", "date_conversion": "datetime", "lost_reason_id": "m2o:crm.lost.reason",
    "active": "bool", "priority": "selection", "tag_ids": "m2m:crm.tag", "company_id": "m2o:res.company",
    "company_currency": "m2o:res.currency", "description": "text", "won_status": "selection",
}
_COMMON = {"id": "int", "display_name": "char", "create_date": "datetime", "write_date": "datetime",
           "create_uid": "m2o:res.users", "write_uid": "m2o:res.users"}
_MODELS: dict[str, dict[str, str]] = {
    "crm.lead": _LEAD_FIELDS,
    "crm.stage": {"name": "char", "sequence": "int", "is_won": "bool", "fold": "bool", "team_id": "m2o:crm.team",
                  "requirements": "text", "color": "int"},
    "crm.team": {"name": "char", "sequence": "int", "active": "bool", "use_opportunities": "bool",
                 "company_id": "m2o:res.company"},
    "crm.lost.reason": {"name": "char", "active": "bool"},
    "crm.tag": {"name": "char"},
    "res.users": {"name": "char", "login": "char", "active": "bool"},
    "res.partner": {"name": "char", "is_company": "bool", "active": "bool", "email": "char"},
    "res.currency": {"name": "char", "decimal_places": "int", "active": "bool"},
    "res.company": {"name": "char", "currency_id": "m2o:res.currency"},
    "ir.model.fields": {"name": "char", "model": "char", "field_description": "char", "ttype": "char"},
    "mail.message": {"model": "char", "res_id": "int", "date": "datetime", "message_type": "selection",
                     "body": "text", "author_id": "m2o:res.partner"},
    "mail.tracking.value": {"mail_message_id": "m2o:mail.message", "old_value_integer": "int",
                            "new_value_integer": "int", "old_value_float": "float", "new_value_float": "float",
                            "old_value_char": "char", "new_value_char": "char", "old_value_datetime": "datetime",
                            "new_value_datetime": "datetime"},
}
_ORDER = {"crm.lead": "priority desc, id desc", "crm.stage": "sequence, name, id", "crm.team": "sequence, id",
          "mail.message": "id desc", "mail.tracking.value": "id"}
_READONLY = frozenset({"id", "display_name", "create_date", "write_date", "create_uid", "write_uid",
                       "company_currency", "won_status", "prorated_revenue", "automated_probability"})
_TRACKED = ("stage_id", "active", "lost_reason_id", "user_id", "team_id", "expected_revenue")


def _parse_dt(v: Any) -> datetime:
    s = str(v).strip()
    for fmt in (_DT, "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d"):
        try:
            return datetime.strptime(s, fmt)
        except ValueError:
            continue
    raise OdooError("builtins.ValueError", f"time data {s!r} does not match format '%Y-%m-%d %H:%M:%S'")


class OdooFake(FakeApp):
    """An Odoo database with the CRM app, in memory, served by :meth:`transport` or :meth:`serve`.

    :param api_key: the API key it accepts (JSON-2 bearer, or the password of ``execute_kw``).
    :param db: the database name; ``login`` and ``uid`` the API user's.
    :param version: the server's major version (19: JSON-2 and JSON-RPC; earlier: JSON-RPC only).
    :param rate_limit: a reverse proxy's limit ``(calls, seconds)``; ``None`` for none.
    :param retry_after: the ``Retry-After`` seconds the proxy's 429 pages carry.
    :param stages: the shared stages (see :data:`DEFAULT_STAGES`); ``teams`` the sales teams.
    :param currency: the company currency (its decimals round money on write).
    :param id_field: a custom char field on ``crm.lead`` (created with Studio, ``x_`` prefix).
    :param history_access: whether the API user may read ``mail.tracking.value``.
    :param subsecond: store times with microseconds (reads still show whole seconds).
    """

    vendor = "odoo"

    def __init__(
        self,
        *,
        api_key: str = "fake-odoo-api-key-0001",
        db: str = "salesprocess",
        login: str = "api@example.com",
        uid: int = 2,
        version: int = 19,
        rate_limit: tuple[int, float] | None = None,
        retry_after: float = 1.0,
        stages: Iterable[tuple[str, int, bool]] = DEFAULT_STAGES,
        teams: Sequence[str] = ("Sales",),
        currency: str = "USD",
        id_field: str | None = "x_salesprocess_id",
        history_access: bool = True,
        subsecond: bool = False,
        monotonic: Callable[[], float] = time.monotonic,
        clock: FakeClock | None = None,
        timeout_delay: float = 1.0,
    ) -> None:
        super().__init__(monotonic=monotonic, timeout_delay=timeout_delay, rate_limit=rate_limit)
        self.clock = clock or FakeClock(step=timedelta(milliseconds=250) if subsecond else timedelta(seconds=1))
        self.api_key = api_key
        self.db = db
        self.login = login
        self.uid = uid
        self.version = version
        self.retry_after = retry_after
        self.history_access = history_access
        self.subsecond = subsecond
        self.tracking_field = "field_id" if version >= 17 else "field"
        self.fields: dict[str, dict[str, str]] = {m: {**_COMMON, **f} for m, f in _MODELS.items()}
        self.fields["mail.tracking.value"][self.tracking_field] = "m2o:ir.model.fields"
        if version < 17:
            self.fields["crm.lead"].pop("won_status")
        self.id_field = id_field
        if id_field:
            self.fields["crm.lead"][id_field] = "char"
        self.tables: dict[str, dict[int, dict[str, Any]]] = {m: {} for m in self.fields}
        self._counters = {m: itertools.count(1) for m in self.fields}
        self._index: list[tuple[datetime, int]] = []
        """crm.lead by (write_date, id), for listings sorted that way."""
        self._reject: str | None = None
        self._route_ctx: dict[str, Any] = {}
        self._more: dict[int, tuple[FakeResponse, bool]] = {}
        self._by_lead: dict[str, dict[int, list[int]]] = {"mail.message": {}, "mail.tracking.value": {}}
        """Chatter records by lead id (the fake's index for the usual history queries)."""
        at = self.clock.now()
        self._add("res.currency", {"name": "EUR", "decimal_places": 2, "active": True}, at)
        self.currency = self._add("res.currency", {"name": currency, "decimal_places": CURRENCIES.get(currency, 2),
                                                   "active": True}, at) if currency != "EUR" else 1
        self.company = self._add("res.company", {"name": "My Company", "currency_id": self.currency}, at)
        self._add("res.users", {"name": "OdooBot", "login": "__system__", "active": True}, at)
        self._add("res.users", {"name": "Mitchell Admin", "login": login, "active": True}, at)
        for i, t in enumerate(teams):
            self._add("crm.team", {"name": t, "sequence": i + 1, "active": True, "use_opportunities": True,
                                   "company_id": self.company}, at)
        for name, seq, won in stages:
            self._add("crm.stage", {"name": name, "sequence": seq, "is_won": won, "fold": won, "team_id": None,
                                    "requirements": None, "color": 0}, at)
        for r in LOST_REASONS:
            self._add("crm.lost.reason", {"name": r, "active": True}, at)
        for f in _TRACKED:
            self._add("ir.model.fields", {"name": f, "model": "crm.lead", "field_description": f.replace("_", " "),
                                          "ttype": _LEAD_FIELDS[f].split(":")[0]}, at)

    def __repr__(self) -> str:
        return f"OdooFake({len(self.tables['crm.lead'])} leads)"

    # --- records ---------------------------------------------------------------------------------
    def _add(self, model: str, vals: Mapping[str, Any], at: datetime) -> int:
        rid = next(self._counters[model])
        rec: dict[str, Any] = dict.fromkeys(self.fields[model])
        rec.update(vals)
        rec.update(id=rid, create_date=at, write_date=at, create_uid=self.uid, write_uid=self.uid)
        self.tables[model][rid] = rec
        return rid

    def _display(self, model: str, rid: int | None) -> str:
        rec = self.tables[model].get(rid) if rid else None
        if rec is None:
            return ""
        return str(rec.get("name") or f"{model},{rid}")

    def _value_out(self, kind: str, v: Any) -> Any:
        if kind.startswith("m2o:"):
            return [v, self._display(kind[4:], v)] if v else False
        if kind.startswith("m2m:"):
            return list(v or [])
        if kind == "datetime":
            return odoo_time(v) if v else False
        if kind == "date":
            return v.isoformat() if v else False
        if kind in ("char", "text", "selection"):
            return v if v not in (None, "") else False
        if kind in ("float", "money"):
            return float(v or 0.0)
        if kind == "int":
            return int(v or 0)
        if kind == "bool":
            return bool(v)
        return v

    def _record_out(self, model: str, rec: Mapping[str, Any], fields: Sequence[str]) -> dict[str, Any]:
        kinds = self.fields[model]
        out: dict[str, Any] = {"id": rec["id"]}
        for f in fields:
            if f == "display_name":
                out[f] = self._display(model, rec["id"])
            elif f == "company_currency":
                out[f] = [self.currency, self._display("res.currency", self.currency)]
            elif f == "won_status":
                out[f] = self._won_status(rec)
            else:
                out[f] = self._value_out(kinds[f], rec.get(f))
        return out

    def _won_status(self, rec: Mapping[str, Any]) -> str:
        st = self.tables["crm.stage"].get(rec.get("stage_id") or 0)
        if rec.get("active") and st is not None and st["is_won"]:
            return "won"
        if not rec.get("active") and not rec.get("probability"):
            return "lost"
        return "pending"

    def _coerce(self, model: str, vals: Any) -> dict[str, Any]:
        if not isinstance(vals, Mapping):
            raise OdooError("builtins.TypeError", "values must be a dictionary")
        kinds = self.fields[model]
        out: dict[str, Any] = {}
        for k, v in vals.items():
            kind = kinds.get(k)
            if kind is None:
                raise OdooError("builtins.ValueError", f"Invalid field {k!r} on model {model!r}")
            if k in _READONLY:
                continue
            if kind.startswith("m2o:"):
                if v is False or v is None:
                    v = None
                elif isinstance(v, bool) or not isinstance(v, int):
                    raise OdooError("builtins.ValueError", f"Wrong value for {model}.{k}: {v!r}")
                elif v not in self.tables[kind[4:]]:
                    raise OdooError("odoo.exceptions.MissingError",
                                    f"Record does not exist or has been deleted.\n(Record: {kind[4:]}({v},), User: {self.uid})")
            elif kind in ("float", "money"):
                if v is False or v is None:
                    v = 0.0
                elif isinstance(v, bool) or not isinstance(v, int | Decimal | float):
                    raise OdooError("builtins.ValueError", f"Wrong value for {model}.{k}: {v!r}")
                else:
                    v = float(v)  # Odoo keeps money as a binary float
                    if kind == "money":
                        v = round(v, CURRENCIES.get(self._display("res.currency", self.currency), 2))
            elif kind == "date":
                if v is False or v is None:
                    v = None
                else:
                    try:
                        v = date.fromisoformat(str(v))
                    except ValueError:
                        raise OdooError("builtins.ValueError",
                                        f"time data {v!r} does not match format '%Y-%m-%d'") from None
            elif kind == "datetime":
                v = None if v in (False, None) else _parse_dt(v).replace(tzinfo=UTC)
            elif kind in ("char", "text", "selection"):
                if v is False or v is None:
                    v = None
                elif not isinstance(v, str):
                    raise OdooError("builtins.ValueError", f"Wrong value for {model}.{k}: {v!r}")
            elif kind == "bool":
                v = bool(v)
            elif kind == "int":
                v = int(v or 0)
            out[k] = v
        return out

    def _stages_for(self, team: int | None) -> list[dict[str, Any]]:
        return sorted((s for s in self.tables["crm.stage"].values() if s["team_id"] in (None, team)),
                      key=lambda s: (s["sequence"], s["id"]))

    def _now(self) -> datetime:
        at = self.clock.tick()
        return at if self.subsecond else at.replace(microsecond=0)

    def _index_put(self, rid: int, old: datetime | None, new: datetime) -> None:
        if old is not None:
            i = bisect.bisect_left(self._index, (old, rid))
            if i < len(self._index) and self._index[i] == (old, rid):
                del self._index[i]
        bisect.insort(self._index, (new, rid))

    def _check_lead(self, rec: Mapping[str, Any]) -> None:
        name = rec.get("name")
        if not name:
            raise OdooError("odoo.exceptions.ValidationError", "The field 'Opportunity' is required.")
        if self._reject and isinstance(name, str) and name.startswith(self._reject):
            raise OdooError("odoo.exceptions.ValidationError", f"Opportunity name {name!r} is not allowed")

    def _create_leads(self, vals_list: Sequence[Mapping[str, Any]]) -> list[int]:
        at = self._now()
        staged = []
        for vals in vals_list:
            v = self._coerce("crm.lead", vals)
            team = v.get("team_id", next(iter(self.tables["crm.team"]), None))
            rec: dict[str, Any] = dict.fromkeys(self.fields["crm.lead"])
            rec.update(type="opportunity", team_id=team, user_id=self.uid, company_id=self.company, active=True,
                       priority="0", expected_revenue=0.0, prorated_revenue=0.0, recurring_revenue=0.0,
                       probability=10.0, automated_probability=10.0)
            rec.update(v)
            if rec.get("stage_id") is None:
                rec["stage_id"] = self._stages_for(rec["team_id"])[0]["id"]
            st = self.tables["crm.stage"][rec["stage_id"]]
            if st["is_won"] and "probability" not in v:
                rec["probability"] = 100.0
            self._check_lead(rec)
            staged.append(rec)
        ids = []
        for rec in staged:  # one transaction: nothing is written unless every record passed
            rid = next(self._counters["crm.lead"])
            rec.update(id=rid, create_date=at, write_date=at, create_uid=self.uid, write_uid=self.uid,
                       date_open=at, date_last_stage_update=at)
            if self.tables["crm.stage"][rec["stage_id"]]["is_won"] or not rec["active"]:
                rec["date_closed"] = at
            self.tables["crm.lead"][rid] = rec
            self._index_put(rid, None, at)
            self._message(rid, at, {})
            ids.append(rid)
        return ids

    def _message(self, rid: int, at: datetime, changes: Mapping[str, tuple[Any, Any]]) -> None:
        mid = self._add("mail.message", {"model": "crm.lead", "res_id": rid, "date": at,
                                         "message_type": "notification", "body": "", "author_id": None}, at)
        self._by_lead["mail.message"].setdefault(rid, []).append(mid)
        fields = {r["name"]: r["id"] for r in self.tables["ir.model.fields"].values() if r["model"] == "crm.lead"}
        for f, (old, new) in changes.items():
            kind = _LEAD_FIELDS[f]
            tv: dict[str, Any] = {"mail_message_id": mid, self.tracking_field: fields[f]}
            if kind.startswith("m2o:"):
                tv.update(old_value_integer=old or 0, new_value_integer=new or 0,
                          old_value_char=self._display(kind[4:], old), new_value_char=self._display(kind[4:], new))
            elif kind == "bool":
                tv.update(old_value_integer=int(bool(old)), new_value_integer=int(bool(new)))
            else:
                tv.update(old_value_float=float(old or 0.0), new_value_float=float(new or 0.0))
            self._by_lead["mail.tracking.value"].setdefault(rid, []).append(self._add("mail.tracking.value", tv, at))

    def _write_leads(self, ids: Sequence[int], vals: Mapping[str, Any], *, at: datetime | None = None) -> None:
        v = self._coerce("crm.lead", vals)
        table = self.tables["crm.lead"]
        missing = [i for i in ids if i not in table]
        if missing:
            raise OdooError("odoo.exceptions.MissingError",
                            f"Record does not exist or has been deleted.\n(Record: crm.lead({missing[0]},), User: {self.uid})")
        at = at or self._now()
        staged = []
        for i in ids:
            rec = dict(table[i])
            before = {f: rec.get(f) for f in _TRACKED}
            rec.update(v)
            if v.get("active") is True and not before["active"]:
                rec["lost_reason_id"] = v.get("lost_reason_id")
                if "probability" not in v:
                    rec["probability"] = 10.0
            if "stage_id" in v and v["stage_id"] != before["stage_id"]:
                rec["date_last_stage_update"] = at
                if self.tables["crm.stage"][v["stage_id"]]["is_won"]:
                    rec["probability"] = 100.0
                    rec["date_closed"] = at
            if "active" in v and not v["active"]:
                rec["date_closed"] = at
            self._check_lead(rec)
            staged.append((i, rec, before))
        for i, rec, before in staged:
            old = table[i]["write_date"]
            rec.update(write_date=at, write_uid=self.uid)
            table[i] = rec
            self._index_put(i, old, at)
            changes = {f: (before[f], rec.get(f)) for f in _TRACKED if before[f] != rec.get(f)}
            if changes:
                self._message(i, at, changes)

    # --- remote control (as an Odoo user would) ------------------------------------------------------
    def stage_ids(self) -> list[str]:
        """The first team's stages, open ones then won ones, then ``lost`` (archived with a reason)."""
        stages = self._stages_for(1)
        return ([str(s["id"]) for s in stages if not s["is_won"]] + [str(s["id"]) for s in stages if s["is_won"]]
                + ["lost"])

    def open_stage_ids(self) -> list[str]:
        return [str(s["id"]) for s in self._stages_for(1) if not s["is_won"]]

    def now(self) -> datetime:
        return self.clock.now()

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.clock.advance(seconds)

    def freeze(self, frozen: bool = True) -> None:
        with self._lock:
            self.clock.frozen = frozen

    def reject_names(self, prefix: str | None) -> None:
        """Refuse (ValidationError) written leads whose name starts with ``prefix``."""
        self._reject = prefix

    def expire_tokens(self) -> None:
        """Odoo has no short-lived tokens: API keys hold until revoked (see :meth:`revoke_key`)."""

    def revoke_key(self) -> None:
        """Revoke the API key (every later call is refused)."""
        with self._lock:
            self.api_key = ""

    def _neutral(self, fields: Mapping[str, Any], rec: Mapping[str, Any] | None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in fields.items():
            if k == "name":
                out["name"] = v
            elif k == "amount":
                out["expected_revenue"] = 0.0 if v is None else Decimal(str(v))
            elif k == "close_date":
                out["date_deadline"] = v.isoformat() if v else False
            elif k == "owner":
                out["user_id"] = int(v) if v else False
            elif k == "team":
                out["team_id"] = int(v)
            elif k == "stage":
                if v == "lost":
                    out.update(active=False, probability=0.0, lost_reason_id=1)
                else:
                    out["stage_id"] = int(v)
                    if rec is not None and not rec["active"]:
                        out.update(active=True, lost_reason_id=False)
            else:
                raise KeyError(f"unknown deal field {k!r}")
        return out

    def create_deal(self, name: str, stage: str | None = None, *, amount: Decimal | str | None = None,
                    close_date: date | None = None, owner: str | int | None = None,
                    team: int | None = None) -> str:
        """Create an opportunity as an Odoo user would (``stage`` a stage id or ``lost``); returns its id."""
        with self._lock:
            vals = self._neutral({"name": name, "amount": amount, "close_date": close_date}, None)
            if owner is not None:
                vals["user_id"] = int(owner)
            if team is not None:
                vals["team_id"] = team
            if stage and stage != "lost":
                vals["stage_id"] = int(stage)
            vals["type"] = "opportunity"
            (rid,) = self._create_leads([vals])
            if stage == "lost":
                self._write_leads([rid], self._neutral({"stage": "lost"}, None))
            return str(rid)

    def update_deal(self, remote_id: str, **fields: Any) -> None:
        """Change ``name``, ``stage`` (a stage id, or ``lost``), ``amount``, ``close_date``, ``owner``
        or ``team`` as an Odoo user would."""
        with self._lock:
            rec = self.tables["crm.lead"][int(remote_id)]
            self._write_leads([rec["id"]], self._neutral(fields, rec))

    def is_lost(self, rec: Mapping[str, Any]) -> bool:
        return not rec["active"] and (bool(rec.get("lost_reason_id")) or not rec.get("probability"))

    def get_deal(self, remote_id: str) -> dict[str, Any]:
        with self._lock:
            r = self.tables["crm.lead"][int(remote_id)]
            amount = Decimal(repr(r["expected_revenue"])) if r["expected_revenue"] else None  # 0.0 is no amount
            return {"name": r["name"] or "", "stage": "lost" if self.is_lost(r) else str(r["stage_id"]),
                    "amount": amount, "close_date": r["date_deadline"], "owner": str(r["user_id"] or ""),
                    "active": r["active"], "stage_id": str(r["stage_id"]),
                    "local_id": r.get(self.id_field) if self.id_field else None, "modified": r["write_date"]}

    def deal_ids(self) -> list[str]:
        with self._lock:
            return [str(i) for i, r in self.tables["crm.lead"].items() if r["type"] == "opportunity"]

    def stage_history(self, remote_id: str) -> list[str]:
        """The stage ids a lead went through, as its tracking records them (oldest first)."""
        with self._lock:
            rid = int(remote_id)
            msgs = {m["id"] for m in self.tables["mail.message"].values() if m["model"] == "crm.lead" and m["res_id"] == rid}
            fid = next(r["id"] for r in self.tables["ir.model.fields"].values() if r["name"] == "stage_id")
            tvs = sorted((t for t in self.tables["mail.tracking.value"].values()
                          if t["mail_message_id"] in msgs and t[self.tracking_field] == fid), key=lambda t: t["id"])
            out = [str(tvs[0]["old_value_integer"])] if tvs else [str(self.tables["crm.lead"][rid]["stage_id"])]
            return out + [str(t["new_value_integer"]) for t in tvs]

    def add_team(self, name: str, stages: Iterable[tuple[str, int, bool]] = ()) -> int:
        """Add a sales team, with stages of its own (besides the shared ones); returns its id."""
        with self._lock:
            at = self.clock.now()
            tid = self._add("crm.team", {"name": name, "sequence": len(self.tables["crm.team"]) + 1, "active": True,
                                         "use_opportunities": True, "company_id": self.company}, at)
            for sname, seq, won in stages:
                self._add("crm.stage", {"name": sname, "sequence": seq, "is_won": won, "fold": won, "team_id": tid,
                                        "requirements": None, "color": 0}, at)
            return tid

    def create_lead(self, name: str) -> str:
        """A lead (``type = 'lead'``, not an opportunity): the adapter leaves it alone."""
        with self._lock:
            return str(self._create_leads([{"name": name, "type": "lead"}])[0])

    def seed_deals(self, n: int, *, stage_moves: bool = True, batch: int = 1) -> list[str]:
        """Add ``n`` opportunities quickly (for benchmarks and demos), ``batch`` per transaction
        (records of one transaction share their ``write_date``); two in three then move on a
        stage, win or are lost."""
        opens = self.open_stage_ids()
        every = self.stage_ids()
        out: list[str] = []
        with self._lock:
            for start in range(0, n, batch):
                vals = [{"name": f"Opportunity {i}", "type": "opportunity", "stage_id": int(opens[0]),
                         "expected_revenue": Decimal(1000 + (i * 37) % 90000) + Decimal("0.10"),
                         "date_deadline": date(2026, 1 + i % 12, 1 + i % 28).isoformat(), "user_id": self.uid}
                        for i in range(start, min(n, start + batch))]
                ids = self._create_leads(vals)
                out.extend(str(i) for i in ids)
            if stage_moves:
                for i, rid in enumerate(out):
                    if i % 3:
                        target = every[i % len(every)]
                        if target != opens[0]:
                            self.update_deal(rid, stage=target)
        return out

    # --- domains and ordering -----------------------------------------------------------------------
    def _resolve(self, model: str, rec: Mapping[str, Any], path: str) -> tuple[str, Any]:
        parts = path.split(".")
        cur_model, cur = model, rec
        for i, p in enumerate(parts):
            kind = self.fields[cur_model].get(p)
            if kind is None:
                raise OdooError("builtins.ValueError", f"Invalid field {p!r} on model {cur_model!r}")
            v = cur.get(p) if p != "company_currency" else self.currency
            if i == len(parts) - 1:
                return kind, v
            if not kind.startswith("m2o:"):
                raise OdooError("builtins.ValueError", f"Invalid path {path!r}: {p!r} is not a relation")
            cur_model = kind[4:]
            nxt = self.tables[cur_model].get(v) if v else None
            if nxt is None:
                return kind, None
            cur = nxt
        return "char", None  # pragma: no cover

    def _leaf(self, model: str, leaf: Sequence[Any]) -> Callable[[Mapping[str, Any]], bool]:
        if len(leaf) != 3:
            raise OdooError("builtins.ValueError", f"Invalid leaf {list(leaf)!r}")
        path, op, value = leaf
        if path in (0, 1) and op == "=":
            truth = path == value
            return lambda _r: truth
        if not isinstance(path, str):
            raise OdooError("builtins.ValueError", f"Invalid leaf {list(leaf)!r}")
        op = str(op).lower()
        head = path.split(".")[-1]
        last_kind = self._path_kind(model, path)

        def conv(x: Any) -> Any:
            if x is False or x is None:
                return None
            if last_kind == "datetime":
                return _parse_dt(x)
            if last_kind == "date":
                return date.fromisoformat(str(x)[:10])
            if last_kind in ("float", "money") and isinstance(x, int | Decimal):
                return float(x)
            return x

        def norm(v: Any) -> Any:
            if last_kind == "datetime" and v is not None:
                return v.replace(tzinfo=None)
            return v

        if op in ("in", "not in"):
            if not isinstance(value, list | tuple):
                raise OdooError("builtins.ValueError", f"Invalid leaf {list(leaf)!r}: 'in' needs a list")
            members = {conv(x) for x in value}

            def test_in(r: Mapping[str, Any]) -> bool:
                v = norm(self._resolve(model, r, path)[1])
                return bool((v in members) == (op == "in"))
            return test_in
        if op == "=?":
            if value in (False, None):
                return lambda _r: True
            op = "="
        target = conv(value)
        m2o_name = last_kind.startswith("m2o:") and isinstance(value, str)

        def test(r: Mapping[str, Any]) -> bool:
            kind, v = self._resolve(model, r, path)
            v = norm(v)
            if m2o_name:
                v = self._display(kind[4:], v) if v else None
            if kind in ("float", "money", "int") and v is None:
                v = 0
            if op == "=":
                return bool(v == target or (target is None and v in (None, False, "")))
            if op in ("!=", "<>"):
                return not (v == target or (target is None and v in (None, False, "")))
            if op in ("like", "ilike", "not like", "not ilike"):
                hay, needle = str(v or ""), str(value or "")
                if op.endswith("ilike"):
                    hay, needle = hay.lower(), needle.lower()
                return (needle in hay) != op.startswith("not")
            if v is None or target is None:
                return False
            if op == "<":
                return bool(v < target)
            if op == "<=":
                return bool(v <= target)
            if op == ">":
                return bool(v > target)
            if op == ">=":
                return bool(v >= target)
            raise OdooError("builtins.ValueError", f"Invalid operator {op!r} in leaf on {head!r}")
        return test

    def _path_kind(self, model: str, path: str) -> str:
        cur = model
        kind = "char"
        for p in path.split("."):
            kind = self.fields[cur].get(p, "")
            if not kind:
                raise OdooError("builtins.ValueError", f"Invalid field {p!r} on model {cur!r}")
            if kind.startswith("m2o:"):
                cur = kind[4:]
        return kind

    def _compile(self, model: str, domain: Any) -> Callable[[Mapping[str, Any]], bool]:
        if not isinstance(domain, list | tuple):
            raise OdooError("builtins.ValueError", f"Invalid domain {domain!r}")
        items = list(domain)
        pos = 0

        def parse() -> Callable[[Mapping[str, Any]], bool]:
            nonlocal pos
            if pos >= len(items):
                raise OdooError("builtins.ValueError", f"Invalid domain {domain!r}: an operator lacks operands")
            it = items[pos]
            pos += 1
            if it == "&" or it == "|":
                a, b = parse(), parse()
                return (lambda r: a(r) and b(r)) if it == "&" else (lambda r: a(r) or b(r))
            if it == "!":
                a = parse()
                return lambda r: not a(r)
            if isinstance(it, list | tuple):
                return self._leaf(model, it)
            raise OdooError("builtins.ValueError", f"Invalid domain term {it!r}")

        terms = []
        while pos < len(items):
            terms.append(parse())
        return lambda r: all(t(r) for t in terms)

    @staticmethod
    def _mentions_active(domain: Any) -> bool:
        return any(isinstance(t, list | tuple) and t and t[0] == "active" for t in domain or [])

    def _order(self, model: str, order: Any) -> list[tuple[str, bool]]:
        text = order if isinstance(order, str) and order.strip() else _ORDER.get(model, "id")
        out = []
        for part in text.split(","):
            words = part.split()
            if not words:
                continue
            f = words[0]
            if f not in self.fields[model] or len(words) > 2 or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
                raise OdooError("builtins.ValueError", f"Invalid \"order\" specified ({text}).")
            out.append((f, len(words) == 2 and words[1].lower() == "desc"))
        if all(f != "id" for f, _ in out):
            out.append(("id", False))
        return out

    def _search(self, model: str, domain: Any, offset: Any = 0, limit: Any = None, order: Any = None,
                context: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        table = self.tables[model]
        test = self._compile(model, domain or [])
        active_test = "active" in self.fields[model] and (context or {}).get("active_test", True) is not False \
            and not self._mentions_active(domain)
        keys = self._order(model, order)
        try:
            off = int(offset or 0)
            lim = None if limit in (None, False) else int(limit)
        except (TypeError, ValueError):
            raise OdooError("builtins.TypeError", "offset and limit must be integers") from None
        indexed = model == "crm.lead" and keys == [("write_date", False), ("id", False)]
        lo, hi = self._bounds(domain) if model == "crm.lead" else (None, None)
        rows: list[dict[str, Any]] = []
        if lo is not None or hi is not None or indexed:
            start = 0 if lo is None else bisect.bisect_left(self._index, (lo, -1))
            stop = len(self._index) if hi is None else bisect.bisect_left(self._index, (hi, -1))
            candidates: Iterable[dict[str, Any]] = (table[rid] for _, rid in itertools.islice(self._index, start, stop))
        else:
            candidates = self._candidates(model, domain)
        for r in candidates:
            if (active_test and not r.get("active")) or not test(r):
                continue
            rows.append(r)
            if indexed and lim is not None and len(rows) >= off + lim:
                break
        if indexed:
            return rows[off:]
        for f, desc in reversed(keys):
            kind = self.fields[model][f]

            def by(r: Mapping[str, Any], f: str = f, kind: str = kind) -> tuple[int, Any]:
                return _sort_key(kind, r.get(f))
            rows.sort(key=by, reverse=desc)
        return rows[off:] if lim is None else rows[off:off + lim]

    @staticmethod
    def _top_leaves(domain: Any) -> list[Sequence[Any]]:
        """The leaves of a domain that are ANDed at its top level (not operands of ``|`` or ``!``)."""
        if not isinstance(domain, list | tuple):
            return []
        out: list[Sequence[Any]] = []
        need = 0
        for t in domain:
            if t in ("&", "|", "!"):
                arity = 1 if t == "!" else 2
                need = arity if need == 0 else need + arity - 1
            elif need == 0:
                if isinstance(t, list | tuple):
                    out.append(t)
            else:
                need -= 1
        return out

    def _candidates(self, model: str, domain: Any) -> Iterable[dict[str, Any]]:
        """The records a domain can match, narrowed by a top-level ``id in`` or (chatter) lead-id
        leaf when there is one; the domain is still applied to each."""
        table = self.tables[model]
        for t in self._top_leaves(domain):
            if not (len(t) == 3 and t[1] == "in" and isinstance(t[2], list | tuple)):
                continue
            if t[0] == "id":
                return [table[i] for i in dict.fromkeys(t[2]) if isinstance(i, int) and i in table]
            lead_path = {"mail.message": "res_id", "mail.tracking.value": "mail_message_id.res_id"}.get(model)
            if t[0] == lead_path:
                index = self._by_lead[model]
                return [table[i] for lead in dict.fromkeys(t[2]) if isinstance(lead, int)
                        for i in index.get(lead, ()) if i in table]
        return table.values()

    def _bounds(self, domain: Any) -> tuple[datetime | None, datetime | None]:
        """The ``write_date`` range a domain's top-level leaves allow (to scan the index); the
        upper bound is exclusive and widened by a second (the domain is still applied)."""
        lo: datetime | None = None
        hi: datetime | None = None
        for t in self._top_leaves(domain):
            if len(t) != 3 or t[0] != "write_date" or t[2] in (False, None):
                continue
            try:
                v = _parse_dt(t[2]).replace(tzinfo=UTC)
            except OdooError:
                continue
            if t[1] in (">", ">="):
                lo = v if lo is None else max(lo, v)
            elif t[1] in ("<", "<="):
                v += timedelta(seconds=1)
                hi = v if hi is None else min(hi, v)
        return lo, hi

    # --- methods ------------------------------------------------------------------------------------
    def _fields_arg(self, model: str, fields: Any) -> list[str]:
        if fields in (None, False, []):
            return [f for f in self.fields[model] if f != "id"]
        if not isinstance(fields, list | tuple):
            raise OdooError("builtins.TypeError", "fields must be a list")
        for f in fields:
            if f not in self.fields[model]:
                raise OdooError("builtins.ValueError", f"Invalid field {f!r} on model {model!r}")
        return [str(f) for f in fields if f != "id"]

    def call(self, model: str, method: str, ids: Sequence[int] | None, kwargs: Mapping[str, Any],
             context: Mapping[str, Any]) -> Any:
        """Run ``model.method`` with named arguments (what both transports come down to)."""
        if model not in self.fields:
            raise OdooError("werkzeug.exceptions.NotFound", f"The model {model!r} does not exist")
        if model == "mail.tracking.value" and not self.history_access:
            raise OdooError("odoo.exceptions.AccessError",
                            "You are not allowed to access 'Mail Tracking Value' (mail.tracking.value) records.")
        kw = dict(kwargs)

        def take(*names: str) -> dict[str, Any]:
            extra = set(kw) - set(names)
            if extra:
                raise OdooError("builtins.TypeError",
                                f"{model}.{method}() got an unexpected keyword argument {sorted(extra)[0]!r}")
            return {n: kw[n] for n in names if n in kw}

        if method == "search_read":
            a = take("domain", "fields", "offset", "limit", "order")
            fields = self._fields_arg(model, a.get("fields"))
            rows = self._search(model, a.get("domain") or [], a.get("offset"), a.get("limit"), a.get("order"), context)
            return [self._record_out(model, r, fields) for r in rows]
        if method == "search":
            a = take("domain", "offset", "limit", "order")
            return [r["id"] for r in self._search(model, a.get("domain") or [], a.get("offset"), a.get("limit"),
                                                   a.get("order"), context)]
        if method == "search_count":
            a = take("domain", "limit")
            return len(self._search(model, a.get("domain") or [], 0, a.get("limit"), None, context))
        if method == "read":
            a = take("fields")
            fields = self._fields_arg(model, a.get("fields"))
            return [self._record_out(model, self.tables[model][i], fields) for i in self._ids(model, ids)]
        if method == "create":
            a = take("vals_list")
            vals = a.get("vals_list")
            single = isinstance(vals, Mapping)
            vals_list = [vals] if single else vals
            if not isinstance(vals_list, list):
                raise OdooError("builtins.TypeError", "create() needs a list of values")
            if model != "crm.lead":
                at = self._now()
                new = [self._add(model, self._coerce(model, v), at) for v in vals_list]
            else:
                new = self._create_leads(vals_list)
            return new[0] if single else new
        if method == "write":
            a = take("vals")
            if model != "crm.lead":
                raise OdooError("odoo.exceptions.AccessError", f"You are not allowed to modify {model!r} records.")
            self._write_leads(self._ids(model, ids), a.get("vals") or {})
            return True
        if method == "unlink":
            take()
            for i in self._ids(model, ids):
                self.tables[model].pop(i, None)
                self._index[:] = [x for x in self._index if x[1] != i]
            return True
        if model == "crm.lead" and method == "action_set_won":
            take()
            for i in self._ids(model, ids):
                rec = self.tables[model][i]
                won = next(s for s in self._stages_for(rec["team_id"]) if s["is_won"])
                self._write_leads([i], {"active": True, "stage_id": won["id"], "probability": 100})
            return True
        if model == "crm.lead" and method == "action_set_lost":
            extra = dict(kw)
            self._write_leads(self._ids(model, ids), {"active": False, "probability": 0, **extra})
            return True
        raise OdooError("werkzeug.exceptions.NotFound", f"The method {model}.{method} does not exist")

    def _ids(self, model: str, ids: Sequence[int] | None) -> list[int]:
        if not isinstance(ids, list | tuple) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise OdooError("builtins.TypeError", "ids must be a list of integers")
        missing = [i for i in ids if i not in self.tables[model]]
        if missing:
            raise OdooError("odoo.exceptions.MissingError",
                            f"Record does not exist or has been deleted.\n(Record: {model}({missing[0]},), User: {self.uid})")
        return list(ids)

    # --- FakeApp hooks --------------------------------------------------------------------------------
    def _parse(self, req: FakeRequest) -> dict[str, Any]:
        """The request's route context (parsed once)."""
        if self._route_ctx.get("req") is req:
            return self._route_ctx
        ctx: dict[str, Any] = {"req": req}
        try:
            body = req.json()
        except ValueError:
            body = None
        ctx["body"] = body
        self._route_ctx = ctx
        return ctx

    def dispatch(self, req: FakeRequest) -> tuple[str, Callable[[FakeRequest], FakeResponse]] | None:
        parts = [unquote(p) for p in req.path.split("/") if p]
        if req.method != "POST":
            return None
        if parts == ["jsonrpc"]:
            body = self._parse(req)["body"]
            params = body.get("params") if isinstance(body, dict) else None
            if not isinstance(params, dict):
                return "rpc:common", self._rpc
            if params.get("service") == "object":
                args = params.get("args") or []
                model = args[3] if len(args) > 4 else "?"
                method = args[4] if len(args) > 4 else "?"
                return f"rpc:{model}:{method}", self._rpc
            return "rpc:common", self._rpc
        if len(parts) == 4 and parts[:2] == ["json", "2"] and self.version >= 19:
            return f"json2:{parts[2]}:{parts[3]}", lambda r: self._json2(parts[2], parts[3], r)
        return None

    def is_public(self, route: str) -> bool:
        return route == "rpc:common"

    def is_page(self, route: str) -> bool:
        return route.endswith(":crm.lead:search_read")

    def page_key(self, req: FakeRequest, route: str) -> str:
        """Pages of one kind of listing share a key: the same fields in the same order."""
        body = self._parse(req)["body"]
        kw: Any = body
        if isinstance(body, dict) and isinstance(body.get("params"), dict):
            args = body["params"].get("args") or []
            kw = args[6] if len(args) > 6 and isinstance(args[6], dict) else {}
        if not isinstance(kw, dict):
            return route
        return f"{route}|{kw.get('fields')}|{kw.get('order')}"

    def has_next(self, resp: FakeResponse) -> bool:
        found = self._more.get(id(resp))
        return bool(found is not None and found[0] is resp and found[1])

    def authorized(self, req: FakeRequest) -> bool:
        if req.path.rstrip("/") == "/jsonrpc":
            body = self._parse(req)["body"]
            args = ((body or {}).get("params") or {}).get("args") or [] if isinstance(body, dict) else []
            return (len(args) >= 3 and args[0] == self.db and args[1] == self.uid and bool(self.api_key)
                    and args[2] == self.api_key)
        scheme, _, key = req.headers.get("authorization", "").partition(" ")
        dbh = req.headers.get("x-odoo-database")
        return scheme.lower() == "bearer" and bool(self.api_key) and key == self.api_key and dbh in (None, self.db)

    def _rpc_error(self, req: FakeRequest, e: OdooError) -> FakeResponse:
        body = self._parse(req)["body"]
        rid = body.get("id") if isinstance(body, dict) else None
        return FakeResponse.of(200, {"jsonrpc": "2.0", "id": rid, "error": {
            "code": 200, "message": "Odoo Server Error",
            "data": {"name": e.name, "debug": "Traceback (most recent call last):\n  ...\n" + f"{e.name}: {e.message}",
                     "message": e.message, "arguments": [e.message], "context": {}}}})

    @staticmethod
    def _json2_error(e: OdooError) -> FakeResponse:
        return FakeResponse.of(e.status, {"name": e.name, "message": e.message, "arguments": [e.message, e.status],
                                          "context": {}, "debug": f"Traceback (most recent call last):\n  ...\n{e.name}: {e.message}"})

    def unauthorized(self, req: FakeRequest) -> FakeResponse:
        if req.path.rstrip("/") == "/jsonrpc":
            return self._rpc_error(req, OdooError("odoo.exceptions.AccessDenied", "Access Denied"))
        return self._json2_error(OdooError("werkzeug.exceptions.Unauthorized", "Invalid apikey"))

    def throttled(self, req: FakeRequest, route: str) -> FakeResponse:
        return FakeResponse(429, b"<html><head><title>429 Too Many Requests</title></head><body>"
                                 b"<center><h1>429 Too Many Requests</h1></center></body></html>",
                            {"Content-Type": "text/html", "Retry-After": f"{math.ceil(self.retry_after):d}"})

    def unavailable(self, req: FakeRequest) -> FakeResponse:
        return FakeResponse(502, b"<html><head><title>502 Bad Gateway</title></head><body>"
                                 b"<center><h1>502 Bad Gateway</h1></center></body></html>",
                            {"Content-Type": "text/html"})

    def not_found(self, req: FakeRequest) -> FakeResponse:
        return FakeResponse(404, b"<!doctype html><title>404 Not Found</title><h1>Not Found</h1>",
                            {"Content-Type": "text/html; charset=utf-8"})

    def _answer(self, resp: FakeResponse, kwargs: Mapping[str, Any], result: Any) -> FakeResponse:
        lim = kwargs.get("limit")
        more = isinstance(result, list) and isinstance(lim, int) and not isinstance(lim, bool) and len(result) >= lim
        self._more[id(resp)] = (resp, more)
        if len(self._more) > 64:
            self._more.pop(next(iter(self._more)))
        return resp

    def _json2(self, model: str, method: str, req: FakeRequest) -> FakeResponse:
        body = self._parse(req)["body"]
        if body is None:
            body = {}
        if not isinstance(body, dict):
            return self._json2_error(OdooError("werkzeug.exceptions.BadRequest", "the body must be a JSON object"))
        kw = dict(body)
        ids = kw.pop("ids", None)
        context = kw.pop("context", None) or {}
        try:
            result = self.call(model, method, ids, kw, context)
        except OdooError as e:
            return self._json2_error(e)
        return self._answer(FakeResponse.of(200, result), kw, result)

    def _rpc(self, req: FakeRequest) -> FakeResponse:
        body = self._parse(req)["body"]
        if not isinstance(body, dict) or not isinstance(body.get("params"), dict):
            return self._rpc_error(req, OdooError("werkzeug.exceptions.BadRequest", "Invalid JSON-RPC request"))
        params = body["params"]
        service, method, args = params.get("service"), params.get("method"), params.get("args") or []
        rid = body.get("id")

        def ok(result: Any) -> FakeResponse:
            return FakeResponse.of(200, {"jsonrpc": "2.0", "id": rid, "result": result})

        try:
            if service == "common":
                if method == "version":
                    major = self.version
                    return ok({"server_version": f"{major}.0", "server_version_info": [major, 0, 0, "final", 0, ""],
                               "server_serie": f"{major}.0", "protocol_version": 1})
                if method in ("authenticate", "login"):
                    db, login, key = (list(args) + [None, None, None])[:3]
                    good = db == self.db and login == self.login and bool(self.api_key) and key == self.api_key
                    return ok(self.uid if good else False)
                raise OdooError("werkzeug.exceptions.NotFound", f"No method {method!r} in service 'common'")
            if service != "object" or method != "execute_kw":
                raise OdooError("werkzeug.exceptions.NotFound", f"No method {method!r} in service {service!r}")
            if len(args) < 6:
                raise OdooError("builtins.TypeError", "execute_kw() takes at least 6 arguments")
            model, meth, pos = args[3], args[4], list(args[5] or [])
            kwargs = dict(args[6] or {}) if len(args) > 6 else {}
            context = kwargs.pop("context", None) or {}
            ids: list[int] | None = None
            if meth in ("read", "write", "unlink", "action_set_won", "action_set_lost"):
                ids = pos.pop(0) if pos else None
            names = {"search_read": ("domain", "fields", "offset", "limit", "order"),
                     "search": ("domain", "offset", "limit", "order"), "search_count": ("domain", "limit"),
                     "read": ("fields",), "create": ("vals_list",), "write": ("vals",)}.get(meth, ())
            if len(pos) > len(names):
                raise OdooError("builtins.TypeError", f"{model}.{meth}() takes {len(names)} positional arguments")
            for n, v in zip(names, pos, strict=False):
                if n in kwargs:
                    raise OdooError("builtins.TypeError", f"{model}.{meth}() got multiple values for argument {n!r}")
                kwargs[n] = v
            result = self.call(str(model), str(meth), ids, kwargs, context)
        except OdooError as e:
            return self._rpc_error(req, e)
        return self._answer(ok(result), kwargs, result)


def _sort_key(kind: str, v: Any) -> tuple[int, Any]:
    if v is None or v is False:
        return (0, 0)
    if kind.startswith("m2o:"):
        return (1, int(v))
    if kind == "datetime":
        return (1, v.replace(tzinfo=None).isoformat())
    if kind == "date":
        return (1, v.isoformat())
    return (1, v)


class OdooHarness(FakeHarness):
    """An :class:`OdooFake` plus adapters wired to it (see
    :class:`~salesprocess_adapters.fakes.HubSpotHarness` for the two modes). ``protocol`` is the
    adapters' transport: ``json2`` (Odoo 19+) or ``jsonrpc`` (``execute_kw``)."""

    fake_host = "odoo.fake"

    def __init__(self, mode: str = "transport", *, protocol: str = "json2", **fake_options: Any) -> None:
        from ..odoo import OdooAdapter

        self.protocol = protocol
        self._start(mode, OdooFake, {"timeout_delay": 0.6}, fake_options, OdooAdapter.capabilities)
        self.secrets = (self.fake.api_key,)

    def adapter(self, *, page_size: int | None = None, rate_limit: tuple[int, float] | bool | None = True,
                token: str | None = None, retry: Any = None, **options: Any) -> Any:
        from salesprocess.sync import RetryPolicy

        from ..odoo import OdooAdapter

        rl = self._rate_limit(rate_limit, self._window_limit())
        kw = self._clock_kw()
        kw.update(options)
        a = OdooAdapter(
            base_url=self.base_url, db=self.fake.db, login=self.fake.login, token=token or self.fake.api_key,
            protocol=kw.pop("protocol", self.protocol), page_size=page_size or 500, rate_limit=rl,
            timeout=0.3 if self.mode == "http" else 5.0, id_field=self.fake.id_field,
            retry=retry or RetryPolicy(attempts=5, base=0.02, cap=0.2), seed=29, **kw,
        )
        return self._track(a)


