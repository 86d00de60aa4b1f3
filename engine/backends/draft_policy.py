"""When a prompt-lookup draft pays, and how long it should be.

A draft of k tokens is evaluated in one batch of k + 1 positions, all with logits. On a CPU
that batch is far from free: on this project's 2-core machine with the bundled 135M model,
relative to a one-token decode, 2 positions cost 1.8x, 4 cost 2.5x, 8 cost 4.0x and 12
cost 5.6x (most of the slope is the output layer, which every position needs for sampling).
So a one-token draft pays only when it is accepted more than 80 % of the time, a miss costs
up to several tokens' time, and only long drafts that are mostly accepted pay about 2x.

The policy therefore weighs, for each possible length k, the expected tokens one batch
yields (1 + the accepted drafts) against what the batch costs, and drafts only when the
best k beats a plain decode by a margin. Both sides are learned:

- ``BatchCosts`` times the decodes themselves (a prior curve, the one above, until it has
  seen enough batches of a size); on a GPU or a bigger CPU model, where batches are nearly as
  cheap as one token, drafts grow longer by themselves.
- ``Acceptance`` estimates how often the token that followed an earlier occurrence of the
  context's last n tokens is the one the model writes next, per match length n. It learns
  from every generated token, drafted or not (the lookup always guesses; checking a guess
  that was not drafted costs nothing), so free chat, whose short matches rarely continue,
  learns not to draft before it has paid for a single miss.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Sequence

#: one batch of n positions (logits at each) / a one-token decode, measured on a 2-core CPU
#: with the bundled 135M model; sizes in between are interpolated, larger ones extrapolated
PRIOR_COST = ((1, 1.0), (2, 1.8), (3, 2.13), (4, 2.49), (6, 3.58), (8, 4.02), (12, 5.56))
#: match lengths grouped for the acceptance estimate (each bucket starts at this length)
MATCH_BUCKETS = (2, 3, 4, 5, 6, 8, 12)
#: prior acceptance per bucket: longer matches of the context are copied more often. Measured
#: on bench_speed's prompts (bundled model, temperature 0.3): 0.4-0.75 for 2-4 tokens, 0.8-0.95
#: from 8 on. Set lower, so that a bucket drafts only after the answer has shown a hit in it:
#: one correct guess costs nothing, a missed draft of 4 costs 1.5 tokens' time
PRIOR_ACCEPT = (0.35, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75)
#: how much the priors count, in observations
PRIOR_WEIGHT = 2.0
#: a draft must promise at least this much more speed than decoding one token at a time,
#: for what the cost model does not see (noise, sampler and Python overhead per batch)
MARGIN = 0.08


class BatchCosts:
    """What a decode of n positions costs relative to one of 1, learned from timings.

    Lives as long as the loaded model: the curve is a property of the model and the machine.
    Medians of the latest timings per size, because on a busy machine a decode that lost its
    CPU for a scheduler tick takes many times its cost, and one such outlier in a mean would
    stop drafting for a long while.
    """

    def __init__(self, *, window: int = 31, trust_after: int = 8):
        self.window, self.trust_after = window, trust_after
        self._seconds: dict[int, deque[float]] = {}  # the latest timings per batch size
        self._median: dict[int, float] = {}  # theirs, kept current: ratio() runs for every token
        self._seen: dict[int, int] = {}

    def observe(self, n: int, seconds: float) -> None:
        """One decode of ``n`` positions (with logits at each when n > 1) took ``seconds``."""
        if n < 1 or seconds <= 0:
            return
        latest = self._seconds.setdefault(n, deque(maxlen=self.window))
        latest.append(seconds)
        self._median[n] = statistics.median(latest)
        self._seen[n] = self._seen.get(n, 0) + 1

    def ratio(self, n: int) -> float:
        """Cost of n positions / cost of 1: the prior, moving to the measured ratio over the first
        ``trust_after`` decodes of that size (one timing on a busy machine proves little)."""
        prior = prior_ratio(n)
        seen = min(self._seen.get(n, 0), self._seen.get(1, 0))
        if n == 1 or seen == 0:
            return prior
        measured = self._median[n] / self._median[1]
        weight = min(1.0, seen / self.trust_after)
        return weight * measured + (1 - weight) * prior


def prior_ratio(n: int) -> float:
    """The prior cost curve at ``n``: linear between measured sizes, beyond them by the last slope."""
    points = PRIOR_COST
    for (n0, c0), (n1, c1) in zip(points, points[1:], strict=False):
        if n <= n1:
            return c0 + (c1 - c0) * (max(n, n0) - n0) / (n1 - n0)
    (n0, c0), (n1, c1) = points[-2], points[-1]
    return c1 + (c1 - c0) / (n1 - n0) * (n - n1)


def bucket(match: int) -> int:
    """The acceptance bucket of a match of ``match`` tokens (>= the first bucket's length)."""
    index = 0
    for i, start in enumerate(MATCH_BUCKETS):
        if match >= start:
            index = i
    return index


class Acceptance:
    """P(the model writes the token that followed the earlier match | the match length), per
    bucket: the prior plus what this answer has shown so far."""

    def __init__(self) -> None:
        self.hits = [0] * len(MATCH_BUCKETS)
        self.tries = [0] * len(MATCH_BUCKETS)

    def observe(self, match: int, hit: bool) -> None:
        b = bucket(match)
        self.tries[b] += 1
        self.hits[b] += hit

    def p(self, match: int) -> float:
        b = bucket(match)
        return (self.hits[b] + PRIOR_WEIGHT * PRIOR_ACCEPT[b]) / (self.tries[b] + PRIOR_WEIGHT)


def draft_length(chain: Sequence[float], costs: BatchCosts, *, margin: float = MARGIN) -> int:
    """The draft length k (0: no draft) with the most expected tokens per unit of decode cost.

    ``chain[j]`` is the chance that draft token j is accepted given that those before it were.
    A batch of k drafts yields 1 + (expected accepted) tokens for ``costs.ratio(k + 1)``; a
    plain decode yields 1 for 1. A draft is proposed only if it beats that by ``margin``.
    """
    best_k, best_speed = 0, 1.0 + margin
    survive, expected = 1.0, 1.0
    for k, p in enumerate(chain, start=1):
        survive *= p
        expected += survive
        speed = expected / costs.ratio(k + 1)
        if speed > best_speed:
            best_k, best_speed = k, speed
    return best_k
