"""Resume is replay: a stopped run never loses work and never pays twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from simhelp import Timed, read_events, sim_settings
from typer.testing import CliRunner

from beamsearch.app import resume_run, start_run
from beamsearch.cli import app
from beamsearch.errors import RunFolderError, SettingsError
from beamsearch.providers.sim import Simulator

SLOW_ENV = {
    "BEAMSEARCH_SIM__LATENCY__TEXT__MEAN": "0.03", "BEAMSEARCH_SIM__LATENCY__IMAGE__MEAN": "0.25",
    "BEAMSEARCH_SIM__LATENCY__VISION__MEAN": "0.05",
}
IDEA = "a red lighthouse and a yellow sun by the sea at night"


def recorded_keys(run_dir: Path) -> set[str]:
    return {e["key"] for e in read_events(run_dir) if e["type"] == "step"}


def assert_each_step_once(run_dir: Path) -> None:
    keys = Counter(e["key"] for e in read_events(run_dir) if e["type"] == "step")
    assert keys and max(keys.values()) == 1, [k for k, v in keys.items() if v > 1]


async def resume_counting(run_dir: Path, **kwargs) -> tuple[object, Timed]:
    document = yaml.safe_load((run_dir / "run.yaml").read_text())
    settings = sim_settings(run_dir.parent, **{"seed": document["settings"]["seed"]})
    timed = Timed(Simulator(settings.seed, settings.sim))
    result = await resume_run(run_dir, providers=timed.providers(), environ={}, **kwargs)
    return result, timed


def start_subprocess(tmp_path: Path, seed: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "beamsearch", "run", "--provider", "sim", "--prompt", IDEA, "-n", "6", "-m", "2",
               "--iterations", "3", "--seed", str(seed), "--runs-dir", str(tmp_path / "runs")]
    env = {**os.environ, **SLOW_ENV}
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)


def wait_for(run_root: Path, condition, timeout: float = 30.0) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = list(run_root.glob("*/events.jsonl"))
        if runs:
            lines = runs[0].read_text().splitlines()
            if condition(lines):
                return runs[0].parent
        time.sleep(0.02)
    raise AssertionError("the run did not get there in time")


def in_iteration_one(lines: list[str]) -> bool:
    return any('"type":"candidate"' in line and '"iteration":1' in line for line in lines)


async def uninterrupted(tmp_path: Path, seed: int) -> dict:
    settings = sim_settings(tmp_path / "whole", prompt=IDEA, n=6, m=2, iterations=3, seed=seed)
    return (await start_run(settings)).summary


def same_search(a: dict, b: dict) -> None:
    assert a["best"]["id"] == b["best"]["id"] and a["best"]["total"] == b["best"]["total"]
    assert [(c["id"], c["parent"], c["total"]) for c in a["candidates"]] == [(c["id"], c["parent"], c["total"]) for c in b["candidates"]]


async def test_kill_9_mid_iteration_then_resume(tmp_path) -> None:
    process = start_subprocess(tmp_path, seed=5)
    run_dir = wait_for(tmp_path / "runs", in_iteration_one)
    process.kill()
    process.wait(timeout=10)
    before = recorded_keys(run_dir)
    assert 0 < len(before)
    result, timed = await resume_counting(run_dir)
    assert result.status == "done"
    asked = Counter(key for _, what, key in timed.log if what == "start")
    assert not before & set(asked), "a step recorded before the kill was asked again"
    assert len(result.summary["candidates"]) + len(result.summary["skipped"]) == 18  # repeats are not rendered
    assert_each_step_once(run_dir)
    same_search(result.summary, await uninterrupted(tmp_path, seed=5))


async def test_sigint_stops_within_a_second_prints_resume_and_exits_130(tmp_path) -> None:
    process = start_subprocess(tmp_path, seed=6)
    run_dir = wait_for(tmp_path / "runs", in_iteration_one)
    sent = time.monotonic()
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=10)
    took = time.monotonic() - sent
    assert process.returncode == 130, stderr
    assert f"beamsearch resume {run_dir}" in stderr and "Traceback" not in stderr
    assert took < 5  # generous for a loaded machine; the benchmark-style number is in the closing note
    events = read_events(run_dir)
    assert events[-1]["type"] == "run_finished" and events[-1]["status"] == "stopped"
    before = recorded_keys(run_dir)
    result, timed = await resume_counting(run_dir)
    assert result.status == "done"
    assert not before & {key for _, what, key in timed.log if what == "start"}
    assert_each_step_once(run_dir)
    same_search(result.summary, await uninterrupted(tmp_path, seed=6))


async def test_a_second_sigint_quits_at_once_and_the_run_still_resumes(tmp_path) -> None:
    process = start_subprocess(tmp_path, seed=8)
    run_dir = wait_for(tmp_path / "runs", in_iteration_one)
    process.send_signal(signal.SIGINT)
    time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=10)
    assert process.returncode in (130, -signal.SIGINT), stderr  # os._exit(130), or the signal itself
    assert "Traceback" not in stderr
    before = recorded_keys(run_dir)
    result, timed = await resume_counting(run_dir)
    assert result.status == "done"
    assert not before & {key for _, what, key in timed.log if what == "start"}
    assert_each_step_once(run_dir)


async def test_budget_stop_then_resume_with_more_money(tmp_path) -> None:
    settings = sim_settings(tmp_path, prompt=IDEA, n=6, m=2, iterations=3, seed=7, max_cost_usd=0.3)
    stopped = await start_run(settings)
    assert stopped.status == "stopped" and stopped.exit_code == 3
    run_dir = stopped.store.path
    before = recorded_keys(run_dir)
    again, _ = await resume_counting(run_dir)  # the same budget cannot take the run to its end
    assert again.status == "stopped" and again.exit_code == 3
    before = recorded_keys(run_dir)
    result, timed = await resume_counting(run_dir, flags={"max_cost_usd": 5.0})
    assert result.status == "done"
    assert not before & {key for _, what, key in timed.log if what == "start"}
    assert_each_step_once(run_dir)
    same_search(result.summary, await uninterrupted(tmp_path, seed=7))
    assert yaml.safe_load((run_dir / "run.yaml").read_text())["settings"]["max_cost_usd"] == 5.0


async def test_extend_a_finished_run(tmp_path) -> None:
    settings = sim_settings(tmp_path, prompt=IDEA, n=4, m=2, iterations=2, seed=1)
    finished = await start_run(settings)
    run_dir = finished.store.path
    with pytest.raises(RunFolderError, match="This run is finished"):
        await resume_counting(run_dir)
    before = recorded_keys(run_dir)
    result, timed = await resume_counting(run_dir, flags={"iterations": 3})
    assert len(result.summary["iterations"]) == 3
    asked = {key for _, what, key in timed.log if what == "start"}
    # the new iteration, and the final check after it (the survivors of the new last ranking); the first
    # final check's judgings are the new iteration's judgings of its kept parents, answered from the log
    assert asked and all(key.startswith(("i2/", "i3/keep-")) for key in asked) and not before & asked
    assert any("/keep-" in key for key in before & recorded_keys(run_dir))


def test_changing_the_past_is_refused_changing_the_future_is_not(tmp_path) -> None:
    import asyncio

    settings = sim_settings(tmp_path, prompt=IDEA, n=4, m=2, iterations=2, seed=1, max_cost_usd=0.05)
    run_dir = asyncio.run(start_run(settings)).store.path
    for text, name in (("prompt: a blue boat\n", "'prompt'"), ("n: 5\n", "'n'"), ("seed: 9\n", "'seed'")):
        config = tmp_path / "c.yaml"
        config.write_text(text)
        with pytest.raises(SettingsError, match=f"Resuming cannot change {name}"):
            asyncio.run(resume_run(run_dir, config, environ={}))
    result = CliRunner().invoke(app, ["resume", str(run_dir)], env={"BEAMSEARCH_N": "5"})
    assert result.exit_code == 2 and "Resuming cannot change 'n'" in result.output
    config = tmp_path / "future.yaml"
    config.write_text("limits:\n  image: {rpm: 600, concurrency: 2}\nmax_cost_usd: 10\n")
    result = CliRunner().invoke(app, ["resume", str(run_dir), "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "done"


def test_clear_messages_for_folders_that_cannot_be_resumed(tmp_path) -> None:
    result = CliRunner().invoke(app, ["resume", str(tmp_path)])
    assert result.exit_code == 2 and "is not a beamsearch run" in result.output
    settings = sim_settings(tmp_path, n=2, m=1, iterations=1)
    import asyncio

    run_dir = asyncio.run(start_run(settings)).store.path
    result = CliRunner().invoke(app, ["resume", str(run_dir)])
    assert result.exit_code == 2 and "This run is finished" in result.output and "--iterations" in result.output
    document = yaml.safe_load((run_dir / "run.yaml").read_text())
    document["format"] = 99
    (run_dir / "run.yaml").write_text(yaml.safe_dump(document))
    result = CliRunner().invoke(app, ["resume", str(run_dir), "--iterations", "3"])
    assert result.exit_code == 2 and "log format 99" in result.output and "Traceback" not in result.output


async def test_missing_image_and_orphan_image_are_redone(tmp_path) -> None:
    settings = sim_settings(tmp_path, prompt=IDEA, n=4, m=2, iterations=2, seed=2, max_cost_usd=0.25)
    stopped = await start_run(settings)
    run_dir = stopped.store.path
    events = read_events(run_dir)
    images = [e for e in events if e["type"] == "step" and e["service"] == "image"]
    missing = images[0]
    (run_dir / missing["result"]["path"]).unlink()
    orphan = run_dir / "images" / "i1c03.png"
    orphan.write_bytes(b"half-written")
    result, timed = await resume_counting(run_dir, flags={"max_cost_usd": 5})
    asked = {key for _, what, key in timed.log if what == "start"}
    assert missing["key"] in asked, "an event whose image file is gone is redone"
    assert "i1/c03/image" in asked
    assert (run_dir / missing["result"]["path"]).is_file()
    assert orphan.read_bytes().startswith(b"\x89PNG")
    assert result.status == "done"


async def test_torn_last_line_is_redone_with_a_warning(tmp_path) -> None:
    settings = sim_settings(tmp_path, prompt=IDEA, n=3, m=1, iterations=2, seed=3, max_cost_usd=0.2)
    run_dir = (await start_run(settings)).store.path
    log = run_dir / "events.jsonl"
    lines = [line for line in log.read_text().splitlines() if '"type":"run_finished"' not in line]
    step_lines = [i for i, line in enumerate(lines) if '"type":"step"' in line]
    last = step_lines[-1]
    torn_key = json.loads(lines[last])["key"]
    log.write_text("\n".join(lines[:last]) + "\n" + lines[last][: len(lines[last]) // 2])
    result, timed = await resume_counting(run_dir, flags={"max_cost_usd": 5})
    assert any("cut off" in w for w in result.warnings)
    assert torn_key in {key for _, what, key in timed.log if what == "start"}
    assert result.status == "done"
    assert_each_step_once(run_dir)


async def test_failures_of_ranked_iterations_are_replayed_not_retried(tmp_path) -> None:
    """A lane that failed before a ranking stays failed on resume, so the replayed rankings and parents
    are the recorded ones, even when the failure would not happen again."""
    settings = sim_settings(tmp_path, prompt=IDEA, n=4, m=2, iterations=2, seed=30,
                            **{"sim.failure_rate": 0.12, "retries.max_attempts": 1})
    run_dir = (await start_run(settings)).store.path
    before = read_events(run_dir)
    failed_keys = {e["key"] for e in before if e["type"] == "step_failed"}
    assert {e["id"] for e in before if e["type"] == "lane_failed"} >= {"i0c02", "i1c02"}
    result, timed = await resume_counting(run_dir, flags={"iterations": 3})  # its simulator does not fail
    assert result.status == "done"
    asked = {key for _, what, key in timed.log if what == "start"}
    assert not asked & failed_keys and not {k for k in asked if k.startswith(("i0/", "i1/"))}
    after = read_events(run_dir)
    rankings = [e for e in after if e["type"] == "ranking"]
    assert [r["iteration"] for r in rankings] == [0, 1, 2]  # each once: the replayed ones matched the log
    # each state of a candidate once (a kept parent judged again is a new state)
    candidates = Counter((e["id"], len(e["judgements"])) for e in after if e["type"] == "candidate")
    assert max(candidates.values()) == 1
    candidates = Counter(e["id"] for e in after if e["type"] == "candidate")
    assert not {e["id"] for e in after if e["type"] == "lane_failed"} & set(candidates)
    parents = {e["id"]: e["parent"] for e in after if e["type"] == "candidate"}
    for k in (1, 2):
        assert {p for c, p in parents.items() if c.startswith(f"i{k}")} <= set(rankings[k - 1]["survivors"])


async def test_failures_of_an_unranked_iteration_are_asked_again(tmp_path) -> None:
    """A run that failed in iteration 1 (no lane of it succeeded) resumes by asking its failed steps
    again; the failure of iteration 0, already ranked, stays."""
    settings = sim_settings(tmp_path, prompt=IDEA, n=3, m=2, iterations=2, seed=44,
                            **{"sim.failure_rate": 0.3, "retries.max_attempts": 1})
    first = await start_run(settings)
    assert first.status == "failed"
    failed_keys = {e["key"] for e in read_events(first.store.path) if e["type"] == "step_failed"}
    assert {"i0/c02/image", "i1/p-i0c00/critique"} <= failed_keys
    result, timed = await resume_counting(first.store.path)  # the outage is over: its simulator does not fail
    asked = {key for _, what, key in timed.log if what == "start"}
    assert "i1/p-i0c00/critique" in asked and "i0/c02/image" not in asked
    assert result.status == "done"


async def test_a_redone_image_that_differs_is_judged_anew(tmp_path) -> None:
    """An image whose file went missing is generated again; when the new picture differs, its judges
    are asked again and the candidate is logged again with the new scores (the later event wins)."""
    settings = sim_settings(tmp_path, prompt=IDEA, n=3, m=1, iterations=1, seed=5)
    run_dir = (await start_run(settings)).store.path
    old = next(e for e in read_events(run_dir) if e["type"] == "candidate" and e["id"] == "i0c00")
    (run_dir / old["image"]).unlink()

    class Repainting(Timed):
        async def generate(self, request):  # the model draws something else this time
            return await super().generate(type(request)(key=request.key, prompt="a green tree, monochrome"))

    timed = Repainting(Simulator(settings.seed, settings.sim))
    result = await resume_run(run_dir, flags={"iterations": 2}, providers=timed.providers(), environ={})
    assert result.status == "done"
    asked = {key for _, what, key in timed.log if what == "start"}
    assert {"i0/c00/image", "i0/c00/judge_alignment", "i0/c00/judge_aesthetic"} <= asked
    assert not {k for k in asked if k.startswith(("i0/c01/", "i0/c02/")) or k.endswith(("expand_what", "combine"))
                and k.startswith("i0/")}
    logged = [e for e in read_events(run_dir) if e["type"] == "candidate" and e["id"] == "i0c00"
              and len(e["judgements"]) <= 1]  # its first judging (a later one, as a kept parent, is apart)
    assert len(logged) == 2 and logged[1]["total"] != old["total"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert next(c for c in summary["candidates"] if c["id"] == "i0c00")["total"] == logged[1]["total"]
