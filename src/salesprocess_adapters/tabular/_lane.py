"""The bulk lane of deal imports: new deals written as rows, without Deal objects.

The common import is a file of deals that are all new to the store. For such a row the general
path builds a Deal with its synthesized events, then the store encodes them again into rows. The
lane reads the same validated cells (the same compiled row reader, so the same parsers and the
same values), checks what the general path checks, and encodes the deal row, its external id row
and its event rows straight away, with JSON text assembled from pieces computed once per stage,
value or reference. Batches go to :meth:`SQLStore.insert_new_deals` (one statement per table).

Whenever a row is anything but a clean new deal (a cell or rule error, a reference not resolved
yet, a key seen before, writing stopped after a bad row), the lane declines it, having changed
nothing, and the general path handles it: errors, stubs and updates come from one place only, so
they are the same whichever lane a row took. Tests check that both lanes store identical rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from salesprocess.model import DealStatus, EventSource
from salesprocess.money import Money
from salesprocess.process import StageKind
from salesprocess_adapters._sql import NewDealRows, event_json, json_quote, json_value

if TYPE_CHECKING:
    from ._importer import _DealImporter

__all__ = ["LANE_FIELDS", "DealLane"]

LANE_FIELDS = frozenset({
    "external_id", "name", "owner", "account", "products", "stage", "created_at", "closed_at",
    "stage_entered_at", "close_date", "amount", "currency",
})
"""The deal fields the lane handles; a mapping that speaks of any other field (custom fields,
probability, contacts, lost reason, a process column...) imports through the general path."""

_CACHE_MAX = 200_000


class _Target:
    """What a row that ends in one stage writes, computed once per stage."""

    __slots__ = ("closed", "fc", "is_closed", "key", "kind", "move_json", "moved", "prob", "stage", "status",
                 "version")

    def __init__(self, lane: DealLane, stage: Any) -> None:
        imp = lane.imp
        init = lane.init
        self.stage = stage
        self.key: str = stage.key
        self.is_closed: bool = stage.is_closed
        status = {StageKind.OPEN: DealStatus.OPEN, StageKind.WON: DealStatus.WON,
                  StageKind.LOST: DealStatus.LOST}[stage.kind]
        self.status: str = status.value
        self.closed = status is not DealStatus.OPEN
        self.moved = stage.key != init.key
        num = lane.rows.num
        if self.moved:
            cls, prob, fc = imp.move_args(stage, False)
            probe = cls._make(("", datetime.min, imp.actor, EventSource.IMPORT, init.key, stage.key, prob,
                               EventSource.STAGE_DEFAULT, fc, None))
            self.kind: str = cls.kind
            self.move_json = event_json(probe)
            self.version = 2
        else:
            prob, fc = init.probability, init.effective_forecast_category
            self.kind = ""
            self.move_json = ""
            self.version = 1
        self.prob = None if prob is None else num(prob.value)
        self.fc = None if fc is None else fc.value


class DealLane:
    """Takes the rows of a deals import that create new deals (see the module doc)."""

    def __init__(self, imp: _DealImporter, rows: NewDealRows) -> None:
        ctx = imp.ctx
        m = imp.m
        assert m.process is not None
        assert imp.seen is not None
        self.imp = imp
        self.ctx = ctx
        self.rows = rows
        self.extract = imp.ex.row
        self.seen = imp.seen
        self.pending = imp.pending
        self.report = ctx.report
        self.batch_size = ctx.batch_size
        self.proc = m.process
        self.init = m.process.initial_stage
        self.stage_names = dict(imp.stages)
        self.asof = m.asof
        self.currency = m.currency
        self.tz = m.timezone
        self.fill_close_date = imp.fill_close_date
        self.actor = imp.actor
        self.source = ctx.source
        self.id_prefix = f"{ctx.source}-"
        self.rep_memo = ctx.index("rep").memo
        self.account_memo = ctx.index("account").memo
        self.product_memo = ctx.index("product").memo
        self.targets: dict[Any, _Target] = {}
        self.ts_cache: dict[datetime, Any] = {}
        self.day_cache: dict[datetime, tuple[date, Any, str]] = {}
        self.quoted: dict[str, str] = {}
        self.lists: dict[tuple[str, ...], str] = {}
        self.amounts: dict[Decimal, tuple[Decimal, str, str, tuple[Any, ...]]] = {}
        self.recipes: list[tuple[Any, ...]] = []
        """Per queued row, what the general path needs to build its Deal (see :meth:`flush`)."""
        q = json_quote
        self.q_source = q(ctx.source)
        init = self.init
        head = {"process": self.proc.key, "process_version": self.proc.version, "stage": init.key,
                "status": DealStatus.OPEN}
        self.created_head = "{" + ",".join(q(k) + ":" + json_value(v) for k, v in head.items()) + ',"name":'
        tail = {"probability": init.probability, "probability_source": EventSource.STAGE_DEFAULT,
                "forecast_category": init.effective_forecast_category}
        self.created_tail = "".join(
            "," + q(k) + ":" + json_value(v) for k, v in tail.items() if v is not None
        ) + ',"details":{"$map":{'
        self.import_source = EventSource.IMPORT.value
        self.proc_key = self.proc.key
        self.proc_version = self.proc.version
        self.init_key = init.key
        self.stage_default = EventSource.STAGE_DEFAULT.value
        self.no_amount = (None,) * len(rows.amount(Decimal(0), "USD"))
        self.known_new = False
        """Set when the store had no deals as the import began: every id of the lane is new."""

    # ------------------------------------------------------------------------------------------
    def target(self, raw: Any) -> _Target | None:
        t = self.targets.get(raw)
        if t is None and raw is not None:
            key = self.stage_names.get(raw, raw)
            if not self.proc.has_stage(key):
                return None
            t = self.targets[raw] = _Target(self, self.proc.stage(key))
        return t

    def ts(self, at: datetime) -> Any:
        c = self.ts_cache
        v = c.get(at)
        if v is None:
            if len(c) >= _CACHE_MAX:
                c.clear()
            v = c[at] = self.rows.ts(at)
        return v

    def quote(self, s: str) -> str:
        c = self.quoted
        v = c.get(s)
        if v is None:
            if len(c) >= _CACHE_MAX:
                c.clear()
            v = c[s] = json_quote(s)
        return v

    def add(self, line: int, raw: Sequence[Any]) -> bool:
        """Queue the row as a new deal and return True, or return False having changed nothing."""
        if not self.ctx.writing:
            return False
        vals, errs = self.extract(line, raw)
        if errs:
            return False
        ext = vals["external_id"]
        if not ext:
            return False
        get = vals.get
        stage_raw = get("stage")
        t = self.targets.get(stage_raw) or self.target(stage_raw)
        if t is None:
            return False
        created = get("created_at")
        if created is None:
            created = self.asof
            if created is None:
                return False
        closed = get("closed_at")
        if closed is None:
            if t.is_closed:
                return False
        elif closed < created:
            return False
        entered = get("stage_entered_at")
        if entered is not None and entered < created:
            return False
        owner = get("owner")
        if owner is not None:
            owner = self.rep_memo.get(owner)
            if not owner:
                return False
        account = get("account")
        if account is not None:
            account = self.account_memo.get(account)
            if not account:
                return False
        products = get("products")
        if products is not None:
            pm = self.product_memo
            products = tuple([pm.get(x) for x in products])
            if None in products or "" in products:
                return False
        amount = get("amount")
        cur = None
        if amount is not None:
            cur = get("currency") or self.currency
            if cur is None:
                return False
        key = str(ext)
        if key in self.pending:
            return False
        if not self.seen.add_new(key):  # seen before (or a false hit): the general path looks it up
            return False
        # -- the row is a new deal: encode it ---------------------------------------------------
        self.report.created += 1
        rows = self.rows
        deal_id = self.id_prefix + key
        name = get("name") or ""
        close_date = get("close_date")
        if close_date is None and t.is_closed and closed is not None and self.fill_close_date:
            day = self.day_cache.get(closed)
            if day is None:
                if len(self.day_cache) >= _CACHE_MAX:
                    self.day_cache.clear()
                d = closed.astimezone(self.tz).date()
                day = self.day_cache[closed] = (d, rows.date(d), ',"close_date":{"$date":"' + d.isoformat() + '"}')
            close_date, close_param, close_json = day
        elif close_date is not None:
            close_param = rows.date(close_date)
            close_json = ',"close_date":{"$date":"' + close_date.isoformat() + '"}'
        else:
            close_param = None
            close_json = ""
        tsc = self.ts_cache
        t_created = tsc.get(created) or self.ts(created)
        if t.moved:
            at = entered if entered is not None else (closed if t.is_closed and closed is not None else created)
            t_at = tsc.get(at) or self.ts(at)
        else:
            t_at = t_created
        quoted = self.quoted
        if amount is not None:
            assert cur is not None
            # by the very Decimal object (the amount parser returns one per distinct cell text):
            # equal amounts written differently (1.0, 1) have different texts
            hit = self.amounts.get(amount)
            if hit is None or hit[0] is not amount or hit[1] != cur:
                if len(self.amounts) >= _CACHE_MAX:
                    self.amounts.clear()
                hit = self.amounts[amount] = (
                    amount, cur,
                    ',"amount":{"$money":[' + json_quote(str(amount)) + "," + (quoted.get(cur) or self.quote(cur)) + "]}",
                    rows.amount(amount, cur),
                )
            money = hit[2]
            amount_cols = hit[3]
        else:
            money = ""
            amount_cols = self.no_amount
        q_ext = json_quote(key)
        source_ext = self.q_source + ":" + q_ext
        if products:
            plist = self.lists.get(products)
            if plist is None:
                if len(self.lists) >= _CACHE_MAX:
                    self.lists.clear()
                plist = self.lists[products] = '"product_ids":' + json_value(products) + ","
            rest = "{" + plist + '"external_ids":{' + source_ext + "}}"
        else:
            plist = ""
            rest = '{"external_ids":{' + source_ext + "}}"
        created_json = "".join((
            self.created_head, json_quote(name), money, close_json,
            "" if owner is None else ',"owner_id":' + (quoted.get(owner) or self.quote(owner)),
            "" if account is None else ',"account_id":' + (quoted.get(account) or self.quote(account)),
            self.created_tail, plist, '"external_ids":{"$map":{', source_ext, "}}}}}",
        ))
        rows.deals.append((
            deal_id, self.proc_key, self.proc_version, name, t.key, t.status, *amount_cols, close_param,
            owner, account, t.prob, self.stage_default, t.fc, t_created, t_at,
            t_at if t.closed else None, t_at, t.version, rest,
        ))
        rows.external_ids.append((self.source, key, deal_id))
        actor = self.actor
        source = self.import_source
        events = rows.events
        events.append((deal_id, 1, "created", t_created, actor, source, None, None, created_json))
        if t.moved:
            events.append((deal_id, 2, t.kind, t_at, actor, source, self.init_key, t.key, t.move_json))
        recipes = self.recipes
        recipes.append((vals, t.stage, deal_id, key, created, closed, entered, owner, account, products))
        if len(recipes) + len(self.pending) >= self.batch_size:
            self.imp.flush()
        return True

    def deals(self) -> list[tuple[str, Any]]:
        """The queued deals as the general path builds them: (key, Deal)."""
        imp = self.imp
        m = imp.m
        out = []
        for vals, stage, deal_id, ext, created, closed, entered, owner, account, products in self.recipes:
            a = vals.get("amount")
            amount = None if a is None else Money(a, vals.get("currency") or m.currency)
            deal = imp.new_deal(vals, self.proc, stage, deal_id, ext, created, closed, entered, amount,
                                owner, account, products, None)
            out.append((ext, deal))
        return out

    def flush(self) -> None:
        """Write the queued deals. Once a bad row has stopped writing (``on_error="fail"``) they
        join the general path's pending deals instead, where that path keeps its own."""
        from ._importer import save_deals

        rows = self.rows
        if rows.deals:
            store = self.ctx.store
            if not self.ctx.writing:
                for key, deal in self.deals():
                    self.pending[key] = (deal, None)
            elif not store.insert_new_deals(rows, known_new=self.known_new):
                # an id is taken: the general path's Deals, saved the careful way, say how
                save_deals(store, [(deal, None) for _, deal in self.deals()])
        rows.clear()
        self.recipes.clear()
