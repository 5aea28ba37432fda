"""The report tells the truth (issue 15, item 2): ranks follow what decided the order (pairwise results
on the cards), every pool shown whole with kept parents marked (no gaps in the ranks), images open at
full size, phone width works, long prompts are clamped, the checklist reads left-aligned, and report.html
exists mid-run, rewritten at every ranking by a worker thread."""

from __future__ import annotations

import asyncio
import re
import threading
from html.parser import HTMLParser
from pathlib import Path

import pytest
from simhelp import sim_settings

from beamsearch import livereport
from beamsearch.app import start_run
from beamsearch.compose import Pieces
from beamsearch.report import render_report
from beamsearch.report_style import CSS
from beamsearch.runs import summarize


class Page(HTMLParser):
    """The cards of each iteration section, in page order, and every link and image."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: list[list[dict]] = []
        self.links: list[tuple[str, str | None]] = []  # (href, src of the image inside, if any)
        self.svgs: list[dict] = []
        self._card: dict | None = None
        self._depth = 0
        self._text: list[str] = []
        self._href: str | None = None

    def handle_starttag(self, tag, attrs) -> None:
        attrs = dict(attrs)
        if tag == "section":
            self.sections.append([])
        if tag == "svg":
            self.svgs.append(attrs)
        if tag == "a":
            self._href = attrs.get("href")
            self.links.append((attrs.get("href"), None))
        if tag == "img" and self._href is not None:
            self.links[-1] = (self._href, attrs.get("src"))
        if tag == "div" and "card" in (attrs.get("class") or "").split() and self.sections:
            self._card, self._depth, self._text = {"class": attrs["class"].split()}, 0, []
        if self._card is not None and tag == "div":
            self._depth += 1

    def handle_endtag(self, tag) -> None:
        if tag == "a":
            self._href = None
        if self._card is not None and tag == "div":
            self._depth -= 1
            if self._depth == 0:
                self._card["text"] = " ".join(" ".join(self._text).split())
                self.sections[-1].append(self._card)
                self._card = None

    def handle_data(self, data) -> None:
        if self._card is not None:
            self._text.append(data)


def parse(page: str) -> Page:
    parser = Page()
    parser.feed(page)
    return parser


def rank_and_id(card: dict) -> tuple[int | None, str]:
    found = re.match(r"(?:#(\d+) )?(i\d+c\d+)", card["text"])
    assert found, card["text"]
    return (int(found.group(1)) if found.group(1) else None), found.group(2)


@pytest.fixture(scope="module")
def pairwise_run(tmp_path_factory) -> Path:
    settings = sim_settings(tmp_path_factory.mktemp("pairwise"), n=5, m=2, iterations=3, ranking="pairwise")
    return asyncio.run(start_run(settings)).store.path


def test_every_pool_is_shown_whole_in_ranked_order_with_kept_parents_marked(pairwise_run) -> None:
    summary = summarize(pairwise_run)
    page = parse((pairwise_run / "report.html").read_text(encoding="utf-8"))
    for it, cards in zip(summary["iterations"], page.sections, strict=True):
        ranked = [rank_and_id(card) for card in cards if rank_and_id(card)[0] is not None]
        assert ranked == [(i, cid) for i, (cid, _) in enumerate(it["pool"], start=1)]  # 1, 2, 3... no gap
        for card in cards:
            _, cid = rank_and_id(card)
            from_earlier = not cid.startswith(f"i{it['iteration']}c")
            assert ("kept" in card["class"]) == from_earlier and ("kept parent from iteration" in card["text"]) == from_earlier
    assert any("kept" in card["class"] for cards in page.sections[1:] for card in cards)


def test_with_pairwise_ranking_the_cards_say_what_decided_the_order(pairwise_run) -> None:
    summary = summarize(pairwise_run)
    page = parse((pairwise_run / "report.html").read_text(encoding="utf-8"))
    for it, cards in zip(summary["iterations"], page.sections, strict=True):
        results = it["pairwise_results"]
        finalists = [cid for cid, _ in it["pool"] if cid in results]
        points = [results[cid]["copeland"] for cid in finalists]
        assert points == sorted(points, reverse=True)  # the ranks follow the comparisons
        pool = dict(it["pool"])
        for card in cards:
            _, cid = rank_and_id(card)
            if cid in results:
                r = results[cid]
                assert f"pairwise: {r['copeland']:.1f} Copeland points" in card["text"]
                assert f"{r['wins']} win" in card["text"] and f"{r['losses']} loss" in card["text"]
            elif cid in pool:
                assert "not a finalist: placed by its score" in card["text"]
    disordered = [it["iteration"] for it in summary["iterations"]
                  if [t for _, t in it["pool"]] != sorted((t for _, t in it["pool"]), reverse=True)]
    assert disordered, "this seed should give a pool whose comparison order differs from its score order"


def test_every_image_opens_the_full_size_file(pairwise_run) -> None:
    page = parse((pairwise_run / "report.html").read_text(encoding="utf-8"))
    with_images = [(href, src) for href, src in page.links if src is not None]
    assert with_images and all(href == src and (pairwise_run / src).is_file() for href, src in with_images)
    images = (pairwise_run / "report.html").read_text(encoding="utf-8").count("<img ")
    assert len(with_images) == images  # no image without its link


def test_the_page_works_at_phone_width(pairwise_run) -> None:
    phone = CSS.split("@media (max-width: 640px)", 1)
    assert len(phone) == 2, "a media query for narrow screens"
    rules = " ".join(phone[1].split())
    assert ".tree { flex-direction:column;" in rules and ".tree .arrow { transform:rotate(90deg); }" in rules
    assert ".hero { flex-direction:column;" in rules and ".chart .narrow { display:block; }" in rules
    assert ".chart .wide { display:none; }" in rules and ".chart .narrow { display:none; }" in CSS
    svgs = parse((pairwise_run / "report.html").read_text(encoding="utf-8")).svgs
    narrow = next(s for s in svgs if s.get("class") == "narrow")
    width = float(narrow["viewbox"].split()[2])
    assert width <= 400 and int(narrow["font-size"]) >= 12  # at 396 px wide its text stays >= 12 px
    assert {s.get("class") for s in svgs} == {"wide", "narrow"}


def test_a_long_prompt_is_clamped_with_a_way_to_expand(pairwise_run) -> None:
    summary = summarize(pairwise_run)
    long_prompt = "a lighthouse " + " ".join(f"word{i}" for i in range(900))  # about 5000 characters
    summary["prompt"] = long_prompt
    summary["best"] = {**summary["best"], "what": long_prompt}
    page = render_report(summary, pairwise_run)
    head = page.split('<div class="prompt">', 1)[1].split("</div>", 1)[0]
    clip = re.search(r'<span class="clip">(.*?)</span>', head, re.S).group(1)
    assert len(clip) < 300 and long_prompt in head and "show all" in head and "<details" in head
    assert "details.clamp[open] > summary .clip { display:none; }" in CSS  # opening shows the whole once
    assert page.count(long_prompt) == 2  # the heading and the best's WHAT, each once, inside its <details>
    assert len(page.split("<title>", 1)[1].split("</title>", 1)[0]) < 140


def test_the_checklist_question_column_is_left_aligned(tmp_path) -> None:
    run_dir = asyncio.run(start_run(sim_settings(tmp_path, n=3, m=1, iterations=1, alignment="checklist"))).store.path
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    table = page.split('<table class="checklist">', 1)[1].split("</table>", 1)[0]
    question = summarize(run_dir)["judging"]["checklist"][0]["question"]
    assert '<th class="text">checklist question</th>' in table and f'<td class="text">{question}' in table.replace("&#x27;", "'")
    assert "td.text, th.text { text-align:left; }" in " ".join(CSS.split()).replace("th:first-child, td:first-child, ", "")


def test_the_report_exists_mid_run_rewritten_at_every_ranking_off_the_event_loop(tmp_path, monkeypatch) -> None:
    """A step wrapper holds the first critique of each refinement iteration until report.html shows the
    ranking before it: the page appears while the run runs, and the event loop keeps running meanwhile."""
    seen: list[tuple[int, str, bool]] = []
    writers: set[str] = set()
    real_write = livereport.LiveReport._refresh

    def spying(self) -> None:
        writers.add(threading.current_thread().name)
        real_write(self)

    monkeypatch.setattr(livereport.LiveReport, "_refresh", spying)

    class Held:
        def __init__(self, steps) -> None:
            self.steps = steps

        def __getattr__(self, name):
            return getattr(self.steps, name)

        async def critique(self, iteration, parent, dimension, idea):
            report = self.steps.store.path / "report.html"
            for _ in range(500):
                if report.exists() and f"Iteration {iteration - 1}:" in report.read_text(encoding="utf-8"):
                    break
                await asyncio.sleep(0.01)  # the loop runs on while the worker writes
            page = report.read_text(encoding="utf-8") if report.exists() else ""
            seen.append((iteration, "status-running" in page, f"Iteration {iteration}:" in page))
            return await self.steps.critique(iteration, parent, dimension, idea)

    settings = sim_settings(tmp_path, n=2, m=1, iterations=3)
    result = asyncio.run(start_run(settings, pieces=Pieces(wrap_steps=Held)))
    assert result.status == "done"
    assert seen == [(1, True, False), (2, True, False)]  # there mid-run, showing rankings 0 then 1, not yet the next
    assert writers and all(name.startswith("beamsearch-report") for name in writers)
    assert "Iteration 2:" in (result.store.path / "report.html").read_text(encoding="utf-8")
