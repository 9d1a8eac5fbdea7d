import assert from 'node:assert/strict';
import { test } from 'node:test';

import { KNOBS, SPEC } from './fixtures.mjs';
import { applicable, changeText, describeCandidate, knobsText, searchSummary, seedAgainstRange }
  from '../../static/js/advice.js';
import { wordsOf } from '../../static/js/format.js';

const WORDS = wordsOf(SPEC);
const CANDIDATE = { params: { mode: 'simulate', private: true, noise_multiplier: 1.2, max_grad_norm: 0.1,
  batch_size: 1024, learning_rate: 4, epochs: 40, dataset_size: 60000, delta: 1e-5, seed: 0, accountant: 'rdp',
  target_epsilon: 3, budget_stop: false, unknown_knob: 1 },
predicted_accuracy: 0.9795, real_run_range: [0.9716, 0.9852], epsilon: 2.6837, seconds: 69.9 };

test('a change reads in the page symbols, numbers as the sliders show them', () => {
  assert.equal(changeText({ noise_multiplier: 0.8, batch_size: 1024 }), 'σ = 0.8, B = 1,024');
  assert.equal(changeText({ learning_rate: 0.0375, private: true }), 'lr = 0.0375, Private = on');
  assert.equal(changeText({}), '');
  assert.equal(changeText(undefined), '');
});

test('only the knobs the table has are applied', () => {
  const knobs = applicable(CANDIDATE.params, KNOBS);
  assert.equal(knobs.unknown_knob, undefined);
  assert.equal(knobs.noise_multiplier, 1.2);
  assert.equal(knobs.mode, 'simulate');
});

test('a candidate states its prediction, real-run range, epsilon with assumptions and time', () => {
  const d = describeCandidate(CANDIDATE, { accountant: 'rdp', delta: 1e-5, sampling: 'poisson' }, WORDS);
  assert.equal(d.accuracy, '98.0% predicted');
  assert.equal(d.knobs, 'σ 1.2 · C 0.1 · B 1,024 · lr 4 · 40 epochs');
  assert.equal(d.range, 'a real run ends at 97.2%–98.5% 8 times in 10');
  assert.equal(d.epsilon, 'ε = 2.68 (RDP · δ = 1e-5 · Poisson sampling)');
  assert.equal(d.time, 'about 1 min 10 s as a real run');
  assert.equal(knobsText({ ...CANDIDATE.params, epochs: 1 }).endsWith('1 epoch'), true);
});

test('the search summary says how many were searched, whether it was cut short, and what to do with none', () => {
  const text = searchSummary({ candidates: [CANDIDATE], searched: 4200, complete: false }, 3);
  assert.match(text, /^Best 1 of 4,200 settings searched \(the time budget ended the search early\), each within ε ≤ 3/);
  assert.match(text, /ranked by the accuracy a real run beats 9 times in 10/);
  assert.match(text, /the best of thousands is optimistic/);
  const none = searchSummary({ candidates: [], searched: 0, complete: true }, 0.01);
  assert.match(none, /No setting the simulator knows reaches ε ≤ 0.01.*Raise the target ε/);
});

test('where a simulated seed fell against the 80% range, in plain words', () => {
  assert.match(seedAgainstRange(0.879, [0.885, 0.924]), /below that range; 1 real run in 10 does/);
  assert.match(seedAgainstRange(0.95, [0.885, 0.924]), /above that range; 1 real run in 10 does/);
  assert.match(seedAgainstRange(0.9, [0.885, 0.924]), /inside it, as 8 real runs in 10 do/);
  assert.equal(seedAgainstRange(0.9, null), null);
});
