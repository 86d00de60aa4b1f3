"""Grammar-constrained sampling that checks one token instead of the whole vocabulary.

llama-cpp-python puts the grammar in its sampler chain, so every token of a JSON answer (the
API's ``response_format``, a forced tool call) runs the grammar over all of the vocabulary's
tokens. ``GrammarFirst`` does what llama.cpp's own server does: the chain picks a token from
the unconstrained logits, the grammar checks that one token, and only when it refuses is the
grammar applied to the whole vocabulary and the token picked again from what it allows.

The same tokens come out: greedy, the most likely token, when the grammar allows it, is the
most likely allowed one. Sampled at a temperature, a token drawn freely and kept only if
allowed, else drawn again among the allowed, has the probability p / (allowed mass), which is
the constrained draw's. (Truncating stages, top-k or top-p, cut over the whole vocabulary first,
as llama.cpp's server does too.)
"""

from __future__ import annotations

import ctypes
import math
from typing import Any

import numpy as np


class GrammarFirst:
    """A sampler for ``Llama.generate`` (``sample``, ``accept``, ``reset``, ``close``): ``chain``
    (a LlamaSampler without a grammar) behind ``grammar`` (a LlamaGrammar), checked token first."""

    def __init__(self, lc: Any, llm: Any, chain: Any, grammar: Any):
        self._lc, self._chain = lc, chain
        self._grammar = lc.llama_sampler_init_grammar(
            llm._model.vocab, grammar._grammar.encode("utf-8"), grammar._root.encode("utf-8")
        )
        self._n_vocab = llm.n_vocab()
        self._ids = np.arange(self._n_vocab, dtype=np.intc)
        token_data = np.dtype([("id", np.intc), ("logit", np.single), ("p", np.single)], align=True)
        self._all = np.zeros(self._n_vocab, dtype=token_data)
        self._one = np.zeros(1, dtype=token_data)
        self._array = lc.llama_token_data_array()

    def sample(self, ctx: Any, idx: int = -1) -> int:
        logits = self._lc.llama_get_logits_ith(ctx.ctx, idx)
        token = self._pick(logits, constrained=False)
        if not self._allows(token):
            token = self._pick(logits, constrained=True)
        self.accept(token)
        return token

    def _pick(self, logits: Any, *, constrained: bool) -> int:
        self._all["id"] = self._ids
        self._all["logit"] = np.ctypeslib.as_array(logits, shape=(self._n_vocab,))
        self._all["p"] = 0.0
        array = self._fill(self._all)
        if constrained:
            self._lc.llama_sampler_apply(self._grammar, ctypes.byref(array))
        self._lc.llama_sampler_apply(self._chain.sampler, ctypes.byref(array))
        return int(array.data[array.selected].id)  # samplers may move ``data``: read it back

    def _allows(self, token: int) -> bool:
        self._one[0] = (token, 0.0, 0.0)
        array = self._fill(self._one)
        self._lc.llama_sampler_apply(self._grammar, ctypes.byref(array))
        return not math.isinf(float(array.data[0].logit))

    def _fill(self, data: np.ndarray) -> Any:
        array = self._array
        array.data = data.ctypes.data_as(self._lc.llama_token_data_p)
        array.size = len(data)
        array.selected = -1
        array.sorted = False
        return array

    def accept(self, token: int) -> None:
        self._lc.llama_sampler_accept(self._grammar, token)
        self._chain.accept(token)

    def reset(self) -> None:
        self._lc.llama_sampler_reset(self._grammar)
        self._chain.reset()

    def close(self) -> None:
        if self._grammar is not None:
            self._lc.llama_sampler_free(self._grammar)
            self._grammar = None
        self._chain.close()

    def __del__(self) -> None:
        self.close()
