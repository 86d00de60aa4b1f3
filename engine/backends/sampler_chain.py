"""llama.cpp sampler chains for the samplers llama-cpp-python's ``Llama.generate`` does not offer.

``Llama.generate`` builds a fixed chain (penalties, top-k, typical, top-p, min-p, temperature,
or greedy at temperature 0). DRY, XTC, top-n-sigma, dynamic temperature, logit bias and a
chosen order exist only as llama.cpp's own ``llama_sampler_init_*`` samplers; this module
builds a chain of those, in the order the config names, when one of them is on. With the stock
settings, ``stock_chain`` rebuilds llama-cpp-python's own chain over fewer candidates: the same
tokens, for less work per token.

The ``llama_cpp`` module is passed in: the backend module stays the only one importing it.
"""

from __future__ import annotations

from typing import Any

from ..config import BIAS_BAN, GenerationConfig
from .grammar_first import GrammarFirst
from .llama_generate import stock_settings

#: the tokens after which DRY stops matching a repeat (llama.cpp's defaults)
DRY_SEQUENCE_BREAKERS = ["\n", ":", '"', "*"]
#: recent tokens the repetition penalties look at (llama-cpp-python's last_n_tokens_size)
PENALTY_LAST_N = 64


def chain_for(lc: Any, llm: Any, config: GenerationConfig, seed: int, grammar: Any = None) -> Any:
    """The sampler the next ``llm.generate`` is to use (through ``CustomChain``); None leaves
    llama-cpp-python's own. A grammar always goes through ``GrammarFirst``: it checks the token
    the chain picked before it filters the whole vocabulary."""
    chain = (
        build_chain(lc, llm, config, seed)
        if config.uses_extra_samplers()
        else stock_chain(lc, llm, config, seed)
    )
    if grammar is None:
        return chain
    if chain is None:  # llama-cpp-python's own chain for these settings, without the grammar
        chain = type(llm)._init_sampler(llm, **stock_settings(config))
    return GrammarFirst(lc, llm, chain, grammar)


def build_chain(lc: Any, llm: Any, config: GenerationConfig, seed: int) -> Any:
    """A ``LlamaSampler`` for ``config``: logit bias, then the stages in ``config.samplers``,
    then greedy (temperature 0) or a seeded draw. Mirostat replaces the truncating stages."""
    chain = lc._internals.LlamaSampler()
    if config.logit_bias:
        bias = {token: (float("-inf") if b <= BIAS_BAN else b) for token, b in config.logit_bias}
        chain.add_logit_bias(llm.n_vocab(), bias)
    mirostat = config.mirostat_mode in (1, 2) and config.temperature > 0
    for name in config.samplers:
        if mirostat and name not in ("penalties", "dry"):
            continue
        _add_stage(chain, name, llm, config, seed)
    if config.temperature == 0:
        chain.add_greedy()
    elif mirostat:
        _add_temperature(chain, config)
        if config.mirostat_mode == 1:
            chain.add_mirostat(llm.n_vocab(), seed, config.mirostat_tau, config.mirostat_eta, 100)
        else:
            chain.add_mirostat_v2(seed, config.mirostat_tau, config.mirostat_eta)
    else:
        chain.add_dist(seed)
    return chain


def stock_chain(lc: Any, llm: Any, config: GenerationConfig, seed: int) -> Any:
    """llama-cpp-python's own chain for the stock samplers, with the tokens cut first to those
    that can still be chosen; None where a cut could change the outcome (then llama-cpp-python
    builds its chain itself). Its chain is: the penalties, then the most likely token at
    temperature 0, else top-k, typical, top-p, min-p, temperature and a seeded draw.

    The cut keeps the ``top_k + last_n_tokens_size`` most likely tokens (``last_n_tokens_size + 1``
    at temperature 0). Penalties that only lower logits (repeat >= 1, frequency and presence >= 0)
    touch at most ``last_n_tokens_size`` tokens, so the top-k after them (and the most likely
    token) are among those: the same candidates with the same logits, in the same order, hence the
    same token for the same seed.

    Why: llama.cpp's penalty stage looks every candidate up in its history; over the bundled
    model's 49,152 tokens that took 0.33 ms a token on this project's 2-core CPU, 0.08 ms with the
    candidates cut first, and on an H200 it was a fifth of each token's time."""
    sampled = config.temperature > 0
    if (
        config.temperature < 0
        or config.uses_extra_samplers()
        or (sampled and (config.mirostat_mode in (1, 2) or config.top_k <= 0))
        or config.repeat_penalty < 1
        or config.frequency_penalty < 0
        or config.presence_penalty < 0
    ):
        return None
    window = llm.last_n_tokens_size
    chain = lc._internals.LlamaSampler()
    chain.add_top_k((config.top_k if sampled else 1) + window)
    chain.add_penalties(
        llm.n_vocab(), window, config.repeat_penalty, config.frequency_penalty, config.presence_penalty
    )
    if not sampled:
        chain.add_greedy()
        return chain
    chain.add_top_k(config.top_k)
    chain.add_typical(config.typical_p, 1)
    chain.add_top_p(config.top_p, 1)
    chain.add_min_p(config.min_p, 1)
    chain.add_temp(config.temperature)
    chain.add_dist(seed)
    return chain


def _add_stage(chain: Any, name: str, llm: Any, config: GenerationConfig, seed: int) -> None:
    if name == "penalties":
        chain.add_penalties(
            llm.n_vocab(),
            PENALTY_LAST_N,
            config.repeat_penalty,
            config.frequency_penalty,
            config.presence_penalty,
        )
    elif name == "dry" and config.dry_multiplier > 0:
        chain.add_dry(
            llm._model,
            config.dry_multiplier,
            config.dry_base,
            config.dry_allowed_length,
            # -1 means the whole context; this build's DRY has no context size of its own to apply
            config.dry_penalty_last_n if config.dry_penalty_last_n >= 0 else llm.n_ctx(),
            DRY_SEQUENCE_BREAKERS,
        )
    elif name == "top_n_sigma" and config.top_n_sigma > 0:
        chain.add_top_n_sigma(config.top_n_sigma)
    elif name == "top_k" and config.top_k > 0:
        chain.add_top_k(config.top_k)
    elif name == "typ_p" and config.typical_p < 1:
        chain.add_typical(config.typical_p, 1)
    elif name == "top_p" and config.top_p < 1:
        chain.add_top_p(config.top_p, 1)
    elif name == "min_p" and config.min_p > 0:
        chain.add_min_p(config.min_p, 1)
    elif name == "xtc" and config.xtc_probability > 0:
        chain.add_xtc(config.xtc_probability, config.xtc_threshold, 1, seed)
    elif name == "temperature" and config.temperature > 0:
        _add_temperature(chain, config)


def _add_temperature(chain: Any, config: GenerationConfig) -> None:
    if config.dynatemp_range > 0:
        chain.add_temp_ext(config.temperature, config.dynatemp_range, config.dynatemp_exponent)
    else:
        chain.add_temp(config.temperature)


class CustomChain:
    """Makes the next ``llm.generate`` use ``chain``: ``generate`` asks ``_init_sampler`` for
    its chain when it starts, so an instance attribute answers that one call, then goes."""

    def __init__(self, llm: Any, chain: Any):
        self._llm, self._chain = llm, chain
        llm._init_sampler = self._once

    def _once(self, **_ignored: Any) -> Any:
        self.close()
        return self._chain

    def close(self) -> None:
        if "_init_sampler" in vars(self._llm):
            del self._llm._init_sampler
