"""`beamsearch serve`: the real command in its own process, and its refusals in one sentence."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx2
from typer.testing import CliRunner
from webhelp import make_run

from beamsearch.cli import app

NAME = "20261121-143002-a-test-idea"


def test_a_busy_port_is_one_sentence_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["serve", str(tmp_path), "--port", str(port)])
    assert result.exit_code == 2
    assert result.output.strip() == (f"Error: Port {port} on 127.0.0.1 is already in use; pass --port with another "
                                     "port (or 0 for any free one).")


def test_a_folder_that_is_not_there_or_a_host_that_is_not_ours_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["serve", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "is not a folder" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(app, ["serve", str(tmp_path), "--host", "no-such-host.invalid", "--port", "0"])
    assert result.exit_code == 2 and "is not an address of this machine" in result.output
    result = CliRunner().invoke(app, ["serve", str(tmp_path), "--port", "70000"])
    assert result.exit_code == 2


def test_serve_answers_on_loopback_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    make_run(tmp_path, NAME, [{"type": "run_started"}])
    env = {k: v for k, v in os.environ.items() if not k.startswith("BEAMSEARCH_")}
    process = subprocess.Popen([sys.executable, "-m", "beamsearch", "serve", str(tmp_path / NAME), "--port", "0"],
                               stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = process.stderr.readline()
        assert line.startswith(f"Serving the runs in {tmp_path} at http://127.0.0.1:"), line
        url = line.split(" at ", 1)[1].split(" ", 1)[0]
        assert url.endswith(f"/runs/{NAME}/")  # a run folder given: its page is the one to open
        with httpx2.Client(trust_env=False, timeout=10) as client:
            page = client.get(url)
            assert page.status_code == 200 and '<script type="module" src="/static/run.js">' in page.text
            assert client.get(url.split("/runs/")[0] + "/").status_code == 200
        process.send_signal(signal.SIGINT)
        _, rest = process.communicate(timeout=15)
        assert process.returncode == 0 and rest.strip() == "Stopped."
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_the_help_names_the_options_and_the_cli_does_not_load_the_web_stack() -> None:
    result = CliRunner().invoke(app, ["serve", "--help"])
    assert result.exit_code == 0
    for option in ("--host", "--port", "--open", "127.0.0.1", "8765"):
        assert option in result.output
    probe = subprocess.run([sys.executable, "-c", "import sys, beamsearch.cli; "
                            "print(sorted(m for m in ('uvicorn', 'starlette', 'sse_starlette') if m in sys.modules))"],
                           capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "[]"  # the web stack loads only when `serve` runs


async def test_run_serve_streams_the_runs_own_progress_from_its_process(tmp_path: Path) -> None:
    """`run --serve`: the web view in the run's own process, whose page hears the progress that is never
    logged (stages) as well as the log."""
    from webhelp import sse

    env = {**{k: v for k, v in os.environ.items() if not k.startswith("BEAMSEARCH_")},
           "BEAMSEARCH_SIM__LATENCY__IMAGE__MEAN": "0.4"}
    command = [sys.executable, "-m", "beamsearch", "run", "--provider", "sim", "--prompt", "a red boat at night", "-n",
               "3", "-m", "1", "--iterations", "2", "--runs-dir", str(tmp_path / "runs"), "--serve", "--port", "0",
               "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = process.stderr.readline()
        assert line.startswith("Watch it live at http://127.0.0.1:"), line
        url = line.rsplit(" ", 1)[1].strip()
        async with sse(url + "events") as reader:
            meta = (await reader.next()).json()
            assert meta["live"] is True and meta["running"] is True
            seen = await reader.until(lambda e: e.event == "live" and e.json().get("type") == "stage", timeout=20)
            assert any(e.event == "live" for e in seen)
        _, rest = process.communicate(timeout=60)
        assert process.returncode == 0, rest
    finally:
        if process.poll() is None:
            process.kill()
