"""The tables commands print: the result of a run, `show`, `list` and `estimate`.

Everything in them that came from a run folder or a model (prompts, ids, paths, reasons, labels) is
handed to rich as `terminal.rich_text`, so escape sequences are shown, not obeyed, and `[brackets]` are
text, not markup. Numbers are formatted here.
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from beamsearch.progress import Result
from beamsearch.terminal import rich_text as plain


def fmt(value: float | None, digits: int = 1) -> str:
    return "" if not isinstance(value, int | float) else f"{value:.{digits}f}"


def when(stamp: Any) -> str:
    """A time stamp of `--json` (Unix seconds) as local date and time for a table."""
    if not isinstance(stamp, int | float) or isinstance(stamp, bool):
        return ""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(stamp))


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m {rest:02d}s" if minutes < 60 else f"{minutes // 60}h {minutes % 60:02d}m"


def result_event(summary: dict[str, Any], run_dir: str, exit_code: int) -> Result:
    """The last line of `run --json`: where the run is and what it found."""
    best = summary.get("best") or None
    return Result(run_dir=run_dir, status=summary.get("status"), reason=summary.get("reason"), exit_code=exit_code,
                  cost_usd=summary.get("cost_usd", 0.0),
                  best=None if best is None else {k: best.get(k) for k in ("id", "total", "alignment", "aesthetic",
                                                                          "what", "how", "prompt", "image")},
                  lineage=summary.get("lineage", []))


def result_table(summary: dict[str, Any], run_dir: str) -> Table:
    best = summary.get("best")
    table = Table(title="Best candidate", show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    if best is None:
        table.add_row("result", "no candidate was scored")
    else:
        table.add_row("id", plain(best.get("id")))
        table.add_row("total", fmt(best.get("total")))
        table.add_row("alignment", f"{fmt(best.get('alignment'), 0)} / 100")
        table.add_row("aesthetic", f"{fmt(best.get('aesthetic'))} / 10")
        table.add_row("WHAT", plain(best.get("what")))
        table.add_row("HOW", plain(best.get("how")))
        table.add_row("prompt", plain(best.get("prompt")))
        table.add_row("image", plain(f"{run_dir}/{best.get('image')}"))
        table.add_row("lineage", plain(" -> ".join(str(i) for i in summary.get("lineage", []))))
    table.add_row("cost", plain(_cost_line(summary) + (" (simulated)" if _simulated(summary) else "")))
    table.add_row("provider", plain(_provider_line(summary)))
    table.add_row("status", plain(f"{summary.get('status')}: {summary.get('reason')}"))
    table.add_row("run folder", plain(run_dir))
    table.add_row("report", plain(f"{run_dir}/report.html"))
    return table


def _simulated(summary: dict[str, Any]) -> bool:
    return "sim" in (summary.get("provider") or {}).values()


def _provider_line(summary: dict[str, Any]) -> str:
    """Which provider served each role; the simulator is named as such, so no one mistakes its output."""
    roles = summary.get("provider") or {}
    names = {"sim": "simulator (offline; images and scores are simulated)", "openai": "openai-compatible"}
    if not roles:
        return ""
    if len(set(roles.values())) == 1:
        return names.get(next(iter(roles.values())), str(next(iter(roles.values()))))
    return ", ".join(f"{role} {names.get(p, p)}" for role, p in roles.items())


def _cost_line(summary: dict[str, Any]) -> str:
    costs = ", ".join(f"{s} ${u['cost_usd']:.4f}" for s, u in summary.get("usage", {}).items())
    return f"${summary.get('cost_usd', 0):.4f} ({costs})" if costs else "$0"


# --- show ------------------------------------------------------------------------------------------


def show_view(data: dict[str, Any]) -> Group:
    """`beamsearch show`: facts, the best candidate, its family tree, iterations and cost by service."""
    facts = Table(show_header=False, box=None, pad_edge=False)
    facts.add_column("field", style="bold")
    facts.add_column("value", overflow="fold")
    facts.add_row("run", plain(data["run_dir"]))
    facts.add_row("prompt", plain(data.get("prompt") or ""))
    facts.add_row("status", plain(f"{data['status']}" + (f": {data['reason']}" if data.get("reason") else "")))
    facts.add_row("created", when(data.get("created")))
    search = data.get("search") or {}
    facts.add_row("search", plain(" ".join(f"{k}={v}" for k, v in search.items())))
    providers = data.get("provider") or {}
    facts.add_row("providers", plain(", ".join(f"{role} {name}" for role, name in providers.items())))
    parts: list[Any] = [facts]
    if data.get("best"):
        parts.append(result_table({**data, "lineage": [c["id"] for c in data["family_tree"]]}, data["run_dir"]))
    else:
        parts.append(Text("No candidate was scored yet."))
    if data.get("family_tree"):
        parts.append(_tree_table(data["family_tree"]))
    if data.get("iterations"):
        parts.append(_iterations_table(data["iterations"]))
    parts.append(usage_table(data.get("usage", {}), data.get("cost_usd", 0.0)))
    return Group(*parts)


def _tree_table(nodes: list[dict[str, Any]]) -> Table:
    tree = Table(title="Family tree of the best (oldest first)", title_justify="left")
    for column in ("id", "parent", "changed", "total", "align", "aesth", "WHAT / HOW"):
        tree.add_column(column, overflow="fold")
    for node in nodes:
        text = node.get("what") if node.get("changed") in ("expanded", "what") else node.get("how")
        tree.add_row(plain(node.get("id")), plain(node.get("parent") or ""), plain(node.get("changed")),
                     fmt(node.get("total")), fmt(node.get("alignment"), 0), fmt(node.get("aesthetic")), plain(text or ""))
    return tree


def _iterations_table(iterations: list[dict[str, Any]]) -> Table:
    table = Table(title="Iterations", title_justify="left")
    for column in ("iteration", "dimension", "best so far", "best child", "median child", "survivors", "failed"):
        table.add_column(column)
    for it in iterations:
        table.add_row(plain(it.get("iteration")), plain(it.get("dimension")),
                      plain(f"{fmt(it.get('best_total'))} ({it.get('best_id')})"), fmt(it.get("children_best")),
                      fmt(it.get("children_median")), plain(", ".join(str(s) for s in it.get("survivors") or [])),
                      str(len(it.get("failed") or [])))
    return table


def usage_table(usage: dict[str, Any], total: float) -> Table:
    table = Table(title="Cost by service", title_justify="left")
    for column in ("service", "calls", "attempts", "input tokens", "output tokens", "images", "cost"):
        table.add_column(column, justify="left" if column == "service" else "right")
    for service, u in usage.items():
        table.add_row(plain(service), str(u.get("calls", 0)), str(u.get("attempts", 0)), str(u.get("input_tokens", 0)),
                      str(u.get("output_tokens", 0)), str(u.get("images", 0)), f"${u.get('cost_usd', 0.0):.4f}")
    table.add_row("total", "", "", "", "", "", f"${total:.4f}", style="bold")
    return table


# --- list, estimate --------------------------------------------------------------------------------


def runs_table(runs: list[Any]) -> Table:
    """`beamsearch list`: newest first, two lines per run: the facts and the prompt, then the folder name
    (what `show`, `report` and `resume` take), which is folded rather than cut when the terminal is narrow."""
    table = Table(title="Runs (newest first)", title_justify="left", box=None, pad_edge=False)
    table.add_column("date", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("best", justify="right", no_wrap=True)
    table.add_column("cost", justify="right", no_wrap=True)
    table.add_column("prompt / folder")
    styles = {"done": "green", "running": "cyan", "stopped": "yellow", "failed": "red"}
    for run in runs:
        best = f"{run.best_score:.1f}" if run.best_score is not None else "-"
        cell = plain(run.prompt)
        cell.no_wrap, cell.overflow = True, "ellipsis"
        table.add_row(when(run.created), plain(run.status, style=styles.get(run.status, "")), best,
                      f"${run.cost_usd:.2f}", cell)
        name = plain(run.name, style="dim")
        name.overflow = "fold"
        table.add_row("", "", "", "", name, end_section=True)
    return table


def estimate_view(data: dict[str, Any], settings: Any) -> Group:
    """`beamsearch estimate`: calls per service and task, a cost range and a time lower bound."""
    calls = Table(title=f"Calls (N={settings.n}, M={settings.m}, {settings.iterations} iterations)", title_justify="left")
    for column in ("service", "calls", "low cost", "high cost"):
        calls.add_column(column, justify="left" if column == "service" else "right")
    cost = data["cost"]
    for service, count in data["calls"]["by_service"].items():
        band = cost["by_service"][service]
        calls.add_row(plain(service), str(count), f"${band['low_usd']:.4f}", f"${band['high_usd']:.4f}")
    calls.add_row("total", str(data["calls"]["total"]), f"${cost['low_usd']:.4f}", f"${cost['high_usd']:.4f}", style="bold")
    tasks = plain("by task: " + ", ".join(f"{task} {count}" for task, count in data["calls"]["by_task"].items()), "dim")
    time_data = data["time"]
    sources = time_data.get("latency_source") or {}
    assumed = ", ".join(f"{s} {v:g}s" + (f" ({sources[s]})" if s in sources else "")
                        for s, v in time_data["latency_assumed"].items())
    binding = ", ".join(f"{'final check' if i.get('dimension') == 'final' else i['iteration']}: {i['seconds']:g}s "
                        f"({i['bound_by']})" for i in time_data["per_iteration"])
    lines = [calls, tasks,
             Text.assemble(("time lower bound ", "bold"), (duration(time_data["seconds"]), "bold"),
                           (f" (bound by {time_data.get('bound_by', 'iterations')})", ""),
                           (f" at latencies per call of {assumed}", "dim")),
             plain(f"per iteration: {binding}", "dim")]
    lines += [plain(note, "dim") for note in data.get("notes", [])]
    return Group(*lines)
