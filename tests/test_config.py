"""Settings: precedence, and one clear sentence naming the key for every kind of bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from beamsearch.cli import app
from beamsearch.errors import SettingsError
from beamsearch.precedence import resolve


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "settings.yaml"
    path.write_text(text)
    return path


def test_precedence_defaults_file_environment_flags(tmp_path) -> None:
    config = write(tmp_path, "n: 5\nm: 2\nalpha: 0.5\nlimits:\n  image: {rpm: 30}\n")
    settings = resolve(config, {}, environ={})
    assert (settings.n, settings.m, settings.alpha, settings.iterations) == (5, 2, 0.5, 4)
    settings = resolve(config, {}, environ={"BEAMSEARCH_N": "7", "BEAMSEARCH_LIMITS__IMAGE__RPM": "12"})
    assert (settings.n, settings.limits.image.rpm, settings.limits.image.concurrency) == (7, 12, 50)
    settings = resolve(config, {"n": 8}, environ={"BEAMSEARCH_N": "7"})
    assert settings.n == 8


def test_config_file_from_environment(tmp_path) -> None:
    config = write(tmp_path, "iterations: 2\n")
    assert resolve(None, {}, environ={"BEAMSEARCH_CONFIG": str(config)}).iterations == 2


def test_simulator_roles_are_not_rate_limited_unless_asked(tmp_path) -> None:
    settings = resolve(None, {"provider": "sim"}, environ={})
    assert settings.limits.image.rpm is None and settings.limits.image.concurrency >= 64
    settings = resolve(write(tmp_path, "provider: sim\nlimits:\n  image: {rpm: 10}\n"), {}, environ={})
    assert settings.limits.image.rpm == 10
    assert resolve(None, {}, environ={}).limits.image.rpm == 50  # real APIs keep cautious defaults


CASES = [
    ("nn: 4\n", "Unknown setting 'nn'; did you mean 'n'?"),
    ("limits:\n  image:\n    rmp: 3\n", "Unknown setting 'limits.image.rmp'; did you mean 'limits.image.rpm'?"),
    ("n: 3\nm: 5\n", "'m' (5) cannot be larger than 'n' (3)"),
    ("n: 0\n", "'n' must be at least 1"),
    ("alpha: 1.5\n", "'alpha' must be between 0 and 1"),
    ("iterations: 0\n", "'iterations' must be at least 1"),
    ("n: [1, 2\n", "is not valid YAML at line"),
    ("- 1\n- 2\n", "must hold a mapping of settings"),
    ("n: many\n", "Setting 'n' input should be a valid integer"),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_bad_settings_are_one_sentence(tmp_path, text, expected) -> None:
    with pytest.raises(SettingsError) as caught:
        resolve(write(tmp_path, text), {}, environ={})
    assert expected in caught.value.message
    assert "\n" not in caught.value.message and caught.value.exit_code == 2


def test_missing_and_unreadable_files(tmp_path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        resolve(tmp_path / "nope.yaml", {}, environ={})
    folder = tmp_path / "folder.yaml"
    folder.mkdir()
    with pytest.raises(SettingsError, match="cannot be read"):
        resolve(folder, {}, environ={})


@pytest.mark.parametrize(("args", "expected"), [
    (["-n", "3", "-m", "5"], "Error: -m (5) cannot be larger than -n (3)"),
    (["-n", "0"], "Error: -n must be at least 1"),
    (["--alpha", "-0.1"], "Error: --alpha must be between 0 and 1"),
    (["--iterations", "0"], "Error: --iterations must be at least 1"),
    (["--max-cost", "-1"], "Error: --max-cost must be a number of dollars above 0, or none for no budget (got '-1')."),
])
def test_cli_bad_flags_exit_2_without_traceback_naming_the_flag(tmp_path, args, expected) -> None:
    result = CliRunner().invoke(app, ["run", "--provider", "sim", "--prompt", "x", "--runs-dir", str(tmp_path), *args])
    assert result.exit_code == 2
    assert expected in result.output and "Traceback" not in result.output
    assert "Setting '" not in result.output and "max_cost_usd" not in result.output
    assert not any(tmp_path.iterdir()), "no run folder is made for bad settings"


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_cli_bad_config_files_exit_2(tmp_path, text, expected) -> None:
    config = write(tmp_path, text)
    result = CliRunner().invoke(app, ["run", "--prompt", "x", "--config", str(config)])
    assert result.exit_code == 2 and expected in result.output and "Traceback" not in result.output
    error_lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error_lines) == 1


def test_config_command_prints_resolved_yaml(tmp_path) -> None:
    config = write(tmp_path, "n: 6\n")
    result = CliRunner().invoke(app, ["config", "--config", str(config)], env={"OPENAI_API_KEY": "sk-secret-value"})
    assert result.exit_code == 0 and "n: 6" in result.output and "sk-secret-value" not in result.output


PASTED_KEYS = [
    "sk-proj-Zq7RkY2mPw9vXc4nLb8tHj3dFs6gAe1u",   # an OpenAI key
    "Zq7RkY2mPw9vXc4nLb8tHj3dFs6gAe1u",           # a random token with no telling prefix
    "a3f9c2e1b4d5a6f7e8d9c0b1a2f3e4d5",           # a hex token
    "gsk_AbCdEf1234567890GhIjKlMnOpQrStUv",       # a key that is also a valid variable name
]


@pytest.mark.parametrize("pasted", PASTED_KEYS)
@pytest.mark.parametrize("role", ["text", "image", "vision"])
def test_a_key_pasted_as_api_key_env_is_refused_without_echoing_it(tmp_path, role, pasted) -> None:
    config = write(tmp_path, f"{role}:\n  api_key_env: {pasted}\n")
    result = CliRunner().invoke(app, ["run", "--provider", "sim", "--prompt", "x", "--config", str(config),
                                      "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert pasted not in result.output and pasted[-12:] not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [f"Error: Setting '{role}.api_key_env' looks like an API key, not a variable name: it must name "
                     "the environment variable that holds the key (like OPENAI_API_KEY), never the key itself."]
    assert not (tmp_path / "runs").exists()
    # the same from the environment, which `config` would otherwise print back
    result = CliRunner().invoke(app, ["config"], env={f"BEAMSEARCH_{role.upper()}__API_KEY_ENV": pasted})
    assert result.exit_code == 2 and pasted not in result.output and f"'{role}.api_key_env'" in result.output


def test_api_key_env_must_be_a_variable_name_and_real_names_pass(tmp_path) -> None:
    with pytest.raises(SettingsError) as caught:
        resolve(None, {"text.api_key_env": "MY-KEY"}, environ={})
    assert caught.value.message == ("Setting 'text.api_key_env' must name an environment variable (letters, digits "
                                    "and underscores, not starting with a digit), like OPENAI_API_KEY, or be none for "
                                    "a server without keys.")
    for name in ("OPENAI_API_KEY", "AZURE_OPENAI_API_KEY", "MY_COMPANY_OPENAI_API_KEY_PRODUCTION_2024", "local_llm_key"):
        assert resolve(None, {"image.api_key_env": name}, environ={}).image.api_key_env == name
    assert resolve(None, {"text.api_key_env": "None"}, environ={}).text.api_key_env == "none"  # no key at all


@pytest.mark.parametrize(("text", "expected"), [
    ("n: true\n", "Setting 'n' must be a number, not true or false (got True)."),
    ("limits:\n  image: {rpm: false}\n", "Setting 'limits.image.rpm' must be a number, not true or false"),
    ("limits: 5\n", "Setting 'limits' must be a mapping of settings (key: value lines) (got 5)."),
    ("prompts_dir: [a, b]\n", "Setting 'prompts_dir' must be a path."),
    ("image: {base_url: 'http://127.0.0.1:99999/v1'}\n", "its host or port is not valid"),
    ("text: {base_url: 'http://[::1'}\n", "its host or port is not valid"),
    ("vision: {base_url: 'ftp://example.org/v1'}\n", "Setting 'vision.base_url' must be an http or https URL"),
    ("text: {base_url: 'not a url'}\n", "Setting 'text.base_url' must be an http or https URL"),
    ("limits:\n  text: {rpm: 0.001}\n", "Setting 'limits.text.rpm' input should be greater than or equal to 1"),
    ("runs_dir: ''\n", "Setting 'runs_dir' must name a folder (it is empty)"),
])
def test_settings_that_used_to_slip_through_or_leak_class_names(tmp_path, text, expected) -> None:
    with pytest.raises(SettingsError) as caught:
        resolve(write(tmp_path, text), {}, environ={})
    assert expected in caught.value.message
    assert "Settings" not in caught.value.message and "<class" not in caught.value.message


def test_a_config_file_that_is_a_single_value_or_a_list(tmp_path) -> None:
    for text, what in (("5\n", "a single value"), ("- n: 3\n", "a list")):
        with pytest.raises(SettingsError, match=f"mapping of settings \\(key: value lines\\), not {what}"):
            resolve(write(tmp_path, text), {}, environ={})


def test_text_settings_from_the_environment_keep_their_text(tmp_path) -> None:
    for raw in ("yes", "123", "2024-01-01", "null", "[a]"):
        settings = resolve(None, {}, environ={"BEAMSEARCH_PROMPT": raw, "BEAMSEARCH_TEXT__MODEL": raw})
        assert settings.prompt == raw and settings.text.model == raw
    assert resolve(None, {}, environ={"BEAMSEARCH_N": "7"}).n == 7  # numbers are still numbers


def test_errors_name_the_environment_variable_they_came_from(tmp_path) -> None:
    with pytest.raises(SettingsError, match="from the environment variable BEAMSEARCH_ALPHA"):
        resolve(None, {}, environ={"BEAMSEARCH_ALPHA": "3"})
    with pytest.raises(SettingsError) as caught:  # a flag wins over the variable: the flag is to blame
        resolve(None, {"alpha": 3.0}, environ={"BEAMSEARCH_ALPHA": "0.5"})
    assert "BEAMSEARCH_ALPHA" not in caught.value.message
