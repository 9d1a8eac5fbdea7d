import assert from 'node:assert/strict';
import { test } from 'node:test';

import { row, SPEC } from './fixtures.mjs';
import { assumptions, attackerBound, duration, epsilonBand, formatEpsilon, formatValue, meaning, percent, phrase,
  progressText, runBasis, sig, whole, wordsOf } from '../../static/js/format.js';

const WORDS = wordsOf(SPEC);

test('sig trims to significant digits and switches to exponents at the extremes', () => {
  assert.equal(sig(2.5943633549531118), '2.59');
  assert.equal(sig(0.04), '0.04');
  assert.equal(sig(1e-5), '1e-5');
  assert.equal(sig(2.5e-7), '2.5e-7');
  assert.equal(sig(110000), '110,000');
  assert.equal(sig(1.1e7), '1.1e7');
  assert.equal(sig(0), '0');
  assert.equal(sig(Infinity), '∞');
  assert.equal(sig(null), '–');
});

test('knob values: grouped integers, floats to 4 digits, words for switches', () => {
  assert.equal(formatValue(row('dataset_size'), 60000), '60,000');
  assert.equal(formatValue(row('learning_rate'), 0.15), '0.15');
  assert.equal(formatValue(row('delta'), 1e-5), '1e-5');
  assert.equal(formatValue(row('private'), false), 'off');
  assert.equal(formatValue(row('mode'), 'real'), 'real');
});

test('percent, duration, epsilon', () => {
  assert.equal(percent(0.966), '96.6%');
  assert.equal(percent(null), '–');
  assert.equal(duration(42.4), '42 s');
  assert.equal(duration(125), '2 min 5 s');
  assert.equal(duration(3725), '1 h 2 min');
  assert.equal(formatEpsilon(null), '∞');
  assert.equal(formatEpsilon(2.59436), '2.59');
});

test('every epsilon carries accountant, delta and sampling', () => {
  assert.equal(assumptions({ accountant: 'rdp', delta: 1e-5, sampling: 'poisson' }, WORDS),
    'RDP · δ = 1e-5 · Poisson sampling');
  assert.equal(assumptions({ accountant: 'pld', delta: 1e-6, sampling: 'shuffle' }, WORDS),
    'PLD · δ = 1e-6 · shuffled batches');
});

test('the words come from the knob table: phrases where a sentence names a choice otherwise, else labels', () => {
  assert.equal(phrase(WORDS, 'sampling', 'shuffle'), 'shuffled batches');
  assert.equal(phrase(WORDS, 'accountant', 'pld'), 'PLD');
  assert.equal(phrase(WORDS, 'mode', 'simulate'), 'Simulated');
  assert.equal(phrase(WORDS, 'accountant', 'gdp'), 'gdp', 'a choice the table does not name is shown as it is');
  const renamed = wordsOf({ ...SPEC, run_sampling: 'shuffle',
    params: SPEC.params.map((r) => (r.name === 'accountant' ? { ...r, choice_labels: { rdp: 'Rényi' } } : r)) });
  assert.equal(assumptions({ accountant: 'rdp', delta: 1e-5, sampling: 'poisson' }, renamed),
    'Rényi · δ = 1e-5 · Poisson sampling', 'nothing is written in format.js a second time');
  assert.equal(runBasis({ accountant: 'rdp', delta: 1e-5 }, renamed).sampling, 'shuffle');
});

test('a run\'s epsilon is for the sampling it records, else for how runs sample', () => {
  assert.deepEqual(runBasis({ accountant: 'pld', delta: 1e-6, epochs: 3 }, WORDS),
    { accountant: 'pld', delta: 1e-6, sampling: 'poisson' });
  assert.equal(runBasis({ accountant: 'rdp', delta: 1e-5, sampling: 'shuffle' }, WORDS).sampling, 'shuffle');
});

test('bands: 1 strong, 3 moderate, 8 weak, above very weak, infinite none', () => {
  assert.deepEqual([0.5, 1, 2.6, 3, 7, 8, 12, null, Infinity].map((e) => epsilonBand(e).id),
    ['strong', 'strong', 'moderate', 'moderate', 'weak', 'weak', 'very-weak', 'none', 'none']);
});

test('attacker bound: TPR <= e^eps FPR + delta, and accuracy from a 50/50 prior', () => {
  const b = attackerBound(1, 1e-5);
  assert.ok(Math.abs(b.tpr - (Math.E * 0.01 + 1e-5)) < 1e-12);
  assert.ok(Math.abs(b.accuracy - (Math.E + 1e-5) / (1 + Math.E)) < 1e-12);
  assert.equal(attackerBound(0, 0).accuracy, 0.5, 'epsilon 0: a coin flip');
  assert.ok(attackerBound(8, 1e-5).tpr < 1, 'the mirrored bound keeps TPR below 1');
  assert.deepEqual(attackerBound(null, 1e-5), { tpr: 1, accuracy: 1 });
  assert.ok(attackerBound(1e6, 0).accuracy <= 1, 'no overflow');
  assert.match(meaning(1, 1e-5), /at most 2\.7% of members/);
  assert.match(meaning(1, 1e-5), /right at most 73\.1% of the time/);
  assert.match(meaning(null, 1e-5), /No guarantee/);
});

test('progress text says epoch, step and time left', () => {
  assert.equal(progressText({ epoch: 2, epochs: 5, step: 700, steps: 1170, eta_seconds: 12 }),
    'Epoch 2 of 5 · step 700 of 1,170 · about 12 s left');
  assert.equal(progressText({ epoch: 0, epochs: 5, step: 0, steps: 0, eta_seconds: null }), 'Epoch 0 of 5');
});

test('whole: grouped, and a dash where a record lacks the number', () => {
  assert.equal(whole(60000), '60,000');
  assert.equal(whole(256), '256');
  assert.equal(whole(undefined), '–');
  assert.equal(whole(null), '–');
});
