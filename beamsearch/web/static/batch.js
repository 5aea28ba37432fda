// One batch, live: the page folds the batch's own log (batch.jsonl: the log from its first line, then
// live, ids are line numbers, as a run page folds events.jsonl) into one card per idea of the meta's list.
// The fold is batch_events.BatchView's: an idea's last idea_started makes it started (running while the
// batch runs, else stopped: killed), its idea_finished says how it ended. Every field is checked for its
// type (the log is untrusted), every text goes in as text, links only to checked folder names.

import { clear, el, follow, imageUrl, isNumber, money, plural, runBase, score, setText, text, validRunName } from "./dom.js";

const $ = (id) => document.getElementById(id);
const name = (() => {
  try {
    return decodeURIComponent((/^\/runs\/([^/]+)\/$/.exec(location.pathname) || [null, ""])[1]);
  } catch {
    return "";
  }
})();
const state = { meta: null, ideas: new Map(), finished: null, sessions: 0, version: 0 };
const page = { lastLine: 0, shown: 0, problems: 0, duplicates: 0, connections: 0, drawn: -1, cards: new Map() };

function idea(number) {
  let entry = state.ideas.get(number);
  if (!entry) {
    entry = { number, run: null, status: "not started", reason: "", finished: null, resumed: false };
    state.ideas.set(number, entry);
  }
  return entry;
}

const FOLD = {
  batch_started() {
    state.sessions += 1;
    state.finished = null;
  },
  idea_started(event) {
    const entry = idea(event.idea);
    Object.assign(entry, { run: text(event.run) || null, status: "started", reason: "", finished: null,
      resumed: event.resumed === true });
  },
  idea_finished(event) {
    const entry = idea(event.idea);
    if (typeof event.run === "string") entry.run = event.run;
    Object.assign(entry, { status: text(event.status) || "failed", reason: text(event.reason), finished: event });
  },
  batch_finished(event) {
    state.finished = event;
  },
};

function fold(event) {
  const handler = FOLD[event.type];
  if (!handler || (event.type.startsWith("idea_") && !Number.isInteger(event.idea))) return;
  handler(event);
  state.version += 1;
}

function status(entry) {
  if (entry.status !== "started") return entry.status;
  return state.meta && state.meta.running ? "running" : "stopped";
}

function batchStatus() {
  if (state.meta && state.meta.running) return "running";
  if (state.finished) return text(state.finished.status) || "stopped";
  return state.sessions ? "stopped" : "not started";
}

function ideaCard(number, prompt, entry) {
  const shown = status(entry);
  const f = entry.finished && typeof entry.finished === "object" ? entry.finished : {};
  const run = entry.run && validRunName(entry.run) ? `${name}/${entry.run}` : null;
  const href = run ? runBase(run) : null;
  const url = run ? imageUrl(run, f.best_image) : null;
  const picture = url ? el("img", { src: url, alt: `best image of idea ${number}`, loading: "lazy" }) : shown;
  const thumb = el(href ? "a" : "div", { class: url ? "thumb" : "thumb empty", href }, picture);
  return el("article", { class: `card idea idea-${shown.replace(/ /g, "-")}`, "data-idea": number, "data-status": shown },
    thumb,
    el("div", { class: "card-head" }, el("span", { class: "id" }, `idea ${number}`),
      el("span", { class: `status status-${shown.replace(/ /g, "-")}` }, shown + (entry.resumed ? " (resumed)" : ""))),
    el("p", { class: "scores" }, isNumber(f.best_total) ? el("strong", {}, score(f.best_total)) : "–",
      ` · ${isNumber(f.cost_usd) ? money(f.cost_usd) : "–"}`),
    el("p", { class: "prompt clamp2", title: prompt }, prompt),
    entry.reason && shown !== "done" ? el("p", { class: "error" }, entry.reason) : null,
    href ? el("p", {}, el("a", { href }, shown === "running" ? "watch it live" : "its run")) : null);
}

// The ideas in file order (the meta's list), then any the log names that the list does not hold.
function ideasInOrder() {
  const listed = state.meta && Array.isArray(state.meta.ideas) ? state.meta.ideas : [];
  const out = listed.filter((i) => i && Number.isInteger(i.idea)).map((i) => [i.idea, text(i.prompt)]);
  const known = new Set(out.map(([n]) => n));
  for (const n of [...state.ideas.keys()].sort((a, b) => a - b)) if (!known.has(n)) out.push([n, "(not in batch.yaml)"]);
  return out;
}

function drawHeader(ideas) {
  const meta = state.meta || {};
  const source = text(meta.source);
  setText($("title"), `Batch of ${plural(ideas.length, "idea")}${source ? ` from ${source}` : ""}`);
  document.title = `beamsearch: batch ${name}`;
  const shown = batchStatus();
  clear($("status")).append(el("span", { class: `status status-${shown.replace(/ /g, "-")}` }, shown));
  const entries = [...state.ideas.values()];
  setText($("done"), `${entries.filter((e) => e.status === "done").length} of ${ideas.length}`);
  const spent = entries.reduce((sum, e) => sum + (e.finished && isNumber(e.finished.cost_usd) ? e.finished.cost_usd : 0), 0);
  const budget = isNumber(meta.max_cost_usd) ? ` of ${money(meta.max_cost_usd)}` : "";
  setText($("spent"), money(spent) + budget + (meta.simulated ? ", simulated" : ""));
  const best = entries.filter((e) => e.finished && isNumber(e.finished.best_total))
    .sort((a, b) => b.finished.best_total - a.finished.best_total)[0];
  setText($("best"), best ? `${score(best.finished.best_total)} (idea ${best.number})` : "–");
  const reason = text(meta.problem) || (state.finished ? text(state.finished.reason) : "");
  setText($("reason"), reason + (page.problems ? ` (${plural(page.problems, "line")} of the log not understood)` : ""));
}

// One card per idea, each rebuilt only when what it shows changed.
function drawIdeas(ideas) {
  const node = $("ideas");
  if (!ideas.length && !node.childElementCount) node.append(el("p", { class: "muted" }, "No ideas yet."));
  ideas.forEach(([number, prompt], i) => {
    const entry = state.ideas.get(number) || { number, run: null, status: "not started", reason: "", finished: null };
    const f = entry.finished || {};
    const key = JSON.stringify([prompt, status(entry), entry.run, entry.reason, entry.resumed, f.best_total, f.best_image, f.cost_usd]);
    const known = page.cards.get(number);
    if (known && known.key === key && node.children[i] === known.node) return;
    const fresh = ideaCard(number, prompt, entry);
    if (known) known.node.replaceWith(fresh);
    if (node.children[i] !== fresh) node.insertBefore(fresh, node.children[i] || null);
    page.cards.set(number, { node: fresh, key });
  });
  if (ideas.length) node.querySelectorAll("p.muted").forEach((n) => n.remove());
}

function draw() {
  if (state.version !== page.drawn) {
    page.drawn = state.version;
    const ideas = ideasInOrder();
    drawHeader(ideas);
    drawIdeas(ideas);
  }
  const data = document.body.dataset;
  Object.assign(data, { connections: String(page.connections), events: String(page.shown),
    duplicates: String(page.duplicates), status: batchStatus(), cards: String(page.cards.size) });
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

function onLine(message, kind) {
  const id = Number(message.lastEventId);
  if (!Number.isInteger(id) || id <= page.lastLine) {
    page.duplicates += 1; // a line already shown: never folded twice
    return;
  }
  page.lastLine = id;
  page.shown += 1;
  try {
    const event = JSON.parse(message.data);
    if (kind === "problem") page.problems += 1;
    else if (event && typeof event === "object" && typeof event.type === "string") fold(event);
  } catch {
    return;
  }
  state.version += 1;
  schedule();
}

function onMeta(message) {
  try {
    state.meta = JSON.parse(message.data);
  } catch {
    return;
  }
  state.version += 1;
  schedule();
}

function connect() {
  follow(`${runBase(name)}events`, $("conn"), {
    message: (message) => onLine(message, "log"),
    problem: (message) => onLine(message, "problem"),
    meta: onMeta,
  }, () => {
    page.connections += 1;
  });
}

if (runBase(name)) {
  draw();
  connect();
} else {
  setText($("title"), "This is not the address of a batch.");
}
