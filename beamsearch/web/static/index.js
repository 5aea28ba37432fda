// The list of runs, live: the server sends the whole list again whenever something in it changes.

import { clear, el, imageUrl, isNumber, money, score, setText, text, validRunName } from "./dom.js";

const $ = (id) => document.getElementById(id);

function runCard(run) {
  const name = text(run.name);
  if (!validRunName(name)) return null;
  const href = `/runs/${encodeURIComponent(name)}/`;
  const best = run.best && typeof run.best === "object" ? run.best : null;
  const url = best ? imageUrl(name, best.image) : null;
  const budget = isNumber(run.max_cost_usd) ? ` of ${money(run.max_cost_usd)}` : "";
  const iterations = Number.isInteger(run.iterations) ? ` of ${run.iterations}` : "";
  const status = text(run.status) || "unknown";
  return el("article", { class: `run status-card-${status}`, "data-name": name },
    el("a", { class: "thumb", href }, url ? el("img", { src: url, alt: `best image of ${name}`, loading: "lazy" })
      : el("span", { class: "thumb empty" }, "no image yet")),
    el("div", { class: "run-body" },
      el("p", {}, el("span", { class: `status status-${status}` }, status), " ",
        el("a", { class: "run-name", href }, name)),
      el("p", { class: "prompt clamp2" }, text(run.prompt)),
      el("p", { class: "muted" },
        `best ${best ? `${score(best.total)} (${text(best.id)})` : "–"} · spent ${money(run.cost_usd)}${budget}` +
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
  const conn = $("conn");
  const source = new EventSource("/events");
  source.addEventListener("open", () => {
    setText(conn, "live");
    conn.className = "conn live";
  });
  source.addEventListener("error", () => {
    setText(conn, source.readyState === EventSource.CLOSED ? "disconnected (reload to try again)" : "reconnecting…");
    conn.className = "conn lost";
  });
  source.addEventListener("runs", (message) => {
    try {
      draw(JSON.parse(message.data));
    } catch {
      // a list that does not parse is not drawn; the next one will be
    }
  });
}

connect();
