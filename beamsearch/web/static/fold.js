// The run as the page knows it, folded from its events one at a time: logged events (numbered lines
// of events.jsonl) and live progress (stages, failed attempts, iteration starts) when the run runs in
// the server's process. Only the fields README.md's "JSON events" table documents are read, and each
// is checked for its type: the log is untrusted. No DOM here.

import { isNumber, text } from "./dom.js";

const LANE_KEY = /^i(\d{1,6})\/c(\d{1,6})\/([a-z_]+)(?:\.[rv]\d+)?$/;
const PARENT_KEY = /^i(\d{1,6})\/p-([A-Za-z0-9_-]{1,64})\/([a-z_]+)(?:\.r\d+)?$/;
const ITERATION_KEY = /^i(\d{1,6})\//;
const STAGES = ["critique", "expand", "refine", "combine", "image", "judge", "done", "failed", "skipped"];
const AFTER_TASK = { expand_what: "expand", expand_how: "expand", refine_what: "combine", refine_how: "combine",
  combine: "image", rephrase: "image", image: "judge" };

function stageRank(stage) {
  const rank = STAGES.indexOf(stage);
  return rank < 0 ? -1 : rank;
}

export class RunState {
  constructor() {
    this.meta = null;
    this.lanes = new Map(); // candidate id -> lane
    this.rankings = new Map(); // iteration -> ranking event
    this.critiques = new Map(); // "k/parent id" -> critique text
    this.dimensions = new Map(); // iteration -> "expand" | "what" | "how"
    this.starts = new Map(); // iteration -> ts it started (live), for the time left
    this.checklist = null;
    this.cost = 0;
    this.seen = -1; // the highest iteration anything happened in
    this.sessions = 0;
    this.resumed = false;
    this.sessionStart = null;
    this.finished = null; // the last session's run_finished, if it logged one
    this.final = null; // the final check after the last ranking: the survivors judged again, the answer
    this.providers = null;
    this.notices = [];
    this.version = 0; // bumped by every change, so the view knows when to draw
  }

  lane(id, iteration, index, parent) {
    let lane = this.lanes.get(id);
    if (!lane) {
      lane = { id, iteration, index, parent: null, stage: null, image: null, what: null, how: null, retries: 0, liveRetries: 0,
        retrying: null, lastError: null, candidate: null, failed: null, version: 0 };
      this.lanes.set(id, lane);
    }
    if (typeof parent === "string") lane.parent = parent;
    this.note(iteration);
    return lane;
  }

  note(iteration) {
    if (Number.isInteger(iteration) && iteration > this.seen) this.seen = iteration;
  }

  touch(lane) {
    lane.version += 1;
    this.version += 1;
  }

  advance(lane, stage) {
    if (lane.candidate || lane.failed) return; // the log's final word stands
    if (stageRank(stage) > stageRank(lane.stage)) lane.stage = stage;
  }

  // --- logged events ------------------------------------------------------------------------------

  logged(event) {
    const handler = LOGGED[event.type];
    if (handler) handler.call(this, event);
    this.version += 1;
  }

  step(event) {
    if (isNumber(event.cost)) this.cost += event.cost;
    const key = text(event.key);
    if (key === "run/checklist" && event.result && Array.isArray(event.result.questions)) {
      this.checklist = event.result.questions.filter((q) => q && typeof q === "object");
      return;
    }
    const parent = PARENT_KEY.exec(key);
    if (parent) {
      this.note(Number(parent[1]));
      if (parent[3] === "critique" && event.result && typeof event.result.critique === "string") {
        this.critiques.set(`${parent[1]}/${parent[2]}`, event.result.critique);
      }
      return;
    }
    const match = LANE_KEY.exec(key);
    if (!match) {
      const iteration = ITERATION_KEY.exec(key);
      // a kept parent judged again (keep-...) belongs to an earlier iteration, and the final check's
      // judgings sit after the last one: neither says an iteration is going on
      if (iteration && !key.includes("/keep-")) this.note(Number(iteration[1]));
      return;
    }
    const [, k, index, task] = match;
    const lane = this.lane(`i${k}c${index}`, Number(k), Number(index));
    if (task.startsWith("refine_")) this.dimensions.set(Number(k), task.slice("refine_".length));
    if (Number.isInteger(event.attempts) && event.attempts > 1) lane.retries += event.attempts - 1;
    const result = event.result && typeof event.result === "object" ? event.result : {};
    if (task === "image" && typeof result.path === "string") lane.image = result.path;
    const dimension = /^(?:expand|refine)_(what|how)$/.exec(task);
    if (dimension && typeof result.text === "string") lane[dimension[1]] = result.text;
    lane.retrying = null;
    this.advance(lane, AFTER_TASK[task] || (task.startsWith("judge") ? "judge" : lane.stage));
    this.touch(lane);
  }

  stepFailed(event) {
    const match = LANE_KEY.exec(text(event.key));
    if (!match) return;
    const lane = this.lane(`i${match[1]}c${match[2]}`, Number(match[1]), Number(match[2]));
    lane.lastError = text(event.error);
    lane.retrying = null;
    this.touch(lane);
  }

  candidate(event) {
    if (typeof event.id !== "string" || !Number.isInteger(event.iteration)) return;
    const lane = this.lane(event.id, event.iteration, Number.isInteger(event.index) ? event.index : 0, event.parent);
    lane.candidate = event;
    lane.failed = null;
    lane.retrying = null;
    lane.stage = event.status === "done" || event.status === undefined ? "done" : text(event.status);
    if (typeof event.image === "string") lane.image = event.image;
    this.touch(lane);
  }

  laneFailed(event) {
    if (typeof event.id !== "string" || !Number.isInteger(event.iteration)) return;
    const index = Number((/c(\d+)$/.exec(event.id) || [0, 0])[1]);
    const lane = this.lane(event.id, event.iteration, index, event.parent);
    lane.failed = event;
    lane.candidate = null;
    lane.retrying = null;
    lane.stage = "failed";
    this.touch(lane);
  }

  laneSkipped(event) {
    if (typeof event.id !== "string" || !Number.isInteger(event.iteration)) return;
    const index = Number((/c(\d+)$/.exec(event.id) || [0, 0])[1]);
    const lane = this.lane(event.id, event.iteration, index, event.parent);
    lane.failed = { error: text(event.reason) || "every variant repeated a prompt already made" };
    lane.skipped = true;
    lane.candidate = null;
    lane.stage = "skipped";
    this.touch(lane);
  }

  ranking(event) {
    if (!Number.isInteger(event.iteration) || !Array.isArray(event.pool)) return;
    this.final = null;
    this.rankings.set(event.iteration, event);
    if (typeof event.dimension === "string") this.dimensions.set(event.iteration, event.dimension);
    this.note(event.iteration);
  }

  // --- live progress ------------------------------------------------------------------------------

  live(event) {
    const handler = LIVE[event.type];
    if (handler) handler.call(this, event);
    this.version += 1;
  }

  stage(event) {
    if (typeof event.id !== "string" || !Number.isInteger(event.iteration) || typeof event.stage !== "string") return;
    const index = Number((/c(\d+)$/.exec(event.id) || [0, 0])[1]);
    const lane = this.lane(event.id, event.iteration, index, event.parent);
    if (event.stage !== "done" && event.stage !== "failed") this.advance(lane, event.stage);
    lane.retrying = null;
    this.touch(lane);
  }

  attemptFailed(event) {
    const match = LANE_KEY.exec(text(event.key));
    if (!match) return;
    const lane = this.lane(`i${match[1]}c${match[2]}`, Number(match[1]), Number(match[2]));
    lane.liveRetries += 1;
    lane.retrying = event.final ? null : { attempt: event.attempt, error: text(event.error) };
    lane.lastError = text(event.error);
    this.touch(lane);
  }

  iterationStarted(event) {
    if (!Number.isInteger(event.iteration)) return;
    this.starts.set(event.iteration, isNumber(event.ts) ? event.ts : null);
    if (typeof event.dimension === "string") this.dimensions.set(event.iteration, event.dimension);
    this.note(event.iteration);
  }

  // --- what the view asks -------------------------------------------------------------------------

  total() {
    const iterations = this.meta && this.meta.settings ? this.meta.settings.iterations : null;
    return Number.isInteger(iterations) ? iterations : null;
  }

  running() {
    return Boolean(this.meta && this.meta.running) && this.finished === null;
  }

  status() {
    if (!this.meta) return { status: "connecting", reason: "" };
    if (this.running()) return { status: "running", reason: "" };
    if (this.finished) {
      const status = ["done", "stopped", "failed"].includes(this.finished.status) ? this.finished.status : "failed";
      return { status, reason: text(this.finished.reason) };
    }
    return { status: "stopped", reason: this.sessions ? "ended without a final record (killed or crashed); resumable" : "" };
  }

  // The iteration going on: the latest one anything happened in, or the next one once the latest is
  // ranked while the run goes on.
  current() {
    const total = this.total();
    if (this.seen < 0) return 0;
    if (this.rankings.has(this.seen) && this.running() && (total === null || this.seen + 1 < total)) return this.seen + 1;
    return this.seen;
  }

  dimension(k) {
    if (this.dimensions.has(k)) return this.dimensions.get(k);
    return k === 0 ? "expand" : k % 2 === 1 ? "what" : "how";
  }

  // When iteration k started: its live start, else its predecessor's ranking (or this session's start).
  startOf(k) {
    if (isNumber(this.starts.get(k))) return this.starts.get(k);
    const before = this.rankings.get(k - 1);
    const ranked = before && isNumber(before.ts) ? before.ts : null;
    if (ranked !== null && this.sessionStart !== null) return Math.max(ranked, this.sessionStart);
    return ranked !== null ? ranked : this.sessionStart;
  }

  done() {
    return [...this.lanes.values()].filter((l) => l.candidate && isNumber(l.candidate.total));
  }

  best() {
    const final = this.final && typeof this.final.best === "string" ? this.lanes.get(this.final.best) : null;
    if (final && final.candidate) return final;
    const ranked = [...this.rankings.keys()].sort((a, b) => b - a);
    for (const k of ranked) {
      const chosen = this.rankings.get(k).best;
      if (typeof chosen === "string" && this.lanes.get(chosen) && this.lanes.get(chosen).candidate) return this.lanes.get(chosen);
      break; // only the last ranking's choice counts, as in summary.json
    }
    let best = null;
    for (const lane of this.done()) {
      const c = lane.candidate;
      if (!best || c.total > best.candidate.total ||
          (c.total === best.candidate.total && (lane.iteration < best.iteration ||
            (lane.iteration === best.iteration && lane.index < best.index)))) best = lane;
    }
    return best;
  }

  lineage(lane) {
    const chain = [];
    const seen = new Set();
    while (lane && !seen.has(lane.id)) {
      chain.unshift(lane);
      seen.add(lane.id);
      lane = lane.parent ? this.lanes.get(lane.parent) : null;
    }
    return chain;
  }

  // A lane's WHAT or HOW as soon as it is known: its candidate's, its own step's, else its parent's
  // (a child inherits the dimension that is not refined).
  textOf(lane, field) {
    if (lane.candidate && typeof lane.candidate[field] === "string") return lane.candidate[field];
    if (typeof lane[field] === "string") return lane[field];
    const parent = lane.parent ? this.lanes.get(lane.parent) : null;
    return parent && parent.candidate && typeof parent.candidate[field] === "string" ? parent.candidate[field] : "";
  }

  lanesOf(k) {
    return [...this.lanes.values()].filter((l) => l.iteration === k).sort((a, b) => a.index - b.index);
  }
}

const LOGGED = {
  run_started(event) {
    this.sessions += 1;
    this.finished = null;
    this.resumed = Boolean(event.resumed);
    this.sessionStart = isNumber(event.ts) ? event.ts : null;
    if (event.providers && typeof event.providers === "object") this.providers = event.providers;
  },
  step(event) { this.step(event); },
  step_failed(event) { this.stepFailed(event); },
  candidate(event) { this.candidate(event); },
  lane_failed(event) { this.laneFailed(event); },
  ranking(event) { this.ranking(event); },
  lane_skipped(event) { this.laneSkipped(event); },
  final_check(event) { if (typeof event.best === "string") this.final = event; },
  run_finished(event) { this.finished = event; },
};

const LIVE = {
  stage(event) { this.stage(event); },
  attempt_failed(event) { this.attemptFailed(event); },
  iteration_started(event) { this.iterationStarted(event); },
  warning(event) { if (typeof event.message === "string") this.notices.push(event.message); },
};
