"""An experiment config: YAML in, validated runs out.

The shape (every key optional except that each entry of ``runs`` has a ``name``)::

    description: free text, copied to the report
    defaults:            # knobs every run starts from
      mode: real
      dataset_size: 5000
    sweep:               # every run is repeated for each combination of these values
      seed: [0, 1]
    runs:
      - name: baseline
        private: false
      - name: dp
        target_epsilon: 5          # without noise_multiplier: solve sigma for this budget
        sweep: {learning_rate: [0.1, 0.25]}

Knobs are the parameter table's run fields (``app.params.RUN_FIELDS``) under their names, validated by
``app.params.validate``, so a config gets the API's messages; a knob added to the table is accepted here unchanged.
Unknown keys are errors, so are duplicate keys. A swept run is named ``<name>-<knob>-<value>`` per swept knob.

``target_epsilon`` without ``noise_multiplier`` (on a private run) means what the page's solve button means: the
smallest noise multiplier whose epsilon after the run's epochs, under its accountant and the runs' Poisson sampling,
does not exceed the target (``app.privacy.calibrate_noise``); the solved value is recorded. With ``noise_multiplier``
given, ``target_epsilon`` is the budget of ``budget_stop``, as in the API.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from app import params as P
from app import privacy, records
from app.jobs import service

TOP_KEYS = ("description", "defaults", "sweep", "runs")
RUN_META_KEYS = ("name", "description", "sweep")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")
MAX_RUNS = 500  # a sweep's product past this is almost surely a typo (and would run for days)
MAX_ERRORS_SHOWN = 5


class ConfigError(ValueError):
    """A bad config. ``problems`` are its errors, each naming the run, the key and the value; ``str()`` is one line."""

    def __init__(self, problems: list[str]):
        self.problems = list(dict.fromkeys(problems))  # a bad default repeats in every run: say it once per run
        shown = "; ".join(self.problems[:MAX_ERRORS_SHOWN])
        more = len(self.problems) - MAX_ERRORS_SHOWN
        super().__init__(shown + (f" (and {more} more)" if more > 0 else ""))


@dataclass(frozen=True)
class RunSpec:
    """One run to make: ``knobs`` are every run field, typed (the solved ``noise_multiplier`` when one was solved);
    ``given`` the knobs the config set for it; ``solved`` how sigma was solved, or None."""

    name: str
    knobs: dict
    given: dict
    solved: dict | None = None
    description: str = ""
    plan: tuple = field(default=(), compare=False, repr=False)  # (params, extra) of app.jobs.service.plan

    def as_config(self) -> dict:
        """The config that makes exactly this run again: one run, every knob resolved (the solved sigma included)."""
        run = {"name": self.name, **({"description": self.description} if self.description else {}), **self.knobs}
        return {"runs": [run]}


@dataclass(frozen=True)
class Experiment:
    source: str
    runs: tuple[RunSpec, ...]
    description: str = ""


class _Loader(yaml.SafeLoader):
    """Safe YAML that refuses duplicate keys (the last one would silently win) and reads ``1e-5`` as a number
    (YAML 1.1 wants ``1.0e-5``; a delta of ``1e-5`` would be a string)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _token(value: Any) -> str:
    """A knob value as it appears in a swept run's name."""
    if isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, float):
        text = f"{value:g}"
    else:
        text = str(value)
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)


def load(path: str | Path) -> Experiment:
    """Read and validate a config file.

    Raises:
        ConfigError: unreadable, not YAML, or any bad key or value (all of them, each naming run, key and value).
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read it ({exc.strerror})"]) from None
    return parse(text, source=str(path))


def parse(text: str, *, source: str = "<config>") -> Experiment:
    """Validate a config given as YAML text (see the module's docstring for its shape).

    Raises:
        ConfigError: as :func:`load`.
    """
    try:
        raw = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError([f"{source}: not valid YAML: {problem}{where}"]) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([f"{source}: must be a mapping of {', '.join(TOP_KEYS)}; got {type(raw).__name__}"])
    problems: list[str] = []

    def top(key: str, message: str, value: Any = None) -> None:
        problems.append(f"{source}: top level: {key} = {_show(value)}: {message}")

    for key in raw:
        if key not in TOP_KEYS:
            top(str(key), f"is not a known key here (known: {', '.join(TOP_KEYS)})", raw[key])
    description = raw.get("description") or ""
    if not isinstance(description, str):
        top("description", "must be text", description)
        description = ""
    defaults = raw.get("defaults") or {}
    if not isinstance(defaults, dict):
        top("defaults", "must be a mapping of knob: value", defaults)
        defaults = {}
    for key, value in defaults.items():
        if key in RUN_META_KEYS:
            top(f"defaults.{key}", "belongs to a run, not to the defaults", value)
    top_sweep = _sweep(raw.get("sweep"), "top level", source, problems)
    runs = raw.get("runs")
    if runs is None:
        runs = [{"name": Path(source).stem if NAME_PATTERN.match(Path(source).stem) else "run"}]
    if not isinstance(runs, list) or not runs:
        top("runs", "must be a non-empty list of runs, each a mapping with a name", runs)
        runs = []
    specs: list[RunSpec] = []
    for index, entry in enumerate(runs, 1):
        specs.extend(_expand(entry, index, defaults, top_sweep, source, problems))
    names = [spec.name for spec in specs]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"{source}: run {name!r}: name = {name!r}: is used by {names.count(name)} runs; "
                        "each run needs its own name (its output directory)")
    if len(specs) > MAX_RUNS:
        top("runs", f"expand to {len(specs)} runs (sweeps multiply), more than {MAX_RUNS}", len(specs))
    if problems:
        raise ConfigError(problems)
    return Experiment(source=source, runs=tuple(specs), description=description)


def _sweep(raw: Any, where: str, source: str, problems: list[str]) -> dict:
    """A sweep mapping checked: each key a run knob, each value a non-empty list."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.append(f"{source}: {where}: sweep = {_show(raw)}: must be a mapping of knob: [values]")
        return {}
    clean = {}
    for key, values in raw.items():
        if key not in P.RUN_FIELDS:
            problems.append(f"{source}: {where}: sweep.{key} = {_show(values)}: is not a known field here "
                            f"(known: {', '.join(P.RUN_FIELDS)})")
        elif not isinstance(values, list) or not values:
            problems.append(f"{source}: {where}: sweep.{key} = {_show(values)}: must be a non-empty list of values")
        else:
            clean[key] = values
    return clean


def _expand(entry: Any, index: int, defaults: dict, top_sweep: dict, source: str,
            problems: list[str]) -> list[RunSpec]:
    """One entry of ``runs`` as the validated runs it stands for (one per sweep combination)."""
    label = f"run #{index}"
    if not isinstance(entry, dict):
        problems.append(f"{source}: {label}: = {_show(entry)}: must be a mapping with a name and knobs")
        return []
    name = entry.get("name")
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        problems.append(f"{source}: {label}: name = {_show(name)}: must be 1-80 letters, digits, '.', '_' or '-' "
                        "(it names the run's output directory), starting with a letter or digit")
        return []
    label = f"run {name!r}"
    description = entry.get("description") or ""
    sweep = _sweep(entry.get("sweep"), label, source, problems)
    knobs = {k: v for k, v in entry.items() if k not in RUN_META_KEYS}
    for key in sweep:
        if key in knobs:
            problems.append(f"{source}: {label}: {key} = {_show(knobs[key])}: is both set and swept in this run")
    for key in top_sweep:
        if key in knobs or key in sweep:
            problems.append(f"{source}: {label}: {key} = {_show(knobs.get(key, sweep.get(key)))}: is swept at the "
                            "top level for every run; set it in one place")
    axes = {**top_sweep, **sweep}
    origin = {**{k: "defaults" for k in defaults}, **{k: "sweep" for k in axes}}
    origin.update({k: "" for k in knobs})
    specs = []
    for combination in itertools.product(*axes.values()):
        chosen = dict(zip(axes, combination))
        run_name = name + "".join(f"-{k}-{_token(v)}" for k, v in chosen.items())
        given = {**defaults, **knobs, **chosen}
        spec = _validate(run_name, given, origin, source, problems, description)
        if spec is not None:
            specs.append(spec)
    return specs


def _validate(name: str, given: dict, origin: dict, source: str, problems: list[str],
              description: str) -> RunSpec | None:
    """One run's knobs through the parameter table (the API's messages), then sigma solved when asked."""
    label = f"run {name!r}"

    def problem(key: str, message: str) -> None:
        value = _show(given[key]) if key in given else f"(default {_show(P.KNOB_BY_NAME[key].default)})" \
            if key in P.KNOB_BY_NAME else "(not given)"
        where = f" (from {origin[key]})" if origin.get(key) else ""
        problems.append(f"{source}: {label}: {key} = {value}{where}: {message}")

    try:
        clean = P.validate(given, P.RUN_FIELDS)
    except P.ParamError as exc:
        for key, message in exc.errors.items():
            problem(key, message)
        return None
    solved = None
    if "target_epsilon" in given and "noise_multiplier" not in given:
        if not clean["private"]:
            problem("target_epsilon", "a non-private run (private false) has no epsilon to meet; remove "
                                      "target_epsilon or make the run private")
            return None
        try:
            solved = solve_noise(clean)
        except P.ParamError as exc:
            for key, message in exc.errors.items():
                problem(key, message)
            return None
        clean["noise_multiplier"] = solved["noise_multiplier"]
    try:  # what the API refuses at POST /api/runs (a budget stop before the first epoch) is refused here, up front
        planned = service.plan(clean)
    except P.ParamError as exc:
        for key, message in exc.errors.items():
            problem(key, message)
        return None
    return RunSpec(name, clean, dict(given), solved, description, planned)


@functools.lru_cache(maxsize=64)
def _calibrate(fields: tuple) -> privacy.PrivacyReport:
    """One solve per distinct setting: the runs of a sweep over seeds or learning rates share it."""
    return privacy.calibrate_noise(**dict(fields), noise_range=P.noise_search_range())


def solve_noise(clean: dict) -> dict:
    """The noise multiplier a private run of ``clean`` needs for its ``target_epsilon``, as the page's solve finds it
    (``POST /api/privacy/calibrate`` with the runs' sampling).

    Returns:
        ``{target_epsilon, noise_multiplier, epsilon, accountant, delta, sampling, epochs}``: the sigma found and the
        epsilon it gives after ``epochs``.

    Raises:
        ParamError: the target is out of reach (naming ``target_epsilon``).
    """
    fields = {k: clean[k] for k in P.CALIBRATE_FIELDS if k in clean}
    fields["sampling"] = records.RUN_SAMPLING
    report = _calibrate(tuple(sorted(fields.items())))
    return {"target_epsilon": clean["target_epsilon"], "noise_multiplier": report.noise_multiplier,
            "epsilon": report.epsilon if math.isfinite(report.epsilon) else None, "accountant": report.accountant,
            "delta": report.delta, "sampling": report.sampling, "epochs": report.epochs}
