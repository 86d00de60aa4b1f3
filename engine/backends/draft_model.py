"""Speculative decoding with a small draft GGUF (``--draft-model``).

The draft model reads the same context as the main model and guesses the next few tokens
greedily; ``speculative.drafted`` has the main model verify them in one batch and keep
those it would have sampled itself. The draft keeps its own KV cache in step with the
answer, so each guess costs only the draft's one-token decodes.

Like prompt lookup it is used for sampled answers only: a greedy answer must not depend
on whether drafting was on, and batched logits differ from one-token decodes in the last
bits (see LlamaCppBackend._with_drafts). A draft that is no faster than the main model
(the bundled 135M model as its own draft) costs time instead of saving it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import ModelError


class DraftModel:
    """A loaded draft GGUF (a ``llama_cpp.Llama``); ``session`` starts the guesses for one answer."""

    def __init__(self, llm: Any, *, target_vocab: int):
        if llm.n_vocab() != target_vocab:
            raise ModelError(
                f"The draft model's vocabulary ({llm.n_vocab()} tokens) is not the main model's "
                f"({target_vocab}): a draft model must come from the same family (same tokenizer)."
            )
        self.llm = llm

    def session(self, prompt: Sequence[int]) -> DraftSession:
        return DraftSession(self.llm, prompt)

    def close(self) -> None:
        self.llm.close()


class DraftSession:
    """The ``Drafter`` of one answer (see speculative.drafted): the context so far, and guesses."""

    def __init__(self, llm: Any, prompt: Sequence[int], *, max_draft: int = 8):
        self._llm = llm
        self.ids = list(prompt)
        self.max_draft = max_draft
        self.draft_len = 4
        #: totals over the answer, for tests and benchmarks
        self.proposed_total = self.accepted_total = 0

    def append(self, token: int) -> None:
        self.ids.append(token)

    def propose(self, limit: int) -> list[int]:
        """Up to ``min(draft_len, limit)`` tokens the draft model would write next, greedily."""
        import numpy as np

        k = min(self.draft_len, limit, self._llm.n_ctx() - len(self.ids) - 1)
        if k <= 0:
            return []
        llm = self._llm
        self._catch_up()
        n_vocab = llm.n_vocab()
        draft: list[int] = []
        while True:
            logits = np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(n_vocab,))
            token = int(logits.argmax())
            draft.append(token)
            if len(draft) >= k:
                return draft
            llm.eval([token])  # the next guess reads this one; kept if the main model agrees

    def _catch_up(self) -> None:
        """Make the draft's KV hold exactly ``ids``: keep the common prefix, evaluate the rest."""
        llm, ids = self._llm, self.ids
        held = llm.input_ids[: llm.n_tokens]
        same = 0
        for a, b in zip(held, ids, strict=False):
            if a != b:
                break
            same += 1
        same = min(same, len(ids) - 1)  # at least one token evaluated: its logits give the guess
        llm.n_tokens = same
        llm._ctx.kv_cache_seq_rm(-1, same, -1)
        llm.eval(ids[same:])

    def record(self, proposed: int, accepted: int) -> None:
        """Longer guesses while they are all accepted, shorter after a miss."""
        self.proposed_total += proposed
        self.accepted_total += accepted
        if accepted == proposed:
            self.draft_len = min(self.max_draft, self.draft_len + 2)
        else:
            self.draft_len = max(1, accepted + 1)
