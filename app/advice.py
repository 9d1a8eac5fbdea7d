"""Recommendations as one diagnosis: what limits this run most, with its numbers and the one change that addresses
it, then secondary notes that never contradict it.

Pure rules over a run's parameters and the records it reported (clip fraction, gradient-norm quantiles, accuracy
trend, loss) plus the accountant's price of each change. The rules are tried in the order of what limits a run first:
a run that diverged learns nothing else; then a privacy budget exceeded; noise that swamps the clipped signal;
steps too small to move; too few steps; budget left unused; and tips on the clipping norm. The first that applies is
the diagnosis; later ones become notes unless they would change a knob the diagnosis changes. Suggested values are
rounded to the sliders' stops (``app.params.nearest_stop``), a noise multiplier up, so the budget still holds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from app import privacy
from app.params import ParamError, nearest_stop, noise_search_range

# The CNN's trainable parameters (tutorial and tanh CNN alike; tests/training pins it to Keras' count): the noise in
# an averaged gradient has norm sigma * C * sqrt(PARAMETERS) / B, the clipped signal at most min(C, median norm).
PARAMETERS = 26_010
NOISE_SWAMPS = 4.0  # noise-to-signal ratio of an averaged gradient above which noise limits learning
TINY_STEP = 0.005  # lr * min(C, median norm) below this moves the weights too little to learn in a few epochs
CHANCE_ACCURACY = 0.15  # at or below: the run learned nothing (chance is 10%)
EXPLODED_LOSS = 10.0  # a constant guess scores ln 10 = 2.3; far above it, training blew up
LARGE_STEP = 1.0  # lr * min(C, median norm) above this overshoots (real private runs die from about 6)
DECAYED = 0.05  # accuracy this far below the run's best epoch, with a large step: the run is coming apart
STILL_IMPROVING = 0.01  # accuracy gained in the last epoch at or above this: more epochs would help
STALLED = 0.005  # accuracy gained over the last two epochs below this, under GOOD_ACCURACY: a stall
GOOD_ACCURACY = 0.9
UNUSED_BUDGET = 0.5  # a final epsilon below this share of the target leaves budget on the table
CLIPPED_FEW = 0.1
CLIPPED_MOST = 0.9


@dataclass(frozen=True)
class Finding:
    """One recommendation: ``change`` maps each knob it would set to the value (empty: nothing to set)."""

    id: str
    severity: str  # "warning" or "tip"
    title: str
    detail: str
    change: dict = field(default_factory=dict)

    def to_dict(self, role: str) -> dict:
        return {"id": self.id, "severity": self.severity, "title": self.title, "detail": self.detail,
                "change": dict(self.change), "role": role}


@dataclass(frozen=True)
class Facts:
    """What the rules read from a run: its knobs and plan, and its last epochs."""

    params: dict
    epochs: list

    @property
    def last(self) -> dict:
        return self.epochs[-1]

    @property
    def accuracy(self) -> float:
        return self.last["test_accuracy"]

    def gain(self, over: int) -> float | None:
        """Accuracy gained over the last ``over`` epochs (None before there are that many)."""
        return self.accuracy - self.epochs[-1 - over]["test_accuracy"] if len(self.epochs) > over else None

    @property
    def private(self) -> bool:
        return self.params["private"]

    @property
    def median_norm(self) -> float | None:
        return self.last["grad_norm"]["p50"]

    @property
    def signal(self) -> float:
        """Norm of a clipped per-example gradient, at most C: min(C, median norm)."""
        clip = self.params["max_grad_norm"] if self.private else math.inf
        return min(clip, self.median_norm) if self.median_norm else clip

    @property
    def noise_ratio(self) -> float:
        """Norm of the noise in an averaged gradient over the clipped signal's (0 for a non-private run)."""
        if not self.private or not self.signal:
            return 0.0
        p = self.params
        return p["noise_multiplier"] * p["max_grad_norm"] * math.sqrt(PARAMETERS) / (p["batch_size"] * self.signal)

    @property
    def step_size(self) -> float:
        """How far one update moves the weights along the clipped gradient: lr * min(C, median norm)."""
        return self.params["learning_rate"] * self.signal

    @property
    def epsilon(self) -> float | None:
        return self.last.get("epsilon") if self.private else None

    def price(self, **change) -> privacy.PrivacyReport:
        """The accountant's report for this run with ``change`` applied (epochs default to those run)."""
        return privacy.compute_privacy(**privacy.accounting_args(self.params, **{"epochs": len(self.epochs),
                                                                                 **change}))

    def noise_for(self, target: float, **change) -> float | None:
        """The smallest slider stop of sigma whose epsilon meets ``target`` (RDP: milliseconds, and a valid bound),
        with ``change`` applied; None when out of reach."""
        args = privacy.accounting_args(self.params, **{"epochs": len(self.epochs), **change, "accountant": "rdp"})
        args.pop("noise_multiplier")
        try:
            solved = privacy.calibrate_noise(target_epsilon=target, noise_range=noise_search_range(), **args)
        except ParamError:
            return None
        return nearest_stop("noise_multiplier", solved.noise_multiplier, direction="up")


def recommend(params: dict, epochs: list) -> list[dict]:
    """The diagnosis of a run so far, then notes.

    Args:
        params: the run's params (knobs plus the plan: ``sample_rate``, ``steps_per_epoch``, ...).
        epochs: per-epoch records so far (the rules run live, after each epoch, and at the end).

    Returns:
        ``[]`` before the first epoch; else a list of ``{"id", "severity", "title", "detail", "change", "role"}``,
        the first with role ``"diagnosis"``, the others ``"note"``; ``change`` is ``{knob: value}``.
    """
    if not epochs:
        return []
    facts = Facts(params, list(epochs))
    found = [finding for rule in RULES if (finding := rule(facts))]
    diagnosis = found[0] if found else _balanced(facts)
    notes, changed = [], set(diagnosis.change)
    for finding in found[1:]:
        if changed.isdisjoint(finding.change):  # a note never undoes or doubles the diagnosis's change
            notes.append(finding)
            changed |= set(finding.change)
    return [diagnosis.to_dict("diagnosis")] + [note.to_dict("note") for note in notes]


# --- wording ------------------------------------------------------------------------------------------------------

def num(x: float) -> str:
    """A number as the page shows it: 3 significant digits, exponent form below 1e-3 ("1e-5")."""
    if x == 0:
        return "0"
    if abs(x) < 1e-3 or abs(x) >= 1e6:
        mantissa, exponent = f"{x:.2e}".split("e")
        return f"{float(mantissa):g}e{int(exponent)}"
    return f"{x:.3g}" if abs(x) < 1e4 else f"{x:,.0f}"


def points(gain: float) -> str:
    return f"{gain * 100:+.1f} points"


def with_assumptions(report: privacy.PrivacyReport) -> str:
    """ε with what it assumes: "ε = 1.23 (RDP, δ = 1e-5, Poisson sampling)"."""
    sampling = "Poisson sampling" if report.sampling == "poisson" else "shuffled batches"
    return f"ε = {num(report.epsilon)} ({report.accountant.upper()}, δ = {num(report.delta)}, {sampling})"


# --- the rules, in the order they are tried -----------------------------------------------------------------------

def _diverged(facts: Facts) -> Finding | None:
    loss = facts.last.get("train_loss")
    blew_up = loss is None or not math.isfinite(loss) or loss > EXPLODED_LOSS
    best = max(e["test_accuracy"] for e in facts.epochs)
    decayed = facts.step_size >= LARGE_STEP and facts.accuracy <= best - DECAYED
    if not (blew_up or decayed or facts.accuracy <= CHANCE_ACCURACY):
        return None
    if facts.step_size < TINY_STEP or facts.noise_ratio >= NOISE_SWAMPS:
        return None  # nothing learned for another reason: steps too small or noise (their rules say which)
    lr = facts.params["learning_rate"]
    lower = nearest_stop("learning_rate", lr / 4)
    what = ("the loss blew up" if blew_up else f"test accuracy fell from {best:.1%} to {facts.accuracy:.1%}"
            if decayed and facts.accuracy > CHANCE_ACCURACY else f"test accuracy is {facts.accuracy:.1%} (chance is 10%)")
    return Finding("lr_too_high", "warning", "Training diverged: the learning rate is too high",
                   f"With learning rate {num(lr)}, {what}: each step of size lr·min(C, median norm) = "
                   f"{num(facts.step_size)} overshoots. Lower the learning rate to {num(lower)}; privacy is "
                   "unchanged (the learning rate only post-processes the noisy gradient).",
                   {"learning_rate": lower})


def _over_budget(facts: Facts) -> Finding | None:
    target, spent = facts.params["target_epsilon"], facts.epsilon
    if spent is None or spent <= target:
        return None
    options, change = [], {}
    noise = facts.noise_for(target)
    if noise is not None:
        change = {"noise_multiplier": noise}
        options.append(f"raise σ to {num(noise)} ({with_assumptions(facts.price(noise_multiplier=noise))})")
    fewer = privacy.epochs_within_budget(target_epsilon=target, **privacy.accounting_args(
        facts.params, epochs=len(facts.epochs)))
    if fewer:
        options.append(f"stop after {fewer} epoch{'s' if fewer != 1 else ''}")
    half = max(1, facts.params["batch_size"] // 2)
    options.append(f"halve the batch to {half} ({with_assumptions(facts.price(batch_size=half))}; the noise in "
                   "each averaged gradient, σ·C/B, doubles)")
    return Finding("over_budget", "warning", f"ε = {num(spent)} is above your budget ε = {num(target)}",
                   "To fit the budget: " + "; or ".join(options) + ".", change)


def _noise_swamps(facts: Facts) -> Finding | None:
    if facts.noise_ratio < NOISE_SWAMPS or facts.accuracy >= GOOD_ACCURACY:
        return None
    p = facts.params
    ratio = (f"The noise in each averaged gradient (norm σ·C·√d/B = {num(p['noise_multiplier'])}·"
             f"{num(p['max_grad_norm'])}·√{PARAMETERS:,}/{p['batch_size']}) is {num(facts.noise_ratio)} times the "
             f"clipped signal (at most min(C, median norm) = {num(facts.signal)}), so accuracy is "
             f"{facts.accuracy:.1%}.")
    spent = facts.price()
    target = p["target_epsilon"]
    noise = facts.noise_for(target)
    if noise is not None and noise < p["noise_multiplier"]:
        return Finding("too_much_noise", "warning", "The noise swamps the signal",
                       f"{ratio} Lower σ to {num(noise)}: {with_assumptions(facts.price(noise_multiplier=noise))}, "
                       f"within your budget ε = {num(target)}, where σ {num(p['noise_multiplier'])} spends "
                       f"{with_assumptions(spent)}.", {"noise_multiplier": noise})
    batch = nearest_stop("batch_size", min(p["batch_size"] * 4, p["dataset_size"]), direction="down")
    return Finding("too_much_noise", "warning", "The noise swamps the signal",
                   f"{ratio} A larger batch averages it away: batch {batch} divides the noise by "
                   f"{batch / p['batch_size']:.3g} ({with_assumptions(facts.price(batch_size=batch))}).",
                   {"batch_size": batch})


def _steps_too_small(facts: Facts) -> Finding | None:
    if facts.step_size >= TINY_STEP or facts.accuracy >= GOOD_ACCURACY:
        return None
    p = facts.params
    clipped = facts.private and facts.last["clip_fraction"] is not None and facts.last["clip_fraction"] >= CLIPPED_MOST
    clipped = clipped and _c_is_a_knob(p)
    if clipped:
        clip = nearest_stop("max_grad_norm", min(1.0, facts.median_norm or 1.0))
        if clip > p["max_grad_norm"]:
            return Finding("clip_raise", "warning", "Clipping leaves steps too small to learn",
                           f"{facts.last['clip_fraction']:.0%} of per-example gradients exceed C = "
                           f"{num(p['max_grad_norm'])} (median norm {num(facts.median_norm)}), so each step moves "
                           f"only lr·C = {num(facts.step_size)} and accuracy is {facts.accuracy:.1%}. Raise C to "
                           f"{num(clip)}: ε is unchanged, because the noise std σ·C grows with C.",
                           {"max_grad_norm": clip})
    lr = nearest_stop("learning_rate", p["learning_rate"] * 10)
    return Finding("lr_too_low", "warning", "Steps too small to learn",
                   f"Each step moves lr·min(C, median norm) = {num(facts.step_size)}, so accuracy is "
                   f"{facts.accuracy:.1%} after {len(facts.epochs)} epoch{'s' if len(facts.epochs) != 1 else ''}. "
                   f"Raise the learning rate to {num(lr)}; privacy is unchanged.", {"learning_rate": lr})


def _more_epochs(facts: Facts) -> Finding | None:
    gain = facts.gain(1)
    if gain is None or gain < STILL_IMPROVING or facts.accuracy <= CHANCE_ACCURACY:
        return None
    epochs = len(facts.epochs)
    more = nearest_stop("epochs", epochs * 2)
    if facts.epsilon is not None:
        allowed = privacy.epochs_within_budget(target_epsilon=facts.params["target_epsilon"],
                                               **privacy.accounting_args(facts.params, epochs=more))
        if allowed <= epochs:
            return None  # more epochs would exceed the budget: another rule prices the alternatives
        more = allowed
        cost = f" They would spend {with_assumptions(facts.price(epochs=more))}, within your budget."
    else:
        cost = ""
    return Finding("more_epochs", "tip", "Still improving: train longer",
                   f"The last epoch gained {points(gain)} (to {facts.accuracy:.1%}). Train for {more} epochs "
                   f"instead of {epochs}.{cost}", {"epochs": more})


def _unused_budget(facts: Facts) -> Finding | None:
    target, spent = facts.params["target_epsilon"], facts.epsilon
    if spent is None or spent >= UNUSED_BUDGET * target:
        return None
    noise = facts.noise_for(target)
    if noise is None or noise >= facts.params["noise_multiplier"]:
        return None
    return Finding("unused_budget", "tip", f"Budget left: ε = {num(spent)} of your ε = {num(target)}",
                   f"This run spends {with_assumptions(facts.price())}. σ {num(noise)} would spend "
                   f"{with_assumptions(facts.price(noise_multiplier=noise))}: less noise in every step, and "
                   "usually more accuracy, still within the budget.", {"noise_multiplier": noise})


def _stalled(facts: Facts) -> Finding | None:
    gain = facts.gain(2)
    if gain is None or gain >= STALLED or facts.accuracy >= GOOD_ACCURACY:
        return None
    if facts.noise_ratio >= NOISE_SWAMPS or facts.step_size < TINY_STEP:
        return None  # the noise or the step size explains the stall: their rules say what to change
    loss_now, loss_before = facts.last.get("train_loss"), facts.epochs[-3].get("train_loss")
    rising = loss_now is not None and loss_before is not None and loss_now > loss_before
    lr = facts.params["learning_rate"]
    if rising or facts.step_size >= LARGE_STEP:
        lower = nearest_stop("learning_rate", lr / 2)
        why = "the training loss rose" if rising else f"each step moves {num(facts.step_size)}"
        return Finding("stalled", "tip", "Accuracy has stalled: the steps overshoot",
                       f"Test accuracy moved {points(gain)} over the last two epochs, to {facts.accuracy:.1%}, while "
                       f"{why}. Lower the learning rate to {num(lower)}.", {"learning_rate": lower})
    higher = nearest_stop("learning_rate", lr * 2)
    return Finding("stalled", "tip", "Accuracy has stalled",
                   f"Test accuracy moved {points(gain)} over the last two epochs, to {facts.accuracy:.1%}, while "
                   f"the training loss kept falling slowly. Raise the learning rate to {num(higher)}.",
                   {"learning_rate": higher})


def _c_is_a_knob(params: dict) -> bool:
    """Whether advice about C applies: automatic clipping ignores C, and adaptive clipping moves it by itself."""
    return params.get("clipping", "flat") in ("flat", "per_layer")


def _clip_lower(facts: Facts) -> Finding | None:
    clipped = facts.last["clip_fraction"]
    p90s = [e["grad_norm"]["p90"] for e in facts.epochs if e["grad_norm"]["p90"]]
    if not facts.private or clipped is None or clipped > CLIPPED_FEW or not p90s or not _c_is_a_knob(facts.params):
        return None
    p90 = max(p90s)  # gradients shrink as training goes on: a C that lets 90% through must do so in every epoch
    clip = nearest_stop("max_grad_norm", p90)
    if clip >= facts.params["max_grad_norm"]:
        return None
    return Finding("clip_lower", "tip", "Hardly any gradient reaches the clipping norm",
                   f"Only {clipped:.0%} of gradients exceeded C = {num(facts.params['max_grad_norm'])}; in every epoch "
                   f"90% had norm below {num(p90)}. The noise std is σ·C = "
                   f"{num(facts.params['noise_multiplier'] * facts.params['max_grad_norm'])} whatever the gradients, "
                   f"so C = {num(clip)} cuts the noise per unit of signal without touching ε.",
                   {"max_grad_norm": clip})


def _no_privacy(facts: Facts) -> Finding | None:
    if facts.private and facts.params["noise_multiplier"] > 0:
        return None
    target = facts.params["target_epsilon"]
    noise = facts.noise_for(target)
    solved = f" σ {num(noise)} would meet your budget ε = {num(target)} with these knobs." if noise else ""
    change = {"private": True, **({"noise_multiplier": noise} if noise else {})}
    what = ("This baseline trains without clipping or noise, so any one example may be exposed. Its accuracy, "
            f"{facts.accuracy:.1%}, is the ceiling a private run is measured against. Turn Private on to see the "
            "price."
            if not facts.private else "Clipping without noise hides no example: σ = 0 gives no guarantee.")
    return Finding("no_privacy", "tip" if not facts.private else "warning", "No privacy guarantee: ε = ∞",
                   what + solved, change)


def _balanced(facts: Facts) -> Finding:
    spent = (f"{with_assumptions(facts.price())}, within your budget ε = {num(facts.params['target_epsilon'])}"
             if facts.epsilon is not None else "no privacy accounting")
    return Finding("balanced", "tip", "Nothing here limits the run much",
                   f"Test accuracy {facts.accuracy:.1%}, {spent}. No rule finds a knob that holds this run back: "
                   "the steps neither overshoot nor stall, the noise does not swamp the clipped gradients, and the "
                   "budget is used. To trade further, move the target ε.")


RULES = (_diverged, _no_privacy, _over_budget, _noise_swamps, _steps_too_small, _more_epochs, _unused_budget,
         _stalled, _clip_lower)
