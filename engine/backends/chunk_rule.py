"""Which KV cache positions are clean (hold exactly what a fresh evaluation of the prompt would
compute), and how prompts are cut into batches so that stays true.

llama.cpp's results can depend in the last bits on how a prompt was cut into batches, and a
greedy answer (or a fixed seed) must not depend on what the cache held. Three rules, the first
that a load-time probe (``llama_load.probe_rule``) finds true on this model, device and build:

- ``any_batch``: every position evaluated in a batch of two or more tokens gets the same bits
  however the batches were cut (CPU kernels with batches under 64 tokens: flash attention
  switches kernels at 64). Every such position is clean; only one-token decodes (generated
  tokens) are not.
- ``unit``: positions in whole ``unit``-token chunks counted from position 0, evaluated in
  batches made of whole chunks, get the same bits however the chunks were grouped (CPU flash
  attention's tiled kernel, from 64 rows, at n_batch 128 or more). The chunk that holds a
  prompt's last token is evaluated in one batch of its own, the same way by every evaluation,
  and is clean only when whole. Batches up to n_batch make long prompts fast.
- otherwise (a GPU, say) every evaluation cuts a prompt at the same boundaries
  (``boundary``), and only whole chunks are clean.

This module never imports llama_cpp.
"""

from __future__ import annotations

from dataclasses import dataclass

#: names the fixed rule's chunk boundaries; snapshots taken under another rule are misses
CHUNK_SCHEDULE = "quarter-head-v1"
#: the chunk of the ``unit`` rule: llama.cpp's CPU flash attention computes batches of this many
#: rows or more with its tiled kernel (GGML_FA_TILE_Q), each row alike however rows are grouped
UNIT = 64


def head_chunk(n_batch: int) -> int:
    """The chunk size of a prompt's first n_batch tokens: a quarter of n_batch, so a short shared
    prefix (a system prompt) is reusable too, while longer prompts keep full batches."""
    return max(1, n_batch // 4)


def boundary(n: int, n_batch: int) -> int:
    """The last chunk boundary at or before position ``n``: chunks of ``head_chunk`` up to
    n_batch, then of n_batch. Every evaluation splits a prompt at these same boundaries."""
    step = n_batch if n >= n_batch else head_chunk(n_batch)
    return max(0, n) // step * step


def reusable_prefix(common: int, clean: int, n_batch: int, prompt_len: int) -> int:
    """Positions a greedy turn may keep: clean, shared with the prompt, at a chunk boundary.

    At least one prompt token is always left to evaluate (the logits of the last prompt
    token must come from a live decode), so the result stays below ``prompt_len``.
    """
    return boundary(min(common, clean, prompt_len - 1), n_batch)


@dataclass(frozen=True)
class ChunkRule:
    """One of the module docstring's rules: ``any_batch``, ``unit`` > 0, or neither (fixed)."""

    n_batch: int
    any_batch: bool = False
    unit: int = 0

    @property
    def name(self) -> str:
        """For the snapshot fingerprint: a snapshot's ``clean`` means something else under another rule."""
        if self.any_batch:
            return "any-batch-v2"
        return f"units-{self.unit}-v1" if self.unit else CHUNK_SCHEDULE

    def boundary(self, n: int) -> int:
        """How far a cache evaluated under this rule up to position ``n`` is clean."""
        if self.any_batch:
            return n if n >= 2 else 0
        if self.unit:
            return max(0, n) // self.unit * self.unit
        return boundary(n, self.n_batch)

    def reusable(self, common: int, clean: int, prompt_len: int) -> int:
        """Positions a turn may keep: clean and shared with the prompt. At least one prompt token
        (two under ``any_batch``: never a one-token batch; the chunk holding the last one under
        ``unit``) is left to evaluate, as the logits of the last prompt token must come from a
        live decode."""
        if self.any_batch:
            return max(0, min(common, clean, prompt_len - 2))
        if self.unit:
            return self.boundary(min(common, clean, prompt_len - 1))
        return reusable_prefix(common, clean, self.n_batch, prompt_len)

    def head_stop(self, prompt_len: int) -> int:
        """Where the prompt's last batch starts (any_batch and unit rules): that batch is left to
        llama-cpp-python's generate, the rest is evaluated before it by ``sizes``."""
        if self.unit:
            return self.boundary(prompt_len - 1)
        return prompt_len - 2

    def sizes(self, n: int) -> list[int]:
        """Batch sizes for ``n`` tokens: under ``any_batch`` at most n_batch each and none of one;
        under ``unit`` whole chunks (``n`` is whole chunks but for a prompt's last batch), as many
        as fit in n_batch."""
        if self.unit:
            step = max(self.unit, self.n_batch // self.unit * self.unit)
            return [min(step, n - done) for done in range(0, n, step)]
        out: list[int] = []
        while n > 0:
            size = min(self.n_batch, n)
            if n - size == 1:
                size -= 1  # leave two for the last batch
            out.append(size)
            n -= size
        return out
