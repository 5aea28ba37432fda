// The list of runs and batches, live: the server sends the whole list again whenever something in it changes.

import { clear, el, follow, imageUrl, isNumber, money, runBase, score, setText, text, validRunName } from "./dom.js";

const $ = (id) => document.getElementById(id);

// What a batch's line says: its ideas done of all, its best idea, and the other ideas' states.
function batchLine(run, best, budget) {
  const counts = run.counts && typeof run.counts === "object" ? run.counts : {};
  const others = ["running", "stopped", "failed", "not started"].filter((k) => Number.isInteger(counts[k]) && counts[k] > 0)
    .map((k) => `${counts[k]} ${k}`);
  return `${Number.isInteger(run.ideas_done) ? run.ideas_done : 0} of ${Number.isInteger(run.ideas) ? run.ideas : "?"} ideas done` +
    `${others.length ? ` (${others.join(", ")})` : ""} · best ${best && isNumber(best.total) ? `${score(best.total)} (idea ${Number(best.idea)})` : "–"}` +
    ` · spent ${money(run.cost_usd)}${budget}${run.simulated ? " (simulated)" : ""}`;
}

function runCard(run) {
  const name = text(run.name);
  if (!validRunName(name)) return null;
  const batch = run.kind === "batch";
  const href = runBase(name);
  const best = run.best && typeof run.best === "object" ? run.best : null;
  // a batch's best image is in its best idea's run folder, inside the batch folder
  const url = !best ? null : batch ? (validRunName(best.run) ? imageUrl(`${name}/${best.run}`, best.image) : null)
    : imageUrl(name, best.image);
  const budget = isNumber(run.max_cost_usd) ? ` of ${money(run.max_cost_usd)}` : "";
  const iterations = Number.isInteger(run.iterations) ? ` of ${run.iterations}` : "";
  const status = text(run.status) || "unknown";
  return el("article", { class: `run status-card-${status}`, "data-name": name, "data-kind": batch ? "batch" : "run" },
    el("a", { class: "thumb", href }, url ? el("img", { src: url, alt: `best image of ${name}`, loading: "lazy" })
      : el("span", { class: "thumb empty" }, "no image yet")),
    el("div", { class: "run-body" },
      el("p", {}, el("span", { class: `status status-${status}` }, status), " ",
        batch ? el("span", { class: "tag kind-batch" }, "batch") : null, batch ? " " : null,
        el("a", { class: "run-name", href }, name)),
      el("p", { class: "prompt clamp2" }, text(run.prompt)),
      el("p", { class: "muted" }, batch ? batchLine(run, best, budget)
        : `best ${best ? `${score(best.total)} (${text(best.id)})` : "–"} · spent ${money(run.cost_usd)}${budget}` +
        `${run.simulated ? " (simulated)" : ""} · ` +
        `${Number.isInteger(run.ranked) ? run.ranked : 0}${iterations} iterations ranked`),
      run.reason ? el("p", { class: "muted" }, text(run.reason)) : null));
}

function draw(data) {
  setText($("where"), `In ${text(data.runs_dir)}${data.problem ? `: ${text(data.problem)}` : ""}`);
  const node = clear($("runs"));
  const runs = Array.isArray(data.runs) ? data.runs : [];
  if (!runs.length) node.append(el("p", { class: "muted" }, "No runs yet. Start one with: beamsearch run --prompt \"your idea\""));
  for (const run of runs) {
    const item = run && typeof run === "object" ? runCard(run) : null;
    if (item) node.append(item);
  }
}

function connect() {
  follow("/events", $("conn"), {
    runs: (message) => {
      try {
        draw(JSON.parse(message.data));
      } catch {
        // a list that does not parse is not drawn; the next one will be
      }
    },
  });
}

connect();
