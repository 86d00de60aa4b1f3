"""The whole path (issue 11): what a client receives, measured against the engine's own stream.

  python bench/bench_client.py [--runs 3] [--max-tokens 128] [--n-threads N] [--skip page,cli,api]

Every path runs the real ``run.py`` in a child process under bench/client_hook.py, which
records when each text chunk left the engine (wall clock); the clients stamp with the same
clock, on the same greedy answer to the same prompt in a new conversation (memory off):

- engine alone: ``run.py chat --json`` (nothing streams to a client while it generates)
- page: ``run.py serve`` opened in Debian's Chromium (Playwright); a MutationObserver stamps
  every change of the answer's DOM node, and a wrapper around ``fetch`` records the SSE
  frames Gradio sends (to check they carry diffs, not the whole answer per token)
- CLI: ``run.py chat`` with stdout read from a pipe as it arrives
- API: ``/v1/chat/completions`` streamed from the same ``run.py serve`` (official openai client)

For each path: client tokens/s = (n - 1) / (time the client saw the whole answer - time it saw
the first text), n the engine's chunk count; printed / the engine's own tokens/s in that very
turn (does the client keep up?) and / the engine alone (does serving the client slow the engine
down?), with the lag from the engine's last token to the client (targets: >= 0.95, <= 100 ms).
Runs are interleaved so the machine's noise hits every path alike; medians are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from page_support import chromium  # noqa: E402
from serving import free_port  # noqa: E402

PROMPT = "Write a long, detailed story about a lighthouse keeper and a storm."
CHILD_ENV = {
    **os.environ,
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "ANONYMIZED_TELEMETRY": "False",
}

# Runs before the page's own scripts: tees Gradio's SSE stream, and watches one answer node.
PAGE_PROBE = """
window.__probe = {frames: [], snaps: []};
const originalFetch = window.fetch.bind(window);
window.fetch = async (input, init) => {
  const response = await originalFetch(input, init);
  const url = typeof input === "string" ? input : input.url;
  if (!url.includes("/queue/data") || !response.body) return response;
  const [mine, theirs] = response.body.tee();
  (async () => {
    const reader = mine.getReader();
    const decoder = new TextDecoder();
    for (;;) {
      const {done, value} = await reader.read();
      if (done) break;
      window.__probe.frames.push([Date.now(), value.length, decoder.decode(value, {stream: true})]);
    }
  })();
  return new Response(theirs, {status: response.status, statusText: response.statusText,
                               headers: response.headers});
};
window.__watch = (index) => {
  const chat = document.querySelector("#hearth-chat");
  const record = () => {
    const node = chat.querySelectorAll("[data-testid=bot]")[index];
    window.__probe.snaps.push([Date.now(), node ? node.textContent : null]);
  };
  new MutationObserver(record).observe(chat, {childList: true, subtree: true, characterData: true});
};
"""


@dataclass
class Turn:
    """One answer: when its chunks left the engine, and when the client had the first and all text."""

    engine: list[float]
    client_first: float
    client_last: float

    @property
    def engine_rate(self) -> float:
        return (len(self.engine) - 1) / (self.engine[-1] - self.engine[0])

    @property
    def client_rate(self) -> float:
        return (len(self.engine) - 1) / (self.client_last - self.client_first)

    @property
    def end_lag(self) -> float:
        return self.client_last - self.engine[-1]


class Stamps:
    """The hook's output file: one JSON line per generation."""

    def __init__(self, path: Path):
        self.path = path
        path.touch()

    def lines(self) -> list[dict]:
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def wait_for(self, count: int, timeout: float = 600) -> dict:
        """The ``count``-th generation (1-based), once it has ended."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = self.lines()
            if len(lines) >= count:
                return lines[count - 1]
            time.sleep(0.05)
        raise TimeoutError(f"no generation number {count} in {self.path}")


def hooked(stamps: Stamps, data_dir: Path, flags: list[str], *command: str) -> list[str]:
    hook = [sys.executable, str(ROOT / "bench" / "client_hook.py"), str(stamps.path)]
    return [*hook, "run.py", "--data-dir", str(data_dir), "--no-memory", *flags, *command]


def generation_flags(max_tokens: int) -> list[str]:
    return ["--temperature", "0", "--max-tokens", str(max_tokens)]


# engine alone and the CLI


def engine_alone(work: Path, flags: list[str], max_tokens: int) -> list[float]:
    stamps = Stamps(work / f"alone-{time.monotonic_ns()}.jsonl")
    command = hooked(stamps, work / "alone", flags, "chat", PROMPT, "--json", *generation_flags(max_tokens))
    subprocess.run(command, cwd=ROOT, env=CHILD_ENV, capture_output=True, check=True, timeout=600)
    return stamps.wait_for(1)["stamps"]


def cli_turn(work: Path, flags: list[str], max_tokens: int) -> Turn:
    stamps = Stamps(work / f"cli-{time.monotonic_ns()}.jsonl")
    command = hooked(stamps, work / "cli", flags, "chat", PROMPT, *generation_flags(max_tokens))
    proc = subprocess.Popen(
        command, cwd=ROOT, env=CHILD_ENV, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert proc.stdout is not None
    reads: list[tuple[float, int]] = []  # (time, bytes so far)
    total = 0
    while chunk := os.read(proc.stdout.fileno(), 65536):
        total += len(chunk)
        reads.append((time.time(), total))
    proc.wait(timeout=60)
    generated = stamps.wait_for(1)
    answer = len(generated["text"].encode("utf-8"))  # then the CLI writes one newline
    first = next(t for t, n in reads if n > 0)
    last = next(t for t, n in reads if n >= answer)
    return Turn(engine=generated["stamps"], client_first=first, client_last=last)


# the page and the API, from one `run.py serve`


@contextmanager
def served(work: Path, flags: list[str]) -> Iterator[tuple[str, Stamps]]:
    stamps = Stamps(work / "serve.jsonl")
    port = free_port()
    command = hooked(stamps, work / "served", flags, "serve", "--port", str(port))
    log = (work / "serve.log").open("wb")
    proc = subprocess.Popen(command, cwd=ROOT, env=CHILD_ENV, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        import httpx

        for _ in range(1200):
            try:
                httpx.get(base + "/health", timeout=2)
                break
            except httpx.HTTPError:
                if proc.poll() is not None:
                    raise RuntimeError((work / "serve.log").read_text()[-3000:]) from None
                time.sleep(0.25)
        yield base, stamps
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()


def api_turn(base: str, stamps: Stamps, max_tokens: int) -> Turn:
    import openai

    before = len(stamps.lines())
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused-on-loopback")
    model = client.models.list().data[0].id
    seen: list[float] = []
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": PROMPT}],
        max_tokens=max_tokens,
        temperature=0.0,
        stream=True,
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            seen.append(time.time())
    client.close()
    return Turn(engine=stamps.wait_for(before + 1)["stamps"], client_first=seen[0], client_last=seen[-1])


@dataclass
class PageTurn:
    turn: Turn
    frames: list[tuple[float, int, str]]
    answer: str


def page_turn(browser, base: str, stamps: Stamps, max_tokens: int) -> PageTurn:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.add_init_script(PAGE_PROBE)
        page.goto(base)
        page.wait_for_selector("#message-box textarea")
        for elem_id, value in (("ctl-temperature", "0"), ("ctl-max_tokens", str(max_tokens))):
            box = page.locator(f"#{elem_id} input[type=number]")
            box.fill(value)
            box.press("Enter")
            box.blur()
        page.evaluate("window.__watch(0)")
        before = len(stamps.lines())
        page.fill("#message-box textarea", PROMPT)
        page.click("#send")
        page.wait_for_function(
            "[...document.querySelectorAll('#hearth-chat *')].some(e => e.children.length === 0 && "
            "e.textContent.includes('tok/s'))",
            polling=250,  # a timer: the default (requestAnimationFrame) makes the page draw 60 frames a second
            timeout=600_000,
        )
        generated = stamps.wait_for(before + 1)
        time.sleep(0.3)  # let the last frames and mutations land
        probe = page.evaluate("window.__probe")
    finally:
        page.close()
    snaps = [(t / 1000, text) for t, text in probe["snaps"] if text and text.strip() not in ("", "…")]
    final = snaps[-1][1]
    turn = Turn(
        engine=generated["stamps"],
        client_first=snaps[0][0],
        client_last=next(t for t, text in snaps if text == final),
    )
    frames = [(t / 1000, n, text) for t, n, text in probe["frames"]]
    return PageTurn(turn=turn, frames=frames, answer=generated["text"])


def frame_report(frames: list[tuple[float, int, str]], answer_chars: int) -> str:
    """How Gradio streamed the answer: diffs (append) or whole messages per token (replace)."""
    generating = [text for _, _, text in frames if "process_generating" in text]
    sent = sum(len(text) for text in generating)
    appends = sum(text.count('"append"') for text in generating)
    replaces = sum(text.count('"replace"') for text in generating)
    biggest = max((len(text) for text in generating), default=0)
    return (
        f"{len(generating)} SSE frames while generating, {sent} bytes for a {answer_chars}-character "
        f"answer ({sent / max(answer_chars, 1):.1f} bytes per answer character; largest frame "
        f"{biggest} bytes); ops: {appends} append, {replaces} replace"
    )


# the run


def measure(args: argparse.Namespace, work: Path) -> dict[str, list]:
    flags = ["--n-threads", str(args.n_threads)] if args.n_threads else []
    results: dict[str, list] = {"alone": [], "page": [], "cli": [], "api": []}
    skip = set(args.skip.split(","))
    with served(work, flags) as (base, stamps), _browser(skip) as browser:
        # one untimed turn per path: the server's warm-up and Chromium's first page are not the subject
        if "page" not in skip:
            page_turn(browser, base, stamps, 8)
        if "api" not in skip:
            api_turn(base, stamps, 8)
        steps: list[tuple[str, Callable[[], object]]] = [
            ("alone", lambda: engine_alone(work, flags, args.max_tokens)),
            ("page", lambda: page_turn(browser, base, stamps, args.max_tokens)),
            ("cli", lambda: cli_turn(work, flags, args.max_tokens)),
            ("api", lambda: api_turn(base, stamps, args.max_tokens)),
        ]
        for _ in range(args.runs):
            for name, step in steps:
                if name not in skip:
                    results[name].append(step())
    return results


@contextmanager
def _browser(skip: set[str]):
    if "page" in skip:
        yield None
        return
    with chromium() as browser:
        yield browser


def report(results: dict[str, list]) -> None:
    alone = statistics.median((len(s) - 1) / (s[-1] - s[0]) for s in results["alone"])
    print(f"engine alone (run.py chat --json): {alone:6.1f} tokens/s (median of {len(results['alone'])})")
    print("path   client tok/s  engine tok/s (same turn)  client/same turn  client/engine alone  end lag ms")
    for name in ("page", "cli", "api"):
        turns = [r.turn if isinstance(r, PageTurn) else r for r in results[name]]
        if not turns:
            continue
        client = statistics.median(t.client_rate for t in turns)
        engine = statistics.median(t.engine_rate for t in turns)
        same = statistics.median(t.client_rate / t.engine_rate for t in turns)
        lag = statistics.median(t.end_lag for t in turns) * 1000
        lags = " ".join(f"{t.end_lag * 1000:.0f}" for t in turns)
        print(
            f"{name:5} {client:13.1f} {engine:13.1f} {same:26.3f} {client / alone:20.3f} {lag:11.0f}"
            f"  (lags {lags})"
        )
    print("targets: client / engine >= 0.95, end lag <= 100 ms")
    if results["page"]:
        last = results["page"][-1]
        print("page:", frame_report(last.frames, len(last.answer)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--n-threads", type=int, default=None)
    parser.add_argument("--skip", default="", help="comma-separated: page,cli,api")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        report(measure(args, Path(tmp)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
