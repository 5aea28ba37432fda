"""Issue 14, findings 2 and 9: on resume, endpoints and key variables come from the user's own settings,
never from run.yaml; a folder whose recorded endpoint differs is refused with one sentence naming both
hosts and the flag that accepts it; resume names each role's host before the first paid call; and a
past-shaping setting changed in run.yaml is refused like one changed by a flag."""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from simhelp import read_events, sim_settings
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))

from fake_openai_server import FakeConfig, FakeOpenAI  # noqa: E402

from beamsearch.app import start_run  # noqa: E402
from beamsearch.cli import app  # noqa: E402
from beamsearch.precedence import resolve  # noqa: E402

KEY_ENV = "FAKE_ENDPOINT_TEST_KEY"
KEY = "sk-test-endpoint-Hn4Bv5Cx6Zl7Kj8Mg9Fd"
SECRET_ENV = "SSH_AUTH_SECRET"
SECRET = "ssh-secret-Uo0Ip9Yt8Re7We6Qa5Sz4Xc3"
FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def servers():
    """Two hosts: A is the one the user configured, B the one a hostile run.yaml names."""
    with FakeOpenAI(FakeConfig()) as a, FakeOpenAI(FakeConfig()) as b:
        yield a, b


def endpoint_flags(server: FakeOpenAI) -> dict:
    flags = {}
    for role in ("text", "image", "vision"):
        flags[f"{role}.base_url"] = server.url
        flags[f"{role}.api_key_env"] = KEY_ENV
    return flags


def user_config(tmp_path: Path, server: FakeOpenAI) -> Path:
    config = tmp_path / "mine.yaml"
    config.write_text("".join(f"{role}: {{base_url: '{server.url}', api_key_env: {KEY_ENV}}}\n"
                              for role in ("text", "image", "vision")))
    return config


@pytest.fixture
def paid_run(tmp_path, servers, monkeypatch) -> Path:
    """A finished one-iteration run the user made against host A."""
    a, _ = servers
    monkeypatch.setenv(KEY_ENV, KEY)
    settings = resolve(None, {"prompt": "a red kite", "n": 2, "m": 1, "iterations": 1, "provider": "openai",
                              "runs_dir": str(tmp_path / "runs"), "image.size": "64x64", **endpoint_flags(a)},
                       environ={})
    result = asyncio.run(start_run(settings))
    assert result.status == "done", result.error
    return result.store.path


def hostile(run_dir: Path, server: FakeOpenAI) -> None:
    """run.yaml edited to send every role to host B with the key of another variable."""
    document = yaml.safe_load((run_dir / "run.yaml").read_text())
    for role in ("text", "image", "vision"):
        document["settings"][role]["base_url"] = server.url
        document["settings"][role]["api_key_env"] = SECRET_ENV
    (run_dir / "run.yaml").write_text(yaml.safe_dump(document))


def resume(run_dir: Path, *extra: str, config: Path | None = None):
    args = ["resume", str(run_dir), "-i", "2", "--quiet", *(["--config", str(config)] if config else []), *extra]
    return CliRunner().invoke(app, args, env={KEY_ENV: KEY, SECRET_ENV: SECRET})


def test_a_folder_naming_another_endpoint_is_refused_naming_both_hosts(tmp_path, servers, paid_run) -> None:
    a, b = servers
    hostile(paid_run, b)
    before_a = a.total_requests()
    result = resume(paid_run, config=user_config(tmp_path, a))
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1
    assert f"127.0.0.1:{b.port}" in errors[0] and f"127.0.0.1:{a.port}" in errors[0]
    assert "--trust-folder-endpoints" in errors[0]
    assert b.total_requests() == 0 and a.total_requests() == before_a
    assert not any(SECRET in header for header in a.authorizations + b.authorizations)


def test_without_a_config_the_users_default_endpoint_is_compared_not_the_folders(tmp_path, servers, paid_run) -> None:
    _, b = servers
    hostile(paid_run, b)
    result = resume(paid_run)
    assert result.exit_code == 2 and "api.openai.com" in result.stderr and f"127.0.0.1:{b.port}" in result.stderr
    assert b.total_requests() == 0


def test_trusting_the_folder_sends_the_users_key_not_the_variable_the_folder_names(tmp_path, servers, paid_run) -> None:
    a, b = servers
    hostile(paid_run, b)
    config = tmp_path / "key-only.yaml"
    config.write_text("".join(f"{role}: {{api_key_env: {KEY_ENV}}}\n" for role in ("text", "image", "vision")))
    result = resume(paid_run, "--trust-folder-endpoints", config=config)
    assert result.exit_code == 0, result.output
    assert b.total_requests() > 0
    assert set(b.authorizations) == {f"Bearer {KEY}"}
    assert not any(SECRET in header for header in a.authorizations + b.authorizations)
    assert f"text to 127.0.0.1:{b.port} (key from {KEY_ENV})" in result.stderr


def test_resume_names_the_host_of_each_role_before_its_first_paid_call(tmp_path, servers, paid_run) -> None:
    a, b = servers
    a.config.api_key = "not the key"  # the first call is refused: the names come before it
    result = resume(paid_run, config=user_config(tmp_path, a))
    lines = result.stderr.splitlines()
    named = next(i for i, line in enumerate(lines) if line.startswith("Resuming:"))
    for role in ("text", "image", "vision"):
        assert f"{role} to 127.0.0.1:{a.port} (key from {KEY_ENV})" in lines[named]
    assert named < next(i for i, line in enumerate(lines) if line.startswith("Error:"))
    assert a.total_requests() >= 1 and b.total_requests() == 0


# --- finding 9: an edited run.yaml ----------------------------------------------------------------------


@pytest.fixture
def sim_run(tmp_path) -> Path:
    result = asyncio.run(start_run(sim_settings(tmp_path, n=2, m=1, iterations=1, prompt="a white boat")))
    assert result.status == "done"
    return result.store.path


@pytest.mark.parametrize(("key", "value"), [("prompt", "a black cat"), ("n", 3), ("seed", 9), ("alpha", 0.2)])
def test_a_past_shaping_setting_edited_in_run_yaml_is_refused(sim_run, key, value) -> None:
    document = yaml.safe_load((sim_run / "run.yaml").read_text())
    document["settings"][key] = value
    (sim_run / "run.yaml").write_text(yaml.safe_dump(document))
    steps = len([e for e in read_events(sim_run) if e["type"] == "step"])
    result = CliRunner().invoke(app, ["resume", str(sim_run), "-i", "2", "--quiet"])
    assert result.exit_code == 2, result.output
    assert f"changes '{key}'" in result.stderr and "run.yaml" in result.stderr
    assert len([e for e in read_events(sim_run) if e["type"] == "step"]) == steps  # nothing bought


def test_an_edited_prompt_in_a_folder_written_by_main_is_refused(tmp_path) -> None:
    for name in sorted(p.name for p in FIXTURES.glob("main-*")):
        copy = tmp_path / name
        shutil.copytree(FIXTURES / name, copy)
        document = yaml.safe_load((copy / "run.yaml").read_text())
        document["settings"]["prompt"] = "a completely different idea"
        (copy / "run.yaml").write_text(yaml.safe_dump(document))
        log = (copy / "events.jsonl").read_bytes()
        result = CliRunner().invoke(app, ["resume", str(copy), "--max-cost", "50", "--quiet"],
                                    env={"BEAMSEARCH_SIM__LATENCY__TEXT__MEAN": "0"})
        assert result.exit_code == 2 and "changes 'prompt'" in result.stderr, result.output
        assert (copy / "events.jsonl").read_bytes() == log
