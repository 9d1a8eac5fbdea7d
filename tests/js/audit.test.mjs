import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  absentReading, auditEntry, auditReading, auditTable, baselineReading, canaryReading, dpRegion, epochTrend, rocPoints,
} from '../../static/js/audit.js';
import { entryOf } from '../../static/js/history.js';

const audit = {
  membership: { auc: 0.532, advantage: 0.06, tpr_at_fpr: { '0.01': 0.018, '0.001': 0.003 }, attack: 'loss',
    roc: { fpr: [0, 0.001, 0.5, 1], tpr: [0, 0.003, 0.56, 1] }, members: 1000, non_members: 1000,
    attacks: { loss: { auc: 0.532, advantage: 0.06, tpr_at_fpr: { '0.01': 0.018, '0.001': 0.003 } },
      entropy: { auc: 0.51, advantage: 0.03, tpr_at_fpr: { '0.01': 0.012, '0.001': 0.001 } } } },
  canaries: { count: 500, guesses: 50, correct: 40, epsilon_lower_bound: 0.41, confidence: 0.95, ceiling: 3.5 },
};
const run = (overrides = {}) => ({ mode: 'real', status: 'succeeded', params: { private: true, delta: 1e-5, audit: 'canaries' },
  epochs: [{ epoch: 1, test_accuracy: 0.9 }], steps: [],
  summary: { final_epsilon: 1.2, delta: 1e-5, final_test_accuracy: 0.9, audit }, ...overrides });

test('the DP region is TPR <= min(e^eps FPR + delta, 1 - e^-eps (1 - delta - FPR)) and moves with epsilon', () => {
  const tight = dpRegion(0.5, 0);
  const loose = dpRegion(3, 0);
  for (const [i, p] of tight.entries()) {
    assert.ok(Math.abs(p.y - Math.min(Math.exp(0.5) * p.x, 1 - Math.exp(-0.5) * (1 - p.x), 1)) < 1e-12);
    assert.ok(loose[i].y >= p.y);
  }
  assert.ok(loose.some((p, i) => p.y > tight[i].y + 0.05), 'a larger epsilon allows more');
  assert.deepEqual(dpRegion(null, 1e-5), []);
  assert.ok(dpRegion(1, 0, { log: true }).every((p) => p.x > 0));
  assert.deepEqual(rocPoints(audit.membership.roc, { log: true }).map((p) => p.x), [0.001, 0.5, 1]);
});

test('the reading names the attack, its numbers, the bound epsilon allows and what it is not', () => {
  const text = auditReading(run());
  assert.match(text, /loss threshold/);
  assert.match(text, /AUC 0\.532/);
  assert.match(text, /TPR 0\.30% at FPR 0\.1%/);
  assert.match(text, /ε 1\.2 \(δ 1e-5\) would allow up to TPR/);
  assert.match(text, /not an epsilon lower bound/);
  assert.match(text, /ε ≥ 0\.41 with 95% confidence; the accountant's ε is 1\.2/);
  assert.match(text, /at most 3\.5: a lower bound, never a measurement/);
  assert.match(auditReading(run({ params: { private: false, audit: 'membership' } })), /Non-private: no ε/);
  assert.match(canaryReading(audit.canaries, null), /non-private/);
});

test('runs without an audit say why, and simulated runs never carry numbers', () => {
  assert.equal(auditReading(run({ summary: { final_epsilon: 1 } })), null);
  assert.match(absentReading({ mode: 'simulate', params: {} }), /real runs only/);
  assert.match(absentReading({ mode: 'real', params: { audit: 'none' }, status: 'succeeded' }), /no audit/);
  assert.match(absentReading({ mode: 'real', params: { audit: 'membership' }, status: 'running' }), /when training ends/);
  assert.equal(auditTable({ mode: 'simulate', params: {} }).rows.length, 0);
});

test('the table has a row per attack, the DP bound and the canaries; history keeps the few numbers', () => {
  const table = auditTable(run());
  assert.deepEqual(table.rows.map((r) => r[0]).slice(0, 2), ['loss threshold', 'entropy threshold']);
  assert.match(table.rows[2][0], /DP bound for ε 1\.2/);
  assert.match(table.rows[3][0], /canaries: ε ≥ 0\.41/);
  const entry = entryOf(run());
  assert.deepEqual(entry.audit, { auc: 0.532, tpr_001: 0.003, bound: 0.41 });
  assert.equal(auditEntry({}), null);
  const compare = baselineReading(run(), { number: 2, audit: { auc: 0.6, tpr_001: 0.01, bound: 1.2 } });
  assert.match(compare, /run 2\): AUC 0\.6, TPR 1\.0% at FPR 0\.1%, canary bound ε ≥ 1\.2; this run: AUC 0\.532/);
});

test('the reading says how the per-epoch AUC moved, when the epochs carry it', () => {
  const epochs = [{ epoch: 1, membership_auc: 0.501 }, { epoch: 2, membership_auc: 0.512 }, { epoch: 3, membership_auc: 0.53 }];
  assert.equal(epochTrend(epochs), "During training the loss attack's AUC on a fixed sample went from 0.501 after "
    + 'epoch 1 to 0.53 after epoch 3.');
  assert.equal(epochTrend([{ epoch: 1 }]), null);
  assert.match(auditReading(run({ epochs })), /went from 0\.501/);
});
