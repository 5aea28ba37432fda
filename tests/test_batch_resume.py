"""A batch killed in the middle (SIGKILL, nothing flushed on the way out) or interrupted (Ctrl-C), then
`beamsearch resume BATCH_DIR` in a new process: every idea finishes, no recorded step is asked again,
and ideas that never started are started. Calls are counted per step key in both processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from batchhelp import FIVE, batch_events, ideas_file, steps_per_key

HERE = Path(__file__).parent
LATENCY = {"BEAMSEARCH_SIM__LATENCY__TEXT__MEAN": "0.03", "BEAMSEARCH_SIM__LATENCY__IMAGE__MEAN": "0.08",
           "BEAMSEARCH_SIM__LATENCY__VISION__MEAN": "0.03"}


def child(calls: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, **LATENCY, "PYTHONPATH": str(HERE.parent)}
    return subprocess.Popen([sys.executable, str(HERE / "batch_child.py"), str(calls), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(batch_parent: Path, ready, timeout: float = 60.0) -> Path:
    """The batch folder, once `ready(events)` holds for its log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        folders = list(batch_parent.iterdir()) if batch_parent.is_dir() else []
        if folders and (folders[0] / "batch.jsonl").is_file():
            try:
                if ready(batch_events(folders[0])):
                    return folders[0]
            except json.JSONDecodeError:  # a line being written
                pass
        time.sleep(0.01)
    raise AssertionError("the batch never reached the point to stop it at")


def asked(calls: Path) -> dict[int, Counter[tuple[str, str]]]:
    """pid -> (idea, step key) -> how many times that process asked a provider for it."""
    per: dict[int, Counter[tuple[str, str]]] = {}
    for line in calls.read_text().splitlines():
        pid, idea, key = line.split("\t")
        per.setdefault(int(pid), Counter())[(idea, key)] += 1
    return per


def mid_batch(events: list[dict]) -> bool:
    started = {e["idea"] for e in events if e["type"] == "idea_started"}
    finished = {e["idea"] for e in events if e["type"] == "idea_finished"}
    return len(finished) >= 1 and len(started - finished) >= 1 and len(started) < 5


def test_kill_9_in_the_middle_then_resume_finishes_every_idea_without_asking_a_step_twice(tmp_path: Path) -> None:
    ideas = ideas_file(tmp_path, FIVE)
    runs, calls = tmp_path / "runs", tmp_path / "calls.tsv"
    first = child(calls, "batch", str(ideas), "--provider", "sim", "-n", "3", "-m", "2", "--iterations", "3",
                  "--concurrency-ideas", "2", "--runs-dir", str(runs), "--quiet")
    try:
        batch_dir = wait_for(runs, mid_batch)
        time.sleep(0.15)  # well inside an idea's work
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate()
    assert first.returncode == -signal.SIGKILL
    at_kill = batch_events(batch_dir)
    never_started = set(range(1, 6)) - {e["idea"] for e in at_kill if e["type"] == "idea_started"}
    unfinished = ({e["idea"] for e in at_kill if e["type"] == "idea_started"}
                  - {e["idea"] for e in at_kill if e["type"] == "idea_finished"})
    assert never_started and unfinished and at_kill[-1]["type"] != "batch_finished"
    recorded = set(steps_per_key(batch_dir))  # every answer the first process logged before it died
    assert recorded

    second = child(calls, "resume", str(batch_dir), "--quiet")
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err

    shown = subprocess.run([sys.executable, "-m", "beamsearch", "show", str(batch_dir), "--json"], capture_output=True,
                           text=True, check=True, env={**os.environ, "PYTHONPATH": str(HERE.parent)})
    rows = json.loads(shown.stdout)["rows"]
    assert [r["status"] for r in rows] == ["done"] * 5
    per_process = asked(calls)
    assert set(per_process) == {first.pid, second.pid}
    before, after = per_process[first.pid], per_process[second.pid]
    assert max(before.values()) == 1 and max(after.values()) == 1  # no process asked a step twice
    assert not recorded & set(after)  # nothing the first process had recorded was asked again
    in_flight = set(before) - recorded  # asked, but killed before the answer was logged
    assert set(before) & set(after) <= in_flight
    final = steps_per_key(batch_dir)
    assert max(final.values()) == 1  # one answer per step key over every run folder of the batch
    assert set(final) == recorded | set(after)  # and every answer asked for after the kill was logged
    assert {idea for idea, _ in after} >= {FIVE[i - 1] for i in never_started}  # never-started ideas ran
    kinds = [e["type"] for e in batch_events(batch_dir)]
    assert kinds.count("batch_started") == 2 and kinds[-1] == "batch_finished"


def test_ctrl_c_stops_every_idea_resumably_and_exits_130(tmp_path: Path) -> None:
    ideas = ideas_file(tmp_path, FIVE[:3])
    runs, calls = tmp_path / "runs", tmp_path / "calls.tsv"
    process = child(calls, "batch", str(ideas), "--provider", "sim", "-n", "3", "-m", "2", "--iterations", "3",
                    "--concurrency-ideas", "2", "--runs-dir", str(runs))
    batch_dir = wait_for(runs, lambda events: sum(e["type"] == "idea_started" for e in events) >= 2)
    time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "Traceback" not in err and f"Resume with: beamsearch resume {batch_dir}" in err
    events = batch_events(batch_dir)
    stopped = [e for e in events if e["type"] == "idea_finished" and e["status"] == "stopped"]
    assert stopped and all(e["reason"] == "interrupted by the user" for e in stopped)
    assert events[-1]["type"] == "batch_finished" and events[-1]["reason"] == "interrupted by the user"
    resumed = child(calls, "resume", str(batch_dir), "--quiet")
    assert resumed.wait(timeout=120) == 0
    assert max(steps_per_key(batch_dir).values()) == 1
