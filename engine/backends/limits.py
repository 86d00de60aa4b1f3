"""Limits that keep one bad setting or template from exhausting the machine.

Pure helpers (no llama_cpp import): the context a model may get from the memory its KV
cache would take, and a time limit for rendering an untrusted chat template.
"""

from __future__ import annotations

import ctypes
import os
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from ..errors import GenerationError

T = TypeVar("T")

#: bytes per element of each KV-cache type (block types: block bytes / 32 elements)
KV_TYPE_BYTES = {
    None: 2.0,
    "f16": 2.0,
    "bf16": 2.0,
    "f32": 4.0,
    "q8_0": 34 / 32,
    "q4_0": 18 / 32,
    "q4_1": 20 / 32,
    "q5_0": 22 / 32,
    "q5_1": 24 / 32,
    "iq4_nl": 18 / 32,
}
#: share of the available memory the KV cache may take (the model, the app and the OS need the rest)
KV_MEMORY_SHARE = 0.6
#: never clamp below this (a model too big for the machine fails on its own, with its own message)
MIN_CTX = 512
#: a chat template renders in milliseconds; one that takes this long is looping
TEMPLATE_SECONDS = 5.0


def kv_bytes_per_token(
    *,
    n_layer: int,
    n_head: int,
    n_head_kv: int,
    n_embd: int,
    key_length: int = 0,
    value_length: int = 0,
    type_k: str | None = None,
    type_v: str | None = None,
) -> int:
    """KV-cache bytes one token of context takes, from the model's hyperparameters."""
    if n_layer <= 0 or n_head <= 0 or n_head_kv <= 0:
        return 0  # recurrent models keep a fixed-size state instead
    head_k = key_length or n_embd // n_head
    head_v = value_length or n_embd // n_head
    k = n_head_kv * head_k * KV_TYPE_BYTES.get(type_k, 2.0)
    v = n_head_kv * head_v * KV_TYPE_BYTES.get(type_v, 2.0)
    return int(n_layer * (k + v))


def available_memory(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """Bytes of memory available for new allocations, or None where the OS does not say."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def fit_context(
    requested: int, *, n_ctx_train: int, per_token: int, available: int | None, model_bytes: int
) -> tuple[int, str]:
    """(n_ctx to load with, a note for the Model tab when it is less than ``requested``)."""
    n_ctx, notes = requested, []
    if 0 < n_ctx_train < n_ctx:
        n_ctx = n_ctx_train
        notes.append(f"the model was trained on {n_ctx_train:,} tokens")
    if per_token > 0 and available is not None:
        room = int(available * KV_MEMORY_SHARE) - model_bytes
        fits = max(MIN_CTX, room // per_token // 256 * 256)
        if fits < n_ctx:
            n_ctx = fits
            notes.append(
                f"its KV cache takes {per_token * requested / 2**30:,.1f} GiB at {requested:,} tokens and "
                f"{available / 2**30:,.1f} GiB of memory is free"
            )
    if n_ctx == requested:
        return n_ctx, ""
    return n_ctx, f"Context set to {n_ctx:,} tokens instead of {requested:,}: " + "; ".join(notes) + "."


class _TemplateTimeoutError(Exception):
    """Raised inside a runaway template render to end it."""


class _Worker:
    """A long-lived thread for ``call_with_deadline``: starting a thread per render cost
    2.5-4 ms here, every turn (twice for an API call)."""

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._serve, daemon=True, name="hearth-template")
        self.thread.start()

    def _serve(self) -> None:
        try:
            while (job := self.jobs.get()) is not None:
                job()
        except _TemplateTimeoutError:  # a stop that landed after its job: this worker was retired
            pass


_worker: _Worker | None = None
#: held by the call using ``_worker``; a call meanwhile (another thread's render) gets a thread of its own
_worker_lock = threading.Lock()


def call_with_deadline(fn: Callable[[], T], seconds: float = TEMPLATE_SECONDS) -> T:
    """``fn()`` run in a worker thread; past ``seconds`` it is interrupted and GenerationError raised.

    Jinja templates compile to plain Python loops, so an asynchronous exception stops them
    at the next bytecode; a sandbox alone would let nested loops run for hours.
    """
    global _worker
    outcome: dict[str, object] = {}
    done = threading.Event()

    def work() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
            outcome["error"] = e
        finally:
            done.set()

    if _worker_lock.acquire(blocking=False):
        try:
            if _worker is None:
                _worker = _Worker()
            worker = _worker
            worker.jobs.put(work)
            if not done.wait(seconds):
                _worker = None  # retired: the next call starts another
                worker.jobs.put(None)
                _interrupt(worker.thread, seconds)
        finally:
            _worker_lock.release()
    else:
        thread = threading.Thread(target=work, daemon=True, name="hearth-template")
        thread.start()
        if not done.wait(seconds):
            _interrupt(thread, seconds)
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]


def _interrupt(thread: threading.Thread, seconds: float) -> None:
    assert thread.ident is not None  # a started thread has one
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread.ident), ctypes.py_object(_TemplateTimeoutError)
    )
    thread.join(1.0)  # the render ends at its next bytecode (a retired worker then ends too)
    raise GenerationError(
        f"The chat template took more than {seconds:g} s to render and was stopped. Clear the "
        "template override in the Model tab (or use another model file)."
    )
