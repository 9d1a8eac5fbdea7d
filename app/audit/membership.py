"""Membership inference on arrays: threshold attacks on loss, confidence and entropy, and a logistic regression over
those features, each scored by its ROC (scikit-learn's ``roc_curve``/``roc_auc_score``).

What it measures: how well an attacker holding this model's outputs tells this run's members from examples it never
saw, on this split. That is empirical leakage of one model, **not** a lower bound on epsilon (one model and its own
split: no hypothesis test over training runs). Besides AUC it reports the attacker's advantage (max TPR - FPR, Yeom et
al. 2018) and the TPR at FPR 1% and 0.1%, because an AUC near 0.5 can hide a few members identified with confidence
(Carlini et al. 2022, "Membership Inference Attacks From First Principles").

Pure numpy/scipy/scikit-learn: no TensorFlow (the Keras glue is ``app.training.audit``).
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score, roc_curve

FPR_LEVELS = (0.01, 0.001)  # the "TPR at FPR" levels reported, keyed "0.01" and "0.001"
ROC_POINTS = 200  # at most this many points of each returned curve
FEATURES = ("loss", "confidence", "entropy")
STATEMENT = ("Empirical leakage of this model on this split (members against examples it never saw), not an epsilon "
             "lower bound: one model, one split, no test over training runs.")


def features(logits: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Per-example attack features from a model's logits.

    Args:
        logits: [n, classes] pre-softmax outputs.
        labels: [n] the labels the examples were trained (or would be trained) with.

    Returns:
        ``loss`` (cross-entropy on the label), ``confidence`` (the top softmax probability) and ``entropy`` (of the
        softmax), each [n].
    """
    log_p = log_softmax(np.asarray(logits, dtype=np.float64), axis=1)
    labels = np.asarray(labels, dtype=np.int64)
    p = np.exp(log_p)
    return {"loss": -log_p[np.arange(len(labels)), labels], "confidence": p.max(axis=1),
            "entropy": -(p * log_p).sum(axis=1)}


def membership_scores(feats: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Scores where higher means "member" for each threshold attack: low loss, high confidence, low entropy."""
    return {"loss": -feats["loss"], "confidence": feats["confidence"], "entropy": -feats["entropy"]}


def roc_summary(is_member: np.ndarray, scores: np.ndarray, *, max_points: int = ROC_POINTS) -> dict:
    """ROC of one attack: AUC, advantage, TPR at the FPR levels, and the curve thinned to ``max_points``.

    Args:
        is_member: [n] booleans, True for members.
        scores: [n] attack scores, higher meaning "member".
        max_points: most points of the returned curve (the first and last are always kept; low FPRs are kept
            densely so a log-FPR axis shows them).

    Returns:
        ``{"auc", "advantage", "tpr_at_fpr": {"0.01", "0.001"}, "roc": {"fpr", "tpr"}}``. TPR at FPR x is the best
        TPR among thresholds whose FPR is at most x (0 where no threshold reaches it).

    Raises:
        ValueError: both classes are not present.
    """
    is_member = np.asarray(is_member, dtype=bool)
    if is_member.all() or not is_member.any():
        raise ValueError("a ROC needs both members and non-members")
    scores = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf)
    fpr, tpr, _ = roc_curve(is_member, scores, drop_intermediate=True)
    keep = _thin(fpr, max_points)
    return {
        "auc": float(roc_auc_score(is_member, scores)),
        "advantage": float(np.max(tpr - fpr)),
        "tpr_at_fpr": {str(level): float(tpr[fpr <= level].max(initial=0.0)) for level in FPR_LEVELS},
        "roc": {"fpr": [round(float(x), 6) for x in fpr[keep]], "tpr": [round(float(y), 6) for y in tpr[keep]]},
    }


def _thin(fpr: np.ndarray, max_points: int) -> np.ndarray:
    """Indices of at most about ``max_points`` ROC points: nearest to a grid half linear, half log in FPR."""
    if len(fpr) <= max_points:
        return np.arange(len(fpr))
    half = max_points // 2
    grid = np.concatenate([np.linspace(0, 1, half), np.logspace(-5, 0, half)])
    chosen = np.clip(np.searchsorted(fpr, grid), 0, len(fpr) - 1)
    return np.unique(np.concatenate([[0, len(fpr) - 1], chosen]))


def loss_auc(*, member_logits: np.ndarray, member_labels: np.ndarray, non_member_logits: np.ndarray,
             non_member_labels: np.ndarray) -> float:
    """The loss-threshold attack's AUC alone: the cheap figure an epoch record carries."""
    losses = np.concatenate([features(member_logits, member_labels)["loss"],
                             features(non_member_logits, non_member_labels)["loss"]])
    is_member = np.arange(len(losses)) < len(member_labels)
    return float(roc_auc_score(is_member, -losses))


def membership_audit(*, member_logits: np.ndarray, member_labels: np.ndarray, non_member_logits: np.ndarray,
                     non_member_labels: np.ndarray, seed: int = 0) -> dict:
    """Every attack on one model: thresholds on each feature over all examples, and a logistic regression over the
    three features (standardised) fitted on a random half of members and non-members and scored on the other half.

    Args:
        member_logits, member_labels: the model's logits on training examples, and their training labels.
        non_member_logits, non_member_labels: the same for examples the run never trained on.
        seed: the split of the logistic-regression attack.

    Returns:
        The best attack's ``roc_summary`` (by AUC) at the top, with ``attack`` naming it, ``attacks`` (each attack's
        auc, advantage and tpr_at_fpr), ``members``, ``non_members`` and ``statement``. Picking the best of four
        attacks on the same examples favours the attacker slightly; each attack's own figures are in ``attacks``.

    Raises:
        ValueError: fewer than 4 members or non-members.
    """
    n_in, n_out = len(member_labels), len(non_member_labels)
    if min(n_in, n_out) < 4:
        raise ValueError(f"need at least 4 members and 4 non-members, got {n_in} and {n_out}")
    feats_in, feats_out = features(member_logits, member_labels), features(non_member_logits, non_member_labels)
    is_member = np.concatenate([np.ones(n_in, bool), np.zeros(n_out, bool)])
    feats = {k: np.concatenate([feats_in[k], feats_out[k]]) for k in FEATURES}
    results = {name: roc_summary(is_member, score) for name, score in membership_scores(feats).items()}
    results["logistic_regression"] = _logistic_attack(is_member, feats, seed)
    best = max(results, key=lambda name: results[name]["auc"])
    return {**results[best], "attack": best,
            "attacks": {name: {k: v for k, v in r.items() if k != "roc"} for name, r in results.items()},
            "members": n_in, "non_members": n_out, "statement": STATEMENT}


def _logistic_attack(is_member: np.ndarray, feats: dict, seed: int) -> dict:
    x = np.column_stack([np.log(feats["loss"] + 1e-12), feats["confidence"], feats["entropy"]])
    rng = np.random.default_rng(seed)
    fit = np.zeros(len(is_member), bool)
    for cls in (True, False):  # half of each class to fit, the rest to score
        idx = rng.permutation(np.flatnonzero(is_member == cls))
        fit[idx[: len(idx) // 2]] = True
    mean, std = x[fit].mean(axis=0), x[fit].std(axis=0) + 1e-12
    model = LogisticRegression().fit((x[fit] - mean) / std, is_member[fit])
    scores = model.decision_function((x[~fit] - mean) / std)
    return roc_summary(is_member[~fit], scores)
