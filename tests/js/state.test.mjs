import assert from 'node:assert/strict';
import { test } from 'node:test';

import { KNOBS, row } from './fixtures.mjs';
import { bodyFor, constrain, defaultsOf, parseQuery, positionOf, rowsOf, sliderStops, toQuery } from '../../static/js/state.js';

test('log slider stops are nice numbers covering the range, ends exact', () => {
  const stops = sliderStops(row('learning_rate'));
  assert.equal(stops[0], 1e-4);
  assert.equal(stops[stops.length - 1], 10);
  for (const v of [0.15, 0.25, 0.1, 1, 8]) assert.ok(stops.includes(v), `${v} is a stop`);
  assert.deepEqual([...stops].sort((a, b) => a - b), stops, 'ascending');
  assert.equal(new Set(stops).size, stops.length, 'no duplicates');
});

test('a log slider whose min is 0 starts with exactly 0, then slider_min', () => {
  const stops = sliderStops(row('noise_multiplier'));
  assert.deepEqual(stops.slice(0, 3), [0, 0.1, 0.11]);
  assert.equal(stops[stops.length - 1], 50);
  for (const v of [0.7, 1.1, 1.3, 2.5, 20]) assert.ok(stops.includes(v), `${v} is a stop`);
});

test('integer log slider stops are whole numbers; pow2 and linear sliders', () => {
  const sizes = sliderStops(row('dataset_size'));
  assert.ok(sizes.every(Number.isInteger));
  assert.equal(sizes[0], 100);
  assert.equal(sizes[sizes.length - 1], 60000);
  assert.deepEqual(sliderStops(row('batch_size')), [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096]);
  const epochs = sliderStops(row('epochs'));
  assert.equal(epochs.length, 100);
  assert.deepEqual([epochs[0], epochs[99]], [1, 100]);
});

test('positionOf finds the nearest stop, in ratio on log sliders', () => {
  const r = row('noise_multiplier');
  const stops = sliderStops(r);
  assert.equal(stops[positionOf(r, stops, 1.1)], 1.1);
  assert.equal(positionOf(r, stops, 0), 0);
  assert.equal(stops[positionOf(r, stops, 0.05)], 0.1, 'below slider_min goes to slider_min, not to 0');
  const b = row('batch_size');
  assert.equal(sliderStops(b)[positionOf(b, sliderStops(b), 300)], 256);
  const e = row('epochs');
  assert.equal(sliderStops(e)[positionOf(e, sliderStops(e), 60)], 60);
});

test('an empty query gives the defaults and no notes', () => {
  const { state, hide, notes } = parseQuery('', KNOBS);
  assert.deepEqual(state, defaultsOf(rowsOf(KNOBS)));
  assert.deepEqual(hide, []);
  assert.deepEqual(notes, []);
});

test('every setting round-trips through the URL', () => {
  const original = { ...defaultsOf(rowsOf(KNOBS)), noise_multiplier: 0.7, max_grad_norm: 1.5, batch_size: 512,
    learning_rate: 0.25, epochs: 45, dataset_size: 20000, delta: 2.5e-7, seed: 42, mode: 'real', private: false,
    accountant: 'pld', sampling: 'shuffle', target_epsilon: 7.5, budget_stop: true, solve: true, model: 'tanh_cnn',
    momentum: 0.9 };
  const query = toQuery(original, KNOBS, ['seed', 'learn']);
  const { state, hide, notes } = parseQuery(query, KNOBS);
  assert.deepEqual(state, original);
  assert.deepEqual(hide, ['seed', 'learn']);
  assert.deepEqual(notes, []);
  assert.match(query, /hide=seed,learn$/, 'the hide list stays readable');
});

const cases = [
  ['noise_multiplier=500', { noise_multiplier: 50 }, /noise_multiplier = 500 is above the maximum 50; using 50/],
  ['noise_multiplier=-1', { noise_multiplier: 0 }, /below the minimum 0/],
  ['epochs=2.5', { epochs: 3 }, /not a whole number/],
  ['epochs=abc', { epochs: 5 }, /epochs = "abc" is not a number; using the default 5/],
  ['delta=', { delta: 1e-5 }, /not a number/],
  ['learning_rate=Infinity', { learning_rate: 0.15 }, /not a number/],
  ['mode=gpu', { mode: 'simulate' }, /is not one of simulate, real/],
  ['model=resnet', { model: 'tutorial_cnn' }, /is not one of tutorial_cnn, tanh_cnn/],
  ['momentum=1.5', { momentum: 0.95 }, /momentum = 1.5 is above the maximum 0.95; using 0.95/],
  ['private=maybe', { private: true }, /not true or false/],
  ['private=0', { private: false }, null],
  ['batch_size=1024&dataset_size=500', { batch_size: 256, dataset_size: 500 }, /batch_size 1024 exceeds dataset_size 500; using 256/],
  ['colour=red', {}, /unknown setting "colour"/],
  ['hide=seed,bogus', {}, /no control called "bogus"/],
];
for (const [query, expected, note] of cases) {
  test(`clamps and notes: ${query}`, () => {
    const { state, notes } = parseQuery(query, KNOBS);
    for (const [k, v] of Object.entries(expected)) assert.equal(state[k], v);
    if (note) assert.ok(notes.some((n) => note.test(n)), `notes ${JSON.stringify(notes)} match ${note}`);
    else assert.deepEqual(notes, []);
  });
}

test('constrain leaves a valid state alone', () => {
  const state = defaultsOf(rowsOf(KNOBS));
  assert.deepEqual(constrain(state), { state, notes: [] });
});

test('bodyFor picks the fields a request takes, with overrides', () => {
  const state = defaultsOf(rowsOf(KNOBS));
  assert.deepEqual(bodyFor(state, ['noise_multiplier', 'accountant'], { accountant: 'pld' }),
    { noise_multiplier: 1.1, accountant: 'pld' });
});

test('a simulated run body leaves out the real-mode-only knobs; a real one sends them', async () => {
  const { runBody } = await import('../../static/js/state.js');
  const { SPEC } = await import('./fixtures.mjs');
  const state = defaultsOf(rowsOf(KNOBS));
  const simulated = runBody({ ...state, mode: 'simulate' }, SPEC.fields.runs, KNOBS);
  assert.ok(!('audit' in simulated) && !('canaries' in simulated) && simulated.mode === 'simulate');
  const real = runBody({ ...state, mode: 'real' }, SPEC.fields.runs, KNOBS);
  assert.equal(real.audit, 'membership');
  assert.equal(real.canaries, 1000);
});
