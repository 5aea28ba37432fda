// The parts of the run page drawn from the whole state: ranked iterations, the family tree of the
// best, the score chart and the judging figures.

import { card, pairwiseRecords, placeholder } from "./cards.js";
import { clear, el, imageUrl, isNumber, plural, score, svg, text } from "./dom.js";

const DIMENSION_WORDS = { expand: "expansion", what: "WHAT refined", how: "HOW refined", both: "WHAT and HOW refined" };

export function dimensionWords(d) {
  return DIMENSION_WORDS[d] || text(d);
}

function median(values) {
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

// One ranked iteration: its whole pool in ranked order (kept parents marked), then its failed lanes.
function iterationGrid(run, state, k, bestId) {
  const ranking = state.rankings.get(k);
  const survivors = new Set(Array.isArray(ranking.survivors) ? ranking.survivors : []);
  const records = pairwiseRecords(ranking);
  const cards = [];
  ranking.pool.forEach((entry, i) => {
    if (!Array.isArray(entry) || typeof entry[0] !== "string") return;
    const lane = state.lanes.get(entry[0]) || placeholder(entry[0], entry[1]);
    cards.push(card(run, lane, { rank: i + 1, survivor: survivors.has(lane.id), kept: lane.iteration !== k,
      best: lane.id === bestId, pairwise: records.get(lane.id), questions: state.checklist,
      critique: lane.parent ? state.critiques.get(`${k}/${lane.parent}`) : null,
      what: state.textOf(lane, "what"), how: state.textOf(lane, "how") }));
  });
  for (const id of Array.isArray(ranking.failed) ? ranking.failed : []) {
    const lane = state.lanes.get(id);
    if (lane) cards.push(card(run, lane, { questions: state.checklist, what: state.textOf(lane, "what"), how: state.textOf(lane, "how") }));
  }
  const total = state.total();
  const heading = `Iteration ${k + 1}${total ? ` of ${total}` : ""} (i${k}): ${dimensionWords(state.dimension(k))}`;
  const survivorsLine = `${plural(survivors.size, "survivor")}: ${[...survivors].join(", ") || "none"}`;
  const pairwise = ranking.pairwise ? " · order decided by pairwise comparison" : "";
  return el("section", { class: "iteration", "data-iteration": k },
    el("h3", {}, heading), el("p", { class: "muted" }, survivorsLine + pairwise),
    el("div", { class: "grid" }, cards));
}

export function drawHistory(node, run, state, bestId) {
  const ks = [...state.rankings.keys()].sort((a, b) => b - a);
  clear(node);
  if (!ks.length) node.append(el("p", { class: "muted" }, "No iteration is ranked yet."));
  for (const k of ks) node.append(iterationGrid(run, state, k, bestId));
}

export function drawTree(node, run, state, best) {
  clear(node);
  if (!best) {
    node.append(el("li", { class: "muted" }, "No candidate is scored yet."));
    return;
  }
  const chain = state.lineage(best);
  chain.forEach((lane, i) => {
    const c = lane.candidate || {};
    const url = imageUrl(run, lane.image);
    // what this candidate's refinement changed, as it was logged (older logs: the iteration's alternation)
    const refined = typeof c.refined === "string" ? c.refined : state.dimension(lane.iteration);
    const changed = i === 0 ? "expanded from the idea" : dimensionWords(refined);
    node.append(el("li", { class: "tree-step" },
      url ? el("a", { href: url, target: "_blank", rel: "noopener" }, el("img", { src: url, alt: `image of ${lane.id}` })) : null,
      el("p", {}, el("strong", {}, lane.id), ` · ${score(c.total)}`),
      el("p", { class: "muted" }, changed),
      el("p", { class: "clamp2" }, text(i > 0 && refined === "how" ? c.how : c.what))));
  });
}

// Best ranked first, the children's best and their median, per ranked iteration, on a 0-100 scale.
export function drawChart(node, state) {
  clear(node);
  const ks = [...state.rankings.keys()].sort((a, b) => a - b);
  if (!ks.length) {
    node.append(el("p", { class: "muted" }, "The chart grows at each ranking."));
    return;
  }
  const total = Math.max(state.total() || 0, ks[ks.length - 1] + 1, 2);
  const W = 600, H = 240, L = 40, R = 12, T = 12, B = 30;
  const x = (k) => L + (k / (total - 1)) * (W - L - R);
  const y = (v) => T + (1 - v / 100) * (H - T - B);
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "scores per iteration", class: "chart-svg" });
  for (const v of [0, 25, 50, 75, 100]) {
    chart.append(svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid-line" }));
    chart.append(svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end", class: "axis" }, v));
  }
  for (let k = 0; k < total; k += 1) chart.append(svg("text", { x: x(k), y: H - 8, "text-anchor": "middle", class: "axis" }, `i${k}`));
  const series = { "s-first": [], "s-top": [], "s-median": [] };
  for (const k of ks) {
    const ranking = state.rankings.get(k);
    const first = ranking.pool[0];
    if (Array.isArray(first) && isNumber(first[1])) series["s-first"].push([k, first[1]]);
    const totals = state.lanesOf(k).filter((l) => l.candidate && isNumber(l.candidate.total)).map((l) => l.candidate.total);
    if (totals.length) {
      series["s-top"].push([k, Math.max(...totals)]);
      series["s-median"].push([k, median(totals)]);
    }
  }
  for (const [name, points] of Object.entries(series)) {
    if (!points.length) continue;
    chart.append(svg("polyline", { points: points.map(([k, v]) => `${x(k)},${y(v)}`).join(" "), class: `series ${name}` }));
    for (const [k, v] of points) chart.append(svg("circle", { cx: x(k), cy: y(v), r: 4, class: `dot ${name}` }));
  }
  node.append(chart, el("p", { class: "legend" },
    el("span", { class: "key s-first" }, "ranked first (best so far)"), el("span", { class: "key s-top" }, "best child"),
    el("span", { class: "key s-median" }, "median child")));
}

function checklistTable(state) {
  const done = state.done().map((l) => l.candidate).filter((c) => c.checks && typeof c.checks === "object");
  const rows = state.checklist.map((q) => {
    const answers = done.map((c) => c.checks[q.id]).filter((a) => typeof a === "boolean");
    const yes = answers.filter(Boolean).length;
    return el("tr", {}, el("td", {}, text(q.id)), el("td", { class: "question" }, text(q.question)),
      el("td", {}, isNumber(q.weight) ? q.weight.toFixed(2) : "–"),
      el("td", {}, Array.isArray(q.depends_on) ? q.depends_on.filter((d) => typeof d === "string").join(", ") : ""),
      el("td", {}, answers.length ? `${yes} of ${answers.length}` : "–"));
  });
  return el("table", { class: "checklist" },
    el("thead", {}, el("tr", {}, ["id", "question", "weight", "needs", "answered yes"].map((h) => el("th", {}, h)))),
    el("tbody", {}, rows));
}

function pairwiseLines(state) {
  const lines = [];
  for (const k of [...state.rankings.keys()].sort((a, b) => a - b)) {
    const record = state.rankings.get(k).pairwise;
    if (!record || !Array.isArray(record.comparisons)) continue;
    const verdicts = record.comparisons.filter((c) => c && "agree" in c);
    const agreed = verdicts.filter((c) => c.agree === true).length;
    const skipped = Array.isArray(record.skipped) ? record.skipped.length : 0;
    lines.push(el("li", {}, `i${k}: ${plural(verdicts.length, "pair")} compared in both orders, ${agreed} agreed` +
      (skipped ? `, ${skipped} implied by transitivity` : "")));
  }
  return lines;
}

function spreadLine(state) {
  const spreads = { alignment: [], aesthetic: [] };
  for (const lane of state.done()) {
    const spread = lane.candidate.judge_spread;
    if (!spread || typeof spread !== "object") continue;
    for (const judge of Object.keys(spreads)) if (isNumber(spread[judge])) spreads[judge].push(spread[judge]);
  }
  const parts = Object.entries(spreads).filter(([, v]) => v.length)
    .map(([judge, v]) => `${judge} ${(v.reduce((a, b) => a + b, 0) / v.length).toFixed(2)} on average (most ${Math.max(...v).toFixed(2)})`);
  return parts.length ? el("p", {}, `Spread of repeated judging: ${parts.join("; ")}.`) : null;
}

export function drawJudging(node, state) {
  clear(node);
  const s = (state.meta && state.meta.settings) || {};
  node.append(el("p", {}, `Alignment: ${text(s.alignment) || "rating"} · ranking: ${text(s.ranking) || "scores"} · ` +
    `${Number.isInteger(s.judge_samples) ? s.judge_samples : 1} answer(s) per judge and image`));
  if (state.checklist && state.checklist.length) node.append(el("h3", {}, "Checklist"), checklistTable(state));
  const pairs = pairwiseLines(state);
  if (pairs.length) node.append(el("h3", {}, "Pairwise ranking"), el("ul", {}, pairs));
  const spread = spreadLine(state);
  if (spread) node.append(spread);
}
