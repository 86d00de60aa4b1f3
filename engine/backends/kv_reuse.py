"""Which KV cache positions a prompt may reuse, so that greedy answers stay deterministic.

The same prompt must give the same logits whatever the cache holds (temperature 0 and a
fixed seed promise the same answer). ``chunk_rule.ChunkRule`` says which positions are clean
under the rule probed at load and how prompts are cut into batches; ``CleanPrefix`` keeps
track of how far the live cache is clean. Generated tokens (decoded one by one) are never
clean: they are evaluated again, by the next prompt or earlier by ``settle`` once the answer
is done.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .chunk_rule import ChunkRule, head_chunk
from .kv_snapshots import common_prefix

if TYPE_CHECKING:
    from llama_cpp import Llama

log = logging.getLogger(__name__)


class CleanPrefix:
    """How far the live KV cache is clean; the backend holds its lock around every call."""

    def __init__(self, rule: ChunkRule) -> None:
        self.rule = rule
        #: cache positions from 0 evaluated as a fresh evaluation would: the only reusable ones
        self.clean = 0
        #: whether the cache past ``clean`` holds our own generation's prompt and answer tokens
        #: (after an image turn or a cleared cache it does not: nothing to settle)
        self.settleable = False

    def reusable(self, llm: Llama, prompt: Sequence[int]) -> int:
        """How many leading tokens of ``prompt`` the cache holds, evaluated exactly as a fresh
        evaluation would, and always short of the whole prompt (its end is evaluated again to
        give the logits of the next token)."""
        common = common_prefix(llm.input_ids[: min(llm.n_tokens, self.clean)], prompt)
        return self.rule.reusable(common, self.clean, len(prompt))

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
        """Evaluate the part of the prompt from ``start`` that llama-cpp-python's own evaluation
        would not split as the rule needs; returns where it should go on. It splits only by
        n_batch, so the fixed rule's head chunks (before position n_batch) are evaluated here;
        under ``min_batch`` all but the prompt's last batch (``ChunkRule.sizes``) is. The
        last prompt token is always left to it (its logits come from that decode)."""
        if self.rule.min_batch:
            stop = len(prompt) - self.rule.sizes(len(prompt) - start)[-1]
            return evaluate(llm, prompt, start, stop, self.rule) if start < stop else start
        stop = min(self.rule.n_batch, self.rule.boundary(len(prompt) - 1))
        return evaluate(llm, prompt, start, stop, self.rule) if start < stop else start

    def evaluated(self, llm: Llama, prompt_len: int) -> None:
        """A generation over a ``prompt_len``-token prompt ended: its prompt (under ``min_batch``,
        if at least that long) or the prompt's whole chunks are clean."""
        self.clean = self.rule.boundary(min(prompt_len, llm.n_tokens))
        self.settleable = True

    def forget(self) -> None:
        """Something else filled the cache (an image turn, a reset): nothing in it is clean."""
        self.clean, self.settleable = 0, False

    def settle(self, llm: Llama) -> int:
        """Evaluate the generated tail again in batches (in whole chunks under the fixed rule), so
        the next turn may reuse it; returns how many tokens that took (0: nothing to settle)."""
        start, end = self.clean, self.rule.boundary(llm.n_tokens)
        if 0 < end - start < self.rule.min_batch:
            start = end - self.rule.min_batch  # no smaller batch: clean positions are evaluated again with it
        if not self.settleable or end <= start or not llm._ctx.kv_cache_seq_rm(-1, start, -1):
            return 0
        self.settleable = False
        tokens = llm.input_ids[:end].tolist()  # a copy: evaluating writes input_ids
        llm.n_tokens, self.clean = start, 0  # until the evaluation ends
        try:
            evaluate(llm, tokens, start, end, self.rule)
        except (RuntimeError, ValueError) as e:
            log.warning("settling the cache failed: %s", e)
            return 0
        self.clean = end
        return end - start


def evaluate(llm: Llama, tokens: Sequence[int], start: int, stop: int, rule: ChunkRule) -> int:
    """Evaluate ``tokens[start:stop]`` as the rule needs: in ``ChunkRule.sizes`` batches
    (``min_batch``), or chunk by chunk at the shared boundaries (``start`` is one)."""
    if rule.min_batch:
        position = start
        for size in rule.sizes(stop - start):
            llm.eval(tokens[position : position + size])
            position += size
        return stop
    n_batch = rule.n_batch
    position = start
    while position < min(stop, n_batch):  # head chunks, one decode each
        end = min(position + head_chunk(n_batch), stop)
        llm.eval(tokens[position:end])
        position = end
    if position < stop:  # from n_batch on, llama-cpp-python's own n_batch split is the schedule
        llm.eval(tokens[position:stop])
    return stop
