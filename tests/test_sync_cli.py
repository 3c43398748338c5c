"""``salesprocess sync ...`` and ``salesprocess fake ...`` against the fakes over loopback HTTP,
including the proof that a credential never reaches output, logs, errors or the database."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from salesprocess.cli.main import run
from salesprocess.process import Process
from salesprocess.sync import StageMapping
from salesprocess_adapters.fakes import FakeServer, HubSpotFake, SalesforceFake

SECRET = "pat-na1-7d3c9e51-SECRET-0f1e2d3c4b5a"


@pytest.fixture
def hubspot() -> Iterator[tuple[HubSpotFake, FakeServer]]:
    fake = HubSpotFake(token=SECRET, rate_limit=None, search_rate_limit=None)
    server = fake.serve()
    yield fake, server
    server.close()


FAST = 'rate_limit = "1000/1s"\nsearch_rate_limit = "1000/1s"\n'


def write_connections(tmp_path: Path, base_url: str, adapter: str = "hubspot", extra: str = FAST) -> Path:
    p = tmp_path / "connections.toml"
    p.write_text(
        f'[connections.main]\nadapter = "{adapter}"\nbase_url = "{base_url}"\ntoken_env = "CRM_TEST_TOKEN"\n{extra}',
        encoding="utf-8",
    )
    return p


def cli(*argv: str) -> int:
    return run(list(argv))


def test_pull_prints_a_summary_and_json(tmp_path: Path, hubspot: tuple[HubSpotFake, FakeServer],
                                        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    fake, server = hubspot
    for i in range(4):
        fake.create_deal(f"D{i}", amount=str(100 * (i + 1)))
    conns = write_connections(tmp_path, server.base_url)
    monkeypatch.setenv("CRM_TEST_TOKEN", SECRET)
    db = str(tmp_path / "db.sqlite")
    assert cli("sync", "pull", "--connections", str(conns), "--db", db, "--quiet") == 0
    out = capsys.readouterr().out
    total = next(line for line in out.splitlines() if line.startswith("total"))
    assert total.split() == ["total", "4", "4", "0", "0", "0"]
    fake.update_deal(fake.deal_ids()[0], name="Renamed")
    assert cli("sync", "pull", "--connections", str(conns), "--db", db, "--format", "json") == 0
    data = json.loads(capsys.readouterr().out)
    assert {k: data[k] for k in ("fetched", "created", "updated", "unchanged", "failed")} == {
        "fetched": 1, "created": 0, "updated": 1, "unchanged": 0, "failed": 0}
    assert data["by_kind"]["deals"]["updated"] == 1
    assert cli("sync", "status", "--connections", str(conns), "--db", db, "--format", "json") == 0
    status = json.loads(capsys.readouterr().out)
    assert status["linked_deals"] == 4
    assert status["last_pull"]["updated"] == 1
    assert "deals" in status["cursors"]


def test_dry_run_push_and_reports(tmp_path: Path, hubspot: tuple[HubSpotFake, FakeServer],
                                  monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    fake, server = hubspot
    rid = fake.create_deal("Skipper", "appointmentscheduled")
    conns = write_connections(tmp_path, server.base_url)
    monkeypatch.setenv("CRM_TEST_TOKEN", SECRET)
    db = str(tmp_path / "db.sqlite")
    base = ("--connections", str(conns), "--db", db)
    assert cli("sync", "pull", *base, "--dry-run", "--quiet") == 0
    out = capsys.readouterr().out
    assert "dry run" in out
    assert f"created  deals {rid}" in out
    assert cli("sync", "status", *base, "--format", "json") == 0
    assert json.loads(capsys.readouterr().out)["linked_deals"] == 0
    assert cli("sync", "pull", *base, "--quiet") == 0
    fake.update_deal(rid, stage="contractsent")
    assert cli("sync", "push", *base) == 0
    capsys.readouterr()
    assert cli("sync", "bypasses", *base, "--format", "json") == 0
    (b,) = json.loads(capsys.readouterr().out)
    assert (b["kind"], b["from"], b["to"]) == ("skipped_stage", "appointmentscheduled", "contractsent")
    assert cli("sync", "conflicts", *base) == 0
    assert "no conflicts" in capsys.readouterr().out


def test_pipelines_writes_a_process_and_a_mapping(tmp_path: Path, hubspot: tuple[HubSpotFake, FakeServer],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    _, server = hubspot
    conns = write_connections(tmp_path, server.base_url)
    monkeypatch.setenv("CRM_TEST_TOKEN", SECRET)
    out = tmp_path / "proposal"
    assert cli("sync", "pipelines", "--connections", str(conns), "--db", "memory:", "--out", str(out)) == 0
    proc = Process.from_toml(out / "main-default.toml")
    mapping = StageMapping.from_toml(out / "mapping.toml")
    assert mapping.for_pipeline("default") is not None
    assert mapping.check({proc.key: proc}) == []
    assert [s.key for s in proc.won_stages] == ["closedwon"]


def test_connection_file_problems_are_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("sync", "pull", "--connections", str(tmp_path / "missing.toml"), "--db", "memory:") == 2
    bad = tmp_path / "bad.toml"
    bad.write_text('[connections.x]\nadapter = "hubspot"\ntoken = "pat-inline"\npolicy = "whoever"\n', encoding="utf-8")
    assert cli("sync", "pull", "--connections", str(bad), "--db", "memory:") == 1
    err = capsys.readouterr().err
    assert "secrets do not belong in the connections file" in err
    assert "policy" in err
    assert "pat-inline" not in err
    ok = tmp_path / "ok.toml"
    ok.write_text('[connections.x]\nadapter = "hubspot"\ntoken_env = "NOT_SET_ANYWHERE_42"\n', encoding="utf-8")
    monkeypatch.delenv("NOT_SET_ANYWHERE_42", raising=False)
    assert cli("sync", "pull", "--connections", str(ok), "--db", "memory:") == 1
    assert "NOT_SET_ANYWHERE_42 is not set" in capsys.readouterr().err
    two = tmp_path / "two.toml"
    two.write_text('[connections.a]\nadapter = "hubspot"\n[connections.b]\nadapter = "salesforce"\n', encoding="utf-8")
    assert cli("sync", "status", "--connections", str(two), "--db", "memory:") == 2
    assert "choose one with --connection" in capsys.readouterr().err


def test_a_token_never_reaches_output_logs_errors_or_the_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    fake = SalesforceFake(token=SECRET, min_batch_size=1, refresh_token="RT-" + SECRET)
    fake.create_deal("Visible", "Prospecting", amount="10")
    with fake.serve() as server:
        conns = tmp_path / "c.toml"
        conns.write_text(
            f'[connections.sf]\nadapter = "salesforce"\nbase_url = "{server.base_url}"\ntoken_env = "SF_TOK"\n'
            f'refresh_token_env = "SF_RT"\nclient_id = "fake-consumer-key"\nclient_secret_env = "SF_CS"\n',
            encoding="utf-8")
        monkeypatch.setenv("SF_TOK", SECRET)
        monkeypatch.setenv("SF_RT", "RT-" + SECRET)
        monkeypatch.setenv("SF_CS", "fake-consumer-secret")
        db = tmp_path / "db.sqlite"
        base = ("--connections", str(conns), "--db", str(db))
        assert cli("-v", "sync", "pull", *base) == 0
        fake.fail_next("expired_token")  # forces a refresh: the refresh token travels too
        fake.update_deal(fake.deal_ids()[0], amount="20")
        assert cli("-v", "sync", "push", *base, "--format", "json") == 0
        monkeypatch.setenv("SF_TOK", SECRET + "-wrong")
        monkeypatch.setenv("SF_RT", "RT-wrong-" + SECRET)
        assert cli("-v", "sync", "pull", *base) == 1
        assert cli("-v", "sync", "status", *base) == 0
    captured = capsys.readouterr()
    assert "refresh token" in captured.err, "the refused refresh was reported"
    logs = "\n".join(f"{r.name} {r.getMessage()} {r.args!r}" for r in caplog.records)
    assert "salesprocess.adapters.http" in logs
    stored = db.read_bytes() + b"".join(p.read_bytes() for p in tmp_path.glob("db.sqlite-*"))
    for needle in (SECRET, "RT-" + SECRET, "fake-consumer-secret"):
        assert needle not in captured.out
        assert needle not in captured.err
        assert needle not in logs
        assert needle.encode() not in stored


def test_fake_command_serves_a_seeded_fake(tmp_path: Path) -> None:
    env = {**os.environ, "FAKE_TOKEN": "pat-from-env"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "salesprocess", "fake", "hubspot", "--port", "0", "--seed-deals", "7",
         "--token-env", "FAKE_TOKEN", "--rate-limit", "none"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "listening on http://127.0.0.1:" in line
        url = line.rsplit(" ", 1)[1].strip()
        r = httpx.get(f"{url}/crm/v3/objects/deals", params={"limit": 100},
                      headers={"Authorization": "Bearer pat-from-env"}, timeout=10)
        assert r.status_code == 200
        assert len(r.json()["results"]) == 7
        assert httpx.get(f"{url}/crm/v3/objects/deals", headers={"Authorization": "Bearer other"},
                         timeout=10).status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=10)

