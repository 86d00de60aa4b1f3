"""The drafting policy's arithmetic: drafts only where the cost model says they pay (pure logic)."""

from __future__ import annotations

import itertools
import random

from engine.backends.draft_policy import (
    MARGIN,
    Acceptance,
    BatchCosts,
    bucket,
    draft_length,
    prior_ratio,
)
from engine.backends.speculative import PromptLookup


def expected_speed(chain: list[float], k: int, costs: BatchCosts) -> float:
    """Tokens per unit of one-token decode cost for a draft of k (k = 0: a plain decode)."""
    survive, expected = 1.0, 1.0
    for p in chain[:k]:
        survive *= p
        expected += survive
    return expected / costs.ratio(k + 1)


def test_a_draft_is_proposed_only_where_the_cost_model_says_it_pays():
    costs, rng = BatchCosts(), random.Random(5)
    chains = [[p] * 16 for p in (0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 1.0)]
    chains += [[rng.random() ** 0.3 for _ in range(rng.randint(1, 16))] for _ in range(300)]
    for chain in chains:
        k = draft_length(chain, costs)
        speeds = [expected_speed(chain, j, costs) for j in range(len(chain) + 1)]
        if k == 0:
            assert max(speeds) <= 1 + MARGIN + 1e-9, chain
        else:
            assert speeds[k] > 1 + MARGIN and speeds[k] == max(speeds), chain


def test_on_this_cpu_curve_short_or_unlikely_drafts_never_pay():
    costs = BatchCosts()
    assert draft_length([0.8], costs) == 0  # one token: 1.8 tokens for a batch that costs 1.8
    assert draft_length([0.9], costs) == 0  # 1.9 / 1.8 does not clear the margin
    assert draft_length([0.5] * 16, costs) == 0
    assert draft_length([0.95] * 16, costs) >= 6  # a quoted passage: long drafts pay about 1.7x
    assert draft_length([], costs) == 0


def test_learned_costs_replace_the_prior_once_seen_often():
    """On hardware where a batch is nearly as cheap as one token (a GPU), drafts grow long."""
    costs = BatchCosts()
    assert draft_length([0.6] * 8, costs) == 0
    for _ in range(50):
        costs.observe(1, 0.010)
        for n in range(2, 10):
            costs.observe(n, 0.011)
    assert abs(costs.ratio(5) - 1.1) < 0.05
    assert costs.ratio(13) == prior_ratio(13)  # never seen: the prior
    assert draft_length([0.6] * 8, costs) >= 3
    assert draft_length([0.05] * 8, costs) == 0  # still not for what is almost never accepted


def test_a_decode_that_lost_its_cpu_does_not_stop_drafting():
    costs = BatchCosts()
    for i in range(40):
        costs.observe(1, 0.010)
        costs.observe(4, 0.025 if i % 10 else 0.400)  # now and then another process takes the CPU
    assert abs(costs.ratio(4) - 2.5) < 0.01


def test_prior_curve_is_monotone_and_interpolated():
    ratios = [prior_ratio(n) for n in range(1, 20)]
    assert ratios[0] == 1.0 and all(a < b for a, b in itertools.pairwise(ratios))
    assert prior_ratio(5) == (2.49 + 3.58) / 2


def test_acceptance_learns_per_match_length():
    acceptance = Acceptance()
    prior_short = acceptance.p(2)
    for _ in range(20):
        acceptance.observe(2, False)
        acceptance.observe(9, True)
    assert acceptance.p(2) < 0.1 < prior_short
    assert acceptance.p(10) > 0.9  # same bucket as 9
    assert bucket(2) == 0 and bucket(100) == bucket(12)


def test_lookup_learns_from_guesses_it_never_drafted():
    """Free chat: the guess after a short match keeps missing; it is scored without a draft."""
    lookup = PromptLookup([1, 2, 3, 4, 1, 2, 5])
    for token in [1, 2, 6, 1, 2, 7, 1, 2, 8]:  # (1, 2) is always followed by something new
        lookup.append(token)
        assert lookup.propose(limit=10) == []
    assert lookup.acceptance.tries[bucket(2)] >= 3 and lookup.acceptance.hits[bucket(2)] == 0


def test_lookup_drafts_a_long_passage_it_is_quoting():
    passage = list(range(100, 140))
    lookup = PromptLookup([1, 2, *passage, 3, 4])
    drafts = []
    for i, token in enumerate(passage[:16]):  # the answer quotes the passage; every guess comes true
        lookup.append(token)
        drafts.append(lookup.propose(limit=30))
        assert drafts[-1] == passage[i + 1 : i + 1 + len(drafts[-1])]
    assert drafts[:5] == [[]] * 5  # not before the answer has shown that its guesses come true
    assert len(drafts[-1]) >= 6
    assert len(lookup.propose(limit=3)) <= 3
    assert PromptLookup([1, 2, 3]).propose(limit=5) == []  # nothing appended, nothing to guess
