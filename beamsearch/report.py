"""`report.html`: one self-contained page to judge a run by eye and see how the search got there.

Self-contained means inline CSS, an inline SVG chart, no script and no network: images are linked by
their path relative to the run folder, so the folder can be zipped and opened anywhere. Every piece of
text that came from a user, a model or the log goes through `esc`, because prompts are untrusted input.
The page is rebuilt at every ranking while a run runs (`livereport`) and once more at its end; the
cards and grids are in `report_cards`, the chart in `report_chart`, the style sheet in `report_style`.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from beamsearch.errors import RunFolderError
from beamsearch.files import atomic_write, outside_reason, reason, shown
from beamsearch.report_cards import clamp, esc, family_tree, hero, iteration_section, score
from beamsearch.report_chart import chart, chart_svg
from beamsearch.report_style import CSS

__all__ = ["REPORT_FILE", "chart_svg", "esc", "image_src", "render_report", "write_report"]

REPORT_FILE = "report.html"
TITLE_CHARS = 120


def image_src(path: Any, run_dir: Path | None = None) -> str | None:
    """A safe relative link to an image inside the run folder, or None (absolute paths, `..` and
    files that do not exist never become links)."""
    if not isinstance(path, str) or not path:
        return None
    relative = PurePosixPath(path)
    if relative.is_absolute() or ".." in relative.parts or "\\" in path or ":" in path:
        return None
    if run_dir is not None and (outside_reason(run_dir, path) is not None or not (run_dir / relative).is_file()):
        return None  # never a link to a file outside the folder, through a symlink or otherwise
    return esc(quote(relative.as_posix()))


def _facts(summary: dict[str, Any]) -> str:
    search = summary.get("search") or {}
    best = summary.get("best") or {}
    status = summary.get("status") or "unknown"
    items = [
        ("status", f'<span class="status-{esc(status)}">{esc(status)}</span>'
                   + (f' <span class="muted">({esc(summary.get("reason"))})</span>' if summary.get("reason") else "")),
        ("best score", f"{score(best.get('total'))} ({esc(best.get('id', '-'))})" if best else "–"),
        ("cost", f"${summary.get('cost_usd', 0.0):.4f}"),
        ("search", esc(f"N={search.get('n')} M={search.get('m')} iterations={search.get('iterations')} "
                       f"alpha={search.get('alpha')} elitism={search.get('elitism')} seed={search.get('seed')}")),
        ("iterations ranked", str(len(summary.get("iterations", [])))),
    ]
    models = summary.get("models") or {}
    if models:
        named = "; ".join(f"{role} {m.get('model')}" + (" (simulator)" if m.get("provider") == "sim" else "")
                          + (" (cost unknown)" if m.get("priced") is False else "") for role, m in models.items())
        items.append(("models", esc(named)))
    return '<div class="facts">' + "".join(f"<div><b>{label}</b>{value}</div>" for label, value in items) + "</div>"


def _usage_table(summary: dict[str, Any]) -> str:
    usage = summary.get("usage") or {}
    if not usage:
        return '<p class="muted">No call was made.</p>'
    models = summary.get("models") or {}
    unknown = [m["model"] for m in models.values() if m.get("priced") is False]

    def cost(service: str, u: dict[str, Any]) -> str:
        if (models.get(service) or {}).get("priced") is False:
            return '<span class="muted">unknown</span>'
        return f"${u.get('cost_usd', 0.0):.4f}"

    rows = "".join(
        f"<tr><td>{esc(service)}</td><td class=\"text\">{esc((models.get(service) or {}).get('model') or '')}</td>"
        f"<td>{u.get('calls', 0)}</td><td>{u.get('attempts', 0)}</td>"
        f"<td>{u.get('input_tokens', 0)}</td><td>{u.get('output_tokens', 0)}</td><td>{u.get('images', 0)}</td>"
        f"<td>{cost(service, u)}</td></tr>" for service, u in usage.items())
    note = (f'<p class="muted">No price is known for {esc(", ".join(sorted(set(unknown))))}: its calls are counted '
            "as $0, so the total leaves them out.</p>") if unknown else ""
    return ('<div class="scroll"><table><tr><th>service</th><th class="text">model</th><th>calls</th><th>attempts</th>'
            "<th>input tokens</th><th>output tokens</th>"
            f"<th>images</th><th>cost</th></tr>{rows}<tr><th>total</th><td colspan=6></td>"
            f"<th>${summary.get('cost_usd', 0.0):.4f}{' + unknown' if unknown else ''}</th></tr></table></div>{note}")


def _judging(summary: dict[str, Any]) -> str:
    """How the images were judged and how far the judges agreed (issue 7); nothing for default judging."""
    j = summary.get("judging") or {}
    if not (j.get("checklist") or j.get("pairwise") or j.get("judge_spread")):
        return ""
    facts = [f"alignment by {esc(j.get('alignment'))}, ranking by {esc(j.get('ranking'))}, "
             f"{esc(j.get('judge_samples'))} answer(s) per judge and image"]
    if j.get("pairwise"):
        pw = j["pairwise"]
        facts.append(f"pairwise: {esc(pw['pairs'])} pairs judged in both orders; the two orders agreed on "
                     f"{esc(pw['orders_agreed'])} ({pw['agreement']:.0%}); the image shown first won "
                     f"{pw['first_shown_won']:.0%} of single verdicts")
    for judge, spread in (j.get("judge_spread") or {}).items():
        facts.append(f"{esc(judge)} judge spread (std. dev. of repeated answers): mean {esc(spread['mean'])}, "
                     f"max {esc(spread['max'])}")
    if j.get("checklist_failed_share") is not None:
        per = ", ".join(f"iteration {esc(k)}: {v:.0%}" for k, v in (j.get("checklist_failed_share_by_iteration") or {}).items())
        facts.append(f"checklist questions failed: {j['checklist_failed_share']:.0%} overall ({per})")
    page = "<h2>Judging</h2><ul>" + "".join(f"<li>{f}</li>" for f in facts) + "</ul>"
    if j.get("checklist"):
        rows = "".join(f'<tr><td>{esc(q.get("id"))}</td><td class="text">{esc(q.get("question"))}</td>'
                       f'<td class="text">{esc(q.get("category"))}</td><td>{esc(q.get("weight"))}</td>'
                       f'<td class="text">{esc(", ".join(map(str, q.get("depends_on") or [])))}</td></tr>'
                       for q in j["checklist"])
        page += ('<div class="scroll"><table class="checklist"><tr><th>id</th><th class="text">checklist question</th>'
                 f'<th class="text">category</th><th>weight</th><th class="text">counts only if</th></tr>{rows}</table></div>')
    return page


def render_report(summary: dict[str, Any], run_dir: Path) -> str:
    """The whole page as a string (the run folder is needed to link only images that exist)."""
    run_dir = Path(run_dir)
    candidates = {c["id"]: c for c in summary.get("candidates", []) if "id" in c}
    failed = {f["id"]: {**f, "status": "failed"} for f in summary.get("failed", []) if "id" in f}
    best = summary.get("best")
    best_id = best.get("id") if best else None

    def src_of(c: dict[str, Any]) -> str | None:
        return image_src(c.get("image"), run_dir)

    sim_note = ""
    if "sim" in (summary.get("provider") or {}).values():
        sim_note = '<div class="sim">Simulator run: images and scores are simulated offline.</div>'
    warnings = "".join(f'<div class="warning">{esc(w)}</div>' for w in summary.get("warnings") or [])
    ranked = {it["iteration"]: it for it in summary.get("iterations", [])}
    iterations_seen = sorted({c.get("iteration", 0) for c in candidates.values()}
                             | {f.get("iteration", 0) for f in failed.values()} | set(ranked))
    sections = [iteration_section(k, ranked.get(k, {}), candidates, failed, src_of, best_id) for k in iterations_seen]
    prompt = str(summary.get("prompt") or "")
    title = prompt if len(prompt) <= TITLE_CHARS else prompt[: TITLE_CHARS - 1] + "…"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src 'self' file: data:; style-src 'unsafe-inline'">
<title>beamsearch: {esc(title)}</title>
<style>{CSS}</style></head>
<body><main>
<h1>beamsearch report</h1>
<div class="prompt">{clamp(prompt, quotes=("“", "”"))}</div>
{sim_note}
{warnings}
{_facts(summary)}
<h2>Best image</h2>
{hero(best, image_src(best.get("image"), run_dir) if best else None)}
<h2>Family tree of the best</h2>
{family_tree(list(summary.get("lineage", [])), candidates, src_of, best_id)}
<h2>Score per iteration</h2>
<div class="chart">{chart(summary.get("iterations", []))}</div>
{_judging(summary)}
{"".join(sections)}
<h2>Cost by service</h2>
{_usage_table(summary)}
<footer>Rebuilt from events.jsonl{" at every ranking while the run runs" if summary.get("status") == "running" else ""};
regenerate with <code>beamsearch report {esc(run_dir.name)}</code>.
Each iteration shows its whole ranking pool in ranked order: survivors have a green border, the best image a gold
one, parents kept from an earlier iteration a dashed one. Click an image to open it at full size (images/ in this
folder).</footer>
</main></body></html>
"""


def write_report(store: Any, summary: dict[str, Any]) -> Path:
    """Write `report.html` into the run folder (atomically) and return its path; a folder that refuses
    the file is one sentence naming the report, not the temporary file the write went through."""
    run_dir = Path(store.path)
    path = run_dir / REPORT_FILE
    page = render_report(summary, run_dir).encode("utf-8")
    try:
        atomic_write(path, page)
    except OSError as exc:
        raise RunFolderError(f"Cannot write {shown(path)}: {reason(exc)}.") from None
    return path
