"""Token log-probabilities as OpenAI reports them, from the raw logits of one position.

numpy is imported lazily (only turns that ask for logprobs pay for it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..types import TokenLogprob

if TYPE_CHECKING:
    import numpy as np


def token_logprob(logits: np.ndarray, token: int, top_n: int, piece: Callable[[int], bytes]) -> TokenLogprob:
    """The log-probability of ``token`` under ``logits`` and its ``top_n`` best alternatives
    (``piece`` gives a token's bytes). These are the model's raw probabilities, before
    temperature and the other samplers."""
    import numpy as np

    logits = logits.astype(np.float64)
    n_vocab = logits.shape[0]
    peak = logits.max()
    logprobs = logits - (peak + np.log(np.exp(logits - peak).sum()))
    top: tuple[TokenLogprob, ...] = ()
    if top_n > 0:
        best = np.argpartition(-logprobs, min(top_n, n_vocab - 1))[:top_n]
        best = best[np.argsort(-logprobs[best], kind="stable")]
        top = tuple(scored(piece(int(t)), float(logprobs[t])) for t in best)
    return scored(piece(token), float(logprobs[token]), top)


def scored(piece: bytes, logprob: float, top: tuple[TokenLogprob, ...] = ()) -> TokenLogprob:
    """One token (its bytes ``piece``) with its log-probability, capped at 0 (rounding)."""
    text = piece.decode("utf-8", errors="replace")
    return TokenLogprob(token=text, token_bytes=piece, logprob=min(logprob, 0.0), top=top)


def drain(pending: list[TokenLogprob]) -> tuple[TokenLogprob, ...] | None:
    """What ``pending`` holds (None when empty), emptying it for the next chunk."""
    if not pending:
        return None
    out = tuple(pending)
    pending.clear()
    return out
