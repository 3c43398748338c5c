"""Shared fixtures.

PostgreSQL: the server comes from ``SALESPROCESS_PG_DSN`` (default: the local server, as user
``postgres`` or else ``root``). Every test gets its own freshly created schema, dropped afterwards.
When no server answers the tests are skipped, unless ``SALESPROCESS_REQUIRE_PG=1`` (as in CI),
which makes them fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

_DEFAULT_DSNS = (
    "host=127.0.0.1 port=5432 dbname=test user=postgres",
    "host=127.0.0.1 port=5432 dbname=test user=root",
)


def _find_pg() -> tuple[str | None, str]:
    """A DSN that connects, or None and why not."""
    try:
        import psycopg
    except ImportError:
        return None, "psycopg is not installed (pip install 'salesprocess[postgres]')"
    env = os.environ.get("SALESPROCESS_PG_DSN")
    candidates = (env,) if env else _DEFAULT_DSNS
    errors = []
    for dsn in candidates:
        try:
            with psycopg.connect(dsn, connect_timeout=3) as conn:
                conn.execute("SELECT 1")
            return dsn, ""
        except psycopg.Error as e:
            errors.append(f"{dsn!r}: {str(e).strip().splitlines()[0] if str(e).strip() else e}")
    return None, "no PostgreSQL server reachable: " + "; ".join(errors)


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    """A DSN of a reachable PostgreSQL server (skips, or fails when it is required)."""
    dsn, why = _find_pg()
    if dsn is None:
        if os.environ.get("SALESPROCESS_REQUIRE_PG") == "1":
            pytest.fail(f"SALESPROCESS_REQUIRE_PG=1 but {why}", pytrace=False)
        pytest.skip(why)
    return dsn


@pytest.fixture
def pg_schema(pg_dsn: str) -> Iterator[str]:
    """A fresh, uniquely named schema on the server; dropped (with its tables) afterwards."""
    import psycopg

    name = f"sp_test_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture
def pg_store(pg_dsn: str, pg_schema: str) -> Iterator[Any]:
    """A :class:`~salesprocess_adapters.postgres.PostgresStore` in its own fresh schema."""
    from salesprocess_adapters.postgres import PostgresStore

    store = PostgresStore(pg_dsn, schema=pg_schema)
    yield store
    store.close()
