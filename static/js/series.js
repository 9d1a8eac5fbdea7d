// From run records to chart points ({x, y}, Chart.js's native format, so charts skip parsing) and to the sentences
// that describe each chart to screen readers. Pure: no DOM, no Chart.js.

import { assumptions, formatEpsilon, percent, runBasis, sig } from './format.js';

/** Points of one per-epoch field; `scale` turns fractions into percentages. Missing values are skipped. */
export function perEpoch(epochs, key, scale = 1) {
  return epochs.filter((e) => e[key] !== null && e[key] !== undefined)
    .map((e) => ({ x: e.epoch, y: e[key] * scale }));
}

/** Overlay points of a history entry's stored series. */
export function fromSeries(series, key, scale = 1) {
  return series.epoch.map((x, i) => ({ x, y: series[key][i] === null ? null : series[key][i] * scale }))
    .filter((p) => p.y !== null);
}

export const stepLoss = (steps) => steps.filter((s) => Number.isFinite(s.loss)).map((s) => ({ x: s.step, y: s.loss }));

/**
 * A histogram as the outline of its bars, for a stepped line on a log axis: one point per left edge plus the last
 * right edge, in percent of the epoch's examples; empty bins at both ends are trimmed (one kept either side).
 */
export function histogramOutline(histogram) {
  if (!histogram || !histogram.counts?.length) return [];
  const { edges, counts } = histogram;
  const total = counts.reduce((a, b) => a + b, 0) || 1;
  const nonzero = counts.map((c, i) => (c > 0 ? i : -1)).filter((i) => i >= 0);
  if (!nonzero.length) return [];
  const first = Math.max(0, nonzero[0] - 1);
  const last = Math.min(counts.length - 1, nonzero[nonzero.length - 1] + 1);
  // Norms in the first bin (at most the lowest edge, e.g. 15-18% at <= 0.001): an empty bin of the same log width
  // before it, so its bar stands off the y axis instead of merging with it as a hairline.
  const points = nonzero[0] === 0 ? [{ x: (edges[0] * edges[0]) / edges[1], y: 0 }] : [];
  for (let i = first; i <= last; i += 1) points.push({ x: edges[i], y: (100 * counts[i]) / total });
  points.push({ x: edges[last + 1], y: (100 * counts[last]) / total });
  return points;
}

/** One epoch's per-digit test accuracy as bars (x the digit, y in percent); digits without a value are skipped. */
export function classBars(epoch) {
  return (epoch?.class_accuracy ?? []).map((a, digit) => ({ x: digit, y: a === null ? null : 100 * a }))
    .filter((p) => p.y !== null);
}

/** The per-epoch epsilon the accountant plans for the current settings (from POST /api/privacy). */
export function plannedEpsilon(report) {
  return (report?.epsilon_per_epoch ?? []).map((y, i) => ({ x: i + 1, y })).filter((p) => p.y !== null);
}

/** A horizontal line at the target epsilon across the run's epochs. */
export function budgetLine(target, epochs) {
  return [{ x: 1, y: target }, { x: Math.max(1, epochs), y: target }];
}

/** The first epoch the budget stop would cut (planned epsilon above the target), or null if it never does. */
export function budgetStopEpoch(report, target) {
  const over = (report?.epsilon_per_epoch ?? []).findIndex((e) => e === null || e > target);
  return over < 0 ? null : over;
}

const tag = (run) => (run?.mode === 'simulate' ? ' (simulated run)' : '');
const lastOf = (list) => list[list.length - 1];

// What each chart says to a screen reader: the latest numbers, in a sentence (words: format.wordsOf the spec).
export const describe = {
  progress(run) {
    const last = run && lastOf(run.epochs);
    if (!last) return 'Training progress: no epoch finished yet.';
    return `Training progress${tag(run)}: after epoch ${last.epoch} of ${run.params.epochs}, test accuracy `
      + `${percent(last.test_accuracy)}, test loss ${sig(last.test_loss)}.`;
  },
  steps(run) {
    const last = run && lastOf(run.steps);
    if (!last) return 'Loss per step: no step recorded yet.';
    return `Loss per step${tag(run)}: ${sig(last.loss)} at step ${last.step}.`;
  },
  histogram(run) {
    const last = run && lastOf(run.epochs);
    if (!last?.grad_norm) return 'Gradient norms: no epoch finished yet.';
    return `Per-example gradient norms in epoch ${last.epoch}${tag(run)}: median ${sig(last.grad_norm.p50)}, `
      + `90% below ${sig(last.grad_norm.p90)}; clipping norm C = ${sig(run.params.max_grad_norm)}.`;
  },
  clip(run) {
    const last = run && lastOf(run.epochs);
    if (!last) return 'Clipped fraction: no epoch finished yet.';
    return `Clipped fraction${tag(run)}: ${percent(last.clip_fraction, 0)} of per-example gradients exceeded C in `
      + `epoch ${last.epoch}.`;
  },
  classes(run) {
    const last = run && lastOf(run.epochs);
    if (run?.mode === 'simulate') return 'Accuracy per digit: simulated runs do not predict it (the simulator was '
      + 'fitted to overall accuracy only).';
    const bars = classBars(last);
    if (!bars.length) return 'Accuracy per digit: no epoch finished yet.';
    const [low, high] = [bars.reduce((a, b) => (b.y < a.y ? b : a)), bars.reduce((a, b) => (b.y > a.y ? b : a))];
    return `Test accuracy per digit after epoch ${last.epoch}: lowest ${low.x} at ${percent(low.y / 100)}, highest `
      + `${high.x} at ${percent(high.y / 100)}.`;
  },
  privacy(run, report, target, words) {
    const planned = report ? `Planned: ε ${formatEpsilon(report.epsilon)} after ${report.epochs} epochs `
      + `(${assumptions(report, words)}). ` : '';
    const budget = target ? `Budget ε ${sig(target)}. ` : '';
    const last = run && lastOf(run.epochs.filter((e) => e.epsilon !== null && e.epsilon !== undefined));
    const spent = last ? `Spent${tag(run)}: ε ${formatEpsilon(last.epsilon)} after epoch ${last.epoch} `
      + `(${assumptions(runBasis(run.params, words), words)}).` : '';
    return `Privacy budget. ${planned}${budget}${spent}`.trim();
  },
};
