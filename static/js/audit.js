// The privacy audit of a real run, as the page shows it: the attack's ROC beside the region (epsilon, delta)-DP
// allows, the one-line reading, the comparison with the last non-private run, and the table view. Pure: no DOM, no
// Chart.js, so node tests cover it. The numbers are the server's (summary.audit); the DP region is
// format.attackerBound: TPR <= min(e^eps FPR + delta, 1 - e^-eps (1 - delta - FPR)).

import { attackerBound, formatEpsilon, percent, sig } from './format.js';

export const LOG_FPR_MIN = 1e-4;
const ATTACK_NAMES = { loss: 'loss threshold', confidence: 'confidence threshold', entropy: 'entropy threshold',
  logistic_regression: 'logistic regression' };

export const attackName = (name) => ATTACK_NAMES[name] ?? name;

/** FPRs at which the DP boundary is drawn: 0 and a log grid from 1e-4 to 1 (dense where the log axis needs it). */
export function regionFprs(points = 120) {
  return [0, ...Array.from({ length: points }, (_, i) => 10 ** (Math.log10(LOG_FPR_MIN) * (1 - i / (points - 1))))];
}

/** The upper edge of the (epsilon, delta)-DP region as {x: FPR, y: TPR} points; [] without a finite epsilon. */
export function dpRegion(epsilon, delta, { log = false } = {}) {
  if (epsilon === null || epsilon === undefined || !Number.isFinite(epsilon)) return [];
  return regionFprs().filter((x) => !log || x > 0).map((x) => ({ x, y: attackerBound(epsilon, delta ?? 0, x).tpr }))
    .filter((p) => !log || p.y > 0);
}

/** The attack's ROC as {x, y} points (the log-log view, as Carlini et al. 2022 draw it, drops zeros). */
export function rocPoints(roc, { log = false } = {}) {
  if (!roc) return [];
  return roc.fpr.map((x, i) => ({ x, y: roc.tpr[i] })).filter((p) => !log || (p.x > 0 && p.y > 0));
}

const pct = (x) => percent(x, x < 0.01 ? 2 : 1);

/** One or two sentences reading the audit of a run (null: the run has none, with why in `absent`). */
export function auditReading(run) {
  const audit = run?.summary?.audit;
  if (!audit?.membership) return null;
  const m = audit.membership;
  const epsilon = run.params.private ? run.summary.final_epsilon : null;
  const delta = run.summary.delta ?? run.params.delta;
  const lines = [`The best attack (${attackName(m.attack)}, ${m.members.toLocaleString('en-US')} members against `
    + `${m.non_members.toLocaleString('en-US')} examples never seen) reaches AUC ${sig(m.auc, 3)} and TPR `
    + `${pct(m.tpr_at_fpr['0.001'])} at FPR 0.1% (${pct(m.tpr_at_fpr['0.01'])} at 1%); chance is AUC 0.5 and `
    + 'TPR = FPR.'];
  if (epsilon !== null && epsilon !== undefined && Number.isFinite(epsilon)) {
    lines.push(`ε ${formatEpsilon(epsilon)} (δ ${sig(delta)}) would allow up to TPR `
      + `${pct(attackerBound(epsilon, delta, 0.001).tpr)} at FPR 0.1% and ${pct(attackerBound(epsilon, delta, 0.01).tpr)} `
      + 'at 1%.');
  } else {
    lines.push('Non-private: no ε, so no bound on what an attack may reach.');
  }
  lines.push('Empirical leakage of this model on this split, not an epsilon lower bound.');
  const trend = epochTrend(run.epochs ?? []);
  if (trend) lines.push(trend);
  if (audit.canaries) lines.push(canaryReading(audit.canaries, epsilon));
  return lines.join(' ');
}

/** How the loss attack's AUC (epoch records' membership_auc, a 500 + 500 sample) moved during training. */
export function epochTrend(epochs) {
  const points = epochs.filter((e) => Number.isFinite(e.membership_auc));
  if (points.length < 2) return null;
  const first = points[0];
  const last = points[points.length - 1];
  return `During training the loss attack's AUC on a fixed sample went from ${sig(first.membership_auc, 3)} after `
    + `epoch ${first.epoch} to ${sig(last.membership_auc, 3)} after epoch ${last.epoch}.`;
}

/** The canary bound beside the accountant's epsilon, with its ceiling. */
export function canaryReading(c, epsilon) {
  const versus = epsilon !== null && epsilon !== undefined && Number.isFinite(epsilon)
    ? `the accountant's ε is ${formatEpsilon(epsilon)}` : 'the run is non-private (no ε)';
  return `Canary audit: ${c.correct} of ${c.guesses} guesses right about which of ${c.count} canaries were trained on, `
    + `so ε ≥ ${sig(c.epsilon_lower_bound, 3)} with ${percent(c.confidence, 0)} confidence; ${versus}. Even a perfect `
    + `attack on these canaries would certify at most ${sig(c.ceiling, 3)}: a lower bound, never a measurement of ε.`;
}

/** What the audit card says when a run has no audit. */
export function absentReading(run) {
  if (!run) return 'Run a real training run with an audit to see it here.';
  if (run.mode === 'simulate') return 'Audits are measured on real runs only: a simulated run has no model to attack.';
  if (run.params.audit === 'none') return 'This run asked for no audit.';
  if (['queued', 'running'].includes(run.status)) return 'The audit runs on the trained model when training ends.';
  return 'This run ended without an audit (it was cancelled or failed).';
}

/** The comparison with the last non-private run of the same settings (history entries carry `audit`). */
export function baselineReading(run, baseline) {
  const m = run?.summary?.audit?.membership;
  if (!m || !baseline?.audit) return null;
  const b = baseline.audit;
  return `Last non-private run (run ${baseline.number ?? '?'}): AUC ${sig(b.auc, 3)}, TPR ${pct(b.tpr_001)} at FPR 0.1%`
    + `${b.bound !== null && b.bound !== undefined ? `, canary bound ε ≥ ${sig(b.bound, 3)}` : ''}; this run: AUC `
    + `${sig(m.auc, 3)}, TPR ${pct(m.tpr_at_fpr['0.001'])}`
    + `${run.summary.audit.canaries ? `, ε ≥ ${sig(run.summary.audit.canaries.epsilon_lower_bound, 3)}` : ''}.`;
}

/** The few numbers of an audit a history entry keeps. */
export function auditEntry(summary) {
  const a = summary?.audit;
  if (!a?.membership) return null;
  return { auc: a.membership.auc, tpr_001: a.membership.tpr_at_fpr['0.001'],
    bound: a.canaries ? a.canaries.epsilon_lower_bound : null };
}

/** The table view of the audit card: {caption, columns, rows}, one row per attack and one for the canaries. */
export function auditTable(run) {
  const audit = run?.summary?.audit;
  const caption = 'Privacy audit of the last run';
  const columns = ['attack', 'AUC', 'advantage (max TPR − FPR)', 'TPR at FPR 1%', 'TPR at FPR 0.1%'];
  if (!audit?.membership) return { caption: `${caption}: ${absentReading(run)}`, columns, rows: [] };
  const rows = Object.entries(audit.membership.attacks).map(([name, a]) => [attackName(name), sig(a.auc, 3),
    sig(a.advantage, 3), pct(a.tpr_at_fpr['0.01']), pct(a.tpr_at_fpr['0.001'])]);
  const epsilon = run.params.private ? run.summary.final_epsilon : null;
  if (epsilon !== null && epsilon !== undefined) {
    const delta = run.summary.delta;
    rows.push([`(ε, δ)-DP bound for ε ${formatEpsilon(epsilon)}`, '', '',
      pct(attackerBound(epsilon, delta, 0.01).tpr), pct(attackerBound(epsilon, delta, 0.001).tpr)]);
  }
  if (audit.canaries) {
    const c = audit.canaries;
    rows.push([`canaries: ε ≥ ${sig(c.epsilon_lower_bound, 3)} (${percent(c.confidence, 0)}), ceiling `
      + `${sig(c.ceiling, 3)}, ${c.correct}/${c.guesses} right`, '', '', '', '']);
  }
  return { caption, columns, rows };
}

/** The aria label of the ROC chart (planned: the privacy report of the current settings, or null). */
export function describeAudit(run, planned = null) {
  const m = run?.summary?.audit?.membership;
  const current = planned && Number.isFinite(planned.epsilon)
    ? ` The current settings' ε ${formatEpsilon(planned.epsilon)} would allow TPR at most `
      + `${pct(attackerBound(planned.epsilon, planned.delta, 0.01).tpr)} at FPR 1%.` : '';
  if (!m) return `Privacy audit: ${absentReading(run)}${current}`;
  const epsilon = run.params.private ? run.summary.final_epsilon : null;
  const region = epsilon !== null && epsilon !== undefined && Number.isFinite(epsilon)
    ? `under the region the run's ε ${formatEpsilon(epsilon)} allows` : 'with no DP region (non-private run)';
  return `ROC of the best membership attack (${attackName(m.attack)}): AUC ${sig(m.auc, 3)}, TPR `
    + `${pct(m.tpr_at_fpr['0.001'])} at FPR 0.1%, ${region}.${current}`;
}
