"""Which KV cache positions a prompt may reuse, so that greedy answers stay deterministic.

The same prompt must give the same logits whatever the cache holds (temperature 0 and a
fixed seed promise the same answer), and llama.cpp's results depend in the last bits on how
the tokens were split into batches. So every evaluation splits a prompt at the same chunk
boundaries counted from position 0 (kv_snapshots.boundary: quarter-size chunks up to n_batch,
so a short shared system prompt is reusable, then n_batch chunks), and only positions
evaluated inside such a whole chunk ("clean") are reused. The partial last chunk of a prompt,
and generated tokens (decoded one by one), are evaluated again: by the next prompt, or
earlier by ``settle`` once the answer is done.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .kv_snapshots import boundary, common_prefix, head_chunk, reusable_prefix

if TYPE_CHECKING:
    from llama_cpp import Llama

log = logging.getLogger(__name__)


class CleanPrefix:
    """How far the live KV cache is clean; the backend holds its lock around every call."""

    def __init__(self) -> None:
        #: cache positions evaluated inside whole chunks from 0: the only reusable ones
        self.clean = 0
        #: whether the cache past ``clean`` holds our own generation's prompt and answer tokens
        #: (after an image turn or a cleared cache it does not: nothing to settle)
        self.settleable = False

    def reusable(self, llm: Llama, prompt: Sequence[int]) -> int:
        """How many leading tokens of ``prompt`` the cache holds, evaluated exactly as a fresh
        evaluation would: at a chunk boundary, and always short of the whole prompt (the last
        chunk is evaluated again to give the logits of the next token)."""
        common = common_prefix(llm.input_ids[: min(llm.n_tokens, self.clean)], prompt)
        return reusable_prefix(common, self.clean, llm.n_batch, len(prompt))

    def start_at(self, llm: Llama, prompt: Sequence[int]) -> int:
        """Cut the cache back to the reusable prefix of ``prompt``; returns its length."""
        reuse = self.reusable(llm, prompt)
        self.clean, self.settleable = 0, False  # until this evaluation ends (an error may leave it half done)
        if reuse > 0 and not llm._ctx.kv_cache_seq_rm(-1, reuse, -1):
            reuse = 0  # this model's memory cannot drop a tail (recurrent): start over
        if reuse == 0:
            llm.reset()
        llm.n_tokens = reuse
        return reuse

    def head(self, llm: Llama, prompt: Sequence[int], start: int) -> int:
        """Evaluate the prompt's head chunks (those before position n_batch) from ``start``, as
        llama-cpp-python's own evaluation splits only by n_batch; returns where it should go on.
        The last prompt token is always left to it (its logits come from that decode)."""
        stop = min(llm.n_batch, boundary(len(prompt) - 1, llm.n_batch))
        return _evaluate(llm, prompt, start, stop) if start < stop else start

    def evaluated(self, llm: Llama, prompt_len: int) -> None:
        """A generation over a ``prompt_len``-token prompt ended: its whole chunks are clean."""
        self.clean = boundary(min(prompt_len, llm.n_tokens), llm.n_batch)
        self.settleable = True

    def forget(self) -> None:
        """Something else filled the cache (an image turn, a reset): nothing in it is clean."""
        self.clean, self.settleable = 0, False

    def settle(self, llm: Llama) -> int:
        """Evaluate the generated tail again in whole chunks, so the next turn may reuse it;
        returns how many tokens that took (0: nothing whole to settle)."""
        start, end = self.clean, boundary(llm.n_tokens, llm.n_batch)
        if not self.settleable or end <= start or not llm._ctx.kv_cache_seq_rm(-1, start, -1):
            return 0
        self.settleable = False
        tokens = llm.input_ids[:end].tolist()  # a copy: evaluating writes input_ids
        llm.n_tokens, self.clean = start, 0  # until the evaluation ends
        try:
            _evaluate(llm, tokens, start, end)
        except (RuntimeError, ValueError) as e:
            log.warning("settling the cache failed: %s", e)
            return 0
        self.clean = end
        return end - start


def _evaluate(llm: Llama, tokens: Sequence[int], start: int, stop: int) -> int:
    """Evaluate ``tokens[start:stop]`` chunk by chunk at the shared boundaries (``start`` is one)."""
    n_batch = llm.n_batch
    position = start
    while position < min(stop, n_batch):  # head chunks, one decode each
        end = min(position + head_chunk(n_batch), stop)
        llm.eval(tokens[position:end])
        position = end
    if position < stop:  # from n_batch on, llama-cpp-python's own n_batch split is the schedule
        llm.eval(tokens[position:stop])
    return stop
