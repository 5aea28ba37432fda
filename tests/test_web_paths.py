"""Files served only from inside run folders, names checked; the guard: read-only, this host only,
security headers on every answer; pages with no inline script and scripts that never parse HTML."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from webhelp import make_run, raw_get

from beamsearch.serve import serving
from beamsearch.web import paths
from beamsearch.web.app import STATIC, host_name

NAME = "20261121-143002-a-test-idea"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    runs_dir = tmp_path / "runs"
    folder = make_run(runs_dir, NAME)
    (folder / "images" / "i0c00.png").write_bytes(PNG)
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"outside the runs folder")
    os.symlink(secret, folder / "images" / "escape.png")  # a symlink leading out of the run folder
    os.symlink(folder / "run.yaml", folder / "images" / "settings.png")  # inside, but not an image
    os.symlink(tmp_path, runs_dir / "linked-run")  # a "run folder" that is a symlink out
    (make_run(tmp_path, "elsewhere") / "images" / "i0c00.png").write_bytes(b"outside the runs folder")
    os.symlink(tmp_path / "elsewhere", runs_dir / "20261121-000000-symlinked")
    return runs_dir


def test_images_resolve_inside_their_run_folder_or_not_at_all(runs: Path) -> None:
    assert paths.image_file(runs, NAME, "i0c00.png") == (runs / NAME / "images" / "i0c00.png").resolve()
    refused = [(NAME, "../run.yaml"), (NAME, "..%2Frun.yaml"), (NAME, "/etc/passwd"), (NAME, "escape.png"),
               (NAME, "settings.png"), (NAME, "missing.png"), (NAME, "i0c00.txt"), (NAME, ".hidden.png"),
               ("..", "i0c00.png"), ("../runs/" + NAME, "i0c00.png"), ("linked-run", "i0c00.png"),
               ("20261121-000000-symlinked", "i0c00.png"), ("", "i0c00.png"), (NAME, "")]
    for name, file in refused:
        assert paths.image_file(runs, name, file) is None, (name, file)


def test_run_names_are_only_plain_folder_names(runs: Path) -> None:
    assert paths.run_folder(runs, NAME) == (runs / NAME).resolve()
    assert paths.run_folder(runs, "20261121-000000-symlinked") is None  # a symlink to a run elsewhere
    for name in ("..", ".", "a/b", "a\\b", "..hidden", ".git", "a..b", "x" * 300, "<script>", "run name"):
        assert paths.run_folder(runs, name) is None, name


def test_host_names_are_read_without_their_port() -> None:
    assert host_name("127.0.0.1:8765") == "127.0.0.1"
    assert host_name("LOCALHOST") == "localhost"
    assert host_name("[::1]:8765") == "::1"
    assert host_name("evil.example:80") == "evil.example"


async def test_over_http_only_a_run_folders_own_images_are_served(runs: Path) -> None:
    async with serving(runs, port=0) as server:
        status, headers, body = await raw_get(server.port, f"/runs/{NAME}/images/i0c00.png")
        assert (status, headers["content-type"], body) == (200, "image/png", PNG)
        for target in (f"/runs/{NAME}/images/../run.yaml", f"/runs/{NAME}/images/..%2Frun.yaml",
                       f"/runs/{NAME}/images/%2e%2e%2frun.yaml", f"/runs/{NAME}/images/%2Fetc%2Fpasswd",
                       f"/runs/{NAME}/images/escape.png", f"/runs/{NAME}/images/settings.png",
                       f"/runs/{NAME}/run.yaml", f"/runs/{NAME}/events.jsonl", "/runs/../secret.png",
                       "/runs/%2e%2e/secret.png", "/runs/linked-run/images/secret.png", "/runs/../../etc/passwd",
                       "/runs/20261121-000000-symlinked/images/i0c00.png", "/runs/20261121-000000-symlinked/events",
                       "/static/../serve.py", "/static/%2e%2e/app.py", f"/runs/{NAME}/images/i0c00.png/.."):
            status, _, body = await raw_get(server.port, target)
            assert status in (404, 400), (target, status)
            assert b"outside the runs folder" not in body and b"settings" not in body


async def test_the_view_is_read_only_answers_only_its_own_host_and_sends_the_security_headers(runs: Path) -> None:
    async with serving(runs, port=0) as server:
        for target in ("/", f"/runs/{NAME}/", "/static/run.js", "/static/style.css", f"/runs/{NAME}/images/i0c00.png",
                       "/runs/no-such-run/", "/nothing-here"):
            status, headers, _ = await raw_get(server.port, target)
            assert status in (200, 404), target
            policy = headers["content-security-policy"]
            assert "default-src 'self'" in policy and "script-src 'self'" in policy and "unsafe" not in policy
            assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"
        status, headers, _ = await raw_get(server.port, "/static/run.js")
        assert status == 200 and headers["content-type"].startswith("text/javascript")
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            status, headers, _ = await raw_get(server.port, "/", method=method)
            assert status == 405 and headers["allow"] == "GET, HEAD"
        status, _, _ = await raw_get(server.port, "/", host="attacker.example")  # DNS rebinding
        assert status == 400
        for host in (f"127.0.0.1:{server.port}", f"localhost:{server.port}"):
            assert (await raw_get(server.port, "/", host=host))[0] == 200
        assert server.url.startswith("http://127.0.0.1:")


def test_pages_have_no_inline_script_and_scripts_never_parse_data_as_html() -> None:
    for page in ("index.html", "run.html", "batch.html"):
        html = (STATIC / page).read_text()
        scripts = re.findall(r"<script\b[^>]*>(.*?)</script>", html, re.S)
        assert scripts and all(body.strip() == "" for body in scripts), page
        assert all(src.startswith("/static/") for src in re.findall(r'src="([^"]+)"', html))
        assert not re.search(r"\son[a-z]+=", html) and "style=" not in html and "http" not in html.replace("http-equiv", "")
    for script in STATIC.glob("*.js"):
        source = script.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
                     "http://", "https://"):
            assert sink not in source.replace("http://www.w3.org/2000/svg", ""), (script.name, sink)
