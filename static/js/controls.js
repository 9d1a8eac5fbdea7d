// The settings panel, built from the knob table: a slider for every row with a scale, a switch for every bool, a
// segmented radio group for every choice, a number field otherwise. DOM ids are the knob names. Ranges are never
// written here a second time: they come from GET /api/params, with the choices' labels.

import { h } from './dom.js';
import { formatValue } from './format.js';
import { isSlider, positionOf, sliderStops } from './state.js';

// Where each knob sits in the panel; a knob the server adds later lands in the last group.
export const GROUPS = [
  { title: 'Run', names: ['mode', 'private', 'model', 'seed'] },
  { title: 'Training', names: ['noise_multiplier', 'max_grad_norm', 'batch_size', 'learning_rate', 'momentum',
    'epochs', 'dataset_size'] },
  { title: 'Privacy audit (real runs)', names: ['audit', 'canaries'] },
  { title: 'Privacy budget', names: ['target_epsilon', 'solve', 'budget_stop', 'delta', 'accountant', 'sampling'] },
  { title: 'Clipping variants (real runs)', names: ['clipping', 'target_quantile', 'sparsification', 'microbatches'] },
];

function helpParts(row) {
  const helpId = `${row.name}-help`;
  const toggle = h('button', { type: 'button', class: 'help-toggle', 'aria-expanded': 'false',
    'aria-controls': helpId, title: `What does ${row.label} do?` }, h('span', { 'aria-hidden': 'true' }, '?'),
  h('span', { class: 'visually-hidden' }, `Explain ${row.label}`));
  const help = h('p', { class: 'knob-help', id: helpId, hidden: true }, row.help ?? '');
  toggle.addEventListener('click', () => {
    const open = toggle.getAttribute('aria-expanded') !== 'true';
    toggle.setAttribute('aria-expanded', String(open));
    help.hidden = !open;
  });
  return { toggle, help, helpId };
}

const errorLine = (row) => h('p', { class: 'knob-error', id: `${row.name}-error`, hidden: true });

// One builder per kind of control: returns {element, set(value), disable(flag)}; calls emit(value, final).
const BUILD = {
  slider(row, emit) {
    const stops = sliderStops(row);
    const { toggle, help, helpId } = helpParts(row);
    // The value for the eye; screen readers hear it from the slider's aria-valuetext (an <output> would be a live
    // region and say every value twice).
    const output = h('span', { id: `${row.name}-value`, class: 'knob-value', 'aria-hidden': 'true' });
    const endsId = `${row.name}-ends`;
    const input = h('input', { type: 'range', id: row.name, name: row.name, min: 0, max: stops.length - 1, step: 1,
      'aria-describedby': `${row.ends ? `${endsId} ` : ''}${helpId} ${row.name}-error` });
    let current = row.default;
    const show = (value) => {
      current = value;
      input.value = String(positionOf(row, stops, value));
      output.textContent = formatValue(row, value);
      input.setAttribute('aria-valuetext', formatValue(row, value));
    };
    const read = (final) => {
      const value = stops[Number(input.value)];
      show(value);
      emit(value, final);
    };
    input.addEventListener('input', () => read(false));
    input.addEventListener('change', () => read(true));
    const ends = row.ends && h('div', { class: 'knob-ends', id: endsId },
      h('span', {}, `← ${row.ends[0]}`), h('span', {}, `${row.ends[1]} →`));
    const element = h('div', { class: 'knob knob-slider', 'data-control': row.name },
      h('div', { class: 'knob-head' }, h('label', { for: row.name }, row.label), toggle, output),
      input, ends, help, errorLine(row));
    return { element, set: show, get: () => current, disable: (flag) => { input.disabled = flag; } };
  },

  bool(row, emit) {
    const { toggle, help, helpId } = helpParts(row);
    const input = h('input', { type: 'checkbox', role: 'switch', id: row.name, name: row.name,
      'aria-describedby': `${helpId} ${row.name}-error` });
    input.addEventListener('change', () => emit(input.checked, true));
    const element = h('div', { class: 'knob knob-switch', 'data-control': row.name },
      h('div', { class: 'knob-head' }, input, h('label', { for: row.name }, row.label), toggle), help, errorLine(row));
    return { element, set: (v) => { input.checked = v; }, disable: (flag) => { input.disabled = flag; } };
  },

  choice(row, emit) {
    const { toggle, help, helpId } = helpParts(row);
    const labelOf = (choice) => row.choice_labels?.[choice] ?? choice;
    const radios = row.choices.map((choice) => {
      const radio = h('input', { type: 'radio', name: row.name, id: `${row.name}-${choice}`, value: choice });
      radio.addEventListener('change', () => radio.checked && emit(choice, true));
      return radio;
    });
    const note = h('p', { class: 'knob-note', id: `${row.name}-note`, hidden: true });
    const element = h('fieldset', { class: 'knob knob-choice', id: row.name, 'data-control': row.name,
      'aria-describedby': `${helpId} ${row.name}-note ${row.name}-error` },
    h('legend', {}, row.label), toggle,
    h('div', { class: 'segmented' }, radios.map((radio) => [radio,
      h('label', { for: radio.id }, labelOf(radio.value))])),
    note, help, errorLine(row));
    return {
      element,
      set: (v) => radios.forEach((r) => { r.checked = r.value === v; }),
      disable: (flag) => radios.forEach((r) => { r.disabled = flag; }),
      /** Disable one choice and say why (e.g. real training unavailable on this server). */
      disableChoice(choice, reason) {
        const radio = radios.find((r) => r.value === choice);
        radio.disabled = true;
        note.hidden = false;
        note.textContent = `${labelOf(choice)} is unavailable: ${reason}`;
      },
    };
  },

  number(row, emit) {
    const { toggle, help, helpId } = helpParts(row);
    const input = h('input', { type: 'number', id: row.name, name: row.name, min: row.min, max: row.max, step: 1,
      inputmode: 'numeric', 'aria-describedby': `${helpId} ${row.name}-error` });
    const read = (final) => {
      const value = Math.round(Number(input.value));
      if (input.value !== '' && Number.isFinite(value) && value >= row.min && value <= row.max) emit(value, final);
    };
    input.addEventListener('input', () => read(false));
    input.addEventListener('change', () => read(true));
    const shuffle = h('button', { type: 'button', class: 'button-quiet', id: `${row.name}-random` }, 'Random');
    shuffle.addEventListener('click', () => {
      input.value = String(Math.floor(Math.random() * 1e6));
      read(true);
    });
    const element = h('div', { class: 'knob knob-number', 'data-control': row.name },
      h('div', { class: 'knob-head' }, h('label', { for: row.name }, row.label), toggle),
      h('div', { class: 'knob-inline' }, input, shuffle), help, errorLine(row));
    return { element, set: (v) => { input.value = String(v); }, disable: (flag) => { input.disabled = flag; } };
  },
};

const kindOf = (row) => {
  if (isSlider(row)) return 'slider';
  if (row.type === 'bool' || row.type === 'choice') return row.type;
  return 'number';
};

/**
 * Build every control into `container`.
 * @param rows the knob table plus the page's rows (state.rowsOf).
 * @param onInput called with (name, value, final) as the user moves a control (final: released or committed).
 * @returns {{set(state), control(name), showErrors(errors), clearErrors()}}
 */
export function buildControls(container, rows, onInput) {
  const controls = {};
  const placed = new Set(GROUPS.flatMap((g) => g.names));
  const groups = GROUPS.map((g, i) => ({ ...g,
    names: i === GROUPS.length - 1 ? [...g.names, ...rows.map((r) => r.name).filter((n) => !placed.has(n))] : g.names }));
  const byName = Object.fromEntries(rows.map((r) => [r.name, r]));
  for (const group of groups) {
    const present = group.names.filter((n) => byName[n]);
    const fieldset = h('fieldset', { class: 'group' }, h('legend', {}, group.title));
    for (const name of present) {
      const row = byName[name];
      controls[name] = BUILD[kindOf(row)](row, (value, final) => onInput(name, value, final));
      fieldset.append(controls[name].element);
    }
    container.append(fieldset);
  }
  return {
    control: (name) => controls[name],
    set(state) {
      for (const [name, control] of Object.entries(controls)) control.set(state[name]);
    },
    showErrors(errors) {
      for (const [field, message] of Object.entries(errors)) {
        const line = document.getElementById(`${field}-error`);
        if (!line) continue;
        line.textContent = message;
        line.hidden = false;
      }
    },
    clearErrors() {
      container.querySelectorAll('.knob-error').forEach((line) => { line.hidden = true; line.textContent = ''; });
    },
  };
}
