"""``compare``: run directories in, ``report.md`` and PNG plots out.

The table has, per run: mode, status, epochs, final test accuracy, epsilon with its accountant, delta and sampling (the
accountant's upper bound for the run as trained), the noise multiplier (marked when solved for a target), the audit's
membership-attack AUC and TPR at FPR 1% and 0.1% (empirical leakage of one model: not an epsilon bound) and the
one-run canary audit's epsilon lower bound with its confidence (Steinke, Nasr and Jagielski 2023), and training time.
An audit column reads "—" for a run whose summary has no such part (no audit asked, a simulated run). The plots:
test accuracy over epochs, epsilon over epochs, and, when any run has a membership ROC, the ROC curves against the
region (epsilon, delta)-DP allows: TPR <= min(e^eps FPR + delta, 1 - e^-eps (1 - delta - FPR)) (Kairouz, Oh and
Viswanath 2015, Thm. 2.1; the hypothesis-testing view of DP).

matplotlib (Agg, no display) draws the PNGs; it is imported here only, on use. Without it the report is written
without plots and says so.
"""

from __future__ import annotations

import math
from pathlib import Path

from app.experiment import files
from app.experiment.runner import epsilon_text, sampling_phrase

DASH = "—"
PLOTS = {"accuracy": "accuracy.png", "epsilon": "epsilon.png", "roc": "roc.png"}


class ReportError(ValueError):
    """Nothing to compare, or a directory that is not a run's."""


def collect(dirs: list[Path]) -> list[dict]:
    """Every run under ``dirs``, in the order given (a run directory, or an output directory of ``run``: its runs in
    the order they were written). Each is :func:`app.experiment.files.read_run`'s dict plus ``label``.

    Raises:
        ReportError: a directory is missing or holds no run.
    """
    runs = []
    for directory in dirs:
        if not directory.is_dir():
            raise ReportError(f"{directory}: not a directory")
        if (directory / files.SUMMARY).exists():
            found = [directory]
        else:
            found = sorted((d for d in directory.iterdir() if (d / files.SUMMARY).exists()),
                           key=lambda d: ((d / files.SUMMARY).stat().st_mtime_ns, d.name))
        if not found:
            raise ReportError(f"{directory}: holds no run (no {files.SUMMARY} in it or in its subdirectories)")
        runs.extend(files.read_run(d) for d in found)
    names = [run["result"].get("name") or Path(run["dir"]).name for run in runs]
    for run, name in zip(runs, names):
        run["label"] = name if names.count(name) == 1 else f"{Path(run['dir']).parent.name}/{name}"
    return runs


def _number(value, spec: str) -> str:
    return DASH if value is None or (isinstance(value, float) and not math.isfinite(value)) else format(value, spec)


def audit_cells(summary: dict) -> dict:
    """The audit columns of a run's summary (``DASH`` where the part or the figure is absent)."""
    audit = (summary or {}).get("audit") or {}
    membership = audit.get("membership") or {}
    canaries = audit.get("canaries") or {}
    tpr = membership.get("tpr_at_fpr") or {}
    bound = canaries.get("epsilon_lower_bound")
    bound_text = _number(bound, ".3g")
    if bound is not None:
        details = []
        if canaries.get("confidence") is not None:
            details.append(f"{canaries['confidence']:.0%} conf.")
        if canaries.get("count") is not None:
            details.append(f"{canaries['count']:,} canaries")
        bound_text += f" ({', '.join(details)})" if details else ""
    return {"auc": _number(membership.get("auc"), ".3f"), "tpr_1": _percent(tpr.get("0.01")),
            "tpr_01": _percent(tpr.get("0.001")), "canary": bound_text}


def _percent(value) -> str:
    return DASH if value is None else f"{100 * value:.2f}%"


def table(runs: list[dict]) -> str:
    """The comparison table, as Markdown."""
    header = ("Run", "Mode", "Status", "Epochs", "Test accuracy", "Epsilon (accountant, delta, sampling)",
              "Noise multiplier", "Attack AUC", "TPR at FPR 1%", "TPR at FPR 0.1%", "Canary epsilon lower bound",
              "Training time (s)")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for run in runs:
        result = run["result"]
        summary = result.get("summary") or {}
        params = result.get("params") or result.get("knobs") or {}
        simulated = summary.get("simulated", params.get("mode") == "simulate")
        accuracy = summary.get("final_test_accuracy")
        accuracy_text = DASH if accuracy is None else f"{100 * accuracy:.2f}%" + (" (predicted)" if simulated else "")
        if not params.get("private", True):
            sigma = DASH
        else:
            sigma = _number(params.get("noise_multiplier"), ".4g") + (" (solved)" if result.get("solved") else "")
        audit = audit_cells(summary)
        epsilon = epsilon_text(summary).removeprefix("epsilon ") if summary else DASH
        seconds = _number(summary.get("seconds"), ".1f") + (" (predicted)" if simulated and summary else "")
        lines.append("| " + " | ".join((
            run["label"], params.get("mode", DASH), result.get("status", DASH),
            str(summary.get("epochs_completed", DASH)), accuracy_text, epsilon, sigma,
            audit["auc"], audit["tpr_1"], audit["tpr_01"], audit["canary"], seconds)) + " |")
    return "\n".join(lines)


def _notes(runs: list[dict]) -> list[str]:
    out = []
    for run in runs:
        result = run["result"]
        summary = result.get("summary") or {}
        out.append(f"### {run['label']}\n")
        if result.get("description"):
            out.append(result["description"].strip() + "\n")
        if result.get("error"):
            out.append(f"Error: {result['error']}\n")
        solved = result.get("solved")
        if solved:
            out.append(f"Noise multiplier {solved['noise_multiplier']:.6g} solved for target epsilon "
                       f"{solved['target_epsilon']:g} over {solved['epochs']} epochs ({solved['accountant'].upper()}, "
                       f"delta {solved['delta']:g}, {sampling_phrase(solved['sampling'])}), as the page's solve "
                       "does.\n")
        if summary.get("statement"):
            out.append(summary["statement"] + "\n")
        if summary.get("real_run_range"):
            low, high = summary["real_run_range"]
            out.append(f"A real run of these settings would end between {100 * low:.1f}% and {100 * high:.1f}% test "
                       "accuracy (8 runs in 10, the simulator's range).\n")
        out.append(f"Files: `{run['dir']}`\n")
    return out


def write_report(dirs: list[Path], out: Path) -> list[Path]:
    """Write ``out/report.md`` and its plots for the runs under ``dirs``; returns the files written.

    Raises:
        ReportError: as :func:`collect`.
    """
    runs = collect(dirs)
    out.mkdir(parents=True, exist_ok=True)
    plots, why_not = _plots(runs, out)
    lines = ["# Experiment report", "", f"{len(runs)} runs from {', '.join(f'`{d}`' for d in dirs)}.", "",
             table(runs), "",
             "Epsilon is the accountant's upper bound for each run as it trained (add-or-remove-one-example "
             "adjacency, every intermediate model released). Attack AUC and TPR at low FPR measure a membership "
             "inference attack on one trained model: empirical leakage, not an epsilon bound. The canary bound is a "
             "lower bound on epsilon at the stated confidence from a one-run audit (Steinke, Nasr and Jagielski "
             "2023); it cannot exceed the ceiling the number of canaries allows. " + DASH + " means the run has no "
             "such figure (no audit asked, or a simulated run: audits are measured on real runs only). "
             "Simulated rows' accuracy and time are predicted by the fitted simulator, not measured; their epsilon "
             "is computed by the accountant.", ""]
    titles = {"accuracy": "Test accuracy over epochs", "epsilon": "Epsilon over epochs",
              "roc": "Membership attack ROC against the (epsilon, delta)-DP region"}
    for key, path in plots.items():
        lines += [f"## {titles[key]}", "", f"![{titles[key]}]({path.name})", ""]
    lines += [f"_{text}_\n" for text in why_not]
    lines += ["## Runs", ""] + _notes(runs)
    report = out / "report.md"
    report.write_text("\n".join(lines))
    return [report, *plots.values()]


def dp_region(fpr, epsilon: float, delta: float):
    """The highest TPR any test can reach at each FPR against an (epsilon, delta)-DP mechanism:
    min(e^eps FPR + delta, 1 - e^-eps (1 - delta - FPR)), within [0, 1] (Kairouz, Oh and Viswanath 2015)."""
    import numpy as np

    fpr = np.asarray(fpr, dtype=float)
    bound = np.minimum(math.exp(epsilon) * fpr + delta, 1 - math.exp(-epsilon) * (1 - delta - fpr))
    return np.clip(bound, 0.0, 1.0)


def _plots(runs: list[dict], out: Path) -> tuple[dict, list[str]]:
    """Draw the PNGs; returns ({name: path}, notes on plots not drawn)."""
    try:
        import matplotlib
    except ImportError:
        return {}, ["Plots not drawn: matplotlib is not installed (pip install -r requirements-test.txt)."]
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    drawn, notes = {}, []
    series = [(run, [e for e in run["epochs"] if e.get("epoch") is not None]) for run in runs]

    figure, axes = plt.subplots(figsize=(7, 4.2))
    for run, epochs in series:
        points = [(e["epoch"], e["test_accuracy"]) for e in epochs if e.get("test_accuracy") is not None]
        if points:
            simulated = (run["result"].get("summary") or {}).get("simulated")
            axes.plot(*zip(*points), marker="o", markersize=3, linestyle="--" if simulated else "-",
                      label=run["label"] + (" (simulated)" if simulated else ""))
    axes.set(xlabel="epoch", ylabel="test accuracy", title="Test accuracy over epochs")
    _finish(axes, figure, out / PLOTS["accuracy"], plt)
    drawn["accuracy"] = out / PLOTS["accuracy"]

    private = [(run, epochs) for run, epochs in series if any(e.get("epsilon") is not None for e in epochs)]
    if private:
        figure, axes = plt.subplots(figsize=(7, 4.2))
        for run, epochs in private:
            points = [(e["epoch"], e["epsilon"]) for e in epochs if e.get("epsilon") is not None]
            summary = run["result"].get("summary") or {}
            axes.plot(*zip(*points), marker="o", markersize=3,
                      label=f"{run['label']} ({str(summary.get('accountant', '')).upper()}, "
                            f"delta {summary.get('delta', float('nan')):g})")
        axes.set(xlabel="epoch", ylabel="epsilon", title="Epsilon over epochs (Poisson sampling)")
        _finish(axes, figure, out / PLOTS["epsilon"], plt)
        drawn["epsilon"] = out / PLOTS["epsilon"]
    else:
        notes.append("No epsilon plot: no run is private (a non-private run's epsilon is infinite).")

    audited = [run for run in runs if (((run["result"].get("summary") or {}).get("audit") or {})
                                       .get("membership") or {}).get("roc")]
    if audited:
        _roc(audited, out / PLOTS["roc"], plt)
        drawn["roc"] = out / PLOTS["roc"]
    else:
        notes.append("No ROC plot: no run has a membership audit.")
    return drawn, notes


def _roc(runs: list[dict], path: Path, plt) -> None:
    import numpy as np

    figure, (linear, logarithmic) = plt.subplots(1, 2, figsize=(11, 4.6))
    grid = np.logspace(-5, 0, 400)
    for index, run in enumerate(runs):
        summary = run["result"]["summary"]
        membership = summary["audit"]["membership"]
        color = f"C{index % 10}"
        fpr, tpr = np.asarray(membership["roc"]["fpr"], float), np.asarray(membership["roc"]["tpr"], float)
        label = f"{run['label']} (AUC {membership['auc']:.3f})" if membership.get("auc") is not None \
            else run["label"]
        for axes in (linear, logarithmic):
            axes.plot(fpr, tpr, color=color, label=label)
        if summary.get("private") and summary.get("final_epsilon") is not None:
            bound = dp_region(grid, summary["final_epsilon"], summary.get("delta") or 0.0)
            region = f"DP region of {run['label']} (epsilon {summary['final_epsilon']:.3g})"
            for axes in (linear, logarithmic):
                axes.plot(grid, bound, color=color, linestyle=":", label=region)
    for axes in (linear, logarithmic):
        axes.plot([1e-5, 1], [1e-5, 1], color="grey", linewidth=0.8, label="chance")
        axes.set(xlabel="false positive rate", ylabel="true positive rate")
    linear.set(xlim=(0, 1), ylim=(0, 1), title="ROC (linear)")
    logarithmic.set(xscale="log", yscale="log", xlim=(1e-4, 1), ylim=(1e-4, 1), title="ROC (log-log: low FPR)")
    linear.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _finish(axes, figure, path: Path, plt) -> None:
    from matplotlib.ticker import MaxNLocator

    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
