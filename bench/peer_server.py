"""llama.cpp's own server for the peer benchmarks (bench_peer, bench_gpu): built by
build_llama_server.sh from the llama.cpp that llama-cpp-python vendors, started on a free port."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from serving import free_port  # noqa: E402

from engine.backends import amx_check  # noqa: E402


@contextmanager
def llama_server(
    binary: Path, model: Path, threads: int, threads_batch: int, n_ctx: int, extra: Sequence[str] = ()
) -> Iterator[str]:
    """llama-server on ``model`` with these threads and context (``extra``: more of its flags),
    on a free loopback port; yields its base URL once /health answers."""
    import httpx

    port = free_port()
    command = [str(binary), "-m", str(model), "--host", "127.0.0.1", "--port", str(port)]
    command += ["-t", str(threads), "-tb", str(threads_batch), "-c", str(n_ctx), *extra]
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(1200):
                if proc.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(log.read().decode(errors="replace")[-3000:])
                try:
                    if httpx.get(base + "/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.25)
            yield base
        finally:
            proc.terminate()
            proc.wait(timeout=60)


def same_kernels(info) -> list[str]:
    """llama-server flags for the CPU kernels Hearth's engine (``info``: its ModelInfo) runs:
    where AMX faults (engine/backends/amx_check), both go without extra buffer types."""
    return ["--no-repack"] if amx_check.NOTE in info.note else []


def server_binary(given: str | None) -> Path:
    if given:
        return Path(given)
    script = ROOT / "bench" / "build_llama_server.sh"
    out = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip().splitlines()[-1])
