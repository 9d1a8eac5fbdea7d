"""The one-run canary audit (Steinke, Nasr and Jagielski 2023) against values computed independently of it: the
closed form of a perfect attack, the Clopper-Pearson bound (delta 0), the paper's Appendix D p-value written out with
exact integer binomials, and simulated randomized response whose true epsilon is known."""

import math

import numpy as np
import pytest
from scipy.stats import beta

from app.audit import canaries as C


def appendix_d_p_value(m, r, v, eps, delta):
    """The paper's App. D ``p_value_DP_audit``, with exact binomial sums (math.comb) instead of scipy."""
    q = 1 / (1 + math.exp(-eps))
    pmf = [math.comb(r, k) * q ** k * (1 - q) ** (r - k) for k in range(r + 1)]
    tail = sum(pmf[v:])
    alpha, total = 0.0, 0.0
    for i in range(1, v + 1):
        total += pmf[v - i]
        alpha = max(alpha, total / i)
    return min(tail + alpha * delta * 2 * m, 1)


@pytest.mark.parametrize("m,r,v,eps,delta", [(100, 20, 18, 1.0, 1e-5), (1000, 100, 93, 1.7, 1e-5),
                                             (50, 50, 40, 0.5, 1e-3), (200, 10, 10, 3.0, 0.0), (30, 30, 0, 0.2, 0.01)])
def test_p_value_matches_the_papers_appendix_written_out(m, r, v, eps, delta):
    assert C.p_value(m=m, guesses=r, correct=v, epsilon=eps, delta=delta) == pytest.approx(
        appendix_d_p_value(m, r, v, eps, delta), rel=1e-9, abs=1e-14)


@pytest.mark.parametrize("r", [10, 100, 1000])
def test_a_perfect_attack_without_delta_gives_the_closed_form(r):
    """All r guesses right, delta 0: p = q^r, so the bound is logit(0.05^(1/r)): 3.49 for 100 guesses, 5.81 for
    1,000 (the 'few units of epsilon' ceiling)."""
    q = 0.05 ** (1 / r)
    assert C.epsilon_lower_bound(m=r, guesses=r, correct=r, delta=0.0) == pytest.approx(math.log(q / (1 - q)),
                                                                                          abs=1e-5)


@pytest.mark.parametrize("r,v", [(100, 70), (200, 180), (1000, 560), (40, 39)])
def test_without_delta_the_bound_is_the_logit_of_clopper_pearson(r, v):
    """P[Bin(r, q) >= v] < 0.05 exactly when q is below the one-sided 95% Clopper-Pearson lower bound of v/r."""
    lower = beta.ppf(0.05, v, r - v + 1)
    assert C.epsilon_lower_bound(m=r, guesses=r, correct=v, delta=0.0) == pytest.approx(
        math.log(lower / (1 - lower)), abs=1e-5)


def test_delta_only_lowers_the_bound_and_chance_gives_nothing():
    no_delta = C.epsilon_lower_bound(m=1000, guesses=200, correct=180, delta=0.0)
    assert 0 < C.epsilon_lower_bound(m=1000, guesses=200, correct=180, delta=1e-5) <= no_delta
    assert C.epsilon_lower_bound(m=1000, guesses=200, correct=100, delta=1e-5) == 0.0
    assert C.epsilon_lower_bound(m=1000, guesses=200, correct=200, delta=0.5) < 1  # a huge delta certifies little


def test_ceiling_is_what_a_perfect_attack_certifies_and_grows_slowly_with_canaries():
    rng = np.random.default_rng(0)
    ceilings = []
    for m in (100, 1000, 5000):
        included = rng.random(m) < 0.5
        perfect = C.canary_audit(scores=included.astype(float), included=included, delta=1e-5)
        assert perfect["epsilon_lower_bound"] == pytest.approx(perfect["ceiling"], abs=1e-5)
        noisy = C.canary_audit(scores=included + rng.normal(size=m), included=included, delta=1e-5)
        assert 0 < noisy["epsilon_lower_bound"] < noisy["ceiling"] == perfect["ceiling"]
        ceilings.append(perfect["ceiling"])
    assert ceilings == sorted(ceilings) and ceilings[1] < 6  # a thousand canaries cannot certify more than ~5


def test_random_scores_certify_nothing():
    rng = np.random.default_rng(1)
    for seed in range(5):
        included = rng.random(500) < 0.5
        assert C.canary_audit(scores=rng.normal(size=500), included=included, delta=1e-5)["epsilon_lower_bound"] == 0


def test_randomized_response_with_known_epsilon_is_never_overclaimed():
    """Guesses from eps-DP randomized response (right with probability e^eps/(1+e^eps)): the 95% bound stays below
    the true eps in at least ~95% of trials, and is usually positive when the signal is strong."""
    rng = np.random.default_rng(2)
    for true_eps in (0.5, 2.0):
        bounds = []
        for _ in range(40):
            included = rng.random(1000) < 0.5
            right = rng.random(1000) < 1 / (1 + math.exp(-true_eps))
            guess_in = np.where(right, included, ~included)
            scores = guess_in + rng.random(1000) * 0.1  # ranks the "in" guesses first
            bounds.append(C.canary_audit(scores=scores, included=included, delta=0.0)["epsilon_lower_bound"])
        assert np.mean(np.array(bounds) > true_eps) <= 0.1
        assert np.median(bounds) > 0.5 * true_eps


def test_report_shape_and_statement():
    included = np.array([True, False] * 50)
    report = C.canary_audit(scores=included + 0.0, included=included, delta=1e-5)
    assert {"count", "guesses", "correct", "epsilon_lower_bound", "confidence", "ceiling"} <= set(report)
    assert report["count"] == 100 and report["included"] == 50 and report["confidence"] == 0.95
    assert len(report["tried"]) == len(C.guess_counts(100)) and "never measures it" in report["statement"]
    with pytest.raises(ValueError, match="at least 2 canaries"):
        C.canary_audit(scores=[1.0], included=[True], delta=1e-5)
    with pytest.raises(ValueError, match="correct"):
        C.p_value(m=10, guesses=5, correct=6, epsilon=1.0, delta=0.0)
