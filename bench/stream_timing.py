"""What the speed benches time on the in-process engine: one answer streamed from a backend.

Light on purpose (the engine only): bench_gpu imports it on a GPU machine that has none of the
tests' API support, and bench_api, bench_peer import it too.
"""

from __future__ import annotations

import time

from engine import GenerationConfig
from engine.types import Message

SYSTEM = "You are a helpful assistant."
Sample = tuple[float, float]  # (time to first token in s, tokens/s after it)


def backend_timing(backend, prompt: str, config: GenerationConfig) -> Sample:
    """One answer to ``prompt`` (after SYSTEM) streamed straight from the backend."""
    messages = [Message(role="system", content=SYSTEM), Message(role="user", content=prompt)]
    start = time.perf_counter()
    stamps, tokens = [], 0
    for chunk in backend.stream_chat(messages, config):
        if chunk.text:
            stamps.append(time.perf_counter())
        if chunk.usage:
            tokens = chunk.usage.completion_tokens
    return stamps[0] - start, (tokens - 1) / (stamps[-1] - stamps[0])
