"""Recommendations: pure rules over a run's parameters and results, each saying why with the numbers it used.

No fixed "good ranges": every rule reads what the run measured (clip fraction, gradient-norm quantiles, accuracy
trend, loss) or asks the accountant what a change would cost.
"""

from __future__ import annotations

import math

from app import privacy
from app.params import ParamError, noise_search_range

CLIPPED_MOST = 0.9
CLIPPED_FEW = 0.1
STALL_GAIN = 0.005  # accuracy gained over the last epochs below this counts as a stall
CHANCE_ACCURACY = 0.15


def recommend(params: dict, epochs: list) -> list[dict]:
    """Recommendations for a run, most important first.

    Args:
        params: the run's params (knobs plus ``sample_rate``, ``steps_per_epoch``).
        epochs: per-epoch records so far (the rules run live, after each epoch, and at the end).

    Returns:
        A list of ``{"id", "severity", "title", "detail"}`` (severity ``warning`` or ``tip``).
    """
    if not epochs:
        return []
    rules = (_diverged, _stalled, _clipped_most, _clipped_few, _over_budget, _more_epochs_cheap)
    found = [advice for rule in rules if (advice := rule(params, epochs))]
    return sorted(found, key=lambda a: a["severity"] != "warning")


def _advice(id_: str, severity: str, title: str, detail: str) -> dict:
    return {"id": id_, "severity": severity, "title": title, "detail": detail}


def _diverged(params, epochs):
    last = epochs[-1]
    loss = last.get("train_loss")
    if (loss is not None and not math.isfinite(loss)) or last["test_accuracy"] <= CHANCE_ACCURACY:
        return _advice("lr_too_high", "warning", "Training diverged or never left chance level",
                       f"Test accuracy is {last['test_accuracy']:.1%} (chance is 10%) with learning rate "
                       f"{params['learning_rate']:g}. Lower the learning rate (try {params['learning_rate'] / 4:g}); "
                       "if accuracy still sits at chance, the noise may swamp the signal: raise the batch size.")
    return None


def _stalled(params, epochs):
    if len(epochs) < 3:
        return None
    gain = epochs[-1]["test_accuracy"] - epochs[-3]["test_accuracy"]
    if gain < STALL_GAIN and epochs[-1]["test_accuracy"] < 0.9:
        return _advice("stalled", "tip", "Accuracy has stalled",
                       f"Test accuracy moved {gain:+.1%} over the last two epochs, to "
                       f"{epochs[-1]['test_accuracy']:.1%}. With learning rate {params['learning_rate']:g}, try "
                       f"{params['learning_rate'] * 2:g} if the loss falls slowly, or {params['learning_rate'] / 2:g} "
                       "if it jumps around.")
    return None


def _clipped_most(params, epochs):
    last = epochs[-1]
    if not params["private"] or last["clip_fraction"] < CLIPPED_MOST:
        return None
    median = last["grad_norm"]["p50"]
    return _advice("clip_raise", "tip", "Almost every gradient is clipped",
                   f"{last['clip_fraction']:.0%} of per-example gradients exceeded C = {params['max_grad_norm']:g} "
                   f"(median norm {median:.3g}). Each step then moves by at most C, so learning is slow and biased. "
                   f"Raise C toward the median norm, or raise the learning rate to compensate; the noise std sigma*C "
                   "grows with C, so raise it only as far as accuracy improves.")


def _clipped_few(params, epochs):
    last = epochs[-1]
    if not params["private"] or last["clip_fraction"] > CLIPPED_FEW:
        return None
    p90 = last["grad_norm"]["p90"]
    return _advice("clip_lower", "tip", "Hardly any gradient reaches the clipping norm",
                   f"Only {last['clip_fraction']:.0%} of gradients exceeded C = {params['max_grad_norm']:g}; 90% have "
                   f"norm below {p90:.3g}. The noise std is sigma*C = "
                   f"{params['noise_multiplier'] * params['max_grad_norm']:.3g} regardless, so a C near {p90:.3g} "
                   "cuts the noise per unit of signal without touching epsilon.")


def _with(report) -> str:
    """A report's epsilon with what it assumes: "1.23 (RDP, delta 1e-05, Poisson sampling)"."""
    return (f"{report.epsilon:.3g} ({report.accountant.upper()}, delta {report.delta:g}, "
            f"{report.sampling.capitalize()} sampling)")


def _over_budget(params, epochs):
    if not params["private"] or epochs[-1].get("epsilon") is None:
        return None
    target, spent = params["target_epsilon"], epochs[-1]["epsilon"]
    if spent <= target:
        return None
    so_far = privacy.accounting_args(params, epochs=len(epochs))
    fewer = privacy.epochs_within_budget(target_epsilon=target, **so_far)
    options = []
    if fewer:
        options.append(f"stop after {fewer} epoch{'s' if fewer != 1 else ''}")
    try:  # solved under RDP whatever the run's accountant: milliseconds, where PLD's bisection takes seconds, and
        # RDP's bound is itself a valid guarantee, so the noise it finds keeps the run within the budget
        noisier = privacy.calibrate_noise(target_epsilon=target, noise_range=noise_search_range(), **{
            **{k: v for k, v in so_far.items() if k != "noise_multiplier"}, "accountant": "rdp"})
    except ParamError:
        noisier = None
    if noisier is not None:
        options.append(f"use noise multiplier {noisier.noise_multiplier:.3g} (epsilon {_with(noisier)})")
    half_batch = max(1, params["batch_size"] // 2)
    smaller = privacy.compute_privacy(**privacy.accounting_args(params, epochs=len(epochs), batch_size=half_batch))
    options.append(f"halve the batch to {half_batch} (sample rate {smaller.sample_rate:.3g}, "
                   f"epsilon {_with(smaller)}; the noise in each averaged gradient, sigma*C/B, doubles)")
    return _advice("over_budget", "warning", f"Epsilon {spent:.3g} is above the budget {target:g}",
                   "To fit the budget: " + "; or ".join(options) + ".")


def _more_epochs_cheap(params, epochs):
    if not params["private"] or len(epochs) < 2 or epochs[-1].get("epsilon") is None:
        return None
    gain = epochs[-1]["test_accuracy"] - epochs[-2]["test_accuracy"]
    if gain < 0.01:
        return None
    more = privacy.compute_privacy(**privacy.accounting_args(params, epochs=len(epochs) + 2))
    return _advice("more_epochs", "tip", "Still improving",
                   f"The last epoch gained {gain:+.1%} accuracy. Two more epochs would spend epsilon "
                   f"{_with(more)} instead of {epochs[-1]['epsilon']:.3g}.")
