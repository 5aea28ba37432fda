"""`report.html`: one self-contained page to judge a run by eye and see how the search got there.

Self-contained means inline CSS, an inline SVG chart, no script and no network: images are linked by
their path relative to the run folder, so the folder can be zipped and opened anywhere. Every piece of
text that came from a user, a model or the log goes through `esc`, because prompts are untrusted input.
"""

from __future__ import annotations

import html
import json
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from beamsearch.errors import RunFolderError
from beamsearch.files import atomic_write, outside_reason, reason, shown
from beamsearch.schedule import dimension_of

REPORT_FILE = "report.html"
# Candidate fields the cards show in their own places; anything else a judge records is listed generically.
SHOWN_FIELDS = {
    "id", "iteration", "index", "parent", "what", "how", "prompt", "image", "revised_prompt", "rephrases",
    "alignment", "aesthetic", "total", "alignment_notes", "aesthetic_notes", "found", "missing", "weak",
    "critique", "status", "error", "ts",
}

CSS = """
:root { --ink:#1d2330; --muted:#5f6b7a; --line:#d9dee5; --card:#fff; --bg:#f4f6f9; --good:#1f8a4c;
        --best:#c98a00; --bad:#b3261e; --accent:#2a5bd7; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color:var(--ink);
       background:var(--bg); }
main { max-width:1320px; margin:0 auto; padding:24px; }
h1 { font-size:22px; margin:0 0 4px; } h2 { font-size:18px; margin:32px 0 12px; }
.prompt { font-size:18px; margin:4px 0 12px; }
.muted { color:var(--muted); } .sim { background:#fff4d6; border:1px solid #e8c66a; padding:6px 10px;
  border-radius:6px; display:inline-block; margin:6px 0; }
.facts { display:flex; flex-wrap:wrap; gap:8px 24px; margin:8px 0; }
.facts div b { display:block; font-size:12px; color:var(--muted); font-weight:500; }
.status-done { color:var(--good); } .status-failed { color:var(--bad); } .status-stopped, .status-running { color:var(--best); }
.hero { display:flex; gap:24px; align-items:flex-start; background:var(--card); border:1px solid var(--line);
        border-radius:10px; padding:16px; }
.hero img { width:360px; max-width:45%; border-radius:6px; border:1px solid var(--line); }
.hero dl { margin:0; display:grid; grid-template-columns:max-content 1fr; gap:6px 14px; }
.hero dt { color:var(--muted); } .hero dd { margin:0; }
.tree { display:flex; flex-wrap:wrap; align-items:stretch; gap:6px; }
.tree .arrow { align-self:center; font-size:22px; color:var(--muted); }
.grid { display:grid; grid-template-columns:repeat(auto-fill, minmax(200px, 1fr)); gap:12px; }
.card { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:8px; width:100%; }
.tree .card { width:200px; }
.card img { width:100%; aspect-ratio:1/1; object-fit:cover; border-radius:4px; display:block; background:#e9edf2; }
.card .noimg { aspect-ratio:1/1; display:flex; align-items:center; justify-content:center; background:#f3e2e1;
               color:var(--bad); border-radius:4px; padding:8px; text-align:center; }
.card.survivor { border:2px solid var(--good); } .card.best { border:3px solid var(--best); }
.card.failed { opacity:.85; }
.head { display:flex; justify-content:space-between; align-items:baseline; margin-top:6px; }
.id { font-weight:600; font-family:ui-monospace, Menlo, monospace; } .total { font-size:18px; font-weight:700; }
.scores { color:var(--muted); font-size:12px; }
.badge { display:inline-block; font-size:11px; padding:1px 6px; border-radius:9px; margin-right:4px; color:#fff; }
.badge.survivor { background:var(--good); } .badge.best { background:var(--best); } .badge.failed { background:var(--bad); }
.badge.change { background:var(--accent); }
details { margin-top:6px; font-size:12px; } summary { cursor:pointer; color:var(--accent); }
details p { margin:4px 0; white-space:pre-wrap; word-break:break-word; } details b { color:var(--muted); font-weight:600; }
table { border-collapse:collapse; background:var(--card); } td, th { border:1px solid var(--line); padding:4px 10px; text-align:right; }
th:first-child, td:first-child { text-align:left; }
.chart { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:8px; }
footer { margin:40px 0 10px; color:var(--muted); font-size:12px; }
"""


def esc(value: Any) -> str:
    """Text for HTML content or a quoted attribute: everything escaped, quotes included."""
    return html.escape("" if value is None else str(value), quote=True)


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


def _score(value: Any, digits: int = 1) -> str:
    return "–" if not isinstance(value, int | float) else f"{value:.{digits}f}"


def _paragraph(label: str, value: Any) -> str:
    if value in (None, "", []):
        return ""
    if isinstance(value, list):
        value = "; ".join(str(v) for v in value)
    return f"<p><b>{esc(label)}</b> {esc(value)}</p>"


def _details(c: dict[str, Any]) -> str:
    """WHAT, HOW, the combined prompt, the critique that made it and the judges' notes, on demand."""
    parts = [
        _paragraph("WHAT", c.get("what")), _paragraph("HOW", c.get("how")),
        _paragraph("Combined prompt", c.get("prompt")), _paragraph("Revised by the image model", c.get("revised_prompt")),
        _paragraph("Rephrased after a refusal", c.get("rephrases")),
        _paragraph("Critique of the parent", c.get("critique")),
        _paragraph("Alignment notes", c.get("alignment_notes")), _paragraph("Found", c.get("found")),
        _paragraph("Missing", c.get("missing")), _paragraph("Aesthetic notes", c.get("aesthetic_notes")),
        _paragraph("Weak", c.get("weak")), _paragraph("Error", c.get("error")),
    ]
    for key in sorted(set(c) - SHOWN_FIELDS):
        value = c[key]
        if value not in (None, "", [], {}):
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, indent=1)
            parts.append(_paragraph(key.replace("_", " ").capitalize(), text))
    body = "".join(parts)
    return f"<details><summary>prompts, critique, judge notes</summary>{body}</details>" if body else ""


def _card(c: dict[str, Any], run_dir: Path, *, survivor: bool = False, best: bool = False, rank: int | None = None,
          change: str | None = None) -> str:
    failed = c.get("status") == "failed"
    classes = ["card"] + (["best"] if best else []) + (["survivor"] if survivor and not best else []) + (["failed"] if failed else [])
    src = image_src(c.get("image"), run_dir)
    if src:
        picture = f'<img src="{src}" alt="candidate {esc(c.get("id"))}" loading="lazy">'
    else:
        picture = f'<div class="noimg">{esc(c.get("error") or "no image")}</div>'
    badges = "".join([
        '<span class="badge best">best</span>' if best else "",
        '<span class="badge survivor">survivor</span>' if survivor else "",
        '<span class="badge failed">failed</span>' if failed else "",
        f'<span class="badge change">{esc(change)}</span>' if change else "",
    ])
    rank_text = f'<span class="muted">#{rank}</span> ' if rank is not None else ""
    parent = f'<div class="scores">from {esc(c.get("parent"))}</div>' if c.get("parent") else ""
    scores = "" if failed else (f'<div class="scores">alignment {_score(c.get("alignment"), 0)} · '
                                f'aesthetic {_score(c.get("aesthetic"))}</div>')
    total = "" if failed else f'<span class="total">{_score(c.get("total"))}</span>'
    return (f'<div class="{" ".join(classes)}" id="{esc(c.get("id"))}">{picture}'
            f'<div class="head"><span>{rank_text}<span class="id">{esc(c.get("id"))}</span></span>{total}</div>'
            f'{scores}{parent}<div>{badges}</div>{_details(c)}</div>')


def chart_svg(iterations: list[dict[str, Any]], width: int = 640, height: int = 260) -> str:
    """Best-so-far and median of each iteration's children, as an inline SVG line chart."""
    points = [(it["iteration"], it.get("best_total"), it.get("children_median")) for it in iterations]
    values = [v for _, b, m in points for v in (b, m) if isinstance(v, int | float)]
    if not values:
        return '<p class="muted">No iteration was ranked yet.</p>'
    spread = max(values) - min(values)
    tick = 5 if spread <= 20 else 10 if spread <= 50 else 20
    low = max(0.0, (min(values) // tick) * tick)
    high = min(100.0, -(-max(values) // tick) * tick)
    if high - low < tick:  # one flat line: give it a band of its own
        low, high = (high - tick, high) if high >= tick else (low, low + tick)
    left, right, top, bottom = 48, 16, 34, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    count = len(points)

    def x(i: int) -> float:
        return left + (plot_w * i / (count - 1) if count > 1 else plot_w / 2)

    def y(v: float) -> float:
        return top + plot_h * (1 - (v - low) / (high - low))

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="100%" viewBox="0 0 {width} {height}" style="max-width:{width * 1.4:.0f}px" '
             'role="img" aria-label="best and median score per iteration" font-family="system-ui, sans-serif" font-size="11">']
    for s in range(round((high - low) / tick) + 1):
        v = low + tick * s
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#e3e7ed"/>'
                     f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end" fill="#5f6b7a">{v:.0f}</text>')
    for i, (k, _, _) in enumerate(points):
        parts.append(f'<text x="{x(i):.1f}" y="{height - bottom + 16}" text-anchor="middle" fill="#5f6b7a">{int(k)}</text>')
    parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 6}" text-anchor="middle" fill="#5f6b7a">iteration</text>')
    for index, colour, label in ((1, "#c98a00", "best so far"), (2, "#2a5bd7", "median of the iteration's children")):
        series = [(x(i), y(p[index])) for i, p in enumerate(points) if isinstance(p[index], int | float)]
        if len(series) > 1:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py in series)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2.5"/>')
        for i, p in enumerate(points):
            if isinstance(p[index], int | float):
                parts.append(f'<circle cx="{x(i):.1f}" cy="{y(p[index]):.1f}" r="4" fill="{colour}">'
                             f'<title>iteration {int(p[0])}: {esc(label)} {p[index]:.1f}</title></circle>')
        legend_x = left + 10 + 130 * (index - 1)
        parts.append(f'<rect x="{legend_x}" y="10" width="14" height="4" fill="{colour}"/>'
                     f'<text x="{legend_x + 20}" y="16" fill="#1d2330">{esc(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _facts(summary: dict[str, Any]) -> str:
    search = summary.get("search") or {}
    best = summary.get("best") or {}
    status = summary.get("status") or "unknown"
    items = [
        ("status", f'<span class="status-{esc(status)}">{esc(status)}</span>'
                   + (f' <span class="muted">({esc(summary.get("reason"))})</span>' if summary.get("reason") else "")),
        ("best score", f"{_score(best.get('total'))} ({esc(best.get('id', '-'))})" if best else "–"),
        ("cost", f"${summary.get('cost_usd', 0.0):.4f}"),
        ("search", esc(f"N={search.get('n')} M={search.get('m')} iterations={search.get('iterations')} "
                       f"alpha={search.get('alpha')} elitism={search.get('elitism')} seed={search.get('seed')}")),
        ("iterations ranked", str(len(summary.get("iterations", [])))),
    ]
    return '<div class="facts">' + "".join(f"<div><b>{label}</b>{value}</div>" for label, value in items) + "</div>"


def _usage_table(summary: dict[str, Any]) -> str:
    usage = summary.get("usage") or {}
    if not usage:
        return '<p class="muted">No call was made.</p>'
    rows = "".join(
        f"<tr><td>{esc(service)}</td><td>{u.get('calls', 0)}</td><td>{u.get('attempts', 0)}</td>"
        f"<td>{u.get('input_tokens', 0)}</td><td>{u.get('output_tokens', 0)}</td><td>{u.get('images', 0)}</td>"
        f"<td>${u.get('cost_usd', 0.0):.4f}</td></tr>" for service, u in usage.items())
    return ("<table><tr><th>service</th><th>calls</th><th>attempts</th><th>input tokens</th><th>output tokens</th>"
            f"<th>images</th><th>cost</th></tr>{rows}<tr><th>total</th><td colspan=5></td>"
            f"<th>${summary.get('cost_usd', 0.0):.4f}</th></tr></table>")


def _hero(best: dict[str, Any] | None, run_dir: Path) -> str:
    if not best:
        return '<p class="muted">No candidate was scored.</p>'
    src = image_src(best.get("image"), run_dir)
    picture = f'<img src="{src}" alt="the best image">' if src else '<div class="noimg">image missing</div>'
    rows = [("id", best.get("id")), ("total", _score(best.get("total"))),
            ("alignment", f"{_score(best.get('alignment'), 0)} / 100"), ("aesthetic", f"{_score(best.get('aesthetic'))} / 10"),
            ("WHAT", best.get("what")), ("HOW", best.get("how")), ("prompt", best.get("prompt"))]
    facts = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in rows)
    return f'<div class="hero">{picture}<dl>{facts}</dl></div>'


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
    html = "<h2>Judging</h2><ul>" + "".join(f"<li>{f}</li>" for f in facts) + "</ul>"
    if j.get("checklist"):
        rows = "".join(f"<tr><td>{esc(q['id'])}</td><td>{esc(q['question'])}</td><td>{esc(q['category'])}</td>"
                       f"<td>{esc(q['weight'])}</td><td>{esc(', '.join(q['depends_on']))}</td></tr>" for q in j["checklist"])
        html += ("<table><tr><th>id</th><th>checklist question</th><th>category</th><th>weight</th>"
                 f"<th>counts only if</th></tr>{rows}</table>")
    return html


def _family_tree(summary: dict[str, Any], candidates: dict[str, dict[str, Any]], run_dir: Path, best_id: str | None) -> str:
    tree_cards = []
    for cid in summary.get("lineage", []):
        c = candidates.get(cid, {"id": cid})
        k = c.get("iteration", 0)
        change = "expanded" if k == 0 else f"{dimension_of(k).upper()} refined"
        if tree_cards:
            tree_cards.append('<span class="arrow">→</span>')
        tree_cards.append(_card(c, run_dir, best=cid == best_id, change=change))
    return f'<div class="tree">{"".join(tree_cards)}</div>' if tree_cards else '<p class="muted">No candidate yet.</p>'


def _iteration_section(k: int, it: dict[str, Any], candidates: dict[str, dict[str, Any]],
                       failed: dict[str, dict[str, Any]], run_dir: Path, best_id: str | None) -> str:
    """One iteration's grid: its children in ranking order (then its failed lanes), and its figures."""
    survivors = set(it.get("survivors", []))
    order = {cid: i for i, (cid, _) in enumerate(it.get("pool", []))}
    children = [c for c in candidates.values() if c.get("iteration") == k]
    children.sort(key=lambda c: (order.get(c["id"], len(order)), c.get("index", 0)))
    scored = len(children)
    children += sorted((f for f in failed.values() if f.get("iteration") == k), key=lambda f: str(f.get("id")))
    dimension = it.get("dimension") or dimension_of(k)
    title = "expansion of the idea" if dimension == "expand" else f"refining {dimension.upper()}"
    stats = f"{scored} scored, {len(children) - scored} failed"
    if it:
        kept_parents = [s for s in it.get("survivors", []) if candidates.get(s, {}).get("iteration") != k]
        stats += (f" · best child {_score(it.get('children_best'))} · median {_score(it.get('children_median'))}"
                  f" · survivors {esc(', '.join(it.get('survivors', [])))}")
        if kept_parents:
            stats += f" (kept from earlier: {esc(', '.join(kept_parents))})"
    else:
        stats += " · not ranked yet"
    cards = "".join(_card(c, run_dir, survivor=c["id"] in survivors, best=c["id"] == best_id,
                          rank=(order[c["id"]] + 1) if c["id"] in order else None) for c in children)
    return (f'<section><h2>Iteration {k}: {esc(title)}</h2><p class="muted">{stats}</p>'
            f'<div class="grid">{cards}</div></section>')


def render_report(summary: dict[str, Any], run_dir: Path) -> str:
    """The whole page as a string (the run folder is needed to link only images that exist)."""
    run_dir = Path(run_dir)
    candidates = {c["id"]: c for c in summary.get("candidates", []) if "id" in c}
    failed = {f["id"]: {**f, "status": "failed"} for f in summary.get("failed", []) if "id" in f}
    best = summary.get("best")
    best_id = best.get("id") if best else None
    providers = summary.get("provider") or {}
    sim_note = ""
    if "sim" in providers.values():
        sim_note = '<div class="sim">Simulator run: images and scores are simulated offline.</div>'
    tree = _family_tree(summary, candidates, run_dir, best_id)
    ranked = {it["iteration"]: it for it in summary.get("iterations", [])}
    iterations_seen = sorted({c.get("iteration", 0) for c in candidates.values()}
                             | {f.get("iteration", 0) for f in failed.values()} | set(ranked))
    sections = [_iteration_section(k, ranked.get(k, {}), candidates, failed, run_dir, best_id) for k in iterations_seen]

    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src 'self' file: data:; style-src 'unsafe-inline'">
<title>beamsearch: {esc(summary.get("prompt"))}</title>
<style>{CSS}</style></head>
<body><main>
<h1>beamsearch report</h1>
<div class="prompt">“{esc(summary.get("prompt"))}”</div>
{sim_note}
{_facts(summary)}
<h2>Best image</h2>
{_hero(best, run_dir)}
<h2>Family tree of the best</h2>
{tree}
<h2>Score per iteration</h2>
<div class="chart">{chart_svg(summary.get("iterations", []))}</div>
{_judging(summary)}
{"".join(sections)}
<h2>Cost by service</h2>
{_usage_table(summary)}
<footer>Rebuilt from events.jsonl; regenerate with <code>beamsearch report {esc(run_dir.name)}</code>.
Survivors have a green border, the best image a gold one. Images are linked from images/ in this folder.</footer>
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
