"""``salesprocess fake odoo`` serves the Odoo fake over loopback HTTP, and ``salesprocess sync``
pulls from it — over JSON-2 when the server is Odoo 19, over JSON-RPC when it is older — with a
connections file whose API key comes only from the environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from salesprocess.cli.main import run
from salesprocess.process import Process
from salesprocess_adapters.sqlite import SQLiteStore

KEY = "odoo-key-from-env-4567"


def serve(version: int) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "ODOO_FAKE_KEY": KEY}
    proc = subprocess.Popen(
        [sys.executable, "-m", "salesprocess", "fake", "odoo", "--port", "0", "--seed-deals", "9", "--seed-batch", "4",
         "--token-env", "ODOO_FAKE_KEY", "--db", "acme", "--login", "bot@acme.test", "--odoo-version", str(version)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "odoo fake listening on http://127.0.0.1:" in line
    return proc, line.rsplit(" ", 1)[1].strip()


@pytest.fixture(params=[19, 16])
def served(request: pytest.FixtureRequest) -> Iterator[str]:
    proc, url = serve(request.param)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_sync_pull_and_pipelines_against_the_served_fake(served: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    conns = tmp_path / "connections.toml"
    conns.write_text(
        f'[connections.odoo]\nadapter = "odoo"\nbase_url = "{served}"\ntoken_env = "ODOO_TEST_KEY"\n'
        'db = "acme"\nlogin = "bot@acme.test"\nprotocol = "auto"\n', encoding="utf-8")
    monkeypatch.setenv("ODOO_TEST_KEY", KEY)
    db = tmp_path / "db.sqlite"
    assert run(["sync", "pull", "--connections", str(conns), "--db", str(db), "--format", "json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["created"], summary["failed"]) == (9, 0)
    assert run(["sync", "pipelines", "--connections", str(conns), "--db", str(db), "--out", str(tmp_path / "p")]) == 0
    (written,) = (tmp_path / "p").glob("odoo-*.toml")
    proc = Process.from_toml(written)
    assert [s.name for s in proc.stages] == ["New", "Qualified", "Proposition", "Won", "Lost"]
    store = SQLiteStore(db)
    try:
        by_name = {d.name: d for d in store.deals()}
        # seed_deals moves opportunity i (i % 3 != 0) to stage_ids()[i % 5]: 3 is won, 4 is lost
        assert by_name["Opportunity 8"].status.value == "won"
        assert by_name["Opportunity 4"].status.value == "lost"
        assert by_name["Opportunity 0"].stage == "1"
        assert by_name["Opportunity 2"].amount is not None
        assert str(by_name["Opportunity 2"].amount.amount) == "1074.10"
        assert [e.kind for e in by_name["Opportunity 4"].events] == ["created", "lost"]
        assert KEY.encode() not in db.read_bytes()
    finally:
        store.close()
