"""The real runner: DP-SGD (or the non-private baseline) on MNIST with the tutorial CNN, reporting live records.

``run(params, report, should_stop)`` is the runner contract of ``app.jobs``. Each step draws a Poisson batch
(``dpsgd.poisson_sample``) and takes one step (``dpsgd.DPStep``: per-example clip, sum, noise, SGD); the
per-example gradient norms that step already computed feed the clipping statistics. After each epoch the model is
evaluated on the whole 10k MNIST test set and epsilon comes from ``app.privacy`` with the same q, steps and delta.
Histogram bins, norm statistics and step-record thinning are ``app.records``', shared with the simulation.

A non-private run takes plain SGD steps and measures per-example norms (what C would clip) only on about one step in
eight and each epoch's last (``records.measures_norms``, shared with the simulation, so the reported steps are among
them): its epoch records carry the same statistics from that sample, at about a tenth more time
instead of nearly double, and its step records carry a clip fraction where the step was measured (null elsewhere).

Reproducibility: the model's initial weights, the batches and the noise all derive from ``seed``, and a run repeats
its curves bit for bit (the tests check it in one process; on the development machine it also held across processes
and thread settings, so ``tf.config.experimental.enable_op_determinism`` is not needed). Another CPU may pick other
oneDNN kernels, whose sums can differ in the last bits and so move the curves slightly after many steps.

Variants (``app.training.clipping``, ``docs/variants.md``): the step is built with the run's ``clipping``,
``microbatches`` (an example's microbatch is its index in the training subset mod M: fixed by identity, so adding or
removing one example changes one microbatch) and ``sparsification`` (keep-masks drawn from the seed and the refresh
period alone). Adaptive clipping moves C after every step (:class:`clipping.AdaptiveClip`) and records the C each step
used as the step record's ``max_grad_norm`` (and the epoch's last as the epoch record's). ``clip_fraction`` is the
share of clipped units (examples, or microbatches) the rule scaled *down*.

The cost of privacy (``profile`` on the last epoch record, copied to the summary): after training, a throwaway
model of the same architecture takes ``PROFILE_REPETITIONS`` paired steps, private (the run's variant) and public
(plain SGD), on one synthetic batch of B examples, alternating so that both see the same machine load; medians and the
median of the paired ratios are reported, with the run's own training and evaluation time. Peak memory is the
process's (``ru_maxrss``), not a per-step figure: TensorFlow on CPU exposes no allocator statistics, so the
per-engine peak memory is ``bench/profile.py``'s, each engine in its own process.

With an ``audit`` the run trains on ``audit.prepare``'s training set (its canaries planted, N examples in all) and,
after the last epoch, reports a ``summary`` event carrying the audit of the trained model (``audit.run_audit``); each
epoch record then also carries ``membership_auc``, the loss attack's AUC on a fixed 500 + 500 sample
(``audit.epoch_probe``).

TensorFlow is imported in this package only (here, ``model`` and ``dpsgd``): on the first real run or in
:func:`warm_up`, never at start.
"""

from __future__ import annotations

import math
import os
import resource
import statistics
import threading
import time

import numpy as np

from app import records
from app.training import audit, data
from app.training.memory import RunMemory

EVAL_BATCH = 2000
PROFILE_REPETITIONS = 5
# One core per op, two ops at once: the DP step's per-layer branches are independent and most of its ops are too small
# to split well across cores. Against (2, 2) and (2, 1) the DP step measured as fast on an idle machine and up to 15%
# faster beside another busy process (the plain step up to 10% slower when idle) (bench/throughput.py --threads).
# Requests stay quick either way: POST /api/privacy took p95 18 ms during a run (3.4 ms idle) under both settings.
INTRA_OP_THREADS = 1
INTER_OP_THREADS = 2

_tf_lock = threading.Lock()
_warm_lock = threading.Lock()


def configure_tensorflow():
    """Import TensorFlow once and set its thread pools (before its runtime starts; later calls keep them)."""
    with _tf_lock:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # no C++ info banners in the server log
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(INTRA_OP_THREADS)
            tf.config.threading.set_inter_op_parallelism_threads(INTER_OP_THREADS)
        except RuntimeError:  # the runtime already started (an earlier run, or a test): its settings stay
            pass
        return tf


def warm_up() -> None:
    """Import TensorFlow, read MNIST and run a step and an evaluation of a throwaway model on a tiny batch, so that
    the first real run reports its first step after about 1 s instead of 3.5 s (default knobs, measured here). A run
    that starts meanwhile waits for this to finish."""
    with _warm_lock:
        configure_tensorflow()
        from app.training.dpsgd import DPStep
        from app.training.model import build_model

        x_train, y_train, _, _ = data.raw()
        x, y = data.images(x_train[:8]), y_train[:8].astype(np.int32)
        model = build_model(seed=0)
        DPStep(model, batch_size=4, seed=0)(x, y, max_grad_norm=1.0, noise_multiplier=1.0, learning_rate=0.1)
        _evaluator(model)(x, y)


def run(params: dict, report, should_stop) -> None:
    """Train as ``params`` say, calling ``report`` with step and epoch records; return early when ``should_stop()``.

    ``params`` are the run's knobs plus ``app.jobs.service.plan``'s ``sample_rate`` and ``steps_per_epoch``.

    Raises:
        data.DataUnavailable: MNIST cannot be had here.
    """
    with _warm_lock:  # if a warm-up is running, let it finish rather than compete with it
        configure_tensorflow()
    from app.privacy import adaptive_noise
    from app.training import clipping
    from app.training.dpsgd import DPStep, poisson_sample
    from app.training.model import build_named

    sets = audit.prepare(params) if params.get("audit", "none") != "none" else None
    mnist = sets.mnist if sets else data.load(params["dataset_size"])
    x_train, y_train = (sets.x_train, sets.y_train) if sets else (mnist.x_train, mnist.y_train)
    seed, private = params["seed"], params["private"]
    variant = _variant(params)
    model = build_named(params.get("model", "tutorial_cnn"), seed=seed)
    step = DPStep(model, batch_size=params["batch_size"], private=private, seed=seed,
                  momentum=params.get("momentum", 0.0), **variant)
    step.trace()  # before the first epoch's clock starts
    evaluate = _evaluator(model)
    probe = audit.epoch_probe(model, sets, params) if sets else None
    rng = np.random.default_rng(seed)
    epsilons = params["epsilon_curve"]  # computed when the run was planned
    per_epoch = params["steps_per_epoch"]
    total_steps = per_epoch * params["epochs"]
    knobs = {k: params[k] for k in ("max_grad_norm", "noise_multiplier", "learning_rate")}
    adaptive = None
    if private and variant["clipping"] == "adaptive":
        knobs["noise_multiplier"], count_std = adaptive_noise(noise_multiplier=params["noise_multiplier"],
                                                              batch_size=params["batch_size"])
        adaptive = clipping.AdaptiveClip(initial=params["max_grad_norm"], target_quantile=params["target_quantile"],
                                         batch_size=params["batch_size"], count_std=count_std,
                                         rng=np.random.default_rng([seed, 0xC11]))
    microbatches = variant["microbatches"]
    periods = clipping.SPARSIFICATION_REFRESH * params["epochs"]
    period_length = max(1, per_epoch // clipping.SPARSIFICATION_REFRESH)

    global_step, train_total, eval_total, step_times = 0, 0.0, 0.0, []
    memory = RunMemory()
    for epoch in range(1, params["epochs"] + 1):
        started = time.perf_counter()
        norms, loss_sum, examples, clipped = [], 0.0, 0, 0
        for index in range(per_epoch):
            if should_stop():
                return
            global_step += 1
            extra = {}
            if variant["sparsified"] and index % period_length == 0 and index // period_length < \
                    clipping.SPARSIFICATION_REFRESH:
                period = (epoch - 1) * clipping.SPARSIFICATION_REFRESH + index // period_length
                rate = clipping.sparsification_rate(final_rate=params["sparsification"], period=period,
                                                    periods=periods)
                keep = clipping.sparsification_mask(sizes=step.sizes, rate=rate, seed=seed, period=period)
            if variant["sparsified"]:
                extra["keep"] = keep
            measure = records.measures_norms(params, global_step)
            chosen = poisson_sample(rng, len(y_train), params["sample_rate"])
            if microbatches:
                extra["groups"] = chosen % microbatches
            if adaptive is not None:
                knobs["max_grad_norm"] = adaptive.value
            began = time.perf_counter()
            result = step(x_train[chosen], y_train[chosen], **knobs, measure_norms=measure, **extra)
            step_times.append(time.perf_counter() - began)
            memory.sample()
            used_clip = knobs["max_grad_norm"]
            if adaptive is not None:
                adaptive.update(len(result.grad_norms) - result.clipped)
            examples += len(chosen)
            loss_sum += result.loss * len(chosen) if len(chosen) else 0.0
            if result.grad_norms is not None:
                norms.append(result.grad_norms)
                clipped += result.clipped
            if records.step_is_recorded(global_step, total_steps):
                measured = result.grad_norms is not None
                report({"type": "step", "step": global_step, "epoch": epoch,
                        "loss": records.finite_or_none(result.loss), "batch_size": len(chosen),
                        "clip_fraction": _fraction(result.clipped, len(result.grad_norms)) if measured else None,
                        **({"max_grad_norm": used_clip} if adaptive is not None else {})})
        train_seconds = time.perf_counter() - started
        test_loss, test_accuracy, class_accuracy = evaluate(mnist.x_test, mnist.y_test)
        memory.sample()
        train_total += train_seconds
        eval_total += time.perf_counter() - started - train_seconds
        leakage = {"membership_auc": probe()} if probe else {}
        all_norms = np.concatenate(norms) if norms else np.zeros(0)
        last = epoch == params["epochs"]
        report({
            "type": "epoch", "epoch": epoch, "step": global_step,
            "train_loss": records.finite_or_none(loss_sum / examples) if examples else None,
            "test_loss": records.finite_or_none(test_loss), "test_accuracy": test_accuracy,
            "class_accuracy": class_accuracy,
            "epsilon": epsilons[epoch - 1] if epsilons else None,
            "clip_fraction": _fraction(clipped, all_norms.size),
            **records.norm_statistics(all_norms),
            "epoch_seconds": round(time.perf_counter() - started, 3),
            "examples_per_second": round(examples / train_seconds, 1) if train_seconds > 0 else None,
            **({"max_grad_norm": used_clip} if adaptive is not None else {}),
            **({"sparsification_rate": rate} if variant["sparsified"] else {}),
            **({"profile": profile(params, step_times=step_times, train_seconds=train_total,
                                   evaluation_seconds=eval_total, memory=memory)} if last else {}),
            **leakage,
        })
    if sets is not None and not should_stop():
        report({"type": "summary", "audit": audit.run_audit(model, sets, params)})


def _variant(params: dict) -> dict:
    """The DPStep arguments of a run's variant knobs (absent knobs: flat clipping, per-example, dense)."""
    return {"clipping": params.get("clipping", "flat"), "microbatches": params.get("microbatches", 0),
            "sparsified": params.get("sparsification", 0.0) > 0}


def profile(params: dict, *, step_times: list, train_seconds: float, evaluation_seconds: float,
            memory: RunMemory) -> dict:
    """The cost of privacy measured in this run (see the module docstring): paired private and public steps of this
    run's model, variant and expected batch size on a throwaway model and a synthetic batch, the private step split
    by phase (``app.training.phases``), plus the run's own times and memory."""
    from app.training import clipping, phases
    from app.training.dpsgd import DPStep
    from app.training.model import build_model

    batch = params["batch_size"]
    rng = np.random.default_rng(0)
    x = rng.random((batch, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, batch).astype(np.int32)
    variant = _variant(params)
    private = DPStep(build_model(seed=0), batch_size=batch, seed=0, **variant)
    public = DPStep(build_model(seed=0), batch_size=batch, private=False, seed=0)
    extra = {}
    if variant["sparsified"]:
        extra["keep"] = clipping.sparsification_mask(sizes=private.sizes, rate=params["sparsification"], seed=0,
                                                     period=0)
    if variant["microbatches"]:
        extra["groups"] = np.arange(batch) % variant["microbatches"]
    knobs = {"max_grad_norm": params["max_grad_norm"], "noise_multiplier": 1.0, "learning_rate": 0.0}
    calls = {"private": lambda: private(x, y, **knobs, **extra),
             "public": lambda: public(x, y, **knobs, measure_norms=False)}
    for call in calls.values():  # first calls trace and warm up: not timed
        call()
    times = {name: [] for name in calls}
    for repetition in range(PROFILE_REPETITIONS):
        for name in (("private", "public") if repetition % 2 == 0 else ("public", "private")):
            began = time.perf_counter()
            calls[name]()
            times[name].append(time.perf_counter() - began)
    ratios = [p / q for p, q in zip(times["private"], times["public"]) if q > 0]
    split = phases.step_phases(private, x, y, max_grad_norm=params["max_grad_norm"], repetitions=PROFILE_REPETITIONS)
    epochs = params["epochs"]  # the profile is taken after the last one
    return {
        "batch_size": batch, "repetitions": PROFILE_REPETITIONS,
        "private_step_seconds": round(statistics.median(times["private"]), 5),
        "public_step_seconds": round(statistics.median(times["public"]), 5),
        "private_to_public": round(statistics.median(ratios), 3) if ratios else None,
        "run_step_seconds": round(statistics.median(step_times), 5) if step_times else None,
        "train_seconds": round(train_seconds, 3), "evaluation_seconds": round(evaluation_seconds, 3),
        "train_seconds_per_epoch": round(train_seconds / epochs, 3),
        "evaluation_seconds_per_epoch": round(evaluation_seconds / epochs, 3),
        "phases": {name: round(seconds, 6) for name, seconds in split.items()} if split else None,
        **({} if split else {"phases_note": phases.NOT_SPLIT}),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        **memory.to_dict(),
        "variant": {"clipping": variant["clipping"] if params["private"] else None,
                    "microbatches": variant["microbatches"], "sparsification": params.get("sparsification", 0.0)},
    }


def _fraction(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _evaluator(model):
    """Mean cross-entropy, accuracy and per-class accuracy (ten fractions, None for a class absent from the set) over
    a whole set, in batches, in one compiled function."""
    import tensorflow as tf

    from app.training.model import NUM_CLASSES

    @tf.function(reduce_retracing=True)
    def batch_sums(x, y):
        logits = model(x, training=False)
        loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        correct = tf.cast(tf.equal(tf.argmax(logits, axis=1, output_type=tf.int32), y), tf.float32)
        per_class = tf.math.unsorted_segment_sum(correct, y, NUM_CLASSES)
        return loss, per_class

    def evaluate(x, y):
        loss_total, correct = 0.0, np.zeros(NUM_CLASSES)
        for start in range(0, len(y), EVAL_BATCH):
            loss, per_class = batch_sums(x[start:start + EVAL_BATCH], y[start:start + EVAL_BATCH])
            loss_total += float(loss)
            correct += per_class.numpy()
        counts = np.bincount(y, minlength=NUM_CLASSES)
        by_class = [float(c / n) if n else None for c, n in zip(correct, counts)]
        return loss_total / len(y), float(correct.sum() / len(y)), by_class

    return evaluate
