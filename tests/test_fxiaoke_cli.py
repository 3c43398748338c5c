"""``salesprocess fake fxiaoke`` serves the 纷享销客 fake over loopback HTTP, and ``salesprocess
sync pull`` reads it with a connections file whose app secret and permanent code come only from
the environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from salesprocess.cli.main import run
from salesprocess_adapters.sqlite import SQLiteStore

PERMANENT = "permanent-code-from-env"
SECRET = "fake-fxiaoke-app-secret"


@pytest.fixture
def served() -> Iterator[str]:
    env = {**os.environ, "FX_FAKE_CODE": PERMANENT}
    proc = subprocess.Popen(
        [sys.executable, "-m", "salesprocess", "fake", "fxiaoke", "--port", "0", "--seed-deals", "12",
         "--token-env", "FX_FAKE_CODE"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "fxiaoke fake listening on http://127.0.0.1:" in line
        yield line.rsplit(" ", 1)[1].strip()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_sync_pull_against_the_served_fake(served: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    conns = tmp_path / "connections.toml"
    conns.write_text(
        f'[connections.fx]\nadapter = "fxiaoke"\nbase_url = "{served}"\nclient_id = "FSAID_fake0001"\n'
        'client_secret_env = "FX_SECRET"\nrefresh_token_env = "FX_CODE"\nuser_id = "FSUID_FAKE0001"\n'
        'currency = "CNY"\npage_size = 5\n', encoding="utf-8")
    monkeypatch.setenv("FX_SECRET", SECRET)
    monkeypatch.setenv("FX_CODE", PERMANENT)
    db = tmp_path / "db.sqlite"
    assert run(["sync", "pull", "--connections", str(conns), "--db", str(db), "--format", "json"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert (summary["created"], summary["failed"]) == (12, 0)
    store = SQLiteStore(db)
    try:
        stages = {d.stage for d in store.deals()}
        assert stages == {"初步接洽", "需求确定", "方案报价", "谈判审核", "赢单", "输单"}
        assert sum(d.amount.amount for d in store.deals() if d.amount) == sum(
            Decimal(1000 + (i * 37) % 90000) + Decimal(i % 100) / 100
            for i in range(12))
    finally:
        store.close()
    blob = db.read_bytes() + captured.err.encode()
    for needle in (PERMANENT, SECRET):
        assert needle.encode() not in blob
