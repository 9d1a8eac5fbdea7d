"""Membership attacks on arrays: known ROC values, AUC as the curve's integral and scikit-learn's, perfect and random
scores, and the logistic-regression attack scored on the half it did not fit."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from app.audit import membership as M


def logits_with_loss(loss: np.ndarray, labels: np.ndarray, classes: int = 10) -> np.ndarray:
    """Logits whose cross-entropy on ``labels`` is exactly ``loss`` (the other classes share the rest)."""
    p_label = np.exp(-loss)
    logits = np.full((len(loss), classes), 0.0)
    logits[np.arange(len(loss)), labels] = np.log(p_label * (classes - 1) / (1 - p_label))
    return logits


def test_features_are_loss_confidence_entropy():
    logits = np.log(np.array([[0.7, 0.2, 0.1], [1 / 3, 1 / 3, 1 / 3]]))
    f = M.features(logits, np.array([1, 0]))
    assert f["loss"] == pytest.approx([-np.log(0.2), np.log(3)])
    assert f["confidence"] == pytest.approx([0.7, 1 / 3])
    assert f["entropy"] == pytest.approx([-(0.7 * np.log(0.7) + 0.2 * np.log(0.2) + 0.1 * np.log(0.1)), np.log(3)])
    assert M.features(logits_with_loss(np.array([0.3]), np.array([4])), np.array([4]))["loss"] == pytest.approx([0.3])


def test_known_roc_values():
    is_member = np.array([1, 1, 1, 0, 0, 0], bool)
    scores = np.array([0.9, 0.8, 0.3, 0.7, 0.2, 0.1])  # one non-member outranks one member: AUC 8/9
    r = M.roc_summary(is_member, scores)
    assert r["auc"] == pytest.approx(8 / 9) and r["advantage"] == pytest.approx(2 / 3)
    assert r["tpr_at_fpr"] == {"0.01": pytest.approx(2 / 3), "0.001": pytest.approx(2 / 3)}


@pytest.mark.parametrize("n", [50, 3000])
def test_auc_is_the_integral_of_the_returned_roc_and_sklearns(n):
    rng = np.random.default_rng(n)
    is_member = np.arange(2 * n) < n
    scores = rng.normal(size=2 * n) + 0.5 * is_member
    r = M.roc_summary(is_member, scores)
    assert r["auc"] == pytest.approx(roc_auc_score(is_member, scores))
    fpr, tpr = np.array(r["roc"]["fpr"]), np.array(r["roc"]["tpr"])
    assert len(fpr) <= M.ROC_POINTS + 2 and fpr[0] == 0 and fpr[-1] == 1 and tpr[-1] == 1
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    assert np.trapz(tpr, fpr) == pytest.approx(r["auc"], abs=0.005 if len(fpr) < 2 * n else 1e-9)


def test_perfect_separation_and_random_scores():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 4000)
    members = logits_with_loss(np.full(2000, 0.01), labels[:2000])
    non_members = logits_with_loss(rng.uniform(1.0, 3.0, 2000), labels[2000:])
    perfect = M.membership_audit(member_logits=members, member_labels=labels[:2000], non_member_logits=non_members,
                                 non_member_labels=labels[2000:])
    assert perfect["attacks"]["loss"]["auc"] == 1.0 and perfect["attacks"]["loss"]["advantage"] == 1.0
    assert perfect["attacks"]["loss"]["tpr_at_fpr"]["0.001"] == 1.0
    same = rng.uniform(0.1, 2.0, 4000)  # members and non-members from one distribution
    chance = M.membership_audit(member_logits=logits_with_loss(same[:2000], labels[:2000]),
                                member_labels=labels[:2000], non_member_logits=logits_with_loss(same[2000:],
                                                                                                labels[2000:]),
                                non_member_labels=labels[2000:])
    for name, attack in chance["attacks"].items():
        assert abs(attack["auc"] - 0.5) < 0.05, name
        assert attack["tpr_at_fpr"]["0.01"] < 0.04, name
    assert chance["members"] == chance["non_members"] == 2000 and "not an epsilon lower bound" in chance["statement"]
    assert chance["auc"] == max(a["auc"] for a in chance["attacks"].values())


def test_logistic_regression_is_scored_on_the_half_it_did_not_fit():
    """Pure noise features: a regression scored on its own fitting data would look better than chance; on the
    other half it stays at chance."""
    rng = np.random.default_rng(3)
    logits, labels = rng.normal(size=(400, 10)), rng.integers(0, 10, 400)
    r = M.membership_audit(member_logits=logits[:200], member_labels=labels[:200], non_member_logits=logits[200:],
                           non_member_labels=labels[200:], seed=1)
    assert abs(r["attacks"]["logistic_regression"]["auc"] - 0.5) < 0.1
    with pytest.raises(ValueError, match="at least 4"):
        M.membership_audit(member_logits=logits[:3], member_labels=labels[:3], non_member_logits=logits[3:9],
                           non_member_labels=labels[3:9])


def test_loss_auc_is_the_loss_attacks_auc():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 10, 600)
    logits = logits_with_loss(np.concatenate([rng.uniform(0.05, 1.0, 300), rng.uniform(0.1, 2.0, 300)]), labels)
    args = dict(member_logits=logits[:300], member_labels=labels[:300], non_member_logits=logits[300:],
                non_member_labels=labels[300:])
    assert M.loss_auc(**args) == pytest.approx(M.membership_audit(**args)["attacks"]["loss"]["auc"])
