"""The sampler chain at one position, stage by stage, recomputed from stored raw log-probabilities.

Mirrors llama.cpp's samplers (llama-sampling.cpp) on the stored top candidates: penalties, DRY,
top-n-sigma, top-k, typical-p, top-p, min-p, XTC and temperature, in the configured order, after
the logit bias. Tokens outside the stored top candidates are shown as one "rest" mass, which only
the raw stage knows exactly; stages that need every token say when they are approximate.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..config import BIAS_BAN, GenerationConfig
from .trace import TokenTrace

#: the repetition penalties look at this many earlier tokens of the answer (llama-cpp-python)
PENALTY_LAST_N = 64

STAGE_LABELS = {
    "raw": "raw (the model)",
    "logit_bias": "logit bias",
    "penalties": "penalties",
    "dry": "DRY",
    "top_n_sigma": "top-n-sigma",
    "top_k": "top-k",
    "typ_p": "typical-p",
    "top_p": "top-p",
    "min_p": "min-p",
    "xtc": "XTC",
    "temperature": "temperature",
}


@dataclass(frozen=True, kw_only=True)
class StageView:
    name: str
    #: candidates still in the running, most likely first: (token id, probability among them)
    kept: list[tuple[int, float]]
    #: candidates this stage removed
    removed: list[int]
    #: probability of the tokens beyond the stored ones (None once a stage dropped them)
    rest: float | None
    note: str = ""

    @property
    def label(self) -> str:
        return STAGE_LABELS.get(self.name, self.name)


@dataclass(frozen=True, kw_only=True)
class PositionView:
    index: int
    drawn: int
    #: the drawn token's probability after the whole chain (0 = these settings would remove it)
    drawn_p: float
    stages: list[StageView]


class _Pool:
    """Candidates as parallel arrays (ids, logits) plus the mass of the unstored rest."""

    def __init__(self, ids: np.ndarray, logits: np.ndarray, rest_logit: float | None):
        self.ids, self.logits, self.rest_logit = ids, logits, rest_logit

    def probs(self) -> tuple[np.ndarray, float | None]:
        parts = [self.logits] + ([np.array([self.rest_logit])] if self.rest_logit is not None else [])
        allx = np.concatenate(parts)
        finite = np.isfinite(allx)
        peak = allx[finite].max() if finite.any() else 0.0
        e = np.where(finite, np.exp(allx - peak), 0.0)
        e = e / e.sum() if e.sum() > 0 else e
        rest = float(e[-1]) if self.rest_logit is not None else None
        return e[: len(self.logits)], rest

    def keep(self, mask: np.ndarray, *, drop_rest: bool = True) -> list[int]:
        removed = [int(t) for t in self.ids[~mask]]
        self.ids, self.logits = self.ids[mask], self.logits[mask]
        if drop_rest:
            self.rest_logit = None
        return removed

    def snapshot(self, name: str, removed: list[int], note: str = "") -> StageView:
        p, rest = self.probs()
        order = np.argsort(-p, kind="stable")
        kept = [(int(self.ids[i]), float(p[i])) for i in order if p[i] > 0]
        return StageView(name=name, kept=kept, removed=removed, rest=rest, note=note)


def view_position(trace: TokenTrace, index: int, config: GenerationConfig) -> PositionView:
    """Every stage of ``config``'s chain at token ``index`` of the answer in ``trace``."""
    ids = np.asarray(trace.top_ids[index], dtype=np.int64)
    logits = np.asarray(trace.top_logprobs[index], dtype=np.float64)
    stored = float(np.exp(logits).sum())
    rest = math.log(1 - stored) if stored < 1 - 1e-9 else None
    pool = _Pool(ids, logits, rest)
    stages = [pool.snapshot("raw", [])]
    if config.logit_bias:
        stages.append(_logit_bias(pool, config))
    mirostat = config.mirostat_mode in (1, 2) and config.temperature > 0
    history = trace.ids[:index]
    for name in config.samplers:
        if mirostat and name not in ("penalties", "dry"):
            continue
        stage = _stage(pool, name, config, history, trace.stats[index] if trace.stats else None)
        if stage is not None:
            stages.append(stage)
    if mirostat:
        stages.append(
            pool.snapshot("mirostat", [], "Mirostat's state depends on the answer so far: not simulated.")
        )
    drawn = trace.ids[index]
    final = dict(stages[-1].kept)
    return PositionView(index=index, drawn=drawn, drawn_p=final.get(drawn, 0.0), stages=stages)


def _logit_bias(pool: _Pool, config: GenerationConfig) -> StageView:
    bias = dict(config.logit_bias)
    for i, token in enumerate(pool.ids):
        b = bias.get(int(token))
        if b is not None:
            pool.logits[i] = -math.inf if b <= BIAS_BAN else pool.logits[i] + b
    removed = pool.keep(np.isfinite(pool.logits), drop_rest=False)
    return pool.snapshot("logit_bias", removed)


def _stage(
    pool: _Pool,
    name: str,
    config: GenerationConfig,
    history: Sequence[int],
    stats: tuple[float, float] | None,
) -> StageView | None:
    if name == "penalties":
        return _penalties(pool, config, history)
    if name == "dry" and config.dry_multiplier > 0:
        return pool.snapshot(name, [], "DRY depends on whole repeated sequences: not simulated here.")
    if name == "top_n_sigma" and config.top_n_sigma > 0 and stats is not None:
        peak = float(pool.logits.max()) if len(pool.logits) else 0.0
        cut = peak - config.top_n_sigma * stats[1]
        drop_rest = pool.logits.min() >= cut if len(pool.logits) else True
        return pool.snapshot(name, pool.keep(pool.logits >= cut, drop_rest=bool(drop_rest)))
    if name == "top_k" and config.top_k > 0:
        return _top_k(pool, config.top_k)
    if name == "typ_p" and config.typical_p < 1:
        return _typical(pool, config.typical_p)
    if name == "top_p" and config.top_p < 1:
        return _top_p(pool, config.top_p)
    if name == "min_p" and config.min_p > 0:
        cut = float(pool.logits.max()) + math.log(config.min_p)
        # the rest holds tokens no likelier than the last stored one
        drop_rest = bool(pool.logits.min() >= cut) or len(pool.ids) < 1
        return pool.snapshot(name, pool.keep(pool.logits >= cut, drop_rest=drop_rest))
    if name == "xtc" and config.xtc_probability > 0:
        return _xtc(pool, config)
    if name == "temperature":
        return _temperature(pool, config)
    return None


def _penalties(pool: _Pool, config: GenerationConfig, history: Sequence[int]) -> StageView | None:
    if config.repeat_penalty == 1 and config.frequency_penalty == 0 and config.presence_penalty == 0:
        return None
    counts = Counter(history[-PENALTY_LAST_N:])
    for i, token in enumerate(pool.ids):
        n = counts.get(int(token), 0)
        if n:
            x = pool.logits[i]
            x = x * config.repeat_penalty if x <= 0 else x / config.repeat_penalty
            pool.logits[i] = x - n * config.frequency_penalty - config.presence_penalty
    hit = sum(1 for t in pool.ids if counts.get(int(t)))
    return pool.snapshot("penalties", [], f"{hit} candidate(s) appeared in the last {PENALTY_LAST_N} tokens.")


def _top_k(pool: _Pool, k: int) -> StageView:
    order = np.argsort(-pool.logits, kind="stable")
    mask = np.zeros(len(pool.ids), bool)
    mask[order[:k]] = True
    note = "" if k <= len(pool.ids) else f"only the top {len(pool.ids)} are stored"
    return pool.snapshot("top_k", pool.keep(mask, drop_rest=k <= len(pool.ids)), note)


def _sorted_probs(pool: _Pool) -> tuple[np.ndarray, np.ndarray]:
    p, _ = pool.probs()
    return np.argsort(-p, kind="stable"), p


def _top_p(pool: _Pool, top_p: float) -> StageView:
    order, p = _sorted_probs(pool)
    cum = np.cumsum(p[order])
    last = int(np.searchsorted(cum, top_p) + 1) if cum.size else 0
    if last > len(order):
        return pool.snapshot("top_p", [], "the cut falls among tokens that are not stored")
    mask = np.zeros(len(pool.ids), bool)
    mask[order[: max(last, 1)]] = True
    return pool.snapshot("top_p", pool.keep(mask))


def _typical(pool: _Pool, typical_p: float) -> StageView:
    p, _ = pool.probs()
    p = p / p.sum() if p.sum() > 0 else p
    with np.errstate(divide="ignore", invalid="ignore"):
        logp = np.where(p > 0, np.log(p), -np.inf)
        entropy = -np.nansum(np.where(p > 0, p * logp, 0.0))
        shifted = np.abs(-logp - entropy)
    order = np.argsort(shifted, kind="stable")
    cum, last = 0.0, len(order)
    for i, j in enumerate(order):
        cum += p[j]
        if cum > typical_p:
            last = i + 1
            break
    mask = np.zeros(len(pool.ids), bool)
    mask[order[:last]] = True
    return pool.snapshot("typ_p", pool.keep(mask))


def _xtc(pool: _Pool, config: GenerationConfig) -> StageView:
    order, p = _sorted_probs(pool)
    above = [int(i) for i in order if p[i] >= config.xtc_threshold]
    note = f"fires on {config.xtc_probability:.0%} of tokens (seeded); shown as if it fired"
    if len(above) < 2:
        return pool.snapshot("xtc", [], note + ": fewer than two choices above the threshold")
    mask = np.ones(len(pool.ids), bool)
    mask[above[:-1]] = False  # all but the least likely of them
    return pool.snapshot("xtc", pool.keep(mask, drop_rest=False), note)


def _temperature(pool: _Pool, config: GenerationConfig) -> StageView:
    t = config.temperature
    if t <= 0:
        best = int(np.argmax(pool.logits))
        mask = np.zeros(len(pool.ids), bool)
        mask[best] = True
        return pool.snapshot("temperature", pool.keep(mask), "temperature 0: the most likely token")
    note = ""
    if config.dynatemp_range > 0:
        p, _ = pool.probs()
        p = p[p > 0]
        lo, hi = max(0.0, t - config.dynatemp_range), t + config.dynatemp_range
        max_entropy = math.log(len(p)) if len(p) > 1 else 1.0
        entropy = float(-(p * np.log(p)).sum())
        t = lo + (hi - lo) * (entropy / max_entropy) ** config.dynatemp_exponent if len(p) > 1 else t
        note = f"dynamic temperature {t:.3f}"
    pool.logits = pool.logits / t
    if pool.rest_logit is not None:
        pool.rest_logit = pool.rest_logit / t
        note = (note + "; " if note else "") + "the rest is approximate"
    return pool.snapshot("temperature", [], note)
