import assert from 'node:assert/strict';
import { test } from 'node:test';

import { KNOBS } from './fixtures.mjs';
import { applyPreset, matchingPreset, PRESETS, presetById } from '../../static/js/presets.js';
import { clampValue, constrain, defaultsOf, rowsOf } from '../../static/js/state.js';

test('every preset is valid against the knob table and says something', () => {
  const rows = Object.fromEntries(KNOBS.map((k) => [k.name, k]));
  for (const preset of PRESETS) {
    for (const [name, value] of Object.entries(preset.params)) {
      assert.ok(rows[name], `${preset.id}: ${name} is a knob`);
      if (rows[name].type !== 'bool') assert.equal(clampValue(rows[name], value).note, undefined, `${preset.id}.${name}`);
    }
    assert.deepEqual(constrain(applyPreset(defaultsOf(rowsOf(KNOBS)), preset)).notes, []);
    assert.match(preset.note, /\.$/, `${preset.id} has a sentence`);
  }
});

test('the TF Privacy tutorial rows are as published', () => {
  assert.deepEqual(presetById('tutorial').params, { batch_size: 256, dataset_size: 60000, private: true,
    model: 'tutorial_cnn', momentum: 0, noise_multiplier: 1.1, max_grad_norm: 1.0, learning_rate: 0.15, epochs: 60 });
  assert.equal(presetById('tutorial-low-noise').params.noise_multiplier, 0.7);
  assert.equal(presetById('tutorial-short').params.epochs, 15);
});

test('applying a preset keeps mode and seed; the menu recognises it', () => {
  const state = { ...defaultsOf(rowsOf(KNOBS)), mode: 'real', seed: 7, solve: true };
  const after = applyPreset(state, presetById('lr-too-high'));
  assert.equal(after.mode, 'real');
  assert.equal(after.seed, 7);
  assert.equal(after.solve, false);
  assert.equal(matchingPreset(after).id, 'lr-too-high');
  assert.equal(matchingPreset({ ...after, learning_rate: 0.2 }), undefined);
});

test('the best-known preset is Tramer & Boneh 2021\'s tanh CNN, a real run, and leaving it restores the tutorial CNN', () => {
  const best = presetById('best-known');
  assert.deepEqual(best.params, { mode: 'real', private: true, dataset_size: 60000, model: 'tanh_cnn', batch_size: 512,
    learning_rate: 0.5, momentum: 0.9, max_grad_norm: 0.1, noise_multiplier: 1.23, epochs: 40 });
  assert.match(best.note, /Tramer & Boneh 2021/);
  const state = applyPreset(defaultsOf(rowsOf(KNOBS)), best);
  assert.equal(matchingPreset(state).id, 'best-known');
  const back = applyPreset(state, presetById('tutorial'));
  assert.equal(back.model, 'tutorial_cnn');
  assert.equal(back.momentum, 0);
});
