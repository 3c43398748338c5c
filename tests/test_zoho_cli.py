"""``salesprocess fake zoho`` serves the Zoho fake over loopback HTTP, and ``salesprocess sync``
pulls from it with a connections file whose secrets come only from the environment; ``sync
pipelines --out`` writes the process the Blueprint makes, with its Chinese stages."""

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
from salesprocess.sync import StageMapping
from salesprocess_adapters.sqlite import SQLiteStore

TOKEN = "1000.zoho-token-from-env"


@pytest.fixture
def served() -> Iterator[str]:
    env = {**os.environ, "ZOHO_FAKE_TOKEN": TOKEN}
    proc = subprocess.Popen(
        [sys.executable, "-m", "salesprocess", "fake", "zoho", "--port", "0", "--seed-deals", "6",
         "--token-env", "ZOHO_FAKE_TOKEN"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "zoho fake listening on http://127.0.0.1:" in line
        yield line.rsplit(" ", 1)[1].strip()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_sync_pull_and_pipelines_against_the_served_fake(served: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    conns = tmp_path / "connections.toml"
    conns.write_text(
        f'[connections.zoho-cn]\nadapter = "zoho"\nbase_url = "{served}"\naccounts_url = "{served}"\n'
        'token_env = "ZOHO_TEST_TOKEN"\ncurrency = "CNY"\n', encoding="utf-8")
    monkeypatch.setenv("ZOHO_TEST_TOKEN", TOKEN)
    db = tmp_path / "db.sqlite"
    assert run(["sync", "pull", "--connections", str(conns), "--db", str(db), "--format", "json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["created"], summary["failed"]) == (6, 0)
    assert run(["sync", "pipelines", "--connections", str(conns), "--db", str(db), "--out", str(tmp_path / "p")]) == 0
    (written,) = (tmp_path / "p").glob("zoho-cn-*.toml")
    proc = Process.from_toml(written)
    assert [s.key for s in proc.stages] == ["初步接洽", "需求确定", "方案报价", "谈判审核", "赢单", "输单"]
    moves = {(t.source, t.target): t.name for t in proc.effective_transitions()}
    assert moves[("需求确定", "方案报价")] == "提交方案"
    assert ("初步接洽", "谈判审核") not in moves
    assert proc.stage("需求确定").exit.fields == ("amount",)
    assert StageMapping.from_toml(tmp_path / "p" / "mapping.toml").pipelines[0].stages["赢单"] == "赢单"
    store = SQLiteStore(db)
    try:
        deals = list(store.deals())
        assert {d.stage for d in deals} <= {"初步接洽", "需求确定", "方案报价", "谈判审核", "赢单", "输单"}
        assert all(d.amount is not None and d.amount.currency == "CNY" for d in deals)
        assert TOKEN.encode() not in db.read_bytes()
    finally:
        store.close()
