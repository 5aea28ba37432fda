"""The report's inline style sheet. The page works from a phone (420 px) to a wide screen: below 640 px
the hero and the family tree stack, the tree's arrows turn to point down, the grids take two narrower
columns, wide tables scroll sideways and the chart is drawn in its narrow variant (a second SVG made for
that width, so its text keeps a readable size instead of shrinking with the picture)."""

from __future__ import annotations

CSS = """
:root { --ink:#1d2330; --muted:#5f6b7a; --line:#d9dee5; --card:#fff; --bg:#f4f6f9; --good:#1f8a4c;
        --best:#c98a00; --bad:#b3261e; --accent:#2a5bd7; --kept:#6b55b5; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color:var(--ink);
       background:var(--bg); overflow-wrap:anywhere; }
main { max-width:1320px; margin:0 auto; padding:24px; }
h1 { font-size:22px; margin:0 0 4px; } h2 { font-size:18px; margin:32px 0 12px; }
.prompt { font-size:18px; margin:4px 0 12px; }
.muted { color:var(--muted); } .sim { background:#fff4d6; border:1px solid #e8c66a; padding:6px 10px;
  border-radius:6px; display:inline-block; margin:6px 0; }
.warning { background:#fde8e4; border:1px solid #d9826f; padding:6px 10px; border-radius:6px; margin:6px 0; }
.facts { display:flex; flex-wrap:wrap; gap:8px 24px; margin:8px 0; }
.facts div b { display:block; font-size:12px; color:var(--muted); font-weight:500; }
.status-done { color:var(--good); } .status-failed { color:var(--bad); } .status-stopped, .status-running { color:var(--best); }
.hero { display:flex; gap:24px; align-items:flex-start; background:var(--card); border:1px solid var(--line);
        border-radius:10px; padding:16px; }
.hero .picture { width:360px; max-width:45%; flex:none; }
.hero img { width:100%; border-radius:6px; border:1px solid var(--line); display:block; }
.hero dl { margin:0; display:grid; grid-template-columns:max-content minmax(0, 1fr); gap:6px 14px; min-width:0; }
.hero dt { color:var(--muted); } .hero dd { margin:0; white-space:pre-wrap; }
.tree { display:flex; flex-wrap:wrap; align-items:stretch; gap:6px; }
.tree .arrow { align-self:center; font-size:22px; color:var(--muted); display:inline-block; }
.grid { display:grid; grid-template-columns:repeat(auto-fill, minmax(200px, 1fr)); gap:12px; }
.card { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:8px; width:100%; min-width:0; }
.tree .card { width:200px; }
a.full { display:block; } a.full:focus-visible { outline:3px solid var(--accent); }
.card img { width:100%; aspect-ratio:1/1; object-fit:cover; border-radius:4px; display:block; background:#e9edf2; }
.card .noimg { aspect-ratio:1/1; display:flex; align-items:center; justify-content:center; background:#f3e2e1;
               color:var(--bad); border-radius:4px; padding:8px; text-align:center; }
.card.survivor { border:2px solid var(--good); } .card.best { border:3px solid var(--best); }
.card.kept { border-style:dashed; } .card.failed { opacity:.85; }
.head { display:flex; justify-content:space-between; align-items:baseline; margin-top:6px; }
.id { font-weight:600; font-family:ui-monospace, Menlo, monospace; } a.id { color:var(--kept); } .total { font-size:18px; font-weight:700; }
.scores, .decided { color:var(--muted); font-size:12px; }
.decided b { color:var(--ink); font-weight:600; }
.badge { display:inline-block; font-size:11px; padding:1px 6px; border-radius:9px; margin-right:4px; color:#fff; }
.badge.survivor { background:var(--good); } .badge.best { background:var(--best); } .badge.failed { background:var(--bad); }
.badge.change { background:var(--accent); } .badge.kept { background:var(--kept); }
details { margin-top:6px; font-size:12px; } summary { cursor:pointer; color:var(--accent); }
details p { margin:4px 0; white-space:pre-wrap; word-break:break-word; } details b { color:var(--muted); font-weight:600; }
details.clamp { margin:0; font-size:inherit; display:inline; }
details.clamp > summary { color:inherit; list-style:none; display:inline; }
details.clamp > summary::-webkit-details-marker { display:none; }
details.clamp .more { color:var(--accent); font-size:12px; white-space:nowrap; }
details.clamp[open] > summary .clip { display:none; }
details.clamp .whole { white-space:pre-wrap; }
.scroll { overflow-x:auto; max-width:100%; }
table { border-collapse:collapse; background:var(--card); } td, th { border:1px solid var(--line); padding:4px 10px; text-align:right; }
th:first-child, td:first-child, td.text, th.text { text-align:left; }
.chart { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:8px; }
.chart svg { display:block; width:100%; height:auto; }
.chart .narrow { display:none; }
footer { margin:40px 0 10px; color:var(--muted); font-size:12px; }
@media (max-width: 640px) {
  main { padding:12px; }
  h1 { font-size:20px; } .prompt { font-size:16px; }
  .hero { flex-direction:column; padding:12px; }
  .hero .picture { width:100%; max-width:100%; }
  .tree { flex-direction:column; flex-wrap:nowrap; align-items:center; }
  .tree .card { width:100%; max-width:300px; }
  .tree .arrow { transform:rotate(90deg); }
  .grid { grid-template-columns:repeat(auto-fill, minmax(150px, 1fr)); gap:8px; }
  .chart .wide { display:none; } .chart .narrow { display:block; }
}
"""
