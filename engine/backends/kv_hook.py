"""Glue between a live ``llama_cpp.Llama`` and the KV snapshot store.

The backend calls ``before_turn`` (under its lock, before generating) and ``after_turn``
(after the answer). ``before_turn`` keeps the conversation the live KV holds, restores
the snapshot of the one the turn is for when that reuses more, and applies the
clean-prefix rule of greedy turns (see chunk_rule.ChunkRule). The llama_cpp
module is passed in, so this module imports no heavy library.
"""

from __future__ import annotations

import ctypes
import logging
from array import array
from typing import TYPE_CHECKING

from .chunk_rule import ChunkRule
from .kv_snapshots import KvSnapshotStore, Snapshot, common_prefix

if TYPE_CHECKING:
    from types import ModuleType

    from llama_cpp import Llama

log = logging.getLogger("hearth.kv")

SEQ = 0  # llama-cpp-python keeps the conversation in sequence 0


class ConversationKv:
    """Which conversation the live KV cells belong to, how far they are clean, and its snapshots."""

    def __init__(self, llama_cpp: ModuleType, store: KvSnapshotStore, rule: ChunkRule):
        self._lc = llama_cpp
        self.store = store
        self.rule = rule
        #: conversation whose tokens the live KV holds (None: an unkeyed call, or nothing)
        self.live_key: str | None = None
        #: whether the store already holds the live KV as it is now
        self.saved = True
        #: what the last before_turn did, for tests and benchmarks: "live", "restored" or "fresh"
        self.last_source = "fresh"

    def before_turn(self, llm: Llama, key: str | None, prompt: list[int], *, clean: int) -> int:
        """Restore ``key``'s snapshot when it lets more of ``prompt`` be reused than the live KV
        (``clean``: how far the live KV holds what a fresh evaluation would); returns
        that boundary for what the KV holds now. The backend then cuts to the reusable prefix."""
        if self.live_key is not None and self.live_key != key and not self.saved:
            self.capture(llm, self.live_key, clean=clean)  # switching away: keep what the live KV holds
        n_prompt, rule = len(prompt), self.rule
        live_common = common_prefix(llm.input_ids[: llm.n_tokens], prompt)
        reuse = rule.reusable(live_common, clean, n_prompt)
        self.last_source = "live" if reuse else "fresh"
        snap = self.store.get(key) if key is not None and key != self.live_key else None
        if snap is not None:
            snap_reuse = rule.reusable(common_prefix(snap.tokens, prompt), snap.clean, n_prompt)
            if snap_reuse > reuse:
                restored = self._restore(llm, snap)
                clean = snap.clean if restored else 0
                self.last_source = "restored" if restored else "fresh"
        self.live_key, self.saved = key, False
        return clean

    def after_turn(self, llm: Llama, key: str | None, *, clean: int) -> None:
        if key is not None and key == self.live_key:
            self.capture(llm, key, clean=clean)

    def leave(self, llm: Llama, *, clean: int) -> None:
        """Something other than a turn is about to use the KV (images): keep the live one first."""
        if self.live_key is not None and not self.saved:
            self.capture(llm, self.live_key, clean=clean)
        self.forget_live()

    def forget_live(self) -> None:
        """The live KV was cleared or replaced outside a turn."""
        self.live_key, self.saved = None, True

    def close(self, llm: Llama | None, *, clean: int) -> None:
        if llm is not None and self.live_key is not None and not self.saved:
            self.capture(llm, self.live_key, clean=clean)
        self.store.flush()

    def capture(self, llm: Llama, key: str, *, clean: int) -> None:
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
        self.store.put(key, Snapshot(tokens=tokens, clean=min(clean, n_tokens), state=state))
        if key == self.live_key:
            self.saved = True

    def _restore(self, llm: Llama, snap: Snapshot) -> bool:
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
