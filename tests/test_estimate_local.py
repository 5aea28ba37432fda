"""`estimate` for local models (issue 17): latencies per role from the settings, from a run's log
(`--run`) or from a matching earlier run in runs_dir; `--max-cost` refuses an unpriced model as `run`
does; the report names each role's model and says when a cost is unknown."""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))

from fake_openai_server import FakeConfig, FakeOpenAI  # noqa: E402

from beamsearch.app import start_run  # noqa: E402
from beamsearch.cli import app  # noqa: E402
from beamsearch.estimate import estimate  # noqa: E402
from beamsearch.latency import TYPICAL_LATENCY  # noqa: E402
from beamsearch.precedence import resolve  # noqa: E402

LOCAL = "my-local-llm"


def local_flags(server: FakeOpenAI, tmp_path: Path) -> dict[str, Any]:
    """Text on a keyless local server with an unpriced model; images and judges on the simulator."""
    return {"prompt": "a boat", "n": 2, "m": 1, "iterations": 1, "provider": "openai",
            "runs_dir": str(tmp_path / "runs"), "text.base_url": server.url, "text.model": LOCAL,
            "text.api_key_env": "none", "image.provider": "sim", "vision.provider": "sim"}


def test_estimate_with_max_cost_refuses_an_unpriced_model_as_run_does(tmp_path: Path) -> None:
    config = tmp_path / "local.yaml"
    config.write_text(f"text: {{model: {LOCAL}, base_url: 'http://127.0.0.1:9/v1', api_key_env: none}}\n"
                      f"runs_dir: {tmp_path / 'runs'}\n")
    refused = CliRunner().invoke(app, ["estimate", "--config", str(config), "--max-cost", "1"])
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    assert f"No price is known for {LOCAL}, so --max-cost cannot be enforced" in refused.output
    run = CliRunner().invoke(app, ["run", "--config", str(config), "--max-cost", "1", "-p", "a boat"])
    assert run.exit_code == 2 and f"No price is known for {LOCAL}" in run.output  # the same refusal
    warned = CliRunner().invoke(app, ["estimate", "--config", str(config), "--json"])  # the default budget
    assert warned.exit_code == 0, warned.output
    notes = json.loads(warned.stdout)["notes"]
    assert any(f"No price is known for {LOCAL}" in n and "default budget ($2.50) leave them out" in n for n in notes)


def test_latency_per_role_comes_from_the_settings(tmp_path: Path) -> None:
    settings = resolve(None, {"text.latency_s": 30, "runs_dir": str(tmp_path)}, environ={})
    time = estimate(settings).time
    assert time["latency_assumed"]["text"] == 30 and time["latency_source"]["text"] == "text.latency_s"
    assert time["latency_assumed"]["image"] == TYPICAL_LATENCY["image"]
    slow = estimate(resolve(None, {"text.latency_s": 300, "runs_dir": str(tmp_path)}, environ={})).time
    assert slow["seconds"] > time["seconds"]


async def test_latency_comes_from_a_run_given_or_found(tmp_path: Path) -> None:
    with FakeOpenAI(FakeConfig(latency={"text": 0.15, "image": 0.0, "vision": 0.0})) as server:
        flags = local_flags(server, tmp_path)
        result = await start_run(resolve(None, flags, environ={}))
    assert result.exit_code == 0, result.error
    events = [json.loads(line) for line in (result.store.path / "events.jsonl").read_text().splitlines()]
    median = round(statistics.median(e["elapsed"] for e in events if e["type"] == "step" and e["service"] == "text"
                                     and e["attempts"] == 1), 3)
    assert median >= 0.15
    given = estimate(resolve(None, {**flags, "text.latency_s": 99}, environ={}), result.store.path).time
    assert given["latency_assumed"]["text"] == median  # --run wins over the setting
    assert given["latency_source"]["text"].endswith(f"calls in {result.store.path.name}")
    found = estimate(resolve(None, flags, environ={})).time  # a run in runs_dir with this model and endpoint
    assert found["latency_assumed"]["text"] == median and result.store.path.name in found["latency_source"]["text"]
    other = estimate(resolve(None, {**flags, "text.model": "another-model"}, environ={})).time
    assert other["latency_assumed"]["text"] == TYPICAL_LATENCY["text"]  # a run of another model says nothing
    cli = CliRunner().invoke(app, ["estimate", "--run", str(result.store.path), "--json"], env={"OPENAI_API_KEY": ""})
    assert cli.exit_code == 0 and json.loads(cli.stdout)["time"]["latency_assumed"]["text"] == median
    not_a_run = CliRunner().invoke(app, ["estimate", "--run", str(tmp_path)], env={"OPENAI_API_KEY": ""})
    assert not_a_run.exit_code == 2 and "run.yaml" in not_a_run.output and "Traceback" not in not_a_run.output


async def test_the_report_names_each_model_and_says_when_a_cost_is_unknown(tmp_path: Path) -> None:
    with FakeOpenAI() as server:
        result = await start_run(resolve(None, local_flags(server, tmp_path), environ={}))
    assert result.exit_code == 0, result.error
    models = result.summary["models"]
    assert models["text"] == {"provider": "openai", "model": LOCAL, "priced": False}
    assert models["image"] == {"provider": "sim", "model": "sim-image", "priced": True}
    report = (result.store.path / "report.html").read_text()
    assert f"text {LOCAL} (cost unknown)" in report and "image sim-image (simulator)" in report
    assert f"No price is known for {LOCAL}: its calls are counted as $0" in report


@pytest.mark.parametrize("latency", [0, -1, "slow"])
def test_a_bad_latency_setting_is_one_sentence(latency: Any) -> None:
    result = CliRunner().invoke(app, ["estimate"], env={"BEAMSEARCH_TEXT__LATENCY_S": str(latency)})
    assert result.exit_code == 2 and "text.latency_s" in result.output and "Traceback" not in result.output
