"""Issue 14, finding 5: a budget by default for every paid provider ($2.50, shown by `config`);
`--max-cost none` lifts it; under the default budget an unpriced model is warned about and left out,
an explicit `--max-cost` still refuses it; `estimate` warns when its high figure passes the budget, and
`run` prints the estimate's range before its first paid call."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))

from fake_openai_server import FakeConfig, FakeOpenAI  # noqa: E402

from beamsearch.cli import app  # noqa: E402

KEY_ENV = "FAKE_BUDGET_TEST_KEY"
KEY = "sk-test-budget-Qw8Er7Ty6Ui5Op4As3Df"


@pytest.fixture
def server():
    with FakeOpenAI(FakeConfig(api_key=KEY)) as fake:
        yield fake


def write_config(tmp_path: Path, server: FakeOpenAI, **extra: str) -> Path:
    lines = ["provider: openai", "retries: {backoff_initial: 0.0, backoff_max: 0.0}", "image: {size: 64x64}"]
    for role in ("text", "image", "vision"):
        lines.append(f"{role}: {{base_url: '{server.url}', api_key_env: {KEY_ENV}}}")
    lines += [f"{key}: {value}" for key, value in extra.items()]
    config = tmp_path / "settings.yaml"
    config.write_text("\n".join(lines) + "\n")
    return config


def run(tmp_path: Path, config: Path, *extra: str):
    return CliRunner().invoke(app, ["run", "-p", "a red kite", "-n", "4", "-m", "2", "-i", "2", "--config", str(config),
                                    "--runs-dir", str(tmp_path / "runs"), "--json", *extra], env={KEY_ENV: KEY})


def last_result(output: str) -> dict:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")][-1]


def test_config_shows_the_default_budget() -> None:
    shown = CliRunner().invoke(app, ["config"], env={})
    assert shown.exit_code == 0
    assert "max_cost_usd: null  # the default budget, $2.50" in shown.stdout


def test_a_paid_run_without_max_cost_stops_at_the_default_budget_and_none_lifts_it(tmp_path, server) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text("gpt-image-2: {per_image: 1.0}\n")  # 8 pictures: $8 or more
    config = write_config(tmp_path, server, prices=str(prices))
    stopped = run(tmp_path, config)
    assert stopped.exit_code == 3, stopped.output
    assert "The budget of $2.50 is reached" in stopped.stderr
    assert last_result(stopped.stdout)["cost_usd"] <= 2.50 + 2 * 1.0 + 0.01  # at most what was in flight
    assert "budget $2.50 (default)" in stopped.stderr
    lifted = run(tmp_path, config, "--max-cost", "none")
    assert lifted.exit_code == 0, lifted.output
    assert last_result(lifted.stdout)["cost_usd"] >= 8.0
    assert "no budget" in lifted.stderr


def test_an_unpriced_model_under_the_default_budget_is_warned_about_and_left_out(tmp_path, server) -> None:
    config = write_config(tmp_path, server)
    config.write_text(config.read_text().replace("text: {", "text: {model: my-local-llm, "))
    result = run(tmp_path, config)
    assert result.exit_code == 0, result.output
    assert "No price is known for my-local-llm" in result.stderr and "the default budget ($2.50)" in result.stderr
    refused = run(tmp_path, config, "--max-cost", "2.50")
    assert refused.exit_code == 2 and "--max-cost cannot be enforced" in refused.stderr


def test_run_prints_the_estimate_before_its_first_paid_call(tmp_path, server) -> None:
    server.config.api_key = "another key"  # the first call is refused (401): nothing is paid
    result = run(tmp_path, write_config(tmp_path, server))
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    estimate = next(i for i, line in enumerate(lines) if line.startswith("Estimated cost $"))
    assert estimate < next(i for i, line in enumerate(lines) if line.startswith("Error:"))


def test_estimate_warns_when_its_high_figure_passes_the_budget() -> None:
    default = CliRunner().invoke(app, ["estimate", "--provider", "openai", "-n", "9", "-m", "3", "-i", "4"], env={})
    assert default.exit_code == 0
    assert "passes the default budget ($2.50" in " ".join(default.stdout.split())
    data = json.loads(CliRunner().invoke(app, ["estimate", "--provider", "openai", "-n", "9", "-i", "4", "--json",
                                               "--max-cost", "2"], env={}).stdout)
    assert any("passes max_cost_usd ($2.00)" in note for note in data["notes"])
    small = json.loads(CliRunner().invoke(app, ["estimate", "--provider", "openai", "-n", "2", "-m", "1", "-i", "1", "--json"],
                                          env={}).stdout)
    assert not any("budget" in note for note in small["notes"])
