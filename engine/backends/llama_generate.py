"""The parts of one ``LlamaCppBackend`` generation around its token loop: llama-cpp-python's
token generator with the turn's sampling settings, speculative drafting, and the answer's
text on its way out. llama_cpp itself is only imported for types.
"""

from __future__ import annotations

import codecs
from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any

from ..config import GenerationConfig
from ..types import TokenLogprob
from .draft_model import DraftModel
from .draft_policy import BatchCosts
from .speculative import PromptLookup, drafted
from .streaming import StopScanner

if TYPE_CHECKING:
    from llama_cpp import Llama, LlamaGrammar


def sample(
    llm: Llama, prompt: list[int], config: GenerationConfig, grammar: LlamaGrammar | None
) -> Generator[int, Any, None]:
    """llama-cpp-python's token generator over ``prompt`` (the part the cache does not hold)."""
    # reset=False: llama-cpp-python's own prefix matching would reuse any cached token,
    # including generated ones; the caller already chose what may be reused
    return llm.generate(prompt, reset=False, grammar=grammar, **stock_settings(config))


def stock_settings(config: GenerationConfig) -> dict[str, Any]:
    """``config`` as llama-cpp-python's own sampling arguments (generate, _init_sampler)."""
    return {
        "temp": config.temperature,
        "top_k": config.top_k,
        "top_p": config.top_p,
        "min_p": config.min_p,
        "typical_p": config.typical_p,
        "repeat_penalty": config.repeat_penalty,
        "presence_penalty": config.presence_penalty,
        "frequency_penalty": config.frequency_penalty,
        "mirostat_mode": config.mirostat_mode,
        "mirostat_tau": config.mirostat_tau,
        "mirostat_eta": config.mirostat_eta,
    }


def with_drafts(
    llm: Llama,
    tokens: Generator[int, Any, None],
    prompt: list[int],
    max_new: int,
    config: GenerationConfig,
    draft: DraftModel | None,
    prompt_lookup: bool,
    costs: BatchCosts,
) -> Generator[int, Any, None]:
    """Speculative decoding for sampled answers (same distribution, fewer decodes): drafts
    from ``draft`` (a small model), else from the prompt itself when ``prompt_lookup``, as
    long as ``costs`` (the model's learned batch costs) say they pay.

    Not for greedy ones: llama.cpp's CPU kernels give a batch's positions logits that
    differ from one-token decodes (measured up to 0.85), enough to flip a near-tie, and
    a greedy answer must not depend on whether drafting was on.
    """
    if config.temperature == 0:
        return tokens
    if draft is not None:
        return drafted(llm, tokens, max_new, draft.session(prompt), costs)
    if prompt_lookup:
        return drafted(llm, tokens, max_new, PromptLookup(prompt, costs), costs)
    return tokens


class AnswerText:
    """An answer's text on its way out: UTF-8 decoding across token pieces, stop strings, and
    the log-probabilities not yet sent (empty unless asked for)."""

    def __init__(self, stop: Sequence[str]):
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.stops = StopScanner(stop)
        self.scored: list[TokenLogprob] = []

    def tail(self) -> str:
        """What stop-string scanning still holds, once the tokens end. The bytes of a character
        the answer did not finish (max_tokens cut an emoji's byte tokens in two) are dropped:
        the answer ends at its last whole character, not in a U+FFFD."""
        self.decoder.reset()
        return self.stops.flush()
