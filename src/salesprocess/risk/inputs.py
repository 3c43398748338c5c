"""Read the plain-value risk inputs (receivables, orders, limits, surveys, complaints, revenue) from
JSON-shaped data, reporting every bad record at once.

.. code-block:: json

    {
      "invoices":   [{"id": "inv-1", "account_id": "acc-1", "amount": "1200.00", "currency": "USD",
                      "issued": "2026-01-10", "due": "2026-02-09"}],
      "payments":   [{"id": "pay-1", "invoice_id": "inv-1", "amount": "1200.00", "currency": "USD",
                      "on": "2026-02-20"}],
      "orders":     [{"id": "ord-1", "account_id": "acc-1", "amount": "500", "currency": "USD",
                      "on": "2026-03-01"}],
      "limits":     {"acc-1": {"amount": "50000", "currency": "USD"}},
      "surveys":    [{"id": "s-1", "kind": "csat", "score": 4, "at": "2026-03-02T10:00:00+00:00",
                      "account_id": "acc-1"}],
      "complaints": [{"id": "c-1", "account_id": "acc-1", "at": "2026-03-05T09:00:00+00:00",
                      "severity": "high"}],
      "revenue":    [{"account_id": "acc-1", "period": "2026-02", "amount": "900", "currency": "USD"}]
    }

Amounts are strings or integers (never floats); dates ``YYYY-MM-DD``; instants ISO 8601 with an
offset. Every section is optional.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

from salesprocess.errors import ImportDataError, Problem
from salesprocess.kpi import AccountRevenue, SurveyResponse
from salesprocess.money import Money
from salesprocess.periods import Period

from .churn import ChurnInputs, Complaint
from .credit import CreditInputs, Invoice, Order, Payment

__all__ = ["inputs_from_dict", "read_inputs"]

SECTIONS = ("invoices", "payments", "orders", "limits", "surveys", "complaints", "revenue")


def _money(r: Mapping[str, Any]) -> Money:
    amt = r["amount"]
    if isinstance(amt, float):
        raise TypeError("amount must be a string or an integer, not a float")
    return Money(amt, r["currency"])


def _date(v: Any) -> date:
    return date.fromisoformat(v)


def _instant(v: Any) -> datetime:
    d = datetime.fromisoformat(v)
    if d.tzinfo is None:
        raise ValueError(f"instant {v!r} has no offset")
    return d


def _invoice(r: Mapping[str, Any]) -> Invoice:
    return Invoice(r["id"], r["account_id"], _money(r), _date(r["issued"]), _date(r["due"]))


def _payment(r: Mapping[str, Any]) -> Payment:
    return Payment(r["id"], r["invoice_id"], _money(r), _date(r["on"]))


def _order(r: Mapping[str, Any]) -> Order:
    return Order(r["id"], r["account_id"], _money(r), _date(r["on"]))


def _survey(r: Mapping[str, Any]) -> SurveyResponse:
    return SurveyResponse(r["id"], r["kind"], r["score"], _instant(r["at"]),
                          account_id=r.get("account_id"), deal_id=r.get("deal_id"),
                          owner_id=r.get("owner_id"), contact_id=r.get("contact_id"))


def _complaint(r: Mapping[str, Any]) -> Complaint:
    res = r.get("resolved_at")
    return Complaint(r["id"], r["account_id"], _instant(r["at"]), r.get("severity", "medium"),
                     _instant(res) if res else None, r.get("subject", ""))


def _revenue(r: Mapping[str, Any]) -> AccountRevenue:
    return AccountRevenue(r["account_id"], Period.parse(r["period"]), _money(r),
                          r.get("product_id"))


def inputs_from_dict(data: Mapping[str, Any], *, source: str = "<inputs>") -> tuple[CreditInputs, ChurnInputs]:
    """Credit and churn inputs from a mapping (see the module documentation)."""
    probs: list[Problem] = []
    if not isinstance(data, Mapping):
        raise ImportDataError(f"{source}: expected a JSON object", report=[Problem("", "type", "expected an object")])
    for k in data:
        if k not in SECTIONS:
            probs.append(Problem(k, "unknown", f"unknown section {k!r} (known: {', '.join(SECTIONS)})"))
    out: dict[str, list[Any]] = {}
    readers: dict[str, Callable[[Mapping[str, Any]], Any]] = {
        "invoices": _invoice, "payments": _payment, "orders": _order, "surveys": _survey,
        "complaints": _complaint, "revenue": _revenue,
    }
    for sec, read in readers.items():
        items = data.get(sec, [])
        if not isinstance(items, list):
            probs.append(Problem(sec, "type", "expected a list"))
            continue
        got = []
        for i, r in enumerate(items):
            try:
                if not isinstance(r, Mapping):
                    raise TypeError("expected an object")
                got.append(read(r))
            except KeyError as e:
                probs.append(Problem(f"{sec}[{i}]", "missing", f"missing field {e.args[0]!r}"))
            except (TypeError, ValueError) as e:
                probs.append(Problem(f"{sec}[{i}]", "invalid", str(e)))
        out[sec] = got
    limits: dict[str, Money] = {}
    lim = data.get("limits", {})
    if not isinstance(lim, Mapping):
        probs.append(Problem("limits", "type", "expected an object of account id → money"))
    else:
        for k, v in lim.items():
            try:
                if not isinstance(v, Mapping):
                    raise TypeError("expected {\"amount\": ..., \"currency\": ...}")
                limits[k] = _money(v)
            except KeyError as e:
                probs.append(Problem(f"limits.{k}", "missing", f"missing field {e.args[0]!r}"))
            except (TypeError, ValueError) as e:
                probs.append(Problem(f"limits.{k}", "invalid", str(e)))
    if probs:
        raise ImportDataError(
            f"{source}: {len(probs)} problem(s): " + "; ".join(str(p) for p in probs[:5]), report=probs
        )
    credit = CreditInputs(out["invoices"], out["payments"], out["orders"], limits)
    churn = ChurnInputs(out["surveys"], out["complaints"], out["revenue"])
    return credit, churn


def read_inputs(path: str | Path) -> tuple[CreditInputs, ChurnInputs]:
    """Credit and churn inputs from a JSON file."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise ImportDataError(f"{p}: cannot read: {e.strerror or e}",
                              report=[Problem(str(p), "io", str(e))]) from None
    except json.JSONDecodeError as e:
        raise ImportDataError(f"{p}:{e.lineno}: invalid JSON: {e.msg}",
                              report=[Problem(f"{p}:{e.lineno}", "parse", e.msg)]) from None
    return inputs_from_dict(data, source=str(p))
