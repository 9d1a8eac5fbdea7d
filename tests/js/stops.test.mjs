// The slider stops the server lists for each knob (app/params.py slider_stops, which advice rounds to) are the ones
// the page's sliders move through (state.js sliderStops).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { sliderStops } from '../../static/js/state.js';
import { KNOBS } from './fixtures.mjs';

test('every slider stops where the server says it does', () => {
  const sliders = KNOBS.filter((row) => row.stops);
  assert.ok(sliders.length >= 8);
  for (const row of sliders) assert.deepEqual(sliderStops(row), row.stops, row.name);
});
