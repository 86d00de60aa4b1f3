"""Which KV cache positions are clean (hold exactly what a fresh evaluation of the prompt would
compute), and how prompts are cut into batches so that stays true.

llama.cpp's results can depend in the last bits on how a prompt was cut into batches, and a
greedy answer (or a fixed seed) must not depend on what the cache held. Two kinds of rule, the
first that a load-time probe (``llama_load.probe_rule``) finds true on this model, device,
build and n_batch:

- ``min_batch`` m: every position evaluated in a batch of at least m tokens gets the same bits
  however the batches were cut. Every such position is clean; a prompt is cut into batches of
  m or more (a turn evaluates at least m tokens, backing up into the cached part if its new
  part is shorter), and one-token decodes (generated tokens) are never clean. On a CPU m is 2
  while every batch stays under 64 tokens; with flash attention a batch of 64 or more rows
  takes a tiled kernel that rounds otherwise, and m is 64 (MIN_TILED), where long prompts
  evaluate fast in batches up to n_batch.
- otherwise (a GPU, say) every evaluation cuts a prompt at the same boundaries
  (``boundary``), and only whole chunks are clean.

This module never imports llama_cpp.
"""

from __future__ import annotations

from dataclasses import dataclass

#: names the fixed rule's chunk boundaries; snapshots taken under another rule are misses
CHUNK_SCHEDULE = "quarter-head-v1"
#: the smallest batch llama.cpp's CPU flash attention computes with its tiled kernel
#: (GGML_FA_TILE_Q), each row alike however the rows were grouped
MIN_TILED = 64


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
    """One of the module docstring's rules: ``min_batch`` > 0, or the fixed schedule (0)."""

    n_batch: int
    min_batch: int = 0

    @property
    def any_batch(self) -> bool:
        """Every batch of two or more tokens is clean: the most a cache can reuse."""
        return self.min_batch == 2

    @property
    def name(self) -> str:
        """For the snapshot fingerprint: a snapshot's ``clean`` means something else under another rule."""
        if self.any_batch:
            return "any-batch-v2"
        return f"min-batch-{self.min_batch}-v1" if self.min_batch else CHUNK_SCHEDULE

    def boundary(self, n: int) -> int:
        """How far a cache evaluated under this rule up to position ``n`` is clean."""
        if self.min_batch:
            return n if n >= self.min_batch else 0
        return boundary(n, self.n_batch)

    def reusable(self, common: int, clean: int, prompt_len: int) -> int:
        """Positions a turn may keep: clean and shared with the prompt. At least one prompt token
        (``min_batch`` of them: no smaller batch) is left to evaluate, as the logits of the last
        prompt token must come from a live decode."""
        if self.min_batch:
            return max(0, min(common, clean, prompt_len - self.min_batch))
        return reusable_prefix(common, clean, self.n_batch, prompt_len)

    def sizes(self, n: int) -> list[int]:
        """Batch sizes for ``n`` tokens under ``min_batch``: at most n_batch each, none smaller
        than min_batch (but for a whole prompt shorter than that)."""
        out: list[int] = []
        while n > 0:
            size = min(self.n_batch, n)
            if 0 < n - size < self.min_batch:
                size = max(1, n - self.min_batch)  # leave min_batch for the last batch
            out.append(size)
            n -= size
        return out
