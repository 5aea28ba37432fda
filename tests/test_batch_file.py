"""The ideas file of `beamsearch batch`: text, YAML and JSON; each idea's own settings; and every mistake
one sentence naming the idea by its number and line, before any batch folder exists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from batchhelp import ZERO, offline
from typer.testing import CliRunner

from beamsearch.batch_file import idea_settings, read_ideas
from beamsearch.batch_open import shared_settings
from beamsearch.cli import app
from beamsearch.errors import SettingsError


def test_a_text_file_is_one_idea_a_line_without_comments_or_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "ideas.txt"
    path.write_text("# my catalogue\n\na red lighthouse by the sea\n   # indented comment\n  a white boat  \n\n",
                    encoding="utf-8")
    ideas = read_ideas(path)
    assert [(i.number, i.line, i.prompt) for i in ideas] == [(1, 3, "a red lighthouse by the sea"),
                                                             (2, 5, "a white boat")]


def test_a_yaml_list_gives_ideas_their_own_settings_which_win_over_the_shared_ones(tmp_path: Path) -> None:
    path = tmp_path / "ideas.yaml"
    path.write_text("- a red lighthouse\n- prompt: a white boat\n  n: 5\n  size: 1536x1024\n  seed: 9\n"
                    "  alignment: checklist\n", encoding="utf-8")
    first, second = read_ideas(path)
    assert (first.line, first.settings) == (1, {})
    assert (second.line, second.settings) == (2, {"n": 5, "image.size": "1536x1024", "seed": 9,
                                                  "alignment": "checklist"})
    shared = shared_settings(offline(tmp_path, n=3, seed=1))
    own = idea_settings(shared, second, path.name)
    assert (own.prompt, own.n, own.image.size, own.seed, own.alignment) == ("a white boat", 5, "1536x1024", 9, "checklist")
    plain = idea_settings(shared, first, path.name)
    assert (plain.n, plain.seed, plain.image.size) == (3, 1, "1024x1024")


def test_a_json_list_is_read_too(tmp_path: Path) -> None:
    path = tmp_path / "ideas.json"
    path.write_text(json.dumps(["a teal whale", {"prompt": "a pink moon", "iterations": 2}], indent=1))
    ideas = read_ideas(path)
    assert [i.prompt for i in ideas] == ["a teal whale", "a pink moon"] and ideas[1].settings == {"iterations": 2}


@pytest.mark.parametrize(("name", "text", "fragments"), [
    ("ideas.yaml", "- a red lighthouse\n- prompt: a white boat\n  colour: blue\n",
     ["Idea 2 (line 2) of ideas.yaml", "unknown setting 'colour'"]),
    ("ideas.json", '[\n "a red lighthouse",\n "a boat",\n {"prompt": "a cat", "limits": {}}\n]\n',
     ["Idea 3 (line 4) of ideas.json", "unknown setting 'limits'"]),
    ("ideas.yaml", "- a red lighthouse\n- prompt: a white boat\n  n: 0\n", ["Idea 2 (line 2) of ideas.yaml", "'n'"]),
    ("ideas.yaml", "- a red lighthouse\n- m: 2\n", ["Idea 2 (line 2) of ideas.yaml", "'prompt'"]),
    ("ideas.yaml", "- a red lighthouse\n- yes\n", ["Idea 2 (line 2) of ideas.yaml", "a yes/no"]),
    ("ideas.yaml", "prompt: a red lighthouse\n", ["must hold a list of ideas"]),
    ("ideas.yaml", "- [unclosed\n", ["is not valid YAML or JSON"]),
    ("ideas.txt", "# nothing but a comment\n\n", ["holds no ideas"]),
])
def test_a_bad_ideas_file_is_one_sentence_and_no_batch_folder(tmp_path: Path, name: str, text: str,
                                                            fragments: list[str]) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    runs = tmp_path / "runs"
    result = CliRunner().invoke(app, ["batch", str(path), "--provider", "sim", "--runs-dir", str(runs)], env=ZERO)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    assert not runs.exists()  # refused before a batch folder was made


def test_a_missing_or_undecodable_file_is_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        read_ideas(tmp_path / "nope.txt")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe an idea\n")
    with pytest.raises(SettingsError, match="not UTF-8"):
        read_ideas(bad)
