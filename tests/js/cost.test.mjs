import assert from 'node:assert/strict';
import { test } from 'node:test';

import { costEntry, costReading, MIN_EPOCH_SECONDS, phasesText } from '../../static/js/cost.js';
import { costBaselineFor, entryOf } from '../../static/js/history.js';
import { epochRecord } from './fixtures.mjs';

const profile = (seconds, extra = {}) => ({ batch_size: 64, repetitions: 5, private_step_seconds: 0.011,
  public_step_seconds: 0.0086, private_to_public: 1.31, train_seconds_per_epoch: seconds,
  evaluation_seconds_per_epoch: 0.3, rss_start_mb: 580, rss_peak_mb: 690, rss_increase_mb: 110,
  phases: { forward_backward: 0.0057, per_example_norms: 0.0035, clip_and_sum: 0, noise: 0.0018, update: 0.0007 },
  ...extra });
const realRun = (id, params, seconds) => ({ id, mode: 'real', status: 'succeeded',
  params: { private: true, dataset_size: 1000, batch_size: 64, ...params }, epochs: [epochRecord(1)],
  summary: { final_test_accuracy: 0.9, final_epsilon: 2, profile: profile(seconds) } });
const entry = (run, number) => ({ ...entryOf(run), number });

test('a history entry keeps the run’s measured time per epoch and memory, and only those', () => {
  assert.deepEqual(costEntry(realRun('a', {}, 2).summary),
    { train_seconds_per_epoch: 2, evaluation_seconds_per_epoch: 0.3, rss_increase_mb: 110, rss_peak_mb: 690 });
  assert.equal(costEntry({}), null, 'a simulated run has no profile');
  assert.equal(entryOf(realRun('b', {}, 2)).cost.train_seconds_per_epoch, 2);
});

test('the baseline is the newest non-private real run of the same model and batch size', () => {
  const run = realRun('p', {}, 3);
  const older = entry(realRun('n1', { private: false }, 2), 1);
  const newer = entry(realRun('n2', { private: false }, 1.5), 2);
  const otherBatch = entry(realRun('n3', { private: false, batch_size: 128 }, 1), 3);
  const otherModel = entry(realRun('n4', { private: false, model: 'tanh_cnn' }, 1), 4);
  const privateOne = entry(realRun('p0', {}, 3), 5);
  const list = [privateOne, otherModel, otherBatch, newer, older];
  assert.equal(costBaselineFor(list, run).id, 'n2');
  assert.equal(costBaselineFor(list, realRun('t', { model: 'tanh_cnn' }, 3)).id, 'n4');
  assert.equal(costBaselineFor([privateOne, otherBatch], run), null);
  assert.equal(costBaselineFor(list, { ...run, mode: 'simulate' }), null, 'simulated runs measure no cost');
});

test('with a baseline the card compares epochs and memory, both measured here; without one it says so', () => {
  const run = realRun('p', {}, 3);
  const baseline = entry(realRun('n', { private: false }, 1.5), 7);
  const compared = costReading(run, run.summary.profile, baseline);
  assert.equal(compared.value, '2× time per epoch');
  assert.match(compared.detail, /last non-private run \(run 7, same model, batch 64\): 1\.5 s per epoch/);
  assert.match(compared.detail, /both measured on this server/);
  assert.match(compared.detail, /per-example norms 3\.5 ms/);
  const alone = costReading(run, run.summary.profile, null);
  assert.equal(alone.value, '1.31× time per step');
  assert.match(alone.detail, /No non-private real run of this model and batch 64/);
  const baselineItself = costReading(realRun('n', { private: false }, 1.5), profile(1.5), null);
  assert.match(baselineItself.detail, /^non-private: training 1\.5 s per epoch/);
});

test('a step on the materialised path says why it has no phases', () => {
  assert.equal(phasesText(profile(1, { phases: null, phases_note: 'not split' })), 'not split');
});

test('the phases read in the step’s order whatever order the JSON keys came in', () => {
  const sorted = { clip_and_sum: 0.002, forward_backward: 0.004, noise: 0.0016, per_example_norms: 0.0017,
    update: 0.0005 }; // Flask sends keys sorted
  assert.equal(phasesText(profile(1, { phases: sorted })), 'per private step: forward and backward 4 ms, '
    + 'per-example norms 1.7 ms, clipping and sum 2 ms, noise 1.6 ms, update 0.5 ms');
});

test('epochs too short to compare fall back to the paired step ratio, and say why', () => {
  const short = MIN_EPOCH_SECONDS / 2;
  const run = realRun('p', {}, short);
  const baseline = entry(realRun('n', { private: false }, short * 1.5), 2);
  const reading = costReading(run, run.summary.profile, baseline);
  assert.equal(reading.value, '1.31× time per step');
  assert.match(reading.detail, /^Epochs under 1 s are mostly fixed costs, so the headline is the paired step ratio\./);
  assert.match(reading.detail, /last non-private run \(run 2, same model, batch 64\)/);
});
