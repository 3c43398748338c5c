"""The README's example runs, and its two set-up commands stay in step with CI."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_readme_python_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    (code,) = _blocks("python")
    assert len(code.strip().splitlines()) <= 16
    exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    # the first print lists both unmet criteria of the first move
    assert "owner_id" in out[0]
    assert "icp_fit" in out[0]
    assert out[1].startswith("first_contact 10%")
    assert "stage_changed" in out[1]


def test_readme_has_exactly_two_setup_commands_and_ci_runs_the_test_one() -> None:
    commands = [b.strip() for b in _blocks("bash")]
    assert len(commands) == 2
    demo, tests = commands
    assert demo.endswith("salesprocess demo")
    assert "pytest" in tests
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert tests in ci.splitlines(), "the README's test command must appear verbatim in .ci/run"
