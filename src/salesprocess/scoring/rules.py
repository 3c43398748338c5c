"""Rule-based deal scoring: points from TOML, each matching rule listed with its points.

.. code-block:: toml

    base = 0

    [[rules]]
    name = "enterprise"
    points = 15
    description = "enterprise accounts buy bigger"
    when = { size_band = "enterprise" }

    [[rules]]
    name = "late_stage_multi_threaded"
    points = 20
    when = { stage = ["quote", "negotiation"], contacts = { min = 3 } }

    [[rules]]
    name = "competitor"
    points = -10
    when = { has_competitor = true }

A rule matches when every condition of its ``when`` table holds; an empty ``when`` always matches.
A condition is a value (equality), a list (one of), or a table with ``min`` and/or ``max``
(inclusive, numbers). Attribute names are those of
:func:`salesprocess.scoring.features.deal_attributes` (plus ``custom.NAME``). The score is
``base + Σ points`` of the matching rules, exactly (Decimal), and the contributions add up to it.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import attrs

from salesprocess.errors import DefinitionError, Problem, ProcessFileError

__all__ = ["ATTRIBUTES", "Rule", "RuleScore", "RuleSet"]

ATTRIBUTES = frozenset({
    "stage", "process", "owner", "team", "region", "industry", "size_band", "country", "product",
    "product_family", "amount", "currency", "contacts", "activities_30d", "activities",
    "competitors", "has_competitor", "pushes", "age_days", "days_in_stage", "days_since_activity",
    "has_next_step", "manual_probability",
})


def _num(v: Any) -> Decimal | None:
    if isinstance(v, bool) or v is None:
        return None
    try:
        return Decimal(str(v))
    except InvalidOperation:
        return None


@attrs.frozen
class Rule:
    name: str
    points: Decimal
    when: tuple[tuple[str, Any], ...] = ()
    description: str = ""

    def matches(self, a: Mapping[str, Any]) -> bool:
        for key, cond in self.when:
            val = a.get(key)
            if isinstance(cond, Mapping):
                x = _num(val)
                if x is None:
                    return False
                lo, hi = cond.get("min"), cond.get("max")
                if lo is not None and x < Decimal(str(lo)):
                    return False
                if hi is not None and x > Decimal(str(hi)):
                    return False
            elif isinstance(cond, tuple):
                if not any(_eq(val, c) for c in cond):
                    return False
            elif not _eq(val, cond):
                return False
        return True


def _eq(val: Any, cond: Any) -> bool:
    if isinstance(cond, bool) or isinstance(val, bool):
        return val is cond
    if isinstance(cond, int | float) and not isinstance(cond, bool):
        x = _num(val)
        return x is not None and x == Decimal(str(cond))
    return val is not None and str(val) == str(cond)


@attrs.frozen
class RuleScore:
    deal_id: str
    score: Decimal
    base: Decimal
    matched: tuple[Rule, ...]

    def explain(self) -> list[str]:
        out = [f"base {self.base}"]
        out += [f"{r.name}: {r.points:+}" + (f" ({r.description})" if r.description else "")
                for r in self.matched]
        out.append(f"score {self.score}")
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"deal_id": self.deal_id, "score": self.score, "base": self.base,
                "rules": [{"name": r.name, "points": r.points, "description": r.description}
                          for r in self.matched]}


@attrs.frozen
class RuleSet:
    rules: tuple[Rule, ...]
    base: Decimal = Decimal(0)

    def score(self, deal_id: str, attributes: Mapping[str, Any]) -> RuleScore:
        matched = tuple(r for r in self.rules if r.matches(attributes))
        total = self.base + sum((r.points for r in matched), Decimal(0))
        return RuleScore(deal_id, total, self.base, matched)

    @classmethod
    def from_toml(cls, text_or_path: str | Path) -> RuleSet:
        name = "<rules>"
        if isinstance(text_or_path, Path) or (
            isinstance(text_or_path, str) and "\n" not in text_or_path and text_or_path.endswith(".toml")
        ):
            p = Path(text_or_path)
            name = str(p)
            try:
                text = p.read_text(encoding="utf-8")
            except OSError as e:
                raise ProcessFileError(name, f"cannot read: {e.strerror or e}") from None
        else:
            text = str(text_or_path)
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            m = re.search(r"at line (\d+), column (\d+)", str(e))
            raise ProcessFileError(name, f"invalid TOML: {e}", line=int(m.group(1)) if m else None,
                                   column=int(m.group(2)) if m else None) from None
        return cls.from_dict(data, source=name)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<rules>") -> RuleSet:
        probs: list[Problem] = []
        for k in data:
            if k not in ("base", "rules"):
                probs.append(Problem(k, "unknown", f"unknown key {k!r} (expected base, rules)"))
        base = _num(data.get("base", 0))
        if base is None:
            probs.append(Problem("base", "type", "base must be a number"))
            base = Decimal(0)
        items = data.get("rules", [])
        rules = []
        names: set[str] = set()
        if not isinstance(items, list):
            probs.append(Problem("rules", "type", "expected an array of tables ([[rules]])"))
            items = []
        for i, r in enumerate(items):
            path = f"rules[{i}]"
            if not isinstance(r, Mapping):
                probs.append(Problem(path, "type", "expected a table"))
                continue
            for k in r:
                if k not in ("name", "points", "when", "description"):
                    probs.append(Problem(f"{path}.{k}", "unknown", f"unknown rule field {k!r}"))
            nm = r.get("name")
            if not isinstance(nm, str) or not nm:
                probs.append(Problem(f"{path}.name", "missing", "a rule needs a name"))
                nm = f"rule{i}"
            elif nm in names:
                probs.append(Problem(f"{path}.name", "duplicate", f"rule {nm!r} defined twice"))
            names.add(nm)
            pts = _num(r.get("points"))
            if pts is None:
                probs.append(Problem(f"{path}.points", "type", "points must be a number"))
                pts = Decimal(0)
            when = r.get("when", {})
            conds: list[tuple[str, Any]] = []
            if not isinstance(when, Mapping):
                probs.append(Problem(f"{path}.when", "type", "expected a table of conditions"))
                when = {}
            for k, c in when.items():
                cpath = f"{path}.when.{k}"
                if k not in ATTRIBUTES and not k.startswith("custom."):
                    probs.append(Problem(cpath, "unknown", f"unknown attribute {k!r}"))
                if isinstance(c, Mapping):
                    bad = set(c) - {"min", "max"}
                    if bad or not c:
                        probs.append(Problem(cpath, "type", "a range needs min and/or max only"))
                    for b in ("min", "max"):
                        if b in c and _num(c[b]) is None:
                            probs.append(Problem(f"{cpath}.{b}", "type", f"{b} must be a number"))
                    conds.append((k, dict(c)))
                elif isinstance(c, list):
                    conds.append((k, tuple(c)))
                else:
                    conds.append((k, c))
            rules.append(Rule(nm, pts, tuple(conds), str(r.get("description", ""))))
        if probs:
            raise DefinitionError(probs, source=source)
        return cls(tuple(rules), base)

