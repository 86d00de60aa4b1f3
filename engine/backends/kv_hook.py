"""Glue between a live ``llama_cpp.Llama`` and the KV snapshot store.

The backend calls ``before_turn`` (under its lock, before generating) and ``after_turn``
(after the answer). ``before_turn`` keeps the conversation the live KV holds, restores
the snapshot of the one the turn is for when that reuses more, and applies the
clean-boundary rule of greedy turns (see kv_snapshots.reusable_prefix). The llama_cpp
module is passed in, so this module imports no heavy library.
"""

from __future__ import annotations

import ctypes
import logging
from array import array
from typing import Any

from .kv_snapshots import KvSnapshotStore, Snapshot, clean_after_eval, reusable_prefix

log = logging.getLogger("hearth.kv")

SEQ = 0  # llama-cpp-python keeps the conversation in sequence 0


class ConversationKv:
    """Which conversation the live KV cells belong to, how far they are clean, and its snapshots."""

    def __init__(self, llama_cpp: Any, store: KvSnapshotStore, n_batch: int):
        self._lc = llama_cpp
        self.store = store
        self.n_batch = n_batch
        #: conversation whose tokens the live KV holds (None: an unkeyed call, or nothing)
        self.live_key: str | None = None
        #: leading live KV positions evaluated as full, n_batch-aligned chunks
        self.clean = 0
        #: whether the store already holds the live KV as it is now
        self.saved = True
        #: what the last before_turn did, for tests and benchmarks: "live", "restored" or "fresh"
        self.last_source = "fresh"

    def before_turn(self, llm, key: str | None, prompt: list[int], *, greedy: bool, resets: bool) -> None:
        if self.live_key is not None and self.live_key != key and not self.saved:
            self.capture(llm, self.live_key)  # switching away: keep what the live KV holds
        n_prompt, nb = len(prompt), self.n_batch
        common = _common_prefix(llm.input_ids[: llm.n_tokens], prompt)
        source_clean, self.last_source = self.clean, "live" if common else "fresh"
        if resets:  # the backend evaluates the whole prompt (fixed seed)
            start = 0
        else:
            reuse = reusable_prefix(common, self.clean, nb, n_prompt) if greedy else common
            snap = self.store.get(key) if key is not None and key != self.live_key else None
            if snap is not None:
                snap_common = _common_prefix(snap.tokens, prompt)
                snap_reuse = reusable_prefix(snap_common, snap.clean, nb, n_prompt) if greedy else snap_common
                if snap_reuse > reuse:
                    restored = self._restore(llm, snap)
                    common = snap_common if restored else 0
                    reuse = snap_reuse if restored else 0
                    source_clean = snap.clean if restored else 0
                    self.last_source = "restored" if restored else "fresh"
            if greedy and key is not None:
                # cut to the clean, aligned prefix: the prompt's rest is then evaluated in the
                # same aligned chunks as on a cold start, so the answer is the same bit for bit
                llm._ctx.kv_cache_seq_rm(-1, reuse, -1)
                llm.n_tokens = min(llm.n_tokens, reuse)
                start = reuse
            else:  # what Llama.generate will do with the common prefix
                start = common - 1 if common and common == n_prompt else common
        self.clean = clean_after_eval(source_clean, max(start, 0), n_prompt, nb)
        self.live_key, self.saved = key, False

    def after_turn(self, llm, key: str | None) -> None:
        if key is not None and key == self.live_key:
            self.capture(llm, key)

    def leave(self, llm) -> None:
        """Something other than a turn is about to use the KV (images): keep the live one first."""
        if self.live_key is not None and not self.saved:
            self.capture(llm, self.live_key)
        self.forget_live()

    def forget_live(self) -> None:
        """The live KV was cleared or replaced outside a turn."""
        self.live_key, self.clean, self.saved = None, 0, True

    def close(self, llm) -> None:
        if llm is not None and self.live_key is not None and not self.saved:
            self.capture(llm, self.live_key)
        self.store.flush()

    def capture(self, llm, key: str) -> None:
        lc, ctx = self._lc, llm._ctx.ctx
        n_tokens = int(llm.n_tokens)
        if n_tokens == 0:
            return
        size = int(lc.llama_state_seq_get_size(ctx, SEQ))
        state = bytearray(size)
        buf = (ctypes.c_uint8 * size).from_buffer(state)
        written = int(lc.llama_state_seq_get_data(ctx, buf, size, SEQ))
        del buf  # release the export so the bytearray may shrink
        if written <= 0 or written > size:
            log.warning("KV snapshot of %s not taken: llama.cpp returned %d bytes", key, written)
            return
        del state[written:]
        tokens = array("i", llm.input_ids[:n_tokens].astype("int32").tobytes())
        self.store.put(key, Snapshot(tokens=tokens, clean=min(self.clean, n_tokens), state=state))
        if key == self.live_key:
            self.saved = True

    def _restore(self, llm, snap: Snapshot) -> bool:
        lc, ctx = self._lc, llm._ctx.ctx
        llm._ctx.kv_cache_clear()
        buf = (ctypes.c_uint8 * len(snap.state)).from_buffer(snap.state)
        ok = int(lc.llama_state_seq_set_data(ctx, buf, len(snap.state), SEQ))
        del buf
        llm.n_tokens = 0
        if ok == 0:
            log.warning("KV snapshot rejected by llama.cpp; evaluating the prompt instead")
            llm._ctx.kv_cache_clear()
            return False
        n = len(snap.tokens)
        llm.input_ids[:n] = snap.tokens
        llm.n_tokens = n
        llm._requires_eval = True  # logits must come from a live decode before sampling
        return True


def _common_prefix(a, b) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n
