"""The report's cards and iteration grids: every candidate as the ranking saw it.

An iteration's grid is its whole ranking pool in the order the ranking decided, so ranks run 1, 2, 3...
without gaps: its own children and the parents kept from earlier iterations (marked as such, linked to
their own card). With pairwise ranking the order follows the comparisons, not the scores, so each
finalist's card says what decided its place (Copeland points, wins, ties and losses). Images link to the
full-size file; long text is clamped with a <details> that opens it whole (no script needed).
"""

from __future__ import annotations

import html
import json
from typing import Any

from beamsearch.schedule import dimension_of, dimensions, refined_of

CLAMP = 280  # characters of a text shown before "show all"
# Candidate fields the cards show in their own places; anything else a judge records is listed generically.
SHOWN_FIELDS = {
    "id", "iteration", "index", "parent", "what", "how", "prompt", "image", "revised_prompt", "rephrases",
    "alignment", "aesthetic", "total", "alignment_notes", "aesthetic_notes", "found", "missing", "weak",
    "critique", "status", "error", "ts",
}


def esc(value: Any) -> str:
    """Text for HTML content or a quoted attribute: everything escaped, quotes included."""
    return html.escape("" if value is None else str(value), quote=True)


def clamp(value: Any, limit: int = CLAMP, quotes: tuple[str, str] = ("", "")) -> str:
    """Escaped text (between `quotes`); beyond `limit` characters, its beginning with a "show all" that
    opens the whole."""
    text = "" if value is None else str(value)
    before, after = quotes
    if len(text) <= limit:
        return esc(before + text + after)
    cut = text[:limit].rsplit(" ", 1)[0] if " " in text[:limit] else text[:limit]
    return (f'<details class="clamp"><summary><span class="clip">{esc(before + cut)}… </span>'
            f'<span class="more">show all {len(text)} characters</span></summary>'
            f'<span class="whole">{esc(before + text + after)}</span></details>')


def score(value: Any, digits: int = 1) -> str:
    return "–" if not isinstance(value, int | float) else f"{value:.{digits}f}"


def picture(src: str | None, alt: str, missing: str) -> str:
    """An image that opens the full-size file, or a placeholder saying why there is none."""
    if not src:
        return f'<div class="noimg">{esc(missing)}</div>'
    return f'<a class="full" href="{src}" title="open the full-size image"><img src="{src}" alt="{esc(alt)}" loading="lazy"></a>'


def _paragraph(label: str, value: Any) -> str:
    if value in (None, "", []):
        return ""
    if isinstance(value, list):
        value = "; ".join(str(v) for v in value)
    return f"<p><b>{esc(label)}</b> {clamp(value, 600)}</p>"


def details(c: dict[str, Any]) -> str:
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


def decided_by(result: dict[str, Any] | None, pairwise: bool) -> str:
    """What put a candidate where it is in a pairwise ranking (nothing for a ranking by scores)."""
    if not pairwise:
        return ""
    if result is None:
        return '<div class="decided">not a finalist: placed by its score</div>'

    def count(n: int, word: str) -> str:
        return f"{n} {word}{'' if n == 1 else ('es' if word.endswith('s') else 's')}"

    implied = [count(result.get(key, 0), word) for key, word in (("implied_wins", "win"), ("implied_losses", "loss"))
               if result.get(key, 0)]
    tail = f", and {' and '.join(implied)} implied by transitivity" if implied else ""
    return (f'<div class="decided">pairwise: <b>{score(result.get("copeland"))} Copeland points</b> · '
            f'{count(result.get("wins", 0), "win")}, {count(result.get("ties", 0), "tie")}, '
            f'{count(result.get("losses", 0), "loss")}{tail}</div>')


def card(c: dict[str, Any], src: str | None, *, survivor: bool = False, best: bool = False, rank: int | None = None,
         change: str | None = None, kept_from: int | None = None, ranked_total: float | None = None,
         decided: str = "", anchor: bool = True) -> str:
    """One candidate. `kept_from`: a parent kept from that iteration (its own card is elsewhere, linked);
    `ranked_total`: the score the ranking used, when it differs from the candidate's own."""
    failed = c.get("status") == "failed"
    classes = (["card"] + (["best"] if best else []) + (["survivor"] if survivor and not best else [])
               + (["kept"] if kept_from is not None else []) + (["failed"] if failed else []))
    cid = esc(c.get("id"))
    badges = "".join([
        '<span class="badge best">best</span>' if best else "",
        '<span class="badge survivor">survivor</span>' if survivor else "",
        f'<span class="badge kept">kept parent from iteration {kept_from}</span>' if kept_from is not None else "",
        '<span class="badge failed">failed</span>' if failed else "",
        f'<span class="badge change">{esc(change)}</span>' if change else "",
    ])
    rank_text = f'<span class="muted">#{rank}</span> ' if rank is not None else ""
    name = f'<a href="#{cid}" class="id">{cid}</a>' if kept_from is not None else f'<span class="id">{cid}</span>'
    parent = f'<div class="scores">from {esc(c.get("parent"))}</div>' if c.get("parent") else ""
    shown_total = ranked_total if isinstance(ranked_total, int | float) else c.get("total")
    scores = "" if failed else (f'<div class="scores">alignment {score(c.get("alignment"), 0)} · '
                                f'aesthetic {score(c.get("aesthetic"))}'
                                + (f' · first scored {score(c.get("total"))}' if shown_total != c.get("total") else "")
                                + "</div>")
    total = "" if failed else f'<span class="total">{score(shown_total)}</span>'
    ident = f' id="{cid}"' if anchor and kept_from is None else ""
    image = picture(src, f"candidate {c.get('id')}", c.get("error") or "no image")
    return (f'<div class="{" ".join(classes)}"{ident}>{image}'
            f'<div class="head"><span>{rank_text}{name}</span>{total}</div>'
            f'{scores}{decided}{parent}<div>{badges}</div>{details(c)}</div>')


def _stats(k: int, it: dict[str, Any], scored: int, failed: int, kept: list[str], pairwise: bool) -> str:
    stats = f"{scored} children scored, {failed} failed"
    if not it:
        return stats + " · not ranked yet"
    stats += (f" · best child {score(it.get('children_best'))} · median {score(it.get('children_median'))}"
              f" · survivors {esc(', '.join(it.get('survivors', [])))}")
    if kept:
        stats += f" · ranked with the parents kept from earlier: {esc(', '.join(kept))}"
    if pairwise:
        figures = it.get("pairwise") or {}
        results = it.get("pairwise_results") or {}
        stats += (f" · order decided by pairwise comparison of the top {len(results)} (each pair judged in both "
                  f"orders; {esc(figures.get('pairs', '?'))} pairs, orders agreed on {esc(figures.get('orders_agreed', '?'))}),"
                  " the rest by score")
    return stats


def iteration_section(k: int, it: dict[str, Any], candidates: dict[str, dict[str, Any]],
                      failed: dict[str, dict[str, Any]], src_of: Any, best_id: str | None) -> str:
    """One iteration's grid: its whole ranking pool in ranked order, then unranked and failed lanes."""
    survivors = set(it.get("survivors", []))
    pool = [(cid, total) for cid, total in it.get("pool", [])]
    pooled = {cid for cid, _ in pool}
    pairwise = "pairwise_results" in it
    results = it.get("pairwise_results") or {}
    cards, kept = [], []
    for rank, (cid, total) in enumerate(pool, start=1):
        c = candidates.get(cid, {"id": cid})
        kept_from = c.get("iteration") if c.get("iteration") != k else None
        if kept_from is not None:
            kept.append(cid)
        cards.append(card(c, src_of(c), survivor=cid in survivors, best=cid == best_id, rank=rank, kept_from=kept_from,
                          ranked_total=total, decided=decided_by(results.get(cid), pairwise)))
    children = [c for c in candidates.values() if c.get("iteration") == k]
    rest = sorted((c for c in children if c["id"] not in pooled), key=lambda c: (-(c.get("total") or 0), c.get("index", 0)))
    cards += [card(c, src_of(c), best=c["id"] == best_id) for c in rest]
    lanes_failed = sorted((f for f in failed.values() if f.get("iteration") == k), key=lambda f: str(f.get("id")))
    cards += [card(f, src_of(f)) for f in lanes_failed]
    dimension = it.get("dimension") or dimension_of(k)
    title = "expansion of the idea" if dimension == "expand" else f"refining {dimension.upper()}"
    stats = _stats(k, it, len(children), len(lanes_failed), kept, pairwise)
    return (f'<section><h2>Iteration {k}: {esc(title)}</h2><p class="muted">{stats}</p>'
            f'<div class="grid">{"".join(cards)}</div></section>')


def family_tree(lineage: list[str], candidates: dict[str, dict[str, Any]], src_of: Any, best_id: str | None) -> str:
    """The best's ancestors, oldest first, with arrows between them (which turn down on a phone)."""
    tree_cards: list[str] = []
    for cid in lineage:
        c = candidates.get(cid, {"id": cid})
        k = c.get("iteration", 0)
        change = "expanded" if k == 0 else " and ".join(d.upper() for d in dimensions(refined_of(c))) + " refined"
        if tree_cards:
            tree_cards.append('<span class="arrow" aria-hidden="true">→</span>')
        tree_cards.append(card(c, src_of(c), best=cid == best_id, change=change, anchor=False))
    return f'<div class="tree">{"".join(tree_cards)}</div>' if tree_cards else '<p class="muted">No candidate yet.</p>'


def hero(best: dict[str, Any] | None, src: str | None) -> str:
    if not best:
        return '<p class="muted">No candidate was scored.</p>'
    rows = [("id", esc(best.get("id"))), ("total", score(best.get("total"))),
            ("alignment", f"{score(best.get('alignment'), 0)} / 100"), ("aesthetic", f"{score(best.get('aesthetic'))} / 10"),
            ("WHAT", clamp(best.get("what"))), ("HOW", clamp(best.get("how"))), ("prompt", clamp(best.get("prompt")))]
    facts = "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in rows)
    return (f'<div class="hero"><div class="picture">{picture(src, "the best image", "image missing")}</div>'
            f'<dl>{facts}</dl></div>')

