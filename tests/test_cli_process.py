"""``salesprocess process validate|show|example|diff``, in-process and as a real subprocess.

The transcripts in docs/reference/cli.md are replayed against the real command, so the reference
cannot drift from what the command prints.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from salesprocess import Process, processes
from salesprocess.cli import main

ROOT = Path(__file__).resolve().parent.parent

BROKEN = """\
key = "broken"

[[stages]]
key = "a"
probability = "1.5"

[[stages]]
key = "a"
entry = { guards = ["no_such_guard"] }

[[stages]]
key = "won"
kind = "won"

[[stages]]
key = "lost"
kind = "lost"
"""

TYPO = 'key = "typo"\nname = "错字"\n\nstage key = "a"\n'


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Path:
    """A directory with the files the CLI reference uses: b2b.toml (from `process example`),
    b2b_v2.toml, broken.toml and typo.toml."""
    monkeypatch.chdir(tmp_path)
    rc, out, _ = run(capsys, "process", "example", "b2b")
    assert rc == 0
    (tmp_path / "b2b.toml").write_text(out, encoding="utf-8")
    v2 = out.replace('probability = "0.40"', 'probability = "0.45"').replace(
        "version = 1", "version = 2"
    )
    assert v2.count('"0.45"') == 1
    (tmp_path / "b2b_v2.toml").write_text(v2, encoding="utf-8")
    (tmp_path / "broken.toml").write_text(BROKEN, encoding="utf-8")
    (tmp_path / "typo.toml").write_text(TYPO, encoding="utf-8")
    return tmp_path


# --- example + validate ------------------------------------------------------------------------


@pytest.mark.parametrize("key", processes.SHIPPED)
def test_example_output_validates(work: Path, capsys: pytest.CaptureFixture[str], key: str) -> None:
    rc, out, _ = run(capsys, "process", "example", key)
    assert rc == 0
    assert out == processes.toml_text(key)
    path = work / f"{key}_copy.toml"
    path.write_text(out, encoding="utf-8")
    rc, out, err = run(capsys, "process", "validate", str(path))
    n = len(processes.load(key).stages)
    assert rc == 0, err
    assert out == f"{path}: valid process {key!r} v1 with {n} stages\n"
    assert err == ""


def test_validate_reports_every_problem_with_paths(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run(capsys, "process", "validate", "broken.toml")
    assert rc == 1
    assert out.splitlines() == [
        "broken.toml: stages[0].probability: probability 1.5 is outside [0, 1] [range]",
        "broken.toml: stages[1].key: duplicate stage key 'a' (also stages[0]) [duplicate]",
        "broken.toml: stages[1].entry.guards[0]: unknown guard 'no_such_guard' [unknown_guard]",
    ]
    assert err == "3 problem(s)\n"


def test_validate_reports_every_shape_problem(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (work / "shape.toml").write_text(
        'key = "s"\nowner = "x"\n\n[flow]\nallow_skip = "yes"\n\n'
        '[[stages]]\nkey = "a"\nkind = "maybe"\n\n[stages.playbook]\nchecklists = ["x"]\n',
        encoding="utf-8",
    )
    rc, out, _ = run(capsys, "process", "validate", "shape.toml", "--format", "json")
    assert rc == 1
    report = json.loads(out)
    assert report["valid"] is False
    assert [(p["path"], p["code"]) for p in report["problems"]] == [
        ("owner", "unknown_key"),
        ("flow.allow_skip", "type"),
        ("stages[0].kind", "value"),
        ("stages[0].playbook.checklists", "unknown_key"),
    ]


def test_validate_gives_the_line_of_a_toml_syntax_error(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run(capsys, "process", "validate", "typo.toml")
    assert rc == 1
    assert out.startswith("typo.toml:4: invalid TOML: ")
    assert out.rstrip().endswith("[parse]")
    assert err == "1 problem(s)\n"

    rc, out, _ = run(capsys, "process", "validate", "typo.toml", "--format", "json")
    assert rc == 1
    report = json.loads(out)
    assert report["file"] == "typo.toml"
    assert report["valid"] is False
    assert [(p["code"], p["line"]) for p in report["problems"]] == [("parse", 4)]


def test_validate_json_forms(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "process", "validate", "b2b.toml", "--format", "json")
    assert rc == 0
    assert json.loads(out) == {
        "file": "b2b.toml", "valid": True, "problems": [], "key": "b2b", "version": 1,
    }

    rc, out, _ = run(capsys, "process", "validate", "broken.toml", "--format", "json")
    assert rc == 1
    report = json.loads(out)
    assert report["valid"] is False
    assert [p["path"] for p in report["problems"]] == [
        "stages[0].probability", "stages[1].key", "stages[1].entry.guards[0]",
    ]
    assert {tuple(sorted(p)) for p in report["problems"]} == {("code", "line", "message", "path")}


def test_validate_missing_file(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run(capsys, "process", "validate", "nowhere.toml")
    assert rc == 1
    assert out.startswith("nowhere.toml: cannot read")
    assert "1 problem(s)" in err


def test_validate_knows_plugin_guards_only_through_plugins(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = processes.toml_text("saas").replace('guards = ["has_amount"]', 'guards = ["credit_ok"]')
    assert "credit_ok" in text
    (work / "custom.toml").write_text(text, encoding="utf-8")
    rc, out, _ = run(capsys, "process", "validate", "custom.toml")
    assert rc == 1
    assert "unknown guard 'credit_ok' [unknown_guard]" in out


# --- show ---------------------------------------------------------------------------------------


def test_show_prints_chinese_stage_names_and_playbooks(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "process", "show", "b2b.toml")
    assert rc == 0
    b2b = processes.load("b2b")
    assert out.splitlines()[0] == "B2B 七阶段销售流程  (b2b v1, probability policy: keep_manual)"
    table = [ln for ln in out.splitlines() if re.match(r"^\d+\s", ln)]
    assert [ln.split()[1:3] for ln in table] == [[s.key, s.name] for s in b2b.stages]
    for stage in b2b.stages:
        for step in stage.playbook.steps:
            assert f"  step: {step.title}" in out
        for script in stage.playbook.scripts:
            assert f"  {script.kind} script: {script.title}" in out
    assert "\n潜在客户识别 [lead]\n" in out
    assert "  entry: fields owner_id; checked icp_fit\n" in out
    assert "after-sales: 交付实施 Delivery → 客户培训 Onboarding → 回访与续约 Renewal & upsell" in out

    # a shipped key shows the same thing
    rc, by_key, _ = run(capsys, "process", "show", "b2b")
    assert rc == 0
    assert by_key == out


def test_show_in_another_language(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "process", "show", "b2b", "--lang", "en")
    assert rc == 0
    assert "\nLead identification [lead]\n" in out
    assert "潜在客户识别" not in out
    rc, out, _ = run(capsys, "process", "show", "saas", "--lang", "zh")
    assert rc == 0
    stage_table = out.split("\n\n")[1]
    assert "需求发现" in stage_table
    assert "Discovery" not in stage_table


def test_show_json_is_the_process_as_data(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "process", "show", "b2b.toml", "--format", "json")
    assert rc == 0
    data = json.loads(out)
    assert Process.from_dict(data) == processes.load("b2b")
    assert data["stages"][2]["name"] == "需求分析"


def test_show_unknown_process(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run(capsys, "process", "show", "nope")
    assert rc == 1
    assert out == ""
    assert err.startswith("salesprocess: error: ")
    assert "cannot read" in err


# --- diff ---------------------------------------------------------------------------------------


def test_diff(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "process", "diff", "b2b.toml", "b2b.toml")
    assert (rc, out) == (0, "")

    rc, out, _ = run(capsys, "process", "diff", "b2b", "b2b.toml")
    assert (rc, out) == (0, "")

    rc, out, _ = run(capsys, "process", "diff", "b2b.toml", "b2b_v2.toml")
    assert rc == 1
    assert out == "~ stage solution.probability: '0.40' → '0.45'\n"

    text = (work / "b2b.toml").read_text(encoding="utf-8")
    extra = text + '\n[[stages]]\nkey = "parked"\nname = "搁置"\nkind = "lost"\n'
    (work / "b2b_parked.toml").write_text(extra, encoding="utf-8")
    rc, out, _ = run(capsys, "process", "diff", "b2b.toml", "b2b_parked.toml")
    assert rc == 1
    lines = out.splitlines()
    assert lines[0] == "+ stage parked"
    open_keys = [s.key for s in processes.load("b2b").open_stages]
    assert {f"+ transition {k} → parked" for k in open_keys} <= set(lines)


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["process", "frobnicate"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


# --- the reference transcripts ------------------------------------------------------------------


def _transcripts(text: str) -> list[tuple[list[str], list[str]]]:
    """(argv, expected lines) for each ``$ salesprocess process ...`` command shown with output in
    a console block; ``...`` in the expected lines stands for any number of lines."""
    out: list[tuple[list[str], list[str]]] = []
    for block in re.findall(r"```console\n(.*?)```", text, re.DOTALL):
        current: tuple[list[str], list[str]] | None = None
        for line in block.splitlines():
            if line.startswith("$ "):
                if current and current[1]:
                    out.append(current)
                cmd = line[2:].split()
                current = (cmd[1:], []) if cmd[:2] == ["salesprocess", "process"] and ">" not in cmd else None
            elif current is not None:
                current[1].append(line)
        if current and current[1]:
            out.append(current)
    return out


def _matches(expected: list[str], actual: list[str]) -> bool:
    if not expected:
        return not actual
    head, rest = expected[0], expected[1:]
    if head.strip() == "...":
        return any(_matches(rest, actual[i:]) for i in range(len(actual) + 1))
    return bool(actual) and actual[0].rstrip() == head.rstrip() and _matches(rest, actual[1:])


def test_cli_reference_transcripts_are_true(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    transcripts = _transcripts((ROOT / "docs" / "reference" / "cli.md").read_text(encoding="utf-8"))
    assert len(transcripts) >= 5
    for argv, expected in transcripts:
        _, out, err = run(capsys, *argv)
        actual = (out + err).splitlines()
        assert _matches(expected, actual), (
            f"docs/reference/cli.md: `salesprocess {' '.join(argv)}` prints\n"
            + "\n".join(actual) + "\n\nbut the reference shows\n" + "\n".join(expected)
        )


def test_transcript_matcher() -> None:
    assert _matches(["a", "...", "d"], ["a", "b", "c", "d"])
    assert _matches(["a", "..."], ["a"])
    assert not _matches(["a", "d"], ["a", "b", "d"])
    assert not _matches(["a", "...", "e"], ["a", "b", "d"])


# --- a real subprocess --------------------------------------------------------------------------


def _python_m(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    src = str(ROOT / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONIOENCODING"] = "utf-8"
    return subprocess.run(
        [sys.executable, "-m", "salesprocess", *args],
        cwd=cwd, env=env, capture_output=True, text=True, encoding="utf-8", timeout=120,
    )


def test_python_m_salesprocess(work: Path) -> None:
    shown = _python_m("process", "show", "b2b", cwd=work)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[0] == "B2B 七阶段销售流程  (b2b v1, probability policy: keep_manual)"
    assert "\n谈判与签约 [negotiation]\n" in shown.stdout

    bad = _python_m("process", "validate", "broken.toml", cwd=work)
    assert bad.returncode == 1
    assert len(bad.stdout.splitlines()) == 3
    assert bad.stderr == "3 problem(s)\n"
