"""Prompt-lookup speculative decoding over ``Llama.generate``, at no cost when it misses.

When the last few generated tokens also occur earlier in the context (a quoted passage,
code being rewritten, a summary of the conversation), the tokens that followed them
there are a good guess for what comes next. Those draft tokens are evaluated in one batch
with the real next token; ``Llama.generate`` samples at every position and keeps drafts
only while the sampled token equals the draft (its own send() protocol), so greedy
output is the same token for token and sampled output follows the same distribution.

The cost of a wrong guess is one bigger batch; an adaptive draft length and a back-off
after misses keep free chat at its normal speed.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, Protocol


class Drafter(Protocol):
    """Guesses the next tokens of one answer: PromptLookup, or a draft model's session."""

    #: the context so far (the prompt, then every token of the answer)
    ids: list[int]

    def append(self, token: int) -> None: ...

    def propose(self, limit: int) -> list[int]: ...

    def record(self, proposed: int, accepted: int) -> None: ...


class PromptLookup:
    """Finds a draft continuation for the context's last n-gram; learns how long to guess.

    An index maps every n-gram (``min_ngram..max_ngram`` tokens) to where its latest
    occurrence was followed, so each token costs a few dict operations.
    """

    def __init__(self, prompt: list[int], *, min_ngram: int = 2, max_ngram: int = 4, max_draft: int = 12):
        self.min_ngram, self.max_ngram, self.max_draft = min_ngram, max_ngram, max_draft
        self.ids = list(prompt)
        self.draft_len = 4
        self._misses = 0
        self._skip = 0
        self._index: dict[tuple[int, ...], int] | None = None  # built on first use, after the first token
        #: totals over the answer, for tests and benchmarks
        self.proposed_total = self.accepted_total = 0

    def append(self, token: int) -> None:
        self.ids.append(token)
        if self._index is not None:
            self._add(len(self.ids) - 1)

    def _add(self, end: int) -> None:
        """Index the n-grams that end just before ``end`` as followed by position ``end``."""
        ids, index = self.ids, self._index
        assert index is not None, "append() adds to the index only once it is built"
        for n in range(self.min_ngram, self.max_ngram + 1):
            if end - n >= 0:
                index[tuple(ids[end - n : end])] = end

    def propose(self, limit: int) -> list[int]:
        """Up to ``min(draft_len, limit)`` tokens that followed the latest earlier match of the suffix."""
        if self._skip > 0:
            self._skip -= 1
            return []
        k = min(self.draft_len, limit)
        if k <= 0:
            return []
        if self._index is None:
            self._index = {}
            for end in range(1, len(self.ids)):
                self._add(end)
        ids = self.ids
        for n in range(min(self.max_ngram, len(ids) - 1), self.min_ngram - 1, -1):
            follow = self._index.get(tuple(ids[len(ids) - n :]))
            if follow is not None:
                return ids[follow : follow + k]
        return []

    def record(self, proposed: int, accepted: int) -> None:
        """Adapt: longer drafts while they are accepted, exponential back-off after misses."""
        self.proposed_total += proposed
        self.accepted_total += accepted
        if accepted == proposed:
            self.draft_len = min(self.max_draft, self.draft_len * 2)
            self._misses = 0
        elif accepted == 0:
            self._misses += 1
            self.draft_len = max(1, self.draft_len // 2)
            self._skip = min(64, 2**self._misses)
        else:
            self._misses = 0
            self.draft_len = max(1, accepted + 1)


def drafted(
    llm: Any, tokens: Generator[int, Any, None], max_new: int, lookup: Drafter
) -> Generator[int, Any, None]:
    """Wrap ``llm.generate(...)``: send drafts into it and have their batches keep every logit.

    ``lookup`` starts with the prompt. Closing this generator closes ``tokens`` and puts
    ``llm.eval`` back.
    """
    n_prompt, n_ctx = len(lookup.ids), llm.n_ctx()
    proposed = accepted = 0
    _install_eval(llm)
    try:
        token = next(tokens)
        while True:
            yield token
            position = len(lookup.ids)  # where ``token`` sits in the context
            lookup.append(token)
            if position < llm.n_tokens and llm.input_ids[position] == token:
                accepted += 1  # a draft confirmed: generate samples on inside the same batch
                token = tokens.send(None)
                continue
            if proposed:
                lookup.record(proposed, accepted)
                proposed = accepted = 0
            produced = position + 1 - n_prompt
            draft = lookup.propose(min(max_new - produced - 1, n_ctx - position - 2, llm.n_batch - 1))
            if draft:
                proposed = len(draft)
                llm._hearth_draft_batch = True
            token = tokens.send(draft or None)
    finally:
        tokens.close()
        _remove_eval(llm)


def _install_eval(llm: Any) -> None:
    """Shadow ``llm.eval`` so that batches carrying drafts compute logits at every position.

    Llama.eval asks for the last position's logits only (unless the whole model was built
    with logits_all, which would keep n_ctx x n_vocab floats and slow every prompt);
    sampling a draft's positions needs theirs too.
    """
    original = type(llm).eval
    llm._hearth_draft_batch = False

    def eval_tokens(batch_tokens):
        if not llm._hearth_draft_batch or len(batch_tokens) < 2:
            return original(llm, batch_tokens)
        llm._hearth_draft_batch = False
        n_past, n = llm.n_tokens, len(batch_tokens)
        llm._ctx.kv_cache_seq_rm(-1, n_past, -1)
        llm._batch.set_batch(batch=batch_tokens, n_past=n_past, logits_all=True)
        llm._ctx.decode(llm._batch)
        llm.input_ids[n_past : n_past + n] = batch_tokens
        llm.n_tokens += n
        llm._requires_eval = False

    llm.eval = eval_tokens


def _remove_eval(llm: Any) -> None:
    llm.__dict__.pop("eval", None)
    llm.__dict__.pop("_hearth_draft_batch", None)
