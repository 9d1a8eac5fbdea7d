"""``python -m app.experiment``: run an experiment config headless, or compare run directories in a report.

    python -m app.experiment run CONFIG.yaml --out DIR      # DIR/<run name>/ per run
    python -m app.experiment run CONFIG.yaml --check        # validate and show the planned runs, run nothing
    python -m app.experiment compare DIR... --out REPORT    # REPORT/report.md and PNG plots

A bad config exits with status 2 and one line naming the run, the key and the value (the API's messages, from the
parameter table); a run that failed exits 1, Ctrl-C 130 (the runs already finished are kept).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PROG = "python -m app.experiment"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=(
        "Headless experiments: run a YAML config of runs (and sweeps) through the playground's own runners, and "
        "compare the results in a report with plots."))
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run every run of a config, writing DIR/<run name>/",
                              description="Run every run of CONFIG in order; each writes DIR/<run name>/ with "
                                          "summary.json, records.json, epochs.csv, steps.csv and config.yaml.")
    run.add_argument("config", type=Path, help="the experiment's YAML file (see configs/ and docs/experiments.md)")
    target = run.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", type=Path, help="output directory (created; run directories in it are replaced)")
    target.add_argument("--check", action="store_true", help="validate the config and list its runs; run nothing")
    compare = commands.add_parser("compare", help="a report (report.md and PNG plots) over run directories",
                                  description="Compare runs: each DIR is a run directory or an output directory of "
                                              "`run` holding run directories.")
    compare.add_argument("dirs", nargs="+", type=Path, metavar="DIR")
    compare.add_argument("--out", type=Path, required=True, help="report directory (report.md and PNGs)")
    return parser


def _fail(command: str, message: str) -> int:
    print(f"{PROG} {command}: error: {message}", file=sys.stderr)
    return 2


def _run(args) -> int:
    from app.experiment import config, progress, runner

    try:
        experiment = config.load(args.config)
    except config.ConfigError as exc:
        return _fail("run", str(exc))
    missing = runner.unavailable(experiment)
    if missing:
        first = next(spec for spec in experiment.runs if spec.knobs["mode"] in missing)
        mode = first.knobs["mode"]
        return _fail("run", f"{experiment.source}: run {first.name!r}: mode = {mode!r}: is unavailable here: "
                            f"{missing[mode]}")
    if args.check:
        for spec in experiment.runs:
            params, _ = spec.plan
            solved = f" (solved for target_epsilon {spec.solved['target_epsilon']:g})" if spec.solved else ""
            sigma = f"noise_multiplier {params['noise_multiplier']:.4g}{solved}" if params["private"] else "non-private"
            curve = params.get("epsilon_curve")
            planned = f", planned epsilon {curve[-1]:.3g}" if curve and curve[-1] is not None else ""
            print(f"{spec.name}: {params['mode']}, {params['epochs']} epochs x {params['steps_per_epoch']} steps, "
                  f"{sigma}{planned}")
        print(f"{len(experiment.runs)} runs; the config is valid")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "experiment.yaml").write_text(Path(args.config).read_text())
    try:
        outcome = runner.run_experiment(experiment, args.out, progress=progress.for_stream(sys.stderr))
    except KeyboardInterrupt:  # the second Ctrl-C: the runs written so far stay, the current one is not written
        print(f"{PROG} run: quit", file=sys.stderr)
        return 130
    for name, status, directory in outcome.runs:
        print(f"{status}\t{name}\t{directory}")
    if outcome.interrupted:
        print(f"{PROG} run: interrupted; {len(outcome.runs)} of {len(experiment.runs)} runs written",
              file=sys.stderr)
    return outcome.exit_status


def _compare(args) -> int:
    from app.experiment import report

    try:
        written = report.write_report(args.dirs, args.out)
    except report.ReportError as exc:
        return _fail("compare", str(exc))
    for path in written:
        print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    return _run(args) if args.command == "run" else _compare(args)


if __name__ == "__main__":
    sys.exit(main())
