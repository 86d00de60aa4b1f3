"""Flash attention on a CPU: on or off as measured on this machine, not as assumed.

llama.cpp's own server turns flash attention on wherever it is supported, and on a GPU it is the
faster kernel. On a CPU it depends on the CPU: on this project's 2-core AMD machines it decoded
the bundled model 1.10x faster at short contexts, but on its 2-core Intel (Sapphire Rapids)
machines one-token decodes with it slowed with every token of context, to half the speed of the
plain kernels at 1,000 tokens (31 against 63 tokens/s), and prompt batches under 64 tokens ran at
two fifths of the speed (81 against 202; bench/bench_attention.py).

So where ``Settings.flash_attn`` is None (auto) and the model runs on the CPU, a child process
times one-token decodes of the bundled model at ``CONTEXT`` tokens of context both ways, at the
generation thread count, once per machine and llama.cpp build (``machine_facts``), and the faster
one is used (flash attention unless going without is clearly faster). A child: llama.cpp must not
run on a second thread of this process (see llama_thread), and a crash stays there.

Without flash attention every batch of two or more tokens computes alike on a CPU (the load-time
probe checks it: chunk_rule's any-batch rule), so the auto batch size there is ``PLAIN_BATCH``:
long prompts evaluate in large batches and every cached token stays reusable. With flash
attention it is ``FLASH_BATCH`` (see ``Settings.n_batch``).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

from ..config import Settings
from ..errors import ModelError
from . import amx_check
from .gguf_files import bundled_model_path
from .machine_facts import machine_key, recall, remember

log = logging.getLogger(__name__)

#: tokens of context the decodes are timed at: a short chat's system prompt, memory and turns
CONTEXT = 192
#: timed rounds per kernel (the best counts), and one-token decodes per round
ROUNDS, DECODES = 3, 8
#: how much faster going without must be to turn flash attention off (noise is not a reason)
MARGIN = 1.05
#: the auto batch sizes: with flash attention (every batch under its tiled kernel's 64 rows,
#: see chunk_rule) and without (at most; see plain_batch)
FLASH_BATCH, PLAIN_BATCH = 63, 512
#: without flash attention llama.cpp holds a batch's attention scores for the whole context,
#: n_ctx x n_batch x heads floats: n_ctx x n_batch stays under this (4M: 512 at 8,192 tokens of
#: context, 256 MB for a model of 16 heads)
PLAIN_SCORES = 1 << 22
_ROOT = Path(__file__).resolve().parents[2]
_CHILD = (
    "import json, sys\n"
    "sys.path.insert(0, sys.argv[1])\n"
    "from engine.backends.attention_check import measure\n"
    "print(json.dumps(measure(sys.argv[2], int(sys.argv[3]), sys.argv[4] == '1')))\n"
)
_TEXT = (
    "The ferry left the harbour at dawn, loaded with mail, two goats and a piano for the school. "
    "Halfway across, the fog came down so thick that the captain steered by the sound of the bell "
    "buoy alone, counting the strokes and the seconds between them as his father had taught him. "
)


@dataclasses.dataclass(frozen=True)
class Attention:
    flash: bool
    n_batch: int
    #: for the Model tab: on or off, and why
    note: str


def resolve(
    llama_cpp: ModuleType, settings: Settings, on_gpu: bool, threads: int, n_ctx: int
) -> tuple[Settings, Attention]:
    """``settings`` with flash attention and the batch size decided where they are None (auto),
    for a model on the GPU or not, decoding on ``threads`` CPU threads, with ``n_ctx``."""
    attention = choose(llama_cpp, settings, on_gpu=on_gpu, threads=threads, n_ctx=n_ctx)
    return dataclasses.replace(settings, flash_attn=attention.flash, n_batch=attention.n_batch), attention


def choose(
    llama_cpp: ModuleType, settings: Settings, *, on_gpu: bool, threads: int, n_ctx: int = 4096
) -> Attention:
    flash = settings.flash_attn
    if flash is not None:
        note = f"{'on' if flash else 'off'} (set)"
    elif on_gpu:
        flash, note = True, "on (GPU)"
    else:
        flash, note = _measured(llama_cpp, settings.data_dir, threads)
    n_batch = settings.n_batch or (FLASH_BATCH if flash else plain_batch(n_ctx))
    return Attention(flash, n_batch, note)


def plain_batch(n_ctx: int) -> int:
    """The auto batch size without flash attention: PLAIN_BATCH, less at long contexts (a batch's
    scores for the whole context within PLAIN_SCORES), never under 64."""
    return max(64, min(PLAIN_BATCH, PLAIN_SCORES // n_ctx))


def _measured(llama_cpp: ModuleType, data_dir: Path, threads: int) -> tuple[bool, str]:
    key = f"flash-attn:{machine_key(llama_cpp)}:{threads}"
    speeds = recall(data_dir, key)
    if not _valid(speeds):
        speeds = _timed_in_child(key, threads, amx_check.plain_buffers(llama_cpp))
        if speeds is None:
            return True, "on (the CPU check could not run)"
        remember(data_dir, key, speeds)
    on, off = speeds["on"], speeds["off"]
    flash = off < on * MARGIN
    faster = max(on, off) / min(on, off)
    how = f"{'with' if on >= off else 'without'} it {faster:.2f}x faster"
    note = (
        f"{'on' if flash else 'off'} (measured on this CPU: decoding at {CONTEXT} tokens of context, {how})"
    )
    log.info("flash attention %s", note)
    return flash, note


def _valid(speeds: object) -> bool:
    return isinstance(speeds, dict) and all(
        isinstance(speeds.get(k), float) and math.isfinite(speeds[k]) and speeds[k] > 0 for k in ("on", "off")
    )


@functools.cache  # one child per machine and process: the answer is a fact about the machine
def _timed_in_child(key: str, threads: int, plain: bool) -> dict[str, float] | None:
    try:
        model = str(bundled_model_path())
    except ModelError:
        return None
    command = [sys.executable, "-c", _CHILD, str(_ROOT), model, str(threads), "1" if plain else "0"]
    try:
        child = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
        speeds = json.loads(child.stdout.strip().splitlines()[-1]) if child.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError) as e:
        log.warning("the flash attention check failed (%s): keeping it on", e)
        return None
    if not _valid(speeds):
        log.warning("the flash attention check failed (exit %s): keeping it on", child.returncode)
        return None
    return speeds


def measure(model: str, threads: int, plain: bool) -> dict[str, float]:
    """One-token decodes per second at ``CONTEXT`` tokens of context, with flash attention
    ("on") and without ("off"), the two timed in turns. Runs in the check's child process."""
    import llama_cpp

    if plain:  # the kernels the parent loads with (amx_check)
        amx_check.without_extra_buffers(llama_cpp)
    models = {
        name: llama_cpp.Llama(
            model_path=model,
            n_ctx=CONTEXT + ROUNDS * DECODES + 8,
            n_batch=CONTEXT,
            flash_attn=flash,
            n_threads=threads,
            n_threads_batch=threads,
            verbose=False,
        )
        for name, flash in (("on", True), ("off", False))
    }
    text = _TEXT * (1 + CONTEXT // 40)
    tokens = models["on"].tokenize(text.encode(), add_bos=True, special=False)[:CONTEXT]
    for llm in models.values():
        llm.eval(tokens)
    best = dict.fromkeys(models, math.inf)
    for _ in range(ROUNDS):
        for name, llm in models.items():
            start = time.perf_counter()
            for token in tokens[:DECODES]:
                llm.eval([token])
            best[name] = min(best[name], (time.perf_counter() - start) / DECODES)
    return {name: 1 / seconds for name, seconds in best.items()}
