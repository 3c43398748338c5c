"""The JSON-safe codec: events and entities round trip through plain data and JSON text."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from salesprocess import Deal, DomainError, Money, Rate, replay
from salesprocess.codec import (
    decode_entity,
    decode_event,
    decode_value,
    dumps,
    encode_deal_state,
    encode_entity,
    encode_event,
    encode_value,
    instant,
    iso,
    loads,
)
from salesprocess.model import FrozenMap
from salesprocess.testing import strategies as sps

histories = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _in_utc(events: Any) -> list[Any]:
    """Events with their instants in UTC. Python compares two aware datetimes of different zones
    as unequal when one of them is a repeated wall-clock time (PEP 495), even if they are the same
    instant; the codec stores instants in UTC, so compare in UTC."""
    return [e._replace(at=e.at.astimezone(UTC)) for e in events]


@histories
@given(sps.deal_histories())
def test_events_round_trip_through_json(deal: Deal) -> None:
    text = dumps([encode_event(e) for e in deal.events])
    decoded = [decode_event(d) for d in loads(text)]
    assert decoded == _in_utc(deal.events)
    assert [type(e) for e in decoded] == [type(e) for e in deal.events]
    assert all(e.at.tzinfo is UTC for e in decoded)
    assert replay(decoded) == replay(_in_utc(deal.events))


@histories
@given(sps.deal_histories())
def test_deal_state_is_plain_json(deal: Deal) -> None:
    state = loads(dumps(encode_deal_state(deal)))
    assert state["version"] == deal.version
    assert state["stage"] == deal.stage
    assert (
        Money(state["amount"], state["currency"]) if state["amount"] is not None else None
    ) == deal.amount
    assert instant(state["updated_at"]) == deal.updated_at


entities = st.one_of(
    sps.accounts(), sps.contacts(), sps.teams(), sps.reps(), sps.products(), sps.activities()
)


@settings(max_examples=150)
@given(entities)
def test_entities_round_trip_through_json(entity: Any) -> None:
    data = loads(dumps(encode_entity(entity)))
    assert decode_entity(data) == entity
    assert decode_entity(data, type(entity)) == entity


@given(
    st.one_of(
        sps.money(),
        sps.rates(max_value=10),
        sps.dates(),
        sps.aware_datetimes(),
        st.decimals(allow_nan=False, allow_infinity=False, places=4),
    )
)
def test_values_round_trip(value: object) -> None:
    decoded = decode_value(json.loads(json.dumps(encode_value(value))))
    if isinstance(value, datetime):  # the same instant, in UTC (see _in_utc)
        assert decoded.tzinfo is UTC
        assert decoded == value.astimezone(UTC)
    else:
        assert decoded == value


def test_a_repeated_wall_clock_time_comes_back_as_the_same_instant() -> None:
    berlin = datetime(2024, 10, 27, 2, 30, tzinfo=ZoneInfo("Europe/Berlin"))  # happens twice
    for at in (berlin, berlin.replace(fold=1)):
        back = decode_value(json.loads(json.dumps(encode_value(at))))
        assert back.timestamp() == at.timestamp()
    assert decode_value(encode_value(berlin)) != decode_value(encode_value(berlin.replace(fold=1)))


def test_money_keeps_its_digits_and_instants_go_to_utc() -> None:
    m = Money("12.50", "CNY")
    assert encode_value(m) == {"$money": ["12.50", "CNY"]}
    assert decode_value(encode_value(m)).amount.as_tuple() == Decimal("12.50").as_tuple()
    at = datetime(2026, 3, 2, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    assert iso(at) == "2026-03-02T01:00:00+00:00"
    assert instant(iso(at)) == at
    assert instant(iso(at)).tzinfo == UTC
    assert encode_value(Rate("0.25")) == {"$rate": "0.25"}
    assert encode_value(FrozenMap({"a": (1, "x")})) == {"$map": {"a": [1, "x"]}}
    assert dumps({"名": "王伟"}) == '{"名":"王伟"}'


def test_bad_input_is_refused() -> None:
    with pytest.raises(DomainError, match="no timezone"):
        instant("2026-03-02T09:00:00")
    with pytest.raises(DomainError, match="unknown event kind"):
        decode_event(
            {
                "deal_id": "d",
                "kind": "teleported",
                "at": "2026-03-02T09:00:00+00:00",
                "actor": "a",
                "source": "user",
                "data": {},
            }
        )
    with pytest.raises(TypeError):
        encode_value(1.5)
    with pytest.raises(TypeError, match="not an entity"):
        encode_entity(Money("1", "USD"))
