"""report.html: self-contained, every image link resolves inside the run folder, everything escaped."""

from __future__ import annotations

import asyncio
import copy
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
from simhelp import sim_settings

from beamsearch.app import start_run
from beamsearch.report import chart_svg, image_src, render_report, write_report
from beamsearch.runs import summarize

NASTY = 'a red lighthouse <script>alert("x")</script> & a "quoted" yellow sun by the sea'


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text outside tags."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data) -> None:
        self.text.append(data)


def parse(page: str) -> Tags:
    parser = Tags()
    parser.feed(page)
    return parser


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    settings = sim_settings(tmp_path_factory.mktemp("report"), n=5, m=2, iterations=3, prompt=NASTY)
    return asyncio.run(start_run(settings)).store.path


def test_every_run_ends_with_a_report_whose_images_all_resolve(run_dir) -> None:
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    sources = [attrs["src"] for tag, attrs in parse(page).tags if tag == "img"]
    summary = json.loads((run_dir / "summary.json").read_text())
    # one card per candidate in the grids, plus the family tree and the hero image
    assert len(sources) == len(summary["candidates"]) + len(summary["lineage"]) + 1
    for src in sources:
        target = (run_dir / src).resolve()
        assert target.is_file(), src
        assert target.is_relative_to(run_dir.resolve())
    assert {Path(s).name for s in sources} == {Path(c["image"]).name for c in summary["candidates"]}


def test_the_prompt_with_script_and_quotes_is_escaped(run_dir) -> None:
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    assert "<script" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; a &quot;quoted&quot;" in page
    assert NASTY in "".join(parse(page).text)  # it reads as the user typed it


def test_the_report_is_self_contained(run_dir) -> None:
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    tags = parse(page).tags
    names = {tag for tag, _ in tags}
    assert "style" in names and "svg" in names
    assert not names & {"script", "link", "iframe", "object", "embed"}
    for _, attrs in tags:
        for name, value in attrs.items():
            if name != "xmlns":
                assert "://" not in (value or ""), (name, value)


def test_grids_mark_survivors_and_give_details_on_demand(run_dir) -> None:
    summary = json.loads((run_dir / "summary.json").read_text())
    tags = parse((run_dir / "report.html").read_text(encoding="utf-8")).tags
    cards = {attrs["id"]: attrs["class"].split() for tag, attrs in tags if tag == "div" and "card" in (attrs.get("class") or "").split()
             and attrs.get("id")}
    for it in summary["iterations"]:
        for survivor in it["survivors"]:
            if survivor.startswith(f"i{it['iteration']}c") and survivor != summary["best"]["id"]:
                assert "survivor" in cards[survivor]
    assert "best" in cards[summary["best"]["id"]]
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    assert page.count("<details>") == len(summary["candidates"]) + len(summary["lineage"])
    critiqued = next(c for c in summary["candidates"] if c["iteration"] == 1)
    for label in ("WHAT", "HOW", "Combined prompt", "Critique of the parent", "Alignment notes", "Aesthetic notes"):
        assert f"<b>{label}</b>" in page
    assert critiqued["critique"].replace('"', "&quot;").replace("'", "&#x27;") in page
    assert len(summary["lineage"]) == summary["best"]["iteration"] + 1 and summary["lineage"][0].startswith("i0")


def test_model_text_is_escaped_and_bad_image_paths_are_never_linked(run_dir) -> None:
    summary = copy.deepcopy(summarize(run_dir))
    victim = summary["candidates"][0]
    victim["what"] = '<img src=x onerror="alert(1)">'
    victim["alignment_notes"] = "</details><script>steal()</script>"
    victim["judges"] = {"checklist": ["<b>bold</b>"]}  # fields a future judging mode may add are shown, escaped
    summary["candidates"][1]["image"] = "../../etc/passwd"
    summary["candidates"][2]["image"] = "/etc/passwd"
    page = render_report(summary, run_dir)
    assert "<script" not in page and "<img src=x" not in page and "<b>bold</b>" not in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page and "&lt;b&gt;bold&lt;/b&gt;" in page
    sources = [attrs["src"] for tag, attrs in parse(page).tags if tag == "img"]
    assert all(".." not in s and not s.startswith("/") for s in sources)
    assert image_src("images/missing.png", run_dir) is None
    assert image_src("images/a b.png") == "images/a%20b.png"


def test_chart_draws_best_and_median_per_iteration(run_dir) -> None:
    summary = summarize(run_dir)
    svg = chart_svg(summary["iterations"])
    tags = parse(svg).tags
    lines = [attrs for tag, attrs in tags if tag == "polyline"]
    assert len(lines) == 2
    assert all(len(attrs["points"].split()) == len(summary["iterations"]) for attrs in lines)
    assert len([t for t, _ in tags if t == "circle"]) == 2 * len(summary["iterations"])
    assert "No iteration" in chart_svg([])


def test_write_report_rebuilds_the_file(run_dir) -> None:
    (run_dir / "report.html").unlink()
    path = write_report(type("Store", (), {"path": run_dir})(), summarize(run_dir))
    assert path == run_dir / "report.html" and "Iteration 2" in path.read_text(encoding="utf-8")
