"""The one-run canary audit of Steinke, Nasr and Jagielski, "Privacy Auditing with One (1) Training Run" (NeurIPS 2023,
arXiv:2305.08846): an epsilon lower bound from a single training run.

m canaries are each included in the training set independently with probability 1/2. After training the auditor
scores every canary (here black-box: higher score = lower loss on the canary's label), guesses "in" for the k+ best
scores and "out" for the k- worst, and abstains on the rest. If the training is (epsilon, delta)-DP, the number of
correct guesses W among the r = k+ + k- guesses satisfies (their Theorem 5.2 / Corollary 5.4)

    P[W >= v] <= P[Binomial(r, q) >= v] + 2 m delta * max_{i=1..v} (1/i) P[v - i <= Binomial(r, q) < v],

with q = e^eps / (1 + e^eps), the accuracy of eps-DP randomized response. The right side is the p-value of "the
training is (eps, delta)-DP" given v; the reported bound is the largest eps that p-value rejects at the chosen
confidence (their Appendix D, ``get_eps_audit``). With delta = 0 this is the one-sided Clopper-Pearson lower bound
on the guesses' accuracy, turned into an epsilon by the logit (the tests check it).

This module tries a few (k+, k-) pairs fixed in advance and reports the best, testing each at level (1 - confidence)
divided by their number (Bonferroni), so the bound keeps its confidence whichever pair is best.

The ceiling: even a perfect attack (one that ranks every included canary above every excluded one) certifies at most
``ceiling`` for these canaries, because r guesses can only reject so much (5.8 for 1,000 right guesses at 95% and
delta 0; about 4.7 for 1,000 canaries with the four pairs tried here and delta 1e-5). A "lower bound 2" is never
"epsilon is 2".
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit
from scipy.stats import binom

CONFIDENCE = 0.95
GUESS_FRACTIONS = (0.05, 0.1, 0.25, 0.5)  # k+ = k- = fraction * m, each a test of its own (Bonferroni)
EPSILON_MAX = 100.0  # the search never goes beyond this
STATEMENT = ("{confidence:.0%} lower bound on epsilon from {count} canaries (Steinke, Nasr and Jagielski 2023): the "
             "training is not ({bound:.3g}, {delta:g})-DP at that confidence. Even a perfect attack on these canaries "
             "would certify at most {ceiling:.3g}, so this bounds epsilon from below and never measures it.")


def p_value(*, m: int, guesses: int, correct: int, epsilon: float, delta: float) -> float:
    """The p-value of ``correct`` right guesses out of ``guesses`` under (epsilon, delta)-DP (Corollary 5.4).

    Args:
        m: canaries, each included independently with probability 1/2.
        guesses: r, the guesses made (abstentions excluded).
        correct: v, the right ones.
        epsilon, delta: the DP claim tested.

    Raises:
        ValueError: not 0 <= correct <= guesses <= m, or epsilon < 0, or delta outside [0, 1].
    """
    if not 0 <= correct <= guesses <= m:
        raise ValueError(f"need 0 <= correct <= guesses <= m, got correct {correct}, guesses {guesses}, m {m}")
    if epsilon < 0 or not 0 <= delta <= 1:
        raise ValueError(f"need epsilon >= 0 and delta in [0, 1], got epsilon {epsilon!r}, delta {delta!r}")
    q = float(expit(epsilon))
    tail = float(binom.sf(correct - 1, guesses, q))  # P[Binomial(r, q) >= v]
    if delta == 0 or correct == 0:
        return min(tail, 1.0)
    i = np.arange(1, correct + 1)
    below = binom.sf(correct - i - 1, guesses, q) - tail  # P[v - i <= Binomial(r, q) < v]
    alpha = float(np.max(below / i))
    return min(tail + alpha * delta * 2 * m, 1.0)


def epsilon_lower_bound(*, m: int, guesses: int, correct: int, delta: float, level: float = 1 - CONFIDENCE) -> float:
    """The largest epsilon whose (epsilon, delta)-DP claim the guesses reject at significance ``level`` (0 if none).

    Bisection as in the paper's ``get_eps_audit``; the p-value grows with epsilon. Returns the low end of the final
    bracket (conservative), to 1e-6.
    """
    if p_value(m=m, guesses=guesses, correct=correct, epsilon=0.0, delta=delta) >= level:
        return 0.0
    low, high = 0.0, 1.0
    while p_value(m=m, guesses=guesses, correct=correct, epsilon=high, delta=delta) < level:
        low, high = high, high * 2
        if high > EPSILON_MAX:
            return EPSILON_MAX
    while high - low > 1e-6:
        mid = (low + high) / 2
        if p_value(m=m, guesses=guesses, correct=correct, epsilon=mid, delta=delta) < level:
            low = mid
        else:
            high = mid
    return low


def guess_counts(m: int, fractions=GUESS_FRACTIONS) -> list[tuple[int, int]]:
    """The (k+, k-) pairs tried for m canaries: k+ = k- = max(1, round(fraction * m)), distinct, r <= m."""
    pairs = []
    for fraction in fractions:
        k = max(1, min(m // 2, round(fraction * m)))
        if (k, k) not in pairs:
            pairs.append((k, k))
    return pairs


def canary_audit(*, scores: np.ndarray, included: np.ndarray, delta: float, confidence: float = CONFIDENCE,
                 fractions=GUESS_FRACTIONS) -> dict:
    """The one-run audit of one training run's canaries.

    Args:
        scores: [m] the attack's score per canary, higher meaning "in" (here minus its loss).
        included: [m] booleans: whether each canary was in the training set.
        delta: the delta of the DP claim tested (the run's).
        confidence: of the bound (0.95).
        fractions: the guess fractions tried (see ``guess_counts``).

    Returns:
        ``{"count", "included", "guesses", "correct", "k_plus", "k_minus", "epsilon_lower_bound", "confidence",
        "ceiling", "delta", "tried", "statement"}`` for the best pair; ``tried`` lists every pair; ``ceiling`` is
        what a perfect attack would certify on these canaries (the same pairs and level).

    Raises:
        ValueError: fewer than 2 canaries, or shapes differ.
    """
    scores, included = np.asarray(scores, dtype=np.float64), np.asarray(included, dtype=bool)
    m = len(scores)
    if m < 2 or included.shape != scores.shape:
        raise ValueError(f"need at least 2 canaries with one inclusion flag each, got {m} scores, "
                         f"{included.size} flags")
    pairs = guess_counts(m, fractions)
    level = (1 - confidence) / len(pairs)
    tried = _tests(scores, included, pairs, delta, level)
    best = max(tried, key=lambda t: (t["epsilon_lower_bound"], t["correct"] / t["guesses"]))
    perfect = _tests(included.astype(np.float64), included, pairs, delta, level)  # every "in" ranked first
    top = max(t["epsilon_lower_bound"] for t in perfect)
    return {"count": m, "included": int(included.sum()), **best, "confidence": confidence,
            "ceiling": round(top, 6), "delta": delta, "tried": tried,
            "statement": STATEMENT.format(confidence=confidence, count=m, bound=best["epsilon_lower_bound"],
                                          delta=delta, ceiling=top)}



def _tests(scores: np.ndarray, included: np.ndarray, pairs, delta: float, level: float) -> list[dict]:
    """Each (k+, k-) pair's guesses, right guesses and bound at ``level``."""
    m = len(scores)
    order = np.argsort(-np.nan_to_num(scores, nan=-np.inf), kind="stable")  # best ("in") first
    tried = []
    for k_plus, k_minus in pairs:
        correct = int(included[order[:k_plus]].sum() + (~included[order[m - k_minus:]]).sum())
        bound = epsilon_lower_bound(m=m, guesses=k_plus + k_minus, correct=correct, delta=delta, level=level)
        tried.append({"k_plus": k_plus, "k_minus": k_minus, "guesses": k_plus + k_minus, "correct": correct,
                      "epsilon_lower_bound": round(bound, 6)})
    return tried
