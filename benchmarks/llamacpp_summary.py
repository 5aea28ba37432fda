"""The readable summary of an interop check's result.json (see llamacpp_interop.py)."""

from __future__ import annotations

import os
from typing import Any


def _run_lines(run: dict[str, Any]) -> list[str]:
    log = run["log"]
    lines = [f"  {run['label']}: exit {run['exit_code']}, status {log['status']!r}, {run['wall_s']} s",
             f"    reason: {log['reason']}"]
    if run["stderr_tail"] and run["exit_code"] not in (0, None) and not log["status"]:
        lines.append(f"    stderr: {' | '.join(run['stderr_tail'])[:400]}")
    if log["steps_per_task"]:
        lines.append("    steps per task: " + ", ".join(f"{k} {v}" for k, v in log["steps_per_task"].items()))
    lines.append(f"    candidates scored: {log['candidates_scored']}, failed lanes: {len(log['failed_lanes'])}, "
                 f"failed steps: {len(log['failed_steps'])}")
    for failed in log["failed_steps"][:6]:
        lines.append(f"      {failed['key']}: {str(failed['error'])[:220]}")
    if log["longest_text_answer_chars"]:
        lines.append("    longest free-text answer (chars): " + ", ".join(
            f"{k} {v}" for k, v in log["longest_text_answer_chars"].items()))
    if log.get("longest_elapsed_s"):
        lines.append("    longest recorded elapsed per step (s, limiter wait and retries included): " + ", ".join(
            f"{k} {v:g}" for k, v in log["longest_elapsed_s"].items()))
    if log.get("longest_text_answer_words"):
        lines.append("    longest free-text answer (words): " + ", ".join(
            f"{k} {v}" for k, v in log["longest_text_answer_words"].items())
            + f"; {log.get('trimmed_answers', 0)} answers trimmed by rule")
    for reason in log.get("fallbacks", []):
        lines.append(f"    checklist fallback: alignment rated instead ({str(reason)[:200]})")
    lines.append(f"    attempt failures: {run['attempt_failures']} (timeouts {run['timeouts']})")
    for message, count in run["attempt_failure_messages"].items():
        lines.append(f"      {count}x {message}")
    for warning in run["warnings"]:
        lines.append(f"    warning: {str(warning)[:300]}")
    return lines


def summary_text(result: dict[str, Any]) -> str:
    """Plain lines: what passed, then the figures (steps per task, cut-offs, timeouts, time, tokens/s)."""
    packages = ", ".join(f"{k} {v}" for k, v in result["packages"].items())
    server = result["server"]
    search = result["search"]
    lines = ["llama.cpp interop check (issue 17)",
             f"packages: {packages}; model {result.get('model')!r}; server n_ctx {server['n_ctx']}, "
             f"{server['n_parallel']} slot(s), {server['threads']} thread(s)",
             f"search: N={search['n']} M={search['m']} iterations={search['iterations']} "
             f"alignment={search['alignment']} {' '.join(search['set'])}".rstrip()
             + (f" config={search['config']}" if search.get("config") else ""),
             "", "checks:"]
    for item in result["checks"]:
        lines.append(f"  [{'PASS' if item['passed'] else 'FAIL'}] {item['name']}: {item['detail']}")
    lines += ["", "runs:"]
    for run in result.get("runs", []):
        lines += _run_lines(run)
    proxy = result.get("proxy", {})
    if proxy:
        lines += ["", "what the server saw (recording proxy):",
                  f"  chat requests {proxy['chat_requests']}, statuses {proxy['status_counts']}, "
                  f"schema requests {proxy['schema_requests']}, with Authorization {proxy['authorization_sent']}",
                  f"  finish_reason {proxy['finish_reasons']}; length cut-offs {proxy['length_cutoffs']}; "
                  f"max_tokens sent {proxy['max_tokens_sent']}",
                  f"  client hung up (timed out) on {proxy['client_hung_up']} requests; longest request "
                  f"{proxy['longest_request_s']} s",
                  f"  tokens generated {proxy['tokens_generated']}, {proxy['tokens_per_second']} tokens/s while "
                  "generating"]
        for error, count in proxy["server_errors"].items():
            lines.append(f"  refused {count}x: {error}")
    passed = sum(c["passed"] for c in result["checks"])
    load = [round(x, 1) for x in result["load_average_before"]], [round(x, 1) for x in result["load_average_after"]]
    lines += ["", f"load average (1, 5, 15 min) before {load[0]}, after {load[1]} on {os.cpu_count()} cores",
              f"setup {result['setup_s']} s, whole check {result.get('total_s')} s; "
              f"{passed} of {len(result['checks'])} checks passed"]
    return "\n".join(lines) + "\n"
