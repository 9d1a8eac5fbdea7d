// The page's state, from the server's knob table (GET /api/params): slider stops, URL read/write with clamping,
// and the request bodies. Pure: no DOM, no fetch, so node tests cover all of it.
//
// Like TensorFlow Playground's state.ts, every setting is one row of a table (the server's knobs plus PAGE_ROWS
// below) that both serializes to the URL and parses from it; a new knob on the server is a new URL key for free.

// Settings that live only in the page. `solve`: the noise multiplier is solved from the target epsilon.
export const PAGE_ROWS = [
  { name: 'solve', type: 'bool', default: false, label: 'Solve σ for the target ε',
    help: 'The page asks the accountant for the smallest noise multiplier whose epsilon stays within the target ε.' },
];

// Parts of the page a teacher link can hide (hide=a,b,c) besides every setting.
export const SECTIONS = ['presets', 'privacy', 'result', 'export', 'recommendations', 'progress-chart', 'budget-chart',
  'clipping-chart', 'audit-chart', 'history', 'learn'];

// Mantissas of the "nice" values a log slider stops at, per decade.
const MANTISSAS = [1, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.8, 2, 2.2, 2.5, 2.8, 3, 3.5, 4, 4.5, 5, 6, 7, 8, 9];

const clean = (x) => Number(x.toPrecision(12));

/** The values a slider can take, in order (the slider's position is an index into them). */
export function sliderStops(row) {
  if (row.scale === 'pow2') {
    const stops = [];
    for (let k = Math.ceil(Math.log2(Math.max(1, row.min))); 2 ** k <= row.max; k += 1) stops.push(2 ** k);
    return stops;
  }
  if (row.scale === 'linear') {
    const step = row.step ?? 1;
    const count = Math.round((row.max - row.min) / step);
    return Array.from({ length: count + 1 }, (_, i) => clean(row.min + i * step));
  }
  if (row.scale === 'log') {
    const low = row.min > 0 ? row.min : row.slider_min;
    const stops = [];
    for (let e = Math.floor(Math.log10(low)); e <= Math.ceil(Math.log10(row.max)); e += 1) {
      for (const m of MANTISSAS) {
        let v = clean(m * 10 ** e);
        if (row.type === 'int') v = Math.round(v);
        if (v > low && v < row.max && v !== stops[stops.length - 1]) stops.push(v);
      }
    }
    return [...(row.min > 0 ? [] : [row.min]), low, ...stops, row.max];
  }
  throw new Error(`${row.name} has no slider scale (scale ${row.scale})`);
}

export const isSlider = (row) => ['log', 'linear', 'pow2'].includes(row.scale);

/** Index of the stop nearest to value: nearest in ratio on log and pow2 sliders (where 0 is only near 0). */
export function positionOf(row, stops, value) {
  const distance = row.scale === 'linear' ? (s) => Math.abs(s - value)
    : (s) => (s > 0 && value > 0 ? Math.abs(Math.log(s / value)) : (s === value ? 0 : Infinity));
  let best = 0;
  stops.forEach((s, i) => { if (distance(s) < distance(stops[best])) best = i; });
  return best;
}

/** The whole table: the server's rows then the page's, by name. */
export function rowsOf(knobs) {
  return [...knobs, ...PAGE_ROWS];
}

export function defaultsOf(rows) {
  return Object.fromEntries(rows.map((r) => [r.name, r.default]));
}

const BOOLS = { true: true, 1: true, on: true, yes: true, false: false, 0: false, off: false, no: false };

// One parser per type: text -> {value} or {error}.
const PARSE = {
  bool: (text) => (text.toLowerCase() in BOOLS ? { value: BOOLS[text.toLowerCase()] } : { error: 'is not true or false' }),
  choice: (text, row) => (row.choices.includes(text) ? { value: text }
    : { error: `is not one of ${row.choices.join(', ')}` }),
  float: (text) => {
    const value = Number(text);
    return text.trim() !== '' && Number.isFinite(value) ? { value } : { error: 'is not a number' };
  },
  int: (text) => PARSE.float(text),
};

// One serializer per type.
const WRITE = { bool: (v) => (v ? 'true' : 'false'), choice: String, float: String, int: String };

/** Clamp a number to its row's range (and round ints); returns {value, note?}. */
export function clampValue(row, value) {
  let v = value;
  let why = null;
  if (row.type === 'int' && !Number.isInteger(v)) {
    v = Math.round(v);
    why = 'is not a whole number';
  }
  if (row.min !== undefined && v < row.min) {
    v = row.min;
    why = `is below the minimum ${row.min}`;
  } else if (row.max !== undefined && v > row.max) {
    v = row.max;
    why = `is above the maximum ${row.max}`;
  }
  return why ? { value: v, note: `${row.name} = ${value} ${why}; using ${v}` } : { value: v };
}

/** Settings that depend on each other: the batch cannot exceed the dataset (the sample rate B/N would pass 1). */
export function constrain(state) {
  if (state.batch_size > state.dataset_size) {
    const batch = 2 ** Math.floor(Math.log2(state.dataset_size));
    return { state: { ...state, batch_size: batch },
      notes: [`batch_size ${state.batch_size} exceeds dataset_size ${state.dataset_size}; using ${batch}`] };
  }
  return { state, notes: [] };
}

/**
 * Read the state from a URL query string.
 * @returns {{state: object, hide: string[], notes: string[]}} every value typed and in range; notes say what was
 *   changed (out of range, malformed, unknown) so the page can show them.
 */
export function parseQuery(query, knobs) {
  const rows = rowsOf(knobs);
  const byName = Object.fromEntries(rows.map((r) => [r.name, r]));
  const params = new URLSearchParams(query);
  const state = defaultsOf(rows);
  const notes = [];
  let hide = [];
  for (const [key, text] of params) {
    if (key === 'hide') {
      const known = new Set([...rows.map((r) => r.name), ...SECTIONS]);
      const names = text.split(',').map((s) => s.trim()).filter(Boolean);
      names.filter((n) => !known.has(n)).forEach((n) => notes.push(`hide: there is no control called "${n}"`));
      hide = names.filter((n) => known.has(n));
      continue;
    }
    const row = byName[key];
    if (!row) {
      notes.push(`ignored the unknown setting "${key}"`);
      continue;
    }
    const parsed = PARSE[row.type](text, row);
    if ('error' in parsed) {
      notes.push(`${key} = "${text}" ${parsed.error}; using the default ${row.default}`);
      continue;
    }
    const isNumber = row.type === 'int' || row.type === 'float';
    const { value, note } = isNumber ? clampValue(row, parsed.value) : parsed;
    if (note) notes.push(note);
    state[key] = value;
  }
  const constrained = constrain(state);
  return { state: constrained.state, hide, notes: [...notes, ...constrained.notes] };
}

/** The query string for a state: every setting in table order, then hide=. */
export function toQuery(state, knobs, hide = []) {
  const parts = rowsOf(knobs).map((r) => `${r.name}=${encodeURIComponent(WRITE[r.type](state[r.name]))}`);
  if (hide.length) parts.push(`hide=${hide.map(encodeURIComponent).join(',')}`);
  return parts.join('&');
}

/** The subset of the state a request takes (fields: the server's list, from GET /api/params), with overrides. */
export function bodyFor(state, fields, overrides = {}) {
  return { ...Object.fromEntries(fields.map((f) => [f, state[f]])), ...overrides };
}

/** A run's request body: a simulated run leaves out the real-mode-only knobs (rows with `simulated_as`), which it
 * takes at their fitted value (the server refuses any other). */
export function runBody(state, fields, knobs) {
  const realOnly = new Set(knobs.filter((r) => r.simulated_as !== undefined).map((r) => r.name));
  return bodyFor(state, state.mode === 'simulate' ? fields.filter((f) => !realOnly.has(f)) : fields);
}
