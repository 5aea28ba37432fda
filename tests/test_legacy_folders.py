"""Run folders written by an earlier beamsearch stay readable and resumable.

The fixtures under tests/fixtures were made by main at d15715c (before the event log had typed
models), each a simulator run stopped by its budget in iteration 1: one with the default judging,
one with checklist alignment and pairwise ranking. Resuming them must finish the search without
asking any recorded step again, and `show`, `list` and `report` must read them.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest
from simhelp import Timed, read_events
from typer.testing import CliRunner

from beamsearch.app import resume_run
from beamsearch.cli import app
from beamsearch.precedence import resolve
from beamsearch.providers.sim import Simulator

FIXTURES = Path(__file__).parent / "fixtures"
LEGACY = sorted(p.name for p in FIXTURES.glob("main-*"))
FAST = {"sim.latency.text.mean": 0, "sim.latency.image.mean": 0, "sim.latency.vision.mean": 0}


@pytest.fixture(params=LEGACY)
def legacy(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    copy = tmp_path / "runs" / request.param
    shutil.copytree(FIXTURES / request.param, copy)
    return copy


def test_there_are_legacy_fixtures() -> None:
    assert len(LEGACY) == 2


async def test_a_legacy_run_resumes_to_the_end_without_asking_a_recorded_step(legacy: Path) -> None:
    before = {e["key"] for e in read_events(legacy) if e["type"] == "step"}
    settings = resolve(None, {"provider": "sim", "seed": 0}, environ={})
    timed = Timed(Simulator(int(read_seed(legacy)), settings.sim))
    result = await resume_run(legacy, flags={"max_cost_usd": 50.0, **FAST}, providers=timed.providers(), environ={})
    assert result.status == "done", result.summary.get("reason")
    asked = {key for _, what, key in timed.log if what == "start"}
    assert asked and not before & asked, sorted(before & asked)
    assert len([c for c in result.summary["candidates"] if c["status"] == "done"]) == 12
    keys = Counter(e["key"] for e in read_events(legacy) if e["type"] == "step")
    assert max(keys.values()) == 1


def read_seed(run_dir: Path) -> int:
    import yaml

    return yaml.safe_load((run_dir / "run.yaml").read_text())["settings"]["seed"]


def test_show_list_and_report_read_a_legacy_run(legacy: Path) -> None:
    runner = CliRunner()
    shown = runner.invoke(app, ["show", str(legacy)])
    assert shown.exit_code == 0, shown.output
    assert "stopped" in shown.output
    listed = runner.invoke(app, ["list", str(legacy.parent), "--json"])
    assert listed.exit_code == 0 and legacy.name in listed.output
    report = runner.invoke(app, ["report", str(legacy)])
    assert report.exit_code == 0 and (legacy / "report.html").is_file()
