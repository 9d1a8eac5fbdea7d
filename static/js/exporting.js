// Exports: the current run as CSV (one row per epoch, the run's settings repeated so each row stands alone) and JSON,
// and privacy statements as text. The builders are pure; download() is the one DOM helper.

import { assumptions, formatEpsilon } from './format.js';

const EPOCH_COLUMNS = ['epoch', 'train_loss', 'test_loss', 'test_accuracy', 'epsilon', 'clip_fraction',
  'epoch_seconds', 'examples_per_second'];
const NORM_COLUMNS = ['p10', 'p50', 'p90'];
const RUN_COLUMNS = ['mode', 'private', 'noise_multiplier', 'max_grad_norm', 'batch_size', 'learning_rate', 'epochs',
  'dataset_size', 'delta', 'seed', 'accountant', 'sampling'];

function cell(value) {
  if (value === null || value === undefined) return '';
  const text = String(value);
  return /[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function runToCSV(run) {
  const header = [...EPOCH_COLUMNS, ...NORM_COLUMNS.map((q) => `grad_norm_${q}`), ...RUN_COLUMNS];
  const settings = RUN_COLUMNS.map((k) => (k === 'mode' ? run.mode : run.params[k]));
  const rows = run.epochs.map((e) => [...EPOCH_COLUMNS.map((k) => e[k]),
    ...NORM_COLUMNS.map((q) => e.grad_norm?.[q]), ...settings]);
  return [header, ...rows].map((row) => row.map(cell).join(',')).join('\n') + '\n';
}

export function runToJSON(run) {
  const { token, ...shareable } = run; // the cancel token is a secret of this tab
  return JSON.stringify({ exported_by: 'DP-SGD Playground', simulated: run.mode === 'simulate', ...shareable },
    null, 2) + '\n';
}

/**
 * The statement as a text file: the headline epsilon with its assumptions, then the accountant's own words.
 * @param words format.wordsOf the spec, to name the assumptions.
 */
export function statementText({ epsilon, accountant, delta, sampling, statement }, words,
  { simulated = false, private: isPrivate = true } = {}) {
  const head = isPrivate ? `epsilon = ${formatEpsilon(epsilon)} (${assumptions({ accountant, delta, sampling }, words)})`
    : 'epsilon = ∞: no differential privacy guarantee (non-private run: no clipping, no noise)';
  const sim = simulated ? '\nThis run was SIMULATED: its accuracy is a model fitted to real runs; the privacy '
    + 'accounting is computed by the accountant for the settings shown, not predicted.' : '';
  return `DP-SGD Playground privacy statement\n\n${head}\n\n${statement}${sim}\n`;
}

/** Save text or a Blob as a file through a temporary link. */
export function download(filename, content, type = 'text/plain') {
  const blob = content instanceof Blob ? content : new Blob([content], { type });
  const url = URL.createObjectURL(blob);
  const link = document.createElement('a');
  link.href = url;
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
