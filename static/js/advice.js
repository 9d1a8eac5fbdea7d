// Words for the advice card: the diagnosis's one change and the settings search's candidates, in the page's symbols
// (σ, C, B, lr) with every ε's assumptions and accuracy in points. Pure: no DOM (views.js renders, main.js applies).

import { assumptions, duration, formatEpsilon, percent, sig } from './format.js';

const SYMBOLS = { noise_multiplier: 'σ', max_grad_norm: 'C', batch_size: 'B', learning_rate: 'lr', epochs: 'epochs',
  dataset_size: 'N', delta: 'δ', private: 'Private', target_epsilon: 'target ε' };

const shown = (value) => {
  if (typeof value === 'boolean') return value ? 'on' : 'off';
  if (typeof value !== 'number') return String(value);
  return Number.isInteger(value) && value >= 1000 ? value.toLocaleString('en-US') : sig(value, 4);
};

/** "σ = 0.8, B = 1,024" for a change {knob: value} ('' when it sets nothing). */
export function changeText(change) {
  return Object.entries(change ?? {}).map(([name, value]) => `${SYMBOLS[name] ?? name} = ${shown(value)}`).join(', ');
}

/** The knobs of a candidate (or a change) the page's state can take: those the knob table has. */
export function applicable(params, rows) {
  const names = new Set(rows.map((r) => r.name));
  return Object.fromEntries(Object.entries(params).filter(([name]) => names.has(name)));
}

/** The searched knobs of a candidate: "σ 1.2 · C 0.1 · B 512 · lr 4 · 40 epochs". */
export function knobsText(p) {
  return `σ ${sig(p.noise_multiplier)} · C ${sig(p.max_grad_norm)} · B ${p.batch_size.toLocaleString('en-US')} · `
    + `lr ${sig(p.learning_rate)} · ${p.epochs} epoch${p.epochs === 1 ? '' : 's'}`;
}

/**
 * One candidate of POST /api/suggest for people: its predicted accuracy, the range a real run ends in, its ε with
 * the assumptions and its time; `gain` in points against the person's current prediction when known.
 * @param c {{params, predicted_accuracy, real_run_range, epsilon, seconds}}
 * @param basis {{accountant, delta, sampling}} what the search's epsilons assume
 */
export function describeCandidate(c, basis, words) {
  const [low, high] = c.real_run_range;
  return {
    accuracy: `${percent(c.predicted_accuracy)} predicted`,
    knobs: knobsText(c.params),
    range: `a real run ends at ${percent(low)}–${percent(high)} 8 times in 10`,
    epsilon: `ε = ${formatEpsilon(c.epsilon)} (${assumptions(basis, words)})`,
    time: `about ${duration(c.seconds)} as a real run`,
  };
}

/** The search's status line after it answered. */
export function searchSummary(answer, target) {
  const n = answer.searched.toLocaleString('en-US');
  const partial = answer.complete === false ? ' (the time budget ended the search early)' : '';
  if (!answer.candidates.length) {
    return `No setting the simulator knows reaches ε ≤ ${sig(target)} here: searched ${n} settings${partial}. `
      + 'Raise the target ε, or use more examples (N).';
  }
  return `Best ${answer.candidates.length} of ${n} settings searched${partial}, each within ε ≤ ${sig(target)} and `
    + 'inside the range the simulator was fitted on, ranked by the accuracy a real run beats 9 times in 10 (the low '
    + 'end of its range). Predictions, not measurements, and the best of thousands is optimistic: on the tutorial '
    + 'row the top candidate\'s real runs ended 1.3 points below its prediction. Confirm with a real run.';
}

/**
 * Where a simulated run's own seed ended against the range stated for real runs (10% / 80% / 10%), in plain words;
 * null without a range.
 */
export function seedAgainstRange(accuracy, range) {
  if (!range || accuracy === null || accuracy === undefined) return null;
  const [low, high] = range;
  if (accuracy < low) return 'This simulated seed ended below that range; 1 real run in 10 does.';
  if (accuracy > high) return 'This simulated seed ended above that range; 1 real run in 10 does.';
  return 'This simulated seed ended inside it, as 8 real runs in 10 do.';
}
