"""``salesprocess fake pipedrive`` serves the Pipedrive fake over loopback HTTP, and ``salesprocess
sync`` pulls from it with a connections file whose API token comes only from the environment;
``sync pipelines --out`` writes a process with Pipedrive's stages plus ``won`` and ``lost``."""

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
from salesprocess_adapters.fakes.pipedrive import ID_FIELD_KEY
from salesprocess_adapters.sqlite import SQLiteStore

TOKEN = "pipedrive-token-from-env-0123"


@pytest.fixture
def served() -> Iterator[str]:
    env = {**os.environ, "PIPEDRIVE_FAKE_TOKEN": TOKEN}
    proc = subprocess.Popen(
        [sys.executable, "-m", "salesprocess", "fake", "pipedrive", "--port", "0", "--seed-deals", "14",
         "--token-env", "PIPEDRIVE_FAKE_TOKEN"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "pipedrive fake listening on http://127.0.0.1:" in line
        yield line.rsplit(" ", 1)[1].strip()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_sync_pull_and_pipelines_against_the_served_fake(served: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    conns = tmp_path / "connections.toml"
    conns.write_text(
        f'[connections.pd]\nadapter = "pipedrive"\nbase_url = "{served}"\ntoken_env = "PD_TEST_TOKEN"\n'
        f'id_field = "{ID_FIELD_KEY}"\n', encoding="utf-8")
    monkeypatch.setenv("PD_TEST_TOKEN", TOKEN)
    db = tmp_path / "db.sqlite"
    assert run(["sync", "pull", "--connections", str(conns), "--db", str(db), "--format", "json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["created"], summary["failed"]) == (14, 0)
    assert run(["sync", "pipelines", "--connections", str(conns), "--db", str(db), "--out", str(tmp_path / "p")]) == 0
    (written,) = (tmp_path / "p").glob("pd-*.toml")
    proc = Process.from_toml(written)
    assert [s.name for s in proc.stages] == ["Qualified", "Contact made", "Demo scheduled", "Proposal made",
                                             "Negotiations started", "Won", "Lost"]
    assert [s.key for s in proc.won_stages] == ["won"]
    assert [s.key for s in proc.lost_stages] == ["lost"]
    store = SQLiteStore(db)
    try:
        deals = list(store.deals())
        # seed_deals moves deal i (i % 3 != 0) to stage_ids()[i % 7]: 5 is won, 13 lost
        by_name = {d.name: d for d in deals}
        assert by_name["Deal 5"].status.value == "won"
        assert by_name["Deal 13"].status.value == "lost"
        assert by_name["Deal 6"].stage == "1"
        assert by_name["Deal 4"].stage == "5"
        assert [e.kind for e in by_name["Deal 13"].events] == ["created", "lost"]
        assert all(d.amount is not None and d.amount.currency == "USD" for d in deals)
        assert TOKEN.encode() not in db.read_bytes()
    finally:
        store.close()


def test_a_missing_token_variable_is_named_not_shown(served: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    conns = tmp_path / "connections.toml"
    conns.write_text(f'[connections.pd]\nadapter = "pipedrive"\nbase_url = "{served}"\ntoken_env = "PD_UNSET"\n',
                     encoding="utf-8")
    monkeypatch.delenv("PD_UNSET", raising=False)
    assert run(["sync", "pull", "--connections", str(conns), "--db", str(tmp_path / "x.sqlite")]) != 0
    err = capsys.readouterr().err
    assert "PD_UNSET" in err
