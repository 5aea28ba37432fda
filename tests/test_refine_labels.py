"""The family tree (show, the report, the web page) says what each refinement changed as the run logged
it (`refine: both` and `weakest` are not the alternation)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from simhelp import sim_settings

from beamsearch.app import start_run
from beamsearch.runs import show_data


@pytest.mark.parametrize("refine", ["both", "weakest"])
def test_the_family_tree_names_what_each_refinement_changed(tmp_path: Path, refine: str) -> None:
    settings = sim_settings(tmp_path, n=4, m=2, iterations=3, prompt="a white boat on a blue lake", refine=refine)
    result = asyncio.run(start_run(settings))
    assert result.status == "done"
    data = show_data(result.store.path)
    tree = data["family_tree"]
    assert len(tree) >= 2, "the best should descend from a refinement for this test to say anything"
    report = (result.store.path / "report.html").read_text()
    for step in tree[1:]:
        logged = next(e.refined for e in result.store.read_events() if e.type == "candidate" and e.id == step["id"])
        assert step["changed"] == logged
        words = " and ".join(d.upper() for d in (("what", "how") if logged == "both" else (logged,))) + " refined"
        assert words in report
    if refine == "both":
        assert {step["changed"] for step in tree[1:]} == {"both"}
