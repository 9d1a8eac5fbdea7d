import assert from 'node:assert/strict';
import { test } from 'node:test';

import { epochRecord, SPEC } from './fixtures.mjs';
import { runToCSV, runToJSON, statementText } from '../../static/js/exporting.js';
import { wordsOf } from '../../static/js/format.js';

const WORDS = wordsOf(SPEC);

const run = { id: 'r1', token: 'secret', mode: 'simulate', status: 'succeeded',
  params: { private: true, noise_multiplier: 1.1, max_grad_norm: 1, batch_size: 256, learning_rate: 0.15, epochs: 2,
    dataset_size: 60000, delta: 1e-5, seed: 0, accountant: 'rdp', sampling: 'poisson' },
  epochs: [epochRecord(1), epochRecord(2)], steps: [], summary: { statement: 'says "hi", twice' } };

test('CSV: a header and one row per epoch, settings repeated', () => {
  const lines = runToCSV(run).trim().split('\n');
  assert.equal(lines.length, 3);
  const header = lines[0].split(',');
  assert.deepEqual(header.slice(0, 4), ['epoch', 'train_loss', 'test_loss', 'test_accuracy']);
  assert.ok(header.includes('grad_norm_p50') && header.includes('noise_multiplier') && header.includes('mode'));
  const row = Object.fromEntries(lines[2].split(',').map((v, i) => [header[i], v]));
  assert.equal(row.epoch, '2');
  assert.equal(row.grad_norm_p90, '2.5');
  assert.equal(row.mode, 'simulate');
  assert.equal(row.delta, '0.00001');
});

test('JSON: the whole run without the cancel token, marked simulated', () => {
  const data = JSON.parse(runToJSON(run));
  assert.equal(data.token, undefined);
  assert.equal(data.simulated, true);
  assert.equal(data.epochs.length, 2);
});

test('statement text: epsilon with its assumptions, then the statement', () => {
  const text = statementText({ epsilon: 2.594, accountant: 'rdp', delta: 1e-5, sampling: 'poisson', statement: 'DP-SGD on ...' },
    WORDS, { simulated: true });
  assert.match(text, /epsilon = 2\.59 \(RDP · δ = 1e-5 · Poisson sampling\)/);
  assert.match(text, /DP-SGD on \.\.\./);
  assert.match(text, /SIMULATED/);
  assert.match(statementText({ epsilon: null, accountant: 'rdp', delta: 1e-5, sampling: 'poisson', statement: '' }, WORDS),
    /epsilon = ∞/);
  const nonPrivate = statementText({ epsilon: null, accountant: 'rdp', delta: 1e-5, sampling: 'poisson', statement: '' },
    WORDS, { private: false });
  assert.match(nonPrivate, /epsilon = ∞: no differential privacy guarantee/);
  assert.doesNotMatch(nonPrivate, /RDP|Poisson/);  // no accountant vouches for a run that had no noise
});
