"""The Keras glue of the privacy audit: which examples a run trains on, holds out and plants, and the model's logits
on them after training, handed to the pure attacks in ``app.audit``.

The split, by construction and reproducible from the run's knobs (``prepare(params)`` returns the same indices):

- Canaries (audit ``canaries``): ``canaries`` = m MNIST training examples outside the run's clean subset, each given a
  random wrong label and included in the training set independently with probability 1/2 (Steinke, Nasr and
  Jagielski 2023). The included ones count in ``dataset_size``: the run trains on N - (included) clean examples plus
  the included canaries, exactly N examples, so the accountant's epsilon (q = B/N) describes the training that ran.
- Members: a class-balanced random sample of the run's clean training examples (never canaries).
- Non-members: as many class-balanced MNIST training examples the run never saw (outside its subset and the
  canaries); when the 60,000 leave too few (N near 60,000), MNIST test examples instead, which the trainer never
  trains on. ``source`` says which.

All the audit's randomness comes from ``np.random.default_rng([seed, AUDIT_STREAM])``, apart from the batches and
the noise, so asking for an audit does not change which batches a run draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.training import data

AUDIT_STREAM = 0xA0D17  # the audit's own random stream beside the run's seed
EPOCH_PAIRS = 500  # members (and as many non-members) behind each epoch record's membership_auc
MAX_MEMBERS = 5000  # members (and as many non-members) attacked at most; at most half the MNIST test set
SOURCES = {"train": "MNIST training examples outside this run's training set",
           "test": "MNIST test examples (the trainer never trains on them), as the training set left too few others"}


@dataclass(frozen=True)
class AuditSets:
    """What a run with an audit trains on and attacks (images as the model takes them, labels int32)."""

    mnist: data.Mnist  # the clean training subset and the test set
    x_train: np.ndarray  # the training set the run uses: clean examples, then the included canaries
    y_train: np.ndarray
    member_positions: np.ndarray  # rows of x_train attacked as members
    x_non_members: np.ndarray
    y_non_members: np.ndarray
    source: str  # "train" or "test": where the non-members come from
    x_canaries: np.ndarray | None = None  # every canary, included or not, with its wrong label
    y_canaries: np.ndarray | None = None
    included: np.ndarray | None = None  # whether each canary is in x_train


def prepare(params: dict) -> AuditSets:
    """The training set and the audit's examples for a run whose ``audit`` is not ``none``.

    Raises:
        data.DataUnavailable: MNIST cannot be had.
        ValueError: the canaries do not fit (``app.params`` refuses such runs first).
    """
    x_raw, y_raw, x_test_raw, y_test_raw = data.raw()
    rng = np.random.default_rng([params["seed"], AUDIT_STREAM])
    size = params["dataset_size"]
    with_canaries = params["audit"] == "canaries"
    m = params["canaries"] if with_canaries else 0
    included = rng.random(m) < 0.5
    clean_size = size - int(included.sum())
    mnist = data.load(clean_size)
    clean = np.sort(data.balanced_indices(y_raw, clean_size, 0))  # the rows of mnist.x_train, in order
    outside = np.setdiff1d(np.arange(len(y_raw)), clean)
    if len(outside) < m:
        raise ValueError(f"{m} canaries do not fit beside {clean_size} training examples in MNIST's {len(y_raw)}")
    canary_rows = rng.choice(outside, size=m, replace=False)
    wrong = ((y_raw[canary_rows].astype(np.int64) + rng.integers(1, data.NUM_CLASSES, size=m))
             % data.NUM_CLASSES).astype(np.int32)
    x_canaries = data.images(x_raw[canary_rows])

    n = min(MAX_MEMBERS, clean_size)
    member_positions = np.sort(_balanced_sample(mnist.y_train, n, rng))
    unseen = np.setdiff1d(outside, canary_rows)
    if len(unseen) >= n:
        chosen, source = unseen[_balanced_sample(y_raw[unseen], n, rng)], "train"
        x_non, y_non = data.images(x_raw[chosen]), y_raw[chosen].astype(np.int32)
    else:
        chosen, source = _balanced_sample(y_test_raw, n, rng), "test"
        x_non, y_non = mnist.x_test[chosen], mnist.y_test[chosen]
    x_train, y_train = mnist.x_train, mnist.y_train
    if with_canaries:
        x_train = np.concatenate([x_train, x_canaries[included]])
        y_train = np.concatenate([y_train, wrong[included]])
    return AuditSets(mnist, x_train, y_train, member_positions, x_non, y_non, source,
                     x_canaries if with_canaries else None, wrong if with_canaries else None,
                     included if with_canaries else None)


def _balanced_sample(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Positions of n of ``labels``, classes as equal as they allow, drawn with ``rng``."""
    return data.balanced_indices(labels, n, int(rng.integers(2**31)))


def epoch_probe(model, sets: AuditSets, params: dict):
    """A function giving the loss attack's AUC on at most ``EPOCH_PAIRS`` members against as many non-members (a
    fixed sample), for each epoch record's ``membership_auc``: leakage as training goes on, at one forward pass of
    at most 1,000 examples an epoch."""
    from app.audit.membership import loss_auc

    rng = np.random.default_rng([params["seed"], AUDIT_STREAM, 1])
    n = min(EPOCH_PAIRS, len(sets.member_positions))
    members = sets.member_positions[rng.choice(len(sets.member_positions), size=n, replace=False)]
    others = rng.choice(len(sets.y_non_members), size=n, replace=False)
    x_in, y_in = sets.x_train[members], sets.y_train[members]
    x_out, y_out = sets.x_non_members[others], sets.y_non_members[others]
    logits = _logits(model)

    def probe() -> float:
        return round(loss_auc(member_logits=logits(x_in), member_labels=y_in, non_member_logits=logits(x_out),
                              non_member_labels=y_out), 6)

    return probe


def run_audit(model, sets: AuditSets, params: dict) -> dict:
    """Attack the trained ``model``: the summary's ``audit`` part (``membership``, and ``canaries`` when planted)."""
    from app.audit.canaries import canary_audit
    from app.audit.membership import features, membership_audit

    logits = _logits(model)
    membership = membership_audit(member_logits=logits(sets.x_train[sets.member_positions]),
                                  member_labels=sets.y_train[sets.member_positions],
                                  non_member_logits=logits(sets.x_non_members), non_member_labels=sets.y_non_members,
                                  seed=params["seed"])
    result = {"membership": {**membership, "source": SOURCES[sets.source]}}
    if sets.x_canaries is not None:
        losses = features(logits(sets.x_canaries), sets.y_canaries)["loss"]
        canaries = canary_audit(scores=-losses, included=sets.included, delta=params["delta"])
        canaries["statement"] += (f" The run's N = {params['dataset_size']} counts the {canaries['included']} "
                                  "canaries it trained on, so its accountant's epsilon covers them.")
        result["canaries"] = canaries
    return result


def _logits(model, batch: int = 2000):
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def forward(x):
        return model(x, training=False)

    def logits(x: np.ndarray) -> np.ndarray:
        return np.concatenate([forward(x[i:i + batch]).numpy() for i in range(0, len(x), batch)])

    return logits
