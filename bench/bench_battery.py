"""The hardening battery: load, faults and hostile input against a real Hearth server.

    python bench/bench_battery.py                 # the full battery (10 minutes of load)
    python bench/bench_battery.py --minutes 2 --chats 8 --ingests 3   # a shorter run

Every check runs against ``python run.py serve`` started on a random loopback port with a
fresh data directory, the bundled model, real SQLite and Chroma. It prints one line per
check and a summary line; the exit status is 1 when a count that must be 0 is not.

- load: N client processes chat at once through the page's port (``/v1`` with Hearth turns:
  saved conversation, memory, retrieval) for M minutes; then every acknowledged user message
  and answer must be in the database.
- faults: kill -9 of the server at random points of chats, and of ``run.py ingest`` at random
  points of ingests; after each restart, count lost acknowledged messages, conversations that
  can no longer continue, and half-indexed documents.
- hostile: hostile files through ingest, DNS rebinding, cross-origin writes and uploads, and
  hostile search/memory queries: tracebacks, requests leaving the machine, data returned to a
  foreign origin.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from page_support import CHROMIUM, chromium  # noqa: E402
from serving import free_port  # noqa: E402

from bench.battery_inputs import HOSTILE_QUERIES, hostile_files  # noqa: E402

TOPICS = ["tea", "rivers", "bicycles", "owls", "volcanoes", "chess", "bread", "lighthouses"]


def clean_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False")
    return env


class Server:
    """``python run.py serve`` in its own process; kill -9 and restart on the same data dir."""

    def __init__(self, data_dir: Path, log: Path):
        self.data_dir, self.log, self.port = data_dir, log, free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 180) -> None:
        cmd = [sys.executable, "run.py", "--data-dir", str(self.data_dir), "serve", "--port", str(self.port)]
        with self.log.open("a") as log:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=clean_env())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}; see {self.log}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"the server did not answer /health within {timeout} s; see {self.log}")

    def kill9(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill9()

    def tracebacks(self) -> int:
        return self.log.read_text(errors="replace").count("Traceback (most recent call last)")


# one Hearth turn through /v1


def model_id(url: str, _known: dict[str, str] = {}) -> str:  # noqa: B006 - a cache, on purpose
    if url not in _known:
        _known[url] = httpx.get(url + "/v1/models", timeout=30).json()["data"][0]["id"]
    return _known[url]


def hearth_turn(
    url: str,
    text: str,
    conversation_id: str | None,
    *,
    stream: bool,
    max_tokens: int = 48,
    on_chunk=None,
    timeout: float = 300,
) -> dict:
    """Returns {"conversation_id", "content", "ttft", "acked_user", "done"}."""
    body = {
        "model": model_id(url),
        "messages": [{"role": "user", "content": text}],
        "max_tokens": max_tokens,
        "temperature": 0.7,
        "stream": stream,
        "hearth": {"conversation_id": conversation_id, "memory": True},
    }
    out = {
        "conversation_id": conversation_id,
        "content": "",
        "ttft": None,
        "acked_user": False,
        "done": False,
    }
    start = time.monotonic()
    if not stream:
        r = httpx.post(url + "/v1/chat/completions", json=body, timeout=timeout)
        r.raise_for_status()
        data = r.json()
        out.update(content=data["choices"][0]["message"]["content"] or "", acked_user=True, done=True)
        out["conversation_id"] = data["hearth"]["conversation_id"]
        out["ttft"] = time.monotonic() - start
        return out
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=timeout) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith("data: "):
                continue
            payload = line[6:]
            if payload == "[DONE]":
                out["done"] = True
                break
            chunk = json.loads(payload)
            if chunk.get("hearth"):
                out["conversation_id"] = chunk["hearth"].get("conversation_id") or out["conversation_id"]
            for choice in chunk.get("choices", []):
                delta = (choice.get("delta") or {}).get("content") or ""
                if delta:
                    if out["ttft"] is None:
                        out["ttft"] = time.monotonic() - start
                    out["acked_user"] = True  # the server saves the user message before it streams
                    out["content"] += delta
            if on_chunk:
                on_chunk(out)
    return out


# checks against the database (server stopped)


def stored_messages(data_dir: Path) -> dict[str, list[tuple[str, str]]]:
    with sqlite3.connect(f"file:{data_dir / 'hearth.db'}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT conversation_id, role, content FROM messages ORDER BY conversation_id, seq")
        out: dict[str, list[tuple[str, str]]] = {}
        for cid, role, content in rows:
            out.setdefault(cid, []).append((role, content or ""))
    return out


def count_lost(data_dir: Path, acks: list[dict]) -> int:
    """Acknowledged user messages and finished answers missing from the database."""
    stored, lost = stored_messages(data_dir), 0
    for ack in acks:
        messages = stored.get(ack["conversation_id"], [])
        if ack["acked_user"] and ("user", ack["text"]) not in messages:
            lost += 1
        if ack["done"] and not any(
            r == "assistant" and c.strip() == ack["content"].strip() for r, c in messages
        ):
            lost += 1
    return lost


def half_indexed(data_dir: Path, acked: set[str] = frozenset()) -> int:
    """Documents whose chunks are not all in both indexes (vectors and keywords), plus
    acknowledged documents that are missing."""
    code = (
        "import json,sys; from engine import Settings, build; "
        "from pathlib import Path; s = build(Settings(data_dir=Path(sys.argv[1])), load_model=False); "
        "print(json.dumps(s.documents.consistency())); s.close()"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(data_dir)],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        print(done.stderr[-2000:], file=sys.stderr)
        return -1
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return len(report["inconsistent"]) + len(acked - set(report["documents"]))


# load


def _client(url: str, index: int, deadline: float, queue) -> None:
    rng = random.Random(index)
    acks, ttfts, errors = [], [], 0
    while time.time() < deadline:
        conversation = None
        for turn in range(3):
            text = f"[client {index} turn {turn} {rng.random():.6f}] Tell me one fact about {rng.choice(TOPICS)}."
            try:
                result = hearth_turn(url, text, conversation, stream=turn > 0)
            except Exception as e:  # noqa: BLE001 - every failure is counted, none stops the client
                errors += 1
                print(f"client {index}: {type(e).__name__}: {e}", file=sys.stderr)
                break
            conversation = result["conversation_id"]
            acks.append({**result, "text": text})
            if result["ttft"] is not None:
                ttfts.append(result["ttft"])
            if time.time() >= deadline:
                break
    queue.put({"acks": acks, "ttfts": ttfts, "errors": errors})


def check_load(work: Path, minutes: float, clients: int) -> dict:
    server = Server(work / "load-data", work / "load.log")
    server.start()
    queue: mp.Queue = mp.Queue()
    deadline = time.time() + minutes * 60
    procs = [mp.Process(target=_client, args=(server.url, i, deadline, queue)) for i in range(clients)]
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    server.stop()
    acks = [a for r in results for a in r["acks"]]
    ttfts = sorted(t for r in results for t in r["ttfts"])
    p95 = ttfts[int(0.95 * (len(ttfts) - 1))] if ttfts else float("nan")
    return {
        "turns": len(acks),
        "errors": sum(r["errors"] for r in results),
        "lost": count_lost(server.data_dir, acks),
        "ttft_p50_s": statistics.median(ttfts) if ttfts else float("nan"),
        "ttft_p95_s": p95,
        "tracebacks": server.tracebacks(),
    }


# faults


def check_fault_chats(work: Path, chats: int, rng: random.Random) -> dict:
    server = Server(work / "faults-data", work / "faults.log")
    server.start()
    acks: list[dict] = []
    conversations: list[str] = []
    for i in range(chats):
        cid = rng.choice(conversations) if conversations and rng.random() < 0.5 else None
        if cid is None:
            text = f"[fault chat {i} opening {rng.random():.6f}] Hello, I collect {rng.choice(TOPICS)}."
            first = hearth_turn(server.url, text, None, stream=False, max_tokens=16)
            acks.append({**first, "text": text})
            cid = first["conversation_id"]
            conversations.append(cid)
        text = f"[fault chat {i} {rng.random():.6f}] Write a long story about {rng.choice(TOPICS)}."
        record = {"conversation_id": cid, "text": text, "content": "", "acked_user": False, "done": False}
        killer = threading.Timer(rng.uniform(0.0, 2.5), server.kill9)
        killer.start()
        try:
            record.update(
                hearth_turn(server.url, text, cid, stream=True, max_tokens=160, on_chunk=record.update)
            )
        except (httpx.HTTPError, RuntimeError):
            pass  # killed mid-stream: what was acknowledged is in ``record``
        killer.join()
        acks.append(record)
        server.kill9()  # the stream may have ended before the timer: kill anyway, then restart
        server.start()
    stuck = 0
    for cid in conversations:
        try:
            result = hearth_turn(server.url, "Please continue.", cid, stream=False, max_tokens=8)
            stuck += 0 if result["done"] else 1
        except httpx.HTTPError as e:
            print(f"conversation {cid} cannot continue: {e}", file=sys.stderr)
            stuck += 1
    server.stop()
    return {
        "kills": chats,
        "lost": count_lost(server.data_dir, acks),
        "stuck_conversations": stuck,
        "tracebacks": server.tracebacks(),
    }


def real_corpus(folder: Path, files: int = 40) -> Path:
    """Real public text already on the machine: Debian's license and copyright files."""
    folder.mkdir(parents=True, exist_ok=True)
    sources = sorted(Path("/usr/share/common-licenses").glob("*")) + sorted(
        Path("/usr/share/doc").glob("*/copyright")
    )
    taken = 0
    for source in sources:
        if taken >= files:
            break
        try:
            text = source.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if len(text) < 2000:
            continue
        (folder / f"{source.parent.name}-{source.name}.txt").write_text(text, encoding="utf-8")
        taken += 1
    return folder


def check_fault_ingests(work: Path, ingests: int, rng: random.Random) -> dict:
    data = work / "ingest-data"
    acked: set[str] = set()
    for i in range(ingests):
        corpus = real_corpus(work / f"corpus-{i}", files=3 + 4 * i)
        cmd = [
            sys.executable,
            "run.py",
            "--data-dir",
            str(data),
            "ingest",
            str(corpus),
            "--collection",
            f"battery{i}",
            "--json",
        ]
        proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=clean_env()
        )
        threading.Timer(
            rng.uniform(3.0, 40.0), lambda p=proc: p.poll() is None and os.kill(p.pid, signal.SIGKILL)
        ).start()
        out = proc.stdout.read()
        proc.wait()
        for result in _json_results(out):  # printed at the end: only a finished ingest acknowledges
            if result.get("status") in ("added", "replaced", "unchanged"):
                acked.add(result["id"])
    return {"kills": ingests, "acked_documents": len(acked), "half_indexed": half_indexed(data, acked)}


def _json_results(out: str) -> list[dict]:
    try:
        results = json.loads(out)
    except json.JSONDecodeError:
        return []
    return results if isinstance(results, list) else []


# hostile input


class Collector(ThreadingHTTPServer):
    """Stands for the outside world: any request reaching it is data leaving the machine."""

    hits = 0


def start_collector() -> Collector:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            self.server.hits += 1
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    collector = Collector(("127.0.0.2", 0), Handler)
    threading.Thread(target=collector.serve_forever, daemon=True).start()
    return collector


def _ingest_hostile(work: Path, data: Path, collector: str) -> tuple[int, int, bool]:
    folder = work / "hostile-files"
    files = hostile_files(folder, collector)
    cmd = [
        sys.executable,
        "run.py",
        "--data-dir",
        str(data),
        "ingest",
        str(folder),
        "--collection",
        "hostile",
        "--json",
    ]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=clean_env(), timeout=900)
    results = _json_results(done.stdout)
    tracebacks = done.stderr.count("Traceback (most recent call last)")
    good_in = any(r.get("status") == "added" and "good.txt" in str(r.get("path", "")) for r in results)
    return tracebacks, len(files) - len(results), good_in


def check_hostile(work: Path) -> dict:
    collector = start_collector()
    where = f"127.0.0.2:{collector.server_address[1]}"
    data = work / "hostile-data"
    tracebacks, unanswered, good_in = _ingest_hostile(work, data, where)
    server = Server(data, work / "hostile.log")
    server.start()
    marker = f"PRIVATE-{random.randrange(10**9)}"
    hearth_turn(server.url, f"My bank PIN note: {marker}", None, stream=False, max_tokens=8)
    foreign = foreign_origin_leaks(server.url, server.port, marker)
    errors = 0
    for query in HOSTILE_QUERIES:
        query = query.replace("{collector}", where)
        try:
            r = httpx.post(
                server.url + "/v1/chat/completions",
                timeout=300,
                json={
                    "model": model_id(server.url),
                    "max_tokens": 16,
                    "messages": [{"role": "user", "content": query}],
                    "hearth": {"memory": True, "collections": ["hostile"]},
                },
            )
            errors += r.status_code >= 500
        except httpx.HTTPError:
            errors += 1
    browser_hits = remote_images_in_browser(server.url, where)
    server.stop()
    return {
        "ingest_tracebacks": tracebacks,
        "files_without_result": unanswered,
        "good_file_indexed": good_in,
        "query_errors": errors,
        "server_tracebacks": server.tracebacks(),
        "foreign_origin_leaks": foreign,
        "requests_leaving": collector.hits,
        "browser_checked": browser_hits is not None,
    }


def foreign_origin_leaks(url: str, port: int, marker: str) -> int:
    """DNS rebinding and cross-site requests: any 2xx, private text or CORS grant is a leak."""
    evil = "http://attacker.example"
    leaks = 0
    probes = [
        ("GET", "/", {"Host": f"attacker.example:{port}"}, None),
        ("GET", "/config", {"Host": "attacker.example"}, None),
        ("GET", "/gradio_api/info", {"Host": "attacker.example"}, None),
        (
            "POST",
            "/v1/chat/completions",
            {"Host": "attacker.example", "Origin": evil},
            {
                "model": model_id(url),
                "messages": [{"role": "user", "content": "PIN?"}],
                "hearth": {"memory": True},
            },
        ),
        (
            "POST",
            "/v1/chat/completions",
            {"Origin": evil},
            {
                "model": model_id(url),
                "messages": [{"role": "user", "content": "PIN?"}],
                "hearth": {"memory": True},
            },
        ),
        ("POST", "/gradio_api/queue/join", {"Origin": evil}, {"data": [], "fn_index": 0}),
        ("OPTIONS", "/v1/chat/completions", {"Origin": evil, "Access-Control-Request-Method": "POST"}, None),
    ]
    for method, path, headers, body in probes:
        r = httpx.request(method, url + path, headers=headers, json=body, timeout=60)
        granted = r.headers.get("access-control-allow-origin") in (evil, "*")
        if r.status_code < 400 or marker in r.text or granted:
            print(f"foreign origin leak: {method} {path} -> {r.status_code}", file=sys.stderr)
            leaks += 1
    upload = httpx.post(
        url + "/gradio_api/upload", headers={"Origin": evil}, files={"files": ("x.txt", b"hello")}, timeout=60
    )
    leaks += upload.status_code < 400
    return leaks


def remote_images_in_browser(url: str, collector: str) -> int | None:
    """Open the page on a chat whose text holds remote images; None when no browser is here."""
    try:
        import playwright.sync_api  # noqa: F401 - only to know whether it is here
    except ImportError:
        return None
    if not Path(CHROMIUM).exists():
        return None
    text = f"Show ![a](http://{collector}/md.png) and <img src='http://{collector}/tag.png'> please"
    hearth_turn(url, text, None, stream=False, max_tokens=8)
    with chromium() as browser:
        page = browser.new_page()
        page.goto(url)
        page.wait_for_selector("#chat-list")
        page.locator("#chat-list label").first.click()
        page.wait_for_timeout(3000)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="minutes of load (default 10)")
    parser.add_argument("--clients", type=int, default=8, help="client processes under load (default 8)")
    parser.add_argument("--chats", type=int, default=20, help="chats killed mid-answer (default 20)")
    parser.add_argument("--ingests", type=int, default=5, help="ingests killed mid-way (default 5)")
    parser.add_argument("--only", choices=["load", "faults", "hostile"], default=None)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    must_be_zero: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="hearth-battery-") as tmp:
        work = Path(tmp)
        if args.only in (None, "load"):
            load = check_load(work, args.minutes, args.clients)
            print(
                f"load: {args.clients} clients x {args.minutes:g} min: {load['turns']} turns, errors "
                f"{load['errors']}, lost {load['lost']}, TTFT p50 {load['ttft_p50_s']:.2f} s, p95 "
                f"{load['ttft_p95_s']:.2f} s, server tracebacks {load['tracebacks']}"
            )
            must_be_zero.update({"load errors": load["errors"], "load lost": load["lost"]})
        if args.only in (None, "faults"):
            chats = check_fault_chats(work, args.chats, rng)
            print(
                f"faults/chats: {chats['kills']} kill -9: lost acknowledged messages {chats['lost']}, "
                f"conversations that cannot continue {chats['stuck_conversations']}"
            )
            ingests = check_fault_ingests(work, args.ingests, rng)
            print(
                f"faults/ingests: {ingests['kills']} kill -9 ({ingests['acked_documents']} documents "
                f"acknowledged): half-indexed documents {ingests['half_indexed']}"
            )
            must_be_zero.update(
                {
                    "lost messages": chats["lost"],
                    "stuck conversations": chats["stuck_conversations"],
                    "half-indexed": abs(ingests["half_indexed"]),
                }
            )
        if args.only in (None, "hostile"):
            hostile = check_hostile(work)
            print(
                f"hostile/files: ingest tracebacks {hostile['ingest_tracebacks']}, files without a result "
                f"{hostile['files_without_result']}, good file indexed {hostile['good_file_indexed']}"
            )
            print(
                f"hostile/http: data to a foreign origin {hostile['foreign_origin_leaks']}, "
                f"{len(HOSTILE_QUERIES)} hostile queries -> server errors {hostile['query_errors']}, "
                f"server tracebacks {hostile['server_tracebacks']}"
            )
            print(
                f"hostile/leaks: requests leaving the machine {hostile['requests_leaving']} "
                f"(browser checked: {hostile['browser_checked']})"
            )
            must_be_zero.update(
                {
                    "ingest tracebacks": hostile["ingest_tracebacks"],
                    "files without result": hostile["files_without_result"],
                    "foreign origin": hostile["foreign_origin_leaks"],
                    "query errors": hostile["query_errors"],
                    "server tracebacks": hostile["server_tracebacks"],
                    "requests leaving": hostile["requests_leaving"],
                    "good file missing": int(not hostile["good_file_indexed"]),
                }
            )
    bad = {k: v for k, v in must_be_zero.items() if v}
    print(
        "summary: "
        + ("all zero" if not bad else "NOT ZERO: " + ", ".join(f"{k}={v}" for k, v in bad.items()))
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
