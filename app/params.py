"""The one table of knobs, and validation against it.

Every knob the playground exposes is one row of ``KNOBS``: its type, range, slider scale, default, label and help text.
The API, the CLI, the page (through ``GET /api/params``) and the tests all read this table, so a new knob is one row.
Validation collects every bad field at once and raises :class:`ParamError`, whose messages echo the value received.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping


@dataclass(frozen=True)
class Knob:
    """One row of the parameter table.

    ``type`` is ``float``, ``int``, ``bool`` or ``choice``. ``scale`` tells the page how a slider moves: ``linear``,
    ``log`` or ``pow2``; ``none`` for knobs that are not sliders (seed, switches). ``slider_min`` is the lowest
    non-zero slider stop for a log slider whose ``min`` is 0 (the slider's first stop then means exactly 0).
    ``simulated_as`` marks a knob the simulator was not fitted for: a simulated run takes that value, and asking a
    simulated run for another is refused.
    """

    name: str
    type: str
    default: Any
    label: str
    help: str
    min: float | None = None
    max: float | None = None
    scale: str = "none"
    step: float | None = None
    choices: tuple[str, ...] = ()
    slider_min: float | None = None
    ends: tuple[str, str] | None = None
    unit: str = ""
    choice_labels: dict | None = None  # choice -> its name on a control ("RDP")
    choice_phrases: dict | None = None  # choice -> how a sentence names it ("shuffled batches"), where it differs
    simulated_as: Any = None  # a real-mode-only knob: the value every simulated run has (the simulator's fit)

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v not in (None, (), "")}


KNOBS: tuple[Knob, ...] = (
    Knob("noise_multiplier", "float", 1.1, "Noise multiplier σ",
         "Std of the Gaussian noise added to the summed clipped gradients, in units of the clipping norm C. "
         "More noise, smaller epsilon, noisier training.",
         min=0.0, max=50.0, scale="log", slider_min=0.1, ends=("more accuracy", "more privacy")),
    Knob("max_grad_norm", "float", 1.0, "Clipping norm C",
         "Each example's gradient is scaled down to L2 norm at most C, which bounds any one person's influence. "
         "Too small throws signal away; too large adds noise for nothing (noise std is σ·C).",
         min=0.01, max=100.0, scale="log", ends=("clip more", "clip less")),
    Knob("batch_size", "int", 256, "Batch size B",
         "Expected examples per step. With Poisson sampling each example joins a step with probability B/N.",
         min=1, max=4096, scale="pow2", ends=("smaller batches", "larger batches")),
    Knob("learning_rate", "float", 0.15, "Learning rate",
         "SGD step size. DP-SGD often wants a larger one than non-private training because noise averages out.",
         min=1e-4, max=10.0, scale="log", ends=("slower", "faster")),
    Knob("momentum", "float", 0.0, "Momentum",
         "SGD momentum (heavy ball: v = momentum·v + g, then w -= learning rate·v) applied to the noisy averaged "
         "gradient. It only post-processes what the private mechanism released, so epsilon is unchanged. "
         "Real runs only: the simulator is fitted to plain SGD.",
         min=0.0, max=0.95, scale="linear", step=0.05, ends=("plain SGD", "more momentum"), simulated_as=0.0),
    Knob("epochs", "int", 5, "Epochs",
         "Passes over the data (each of round(N/B) steps). Every step spends privacy budget.",
         min=1, max=100, scale="linear", step=1, ends=("less privacy spent", "more training")),
    Knob("dataset_size", "int", 60000, "Dataset size N",
         "Training examples used (a fixed, class-balanced subset of MNIST's 60,000). "
         "Larger N means a smaller sampling rate B/N, and so more privacy per step.",
         min=100, max=60000, scale="log", ends=("fewer examples", "more examples")),
    Knob("delta", "float", 1e-5, "Delta δ",
         "Probability the epsilon guarantee may fail. Keep it well below 1/N.",
         min=1e-10, max=0.1, scale="log", ends=("stricter", "looser")),
    Knob("seed", "int", 0, "Seed",
         "Seeds the model's initialisation, the batch sampling and the noise: the same seed reproduces a run.",
         min=0, max=2**31 - 1),
    Knob("model", "choice", "tutorial_cnn", "Model",
         "The CNN trained: TF Privacy's MNIST tutorial CNN with ReLU, or the same layers with tanh, whose bounded "
         "activations suit DP-SGD (Papernot et al. 2021; Tramer & Boneh 2021). Real runs only: the simulator is "
         "fitted to the tutorial CNN.",
         choices=("tutorial_cnn", "tanh_cnn"), choice_labels={"tutorial_cnn": "Tutorial CNN (ReLU)",
                                                              "tanh_cnn": "Tanh CNN"},
         simulated_as="tutorial_cnn"),
    Knob("mode", "choice", "simulate", "Mode",
         "Simulated runs are instant and fitted to real runs; real runs train the CNN on MNIST on the server.",
         choices=("simulate", "real"), choice_labels={"simulate": "Simulated", "real": "Real"}),
    Knob("private", "bool", True, "Private (DP-SGD)",
         "Off trains the same model and loop without clipping and noise: the non-private baseline."),
    Knob("accountant", "choice", "rdp", "Accountant",
         "RDP (Rényi DP, the default of TF Privacy) or PLD (privacy loss distributions, tighter).",
         choices=("rdp", "pld"), choice_labels={"rdp": "RDP", "pld": "PLD"}),
    Knob("sampling", "choice", "poisson", "Sampling assumption",
         "Poisson: each example joins each step independently (what our trainer does). "
         "Shuffle: each example is seen once per epoch, which without amplification gives a far larger epsilon.",
         choices=("poisson", "shuffle"), choice_labels={"poisson": "Poisson", "shuffle": "Shuffle"},
         choice_phrases={"poisson": "Poisson sampling", "shuffle": "shuffled batches"}),
    Knob("target_epsilon", "float", 3.0, "Target ε",
         "The privacy budget. The page can solve the noise multiplier that meets it, or stop a run before exceeding it.",
         min=0.01, max=100.0, scale="log", ends=("more privacy", "more accuracy")),
    Knob("budget_stop", "bool", False, "Stop at budget",
         "Stop the run at the last epoch whose epsilon stays within the target ε."),
    Knob("clipping", "choice", "flat", "Clipping",
         "How each example's gradient is bounded. Flat: one norm over all weights, scaled to at most C. Per layer: "
         "each of the L weight tensors to C/√L, so the total stays C (Opacus's per-layer clipping). Automatic "
         "(AUTO-S): every gradient normalised to g/(‖g‖+0.01), so its norm is below 1 and the noise is σ, not σ·C: "
         "C no longer matters and the learning rate absorbs it, so retune the learning rate (about C times the flat "
         "one). Adaptive: C follows the target quantile of the gradient norms, learnt from a noisy count of unclipped "
         "examples; the gradient noise is raised a little so that epsilon stays that of σ. Epsilon is the same for "
         "all four.",
         choices=("flat", "per_layer", "automatic", "adaptive"),
         choice_labels={"flat": "Flat", "per_layer": "Per layer", "automatic": "Automatic", "adaptive": "Adaptive"},
         choice_phrases={"per_layer": "per-layer clipping", "automatic": "automatic clipping",
                         "adaptive": "adaptive clipping", "flat": "flat clipping"},
         simulated_as="flat"),
    Knob("target_quantile", "float", 0.5, "Target quantile",
         "With adaptive clipping: the fraction of examples C aims to leave unclipped (0.5: C tracks the median "
         "gradient norm). Ignored by the other clippings.",
         min=0.05, max=0.95, scale="linear", step=0.05, ends=("clip more", "clip less"), simulated_as=0.5),
    Knob("sparsification", "float", 0.0, "Random sparsification",
         "Final fraction of gradient coordinates dropped (0: off). A random mask, the same for every example, "
         "drawn from the seed alone and redrawn twice an epoch, zeroes coordinates before clipping (and their "
         "noise), its rate rising to this value over the run (Zhu & Blaschko 2021 used 0.9). The mask never "
         "looks at the data, so epsilon is unchanged.",
         min=0.0, max=0.95, scale="linear", step=0.05, ends=("dense", "sparser"), simulated_as=0.0),
    Knob("microbatches", "int", 0, "Microbatches",
         "TF Privacy's num_microbatches: 0 clips each example; M groups the batch into M microbatches and clips "
         "each one's mean gradient. One example can then move its microbatch's clipped mean by up to 2C, so the "
         "sensitivity doubles and epsilon is that of σ/2: larger. Must divide the batch size.",
         min=0, max=4096, simulated_as=0),
    Knob("audit", "choice", "membership", "Privacy audit",
         "After a real run, attack the trained model. Membership: tell training examples from held-out ones by loss, "
         "confidence and entropy (empirical leakage of this model, not an epsilon bound). Canaries: also train with "
         "mislabelled canaries, each included with probability 1/2, and derive a 95% lower bound on epsilon from how "
         "well their losses reveal which were in (Steinke, Nasr and Jagielski 2023). Real runs only.",
         choices=("none", "membership", "canaries"),
         choice_labels={"none": "None", "membership": "Membership", "canaries": "Membership + canaries"},
         simulated_as="none"),
    Knob("canaries", "int", 1000, "Canaries m",
         "How many mislabelled MNIST examples the canary audit draws; each joins the training set with probability "
         "1/2, and the included ones count in the dataset size N (so the run's epsilon covers them). More canaries "
         "can certify a larger epsilon (about 4.7 at most for 1,000). Used when the audit is Canaries.",
         min=10, max=5000, scale="log", ends=("fewer canaries", "more canaries"), simulated_as=1000),
)

KNOB_BY_NAME: dict[str, Knob] = {k.name: k for k in KNOBS}
MNIST_TRAIN = 60000  # examples in MNIST's training set: the run's N and its canaries are drawn from them

# The fields each request accepts (all optional: missing ones take the table's default).
PRIVACY_FIELDS = ("noise_multiplier", "batch_size", "epochs", "dataset_size", "delta", "accountant", "sampling",
                  "clipping", "microbatches")
CALIBRATE_FIELDS = ("target_epsilon", "batch_size", "epochs", "dataset_size", "delta", "accountant", "sampling",
                    "clipping", "microbatches")
RUN_FIELDS = ("mode", "private", "model", "noise_multiplier", "max_grad_norm", "batch_size", "learning_rate",
              "momentum", "epochs", "dataset_size", "delta", "seed", "accountant", "target_epsilon", "budget_stop",
              "clipping", "target_quantile", "sparsification", "microbatches", "audit", "canaries")

# The knobs a take-home script maps (POST /api/export/script): the training ones; mode and the accountant change nothing.
EXPORT_FIELDS = ("model", "private", "noise_multiplier", "max_grad_norm", "batch_size", "learning_rate", "momentum",
                 "epochs", "dataset_size", "delta", "seed")


class ParamError(ValueError):
    """Bad input: ``errors`` maps each bad field to a message naming the value received."""

    def __init__(self, errors: Mapping[str, str]):
        self.errors = dict(errors)
        super().__init__("; ".join(f"{k}: {v}" for k, v in self.errors.items()))


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def coerce(knob: Knob, value: Any) -> Any:
    """Check one value against its knob; return it typed, or raise ValueError with the message for the user."""
    if knob.type == "bool":
        if isinstance(value, bool):
            return value
        raise ValueError(f"must be true or false, got {_show(value)}")
    if knob.type == "choice":
        if isinstance(value, str) and value in knob.choices:
            return value
        raise ValueError(f"must be one of {', '.join(knob.choices)}; got {_show(value)}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"must be a number, got {_show(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"must be a finite number, got {_show(value)}")
    if knob.type == "int":
        if isinstance(value, float):
            if not value.is_integer():
                raise ValueError(f"must be a whole number, got {_show(value)}")
            value = int(value)
    else:
        try:
            value = float(value)
        except OverflowError:
            raise ValueError(f"must be a finite number, got {_show(value)}") from None
    if not knob.min <= value <= knob.max:
        raise ValueError(f"must be between {knob.min:g} and {knob.max:g}, got {_show(value)}")
    return value


def validate(raw: Any, fields: Iterable[str]) -> dict:
    """Validate a request body against the table.

    Args:
        raw: the decoded JSON body (must be an object).
        fields: the knob names this request accepts; missing ones take their default.

    Returns:
        A dict with every field in ``fields``, typed.

    Raises:
        ParamError: with every bad or unknown field at once.
    """
    fields = tuple(fields)
    if not isinstance(raw, dict):
        raise ParamError({"body": f"must be a JSON object, got {type(raw).__name__}"})
    errors: dict[str, str] = {}
    for name in raw:
        if name not in fields:
            errors[str(name)[:60]] = f"is not a known field here (known: {', '.join(fields)})"
    clean = {}
    for name in fields:
        knob = KNOB_BY_NAME[name]
        if name not in raw:
            clean[name] = knob.default
            continue
        try:
            clean[name] = coerce(knob, raw[name])
        except ValueError as exc:
            errors[name] = str(exc)
    if not errors:
        errors.update(_simulated_errors(raw, clean))
        errors.update(_cross_field_errors(clean))
    if errors:
        raise ParamError(errors)
    return clean


def _simulated_errors(raw: dict, clean: dict) -> dict[str, str]:
    """A simulated run takes every real-mode-only knob at its ``simulated_as`` value (set in ``clean``); the errors
    name each one asked for with another value."""
    if clean.get("mode") != "simulate":
        return {}
    errors = {}
    for name in clean:
        simulated_as = KNOB_BY_NAME[name].simulated_as
        if simulated_as is None:
            continue
        if name in raw and clean[name] != simulated_as:
            errors[name] = (f"is for real runs only: the simulator is fitted to {name} {simulated_as!r}, got "
                            f"{_show(clean[name])}; use mode real, or leave it at {simulated_as!r}")
        clean[name] = simulated_as
    return errors


def _cross_field_errors(clean: Mapping[str, Any]) -> dict[str, str]:
    errors = {}
    if "batch_size" in clean and "dataset_size" in clean and clean["batch_size"] > clean["dataset_size"]:
        errors["batch_size"] = (f"must not exceed dataset_size ({clean['dataset_size']}), got {clean['batch_size']}: "
                                "the sampling rate B/N would be above 1")
    microbatches = clean.get("microbatches", 0)
    if microbatches and "batch_size" in clean and clean["batch_size"] % microbatches:
        errors["microbatches"] = (f"must divide batch_size ({clean['batch_size']}) so microbatches have B/M examples "
                                  f"on average, got {microbatches}")
    elif microbatches and clean.get("clipping") == "adaptive":
        errors["microbatches"] = (f"must be 0 with adaptive clipping (its clipped count is over examples), got "
                                  f"{microbatches}")
    if clean.get("audit") == "canaries" and "canaries" in clean and "dataset_size" in clean:
        canaries, size = clean["canaries"], clean["dataset_size"]
        if canaries > size // 2:
            errors["canaries"] = (f"must be at most half of dataset_size ({size // 2} for {size}), got {canaries}: the "
                                  "included canaries (about half) count in N, and the rest must be real examples")
        elif size + canaries > MNIST_TRAIN:
            errors["canaries"] = (f"must be at most {MNIST_TRAIN - size} with dataset_size {size}, got {canaries}: "
                                  f"canaries are MNIST training examples outside the run's {size}, of {MNIST_TRAIN}")
    return errors


def defaults(fields: Iterable[str] = tuple(KNOB_BY_NAME)) -> dict:
    """The table's default for each named field."""
    return {name: KNOB_BY_NAME[name].default for name in fields}


# Mantissas of the "nice" values a log slider stops at, per decade (the page's sliders move through these stops).
LOG_MANTISSAS = (1, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.8, 2, 2.2, 2.5, 2.8, 3, 3.5, 4, 4.5, 5, 6, 7, 8, 9)


def slider_stops(knob: Knob) -> list[float]:
    """The values a knob's slider can take, in order: powers of two, ``step`` increments, or nice log values.

    Raises:
        ValueError: the knob is not a slider.
    """
    if knob.scale == "pow2":
        return [2 ** k for k in range(math.ceil(math.log2(max(1, knob.min))), math.floor(math.log2(knob.max)) + 1)]
    if knob.scale == "linear":
        step = knob.step or 1
        stops = [_nice(knob.min + i * step) for i in range(round((knob.max - knob.min) / step) + 1)]
        return [round(s) for s in stops] if knob.type == "int" else stops
    if knob.scale == "log":
        low = knob.min if knob.min > 0 else knob.slider_min
        stops = []
        for exponent in range(math.floor(math.log10(low)), math.ceil(math.log10(knob.max)) + 1):
            for mantissa in LOG_MANTISSAS:
                value = _nice(mantissa * 10.0 ** exponent)
                value = round(value) if knob.type == "int" else value
                if low < value < knob.max and (not stops or value != stops[-1]):
                    stops.append(value)
        return ([] if knob.min > 0 else [knob.min]) + [low, *stops, knob.max]
    raise ValueError(f"{knob.name} is not a slider (scale {knob.scale})")


def _nice(value: float) -> float:
    return float(f"{value:.12g}")


def nearest_stop(name: str, value: float, *, direction: str = "nearest") -> float:
    """The slider stop of knob ``name`` nearest to ``value`` (in ratio, on log and pow2 sliders); ``direction``
    ``"up"`` or ``"down"`` takes the nearest stop at or above (below) it instead, within the slider's range."""
    knob = KNOB_BY_NAME[name]
    stops = slider_stops(knob)
    if direction == "up":
        return next((s for s in stops if s >= value), stops[-1])
    if direction == "down":
        return next((s for s in reversed(stops) if s <= value), stops[0])

    def distance(stop: float) -> float:
        if knob.scale == "linear":
            return abs(stop - value)
        return abs(math.log(stop / value)) if stop > 0 and value > 0 else (0.0 if stop == value else math.inf)

    return min(stops, key=distance)


def noise_search_range() -> tuple[float, float]:
    """The noise multipliers a target-epsilon solve searches: from a tenth of the slider's lowest stop to its top."""
    knob = KNOB_BY_NAME["noise_multiplier"]
    return knob.slider_min / 10, knob.max


def table() -> list[dict]:
    """The parameter table as JSON-ready rows (``GET /api/params``); a slider's row carries its ``stops``."""
    return [{**knob.to_dict(), **({"stops": slider_stops(knob)} if knob.scale != "none" else {})} for knob in KNOBS]
