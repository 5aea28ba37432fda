"""The price table: validated when loaded (the shipped one and the user's), overrides really used, and a
model without a price refused when a budget must hold, and named when it need not."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))

from fake_openai_server import FakeConfig, FakeOpenAI  # noqa: E402

from beamsearch.app import start_run  # noqa: E402
from beamsearch.cli import app  # noqa: E402
from beamsearch.costs import SHIPPED, _checked_table, load_prices  # noqa: E402
from beamsearch.errors import SettingsError  # noqa: E402
from beamsearch.precedence import resolve  # noqa: E402

ENV = {"BEAMSEARCH_SIM__LATENCY__TEXT__MEAN": "0", "BEAMSEARCH_SIM__LATENCY__IMAGE__MEAN": "0",
       "BEAMSEARCH_SIM__LATENCY__VISION__MEAN": "0"}
KEY_ENV = "PRICE_TEST_OPENAI_KEY"
KEY = "sk-test-price-0123456789"


def sim_run(tmp_path: Path, config: Path, *extra: str) -> Any:
    return CliRunner().invoke(app, ["run", "--provider", "sim", "--prompt", "a white boat on a blue lake", "-n", "3",
                                    "-m", "1", "--iterations", "2", "--runs-dir", str(tmp_path / "runs"),
                                    "--config", str(config), *extra], env=ENV)


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip()]


@pytest.mark.parametrize(("prices", "says"), [
    ("sim-image: 5\n", "gives model 'sim-image' the price 5"),
    ("sim-image: {per_image: cheap}\n", "gives model 'sim-image' a 'per_image' price that is not a number"),
    ("sim-text: {input: true}\n", "gives model 'sim-text' a 'input' price that is not a number"),
    ("sim-vision: {ouput: 2.0}\n", "gives model 'sim-vision' an unknown price 'ouput'"),
    ("sim-image: {per_image: -0.04}\n", "gives model 'sim-image' a 'per_image' price that is negative"),
    ("- sim-image\n", "must map model names to prices, not a list"),
])
def test_a_malformed_price_file_is_one_sentence_and_exit_2(tmp_path: Path, prices: str, says: str) -> None:
    table = tmp_path / "my-prices.yaml"
    table.write_text(prices)
    config = tmp_path / "settings.yaml"
    config.write_text(f"prices: {table}\nvariants: null\n")  # every child rendered: six images, as the seed
    result = sim_run(tmp_path, config)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = error_lines(result.output)
    assert len(lines) == 1 and lines[0].startswith("Error: The price table "), result.output
    assert str(table) in lines[0] and says in lines[0]
    assert lines[0].count(". ") == 0 and lines[0].endswith(".")
    assert not (tmp_path / "runs").exists()  # refused before a run folder (or any call) was made


def test_a_user_price_overrides_the_built_in_one_in_the_run_cost(tmp_path: Path) -> None:
    table = tmp_path / "my-prices.yaml"
    table.write_text("sim-image: {per_image: 0.5}\n")  # input stays at the built-in 5.0 per million
    config = tmp_path / "settings.yaml"
    config.write_text(f"prices: {table}\nvariants: null\n")  # every child rendered: six images, as the seed
    result = sim_run(tmp_path, config)
    assert result.exit_code == 0, result.output
    run_dir = next((tmp_path / "runs").iterdir())
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    images = [e for e in events if e["type"] == "step" and e["service"] == "image"]
    assert len(images) == 6
    for step in images:
        assert step["cost"] == pytest.approx(step["usage"]["input_tokens"] * 5.0 / 1e6 + 0.5)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["usage"]["image"]["cost_usd"] == pytest.approx(sum(e["cost"] for e in images), abs=1e-5)
    assert summary["usage"]["image"]["cost_usd"] > 6 * 0.5  # not the built-in $0.04 per image


def test_the_shipped_table_is_valid_and_checked_like_any_other() -> None:
    prices = load_prices(None)
    assert prices["sim-image"] == {"input": 5.0, "per_image": 0.04}
    assert all(isinstance(v, float) for entry in prices.values() for v in entry.values())
    with pytest.raises(SettingsError, match=r"^The price table the built-in price table \(beamsearch/prices.yaml\) "
                                            r"gives model 'gpt-x' a 'output' price that is negative"):
        _checked_table({"gpt-x": {"output": -1}}, SHIPPED)


def test_a_price_file_that_is_not_yaml_or_missing_is_one_sentence(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("sim-image: {per_image: [\n")
    with pytest.raises(SettingsError, match="is not valid YAML at line"):
        load_prices(broken)
    with pytest.raises(SettingsError, match="cannot be read"):
        load_prices(tmp_path / "missing.yaml")


def test_an_unpriced_model_with_a_budget_is_refused_before_any_call(tmp_path: Path) -> None:
    """The budget cannot hold over calls it prices at $0: refuse, naming the model and both ways out."""
    config = tmp_path / "settings.yaml"
    config.write_text(f"text:\n  provider: openai\n  model: my-local-llm\n  base_url: http://127.0.0.1:9/v1\n"
                      f"  api_key_env: {KEY_ENV}\n")
    result = CliRunner().invoke(app, ["run", "--provider", "sim", "--prompt", "a white boat", "-n", "2", "-m", "1",
                                      "--iterations", "1", "--runs-dir", str(tmp_path / "runs"), "--config", str(config),
                                      "--max-cost", "1"], env={**ENV, KEY_ENV: KEY})
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = error_lines(result.output)
    assert len(lines) == 1, result.output
    assert lines[0] == ("Error: No price is known for my-local-llm, so --max-cost cannot be enforced: add it to a "
                        "price table with `prices: FILE`, or drop --max-cost.")
    assert not list((tmp_path / "runs").glob("*"))  # refused before a run folder was made


def test_pricing_the_model_lets_the_budgeted_run_through_the_check(tmp_path: Path) -> None:
    table = tmp_path / "my-prices.yaml"
    table.write_text("my-local-llm: {input: 0.1, output: 0.2}\n")
    settings = resolve(None, {"provider": "sim", "text.provider": "openai", "text.model": "my-local-llm",
                              "prices": str(table), "max_cost_usd": 1.0}, environ={})
    warnings: list[str] = []
    assert load_prices(settings.prices, check=settings, warnings=warnings)["my-local-llm"] == {"input": 0.1,
                                                                                              "output": 0.2}
    assert warnings == []


async def test_an_unpriced_model_without_a_budget_runs_and_is_named(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """No budget to protect (lifted with `none`): the run goes on, its unpriced calls cost $0 (no invented number), and the
    run's warnings say the cost leaves that model out, in the wording `estimate` uses."""
    monkeypatch.setenv(KEY_ENV, KEY)
    with FakeOpenAI(FakeConfig(api_key=KEY)) as server:
        settings = resolve(None, {"prompt": "a white boat", "n": 2, "m": 1, "iterations": 1, "provider": "sim",
                                  "runs_dir": str(tmp_path / "runs"), "text.provider": "openai",
                                  "text.model": "my-local-llm", "text.base_url": server.url,
                                  "text.api_key_env": KEY_ENV, "sim.latency.image.mean": 0,
                                  "sim.latency.vision.mean": 0, "max_cost_usd": "none"}, environ={})
        result = await start_run(settings)
    assert result.exit_code == 0, result.error
    assert server.stats["text"].answered >= 2
    assert result.warnings == ["No price is known for my-local-llm; their calls count as $0, so the cost shown "
                               "leaves them out (add them to a price table with `prices: FILE`)."]
    assert result.summary["usage"]["text"]["cost_usd"] == 0
    assert result.summary["usage"]["image"]["cost_usd"] > 0  # the simulator's priced roles still count
