// One run, live: the page folds the run's event stream (the log from its first line, then live) and
// draws it. A reconnecting EventSource sends the last line id it saw, so the server resumes after it;
// the page also refuses any line it has already shown (and counts such a line, which should never come).

import { card } from "./cards.js";
import { RunState } from "./fold.js";
import { clear, duration, el, follow, imageUrl, isNumber, money, runBase, score, setText, text } from "./dom.js";
import { dimensionWords, drawChart, drawHistory, drawJudging, drawTree } from "./views.js";

const LOG_ROWS = 5000; // the event log panel keeps this many rows
const $ = (id) => document.getElementById(id);
// "NAME" for /runs/NAME/, "BATCH/IDEA" for an idea's run inside a batch folder (/runs/BATCH/IDEA/)
const name = ((/^\/runs\/([^/]+(?:\/[^/]+)?)\/$/.exec(location.pathname) || [null, ""])[1]).split("/")
  .map((part) => { try { return decodeURIComponent(part); } catch { return ""; } }).join("/");
const state = new RunState();
const page = { lastLine: 0, shown: 0, duplicates: 0, connections: 0, drawn: -1, laneCards: new Map(),
  historyKey: "", clockOffset: 0 };

function expose() {
  const data = document.body.dataset;
  data.connections = String(page.connections);
  data.events = String(page.shown);
  data.duplicates = String(page.duplicates);
  data.iteration = String(state.current());
  data.status = state.status().status;
}

function logRow(id, event) {
  const what = text(event.key) || text(event.id) || (Number.isInteger(event.iteration) ? `i${event.iteration}` : "");
  const extra = event.type === "run_finished" ? ` ${text(event.status)}: ${text(event.reason)}` : "";
  const row = el("li", { "data-line": id }, el("span", { class: "line-no" }, `#${id}`), ` ${text(event.type)} ${what}${extra}`);
  const log = $("log");
  log.append(row);
  while (log.childElementCount > LOG_ROWS) log.firstElementChild.remove();
  setText($("log-title"), `Event log (${page.shown} events)`);
}

function onLogged(message, kind) {
  const id = Number(message.lastEventId);
  if (!Number.isInteger(id) || id <= page.lastLine) {
    page.duplicates += 1; // a line already shown: never shown twice
    expose();
    return;
  }
  page.lastLine = id;
  let event;
  try {
    event = JSON.parse(message.data);
  } catch {
    return;
  }
  page.shown += 1;
  if (kind === "problem") {
    logRow(id, { type: "problem", key: text(event.problem) });
  } else if (event && typeof event === "object") {
    state.logged(event);
    logRow(id, event);
  }
  schedule();
}

function onLive(message) {
  try {
    const event = JSON.parse(message.data);
    if (event && typeof event === "object") state.live(event);
  } catch {
    return;
  }
  schedule();
}

function onMeta(message) {
  try {
    state.meta = JSON.parse(message.data);
  } catch {
    return;
  }
  if (isNumber(state.meta.now)) page.clockOffset = state.meta.now - Date.now() / 1000;
  state.version += 1;
  schedule();
}

let pending = false;
function schedule() {
  if (pending) return;
  pending = true;
  setTimeout(() => {
    pending = false;
    draw();
  }, 50);
}

function timeLeft() {
  const plan = state.meta && Array.isArray(state.meta.plan_seconds) ? state.meta.plan_seconds : null;
  if (!state.running()) return state.finished ? "none: the run has ended" : "–";
  if (!plan) return "unknown";
  const k = state.current();
  const start = state.startOf(k);
  const now = Date.now() / 1000 + page.clockOffset;
  const elapsed = isNumber(start) ? Math.max(0, now - start) : 0;
  let left = Math.max(0, (isNumber(plan[k]) ? plan[k] : 0) - elapsed);
  for (let i = k + 1; i < plan.length; i += 1) if (isNumber(plan[i])) left += plan[i];
  return `about ${duration(left)} (estimate)`;
}

function drawHeader(best) {
  const s = (state.meta && state.meta.settings) || {};
  const prompt = text(s.prompt) || name;
  setText($("prompt"), prompt);
  $("more").hidden = prompt.length < 240;
  document.title = `beamsearch: ${prompt.slice(0, 80)}`;
  const { status, reason } = state.status();
  clear($("status")).append(el("span", { class: `status status-${status}` }, status + (state.resumed ? " (resumed)" : "")));
  setText($("reason"), reason);
  const k = state.current();
  const total = state.total();
  setText($("iteration"), state.meta ? `${k + 1} of ${total || "?"}` : "–");
  setText($("dimension"), dimensionWords(state.dimension(k)));
  const budget = isNumber(s.max_cost_usd) ? ` of ${money(s.max_cost_usd)}` : " (no budget)";
  setText($("spent"), money(state.cost) + budget + (s.provider === "sim" ? ", simulated" : ""));
  const bestNode = clear($("best"));
  if (best) {
    const url = imageUrl(name, best.image);
    if (url) bestNode.append(el("img", { class: "mini", src: url, alt: `image of ${best.id}` }));
    bestNode.append(`${score(best.candidate.total)} (${best.id})`);
  } else {
    bestNode.append("–");
  }
  setText($("eta"), timeLeft());
  const notices = clear($("notices"));
  for (const notice of state.notices.slice(-5)) notices.append(el("li", {}, notice));
}

// The current iteration's lanes, one card each, updated in place so images do not flicker.
function drawLanes(best) {
  const k = state.current();
  const ranked = state.rankings.has(k);
  const total = state.total();
  setText($("now-title"), `${ranked ? "Last iteration" : "Now"}: iteration ${k + 1}${total ? ` of ${total}` : ""} ` +
    `(i${k}), ${dimensionWords(state.dimension(k))}`);
  const lanes = state.lanesOf(k);
  const node = $("lanes");
  const keep = new Set(lanes.map((l) => l.id));
  for (const [id, entry] of page.laneCards) {
    if (!keep.has(id)) {
      entry.node.remove();
      page.laneCards.delete(id);
    }
  }
  if (!lanes.length && !node.querySelector(".empty-note")) node.append(el("p", { class: "muted empty-note" }, "Starting…"));
  if (lanes.length) node.querySelectorAll(".empty-note").forEach((n) => n.remove());
  lanes.forEach((lane, i) => {
    const entry = page.laneCards.get(lane.id);
    const key = `${lane.version}/${best ? best.id : ""}`;
    if (entry && entry.key === key && node.children[i] === entry.node) return;
    const old = entry ? entry.node : null;
    const open = old ? Boolean(old.querySelector("details[open]")) : false;
    const fresh = card(name, lane, { best: best && best.id === lane.id, questions: state.checklist, open,
      critique: lane.parent ? state.critiques.get(`${k}/${lane.parent}`) : null,
      what: state.textOf(lane, "what"), how: state.textOf(lane, "how"),
      reuseImg: old ? old.querySelector("img") : null });
    if (old) old.replaceWith(fresh);
    if (node.children[i] !== fresh) node.insertBefore(fresh, node.children[i] || null);
    page.laneCards.set(lane.id, { node: fresh, key });
  });
}

function draw() {
  expose();
  if (state.version === page.drawn) {
    setText($("eta"), timeLeft());
    return;
  }
  page.drawn = state.version;
  const best = state.best();
  drawHeader(best);
  drawLanes(best);
  const lanesKey = [...state.lanes.values()].map((l) => l.version).join(",");
  const historyKey = `${[...state.rankings.keys()].join(",")}|${lanesKey}|${best ? best.id : ""}|${state.total()}`;
  if (historyKey !== page.historyKey) {
    page.historyKey = historyKey;
    drawHistory($("history"), name, state, best ? best.id : null);
    drawTree($("tree"), name, state, best);
    drawChart($("chart"), state);
  }
  drawJudging($("judging"), state);
  expose();
}

function connect() {
  follow(`${runBase(name)}events`, $("conn"), {
    message: (message) => onLogged(message, "log"),
    problem: (message) => onLogged(message, "problem"),
    live: onLive,
    meta: onMeta,
  }, () => {
    page.connections += 1;
    expose();
  });
}

function start() {
  $("more").addEventListener("click", () => {
    const expanded = $("prompt").classList.toggle("expanded");
    setText($("more"), expanded ? "show less" : "show the whole prompt");
  });
  if (!runBase(name)) {
    setText($("prompt"), "This is not the address of a run.");
    return;
  }
  const batch = name.includes("/") ? name.split("/")[0] : null;
  if (batch) { // an idea's run: a way back to its batch
    $("up").setAttribute("href", runBase(batch));
    setText($("up"), `batch ${batch}`);
    $("up").hidden = false;
  }
  setInterval(() => { if (state.running()) setText($("eta"), timeLeft()); }, 1000);
  draw();
  connect();
}

start();
