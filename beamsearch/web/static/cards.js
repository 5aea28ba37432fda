// A candidate's card: its image (a link to the full size), id, stage, retries, scores, and on demand
// its WHAT, HOW, prompt, critique and the judges' notes. Built with text nodes only.

import { el, imageUrl, isNumber, score, text } from "./dom.js";

const STAGE_WORDS = { critique: "critique of its parent", expand: "expanding", refine: "refining",
  combine: "combining", image: "painting", judge: "judging", done: "done", failed: "failed", skipped: "skipped: a repeat" };

function thumb(run, lane, reuse) {
  const url = imageUrl(run, lane.image);
  if (!url) {
    return el("div", { class: "thumb empty" }, STAGE_WORDS[lane.stage] || "waiting");
  }
  let img = reuse && reuse.getAttribute("src") === url ? reuse : null;
  if (!img) img = el("img", { src: url, alt: `image of ${lane.id}`, loading: "lazy" });
  return el("a", { class: "thumb", href: url, target: "_blank", rel: "noopener", title: "open the full size" }, img);
}

function list(items) {
  if (!Array.isArray(items) || items.length === 0) return "none";
  return el("ul", {}, items.filter((item) => typeof item === "string").map((item) => el("li", {}, item)));
}

function row(term, value) {
  if (value === null || value === undefined || value === "") return null;
  return [el("dt", {}, term), el("dd", {}, value)];
}

function checks(candidate, questions) {
  if (!candidate.checks || typeof candidate.checks !== "object") return null;
  const byId = new Map((questions || []).map((q) => [q.id, q]));
  return el("ul", { class: "checks" }, Object.entries(candidate.checks).map(([id, ok]) =>
    el("li", { class: ok === true ? "yes" : "no" }, `${ok === true ? "yes" : "no"}: `,
      byId.has(id) && typeof byId.get(id).question === "string" ? byId.get(id).question : id)));
}

function pairwiseLine(record) {
  if (!record) return null;
  return `won ${record.won}, lost ${record.lost}, tied ${record.tied} (compared both ways)`;
}

function details(lane, extras) {
  const c = lane.candidate || {};
  const rows = [
    row("WHAT", text(c.what)), row("HOW", text(c.how)), row("Prompt", text(c.prompt)),
    row("Revised by the image model", text(c.revised_prompt)),
    row("Critique", text(c.critique) || extras.critique || ""),
    row("Alignment notes", text(c.alignment_notes)), row("Found", c.found ? list(c.found) : null),
    row("Missing", c.missing ? list(c.missing) : null), row("Aesthetic notes", text(c.aesthetic_notes)),
    row("Weak", c.weak ? list(c.weak) : null), row("Checklist", checks(c, extras.questions)),
    row("Pairwise", pairwiseLine(extras.pairwise)),
    row("Error", lane.failed ? text(lane.failed.error) : lane.lastError || ""),
  ];
  return el("details", { class: "more-details", open: extras.open }, el("summary", {}, "details"),
    el("dl", { class: "kv" }, rows.filter(Boolean)));
}

function retryLine(lane) {
  const retries = Math.max(lane.retries, lane.liveRetries);
  if (lane.retrying) return el("p", { class: "retrying" }, `retrying (attempt ${Number(lane.retrying.attempt) + 1 || "?"}): ${lane.retrying.error}`);
  return retries ? el("p", { class: "muted" }, `${retries} ${retries === 1 ? "retry" : "retries"}`) : null;
}

// extras: {rank, survivor, kept, best, pairwise, critique, questions, open, reuseImg, what, how}
export function card(run, lane, extras = {}) {
  const c = lane.candidate;
  const classes = ["card", lane.failed ? (lane.skipped ? "skipped" : "failed") : "", extras.survivor ? "survivor" : "", extras.best ? "best" : "",
    extras.kept ? "kept" : ""].filter(Boolean).join(" ");
  const badges = [
    extras.rank ? el("span", { class: "rank" }, `#${extras.rank}`) : null,
    el("span", { class: `stage stage-${lane.stage || "waiting"}` }, STAGE_WORDS[lane.stage] || "waiting"),
    extras.survivor ? el("span", { class: "tag survivor-tag" }, "survivor") : null,
    extras.kept ? el("span", { class: "tag kept-tag" }, `kept from i${lane.iteration}`) : null,
    extras.best ? el("span", { class: "tag best-tag" }, "best") : null,
  ];
  const scores = c && isNumber(c.total)
    ? el("p", { class: "scores" }, el("strong", {}, score(c.total)), ` total · ${score(c.alignment)} alignment · `,
      `${score(c.aesthetic)} aesthetic`)
    : null;
  return el("article", { class: classes, "data-id": lane.id },
    thumb(run, lane, extras.reuseImg),
    el("div", { class: "card-head" }, el("span", { class: "id" }, lane.id), badges),
    scores,
    extras.pairwise ? el("p", { class: "pairwise" }, `pairwise: ${pairwiseLine(extras.pairwise)}`) : null,
    lane.parent ? el("p", { class: "muted" }, `from ${lane.parent}`) : null,
    retryLine(lane),
    lane.failed ? el("p", { class: "error" }, text(lane.failed.error)) : null,
    extras.what ? el("p", { class: "what clamp2", title: "WHAT" }, extras.what) : null,
    extras.how ? el("p", { class: "how clamp2", title: "HOW" }, extras.how) : null,
    c || lane.failed || lane.lastError || extras.critique ? details(lane, extras) : null,
  );
}

// A kept parent ranked again, or a lane the page has no events of: a card from the ranking alone.
export function placeholder(id, total) {
  return { id, iteration: Number((/^i(\d+)/.exec(id) || [0, 0])[1]), index: 0, parent: null, stage: "done",
    image: null, retries: 0, liveRetries: 0, retrying: null, lastError: null,
    candidate: { id, total }, failed: null, version: 0 };
}

// Wins, losses and ties of each candidate in a ranking's pairwise comparisons.
export function pairwiseRecords(ranking) {
  const records = new Map();
  const comparisons = ranking && ranking.pairwise && Array.isArray(ranking.pairwise.comparisons) ? ranking.pairwise.comparisons : [];
  const of = (id) => {
    if (!records.has(id)) records.set(id, { won: 0, lost: 0, tied: 0 });
    return records.get(id);
  };
  for (const c of comparisons) {
    if (!c || !Array.isArray(c.pair) || c.pair.length !== 2 || !("agree" in c)) continue;
    if (c.agree === true && typeof c.winner === "string" && typeof c.loser === "string") {
      of(c.winner).won += 1;
      of(c.loser).lost += 1;
    } else {
      of(c.pair[0]).tied += 1;
      of(c.pair[1]).tied += 1;
    }
  }
  return records;
}
