"""Prompt-lookup speculative decoding over ``Llama.generate``, at no cost when it misses.

When the last few generated tokens also occur earlier in the context (a quoted passage,
code being rewritten, a summary of the conversation), the tokens that followed them
there are a good guess for what comes next. Those draft tokens are evaluated in one batch
with the real next token; ``Llama.generate`` samples at every position and keeps drafts
only while the sampled token equals the draft (its own send() protocol), so greedy
output is the same token for token and sampled output follows the same distribution.

A batch is dearer than one token (on a CPU much dearer), so ``draft_policy`` decides from
measured batch costs and the acceptance seen so far whether a draft pays and how long it
should be; free chat, where it rarely pays, then drafts (almost) never.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from typing import Any, Protocol

from .draft_policy import Acceptance, BatchCosts, draft_length


class Drafter(Protocol):
    """Guesses the next tokens of one answer: PromptLookup, or a draft model's session."""

    #: the context so far (the prompt, then every token of the answer)
    ids: list[int]

    def append(self, token: int) -> None: ...

    def propose(self, limit: int) -> list[int]: ...

    def record(self, proposed: int, accepted: int) -> None: ...


class PromptLookup:
    """Drafts the tokens that followed the latest earlier occurrence of the context's last
    n-gram, as many as ``draft_policy`` says pay.

    An index maps every n-gram (``min_ngram..max_ngram`` tokens) to where its latest
    occurrence was followed, so each token costs a few dict operations. After every token the
    lookup guesses the next one and, when it arrives, scores the guess (drafted or not) per
    match length: that is what the policy's acceptance estimate learns from.
    """

    def __init__(
        self,
        prompt: list[int],
        costs: BatchCosts | None = None,
        *,
        min_ngram: int = 2,
        max_ngram: int = 4,
        max_draft: int = 16,
        max_match: int = 16,
    ):
        self.min_ngram, self.max_ngram, self.max_draft = min_ngram, max_ngram, max_draft
        self.max_match = max_match
        self.ids = list(prompt)
        self.costs = costs if costs is not None else BatchCosts()
        self.acceptance = Acceptance()
        #: where the next token's guess sits in ``ids``, and how many tokens matched before it
        self.guess: tuple[int, int] | None = None
        self._index: dict[tuple[int, ...], int] | None = None  # built on the first token
        #: totals over the answer, for tests and benchmarks
        self.proposed_total = self.accepted_total = 0

    def append(self, token: int) -> None:
        if self._index is None:
            self._index = {}
            for end in range(1, len(self.ids)):
                self._add(end)
        if self.guess is not None:
            follow, match = self.guess
            self.acceptance.observe(match, self.ids[follow] == token)
        self.ids.append(token)
        self._add(len(self.ids) - 1)
        self.guess = self._match()

    def _add(self, end: int) -> None:
        """Index the n-grams that end just before ``end`` as followed by position ``end``."""
        ids, index = self.ids, self._index
        assert index is not None, "append() adds to the index only once it is built"
        for n in range(self.min_ngram, self.max_ngram + 1):
            if end - n >= 0:
                index[tuple(ids[end - n : end])] = end

    def _match(self) -> tuple[int, int] | None:
        """The latest earlier occurrence of the longest indexed suffix: (the position that followed
        it, how many tokens match there, counted back up to ``max_match``)."""
        ids, index = self.ids, self._index
        assert index is not None
        last = len(ids) - 1
        for n in range(min(self.max_ngram, last), self.min_ngram - 1, -1):
            follow = index.get(tuple(ids[last + 1 - n :]))
            if follow is not None:
                match = n
                while match < self.max_match and follow - 1 - match >= 0:
                    if ids[follow - 1 - match] != ids[last - match]:
                        break
                    match += 1
                return follow, match
        return None

    def propose(self, limit: int) -> list[int]:
        """The guessed continuation, cut to the length that pays (often none), at most ``limit``."""
        if self.guess is None or limit <= 0:
            return []
        follow, match = self.guess
        candidates = self.ids[follow : follow + min(limit, self.max_draft)]
        chain = [self.acceptance.p(match + j) for j in range(len(candidates))]
        return candidates[: draft_length(chain, self.costs)]

    def record(self, proposed: int, accepted: int) -> None:
        """Totals only: the acceptance estimate already saw each drafted token in ``append``."""
        self.proposed_total += proposed
        self.accepted_total += accepted


def drafted(
    llm: Any,
    tokens: Generator[int, Any, None],
    max_new: int,
    lookup: Drafter,
    costs: BatchCosts | None = None,
) -> Generator[int, Any, None]:
    """Wrap ``llm.generate(...)``: send drafts into it and have their batches keep every logit.

    ``lookup`` starts with the prompt; ``costs`` learns from the timing of each decode. While
    a token is out, the logits it was sampled from are at ``sampled_index``. Closing this
    generator closes ``tokens`` and puts ``llm.eval`` back.
    """
    n_prompt, n_ctx = len(lookup.ids), llm.n_ctx()
    proposed = accepted = 0
    _install_eval(llm, costs)
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


def sampled_index(llm: Any, position: int) -> int:
    """Where llama.cpp holds the logits that the token at context ``position`` was sampled from,
    counted from the end of the last batch (-1 unless the batch carried drafts)."""
    return position - 1 - llm.n_tokens


def _install_eval(llm: Any, costs: BatchCosts | None) -> None:
    """Shadow ``llm.eval`` so that batches carrying drafts compute logits at every position.

    Llama.eval asks for the last position's logits only (unless the whole model was built
    with logits_all, which would keep n_ctx x n_vocab floats and slow every prompt);
    sampling a draft's positions needs theirs too.
    """
    original = type(llm).eval
    llm._hearth_draft_batch = False

    def eval_tokens(batch_tokens):
        start, n = time.perf_counter(), len(batch_tokens)
        if not llm._hearth_draft_batch or n < 2:
            original(llm, batch_tokens)
            if costs is not None and n == 1:
                costs.observe(1, time.perf_counter() - start)
            return
        llm._hearth_draft_batch = False
        n_past = llm.n_tokens
        llm._ctx.kv_cache_seq_rm(-1, n_past, -1)
        llm._batch.set_batch(batch=batch_tokens, n_past=n_past, logits_all=True)
        llm._ctx.decode(llm._batch)
        llm.input_ids[n_past : n_past + n] = batch_tokens
        llm.n_tokens += n
        llm._requires_eval = False
        if costs is not None:
            costs.observe(n, time.perf_counter() - start)

    llm.eval = eval_tokens


def _remove_eval(llm: Any) -> None:
    llm.__dict__.pop("eval", None)
    llm.__dict__.pop("_hearth_draft_batch", None)
