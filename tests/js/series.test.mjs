import assert from 'node:assert/strict';
import { test } from 'node:test';

import { epochRecord, SPEC } from './fixtures.mjs';
import { wordsOf } from '../../static/js/format.js';
import { budgetLine, budgetStopEpoch, classBars, describe, fromSeries, histogramOutline, perEpoch, plannedEpsilon,
  stepLoss } from '../../static/js/series.js';

const run = { mode: 'simulate', params: { epochs: 5, max_grad_norm: 1, accountant: 'rdp', delta: 1e-5 },
  epochs: [epochRecord(1), epochRecord(2)], steps: [{ step: 1, loss: 2.3 }, { step: 2, loss: NaN }, { step: 3, loss: 2 }] };

test('per-epoch points, scaled, skipping missing values', () => {
  assert.deepEqual(perEpoch(run.epochs, 'test_accuracy', 100).map((p) => p.x), [1, 2]);
  assert.ok(Math.abs(perEpoch(run.epochs, 'test_accuracy', 100)[1].y - 70) < 1e-9);
  assert.deepEqual(perEpoch([epochRecord(1, { epsilon: null })], 'epsilon'), []);
  assert.deepEqual(stepLoss(run.steps), [{ x: 1, y: 2.3 }, { x: 3, y: 2 }], 'non-finite losses are skipped');
});

test('history series become overlay points', () => {
  const series = { epoch: [1, 2], test_accuracy: [0.9, null] };
  assert.deepEqual(fromSeries(series, 'test_accuracy', 100), [{ x: 1, y: 90 }]);
});

test('histogram outline: trimmed, in percent, closed by the last right edge', () => {
  const outline = histogramOutline({ edges: [0.01, 0.1, 1, 10, 100, 1000], counts: [0, 0, 5, 15, 0] });
  assert.deepEqual(outline, [{ x: 0.1, y: 0 }, { x: 1, y: 25 }, { x: 10, y: 75 }, { x: 100, y: 0 }, { x: 1000, y: 0 }]);
  assert.deepEqual(histogramOutline({ edges: [1, 2], counts: [0] }), []);
  // a full first bin gets an empty one before it, so its bar does not sit on the axis
  const [before, ...bars] = histogramOutline({ edges: [0.001, 0.01, 0.1], counts: [3, 1] });
  assert.ok(Math.abs(before.x - 1e-4) < 1e-12 && before.y === 0);
  assert.deepEqual(bars, [{ x: 0.001, y: 75 }, { x: 0.01, y: 25 }, { x: 0.1, y: 25 }]);
  assert.deepEqual(histogramOutline(null), []);
});

test('planned epsilon, budget line, and where the budget stop cuts', () => {
  const report = { epsilon_per_epoch: [0.7, 0.8, 0.9], epochs: 3, epsilon: 0.9 };
  assert.deepEqual(plannedEpsilon(report), [{ x: 1, y: 0.7 }, { x: 2, y: 0.8 }, { x: 3, y: 0.9 }]);
  assert.deepEqual(budgetLine(3, 60), [{ x: 1, y: 3 }, { x: 60, y: 3 }]);
  assert.equal(budgetStopEpoch(report, 0.85), 2);
  assert.equal(budgetStopEpoch(report, 1), null);
  assert.equal(budgetStopEpoch(report, 0.5), 0);
});

test('descriptions state the latest numbers and say "simulated"', () => {
  assert.match(describe.progress(run), /simulated run.*epoch 2 of 5, test accuracy 70\.0%/);
  assert.match(describe.histogram(run), /median 0\.9.*C = 1/);
  assert.match(describe.clip(run), /40% of per-example gradients/);
  assert.match(describe.privacy(run, null, 3, wordsOf(SPEC)), /Budget ε 3\. Spent \(simulated run\): ε 0\.6 after epoch 2 \(RDP · δ = 1e-5 · Poisson sampling\)/);
  assert.match(describe.progress(null), /no epoch finished yet/);
  assert.match(describe.steps({ ...run, mode: 'real' }), /^Loss per step: 2 at step 3\.$/);
});

test('per-digit accuracy becomes ten bars in percent, and the sentence names the weakest and strongest digit', () => {
  const accuracies = [0.99, 0.98, 0.95, 0.96, 0.97, 0.9, 0.98, 0.97, null, 0.94];
  const epoch = epochRecord(3, { class_accuracy: accuracies });
  const bars = classBars(epoch);
  assert.deepEqual(bars.map((b) => b.x), [0, 1, 2, 3, 4, 5, 6, 7, 9], 'a digit without a value is skipped');
  assert.ok(Math.abs(bars[5].y - 90) < 1e-9);
  assert.deepEqual(classBars(epochRecord(1)), [], 'records without class_accuracy draw nothing');
  const real = { ...run, mode: 'real', epochs: [epoch] };
  assert.match(describe.classes(real), /after epoch 3: lowest 5 at 90(\.0)?%, highest 0 at 99(\.0)?%/);
  assert.match(describe.classes(run), /simulated runs do not predict it/);
});
