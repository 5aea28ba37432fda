"""The live page in a real browser (Debian's chromium, driven by Playwright; nothing is downloaded).

While a simulator run with realistic latencies goes on, the run page shows image cards appearing and
the header's iteration advancing without a reload; after the server drops the stream the page
reconnects and shows no event twice; a hostile prompt, critique and run folder render as text.
Set BEAMSEARCH_SCREENSHOTS=DIR to keep a screenshot of the live page mid-run.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from simhelp import read_events, sim_settings
from webhelp import FolderProbe, append, browser_page

from beamsearch import app
from beamsearch.providers.base import Providers, TextRequest, TextResult
from beamsearch.providers.sim import Simulator
from beamsearch.serve import LiveBus, serving

# about 3 s per iteration: text 0.3 s, image 1.5 s, vision 0.4 s, each +-50%
LATENCIES = {"sim.latency.text.mean": 0.3, "sim.latency.image.mean": 1.5, "sim.latency.vision.mean": 0.4,
             "sim.latency.text.jitter": 0.5, "sim.latency.image.jitter": 0.5, "sim.latency.vision.jitter": 0.5}
SAMPLE = """() => ({
  iteration: document.getElementById("iteration").textContent,
  cards: document.querySelectorAll("#lanes .card").length,
  images: [...document.querySelectorAll("#lanes .card img")].filter((i) => i.complete && i.naturalWidth > 0).length,
  stages: [...document.querySelectorAll("#lanes .card .stage")].map((s) => s.textContent),
  unscored: [...document.querySelectorAll("#lanes .card")].filter((c) => c.querySelector("img") && !c.querySelector(".scores")).length,
  same: window.__samePage === true,
  connections: Number(document.body.dataset.connections || 0),
})"""


def log_lines(run_dir: Path) -> list[int]:
    raw = (run_dir / "events.jsonl").read_bytes().split(b"\n")
    return [i for i, line in enumerate(raw, start=1) if line.strip()]


async def start(settings: Any, bus: LiveBus | None, providers: Providers | None = None) -> tuple[asyncio.Task, Path]:
    """Start a run in this loop; return it and its folder once the folder exists."""
    probe = FolderProbe()  # the bus attaches itself to the run when it is opened
    task = asyncio.get_running_loop().create_task(app.start_run(settings, [probe, *([bus] if bus else [])],
                                                                providers=providers))
    while not probe.made:
        await asyncio.sleep(0.01)
    return task, probe.made[0]


async def watch(page: Any, run: asyncio.Task, on_sample: Any = None) -> list[dict[str, Any]]:
    """Samples of the page every 0.1 s until the run is over and the page says so."""
    await page.wait_for_function("() => / of \\d/.test(document.getElementById('iteration').textContent)", timeout=10_000)
    samples = []
    while not run.done():
        samples.append(await page.evaluate(SAMPLE))
        if on_sample is not None:
            await on_sample(samples[-1])
        await asyncio.sleep(0.1)
    await run
    await page.wait_for_function("() => document.body.dataset.status === 'done'", timeout=10_000)
    samples.append(await page.evaluate(SAMPLE))
    return samples


def in_order(values: list[str]) -> list[str]:
    seen: list[str] = []
    for value in values:
        if not seen or seen[-1] != value:
            seen.append(value)
    return seen


async def shown_events(page: Any) -> dict[str, Any]:
    return await page.evaluate("""() => ({
      events: Number(document.body.dataset.events), duplicates: Number(document.body.dataset.duplicates),
      rows: [...document.querySelectorAll("#log li")].map((li) => Number(li.dataset.line)),
      ranked: document.querySelectorAll("#history .iteration").length,
    })""")


async def test_the_run_page_shows_images_arriving_and_the_iteration_advancing_without_a_reload(tmp_path: Path) -> None:
    # every lane rendered (no repeat skipped), so that each iteration shows four images
    settings = sim_settings(tmp_path, n=4, m=2, iterations=3, variants=None, **LATENCIES)
    bus = LiveBus()
    async with serving(settings.runs_dir, port=0, live_bus=bus) as server, browser_page(tmp_path / "profile") as page:
        run, folder = await start(settings, bus)
        navigations: list[str] = []
        page.on("framenavigated", lambda frame: navigations.append(frame.url))
        await page.goto(server.run_url(folder.name))
        await page.evaluate("window.__samePage = true")
        shots = os.environ.get("BEAMSEARCH_SCREENSHOTS")

        async def maybe_screenshot(sample: dict[str, Any]) -> None:
            if shots and sample["iteration"] == "2 of 3" and 0 < sample["images"] < 4 and not Path(shots, "live.png").exists():
                await page.screenshot(path=str(Path(shots, "live.png")), full_page=True)

        samples = await watch(page, run, maybe_screenshot)
        assert in_order([s["iteration"] for s in samples]) == ["1 of 3", "2 of 3", "3 of 3"]
        for iteration in ("2 of 3", "3 of 3"):  # each refinement's four cards come first, then their images
            counts = in_order([str(s["images"]) for s in samples if s["iteration"] == iteration and s["cards"] == 4])
            assert counts[0] == "0" and counts[-1] == "4" and len(counts) >= 3, (iteration, counts)
        assert any(s["unscored"] for s in samples)  # an image shows the moment it lands, before its judges answer
        stages = {stage for s in samples for stage in s["stages"]}
        assert {"critique of its parent", "painting", "judging", "done"} <= stages  # live progress, not only the log
        assert all(s["same"] for s in samples) and navigations == [server.run_url(folder.name)]
        shown = await shown_events(page)
        assert shown["events"] == len(log_lines(folder)) and shown["duplicates"] == 0 and shown["ranked"] == 3


async def test_after_the_stream_drops_the_page_resumes_and_shows_no_event_twice(tmp_path: Path) -> None:
    settings = sim_settings(tmp_path, n=4, m=2, iterations=3, **LATENCIES)
    # no bus: the page follows the log alone, as `beamsearch serve` does beside a run in another process
    async with serving(settings.runs_dir, port=0) as server, browser_page(tmp_path / "profile") as page:
        run, folder = await start(settings, None)
        await page.goto(server.run_url(folder.name))
        dropped: list[str] = []

        async def drop(sample: dict[str, Any]) -> None:
            if sample["iteration"] in ("2 of 3", "3 of 3") and sample["iteration"] not in dropped and sample["images"] >= 1:
                dropped.append(sample["iteration"])
                server.streams.close_all()  # the server ends every stream; the browser reconnects by itself

        samples = await watch(page, run, drop)
        assert dropped == ["2 of 3", "3 of 3"]
        assert samples[-1]["connections"] == 3 and server.streams.resumed >= 2  # reconnected with Last-Event-ID
        shown = await shown_events(page)
        lines = log_lines(folder)
        assert shown["duplicates"] == 0
        assert shown["rows"] == lines and shown["events"] == len(lines)  # each line once, in order
        assert shown["ranked"] == 3


HOSTILE = '<img src=x onerror="window.__pwned=1"></script><script>window.__pwned=2</script>'


class HostileCritic:
    """The simulator, with markup in every critique it writes (as a model might answer)."""

    def __init__(self, simulator: Simulator) -> None:
        self.sim = simulator

    async def complete(self, request: TextRequest) -> TextResult:
        result = await self.sim.complete(request)
        if request.task != "critique":
            return result
        answer = json.loads(result.text)
        answer["critique"] = f"{HOSTILE} {answer['critique']}"
        return TextResult(json.dumps(answer), result.usage, result.meta)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sim, name)


async def test_a_hostile_prompt_critique_and_run_folder_render_as_text(tmp_path: Path) -> None:
    settings = sim_settings(tmp_path, n=2, m=1, iterations=2, prompt=f"a red lighthouse {HOSTILE}")
    sim = Simulator(settings.seed, settings.sim)
    critic = HostileCritic(sim)
    result = await app.start_run(settings, providers=Providers(text=critic, image=sim, vision=sim, labels={}))
    folder = result.store.path
    critiques = [e.get("critique") or "" for e in read_events(folder) if e["type"] == "candidate"]
    assert any(HOSTILE in critique for critique in critiques)  # the critiques really carry it
    forged = [{"type": "candidate", "id": HOSTILE, "iteration": 1, "index": 7, "parent": "i0c00", "what": HOSTILE,
               "how": HOSTILE, "prompt": HOSTILE, "image": "javascript:alert(1)", "total": 99.0, "alignment": 99,
               "aesthetic": 9, "found": [HOSTILE], "missing": [HOSTILE], "weak": [HOSTILE], "critique": HOSTILE,
               "alignment_notes": HOSTILE, "status": "done"},
              {"type": "step", "key": "i1/c07/image", "service": "image", "result": {"path": "../../../etc/passwd"}},
              {"type": "lane_failed", "id": "i1c09", "iteration": 1, "parent": "i0c00", "error": HOSTILE}]
    append(folder, b"".join(json.dumps(e).encode() + b"\n" for e in forged))
    async with serving(settings.runs_dir, port=0) as server, browser_page(tmp_path / "profile") as page:
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: dialogs.append(dialog.message))
        await page.add_init_script("window.__violations = []; document.addEventListener('securitypolicyviolation',"
                                   " (e) => window.__violations.push(e.violatedDirective));")
        for url in (server.url, server.run_url(folder.name)):
            await page.goto(url)
            await page.wait_for_function("(text) => document.body.textContent.includes(text)", arg=HOSTILE, timeout=10_000)
            await page.wait_for_timeout(300)
            found = await page.evaluate("""(hostile) => ({
              injected: document.querySelectorAll('img[src="x"], script:not([src]), [onerror]').length,
              pwned: window.__pwned === undefined ? null : window.__pwned,
              violations: window.__violations,
              forged: [...document.querySelectorAll(".card")].filter((c) => c.dataset.id === hostile)
                .map((c) => [c.querySelector(".id").textContent, c.querySelector(".what").textContent]),
              errors: [...document.querySelectorAll(".card.failed .error")].map((e) => e.textContent),
              critiques: [...document.querySelectorAll(".kv dd")].filter((dd) => dd.textContent.startsWith(hostile + " The ")).length,
              prompt: (document.querySelector("#prompt, .run .prompt") || {}).textContent,
              images: [...document.images].map((i) => i.getAttribute("src")),
              links: [...document.links].map((a) => a.getAttribute("href")),
            })""", HOSTILE)
            assert found["injected"] == 0 and found["pwned"] is None and found["violations"] == []
            assert found["prompt"] == settings.prompt
            assert all(src.startswith("/runs/") for src in found["images"])
            assert not any(href.startswith("javascript") or "passwd" in href for href in found["links"])
            if url != server.url:  # the real critiques, and a forged candidate and failed lane, as text
                assert found["critiques"] >= 2
                assert found["forged"] == [[HOSTILE, HOSTILE]] and found["errors"] == [HOSTILE]
        assert dialogs == []
