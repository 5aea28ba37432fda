"""The seconds one call takes, per service, as `estimate` assumes them, and where each figure comes from.

A hosted service answers a short chat in about two seconds; a small local server on a laptop may take a
minute. So the time bound uses, for each service, the first of:

1. the run given with `estimate --run RUN_DIR`: the median `elapsed` of its steps of that service
   (steps answered at the first attempt, when there are any: retries are not the service's latency);
2. the role's `latency_s` setting;
3. the newest run in `runs_dir` made with the same provider, model and endpoint for that role (its
   median, as in 1);
4. the simulator's configured mean latency for a simulated role, else a hosted service's typical figure.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from beamsearch.roles import ROLES

# Typical latencies in seconds of one call to a hosted OpenAI-compatible service: a short chat answer
# from a small model, a medium-quality 1024x1024 image, a structured judgement of one small image.
TYPICAL_LATENCY = {"text": 2.0, "image": 20.0, "vision": 3.0}
RUNS_LOOKED_AT = 20  # the newest run folders of runs_dir that are searched for a matching run


def measured(run_dir: Path) -> dict[str, tuple[float, int]]:
    """Per service, the median `elapsed` of a run's steps and how many steps it is the median of."""
    from beamsearch.runs import read_view

    by_service: dict[str, list[tuple[float, int]]] = {}
    for step in read_view(Path(run_dir)).steps.values():
        by_service.setdefault(step.service, []).append((step.elapsed, step.attempts))
    found = {}
    for service, steps in by_service.items():
        first_time = [elapsed for elapsed, attempts in steps if attempts == 1] or [elapsed for elapsed, _ in steps]
        found[service] = (round(statistics.median(first_time), 3), len(first_time))
    return found


def _same_role(settings: Any, recorded: dict[str, Any], role: str) -> bool:
    mine, theirs = getattr(settings, role), recorded.get(role) if isinstance(recorded.get(role), dict) else {}
    provider = theirs.get("provider") or recorded.get("provider") or "openai"
    return (provider == settings.role_provider(role) and theirs.get("model") == mine.model
            and (theirs.get("base_url") or "").rstrip("/") == (mine.base_url or "").rstrip("/"))


def _matching_runs(settings: Any, roles: list[str]) -> dict[str, tuple[Path, float, int]]:
    """For each of `roles`, the newest run in runs_dir made with its provider, model and endpoint that has
    steps of it, with its median latency. Folders that are not readable runs are passed over."""
    from beamsearch.errors import BeamsearchError
    from beamsearch.store import load_run_document

    try:
        folders = sorted((p for p in Path(settings.runs_dir).iterdir() if p.is_dir()), reverse=True)[:RUNS_LOOKED_AT]
    except OSError:
        return {}
    found: dict[str, tuple[Path, float, int]] = {}
    for folder in folders:
        wanted = [role for role in roles if role not in found]
        if not wanted:
            break
        try:
            recorded = load_run_document(folder).get("settings") or {}
            matching = [role for role in wanted if _same_role(settings, recorded, role)]
            medians = measured(folder) if matching else {}
        except (BeamsearchError, OSError, ValueError):
            continue
        for role in matching:
            if role in medians:
                found[role] = (folder, *medians[role])
    return found


def latencies(settings: Any, run_dir: Path | None = None, discover: bool = True) -> tuple[dict[str, float], dict[str, str]]:
    """Seconds per call for each service, and where each figure comes from (see the module's rules).
    `discover` False keeps to the settings (the live view's time left, which must not read other runs)."""
    given = measured(run_dir) if run_dir is not None else {}
    seconds: dict[str, float] = {}
    source: dict[str, str] = {}
    for role in ROLES:
        setting = getattr(getattr(settings, role), "latency_s", None)
        if role in given:
            seconds[role] = given[role][0]
            source[role] = f"median of {given[role][1]} calls in {Path(run_dir).name}"  # type: ignore[arg-type]
        elif setting is not None:
            seconds[role], source[role] = float(setting), f"{role}.latency_s"
    missing = [role for role in ROLES if role not in seconds and settings.role_provider(role) != "sim"]
    for role, (folder, median, count) in (_matching_runs(settings, missing) if discover and missing else {}).items():
        seconds[role], source[role] = median, f"median of {count} calls in {folder.name}"
    for role in ROLES:
        if role in seconds:
            continue
        if settings.role_provider(role) == "sim":
            seconds[role], source[role] = getattr(settings.sim.latency, role).mean, "the simulator's setting"
        else:
            seconds[role], source[role] = TYPICAL_LATENCY[role], "a hosted service's typical figure"
    return seconds, source
